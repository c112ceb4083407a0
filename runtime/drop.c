/*
** drop.c — mailhook-drop: how a local user who may not write the spool hands
** a message to it (docs/sendmail.md, "Unprivileged submission").
**
**   mailhook-drop [-s SPOOL] [-f SENDER] [-N NOTIFY] [-R RET] [-V ENVID]
**                 [-l ITEM WHY]... [--] RCPT...  < message
**
** Installed setgid to the group of SPOOL/maildrop/ (`mailhook`), the one folder
** that group may write (mode 1730: group write and search, no listing, sticky
** so no one removes another's file).  `mailhook sendmail` run by such a user
** prepares the message (headers, envelope, as for root) and pipes it here.
** Postfix's postdrop is the model: the program is small, has no Lua, reads no
** settings and no environment variable (it is never looked at: LD_*, locale,
** PATH, TMPDIR...), and trusts nothing its caller can choose beyond the bytes
** it records:
**
**   - descriptors 0-2 are opened on /dev/null first when closed, so no file
**     this program opens can become its stderr;
**   - SPOOL (default compiled in) must hold maildrop/ as the service set it
**     up: a real folder (never a link), mode 1730 or 1770, owned by root or by
**     the owner of SPOOL, of the group this program runs as (its setgid
**     group), and SPOOL itself writable by its owner only.  A SPOOL named
**     with -s passes the same checks, so -s can only ever reach a maildrop an
**     administrator made, which the default reaches anyway;
**   - the file is written with no name (O_TMPFILE) and linked in once complete
**     and fsynced: a caller that kills this process (it may: same uid) leaves
**     nothing behind (where O_TMPFILE is missing, a "t." name the service
**     sweeps after a day);
**   - at most MH_DROP_MAX_MSG bytes of message, 10000 recipients, values
**     without control characters, so the record below cannot be forged from
**     inside (the limits are maildrop.h's, shared with the service);
**   - -l ITEM WHY: a recipient item sendmail left out of the envelope (`To:
**     a@x, Some Name`) and why, at most MH_DROP_MAX_LEFT of them: each part
**     recorded with its control characters and backslashes escaped (\x0A,
**     \x5C: no part adds a line or holds the record's tab, and the reader
**     decodes each part back to the bytes given) and cut at
**     MH_DROP_MAX_LEFTLEN bytes.
**     Never a recipient: the service records them refused with the message
**     (docs/sendmail.md), the caller's word about its own message;
**   - the record states the caller's real uid and gid (getuid/getgid: what
**     the kernel says, never a name or a variable), pid and time; the file is
**     the caller's (its owner) and this program's group, mode 0640.
**
** The file:   MAILHOOK-DROP 1\n  uid N\n gid N\n pid N\n time N\n
**             [from SENDER\n]  to RCPT\n...  [notify X\n] [ret X\n] [envid X\n]
**             [leftout ITEM<TAB>WHY\n]...
**             \n  then the message, as piped in
** The service adopts it (lua/mailhook/maildrop.lua): it believes the uid (the
** file's owner must be that uid too), takes the recipients from the "to"
** lines (never from headers the caller typed) and applies its own sender
** rule for an unprivileged caller (from_rewrite): "from" is only a wish.
**
** Exit codes are sysexits(3)'s: 0 stored, 64 usage, 65 message too big or a
** bad value, 73 no usable maildrop/, 75 a write or fsync failed (try again:
** the file is removed, unless a running service had taken it already, which
** is then 0: it is the service's to deliver), 71 the system failed (no /dev/null).
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MH_DROP_PROGRAM_ONLY   /* the limits of maildrop.h, none of its functions */
#include "maildrop.h"

#ifndef MH_DROP_SPOOL
#define MH_DROP_SPOOL "/usr/local/var/spool/mailhook"   /* the Makefile sets it */
#endif
#define MH_DROP_MAX ((long long)MH_DROP_MAX_MSG)         /* bytes of message */
#define MAX_RCPT MH_DROP_MAX_RCPT
#define MAX_VALUE MH_DROP_MAX_VALUE    /* an address or parameter: a line's worth */

enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_DATAERR_ = 65, EX_OSERR_ = 71, EX_CANTCREAT_ = 73,
       EX_TEMPFAIL_ = 75 };

/* In a sanitizer build (make asan) this program runs setgid, so it is not
** dumpable, and LeakSanitizer's exit-time check cannot attach to it (it would
** fail the program); the address checks stay on.  No effect otherwise. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
#endif

static int out_fd = -1;            /* the file being written, closed (and so gone) on failure */
static int out_named;              /* it has a name already (the fallback): unlink on failure */
static int out_final;              /* that name is the final one: the service may have taken it */
static int drop_fd = -1;           /* maildrop/ */
static char tmp_name[64];
static const char *spool_dir = "the spool"; /* for the messages: which maildrop/ a failure was in */

