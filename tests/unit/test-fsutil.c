/* fsutil: atomic replacement, mode, failures leave nothing behind. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
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

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mh-fsutil.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_write_replace();
  test_failures();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
