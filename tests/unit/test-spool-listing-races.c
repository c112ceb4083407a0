/*
** test-spool-listing-races.c — the deliverer's listing (runtime/spool.c, "the
** listing") against what a second review found in its first fixes (the
** counter file removed while the service runs is test-spool-listing.c's
** retry race, run twice): a sidecar whose folder fsync fails (it
** is in place: the deliverer must learn of it all the same); a retry falling
** between a load's look at the counter and its open of the message (the
** counter is read after the open); two first scans at once (one descriptor
** of the counter, none leaked).  Each failed before its fix.
**
** This file compiles runtime/spool.c itself (with -DMH_TESTS): fsync is a
** stub that can fail once with EIO, and mh_fsutil_open is wrapped so a retry
** can run inside a load's open.
*/
#include <errno.h>
#include <unistd.h>
static int fsync_fail_fd = -1;
static int test_fsync(int fd) {
  if (fd == fsync_fail_fd) { fsync_fail_fd = -1; errno = EIO; return -1; }
  return 0;
}
#define fsync(fd) test_fsync(fd)
#define fdatasync(fd) test_fsync(fd)
#define mh_fsutil_open wrapped_fsutil_open
#include "spool.c"
#undef mh_fsutil_open
int mh_fsutil_open(int dirfd, const char *path, int oflags, mode_t mode, unsigned fsflags, struct stat *st);

#include <dirent.h>
#include "listing-helpers.h"

/* A retry (another handle) run inside the deliverer's next listed open of race_id. */
static mh_spool *racer;
static const char *race_id;
int wrapped_fsutil_open(int dirfd, const char *path, int oflags, mode_t mode, unsigned fsflags,
                        struct stat *st) {
  if (racer && race_id && (fsflags & MH_FS_LISTED) && !strncmp(path, race_id, 16)) {
    char err[MH_SPOOL_ERRLEN];
    mh_spool *r = racer;
    racer = NULL;
    if (mh_spool_retry(r, race_id, err)) diag("retry: %s", err);
  }
  return mh_fsutil_open(dirfd, path, oflags, mode, fsflags, st);
}

static mh_spool *new_message(const char *name, char id[MH_SPOOL_IDLEN]) {
  static const char *to[] = { "d@e.f", "g@h.i" };
  char err[MH_SPOOL_ERRLEN];
  mh_spool *sp;
  fresh(name, &sp);
  mh_spool_item it = { .from = "a@b.c", .to = to, .nto = 2, .write = write_bytes,
                       .arg = (void *)"Subject: x\r\n\r\nbody\r\n" };
  if (mh_spool_enqueue(sp, &it, 1, err)) bail_out("enqueue", err);
  memcpy(id, it.id, MH_SPOOL_IDLEN);
  if (mh_spool_lock(sp, NULL)) bail_out("lock", "");
  return sp;
}

/* The fsync of pickup/ after a sidecar's rename fails: the sidecar is in
** place, and the deliverer learns of it (the holder's own and another's). */
static void fsync_fails(int holder_writes) {
  char err[MH_SPOOL_ERRLEN], id[MH_SPOOL_IDLEN];
  const char *done[] = { "d@e.f" };
  mh_spool *sp = new_message(holder_writes ? "fsync-holder" : "fsync-other", id), *other = NULL, *w;
  mh_spool_entry e;
  int state;
  scan(sp);
  ok(knows(sp, id, &state) && state == 0, "listed, no sidecar");
  if (!holder_writes && mh_spool_open(root, &other, err)) bail_out("other", err);
  w = holder_writes ? sp : other;
  fsync_fail_fd = w->pickupfd;
  ok(mh_spool_defer(w, id, 1, 0, "451 g later", done, 1, NULL, 0, err) != 0,
     "%s's defer reports the failed fsync: %s", holder_writes ? "the holder" : "another handle", err);
  is_int(mh_spool_load(sp, id, &e, err), 0, "the deliverer loads it (same listing)");
  ok(!pending(&e, "d@e.f"), "d@e.f, done, is not sent to again");
  mh_spool_entry_free(&e);
  if (other) mh_spool_close(other);
  mh_spool_close(sp);
}