/* Says why on stderr and exits with code; a file not linked in disappears. */
static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...) {
  va_list ap;
  char msg[600];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (out_named && drop_fd >= 0) {
    if (unlinkat(drop_fd, tmp_name, 0) == 0) {
      /* the removal durable too, as far as it goes: a file back after a power
         cut would be sent beside the caller's retry */
      int dfd = out_final ? openat(drop_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
      if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
    } else if (errno == ENOENT && out_final) {
      /* a running service adopts a file the moment it is named: it had taken
         this one (its copy in pickup/ is made durable by its own fsyncs) and
         delivers it.  "Not stored" here made a caller that retries send it twice. */
      char *no = strstr(msg, " (nothing stored)");   /* (it is stored: not said twice both ways) */
      if (no) *no = '\0';
      fprintf(stderr, "mailhook-drop: %s; but the service had taken the message already: stored\n", msg);
      _exit(EX_OK_);
    }
  }
  fprintf(stderr, "mailhook-drop: %s\n", msg);
  _exit(code);
}

/* Descriptors 0, 1, 2 open before anything else is (see the file comment). */
static void stdio_open(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    int n = open("/dev/null", O_RDWR);
    if (n < 0) _exit(EX_OSERR_);
    if (n != fd) {
      if (dup2(n, fd) < 0) _exit(EX_OSERR_);
      close(n);
    }
  }
}

/* A value for the record: 1..MAX_VALUE bytes (0 allowed when may_be_empty),
** no control character (so it stays on its line). */
static void check_value(const char *what, const char *v, int may_be_empty) {
  size_t n = strlen(v);
  if ((!n && !may_be_empty) || n > MAX_VALUE) die(EX_DATAERR_, "%s: empty or over %d bytes", what, MAX_VALUE);
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if (*p < 0x20 || *p == 0x7f) {
      /* the value quoted escaped (\x0A) and cut: the caller's bytes never
      ** add a line to the error a terminal or a log shows */
      char shown[64 * 4 + 4];
      size_t o = 0;
      for (const unsigned char *q = (const unsigned char *)v; *q && q - (const unsigned char *)v < 60; q++) {
        if (*q < 0x20 || *q == 0x7f) o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02X", *q);
        else shown[o++] = (char)*q;
      }
      shown[o] = 0;
      die(EX_DATAERR_, "%s: a control character in '%s%s'", what, shown, n > 60 ? "..." : "");
    }
}

static void usage(const char *why) {
  die(EX_USAGE_, "%s (usage: mailhook-drop [-s SPOOL] [-f SENDER] [-N NOTIFY] [-R RET] [-V ENVID] "
      "[-l ITEM WHY]... [--] RCPT... < message)", why);
}

/* v as a leftout part: control characters (the tab, which separates the
** parts, among them) and the backslash as \xNN, at most MH_DROP_MAX_LEFTLEN
** bytes (an escape is never cut), into out (MH_DROP_MAX_LEFTLEN + 1 bytes).
** The backslash too: a "\x0A" the caller typed read as an escaped newline,
** and the reader (maildrop.c) could not give back what was given. */
static void left_part(const char *v, char *out) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    int ctl = *p < 0x20 || *p == 0x7f || *p == '\\';
    if (o + (ctl ? 4 : 1) > MH_DROP_MAX_LEFTLEN) break;
    if (ctl) o += (size_t)snprintf(out + o, 5, "\\x%02X", *p);
    else out[o++] = (char)*p;
  }
  out[o] = '\0';
}

/* Writes all of buf or dies (EX_TEMPFAIL: a full disk, an I/O error). */
static void put(const char *buf, size_t n) {
  while (n) {
    ssize_t w = write(out_fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die(EX_TEMPFAIL_, "%s/maildrop: writing the message: %s (nothing stored)", spool_dir,
                    w < 0 ? strerror(errno) : "short write");
    buf += w;
    n -= (size_t)w;
  }
}

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...) {
  char line[MAX_VALUE + 64];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line) die(EX_DATAERR_, "a record line is too long");
  put(line, (size_t)n);
}

