/*
** test-spool-listing.c — the deliverer's listing (runtime/spool.c, "the
** listing"; issue 16): a load of an id of the lock holder's last scan skips
** the fstatat before the open and the lookup of an ID.state the scan did not
** see.  What must still hold: a sidecar written after the scan (by the holder:
** defer, fail; by `queue retry` or any other handle, also while the scan
** runs) is read; a power cut that loses a delivered record never brings the
** message back without its sidecar; a scan never removes the sidecar a retry
** is bringing back; a FIFO, a folder or a link swapped in under a listed name
** after the scan is still refused, never read (also by the deliverer's load,
** which makes no fstat: its first read tells), and a message replaced since
** is read whole; a scan that began before the published
** one never replaces it, nor one under way when memory ran out; a handle
** without the lock keeps no listing.  The races were found by review (they
** fail on the first version of the listing: 9a64dd5).
**
** This file compiles runtime/spool.c itself (with -DMH_TESTS) to reach the
** listing's functions; fsync is a stub (no disk load; a test runs a
** competitor inside one), and realloc can be made to fail once.
*/
#include <stdlib.h>
#include <unistd.h>
static void (*fsync_hook)(int fd);
static int test_fsync(int fd) { if (fsync_hook) fsync_hook(fd); return 0; }
#define fsync(fd) test_fsync(fd)
#define fdatasync(fd) test_fsync(fd)
static int fail_touch_realloc;   /* the listing's first touch table (16 entries, 256 bytes) */
static void *test_realloc(void *p, size_t n) {
  if (fail_touch_realloc && !p && n == 256) return NULL;
  return realloc(p, n);
}
#define realloc(p, n) test_realloc(p, n)
#include "spool.c"

#include "listing-helpers.h"

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
  ok(!knows(sp, ids[3], &state) || state == 1, "never claimed sidecar-less (another handle wrote one: "
     "DIR/sidecars moved, nothing is known until the next scan)");
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

/* A fresh spool NAME with n messages queued, the lock taken, and scanned:
** the deliverer's listing holds them. */
static void listed_spool(const char *name, mh_spool **sp, int n, char ids[][MH_SPOOL_IDLEN]) {
  int state;
  fresh(name, sp);
  queue(*sp, n, ids);
  is_int(mh_spool_lock(*sp, NULL), 0, "the deliverer takes the lock");
  is_int((int)scan(*sp), n, "the scan lists %d", n);
  ok(knows(*sp, ids[0], &state), "listed");
}

/* A FIFO renamed over pickup/ID.eml (that path into p): 1 once done. */
static int fifo_over(const char *id, char *p, size_t n) {
  char q[700];
  snprintf(q, sizeof q, "%s/fifo", base);
  snprintf(p, n, "%s/pickup/%s.eml", root, id);
  return mkfifo(q, 0600) == 0 && rename(q, p) == 0;
}

/* What is swapped in under a listed name after the scan is refused unread. */
static void test_swapped(void) {
  mh_spool *sp;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], p[700];
  mh_spool_entry e;
  listed_spool("swapped", &sp, 3, ids);
  ok(fifo_over(ids[0], p, sizeof p), "a FIFO replaces the first message after the scan");
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

/* A spool file written by hand as mailhook writes one (envelope, message of
** body bytes), renamed over pickup/ID.eml: a message replaced after the scan. */
static void replace_with(const char *id, size_t body) {
  char p[700], q[700];
  snprintf(q, sizeof q, "%s/new.eml", base);
  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, id);
  FILE *f = fopen(q, "wb");
  if (!f) bail_out("write", q);
  fputs("X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nSubject: new\r\n\r\n", f);
  for (size_t i = 0; i < body; i++) fputc(i % 64 == 63 ? '\n' : 'a' + (int)(i % 26), f);
  fputs("\r\n", f);
  fclose(f);
  if (rename(q, p) != 0) bail_out("rename", p);
}

