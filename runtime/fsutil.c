/*
** fsutil.c — the safe opening of foreign files and the atomic, durable
** replacement of small files (see fsutil.h).
** Opening: stat first, then a non-blocking open without following a link
** (unless asked), then fstat again: a FIFO, a device or a folder can never
** make mailhook block or read without end.
** Replacing: the Maildir/OpenSMTPD sequence: O_EXCL temporary file in the
** destination folder, write, fsync, rename, fsync the folder; one `fail:`
** path unlinks the temporary file.  A write or fsync error is never retried
** on the same descriptor: the whole operation fails.
** Locks: who holds a flock, from /proc/locks, and whether that process is
** stopped (a 3 a.m. message names the pid to look at).
*/
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "error.h"
#include "fsutil.h"

/* ------------------------------------------------------ foreign files */

int mh_fsutil_open(int dirfd, const char *path, int oflags, mode_t mode, unsigned fsflags,
                   struct stat *st) {
  struct stat sb;
  int follow = (fsflags & MH_FS_FOLLOW) != 0, fd;
  if (!st) st = &sb;
  memset(st, 0, sizeof *st);
  /* 1. what is there, before any open (a device's open may act); O_CREAT |
  **    O_EXCL opens nothing that exists (and never follows a link) */
  if ((oflags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
    /* nothing to look at */
  } else if (fsflags & MH_FS_LISTED) {
    /* the caller's listing looked: a regular file then */
  } else if (fstatat(dirfd, path, st, follow ? 0 : AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st->st_mode)) return MH_ENOTREG;
  } else if (errno != ENOENT || !(oflags & O_CREAT)) {
    return -errno;
  }
  /* 2. never blocking, never through a link unless asked */
  fd = openat(dirfd, path, oflags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW), mode);
  if (fd < 0) {
    int e = errno;
    /* ELOOP: a link appeared (O_NOFOLLOW); ENXIO: a FIFO opened for writing */
    if ((e == ELOOP || e == ENXIO) && fstatat(dirfd, path, st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(st->st_mode))
      return MH_ENOTREG;
    return -e;
  }
  /* 3. what was opened is what is read (MH_FS_UNREAD: the caller's first
  **    pread tells, see fsutil.h) */
  if ((fsflags & (MH_FS_LISTED | MH_FS_UNREAD)) == (MH_FS_LISTED | MH_FS_UNREAD)) return fd;
  if (fstat(fd, st) < 0) { int e = errno; close(fd); return -e; }
  if (!S_ISREG(st->st_mode)) { close(fd); return MH_ENOTREG; }
  if ((fsflags & MH_FS_OWNED) &&
      ((st->st_uid != geteuid() && st->st_uid != 0) || (st->st_mode & S_IWOTH))) {
    close(fd);
    return MH_EUNSAFE;
  }
  /* 4. blocking again: regular files ignore O_NONBLOCK, but keep the flags
  **    exactly what the caller asked.  One F_SETFL, no F_GETFL first: the
  **    flags F_SETFL changes (O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME,
  **    O_NONBLOCK) are set to those of oflags, which is what the open had but
  **    O_NONBLOCK (unless the caller asked for it too).  A failure changes
  **    nothing that matters for a regular file, as before. */
  if (!(fsflags & MH_FS_LISTED))
    (void)fcntl(fd, F_SETFL, oflags & (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK));
  return fd;
}

int mh_fsutil_open_input(int dirfd, const char *path, unsigned fsflags, int64_t max, struct stat *st) {
  struct stat sb;
  if (!st) st = &sb;
  int fd = mh_fsutil_open(dirfd, path, O_RDONLY, 0, fsflags, st);
  if (fd >= 0 && max > 0 && (int64_t)st->st_size > max) { close(fd); return MH_ELIMIT; }
  return fd;
}

/* Reads fd to its end into a growing buffer, at most max bytes (max + 1 read
** means over the limit).  Waits with poll when fd is non-blocking. */
static int read_all(int fd, int64_t max, size_t hint, char **out, size_t *len) {
  size_t cap, n = 0;
  if (hint > (1u << 20)) hint = 1u << 20;   /* grown as it arrives past that */
  cap = hint + 1 > 4096 ? hint + 1 : 4096;
  char *buf = malloc(cap + 1);
  if (!buf) return MH_ENOMEM;
  for (;;) {
    if (n == cap) {
      size_t ncap = cap * 2;
      if (max > 0 && ncap > (size_t)max + 1) ncap = (size_t)max + 1;
      if (ncap <= cap) ncap = cap + 1;
      char *nb = realloc(buf, ncap + 1);
      if (!nb) { free(buf); return MH_ENOMEM; }
      buf = nb;
      cap = ncap;
    }
    size_t want = cap - n;
    if (max > 0 && n + want > (size_t)max + 1) want = (size_t)max + 1 - n;
    ssize_t r = read(fd, buf + n, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, -1) < 0 && errno != EINTR) { int e = errno; free(buf); return -e; }
        continue;
      }
      int e = errno;
      free(buf);
      return -e;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (max > 0 && (int64_t)n > max) { free(buf); return MH_ELIMIT; }
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

