/*
** test-spool-listing.c — the deliverer's listing (runtime/spool.c, "the
** listing"; issue 16): a load of an id of the lock holder's last scan skips
** the fstatat before the open and the lookup of an ID.state the scan did not
** see.  What must still hold: a sidecar written after the scan (by the holder:
** defer, fail; by `queue retry` elsewhere, for a message the holder failed) is
** read; a FIFO or a link swapped in under a listed name after the scan is
** still refused, never opened for reading; a scan that began before the
** published one never replaces it; a handle without the lock keeps no listing.
**
** This file compiles runtime/spool.c itself (with -DMH_TESTS) to reach the
** listing's functions.
*/
#include "spool.c"

#include <sys/stat.h>
#include "tap.h"
#include "spool-helpers.h"

static char base[256], root[512];

static void bail_out(const char *what, const char *err) {
  printf("Bail out! %s: %s\n", what, err);
  exit(1);
}

static void fresh(const char *name, mh_spool **sp) {
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "%s/%s", base, name);
  mkdir(root, 0700);
  if (mh_spool_open(root, sp, err)) bail_out(root, err);
}

/* Queues n messages; their ids into ids[]. */
static void queue(mh_spool *sp, int n, char ids[][MH_SPOOL_IDLEN]) {
  static const char *to[] = { "d@e.f", "g@h.i" };
  char err[MH_SPOOL_ERRLEN];
  for (int i = 0; i < n; i++) {
    mh_spool_item it = { .from = "a@b.c", .to = to, .nto = 2, .write = write_bytes,
                         .arg = (void *)"Subject: x\r\n\r\nbody\r\n" };
    if (mh_spool_enqueue(sp, &it, 1, err)) bail_out("enqueue", err);
    memcpy(ids[i], it.id, MH_SPOOL_IDLEN);
  }
}

/* The deliverer's scan (its listing published); how many ids it returned. */
static long scan(mh_spool *sp) {
  char **ids, err[MH_SPOOL_ERRLEN];
  long n = mh_spool_scan(sp, 0, &ids, NULL, err);
  for (long i = 0; i < n; i++) free(ids[i]);
  if (n >= 0) free(ids);
  else diag("scan: %s", err);
  return n;
}

static int knows(mh_spool *sp, const char *id, int *state) { return listing_knows(sp, id, state); }

/* Sidecars written after the scan are read; those the scan saw too. */
static void test_sidecars(void) {
  mh_spool *sp, *other;
  char ids[4][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN];
  const char *done[] = { "d@e.f" };
  mh_spool_entry e;
  int state;
  fresh("sidecars", &sp);
  queue(sp, 4, ids);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  is_int(mh_spool_defer(sp, ids[1], 3, 0, "451 later", NULL, 0, NULL, 0, err), 0, "one deferred before the scan");
  is_int((int)scan(sp), 4, "the scan lists the four");
  ok(knows(sp, ids[0], &state) && state == 0, "a listed message without a sidecar: none to read");
  ok(knows(sp, ids[1], &state) && state == 1, "the one whose sidecar the scan saw: read");
  is_int(mh_spool_load(sp, ids[1], &e, err), 0, "load it");
  ok(e.has_state && e.state.attempts == 3, "its sidecar was read (attempts 3)");
  mh_spool_entry_free(&e);

  /* the holder defers after the scan: the next load must see what was done */
  is_int(mh_spool_defer(sp, ids[2], 1, 0, "451 one of two", done, 1, NULL, 0, err), 0,
         "the deliverer defers one after its scan, one recipient done");
  ok(knows(sp, ids[2], &state) && state == 1, "its sidecar is read at the next load");
  is_int(mh_spool_load(sp, ids[2], &e, err), 0, "load it");
  ok(e.has_state && e.state.ndone == 1 && !strcmp(e.state.done[0], "d@e.f"),
     "the recipient already done is known: never sent to again");
  mh_spool_entry_free(&e);

  /* failed by the holder after the scan, then `queue retry` from elsewhere
     brings it back with its sidecar (attempts kept) */
  is_int(mh_spool_fail(sp, ids[3], "rejected", "550 no", 5, NULL, 0, err), 0, "the deliverer fails one");
  is_int(mh_spool_open(root, &other, err), 0, "another handle (queue retry's process)");
  is_int(mh_spool_retry(other, ids[3], err), 0, "queue retry moves it back to pickup/");
  mh_spool_close(other);
  ok(knows(sp, ids[3], &state) && state == 1, "still listed, and its sidecar is read");
  is_int(mh_spool_load(sp, ids[3], &e, err), 0, "load it");
  ok(e.has_state && e.state.attempts == 5 && !e.failed, "with the attempts its sidecar kept, from pickup/");
  mh_spool_entry_free(&e);

  /* the next scan sees the sidecars itself */
  is_int((int)scan(sp), 4, "a new scan");
  is_int((int)sp->ntouched, 0, "what it saw is no longer remembered apart");
  ok(knows(sp, ids[2], &state) && state == 1, "the sidecar written before it: read");
  ok(knows(sp, ids[0], &state) && state == 0, "still none for the first");
  mh_spool_close(sp);
}

