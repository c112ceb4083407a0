/*
** test-admin.c — runtime/admin.c: pages of a queue folder (first, next,
** previous, last, bounds, position, drop-ins and sidecars left out) over a
** folder of 2,500 names, checked against the sorted list; and the lock holder
** read from /proc/locks (nobody; this process after flock; nobody after unlock).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "admin.h"

#define N 2500
static char dir[256];
static char all[N][MH_ADMIN_IDLEN];   /* every id, ascending */

static void touch(const char *name) {
  char p[512];
  int fd;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) close(fd);
}

static void setup(void) {
  snprintf(dir, sizeof dir, "%s/mh-admin-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
  /* created in a scrambled order: the folder's order is not the queue's */
  for (int i = 0; i < N; i++) snprintf(all[i], sizeof all[i], "%016x", 0x10000 + i * 7);
  for (int k = 0; k < N; k++) {
    int i = (k * 1237) % N;          /* 1237 is prime to 2500: a permutation */
    char name[40];
    snprintf(name, sizeof name, "%s.eml", all[i]);
    touch(name);
    if (i % 10 == 0) { snprintf(name, sizeof name, "%s.state", all[i]); touch(name); }
  }
  touch("dropin.eml");              /* not adopted yet: counted apart */
  touch("0000000000010000.eml.tmp");
  touch(".hidden");
}

static int page_is(const char (*ids)[MH_ADMIN_IDLEN], size_t n, size_t from) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], all[from + i])) return 0;
  return 1;
}

static void test_pages(void) {
  static char ids[60][MH_ADMIN_IDLEN];
  size_t n, total, skipped, others;
  mh_admin_page_opts o = { NULL, NULL, 0, 50 };
  is_int(mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others), 0, "first page");
  is_int(total, N, "total counts the canonical ids only");
  is_int(others, 2, "drop-ins counted apart (sidecars and dot files ignored)");
  is_int(n, 50, "50 on the page");
  is_int(skipped, 0, "position 1");
  ok(page_is(ids, n, 0), "the 50 oldest, in order");

  o.after = ids[49];
  char after[MH_ADMIN_IDLEN];
  strcpy(after, ids[49]);
  o.after = after;
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  is_int(skipped, 50, "next page starts after 50");
  ok(n == 50 && page_is(ids, n, 50), "ids 51-100");

  o.after = NULL;
  o.last = 1;
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  is_int(skipped, N - 50, "last page: position");
  ok(n == 50 && page_is(ids, n, N - 50), "the 50 newest");

  char before[MH_ADMIN_IDLEN];
  strcpy(before, all[120]);
  o.before = before;
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  is_int(skipped, 70, "previous page of one starting at 121: from 71");
  ok(n == 50 && page_is(ids, n, 70), "ids 71-120");

  strcpy(before, all[10]);
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  ok(n == 10 && skipped == 0 && page_is(ids, n, 0), "previous near the start: a short page from 1");

  o.before = NULL;
  o.last = 0;
  strcpy(after, all[N - 3]);
  o.after = after;
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  ok(n == 2 && skipped == N - 2 && page_is(ids, n, N - 2), "next near the end: the 2 left");

  strcpy(after, all[N - 1]);
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  ok(n == 0 && skipped == N, "after the last: empty, positioned at the end");

  o.after = NULL;
  o.limit = 0;
  mh_admin_page(dir, &o, ids, &n, &total, &skipped, &others);
  ok(n == 0 && total == N, "limit 0: the count only");

  o.limit = 5;
  is_int(mh_admin_page("/nonexistent/mailhook", &o, ids, &n, &total, &skipped, &others), -ENOENT,
         "a missing folder: -ENOENT");
}

static void test_lock_holder(void) {
  char path[512];
  long pid = 0;
  int fd;
  is_int(mh_admin_lock_holder(dir, &pid), 0, "no lock file: nobody");
  snprintf(path, sizeof path, "%s/lock", dir);
  fd = open(path, O_RDWR | O_CREAT, 0600);
  is_int(mh_admin_lock_holder(dir, &pid), 0, "a lock file nobody holds: nobody");
  ok(flock(fd, LOCK_EX | LOCK_NB) == 0, "flock it");
  is_int(mh_admin_lock_holder(dir, &pid), 1, "now held");
  is_int(pid, getpid(), "by this process");
  {
    int fd2 = open(path, O_RDWR);
    ok(flock(fd2, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "probing left the lock held (another open file cannot take it)");
    close(fd2);
  }
  flock(fd, LOCK_UN);
  is_int(mh_admin_lock_holder(dir, &pid), 0, "released: nobody");
  close(fd);
}

int main(void) {
  char cmd[600];
  setup();
  test_pages();
  test_lock_holder();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