int mh_fsutil_read(int dirfd, const char *path, unsigned fsflags, int64_t max, char **out,
                   size_t *len, struct stat *st) {
  struct stat sb;
  if (!st) st = &sb;
  int fd = mh_fsutil_open_input(dirfd, path, fsflags, max, st), rc;
  if (fd < 0) return fd;
  rc = read_all(fd, max, (size_t)st->st_size, out, len);
  close(fd);
  return rc;
}

int mh_fsutil_read_fd(int fd, int64_t max, char **out, size_t *len) {
  return read_all(fd, max, 0, out, len);
}

const char *mh_fsutil_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a file";
}

char *mh_fsutil_size(char *buf, size_t n, int64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
    snprintf(buf, n, "%" PRId64 " MiB", bytes >> 20);
  else if (bytes >= 1024 && bytes % 1024 == 0)
    snprintf(buf, n, "%" PRId64 " KiB", bytes >> 10);
  else
    snprintf(buf, n, "%" PRId64 " bytes", bytes);
  return buf;
}

char *mh_fsutil_why(char *buf, size_t n, const char *what, const char *path, int rc,
                    const struct stat *st, int64_t max) {
  char lim[32], head[PATH_MAX + 64];
  snprintf(head, sizeof head, "%s%s%s", what ? what : "", what && *what && path ? " " : "",
           path ? path : "");
  if (!head[0]) snprintf(head, sizeof head, "input");
  mh_fsutil_size(lim, sizeof lim, max);
  if (rc == MH_ENOTREG)
    snprintf(buf, n, "%s: %s, not a regular file", head, st ? mh_fsutil_kind(st->st_mode) : "not a file");
  else if (rc == MH_EUNSAFE && st && st->st_uid != geteuid() && st->st_uid != 0)
    snprintf(buf, n, "%s: belongs to uid %ld, not to the running user (uid %ld) or root: refusing a file "
             "another user could change (chown it)", head, (long)st->st_uid, (long)geteuid());
  else if (rc == MH_EUNSAFE && st)
    snprintf(buf, n, "%s: mode %04o, writable by every user: refusing a file others could change "
             "(chmod o-w it)", head, (unsigned)(st->st_mode & 07777));
  else if (rc == MH_ELIMIT && path && st && (int64_t)st->st_size > max)
    snprintf(buf, n, "%s: %" PRId64 " bytes, over the %s limit", head, (int64_t)st->st_size, lim);
  else if (rc == MH_ELIMIT)
    snprintf(buf, n, "%s: over the %s limit", head, lim);
  else
    snprintf(buf, n, "%s: %s", head, mh_strerror(rc));
  return buf;
}

/* ------------------------------------------------- atomic replacement */

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

int mh_fsutil_sweep_temps(int dfd, int min_age) {
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), removed = 0;
  DIR *d;
  struct dirent *de;
  time_t now = time(NULL);
  if (fd < 0) return -errno;
  if (!(d = fdopendir(fd))) { close(fd); return -errno; }
  while ((de = readdir(d))) {
    /* ".NAME.PID.N": the last two dot-separated parts are digits */
    const char *n = de->d_name, *dot2 = strrchr(n, '.'), *dot1;
    struct stat st;
    char *end;
    long pid;
    if (n[0] != '.' || !dot2 || dot2 == n || !dot2[1]) continue;
    for (dot1 = dot2 - 1; dot1 > n && *dot1 != '.'; dot1--) {}
    if (dot1 <= n + 1) continue;
    strtoul(dot2 + 1, &end, 10);
    if (*end || !isdigit((unsigned char)dot2[1])) continue;
    pid = strtol(dot1 + 1, &end, 10);
    if (end != dot2 || pid <= 0 || !isdigit((unsigned char)dot1[1])) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
    if (now - st.st_mtime < min_age) continue;
    if (unlinkat(dfd, n, 0) == 0) removed++;
  }
  closedir(d);
  return removed;
}

int mh_fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode) {
  return mh_fsutil_write_atomic_ex(path, data, len, mode, 1);
}