/* The deliverer's own load (its bytes wanted: no fstat after the open, the
** first read tells, see first_read) of what was swapped in after the scan: a
** FIFO (one a writer holds open, with bytes waiting) and a folder are
** refused unread; a message replaced by a bigger or a smaller one is read
** whole, its size what the file holds. */
static void test_swapped_read(void) {
  mh_spool *sp;
  char ids[4][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], p[700], q[700], buf[64];
  mh_spool_entry e;
  int fd = -1, w;
  struct stat st;
  listed_spool("swapped-read", &sp, 4, ids);
  ok(fifo_over(ids[0], p, sizeof p), "a FIFO replaces the first message after the scan");
  w = open(p, O_RDWR | O_NONBLOCK);
  ok(w >= 0 && write(w, "X-Sender: a@b.c\r\n", 17) == 17, "a writer holds it open, bytes waiting");
  is_int(mh_spool_load_ex(sp, ids[0], &e, 65536, &fd, err), MH_ECORRUPT, "the deliverer's load refuses it: %s", err);
  ok(strstr(err, "FIFO") != NULL, "saying it is a FIFO");
  is_int(fd, -1, "nothing held open");
  ok(w >= 0 && read(w, buf, sizeof buf) == 17, "its bytes were never read");
  if (w >= 0) close(w);
  snprintf(q, sizeof q, "%s/corrupt/%s.eml", root, ids[0]);
  ok(lstat(q, &st) == 0 && S_ISFIFO(st.st_mode), "and it went to corrupt/");

  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[1]);
  ok(unlink(p) == 0 && mkdir(p, 0700) == 0, "a folder replaces the second");
  is_int(mh_spool_load_ex(sp, ids[1], &e, 65536, &fd, err), MH_ECORRUPT, "refused too: %s", err);
  ok(strstr(err, "folder") != NULL, "saying it is a folder");

  replace_with(ids[2], 20000);
  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[2]);
  is_int(mh_spool_load_ex(sp, ids[2], &e, 65536, &fd, err), 0, "a bigger message in place of the third loads");
  ok(stat(p, &st) == 0 && e.size == st.st_size, "its size is the new file's (%lld)", (long long)e.size);
  ok(e.data && e.datalen == (size_t)(st.st_size - (off_t)e.env.offset) && e.data[e.datalen - 1] == '\n',
     "its data whole, past the first read (%zu bytes)", e.datalen);
  mh_spool_entry_free(&e);
  if (fd >= 0) close(fd);
  fd = -1;

  replace_with(ids[3], 10);
  snprintf(p, sizeof p, "%s/pickup/%s.eml", root, ids[3]);
  is_int(mh_spool_load_ex(sp, ids[3], &e, 65536, &fd, err), 0, "a smaller one in place of the fourth loads");
  ok(stat(p, &st) == 0 && e.size == st.st_size && e.datalen == (size_t)(st.st_size - (off_t)e.env.offset),
     "its size and data are the new file's (%lld)", (long long)e.size);
  ok(e.data && e.datalen >= 12 && !memcmp(e.data + e.datalen - 12, "abcdefghij\r\n", 12), "its last bytes too");
  mh_spool_entry_free(&e);
  if (fd >= 0) close(fd);
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
  char xa[SIDECARS_REC], xb[SIDECARS_REC];
  int oka, okb;
  fresh("order", &sp);
  queue(sp, 2, ids);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  list[0] = ids[0]; list[1] = ids[1]; side[0] = ids[1];
  uint64_t vals[2] = { id_value(list[0]), id_value(list[1]) };   /* the scan's values, sorted */
  a = listing_begin(sp, xa, &oka);   /* scan A begins, and reads the folder before the sidecar... */
  is_int(mh_spool_defer(sp, ids[1], 2, 0, "451 x", NULL, 0, NULL, 0, err), 0, "a sidecar is written");
  b = listing_begin(sp, xb, &okb);   /* ...scan B begins after it, sees it, and ends first */
  listing_publish(sp, b, xb, okb, vals, 2, side, 1, NULL);
  ok(knows(sp, ids[1], &state) && state == 1, "scan B's view: the sidecar is read");
  listing_publish(sp, a, xa, oka, vals, 2, NULL, 0, NULL);
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


/* ------------------------------------------------ races (found by review) */

/* `queue retry` (another handle) brings messages back from failed/ while the
** deliverer's scan runs (at a drop-in's adoption, the folder half read: 2,400
** names, several getdents): readdir may return ID.eml and not the ID.state
** written just before it.  DIR/sidecars moved: none is listed sidecar-less. */
#define FILLER 2400
#define NFAILED 60
static mh_spool *racer;
static char fids[NFAILED][MH_SPOOL_IDLEN];
static int fired;
static void retry_all(const char *where) {
  char err[MH_SPOOL_ERRLEN];
  if (fired || strcmp(where, "adopt-checked")) return;
  fired = 1;
  for (int i = 0; i < NFAILED; i++)
    if (mh_spool_retry(racer, fids[i], err)) diag("retry %s: %s", fids[i], err);
}

