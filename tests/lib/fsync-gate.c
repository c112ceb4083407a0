/*
** fsync-gate.c — a test-only LD_PRELOAD library (built as BUILD/tests/fsync-gate.so, never linked
** into mailhook): it holds each fsync and fdatasync of the process until the test's ticker, a task
** on the libuv loop, has ticked a few more times.  A test then checks that disk work runs off the
** loop by its mechanism: an fsync made on the loop thread could never see the ticker move (the loop
** is that thread), whatever the disk's speed; tmpfs, where an fsync costs nothing, included.
**
** Environment: MH_FSYNC_GATE=DIR.  While DIR/on exists, an fsync reads the ticker's count from
** DIR/ticks (a decimal number the ticker rewrites at each tick), waits until it has grown by 3
** (polling every millisecond), then does the real call.  Each held call appends a byte to
** DIR/held; one that waited 20 s in vain appends a byte to DIR/timeouts instead, and the gate
** opens for good (a broken build fails once, not once per fsync).  Without DIR/on, or without
** MH_FSYNC_GATE, every call goes straight through.
**
** MH_FSYNC_SLOW=MS: a slow disk on demand instead: each fsync and fdatasync of a regular
** file first sleeps MS milliseconds (a folder's goes straight through).  A test of what a
** long disk wait must not be taken for (a rule's running time, a stalled loop:
** tests/integration/hook-pool.sh).
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int given_up;   /* a call timed out: stop holding (racy by design: any value is fine) */

static long read_ticks(const char *dir) {
  char path[PATH_MAX], buf[32];
  snprintf(path, sizeof path, "%s/ticks", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return strtol(buf, NULL, 10);
}

static void mark(const char *dir, const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) { (void)!write(fd, "x", 1); close(fd); }
}

/* Holds the calling thread as described above; returns when the ticker moved or after 20 s. */
static void gate(void) {
  const char *dir = getenv("MH_FSYNC_GATE");
  char on[PATH_MAX];
  if (!dir || given_up) return;
  snprintf(on, sizeof on, "%s/on", dir);
  if (access(on, F_OK) != 0) return;
  long start = read_ticks(dir);
  struct timespec ms = { 0, 1000000 };
  for (int i = 0; i < 20000; i++) {
    long now = read_ticks(dir);
    if (start < 0) start = now;
    else if (now >= start + 3) { mark(dir, "held"); return; }
    nanosleep(&ms, NULL);
  }
  given_up = 1;
  mark(dir, "timeouts");
}

/* MH_FSYNC_SLOW: sleeps that many milliseconds when fd is a regular file. */
static void slow(int fd) {
  const char *ms = getenv("MH_FSYNC_SLOW");
  struct stat st;
  long n;
  if (!ms || (n = strtol(ms, NULL, 10)) <= 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  struct timespec ts = { n / 1000, (n % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "fsync");
  slow(fd);
  gate();
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
  slow(fd);
  gate();
  return real(fd);
}