int mh_fsutil_write_atomic_ex(const char *path, const void *data, size_t len, mode_t mode, int sync) {
  return mh_fsutil_write_atomic_as(path, data, len, mode, (uid_t)-1, (gid_t)-1, sync, NULL);
}

int mh_fsutil_write_atomic_as(const char *path, const void *data, size_t len, mode_t mode,
                              uid_t uid, gid_t gid, int sync, const char **step) {
  char dir[PATH_MAX], tmp[PATH_MAX];
  const char *base = split(path, dir, sizeof dir);
  const char *unused;
  int fd = -1, rc;
  static unsigned counter;

  if (!step) step = &unused;
  *step = "open";
  if (!base || !*base) return base ? -EISDIR : -ENAMETOOLONG;
  /* O_EXCL with a name unique to this process and call; retry on a collision
     with a stale file left by a crashed writer of the same pid. */
  *step = "create the new copy";
  for (int tries = 0; fd < 0; tries++) {
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%ld.%u", dir, base, (long)getpid(),
                     __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));   /* states in threads */
    if (n < 0 || (size_t)n >= sizeof tmp) return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && (errno != EEXIST || tries > 100)) return -errno;
  }
  /* The owner first (a chown may clear mode bits), before a byte is written:
     the file an administrator gave to root:daemon 0640 stays theirs.  EPERM
     (not root, not the owner's group) fails the whole write: path untouched. */
  if (uid != (uid_t)-1 || gid != (gid_t)-1) {
    struct stat st;
    *step = "chown the new copy";
    if (fstat(fd, &st) < 0) { rc = -errno; goto fail; }
    /* already theirs (the same user, a setgid folder): no chown to refuse */
    if ((uid != (uid_t)-1 && st.st_uid != uid) || (gid != (gid_t)-1 && st.st_gid != gid)) {
      if (fchown(fd, uid, gid) < 0) { rc = -errno; goto fail; }
    }
  }
  /* The umask may have narrowed mode; widening is never wanted, but make it exact. */
  *step = "chmod the new copy";
  if (fchmod(fd, mode) < 0) { rc = -errno; goto fail; }
  *step = "write the new copy";
  if ((rc = mh_fsutil_write_all(fd, data, len)) < 0) goto fail;
  *step = "fsync the new copy";
  if (sync && fsync(fd) < 0) { rc = -errno; goto fail; }
  *step = "close the new copy";
  rc = close(fd);
  fd = -1;
  if (rc < 0) { rc = -errno; goto fail; }
  *step = "rename the new copy over it";
  if (rename(tmp, path) < 0) { rc = -errno; goto fail; }
  *step = "fsync the folder";     /* the new content is in place: the caller says so */
  return sync ? fsync_dir(dir) : 0;

fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return rc;
}

/* One read of /proc/locks: 1 and *pid when a FLOCK WRITE lock on st's inode is
** listed, 0 when not, -errno. */
static int scan_locks(const struct stat *st, long *pid) {
  char line[256];
  FILE *f;
  int found = 0;
  if (!(f = fopen("/proc/locks", "re"))) return -errno;
  /* "1: FLOCK  ADVISORY  WRITE 4242 08:01:131075 0 EOF"; waiters read "1: -> FLOCK ..." */
  while (fgets(line, sizeof line, f)) {
    char type[16], mode[16], rw[16];
    long p;
    unsigned maj, min;
    unsigned long long ino;
    int n;
    const char *s = strchr(line, ':');
    if (!s || strstr(line, "->")) continue;
    n = sscanf(s + 1, " %15s %15s %15s %ld %x:%x:%llu", type, mode, rw, &p, &maj, &min, &ino);
    if (n != 7 || strcmp(type, "FLOCK") || strcmp(rw, "WRITE")) continue;
    if (ino == (unsigned long long)st->st_ino && maj == major(st->st_dev) && min == minor(st->st_dev)) {
      *pid = p;
      found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

int mh_fsutil_flock_holder(const struct stat *st, int reads, long *pid) {
  int rc = 0;
  for (int i = 0; i < reads && rc == 0; i++) rc = scan_locks(st, pid);
  return rc;
}

int mh_fsutil_proc_stopped(long pid) {
  char path[64], buf[512], *p;
  ssize_t n;
  int fd;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return -errno;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return n < 0 ? -errno : -EIO;
  buf[n] = 0;
  /* "PID (COMM) S ...": COMM may hold ')' and spaces: the state follows the last ')' */
  if (!(p = strrchr(buf, ')')) || p[1] != ' ') return -EIO;
  return p[2] == 'T' || p[2] == 't';
}
