/* fsutil: atomic replacement, mode, failures leave nothing behind; the safe
** opening of foreign files (FIFO, device, folder, link, size limits), each
** bounded by alarm() so that a regression fails instead of hanging. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "fsutil.h"

static char dir[64];

static int count_entries(void) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void read_file(const char *path, char *buf, size_t sz) {
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, sz - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
}

static void test_write_replace(void) {
  char path[128], buf[64];
  struct stat st;
  snprintf(path, sizeof path, "%s/conf", dir);
  is_int(mh_fsutil_write_atomic(path, "one\n", 4, 0600), 0, "first write");
  read_file(path, buf, sizeof buf);
  is_str(buf, "one\n", "content");
  stat(path, &st);
  is_int(st.st_mode & 07777, 0600, "mode 0600");
  is_int(mh_fsutil_write_atomic(path, "two\n", 4, 0640), 0, "replace");
  read_file(path, buf, sizeof buf);
  is_str(buf, "two\n", "new content");
  stat(path, &st);
  is_int(st.st_mode & 07777, 0640, "mode of the new file");
  is_int(count_entries(), 1, "no temporary file left");
}

static void test_failures(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/missing/conf", dir);
  is_int(mh_fsutil_write_atomic(path, "x", 1, 0600), -ENOENT, "missing folder: -ENOENT");
  snprintf(path, sizeof path, "%s/sub", dir);
  mkdir(path, 0700);
  /* renaming a file over a folder fails: the temporary file must be removed */
  int rc = mh_fsutil_write_atomic(path, "x", 1, 0600);
  ok(rc == -EISDIR, "rename over a folder fails (%d)", rc);
  rmdir(path);
  is_int(count_entries(), 1, "temporary file removed after the failure");
  is_int(mh_fsutil_write_atomic("", "x", 1, 0600), -EISDIR, "empty path refused");
  is_int(mh_fsutil_fsync_parent("/etc/hostname"), 0, "fsync_parent of an existing folder");
}

/* Opens path the safe way in a child under alarm(5): the result code, or
** -9999 when the open hung (the child was killed). */
static int open_bounded(const char *path, unsigned flags, int64_t max) {
  int fds[2];
  if (pipe(fds)) return -9998;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    struct stat st;
    alarm(5);
    int fd = mh_fsutil_open_input(AT_FDCWD, path, flags, max, &st);
    if (write(fds[1], &fd, sizeof fd) < 0) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  int rc = -9999, status;
  if (read(fds[0], &rc, sizeof rc) != sizeof rc) rc = -9999;
  close(fds[0]);
  waitpid(pid, &status, 0);
  return rc;
}