/* Opens SPOOL/maildrop/ and checks it is the folder the service set up. */
static int open_maildrop(const char *spool) {
  struct stat sst, mst;
  int sfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC), mfd;
  mode_t m;
  if (sfd < 0 && errno == EACCES) sfd = open(spool, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0) die(EX_CANTCREAT_, "spool %s: %s", spool, strerror(errno));
  if (fstat(sfd, &sst) < 0) die(EX_CANTCREAT_, "spool %s: %s", spool, strerror(errno));
  if (sst.st_mode & 022)
    die(EX_CANTCREAT_, "spool %s is writable by group or others (mode %04o): refusing it", spool,
        (unsigned)(sst.st_mode & 07777));
  /* O_PATH: the folder needs search permission only (mode 1730 has no read) */
  mfd = openat(sfd, "maildrop", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (mfd < 0)
    die(EX_CANTCREAT_, "%s/maildrop: %s (unprivileged submission is not set up: "
        "docs/sendmail.md, \"Unprivileged submission\")", spool, strerror(errno));
  close(sfd);
  if (fstat(mfd, &mst) < 0) die(EX_CANTCREAT_, "%s/maildrop: %s", spool, strerror(errno));
  m = mst.st_mode & 07777;
  if (!S_ISDIR(mst.st_mode) || (m != 01730 && m != 01770))
    die(EX_CANTCREAT_, "%s/maildrop is mode %04o, not 1730 or 1770: refusing it", spool, (unsigned)m);
  if (mst.st_uid != 0 && mst.st_uid != sst.st_uid)
    die(EX_CANTCREAT_, "%s/maildrop belongs to uid %u, not to root or the spool's owner: refusing it",
        spool, (unsigned)mst.st_uid);
  if (geteuid() != 0 && mst.st_gid != getegid())
    die(EX_CANTCREAT_, "%s/maildrop is of group %u, not this program's group %u (is mailhook-drop "
        "installed setgid to that group?)", spool, (unsigned)mst.st_gid, (unsigned)getegid());
  return mfd;
}

/* A name that sorts in drop order: microseconds, then randomness. */
static void new_name(char *buf, size_t n, const char *prefix) {
  struct timeval tv;
  unsigned r = 0;
  gettimeofday(&tv, NULL);
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (unsigned)getpid() ^ (unsigned)tv.tv_usec;
  snprintf(buf, n, "%s%016llx.%08x", prefix,
           (unsigned long long)tv.tv_sec * 1000000ull + (unsigned long long)tv.tv_usec, r);
}

/* Copies stdin to the file, at most MH_DROP_MAX bytes; 0 bytes is refused. */
static void copy_stdin(void) {
  static char buf[65536];
  long long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = { .fd = 0, .events = POLLIN };
      poll(&p, 1, -1);
      continue;
    }
    if (n < 0) die(EX_TEMPFAIL_, "reading the message on stdin: %s (nothing stored)", strerror(errno));
    if (n == 0) break;
    total += n;
    if (total > MH_DROP_MAX)
      die(EX_DATAERR_, "the message is over the %lld MiB limit: nothing stored", MH_DROP_MAX >> 20);
    put(buf, (size_t)n);
  }
  if (total == 0) die(EX_DATAERR_, "empty message: nothing stored");
}

