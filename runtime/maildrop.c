/*
** maildrop.c — the caller's and the service's sides of SPOOL/maildrop/ (see
** maildrop.h; the drop program itself is drop.c).  Nothing the drop program
** left is trusted: each file is looked at before it is opened, opened without
** following a link or blocking, and its record parsed with bounds; the
** recorded uid must be the file's owner (the drop program creates the file
** as its caller, so only the kernel's word reaches the service).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "maildrop.h"
#include "error.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Formats err (when given) and returns code. */
static int fail(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, MH_DROP_ERRLEN, fmt, ap);
    va_end(ap);
  }
  return code;
}

static int open_dir(const char *spool, const char *sub) {
  int sfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
  if (sfd < 0) return -errno;
  fd = openat(sfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fd = -errno;
  close(sfd);
  return fd;
}

void mh_drop_rec_free(mh_drop_rec *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nto; i++) free(r->to[i]);
  free(r->to);
  for (size_t i = 0; i < r->nleft; i++) { free(r->left_item[i]); free(r->left_why[i]); }
  free(r->left_item);
  free(r->left_why);
  free(r->from);
  free(r->notify);
  free(r->ret);
  free(r->envid);
  memset(r, 0, sizeof *r);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends a copy of s to *v (count *n). */
static int push(char ***v, size_t *n, const char *s) {
  char **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv) return MH_ENOMEM;
  *v = nv;
  if (!(nv[*n] = strdup(s))) return MH_ENOMEM;
  (*n)++;
  return 0;
}

int mh_maildrop_list(const char *spool, char ***names, size_t *n, int64_t stale_age, char ***stale,
                     size_t *nstale) {
  int fd = open_dir(spool, "maildrop"), rc = 0;
  DIR *d;
  struct dirent *de;
  time_t now = time(NULL);
  *names = *stale = NULL;
  *n = *nstale = 0;
  if (fd == -ENOENT) return 1;
  if (fd < 0) return fd;
  if (!(d = fdopendir(fd))) { close(fd); return -errno; }
  while (rc == 0 && (de = readdir(d))) {
    const char *nm = de->d_name;
    struct stat st;
    if (nm[0] == '.') continue;
    if (!strncmp(nm, "t.", 2)) {   /* a drop in progress, or left by a killed one */
      if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime >= stale_age)
        rc = push(stale, nstale, nm);
      continue;
    }
    rc = push(names, n, nm);
  }
  closedir(d);
  if (rc) {
    for (size_t i = 0; i < *n; i++) free((*names)[i]);
    for (size_t i = 0; i < *nstale; i++) free((*stale)[i]);
    free(*names);
    free(*stale);
    *names = *stale = NULL;
    *n = *nstale = 0;
    return rc;
  }
  if (*n > 1) qsort(*names, *n, sizeof **names, cmp_names);
  return 0;
}

/* A value of the record: no control character (the drop program checked). */
static char *value_dup(const char *v, size_t len) {
  char *s;
  if (len > MH_DROP_MAX_VALUE) return NULL;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) return NULL;
  if (!(s = malloc(len + 1))) return NULL;
  memcpy(s, v, len);
  s[len] = '\0';
  return s;
}

static int hex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A part of a leftout line, its escapes decoded: the drop program writes a
** control character or a backslash as \xHH (drop.c left_part), so the part
** read is the bytes the caller gave -l, a typed "\x0A" apart from a newline.
** Any other byte is taken as it is (a backslash not starting an escape: a
** record of an older drop program, which left backslashes as they were).
** NULL: too long, a raw control character, an escaped NUL (no argument holds
** one), or no memory. */
static char *left_dup(const char *v, size_t len) {
  char *s, *o;
  if (len > MH_DROP_MAX_VALUE || !(s = malloc(len + 1))) return NULL;
  o = s;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    int hi, lo;
    if (c < 0x20 || c == 0x7f) { free(s); return NULL; }
    if (c == '\\' && i + 3 < len && v[i + 1] == 'x' && (hi = hex((unsigned char)v[i + 2])) >= 0 &&
        (lo = hex((unsigned char)v[i + 3])) >= 0) {
      if (!(hi | lo)) { free(s); return NULL; }
      *o++ = (char)(hi << 4 | lo);
      i += 3;
      continue;
    }
    *o++ = (char)c;
  }
  *o = '\0';
  return s;
}