/* A retry between the load's look at the counter and its open: the holder
** failed the message after a scan that listed it (no sidecar, no touch left),
** and another handle brings it back while the deliverer opens it. */
static void test_load_order(void) {
  char err[MH_SPOOL_ERRLEN], id[MH_SPOOL_IDLEN], x[SIDECARS_REC], *list[1];
  const char *done[] = { "d@e.f" };
  mh_refused ref = { (char *)"g@h.i", (char *)"550 no" };
  mh_spool *sp = new_message("order", id), *other;
  mh_spool_entry e;
  int state, xok;
  scan(sp);
  is_int(mh_spool_defer(sp, id, 1, 0, "550 no", done, 1, NULL, 0, err), 0, "the deliverer: d@e.f done");
  uint64_t s2 = listing_begin(sp, x, &xok);   /* a scan that passed ID.eml before the fail */
  is_int(mh_spool_fail(sp, id, "rejected", "550 no", 1, &ref, 1, err), 0, "the deliverer: to failed/");
  list[0] = id;
  s2 = s2 > sp->tseq ? s2 : sp->tseq;          /* (and began after the fail's touch) */
  uint64_t vals[1] = { id_value(list[0]) };
  listing_publish(sp, s2, x, xok, vals, 1, NULL, 0, NULL);
  ok(knows(sp, id, &state) && state == 0, "that scan lists it, no sidecar, no touch left");
  if (mh_spool_open(root, &other, err)) bail_out("other", err);
  racer = other;
  race_id = id;
  is_int(mh_spool_load(sp, id, &e, err), 0, "the deliverer loads it (a retry inside its open)");
  ok(racer == NULL && !e.failed, "the retry ran, and the message came from pickup/");
  ok(!pending(&e, "d@e.f"), "d@e.f, done before it failed, is not sent to again");
  mh_spool_entry_free(&e);
  race_id = NULL;
  mh_spool_close(other);
  mh_spool_close(sp);
}

/* Two first scans at once (two workers), 300 times: no descriptor leaked. */
static mh_spool *shared_sp;
static pthread_barrier_t bar;
static void *scanner(void *arg) {
  (void)arg;
  pthread_barrier_wait(&bar);
  scan(shared_sp);
  return NULL;
}

static int count_fds(const char *suffix) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  int n = 0;
  char p[300], t[1024];
  while (d && (de = readdir(d))) {
    snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
    ssize_t k = readlink(p, t, sizeof t - 1);
    if (k <= 0) continue;
    t[k] = 0;
    size_t l = strlen(t), s = strlen(suffix);
    if (l >= s && !strcmp(t + l - s, suffix)) n++;
  }
  if (d) closedir(d);
  return n;
}

static void test_no_leak(void) {
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "%s/leak", base);
  mkdir(root, 0700);
  for (int i = 0; i < 300; i++) {
    pthread_t a, b;
    if (mh_spool_open(root, &shared_sp, err)) bail_out(root, err);
    if (mh_spool_lock(shared_sp, NULL)) bail_out("lock", "");
    pthread_barrier_init(&bar, NULL, 2);
    pthread_create(&a, NULL, scanner, NULL);
    pthread_create(&b, NULL, scanner, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&bar);
    mh_spool_close(shared_sp);
  }
  is_int(count_fds("/sidecars"), 0, "no descriptor of DIR/sidecars left after 300 handles (two first scans each)");
}

int main(void) {
  char cmd[300];
  snprintf(base, sizeof base, "%s/mh-listing-races.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  fsync_fails(1);
  fsync_fails(0);
  test_load_order();
  test_no_leak();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) diag("could not remove %s", base);
  return done_testing();
}