int main(int argc, char **argv) {
  const char *spool = MH_DROP_SPOOL, *from = NULL, *notify = NULL, *ret = NULL, *envid = NULL;
  const char *left[MH_DROP_MAX_LEFT][2];   /* -l ITEM WHY, as given */
  char name[64], link[64];
  int i, nrcpt, rc, nleft = 0;

  stdio_open();
  signal(SIGXFSZ, SIG_IGN);      /* a file size limit the caller set: EFBIG, a clean error */
  signal(SIGPIPE, SIG_IGN);
  umask(077);

  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    const char *o = argv[i];
    const char **slot;
    if (!strcmp(o, "--")) { i++; break; }
    if (!strcmp(o, "-l")) {
      if (i + 2 >= argc) usage("-l needs an item and why");
      if (nleft == MH_DROP_MAX_LEFT) die(EX_USAGE_, "more than %d items left out (-l)", MH_DROP_MAX_LEFT);
      if (!argv[i + 1][0]) usage("-l: an empty item");
      left[nleft][0] = argv[i + 1];
      left[nleft++][1] = argv[i + 2];
      i += 2;
      continue;
    }
    if (!strcmp(o, "-s")) slot = &spool;
    else if (!strcmp(o, "-f")) slot = &from;
    else if (!strcmp(o, "-N")) slot = &notify;
    else if (!strcmp(o, "-R")) slot = &ret;
    else if (!strcmp(o, "-V")) slot = &envid;
    else usage("unknown option");
    if (i + 1 >= argc) usage("an option needs a value");
    *slot = argv[++i];
  }
  nrcpt = argc - i;
  if (nrcpt < 1) usage("no recipient");
  if (nrcpt > MAX_RCPT) die(EX_DATAERR_, "more than %d recipients", MAX_RCPT);
  {
    size_t rec = (from ? strlen(from) : 0) + 200;   /* the record must fit what the service reads */
    for (int k = i; k < argc; k++) rec += strlen(argv[k]) + 4;
    rec += (size_t)nleft * (2 * MH_DROP_MAX_LEFTLEN + 10);
    if (rec > (size_t)MH_DROP_MAX_REC) die(EX_DATAERR_, "the recipients take over %d MiB", MH_DROP_MAX_REC >> 20);
  }
  if (spool[0] != '/') usage("the spool must be an absolute path");
  check_value("the spool", spool, 0);   /* no control character: every error below quotes it */
  if (from) check_value("the sender", from, 1);
  for (int k = i; k < argc; k++) check_value("a recipient", argv[k], 0);
  if (notify) check_value("-N", notify, 0);
  if (ret) check_value("-R", ret, 0);
  if (envid) check_value("-V", envid, 0);

  spool_dir = spool;
  drop_fd = open_maildrop(spool);
  out_fd = openat(drop_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0640);
  if (out_fd < 0) {   /* no O_TMPFILE here: a "t." name, swept by the service after a day */
    new_name(tmp_name, sizeof tmp_name, "t.");
    out_fd = openat(drop_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (out_fd < 0) die(EX_CANTCREAT_, "%s/maildrop: %s", spool, strerror(errno));
    out_named = 1;
  }
  if (fchmod(out_fd, 0640) < 0) die(EX_CANTCREAT_, "%s/maildrop: %s", spool, strerror(errno));

  putf("MAILHOOK-DROP 1\nuid %lu\ngid %lu\npid %ld\ntime %lld\n", (unsigned long)getuid(),
       (unsigned long)getgid(), (long)getpid(), (long long)time(NULL));
  if (from) putf("from %s\n", from);   /* "from " alone: the null sender */
  for (int k = i; k < argc; k++) putf("to %s\n", argv[k]);
  if (notify) putf("notify %s\n", notify);
  if (ret) putf("ret %s\n", ret);
  if (envid) putf("envid %s\n", envid);
  for (int k = 0; k < nleft; k++) {
    char item[MH_DROP_MAX_LEFTLEN + 1], why[MH_DROP_MAX_LEFTLEN + 1];
    left_part(left[k][0], item);
    left_part(left[k][1], why);
    put("leftout ", 8);
    put(item, strlen(item));
    put("\t", 1);
    put(why, strlen(why));
    put("\n", 1);
  }
  put("\n", 1);
  copy_stdin();
  if (fsync(out_fd) < 0) die(EX_TEMPFAIL_, "%s/maildrop: fsync of the message: %s (nothing stored)", spool, strerror(errno));

  /* the name, only now: the service never sees a partial file */
  for (int tries = 0;; tries++) {
    new_name(name, sizeof name, "");
    if (out_named) rc = renameat2(drop_fd, tmp_name, drop_fd, name, RENAME_NOREPLACE);
    else {
      snprintf(link, sizeof link, "/proc/self/fd/%d", out_fd);
      rc = linkat(AT_FDCWD, link, drop_fd, name, AT_SYMLINK_FOLLOW);
    }
    if (rc == 0) break;
    if (errno != EEXIST || tries > 100) die(EX_TEMPFAIL_, "%s/maildrop: naming the file: %s", spool, strerror(errno));
  }
  /* named now, but not stored until the name is durable: a failure below removes
     it (it said "try again" and left the file, which the service then delivered
     beside the caller's retry: twice) */
  snprintf(tmp_name, sizeof tmp_name, "%s", name);
  out_named = out_final = 1;
  /* the new name durable: the folder's fsync needs read permission, which mode
     1730 withholds; then the file's own fsync, which on a journaling file
     system (ext4, xfs) commits the transaction its link count changed in */
  {
    int dfd = openat(drop_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dfd >= 0 ? fsync(dfd) : fsync(out_fd);
    if (rc < 0) die(EX_TEMPFAIL_, "fsync of %s/maildrop: %s (nothing stored)", spool, strerror(errno));
    if (dfd >= 0) close(dfd);
  }
  /* stored: its data and its name are durable (both fsyncs succeeded), and a
     close that fails now says nothing about them (it was "75" and the file
     removed, without a word to the service that may have taken it) */
  out_named = 0;
  (void)close(out_fd);
  return EX_OK_;
}