static void test_retry_race(int remove_counter) {
  char err[MH_SPOOL_ERRLEN], p[700];
  mh_spool *sp;
  int wrong = 0, resent = 0;
  fresh(remove_counter ? "retry-race-removed" : "retry-race", &sp);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  if (remove_counter) {   /* (second review) the deliverer follows a counter file made again */
    scan(sp);
    snprintf(p, sizeof p, "%s/sidecars", root);
    ok(unlink(p) == 0, "DIR/sidecars removed while the service runs");
  }
  fired = 0;
  race_files(FILLER, fids, NFAILED);
  if (mh_spool_open(root, &racer, err)) bail_out("other", err);
  test_point = retry_all;
  long n = scan(sp);
  test_point = NULL;
  ok(fired, "queue retry (another handle) ran during the deliverer's scan (%ld listed)", n);
  for (int i = 0; i < NFAILED; i++) {
    int state;
    mh_spool_entry e;
    if (knows(sp, fids[i], &state) && state == 0) wrong++;
    if (mh_spool_load(sp, fids[i], &e, err) == 0) {
      resent += pending(&e, "d@e.f");
      mh_spool_entry_free(&e);
    }
  }
  is_int(wrong, 0, "no retried message is listed as having no sidecar");
  is_int(resent, 0, "no load drops the recipient its sidecar says is done");
  mh_spool_close(racer);
  racer = NULL;
  mh_spool_close(sp);
}

/* A power cut after a delivered record: the record is lost, its message is
** sent again (allowed), but with its sidecar: never to a recipient done
** before.  The sidecar goes with the message, at the purge. */
static void test_powercut(void) {
  char p[2048], err[MH_SPOOL_ERRLEN], id[MH_SPOOL_IDLEN];
  static const char *to[] = { "d@e.f", "g@h.i" };
  const char *done[] = { "d@e.f" };
  mh_spool *sp;
  mh_spool_entry e;
  struct stat st;
  int fd;
  fresh("powercut", &sp);
  mh_spool_item it = { .from = "a@b.c", .to = to, .nto = 2, .write = write_bytes,
                       .arg = (void *)"Subject: x\r\n\r\nbody\r\n" };
  if (mh_spool_enqueue(sp, &it, 1, err)) bail_out("enqueue", err);
  memcpy(id, it.id, sizeof id);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  is_int(mh_spool_defer(sp, id, 1, 0, "451 g later", done, 1, NULL, 0, err), 0,
         "attempt 1: d@e.f took it, g@h.i deferred");
  scan(sp);
  is_int(mh_spool_load_ex(sp, id, &e, 0, &fd, err), 0, "attempt 2 loads it");
  ok(!pending(&e, "d@e.f") && pending(&e, "g@h.i"), "only g@h.i is pending");
  mh_spool_entry_free(&e);
  is_int(mh_spool_mark(sp, id, fd, err), 0, "g@h.i took it: the delivered record");
  close(fd);
  snprintf(p, sizeof p, "%s/pickup/%s.state", root, id);
  ok(stat(p, &st) == 0, "its sidecar stays until the purge");
  mh_spool_close(sp);
  snprintf(p, sizeof p, "%s/delivered", root);   /* the power cut: the unsynced record lost */
  if (stat(p, &st) == 0 && truncate(p, st.st_size - JOURNAL_REC)) bail_out("truncate", p);
  if (mh_spool_open(root, &sp, err)) bail_out(root, err);
  is_int(mh_spool_lock(sp, NULL), 0, "after the reboot the service takes the lock");
  scan(sp);
  is_int(mh_spool_load(sp, id, &e, err), 0, "the message is there again (sent again: allowed)");
  ok(!pending(&e, "d@e.f"), "but d@e.f, done on attempt 1, is not sent to again");
  mh_spool_entry_free(&e);
  is_int(mh_spool_mark(sp, id, -1, err), 0, "delivered again");
  is_int((int)mh_spool_purge(sp, err), 1, "the purge removes it");
  snprintf(p, sizeof p, "%s/pickup/%s.state", root, id);
  ok(stat(p, &st) < 0 && errno == ENOENT, "and its sidecar with it");
  mh_spool_close(sp);
}