/* What is swapped in under a listed name after the scan is refused unread. */
static void test_swapped(void) {
  mh_spool *sp;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], p[700], q[700];
  mh_spool_entry e;
  int state;
  fresh("swapped", &sp);
  queue(sp, 3, ids);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  is_int((int)scan(sp), 3, "the scan lists three");
  ok(knows(sp, ids[0], &state), "listed");

  snprintf(q, sizeof q, "%s/fifo", base);
  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[0]);
  ok(mkfifo(q, 0600) == 0 && rename(q, p) == 0, "a FIFO replaces the first message after the scan");
  is_int(mh_spool_load(sp, ids[0], &e, err), MH_ECORRUPT, "its load is refused, without blocking: %s", err);
  ok(strstr(err, "FIFO") != NULL, "saying what it is");
  snprintf(p, sizeof p, "%s/corrupt/%s.eml", root, ids[0]);
  ok(access(p, F_OK) == 0, "and it went to corrupt/");

  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[1]);
  ok(unlink(p) == 0 && symlink("/etc/passwd", p) == 0, "a link replaces the second");
  is_int(mh_spool_load(sp, ids[1], &e, err), MH_ECORRUPT, "refused too: %s", err);
  ok(strstr(err, "link") != NULL, "saying it is a link");

  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[2]);
  ok(unlink(p) == 0, "the third is removed (queue rm)");
  is_int(mh_spool_load(sp, ids[2], &e, err), MH_ENOTFOUND, "not found");
  mh_spool_close(sp);
}

/* Two scans at once (two workers): the one that began first, published
** last, must not replace the newer view (it may have missed a sidecar that
** the newer scan saw, and whose touch the newer publication dropped). */
static void test_order(void) {
  mh_spool *sp;
  char ids[2][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], *list[2], *side[1];
  int state;
  uint64_t a, b;
  fresh("order", &sp);
  queue(sp, 2, ids);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  list[0] = ids[0]; list[1] = ids[1]; side[0] = ids[1];
  a = listing_begin(sp);   /* scan A begins, and reads the folder before the sidecar... */
  is_int(mh_spool_defer(sp, ids[1], 2, 0, "451 x", NULL, 0, NULL, 0, err), 0, "a sidecar is written");
  b = listing_begin(sp);   /* ...scan B begins after it, sees it, and ends first */
  listing_publish(sp, b, list, 2, side, 1);
  ok(knows(sp, ids[1], &state) && state == 1, "scan B's view: the sidecar is read");
  listing_publish(sp, a, list, 2, NULL, 0);
  ok(knows(sp, ids[1], &state) && state == 1, "scan A, older, ending last, does not replace it");
  mh_spool_close(sp);
}

/* Only the lock holder lists: anyone else looks each time. */
static void test_not_holder(void) {
  mh_spool *sp;
  char ids[1][MH_SPOOL_IDLEN];
  int state;
  fresh("reader", &sp);
  queue(sp, 1, ids);
  is_int((int)scan(sp), 1, "a reader's scan (no lock)");
  ok(!knows(sp, ids[0], &state) && state == 1, "keeps no listing: every load looks and reads the sidecar");
  mh_spool_close(sp);
}

int main(void) {
  char cmd[300];
  snprintf(base, sizeof base, "%s/mh-listing-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  test_sidecars();
  test_swapped();
  test_order();
  test_not_holder();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) diag("could not remove %s", base);
  return done_testing();
}