/* A decimal number of the record, all of [v, v+len). */
static int number(const char *v, size_t len, long long *out) {
  long long x = 0;
  if (!len || len > 18) return -1;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (v[i] - '0');
  }
  *out = x;
  return 0;
}

/* Parses the record rec[0..len) (its blank line included). */
static int parse_record(const char *buf, size_t len, mh_drop_rec *r, char *err) {
  size_t p = sizeof MH_DROP_MAGIC - 1;
  int have_uid = 0, have_gid = 0, have_time = 0;
  if (len < p || memcmp(buf, MH_DROP_MAGIC, p))
    return fail(err, MH_ECORRUPT, "not a file of mailhook-drop (no '%.15s' first)", MH_DROP_MAGIC);
  while (p < len) {
    const char *line = buf + p, *nl = memchr(line, '\n', len - p), *sp;
    size_t ll, kl, vl;
    long long num;
    char **slot = NULL;
    if (!nl) return fail(err, MH_ECORRUPT, "the record has no end");
    ll = (size_t)(nl - line);
    p += ll + 1;
    if (ll == 0) {                                   /* the blank line: the message follows */
      if (!have_uid || !have_time || !r->nto)
        return fail(err, MH_ECORRUPT, "the record lacks its uid, time or recipients");
      return 0;
    }
    sp = memchr(line, ' ', ll);
    if (!sp) return fail(err, MH_ECORRUPT, "record line '%.40s' has no value", line);
    kl = (size_t)(sp - line);
    vl = ll - kl - 1;
#define KEY(k) (kl == sizeof k - 1 && !memcmp(line, k, kl))
    if (KEY("uid") || KEY("gid") || KEY("pid") || KEY("time")) {
      if (number(sp + 1, vl, &num)) return fail(err, MH_ECORRUPT, "record line '%.40s': not a number", line);
      if (KEY("uid")) { r->uid = (unsigned long)num; have_uid = 1; }
      else if (KEY("gid")) { r->gid = (unsigned long)num; have_gid = 1; }
      else if (KEY("pid")) r->pid = (long)num;
      else { r->time = num; have_time = 1; }
      continue;
    }
    if (KEY("to")) {
      char **nt;
      if (r->nto >= MH_DROP_MAX_RCPT) return fail(err, MH_ECORRUPT, "over %d recipients", MH_DROP_MAX_RCPT);
      if (!(nt = realloc(r->to, (r->nto + 1) * sizeof *nt))) return MH_ENOMEM;
      r->to = nt;
      if (!vl || !(nt[r->nto] = value_dup(sp + 1, vl))) return fail(err, MH_ECORRUPT, "a bad recipient line");
      r->nto++;
      continue;
    }
    if (KEY("leftout")) {   /* "leftout ITEM<TAB>WHY": the drop program escaped both, the tab is its own;
                               each part decoded (left_dup) */
      const char *v = sp + 1, *tab = memchr(v, '\t', vl);
      size_t il = tab ? (size_t)(tab - v) : 0, wl = tab ? vl - il - 1 : 0;
      char **ni, **nw;
      if (r->nleft >= MH_DROP_MAX_LEFT) return fail(err, MH_ECORRUPT, "over %d items left out", MH_DROP_MAX_LEFT);
      if (!tab || !il || il > MH_DROP_MAX_LEFTLEN || wl > MH_DROP_MAX_LEFTLEN)
        return fail(err, MH_ECORRUPT, "a bad leftout line");
      if (!(ni = realloc(r->left_item, (r->nleft + 1) * sizeof *ni))) return MH_ENOMEM;
      r->left_item = ni;
      if (!(nw = realloc(r->left_why, (r->nleft + 1) * sizeof *nw))) return MH_ENOMEM;
      r->left_why = nw;
      ni[r->nleft] = left_dup(v, il);
      nw[r->nleft] = left_dup(tab + 1, wl);
      r->nleft++;   /* freed with the record, whatever they are */
      if (!ni[r->nleft - 1] || !nw[r->nleft - 1]) return fail(err, MH_ECORRUPT, "a bad leftout line");
      continue;
    }
    if (KEY("from")) slot = &r->from;
    else if (KEY("notify")) slot = &r->notify;
    else if (KEY("ret")) slot = &r->ret;
    else if (KEY("envid")) slot = &r->envid;
#undef KEY
    if (!slot || *slot) return fail(err, MH_ECORRUPT, "unknown or repeated record line '%.40s'", line);
    if (!(*slot = value_dup(sp + 1, vl))) return fail(err, MH_ECORRUPT, "a bad value in '%.40s'", line);
  }
  (void)have_gid;
  return fail(err, MH_ECORRUPT, "the record has no end");
}