/* The scan's orphan pass runs between `queue retry`'s sidecar and its move
** of ID.eml back from failed/ (inside retry's fsync of pickup/): the sidecar
** is not an orphan, and stays. */
static mh_spool *holder;
static void scan_in_fsync(int fd) {
  if (!racer || fd != racer->pickupfd) return;
  fsync_hook = NULL;   /* once: after retry's sidecar is renamed in */
  scan(holder);
}

static void test_orphan_race(void) {
  char p[2048], err[MH_SPOOL_ERRLEN], id[17];
  mh_spool_entry e;
  struct stat st;
  fresh("orphan", &holder);
  is_int(mh_spool_lock(holder, NULL), 0, "the deliverer takes the lock");
  hex16(id, (uint64_t)now_us() - 1000000); id[16] = 0;
  snprintf(p, sizeof p, "%s/failed/%s.eml", root, id); put_file(p, MSG);
  snprintf(p, sizeof p, "%s/failed/%s.state", root, id); put_file(p, FAILED_STATE);
  if (mh_spool_open(root, &racer, err)) bail_out("other", err);
  fsync_hook = scan_in_fsync;
  is_int(mh_spool_retry(racer, id, err), 0, "queue retry (another handle), a scan inside it");
  fsync_hook = NULL;
  snprintf(p, sizeof p, "%s/pickup/%s.state", root, id);
  ok(stat(p, &st) == 0, "the sidecar is still there");
  is_int(mh_spool_load(holder, id, &e, err), 0, "the deliverer loads the message");
  ok(e.has_state && !pending(&e, "d@e.f"), "d@e.f, done before it failed, is not sent to again");
  mh_spool_entry_free(&e);
  mh_spool_close(racer);
  racer = NULL;
  mh_spool_close(holder);
}

/* No memory to remember a sidecar the holder writes during a scan: that
** scan, which may have read the folder before it, publishes nothing. */
static mh_spool *enomem_sp;
static char enomem_ids[3][MH_SPOOL_IDLEN];
static void defer_without_memory(const char *where) {
  char err[MH_SPOOL_ERRLEN];
  const char *done[] = { "d@e.f" };
  if (fired || strcmp(where, "adopt-checked")) return;
  fired = 1;
  fail_touch_realloc = 1;
  is_int(mh_spool_defer(enomem_sp, enomem_ids[1], 1, 0, "451 g later", done, 1, NULL, 0, err), 0,
         "a worker defers one during the scan, d@e.f done (no memory to remember it)");
  fail_touch_realloc = 0;
}

static void test_touch_enomem(void) {
  char p[2048], err[MH_SPOOL_ERRLEN];
  mh_spool_entry e;
  int state;
  fresh("enomem", &enomem_sp);
  queue(enomem_sp, 3, enomem_ids);
  is_int(mh_spool_lock(enomem_sp, NULL), 0, "the deliverer takes the lock");
  snprintf(p, sizeof p, "%s/pickup/drop.eml", root);
  put_file(p, "From: a@b.c\r\nTo: d@e.f\r\nSubject: y\r\n\r\nhi\r\n");
  fired = 0;
  test_point = defer_without_memory;
  scan(enomem_sp);
  test_point = NULL;
  ok(fired, "the deferral ran inside the scan");
  ok(!knows(enomem_sp, enomem_ids[1], &state) || state == 1, "the listing does not claim it has no sidecar");
  is_int(mh_spool_load(enomem_sp, enomem_ids[1], &e, err), 0, "load it");
  ok(!pending(&e, "d@e.f"), "d@e.f is not sent to again");
  mh_spool_entry_free(&e);
  mh_spool_close(enomem_sp);
}

int main(void) {
  char cmd[300];
  snprintf(base, sizeof base, "%s/mh-listing-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  test_sidecars();
  test_swapped();
  test_swapped_read();
  test_order();
  test_not_holder();
  test_retry_race(0);
  test_retry_race(1);
  test_powercut();
  test_orphan_race();
  test_touch_enomem();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) diag("could not remove %s", base);
  return done_testing();
}
