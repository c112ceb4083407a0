/*
** fsutil.c — atomic, durable replacement of small files (see fsutil.h).
** The sequence is the Maildir/OpenSMTPD one: O_EXCL temporary file in the
** destination folder, write, fsync, rename, fsync the folder; one `fail:`
** path unlinks the temporary file.  A write or fsync error is never retried
** on the same descriptor: the whole operation fails.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fsutil.h"

/* Splits path into its folder (into dir, "." when there is none) and returns the
** base name within path.  Returns NULL when path does not fit. */
static const char *split(const char *path, char *dir, size_t dirsz) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    if (dirsz < 2) return NULL;
    strcpy(dir, ".");
    return path;
  }
  size_t n = (size_t)(slash - path);
  if (n == 0) n = 1;                      /* "/file": the folder is "/" */
  if (n >= dirsz) return NULL;
  memcpy(dir, path, n);
  dir[n] = '\0';
  return slash + 1;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  /* Some file systems refuse fsync on folders (EINVAL); nothing more to do there. */
  if (rc == -EINVAL) rc = 0;
  close(fd);
  return rc;
}

int mh_fsutil_fsync_parent(const char *path) {
  char dir[PATH_MAX];
  if (!split(path, dir, sizeof dir)) return -ENAMETOOLONG;
  return fsync_dir(dir);
}

int mh_fsutil_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mh_fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode) {
  char dir[PATH_MAX], tmp[PATH_MAX];
  const char *base = split(path, dir, sizeof dir);
  int fd = -1, rc;
  static unsigned counter;

  if (!base || !*base) return base ? -EISDIR : -ENAMETOOLONG;
  /* O_EXCL with a name unique to this process and call; retry on a collision
     with a stale file left by a crashed writer of the same pid. */
  for (int tries = 0; fd < 0; tries++) {
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%ld.%u", dir, base, (long)getpid(), counter++);
    if (n < 0 || (size_t)n >= sizeof tmp) return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && (errno != EEXIST || tries > 100)) return -errno;
  }
  /* The umask may have narrowed mode; widening is never wanted, but make it exact. */
  if (fchmod(fd, mode) < 0) { rc = -errno; goto fail; }
  if ((rc = mh_fsutil_write_all(fd, data, len)) < 0) goto fail;
  if (fsync(fd) < 0) { rc = -errno; goto fail; }
  rc = close(fd);
  fd = -1;
  if (rc < 0) { rc = -errno; goto fail; }
  if (rename(tmp, path) < 0) { rc = -errno; goto fail; }
  return fsync_dir(dir);

fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return rc;
}