static void test_open_input(void) {
  char fifo[128], file[128], link[128], sub[128], why[512];
  struct stat st;
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  snprintf(file, sizeof file, "%s/file", dir);
  snprintf(link, sizeof link, "%s/link", dir);
  snprintf(sub, sizeof sub, "%s/folder", dir);
  mkfifo(fifo, 0600);
  mkdir(sub, 0700);
  FILE *f = fopen(file, "wb");
  fputs("0123456789", f);
  fclose(f);
  if (symlink(file, link)) diag("symlink failed");

  is_int(open_bounded(fifo, 0, 0), MH_ENOTREG, "a FIFO is refused at once (no blocking open)");
  is_int(open_bounded(fifo, MH_FS_FOLLOW, 0), MH_ENOTREG, "also when links are followed");
  is_int(open_bounded("/dev/zero", MH_FS_FOLLOW, 0), MH_ENOTREG, "/dev/zero is refused");
  is_int(open_bounded(sub, MH_FS_FOLLOW, 0), MH_ENOTREG, "a folder is refused");
  is_int(open_bounded(link, 0, 0), MH_ENOTREG, "a symbolic link is refused without MH_FS_FOLLOW");
  ok(open_bounded(link, MH_FS_FOLLOW, 0) >= 0, "and followed with it");
  ok(open_bounded(file, 0, 10) >= 0, "a file of exactly the limit opens");
  is_int(open_bounded(file, 0, 9), MH_ELIMIT, "one byte over the limit is refused");
  is_int(open_bounded("/no/such/file", 0, 0), -ENOENT, "a missing file: -ENOENT");

  int fd = mh_fsutil_open(AT_FDCWD, fifo, O_RDWR | O_CREAT, 0600, 0, &st);
  is_int(fd, MH_ENOTREG, "open for writing (O_CREAT) refuses an existing FIFO");
  ok(S_ISFIFO(st.st_mode), "and says what it was");
  mh_fsutil_why(why, sizeof why, "attachment", fifo, fd, &st, 0);
  ok(strstr(why, "attachment ") == why && strstr(why, "/fifo: a FIFO, not a regular file"), "wording: %s", why);
  fd = mh_fsutil_open_input(AT_FDCWD, file, 0, 4, &st);
  mh_fsutil_why(why, sizeof why, "--html", file, fd, &st, 4);
  ok(strstr(why, "10 bytes, over the 4 bytes limit") != NULL, "wording: %s", why);
  mh_fsutil_why(why, sizeof why, "attachment", "x", MH_ELIMIT, &st, 64 << 20);
  ok(strstr(why, "over the 64 MiB limit") != NULL, "limits in MiB: %s", why);

  {   /* the descriptor's status flags are what a plain open with the same flags
         gives (O_NOFOLLOW without MH_FS_FOLLOW; O_NONBLOCK gone unless asked), set with one fcntl (runtime/fsutil.c) */
    static const struct { int flags; const char *what; } cases[] = {
      { O_RDONLY, "O_RDONLY" }, { O_WRONLY | O_APPEND, "O_WRONLY | O_APPEND" },
      { O_RDWR | O_NONBLOCK, "O_RDWR | O_NONBLOCK" }, { O_RDWR | O_CREAT, "O_RDWR | O_CREAT" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
      int a = mh_fsutil_open(AT_FDCWD, file, cases[i].flags, 0600, 0, NULL);
      int b = open(file, cases[i].flags | O_CLOEXEC | O_NOFOLLOW, 0600);   /* no MH_FS_FOLLOW */
      int fa = a >= 0 ? fcntl(a, F_GETFL) : -1, fb = b >= 0 ? fcntl(b, F_GETFL) : -2;
      ok(a >= 0 && fa == fb, "%s: status flags as a plain open's (0x%x, 0x%x)", cases[i].what, fa, fb);
      if (a >= 0) close(a);
      if (b >= 0) close(b);
    }
  }

  char *buf = NULL;
  size_t len = 0;
  is_int(mh_fsutil_read(AT_FDCWD, file, 0, 100, &buf, &len, NULL), 0, "read a whole file");
  ok(buf && len == 10 && !strcmp(buf, "0123456789"), "its bytes, NUL-terminated");
  free(buf);
  {   /* a pipe that never ends: read_fd stops at the limit */
    int p[2];
    if (pipe(p)) diag("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      char z[4096] = { 0 };
      close(p[0]);
      for (;;) if (write(p[1], z, sizeof z) < 0) _exit(0);
    }
    close(p[1]);
    alarm(10);
    buf = NULL;
    int rc = mh_fsutil_read_fd(p[0], 100000, &buf, &len);
    alarm(0);
    is_int(rc, MH_ELIMIT, "an endless stdin stops at its limit");
    ok(buf == NULL, "nothing is returned");
    close(p[0]);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
}

/* A writer killed between its open and its rename leaves ".NAME.PID.N": the
** lock holder's sweep removes those of dead writers once old enough, and
** nothing else (a live writer's, a young one, other dot files, a folder). */
static void touch_aged(const char *name, int age, int folder) {
  char path[160];
  struct timespec ts[2];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (folder) mkdir(path, 0700);
  else close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= age;
  ts[1] = ts[0];
  utimensat(AT_FDCWD, path, ts, 0);
}

static int exists(const char *name) {
  char path[160];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return lstat(path, &st) == 0;
}

static void test_sweep_temps(void) {
  char dead[64], dead_young[64], live[64], dead_dir[64], other[64];
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);            /* a pid that no longer exists */
  snprintf(dead, sizeof dead, ".status.json.%ld.0", (long)pid);
  snprintf(dead_young, sizeof dead_young, ".outage.%ld.3", (long)pid);
  snprintf(live, sizeof live, ".status.json.%ld.7", (long)getpid());
  snprintf(dead_dir, sizeof dead_dir, ".held.%ld.1", (long)pid);
  snprintf(other, sizeof other, ".notes.%ld.x", (long)pid);
  touch_aged(dead, 120, 0);
  touch_aged(dead_young, 5, 0);
  touch_aged(live, 120, 0);
  touch_aged(dead_dir, 120, 1);
  touch_aged(other, 120, 0);
  touch_aged(".keep", 120, 0);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  is_int(mh_fsutil_sweep_temps(dfd, 60), 1, "sweep_temps: one file removed");
  ok(!exists(dead), "a dead writer's old temporary goes");
  ok(exists(dead_young), "a young one stays (a writer in another pid namespace)");
  ok(exists(live), "a live writer's stays");
  ok(exists(dead_dir), "a folder of that shape stays");
  ok(exists(other) && exists(".keep"), "other dot files stay");
  close(dfd);
  char path[160];
  const char *names[] = { dead_young, live, other, ".keep" };
  for (size_t i = 0; i < 4; i++) { snprintf(path, sizeof path, "%s/%s", dir, names[i]); unlink(path); }
  snprintf(path, sizeof path, "%s/%s", dir, dead_dir);
  rmdir(path);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mh-fsutil.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_write_replace();
  test_failures();
  test_open_input();
  test_sweep_temps();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