/* The uid a file of an unmapped owner shows as (kernel.overflowuid, 65534). */
static unsigned long overflow_uid(void) {
  unsigned long v = 65534;
  FILE *f = fopen("/proc/sys/kernel/overflowuid", "r");
  if (f) { if (fscanf(f, "%lu", &v) != 1) v = 65534; fclose(f); }
  return v;
}

/* 1 when this process runs in a user namespace other than the initial one
** (its uid_map is not the identity over the whole range). */
static int in_user_namespace(void) {
  unsigned long a, b, n;
  int r = 0;
  FILE *f = fopen("/proc/self/uid_map", "r");
  if (!f) return 0;
  if (fscanf(f, "%lu %lu %lu", &a, &b, &n) == 3) r = !(a == 0 && b == 0 && n == 4294967295UL);
  fclose(f);
  return r;
}

int mh_maildrop_open(const char *spool, const char *name, mh_drop_rec *rec, int *fdp, char *err) {
  struct stat st;
  int dfd, fd = -1, rc;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  memset(rec, 0, sizeof *rec);
  *fdp = -1;
  if (!name[0] || name[0] == '.' || strchr(name, '/')) return fail(err, MH_EINVAL, "bad name '%s'", name);
  if ((dfd = open_dir(spool, "maildrop")) < 0) return fail(err, dfd, "%s/maildrop: %s", spool, strerror(-dfd));
  /* look first: anything but a regular file is refused unopened */
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    rc = errno == ENOENT ? MH_ENOTFOUND : -errno;
    close(dfd);
    return fail(err, rc, "maildrop/%s: %s", name, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) { close(dfd); return fail(err, MH_ECORRUPT, "maildrop/%s is not a regular file", name); }
  fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  close(dfd);
  if (fd < 0) return fail(err, errno == ENOENT ? MH_ENOTFOUND : -errno, "maildrop/%s: %s", name, strerror(errno));
  if (fstat(fd, &st) < 0) { rc = fail(err, -errno, "maildrop/%s: %s", name, strerror(errno)); goto bad; }
  if (!S_ISREG(st.st_mode)) { rc = fail(err, MH_ECORRUPT, "maildrop/%s is not a regular file", name); goto bad; }
  if (st.st_nlink != 1) {
    rc = fail(err, MH_ECORRUPT, "maildrop/%s has %lu links (the drop program makes one)", name,
              (unsigned long)st.st_nlink);
    goto bad;
  }
  if (st.st_size > (off_t)(MH_DROP_MAX_MSG + MH_DROP_MAX_REC)) {
    rc = fail(err, MH_ECORRUPT, "maildrop/%s: %lld bytes, over the drop program's limits", name,
              (long long)st.st_size);
    goto bad;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  /* the record: up to its blank line, bounded */
  for (;;) {
    ssize_t n;
    const char *end;
    if (cap - len < 65536) {
      char *nb;
      if (cap >= (size_t)MH_DROP_MAX_REC) { rc = fail(err, MH_ECORRUPT, "maildrop/%s: the record is over 4 MiB", name); goto bad; }
      if (!(nb = realloc(buf, cap = cap ? cap * 2 : 65536))) { rc = MH_ENOMEM; goto bad; }
      buf = nb;
    }
    n = pread(fd, buf + len, cap - len, (off_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { rc = fail(err, -errno, "maildrop/%s: %s", name, strerror(errno)); goto bad; }
    if (n == 0) { rc = fail(err, MH_ECORRUPT, "maildrop/%s: no message after the record", name); goto bad; }
    len += (size_t)n;
    if (len >= sizeof MH_DROP_MAGIC - 1 && memcmp(buf, MH_DROP_MAGIC, sizeof MH_DROP_MAGIC - 1)) {
      rc = fail(err, MH_ECORRUPT, "maildrop/%s: not a file of mailhook-drop", name);
      goto bad;
    }
    if ((end = memmem(buf, len, "\n\n", 2))) {
      rec->offset = (int64_t)(end - buf) + 2;
      break;
    }
  }
  {
    char why[MH_DROP_ERRLEN];
    rc = parse_record(buf, (size_t)rec->offset, rec, why);
    if (rc == MH_ENOMEM) goto bad;
    if (rc) { rc = fail(err, rc, "maildrop/%s: %s", name, why); goto bad; }
  }
  if (rec->uid != (unsigned long)st.st_uid) {
    /* in a user namespace that does not map the caller (systemd's
    ** PrivateUsers=), every other user's file shows as the overflow uid: no
    ** forgery, and nothing to decide here -- the file stays for a process that
    ** can see its owner, with an error saying why (it went to corrupt/: cron's
    ** and PHP's mail lost while sendmail said 0) */
    if ((unsigned long)st.st_uid == overflow_uid() && in_user_namespace()) {
      rc = fail(err, MH_EUNSAFE, "maildrop/%s: its owner shows as uid %lu (nobody): this process runs in a user "
                "namespace that hides the submitting user (systemd's PrivateUsers=?), so the owner its record "
                "names (uid %lu) cannot be checked; left in maildrop/", name, (unsigned long)st.st_uid, rec->uid);
      goto bad;
    }
    rc = fail(err, MH_ECORRUPT, "maildrop/%s belongs to uid %lu but its record says %lu", name,
              (unsigned long)st.st_uid, rec->uid);
    goto bad;
  }
  if ((int64_t)st.st_size == rec->offset) {
    rc = fail(err, MH_ECORRUPT, "maildrop/%s: no message after the record", name);
    goto bad;
  }
  rec->size = st.st_size;
  if (lseek(fd, (off_t)rec->offset, SEEK_SET) < 0) { rc = fail(err, -errno, "maildrop/%s: seek", name); goto bad; }
  free(buf);
  *fdp = fd;
  return 0;
bad:
  free(buf);
  if (fd >= 0) close(fd);
  mh_drop_rec_free(rec);
  return rc;
}

int mh_maildrop_done(const char *spool, const char *name, int corrupt, const char *as, char *err) {
  int dfd, cfd = -1, rc = 0;
  char dest[300];
  if (!name[0] || name[0] == '.' || strchr(name, '/')) return fail(err, MH_EINVAL, "bad name '%s'", name);
  if ((dfd = open_dir(spool, "maildrop")) < 0) return fail(err, dfd, "%s/maildrop: %s", spool, strerror(-dfd));
  if (!corrupt) {
    if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) rc = fail(err, -errno, "unlink maildrop/%s: %s", name, strerror(errno));
  } else if ((cfd = open_dir(spool, "corrupt")) < 0) {
    rc = fail(err, cfd, "%s/corrupt: %s", spool, strerror(-cfd));
  } else {
    if (!as || !as[0] || as[0] == '.' || strchr(as, '/')) as = name;
    snprintf(dest, sizeof dest, "maildrop.%s", as);
    for (int k = 1; renameat2(dfd, name, cfd, dest, RENAME_NOREPLACE) < 0; k++) {
      if (errno != EEXIST || k > 1000) { rc = fail(err, -errno, "move maildrop/%s to corrupt/: %s", name, strerror(errno)); break; }
      snprintf(dest, sizeof dest, "maildrop.%s.%d", as, k);
    }
    if (rc == 0 && fsync(cfd) < 0) rc = fail(err, -errno, "fsync %s/corrupt: %s", spool, strerror(errno));
  }
  if (rc == 0 && fsync(dfd) < 0) rc = fail(err, -errno, "fsync %s/maildrop: %s", spool, strerror(errno));
  if (cfd >= 0) close(cfd);
  close(dfd);
  return rc;
}

int mh_maildrop_remove(const char *spool, const char *name, char *err) {
  int dfd, rc = 0;
  if (!name[0] || name[0] == '.' || strchr(name, '/')) return fail(err, MH_EINVAL, "bad name '%s'", name);
  if ((dfd = open_dir(spool, "maildrop")) < 0) return fail(err, dfd, "%s/maildrop: %s", spool, strerror(-dfd));
  if (unlinkat(dfd, name, 0) < 0) {
    rc = errno == ENOENT ? fail(err, MH_ENOTFOUND, "maildrop/%s is no longer there", name)
                         : fail(err, -errno, "unlink maildrop/%s: %s", name, strerror(errno));
  } else if (fsync(dfd) < 0) {
    rc = fail(err, -errno, "fsync %s/maildrop: %s", spool, strerror(errno));
  }
  close(dfd);
  return rc;
}

int mh_maildrop_aside(const char *spool, const char *name, const char *id, int fd, char *aside, char *err) {
  struct stat was, now;
  int dfd, rc = 0;
  if (!name[0] || name[0] == '.' || strchr(name, '/')) return fail(err, MH_EINVAL, "bad name '%s'", name);
  if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16) return fail(err, MH_EINVAL, "bad id '%.20s'", id);
  snprintf(aside, 32, "%s.adopted", id);
  if (fstat(fd, &was) < 0) return fail(err, -errno, "maildrop/%s: %s", name, strerror(errno));
  if ((dfd = open_dir(spool, "maildrop")) < 0) return fail(err, dfd, "%s/maildrop: %s", spool, strerror(-dfd));
  /* no fsync of the folder here: the copy's own (pickup/) follows, and until
     the copy is durable the file is under one of its two names; a power cut
     may keep the old name beside the copy (sent twice), never lose both */
  if (renameat2(dfd, name, dfd, aside, RENAME_NOREPLACE) < 0) {
    rc = errno == ENOENT ? MH_ENOTFOUND : -errno;
    fail(err, rc, "rename maildrop/%s to %s: %s", name, aside, strerror(errno));
  } else if (fstatat(dfd, aside, &now, AT_SYMLINK_NOFOLLOW) < 0 || now.st_ino != was.st_ino ||
             now.st_dev != was.st_dev) {
    /* not the file that was read (nothing but root can rename onto a name
       here; the drop program never replaces one): it goes back */
    renameat2(dfd, aside, dfd, name, RENAME_NOREPLACE);
    rc = fail(err, -EAGAIN, "maildrop/%s was replaced while it was read", name);
  }
  close(dfd);
  return rc;
}

int mh_maildrop_submit(const char *const *argv, int (*writer)(void *arg, int fd), void *arg, int *status,
                       char *err) {
  int p[2], rc, wst;
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dfl;
  char *const envp[] = { NULL };   /* the drop program reads no variable: give it none */
  *status = -1;
  if (pipe2(p, O_CLOEXEC) < 0) return fail(err, -errno, "pipe: %s", strerror(errno));
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[0], 0);   /* dup2 clears O_CLOEXEC on 0 */
  posix_spawnattr_init(&at);
  /* a thread-pool thread blocks every signal, and SIGPIPE is ignored here:
     the child starts with neither */
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  rc = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(p[0]);
  if (rc != 0) {
    close(p[1]);
    return fail(err, -rc, "cannot run %s: %s", argv[0], strerror(rc));
  }
  rc = writer(arg, p[1]);
  /* half a message must not be stored: the program dies before it sees the
     end of its input (it names the file only at the end) */
  if (rc < 0 && rc != -EPIPE) kill(pid, SIGKILL);
  close(p[1]);
  while (waitpid(pid, &wst, 0) < 0) {
    if (errno != EINTR) return fail(err, -errno, "waiting for %s: %s", argv[0], strerror(errno));
  }
  *status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
  if (rc < 0 && rc != -EPIPE) return fail(err, rc, "writing the message to %s: %s", argv[0], mh_strerror(rc));
  return 0;
}
