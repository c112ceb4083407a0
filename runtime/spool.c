/*
** spool.c — the durable pickup folder (see spool.h for the layout and the
** promises).  The one rule every function here keeps: a file becomes visible
** in pickup/ only by rename(2) of a complete, fsynced file, and a success is
** reported only after the folder holding the new name was fsynced too.
** And the hostile-folder rules: every file of the spool is opened through
** mh_fsutil_open (never blocking, never through a link, regular files only);
** what is not a regular file in pickup/ is moved aside to corrupt/ once; the
** folders themselves must belong to us (or root) and be writable by nobody
** else (spool_folder_check); a failure is logged once per change of state.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "spool.h"
#include "eol.h"
#include "intake.h"
#include "msg.h"
#include "fsutil.h"
#include "error.h"
#include "log.h"
#include "privdrop.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define HEAD_CAP (4u << 20)   /* a header block larger than this is unparsable */

/* A tmp/ file is locked before anything can see its name (create_tmp): made
** nameless (O_TMPFILE), flocked, then linked in as NAME.  Where O_TMPFILE or
** the link is not available it is made as "w.PID.NAME", flocked, renamed to
** NAME: the sweep removes a NAME it can lock (its writer is gone), but a "w."
** name only when it can lock it AND its writer PID is gone or it is older than
** SWEEP_FRESH seconds, so the instant between creat and flock is never a
** window for the sweep, and a writer killed in it leaves nothing for long. */
#define SWEEP_FRESH 600

/* The lock holder also removes the ".NAME.PID.N" temporaries of atomic writes
** (mh_fsutil_write_atomic) whose writer is dead, in DIR and in these folders
** of state/, once TEMP_MIN_AGE seconds old (a writer in another pid namespace
** looks dead, but none takes a minute between its open and its rename). */
#define TEMP_MIN_AGE 60
static const char *const temp_dirs[] = { ".", "rules", "rules/held" };
#define CREATING "w."

/* A problem already logged about a spool name ("pickup/x.eml"), so that the
** next scans stay silent until its state changes (another error, or fixed). */
typedef struct {
  char *name;       /* "pickup/NAME" */
  int code;         /* what was logged (a negative code) */
  unsigned gen;     /* the last scan that saw the name (older ones are pruned) */
} note;
#define NOTES_MAX 1024   /* past this many distinct names, problems are logged each time */

#define SIDECARS "sidecars"   /* DIR/sidecars: see "the listing" */
#define SIDECARS_REC 17         /* 16 hex digits and a newline */
#define LOADED_MAX 64           /* loads remembered until their record: the deliverer has a few
                                   in flight at most (two, and one loaded ahead, per session) */

struct mh_spool {
  char *dir;        /* the spool folder as given */
  int dirfd;        /* DIR itself (seq, lock) */
  int tmpfd;        /* DIR/tmp */
  int pickupfd;     /* DIR/pickup */
  int failedfd;     /* DIR/failed */
  int corruptfd;    /* DIR/corrupt */
  int statefd;      /* DIR/state (tls-seen, rules/: owned by the Lua layer) */
  int lockfd;       /* DIR/lock while we hold the deliverer lock, else -1 */
  char *dropin_from; /* the settings' `from`: the From of a drop-in that has none and gives
                       no sender (mh_spool_set_dropin_from), or NULL */
  char *dropin_domain; /* the settings' default_domain: without dropin_from, such a drop-in
                       is from its owner's login at it (NULL: the host name) */
  mh_spool_names *names; /* where a drop-in's bare local recipients go (mh_spool_set_dropin_names),
                       or NULL; under mu, referenced by the adoptions using it */
  /* Which folder (file) each descriptor above was opened on, to notice one
  ** removed, moved or replaced under a running service (see "following the
  ** folders"); under fmu, with the time of the last look. */
  pthread_mutex_t fmu;
  struct fident { dev_t dev; ino_t ino; } idroot, idsub[5], idlock;
  unsigned flags;   /* MH_SPOOL_MUST_EXIST, MH_SPOOL_NO_CREATE (mh_spool_open_ex) */
  _Atomic int64_t followed; /* monotonic us of the last look (0: never); read without fmu by
                       the loads' fast path (no look due: no lock taken) */
  _Atomic long lost;  /* the lock file was replaced and another process (this pid, -1 unknown)
                       holds the new one: this handle delivers no more (0: not lost) */
  pthread_mutex_t mu;   /* guards notes (scans run on several pool threads) */
  pthread_mutex_t amu;  /* one adoption at a time: two scans at once (the deliverer's, the
                           service's status count) each adopted the same drop-in under an
                           id of its own, and it was sent twice */
  note *notes;      /* problems logged once (see note_once) */
  size_t nnotes;
  unsigned gen;     /* scan generation, for pruning notes of names gone */
  /* The delivered journal (see "the delivered journal" below): the lock
  ** holder's view, shared by the loop thread (mh_spool_mark) and the pool
  ** (mh_spool_purge, scans, loads), all of it under jmu. */
  pthread_mutex_t jmu;
  int jfd;          /* DIR/delivered open for appending, or -1 (made on the next mark) */
  int jnew;         /* DIR/delivered was created since the last mh_spool_sync (fsync DIR) */
  uint64_t *jcur;   /* the ids recorded in DIR/delivered, in the order marked */
  size_t njcur, capcur;
  uint64_t *jold;   /* the ids of DIR/delivered.old: the batch being (or to be) removed */
  size_t njold;
  uint64_t *jicur, *jiold; /* per record of jcur, jold: the inode of the file that was loaded
                       and sent, as the scan's readdir gave it (0: unknown); NULL: none known.
                       The purge removes a name only while that file is under it */
  uint64_t jmax;    /* no id above this is recorded: the usual load (the next in the queue,
                       newer than every one delivered) is answered without a search */
  int purging;      /* a purge runs (one at a time: the next waits on jcv) */
  pthread_cond_t jcv;   /* signalled when a purge ends */
  /* The last scan's listing (the lock holder's; see "the listing" below),
  ** under lmu: what a load of a listed id need not look at again. */
  pthread_mutex_t lmu;
  uint64_t *listed;     /* the ids the published scan returned, regular files then (sorted) */
  size_t nlisted;
  uint64_t *linos;      /* each listed id's inode (readdir's d_ino), or NULL */
  struct loaded { uint64_t id, ino; } loaded[LOADED_MAX];   /* the last loads of listed ids: the
                           inode their scan listed, for their record (mh_spool_mark); a ring */
  unsigned nloaded;     /* loads noted so far (the next slot: nloaded % LOADED_MAX) */
  uint64_t *stated;     /* the ids of the pickup/ID.state files it saw (sorted) */
  size_t nstated;
  uint64_t lseq;        /* the touch sequence when that scan began */
  struct touch { uint64_t id, seq; } *touched;   /* sidecars this handle wrote since (any folder) */
  size_t ntouched, captouched;
  uint64_t tseq;        /* one more per sidecar written */
  int xfd;              /* DIR/sidecars, the lock holder's (see "the listing"), or -1 */
  char lx[SIDECARS_REC];    /* what DIR/sidecars held when the published scan began */
  int lx_ok;            /* lx was read: without it nothing is known */
  /* The ids recorded (jcur, jold) whose ID.state may exist: unlinked by the
  ** purge with their messages, never before (see mh_spool_mark). */
  uint64_t *jscur, *jsold;
  size_t njscur, capscur, njsold;
  int jsall_cur, jsall_old; /* no memory to remember them: every sidecar of the batch */
  int jold_live;    /* jold is this handle's records, not removed yet: a file found gone
                       by its purge was removed meanwhile (queue rm), and is said so */
};

static unsigned tmp_counter;  /* makes sidecar tmp names unique within a process */

/* pickup/ID.adopted: a drop-in's original while it is adopted as ID (adopt_one) */
#define ASIDE_SUFFIX ".adopted"

#ifdef MH_TESTS
/* Test builds only (tests/unit/test-spool-hostile.c compiles this file with
** -DMH_TESTS): test_point runs a competitor at a named point of a protocol,
** exactly inside a window; test_fault makes the call at a named point fail
** with the -errno it returns (0: no fault). */
static void (*test_point)(const char *where);
static int (*test_fault)(const char *where);
#define TEST_POINT(w) do { if (test_point) test_point(w); } while (0)
static int fault_at(const char *where) {
  int e = test_fault ? test_fault(where) : 0;
  if (e) errno = -e;
  return e;
}
#else
#define TEST_POINT(w) ((void)0)
#define fault_at(w) 0
#endif

/* ------------------------------------------------------------ helpers */

/* s as an error, a log line or the spool may show it, into out (cap bytes,
** NUL-terminated; cut before an escape that would not fit): a control byte as
** \xNN, and when raw (s is a caller's bytes: an address, a header's text, a
** file's name) a backslash as \x5C too -- submit.printable's form, as
** mailhook-drop -l records it, so a "\x1b" written in a drop-in never reads
** as an escaped ESC byte.  Not raw: s is shown already (an err of fail(), a
** left-out item, a why built of those and constants), and only a control
** byte that should never be there is escaped: its escapes stay as they are,
** never \x5Cx09.  A text that does not fit is cut and ends in "...", never
** inside an escape: one of a shown text copied whole or not at all (its
** "\x1B" cut to "\x1" read as a stray backslash).  Returns the length. */
static size_t show_into(char *out, size_t cap, const char *s, int raw) {
  size_t o = 0;
  const unsigned char *c = (const unsigned char *)s;
  if (cap < 8) { if (cap) out[0] = '\0'; return 0; }
  for (; *c && o + 8 < cap; c++) {   /* room left for an escape (4), "..." and the NUL */
    if (*c < 0x20 || *c == 0x7f || (raw && *c == '\\')) o += (size_t)snprintf(out + o, cap - o, "\\x%02X", *c);
    else out[o++] = (char)*c;
  }
  if (*c) {
    /* in a shown text every backslash starts a \xNN: one in the last three
       bytes copied starts an escape the cut split */
    if (!raw) for (size_t k = o > 3 ? o - 3 : 0; k < o; k++) if (out[k] == '\\') { o = k; break; }
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return o;
}

/* Formats "what: why" into err (when err is given); returns code.  The
** message may quote a caller's value (an envelope address given with CR,
** LF or ESC in it, a drop-in's header text): every argument is taken as raw
** and shown (show_into: a control byte as \xNN, a backslash as \x5C), so the
** error printed, logged or kept as a drop-in's reason can neither start a
** forged line nor drive a terminal, nor make a typed "\x0a" read as an
** escaped LF.  A message that quotes text shown already (another fail()'s
** err, a left-out item) is made with fail_shown(): never escaped twice. */
#define NO_SPOOL (MH__ERR_BASE - 1)   /* fail(): -ENOENT, its message saying it all ("no spool at DIR") */
static int vfail(char *err, int code, int raw, const char *fmt, va_list ap) {
  if (err) {
    char text[4 * MH_SPOOL_ERRLEN];   /* cut by show_into (never inside an escape), not here */
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = show_into(err, MH_SPOOL_ERRLEN, text, raw);
    if (code != MH_ECORRUPT && code != MH_EUNSAFE && code != -EBUSY && code != NO_SPOOL)  /* these say it themselves */
      snprintf(err + n, MH_SPOOL_ERRLEN - n, ": %s", mh_strerror(code == NO_SPOOL ? -ENOENT : code));
  }
  return code == NO_SPOOL ? -ENOENT : code;
}

static int fail(char *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(err, code, 1, fmt, ap);
  va_end(ap);
  return rc;
}

/* fail() for a message whose every argument is shown already (an err, a
** left-out item or its why, a name through vis()) or a constant. */
static int fail_shown(char *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(err, code, 0, fmt, ap);
  va_end(ap);
  return rc;
}


/* A descriptor of its own on the folder dirfd, for readdir: a dup() would
** share the file offset, and two scans at once (two workers, two pool
** threads) would read the folder through one position: one of them started
** where the other had ended and saw an empty queue. */
static int dir_reopen(int dirfd) {
  return openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int fsync_fd(int fd) {
  return fsync(fd) < 0 ? -errno : 0;
}

/* rename without ever replacing an existing file (falls back to link+unlink
** where renameat2 is missing). */
static int rename_new(int fromfd, const char *from, int tofd, const char *to) {
  if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -errno;
  if (linkat(fromfd, from, tofd, to, 0) < 0) return -errno;
  unlinkat(fromfd, from, 0);
  return 0;
}

static int64_t now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

int mh_spool_is_id(const char *s) {
  /* the 16 lowercase hex digits by a table (asked several times per message) */
  static const unsigned char hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
  };
  const unsigned char *u = (const unsigned char *)s;
  unsigned ok;
  if (strnlen(s, 17) != 16) return 0;   /* first: nothing past a shorter string is read */
  /* the 16 lookups ANDed, four at a time: a quarter of a loop's instructions
     and branches (ten calls a message on the deliverer's path) */
  ok = hex[u[0]] & hex[u[1]] & hex[u[2]] & hex[u[3]];
  ok &= hex[u[4]] & hex[u[5]] & hex[u[6]] & hex[u[7]];
  ok &= hex[u[8]] & hex[u[9]] & hex[u[10]] & hex[u[11]];
  ok &= hex[u[12]] & hex[u[13]] & hex[u[14]] & hex[u[15]];
  return (int)ok;
}

/* True for the name of a message's sidecar, "ID.state" with a canonical id
** (any other *.state name is a drop-in like any other). */
static int is_sidecar(const char *nm, size_t nl) {
  char id[MH_SPOOL_IDLEN];
  if (nl != 22 || strcmp(nm + 16, ".state")) return 0;
  memcpy(id, nm, 16);
  id[16] = '\0';
  return mh_spool_is_id(id);
}

/* Whether NM is an aside name "ID.adopted" (ID a canonical id, into id): the
** original of a drop-in while it is adopted as ID (adopt_one). */
static int aside_id(const char *nm, size_t nl, char id[MH_SPOOL_IDLEN]) {
  if (nl != 16 + sizeof ASIDE_SUFFIX - 1 || strcmp(nm + 16, ASIDE_SUFFIX)) return 0;
  memcpy(id, nm, 16);
  id[16] = '\0';
  return mh_spool_is_id(id);
}

/* "ID.eml" for a canonical id, else the name itself (a drop-in's file name).
** Returns MH_EINVAL for names that could leave the folder. */
/* Names built per message on the deliverer's path are joined with memcpy:
** snprintf cost some 600 instructions a call, a tenth of a message's CPU
** (callgrind, 1,000 messages drained).  out must hold a + b. */
static void join2(char *out, const char *a, size_t an, const char *b, size_t bn) {
  memcpy(out, a, an);
  memcpy(out + an, b, bn);
  out[an + bn] = '\0';
}

/* The 16 lowercase hex digits of v (the id form), no NUL. */
static void hex16(char *out, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, v >>= 4) out[i] = digits[v & 15];
}

static int file_name(const char *id, char *out, size_t cap) {
  size_t n = strlen(id);
  if (!id[0] || id[0] == '.' || strchr(id, '/') || n + 5 > cap) return MH_EINVAL;
  if (mh_spool_is_id(id)) join2(out, id, n, ".eml", 4);
  else memcpy(out, id, n + 1);
  return 0;
}

static char *xstrndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

/* A name or a text taken from a spool file (raw: a caller's bytes), fit for
** a log line, a reason or a left-out item: control bytes (a newline that
** would start a forged log line, an escape sequence for the terminal that
** shows the log) as \xNN, a backslash as \x5C (show_into).  Returns buf. */
#define VIS_LEN 1100
static const char *vis(const char *s, char *buf) {
  show_into(buf, VIS_LEN, s, 1);
  return buf;
}

/* vis() for a text shown already (an err of fail(), a why that quotes one):
** its escapes kept as they are, a stray control byte still escaped. */
static const char *vis_shown(const char *s, char *buf) {
  show_into(buf, VIS_LEN, s, 0);
  return buf;
}

/* ------------------------------------------------------------ notes */

/* Should a problem (code) about name be logged?  1 the first time, and when
** it changed; 0 when the same was logged already.  Remembers it. */
static int note_once(mh_spool *sp, const char *name, int code) {
  int say = 1;
  pthread_mutex_lock(&sp->mu);
  for (size_t i = 0; i < sp->nnotes; i++) {
    if (strcmp(sp->notes[i].name, name)) continue;
    say = sp->notes[i].code != code;
    sp->notes[i].code = code;
    sp->notes[i].gen = sp->gen;
    pthread_mutex_unlock(&sp->mu);
    return say;
  }
  if (sp->nnotes < NOTES_MAX) {
    note *nv = realloc(sp->notes, (sp->nnotes + 1) * sizeof *nv);
    char *copy = strdup(name);
    if (nv) sp->notes = nv;
    if (nv && copy) {
      nv[sp->nnotes].name = copy;
      nv[sp->nnotes].code = code;
      nv[sp->nnotes].gen = sp->gen;
      sp->nnotes++;
    } else {
      free(copy);
    }
  }
  pthread_mutex_unlock(&sp->mu);
  return say;
}

/* The problem about name is over; 1 when one had been logged. */
static int note_clear(mh_spool *sp, const char *name) {
  int had = 0;
  pthread_mutex_lock(&sp->mu);
  for (size_t i = 0; i < sp->nnotes; i++) {
    if (strcmp(sp->notes[i].name, name)) continue;
    free(sp->notes[i].name);
    sp->notes[i] = sp->notes[--sp->nnotes];
    had = 1;
    break;
  }
  pthread_mutex_unlock(&sp->mu);
  return had;
}

/* A scan starts: its generation, to mark the names it sees; *any whether a
** note was there already.  Only those need note_seen: a note made during the
** scan (by it, or by another thread) carries this generation already and is
** never pruned by it.  Most scans have none, and skip a lock and a search per
** name. */
static unsigned notes_begin(mh_spool *sp, int *any) {
  pthread_mutex_lock(&sp->mu);
  unsigned g = ++sp->gen;
  *any = sp->nnotes > 0;
  pthread_mutex_unlock(&sp->mu);
  return g;
}

/* The scan of generation gen saw name: its note (if any) is kept. */
static void note_seen(mh_spool *sp, const char *name, unsigned gen) {
  pthread_mutex_lock(&sp->mu);
  for (size_t i = 0; i < sp->nnotes; i++)
    if (!strcmp(sp->notes[i].name, name)) { if (sp->notes[i].gen < gen) sp->notes[i].gen = gen; break; }
  pthread_mutex_unlock(&sp->mu);
}

/* After a full scan of pickup/: forget the names it did not see (gone: if
** one comes back, its problem is news again). */
static void notes_prune(mh_spool *sp, unsigned gen) {
  pthread_mutex_lock(&sp->mu);
  for (size_t i = 0; i < sp->nnotes;) {
    if (sp->notes[i].gen < gen && !strncmp(sp->notes[i].name, "pickup/", 7)) {
      free(sp->notes[i].name);
      sp->notes[i] = sp->notes[--sp->nnotes];
    } else {
      i++;
    }
  }
  pthread_mutex_unlock(&sp->mu);
}

/* -------------------------------------------------------- open, close */

/* How a spool folder may be shared.  Every folder is FOLDER_PRIVATE but the
** postdrop-style maildrop/ of unprivileged submission (docs/sendmail.md,
** runtime/drop.c): FOLDER_DROPBOX, owned by us, and either private too or
** exactly mode 1730 or 1770 (group-writable and sticky, the drop program's
** group), exempt from the group-write rule only because it is named here. */
enum { FOLDER_PRIVATE, FOLDER_DROPBOX };

/* The `postfix check` rule for a spool folder (fd open on it, shown as what):
** owned by the running user or root, and writable by nobody else (a
** FOLDER_DROPBOX may be 1730 or 1770).  0, or MH_EUNSAFE with err naming the
** folder, its owner and mode, and the fix. */
static int folder_check(int fd, const char *what, int policy, char *err) {
  struct stat st;
  uid_t me = geteuid();
  if (fstat(fd, &st) < 0) return fail(err, -errno, "%s", what);
  if (!S_ISDIR(st.st_mode)) return fail(err, MH_EUNSAFE, "%s is not a folder", what);
  if (st.st_uid != me && st.st_uid != 0)
    return fail(err, MH_EUNSAFE, "%s belongs to uid %ld, not to the running user (uid %ld) or root: "
                "refusing a spool another user could change (chown it, or run as its owner)",
                what, (long)st.st_uid, (long)me);
  mode_t m = st.st_mode & 07777;
  if (policy == FOLDER_DROPBOX && (m == 01730 || m == 01770)) return 0;
  if (policy == FOLDER_DROPBOX && (st.st_mode & (S_IWGRP | S_IWOTH)))
    return fail(err, MH_EUNSAFE, "%s is mode %04o: a maildrop is 1730 (or 1770), group-writable and sticky, "
                "or private (chmod 1730 it)", what, (unsigned)m);
  mode_t bad = S_IWGRP | S_IWOTH;
  if (st.st_mode & bad)
    return fail(err, MH_EUNSAFE, "%s is mode %04o, writable by %s: refusing a spool others could change "
                "(chmod go-w it)", what, (unsigned)(st.st_mode & 07777),
                (st.st_mode & S_IWOTH) ? "other users" : "its group");
  return 0;
}

/* DIR/name: created (mode 0700, never wider whatever the umask) when missing
** (create: else -ENOENT), opened without following a link, checked.  The fd,
** or an error (err). */
static int open_sub(int dirfd, const char *dir, const char *name, int policy, int create, char *err) {
  char what[MH_SPOOL_ERRLEN];
  int fd;
  snprintf(what, sizeof what, "spool %s/%s", dir, name);
  if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST) return fail(err, -errno, "%s", what);
  fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT && !create) return -ENOENT;   /* the caller says what it means */
    if (e == ELOOP || e == ENOTDIR)
      return fail(err, MH_EUNSAFE, "%s is a symbolic link or a file, not a folder", what);
    return fail(err, -e, "%s", what);
  }
  int rc = folder_check(fd, what, policy, err);
  if (rc) { close(fd); return rc; }
  return fd;
}

/* The sub-folders, in the order of sp->idsub (and sub_fd). */
static const struct { const char *name; int policy; } spool_subs[] = {
  { "tmp", FOLDER_PRIVATE }, { "pickup", FOLDER_PRIVATE }, { "failed", FOLDER_PRIVATE },
  { "corrupt", FOLDER_PRIVATE }, { "state", FOLDER_PRIVATE },
};

static int *sub_fd(mh_spool *sp, int i) {
  int *const fds[5] = { &sp->tmpfd, &sp->pickupfd, &sp->failedfd, &sp->corruptfd, &sp->statefd };
  return fds[i];
}

static void ident_set(struct fident *id, const struct stat *st) {
  id->dev = st->st_dev;
  id->ino = st->st_ino;
}

static int ident_is(const struct fident *id, const struct stat *st) {
  return id->dev == st->st_dev && id->ino == st->st_ino;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int mh_spool_open(const char *dir, mh_spool **out, char *err) {
  return mh_spool_open_ex(dir, 0, out, err);
}

int mh_spool_open_ex(const char *dir, unsigned flags, mh_spool **out, char *err) {
  mh_spool *sp = calloc(1, sizeof *sp);
  int create = !(flags & MH_SPOOL_NO_CREATE);
  int rc, i;
  struct stat st;
  char what[MH_SPOOL_ERRLEN];
  *out = NULL;
  if (!sp || !(sp->dir = strdup(dir))) { free(sp); return fail(err, MH_ENOMEM, "spool %s", dir); }
  sp->dirfd = sp->tmpfd = sp->pickupfd = sp->failedfd = sp->corruptfd = sp->statefd = sp->lockfd = -1;
  sp->jfd = -1;
  sp->xfd = -1;
  pthread_mutex_init(&sp->mu, NULL);
  pthread_mutex_init(&sp->amu, NULL);
  pthread_mutex_init(&sp->fmu, NULL);
  pthread_mutex_init(&sp->jmu, NULL);
  pthread_cond_init(&sp->jcv, NULL);
  pthread_mutex_init(&sp->lmu, NULL);
  sp->flags = flags;
  if (!(flags & (MH_SPOOL_MUST_EXIST | MH_SPOOL_NO_CREATE)) && mkdir(dir, 0700) < 0 && errno != EEXIST) {
    rc = fail(err, -errno, "spool %s", dir);
    goto bad;
  }
  /* the root may be a link (an administrator's choice of path); what it
     leads to is checked */
  sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sp->dirfd < 0 && errno == ENOENT && (flags & (MH_SPOOL_MUST_EXIST | MH_SPOOL_NO_CREATE))) {
    rc = fail(err, NO_SPOOL, "no spool at %s", dir);
    goto bad;
  }
  if (sp->dirfd < 0) { rc = fail(err, -errno, "spool %s", dir); goto bad; }
  snprintf(what, sizeof what, "spool %s", dir);
  if ((rc = folder_check(sp->dirfd, what, FOLDER_PRIVATE, err))) goto bad;
  if (fstat(sp->dirfd, &st) < 0) { rc = fail(err, -errno, "%s", what); goto bad; }
  ident_set(&sp->idroot, &st);
  /* a folder without pickup/ is no spool (a -s typo, a service never
     started): MUST_EXIST says so and makes nothing there.  Unless it has
     maildrop/: the spool as `make install` and the package set it up, local
     users' mail waiting there before the service ever ran (a deliverer
     makes the rest; a NO_CREATE handle reads pickup/ as empty) */
  if (flags & MH_SPOOL_MUST_EXIST) {
    int fd = open_sub(sp->dirfd, dir, "pickup", FOLDER_PRIVATE, 0, err);
    if (fd == -ENOENT) {
      struct stat md;
      if (fstatat(sp->dirfd, "maildrop", &md, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = fail(err, NO_SPOOL, "no spool at %s (it has no pickup/ folder)", dir);
        goto bad;
      }
    } else if (fd < 0) {
      rc = fd;
      goto bad;
    } else {
      close(fd);
    }
  }
  for (i = 0; i < 5; i++) {
    int fd = open_sub(sp->dirfd, dir, spool_subs[i].name, spool_subs[i].policy, create, err);
    if (fd == -ENOENT && !create) continue;   /* NO_CREATE: a missing one reads as empty (-1) */
    if (fd < 0) { rc = fd; goto bad; }
    *sub_fd(sp, i) = fd;
    if (fstat(fd, &st) < 0) { rc = fail(err, -errno, "spool %s/%s", dir, spool_subs[i].name); goto bad; }
    ident_set(&sp->idsub[i], &st);
  }
  /* maildrop/ is made by whoever sets up unprivileged submission (its group:
     make install, the package), never here; when it is there, its own rule */
  {
    int fd = openat(sp->dirfd, "maildrop", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    snprintf(what, sizeof what, "spool %s/maildrop", dir);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
      rc = fail(err, MH_EUNSAFE, "%s is a symbolic link or a file, not a folder", what);
      goto bad;
    }
    if (fd >= 0) {
      rc = folder_check(fd, what, FOLDER_DROPBOX, err);
      close(fd);
      if (rc) goto bad;
    }
  }
  sp->followed = mono_us();   /* all just opened: the first look is due in FOLLOW_US */
  *out = sp;
  return 0;
bad:
  mh_spool_close(sp);
  return rc;
}

void mh_spool_close(mh_spool *sp) {
  if (sp) { free(sp->dropin_from); free(sp->dropin_domain); mh_spool_names_free(sp->names); }
  if (!sp) return;
  if (sp->dirfd >= 0) close(sp->dirfd);
  if (sp->tmpfd >= 0) close(sp->tmpfd);
  if (sp->pickupfd >= 0) close(sp->pickupfd);
  if (sp->failedfd >= 0) close(sp->failedfd);
  if (sp->corruptfd >= 0) close(sp->corruptfd);
  if (sp->statefd >= 0) close(sp->statefd);
  if (sp->lockfd >= 0) close(sp->lockfd);
  if (sp->jfd >= 0) close(sp->jfd);
  if (sp->xfd >= 0) close(sp->xfd);
  free(sp->jscur);
  free(sp->jsold);
  free(sp->jcur);
  free(sp->jold);
  free(sp->jicur);
  free(sp->jiold);
  free(sp->linos);
  free(sp->listed);
  free(sp->stated);
  free(sp->touched);
  for (size_t i = 0; i < sp->nnotes; i++) free(sp->notes[i].name);
  free(sp->notes);
  pthread_mutex_destroy(&sp->mu);
  pthread_mutex_destroy(&sp->amu);
  pthread_mutex_destroy(&sp->fmu);
  pthread_mutex_destroy(&sp->jmu);
  pthread_cond_destroy(&sp->jcv);
  pthread_mutex_destroy(&sp->lmu);
  free(sp->dir);
  free(sp);
}

/* The nameless way: O_TMPFILE in tmp/, flock, link in as NAME (linkat with
** AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; else through /proc/self/fd).  A
** crash before the link leaves nothing.  0 with *out, -EEXIST, or another
** -errno when the file system or the kernel cannot (the caller falls back). */
static int create_tmp_nameless(mh_spool *sp, const char *name, int *out) {
  char proc[64];
  int fd = fault_at("tmpfile") ? -1 : openat(sp->tmpfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  TEST_POINT("tmp-created");
  while (flock(fd, LOCK_EX) < 0) {   /* nobody else can reach it: never waits */
    if (errno != EINTR) { int e = -errno; close(fd); return e; }
  }
  if (linkat(fd, "", sp->tmpfd, name, AT_EMPTY_PATH) == 0) { *out = fd; return 0; }
  if (errno == EEXIST) { close(fd); return -EEXIST; }
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, proc, sp->tmpfd, name, AT_SYMLINK_FOLLOW) == 0) { *out = fd; return 0; }
  int e = -errno;
  close(fd);
  return e;
}

/* Creates tmp/NAME for writing (0600), already flocked by the time anything
** can see NAME (see SWEEP_FRESH): nameless first, else as tmp/w.PID.NAME
** (O_EXCL), flocked, renamed to NAME.  0 with *out, or -errno (nothing left
** behind). */
static int create_tmp(mh_spool *sp, const char *name, int *out) {
  char wname[300];
  int fd, rc;
  *out = -1;
  rc = create_tmp_nameless(sp, name, out);
  if (rc == 0 || rc == -EEXIST) return rc;
  if (snprintf(wname, sizeof wname, CREATING "%ld.%s", (long)getpid(), name) >= (int)sizeof wname)
    return -ENAMETOOLONG;
  fd = openat(sp->tmpfd, wname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  TEST_POINT("tmp-created-named");
  /* blocking: a sweep may hold it for an instant (it leaves a young w. file) */
  while (flock(fd, LOCK_EX) < 0) {
    if (errno != EINTR) { rc = -errno; goto bad; }
  }
  TEST_POINT("tmp-locked");
  if ((rc = rename_new(sp->tmpfd, wname, sp->tmpfd, name))) goto bad;
  *out = fd;
  return 0;
bad:
  close(fd);
  unlinkat(sp->tmpfd, wname, 0);
  return rc;
}

const char *mh_spool_dir(const mh_spool *sp) { return sp->dir; }

int mh_spool_set_dropin_from(mh_spool *sp, const char *addr, const char *domain) {
  char *c = NULL, *d = NULL;
  if (addr && mh_addr_check(addr, 0)) return MH_EBADADDR;
  /* a domain is what follows the @ of an address: checked as one */
  if (domain) {
    char probe[300];
    if (!*domain || strlen(domain) > 253 || strchr(domain, '@')) return MH_EBADADDR;
    snprintf(probe, sizeof probe, "x@%s", domain);
    if (mh_addr_check(probe, 0)) return MH_EBADADDR;
  }
  if ((addr && !(c = strdup(addr))) || (domain && !(d = strdup(domain)))) {
    free(c);
    return MH_ENOMEM;
  }
  /* under mu: a scan on a pool thread may be adopting (dropin_sender copies them) */
  pthread_mutex_lock(&sp->mu);
  free(sp->dropin_from);
  free(sp->dropin_domain);
  sp->dropin_from = c;
  sp->dropin_domain = d;
  pthread_mutex_unlock(&sp->mu);
  return 0;
}

/* The sender of a drop-in that names none (no X-Sender, no usable From):
** the settings' `from`, else the file's owner's login (uidN without one) at
** default_domain, else at the host name; what `mailhook sendmail` gives a
** caller without `from` (lua/mailhook/submit.lua: its login, qualified), and
** Postfix's pickup gives a maildrop file (its owner).  Never the null sender
** <>: that is a bounce, refused by some servers and never bounced itself. */
static void dropin_sender(mh_spool *sp, uid_t owner, char *out, size_t cap) {
  char host[256] = "", login[128];
  struct passwd pw, *res = NULL;
  char pwbuf[4096];
  pthread_mutex_lock(&sp->mu);
  if (sp->dropin_from) {
    snprintf(out, cap, "%s", sp->dropin_from);
    pthread_mutex_unlock(&sp->mu);
    return;
  }
  if (sp->dropin_domain) snprintf(host, sizeof host, "%s", sp->dropin_domain);
  pthread_mutex_unlock(&sp->mu);
  if (!*host && (gethostname(host, sizeof host - 1) || !*host)) snprintf(host, sizeof host, "localhost");
  if (getpwuid_r(owner, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && res->pw_name[0] &&
      !strpbrk(res->pw_name, "@ <>\"\\()[],;:"))
    snprintf(login, sizeof login, "%s", res->pw_name);
  else
    snprintf(login, sizeof login, "uid%lu", (unsigned long)owner);
  snprintf(out, cap, "%s@%s", login, host);
  if (mh_addr_check(out, 0)) snprintf(out, cap, "uid%lu@localhost", (unsigned long)owner);
}

/* ------------------------------------------- a drop-in's local recipients */

struct names_entry { char *name; char *val; int is_error; };   /* val: LF-separated, or why */
struct mh_spool_names {
  int refs;                    /* the spool's, plus adoptions under way (under the spool's mu) */
  char *domain;                /* NAME@domain when no entry says otherwise */
  struct names_entry *v;       /* the aliases, each resolved */
  size_t n;
  struct names_entry other;    /* every other name (the aliases' default:, admin_address) */
  int has_other;
  char **locals;               /* the domains that mean this machine (localhost, the host name) */
  size_t nlocals;
};

mh_spool_names *mh_spool_names_new(const char *domain) {
  mh_spool_names *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  if (!(n->domain = strdup(domain ? domain : "localhost"))) { free(n); return NULL; }
  n->refs = 1;
  return n;
}

int mh_spool_names_add(mh_spool_names *n, const char *name, const char *addrs, int is_error) {
  struct names_entry e = { NULL, strdup(addrs), is_error };
  if (!e.val || (name && !(e.name = strdup(name)))) { free(e.val); return MH_ENOMEM; }
  if (!name) {
    free(n->other.val);
    n->other = e;
    n->has_other = 1;
    return 0;
  }
  struct names_entry *nv = realloc(n->v, (n->n + 1) * sizeof *nv);
  if (!nv) { free(e.val); free(e.name); return MH_ENOMEM; }
  n->v = nv;
  n->v[n->n++] = e;
  return 0;
}

int mh_spool_names_local(mh_spool_names *n, const char *domain) {
  char **nl = realloc(n->locals, (n->nlocals + 1) * sizeof *nl);
  if (!nl) return MH_ENOMEM;
  n->locals = nl;
  if (!(nl[n->nlocals] = strdup(domain))) return MH_ENOMEM;
  n->nlocals++;
  return 0;
}

void mh_spool_names_free(mh_spool_names *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) { free(n->v[i].name); free(n->v[i].val); }
  for (size_t i = 0; i < n->nlocals; i++) free(n->locals[i]);
  free(n->v);
  free(n->locals);
  free(n->other.val);
  free(n->domain);
  free(n);
}

void mh_spool_set_dropin_names(mh_spool *sp, mh_spool_names *n) {
  mh_spool_names *old;
  pthread_mutex_lock(&sp->mu);
  old = sp->names;
  sp->names = n;
  if (old && --old->refs) old = NULL;   /* an adoption still uses it: freed by its names_put */
  pthread_mutex_unlock(&sp->mu);
  mh_spool_names_free(old);
}

/* The table for one parse (a scan may adopt on a pool thread while a reload
** sets a new one): a reference, given back by names_put. */
static mh_spool_names *names_get(mh_spool *sp) {
  pthread_mutex_lock(&sp->mu);
  mh_spool_names *n = sp->names;
  if (n) n->refs++;
  pthread_mutex_unlock(&sp->mu);
  return n;
}

static void names_put(mh_spool *sp, mh_spool_names *n) {
  if (!n) return;
  pthread_mutex_lock(&sp->mu);
  int last = --n->refs == 0;
  pthread_mutex_unlock(&sp->mu);
  if (last) mh_spool_names_free(n);
}

/* submit.lua's is_local_name: a bare name a program may use as an address. */
static int is_local_name(const char *s, size_t n) {
  if (!n || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && !strchr("!#$%&'*+/=?^_`{|}~.-", c)) return 0;
  }
  return 1;
}

static int env_add(mh_env *env, const char *a, size_t n);

static int names_add_list(mh_env *env, const char *list, char *err) {
  for (const char *p = list; *p;) {
    const char *e = strchr(p, '\n');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l) {
      int rc = env_add(env, p, l);
      if (rc) return fail(err, rc, "address list");
    }
    p += l + (e != NULL);
  }
  return 0;
}

/* A drop-in's recipient a: a local one (no @, or @ a domain of this machine)
** goes where `mailhook sendmail -t` sends it (the table nm).  1: not a local
** name (the caller checks it as an address); 0: its recipients added; an
** error naming why it has none (the file goes to corrupt/ saying so). */
static int names_resolve(const mh_spool_names *nm, const char *a, mh_env *env, char *err) {
  const char *at = strrchr(a, '@');
  size_t ln = at ? (size_t)(at - a) : strlen(a);
  if (at) {
    size_t i;
    for (i = 0; i < nm->nlocals && strcasecmp(at + 1, nm->locals[i]); i++) {}
    if (i == nm->nlocals || !is_local_name(a, ln)) return 1;
  } else if (!is_local_name(a, ln)) {
    return fail(err, MH_EBADADDR, "'%s' is not an address", a);
  }
  for (size_t i = 0; i < nm->n; i++)
    if (strlen(nm->v[i].name) == ln && !strncasecmp(nm->v[i].name, a, ln)) {
      if (nm->v[i].is_error) return fail(err, MH_EBADADDR, "local name '%.*s': %s", (int)ln, a, nm->v[i].val);
      return names_add_list(env, nm->v[i].val, err);
    }
  if (nm->has_other) {
    if (nm->other.is_error) return fail(err, MH_EBADADDR, "local name '%.*s': %s", (int)ln, a, nm->other.val);
    return names_add_list(env, nm->other.val, err);
  }
  char q[600];
  const char *why = NULL;
  snprintf(q, sizeof q, "%.*s@%s", (int)ln, a, nm->domain);
  if (mh_addr_check(q, 0)) return fail(err, MH_EBADADDR, "local name '%.*s': '%s' is no address", (int)ln, a, q);
  /* the checks finish_mailbox gives a drop-in's address, as `sendmail -t`
     gives the name it qualifies: a local part over 64 characters became a
     recipient here and an item left out there */
  if (env->keep_bad && mh_msg_check_addr(q, strlen(q), &why) && why && !strstr(why, "non-ASCII"))
    return fail(err, MH_EBADADDR, "'%s': %s", q, why);
  int rc = env_add(env, q, strlen(q));
  return rc ? fail(err, rc, "address list") : 0;
}

/* ------------------------------------------------ the delivered journal
**
** After the server's 250 the deliverer records the message's id with one
** append to DIR/delivered (mh_spool_mark).  From then on the message is
** delivered for every reader of the spool: scan, load, the listing, remove
** and retry leave it out.  A crash of the process cannot undo the record (it
** is in the page cache once write(2) returned), as it could not undo an
** unlink.  The files themselves are removed later, in batches, off the
** deliverer's path (mh_spool_purge): DIR/delivered is renamed
** DIR/delivered.old, its messages unlinked, pickup/ fsynced, delivered.old
** removed.  The deliverer that takes the lock next finishes what a crash left
** (journal_replay, from mh_spool_lock).
**
** Why: the unlink was half of the deliverer's time per message (on ext4
** mounted with discard it frees the blocks there and then), and it sat
** between one message's 250 and the next one's data, where a crash must find
** the first one gone.  An id names one message for ever (the seq clock), so a
** record can never remove another message.  A power cut may lose records not
** yet fsynced (mh_spool_sync, which the deliverer runs every few messages):
** those messages are sent again, never lost, as with unsynced unlinks.
*/
#define JOURNAL "delivered"
#define JOURNAL_OLD "delivered.old"
#define JOURNAL_REC 17              /* 16 hex digits and a newline */
#define JOURNAL_MAX_IDS 65536       /* records not yet removed: past this, mark refuses and
                                       the caller unlinks (a purge that cannot keep up) */
#define JOURNAL_READ_MAX ((int64_t)8 << 20)   /* what a reader takes of one journal file */

/* In-place heapsort: qsort would allocate a copy of the array (glibc's merge
** sort), doubling the listing's memory. */
static void sift(uint64_t *v, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && v[l] > v[m]) m = l;
    if (l + 1 < n && v[l + 1] > v[m]) m = l + 1;
    if (m == i) return;
    uint64_t t = v[i]; v[i] = v[m]; v[m] = t;
    i = m;
  }
}

/* v[0..n) in ascending order.  A heap sort (no recursion, no memory), after
** one look whether v is in order already: the delivered journal, sorted at
** each scan (journal_snapshot), is appended in the order the messages went,
** which is the ids' order in a drain (oldest first), and the heap sort of
** 2,000 ids in order was 270,000 instructions a scan (callgrind; issue 16). */
static void sort_ids(uint64_t *v, size_t n) {
  size_t k = 1;
  while (k < n && v[k - 1] <= v[k]) k++;
  if (k >= n) return;
  for (size_t i = n / 2; i-- > 0;) sift(v, n, i);
  for (k = n; k > 1; k--) {
    uint64_t t = v[0]; v[0] = v[k - 1]; v[k - 1] = t;
    sift(v, k - 1, 0);
  }
}

/* The value of 8 lowercase hex digits at s, 8 at a time: each byte's low
** nibble, plus 9 for a letter (bit 6: 'a'-'f' are 0x61-0x66, digits 0x3X);
** then the pairs joined, the first digit the most significant. */
static uint32_t hex8(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  /* s[0] in the low byte, whatever the byte order (one load on x86) */
  uint64_t x = (uint64_t)u[0] | (uint64_t)u[1] << 8 | (uint64_t)u[2] << 16 | (uint64_t)u[3] << 24 |
               (uint64_t)u[4] << 32 | (uint64_t)u[5] << 40 | (uint64_t)u[6] << 48 | (uint64_t)u[7] << 56;
  x = (x & 0x0f0f0f0f0f0f0f0fu) + ((x >> 6) & 0x0101010101010101u) * 9;
  x = ((x << 4) | (x >> 8)) & 0x00ff00ff00ff00ffu;   /* byte 2k: digit 2k << 4 | digit 2k+1 */
  return (uint32_t)((x & 0xff) << 24 | ((x >> 16) & 0xff) << 16 | ((x >> 32) & 0xff) << 8 | (x >> 48));
}

/* A canonical id's value (unsigned: any 16 hex digits fit).  Several times a
** message (the journal, the listing, each scan's entries): a digit loop was
** some 150 instructions a call. */
static uint64_t id_value(const char *id) {
  return (uint64_t)hex8(id) << 32 | hex8(id + 8);
}

static int ids_push(uint64_t **v, size_t *n, size_t *cap, uint64_t x) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    uint64_t *t = realloc(*v, nc * sizeof *t);
    if (!t) return MH_ENOMEM;
    *v = t;
    *cap = nc;
  }
  (*v)[(*n)++] = x;
  return 0;
}

static int ids_has(const uint64_t *v, size_t n, uint64_t x);

/* Appends the ids of the journal file NAME to *v (none when it is missing).
** Only whole records count: a torn last line (a power cut) is no record. */
static int journal_read(int dirfd, const char *name, uint64_t **v, size_t *n, size_t *cap) {
  char *buf = NULL, id[MH_SPOOL_IDLEN];
  size_t len = 0, p = 0;
  int rc = mh_fsutil_read(dirfd, name, 0, JOURNAL_READ_MAX, &buf, &len, NULL);
  if (rc == -ENOENT) return 0;
  if (rc) return rc;
  while (p < len && rc == 0) {
    const char *nl = memchr(buf + p, '\n', len - p);
    if (!nl) break;
    size_t e = (size_t)(nl - buf);
    if (e - p == 16) {
      memcpy(id, buf + p, 16);
      id[16] = '\0';
      if (mh_spool_is_id(id)) rc = ids_push(v, n, cap, id_value(id));
    }
    p = e + 1;
  }
  free(buf);
  return rc;
}

/* The ids recorded and not removed yet, sorted (*out: caller frees).  The lock
** holder knows them; any other process reads the files: the current one
** first, so that a purge renaming it meanwhile leaves its records in the old
** one, read next.  A reader that cannot read them sees those messages as
** still queued, a view a moment old, as before their 250. */
static void journal_snapshot(mh_spool *sp, uint64_t **out, size_t *n) {
  uint64_t *v = NULL;
  size_t nv = 0, cap = 0;
  if (sp->lockfd >= 0) {
    pthread_mutex_lock(&sp->jmu);
    cap = sp->njcur + sp->njold;
    if (cap && (v = malloc(cap * sizeof *v))) {
      /* the older file's records first: in a drain the whole is then in
         order already, and sort_ids has only to look (the order of v is
         the sort's, whatever it was) */
      if (sp->njold) memcpy(v, sp->jold, sp->njold * sizeof *v);
      if (sp->njcur) memcpy(v + sp->njold, sp->jcur, sp->njcur * sizeof *v);
      nv = cap;
    }
    pthread_mutex_unlock(&sp->jmu);
    sort_ids(v, nv);
  } else if (mh_spool_journal_read(sp->dirfd, &v, &nv)) {
    v = NULL;
    nv = 0;
  }
  *out = v;
  *n = nv;
}

int mh_spool_journal_read(int dirfd, uint64_t **out, size_t *n) {
  uint64_t *v = NULL;
  size_t nv = 0, cap = 0;
  int rc = journal_read(dirfd, JOURNAL, &v, &nv, &cap);
  if (!rc) rc = journal_read(dirfd, JOURNAL_OLD, &v, &nv, &cap);
  if (rc) { free(v); *out = NULL; *n = 0; return rc; }
  sort_ids(v, nv);
  *out = v;
  *n = nv;
  return 0;
}

int mh_spool_journal_has(const uint64_t *ids, size_t n, const char *id) {
  return n && mh_spool_is_id(id) && ids_has(ids, n, id_value(id));
}

static int ids_has(const uint64_t *v, size_t n, uint64_t x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t m = lo + (hi - lo) / 2;
    if (v[m] == x) return 1;
    if (v[m] < x) lo = m + 1; else hi = m;
  }
  return 0;
}

/* Whether the canonical id is recorded as delivered (a single lookup). */
static int journaled(mh_spool *sp, const char *id) {
  uint64_t x, *v;
  size_t n;
  int has = 0;
  if (!mh_spool_is_id(id)) return 0;
  x = id_value(id);
  if (sp->lockfd >= 0) {
    pthread_mutex_lock(&sp->jmu);
    if (x > sp->jmax || (!sp->njcur && !sp->njold)) { pthread_mutex_unlock(&sp->jmu); return 0; }
    for (size_t i = sp->njcur; i-- > 0 && !has;) has = sp->jcur[i] == x;   /* the newest first */
    for (size_t i = 0; i < sp->njold && !has; i++) has = sp->jold[i] == x;
    pthread_mutex_unlock(&sp->jmu);
    return has;
  }
  journal_snapshot(sp, &v, &n);
  has = ids_has(v, n, x);
  free(v);
  return has;
}

/* The purge's map of the ids of its batch to the inodes pickup/ holds under
** them now: kv[0..n) as {value, inode} (inode 0: not there), found through a
** hash of 32-bit slots (index + 1, 0 empty) at a load of at most 2/3.  It
** holds the batch's ids only (a few thousand), never the whole folder: a map
** of every file in pickup/ cost a 20,000-message backlog 1 MB per purge. */
typedef struct { uint64_t (*kv)[2]; size_t n, cap; uint32_t *slot; } inomap;
static size_t inomap_hash(const inomap *m, uint64_t v) {
  return (size_t)((v * 0x9E3779B97F4A7C15ULL) >> 20) & (m->cap - 1);
}
/* 0, or MH_ENOMEM (then m->slot is NULL and nothing is found) */
static int inomap_build(inomap *m) {
  m->cap = 64;
  while (2 * m->cap < 3 * m->n) m->cap *= 2;
  if (m->n >= UINT32_MAX || !(m->slot = calloc(m->cap, sizeof *m->slot))) return MH_ENOMEM;
  for (size_t i = 0; i < m->n; i++) {
    size_t h = inomap_hash(m, m->kv[i][0]);
    while (m->slot[h]) h = (h + 1) & (m->cap - 1);
    m->slot[h] = (uint32_t)(i + 1);
  }
  return 0;
}
/* v's entry in kv, or NULL when v is not in the map */
static uint64_t *inomap_find(const inomap *m, uint64_t v) {
  if (!m->slot) return NULL;
  for (size_t h = inomap_hash(m, v); m->slot[h]; h = (h + 1) & (m->cap - 1))
    if (m->kv[m->slot[h] - 1][0] == v) return m->kv[m->slot[h] - 1];
  return NULL;
}
/* v's inode now, or 0 when no file is there under it (or v is not mapped) */
static uint64_t inomap_get(const inomap *m, uint64_t v) {
  const uint64_t *e = inomap_find(m, v);
  return e ? e[1] : 0;
}

static int to_corrupt(mh_spool *sp, int dirfd, const char *name, const char *why);   /* "load, list" */

/* What pickup/ holds now under the ids of m (built, every inode 0): each
** one's inode (readdir's d_ino, as the scan's: one pass over the folder per
** purge, no look per name).  0 or a negative code. */
static int pickup_inodes(mh_spool *sp, inomap *m) {
  int dfd = dir_reopen(sp->pickupfd);
  DIR *d;
  struct dirent *de;
  if (dfd < 0) return -errno;
  if (!(d = fdopendir(dfd))) { close(dfd); return -errno; }
  while ((de = readdir(d))) {
    char id[MH_SPOOL_IDLEN];
    uint64_t *e;
    if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".eml")) continue;
    memcpy(id, de->d_name, 16);
    id[16] = '\0';
    if (mh_spool_is_id(id) && (e = inomap_find(m, id_value(id)))) e[1] = (uint64_t)de->d_ino;
  }
  closedir(d);
  return 0;
}

/* Unlinks the messages v[0..n) from pickup/, and the sidecars of those that
** may have one (all of them for a replay: a dead process's records).  A
** message already gone is fine (a crash after its unlink; `queue rm` while
** it was sent: said when report is set, see mh_spool_mark).  0 or the first
** -errno. */
#define GONE_SAID 4         /* "removed meanwhile" lines per thread; past that, counted */
typedef struct {
  mh_spool *sp;
  const uint64_t *v;
  size_t n;
  int sidecars;         /* unlink every ID.state too */
  const uint64_t *side; /* else only those of these ids (sorted) */
  size_t nside;
  int report;           /* say which were gone already (this handle's records, first try) */
  const uint64_t *ino;  /* per id of v: the inode of the file sent (0: unknown), or NULL */
  const inomap *now;    /* what pickup/ holds under each id now (readdir), when ino is given */
  long removed, gone;
  int rc;
  char what[48];        /* what failed first, for the message: "unlink pickup/ID.eml" */
} unlink_job;

static void *unlink_run(void *arg) {
  unlink_job *j = (unlink_job *)arg;
  for (size_t i = 0; i < j->n; i++) {
    char name[32];
    hex16(name, j->v[i]);
    memcpy(name + 16, ".eml", 5);
    uint64_t was = j->ino ? j->ino[i] : 0, is = was ? inomap_get(j->now, j->v[i]) : 0;
    if (was && is && is != was) {
      /* another file was renamed over the name since its load (an edit:
         `sed -i`, a copy): not the one the server took.  Kept for a human,
         never removed unseen, nor sent under an id that is delivered */
      char why[300];
      snprintf(why, sizeof why, "it was replaced after %.16s was loaded and sent (another file under its "
               "name, inode %llu, not %llu): kept, it may not be the message the server took",
               name, (unsigned long long)is, (unsigned long long)was);
      to_corrupt(j->sp, j->sp->pickupfd, name, why);
    } else if (unlinkat(j->sp->pickupfd, name, 0) == 0) j->removed++;
    else if (errno != ENOENT && !j->rc) {
      j->rc = -errno;
      snprintf(j->what, sizeof j->what, "unlink pickup/%s", name);
    }
    else if (errno == ENOENT && j->report && j->gone++ < GONE_SAID)
      mh_info("spool %s: %.16s was delivered; it had been removed meanwhile (mailhook queue rm)",
              j->sp->dir, name);
    if (!j->sidecars && !ids_has(j->side, j->nside, j->v[i])) continue;
    memcpy(name + 16, ".state", 7);
    if (unlinkat(j->sp->pickupfd, name, 0) < 0 && errno != ENOENT && !j->rc) {
      j->rc = -errno;
      snprintf(j->what, sizeof j->what, "unlink pickup/%s", name);
    }
  }
  return NULL;
}

/* journal_remove: the unlinks of a batch, then one fsync of pickup/.  An
** unlink frees the file's blocks there and then, and on ext4 mounted with
** discard it waits for the disk to take the discard (100-250 us for a 1 KB
** file here); a big batch is shared by up to PURGE_THREADS threads, whose
** waits overlap (5,000 files: 7,500/s with one, 12,000/s with four).
** what (48 bytes, may be NULL): on failure, the step that failed first. */
#define PURGE_THREADS 4
#define PURGE_SHARE 512     /* files per thread below which one thread does it all */
static int journal_remove(mh_spool *sp, const uint64_t *v, size_t n, int sidecars, const uint64_t *side,
                          size_t nside, int report, const uint64_t *inos, long *removed, char *what) {
  unlink_job jobs[PURGE_THREADS];
  inomap now = { NULL, 0, 0, NULL };
  size_t known = 0;
  for (size_t i = 0; inos && i < n; i++) known += inos[i] != 0;
  if (known && (now.kv = malloc(known * sizeof *now.kv))) {
    for (size_t i = 0; i < n; i++)
      if (inos[i]) { now.kv[now.n][0] = v[i]; now.kv[now.n++][1] = 0; }
    if (inomap_build(&now) == 0 && pickup_inodes(sp, &now) < 0) { free(now.slot); now.slot = NULL; }
  }
  if (!now.slot) inos = NULL;   /* no look was possible: by name, as before */
  pthread_t th[PURGE_THREADS];
  int started[PURGE_THREADS] = { 0 }, rc = 0;
  size_t k = n / PURGE_SHARE, at = 0;
  if (k < 1) k = 1;
  if (k > PURGE_THREADS) k = PURGE_THREADS;
  for (size_t i = 0; i < k; i++) {
    size_t share = n / k + (i < n % k);
    jobs[i] = (unlink_job){ sp, v + at, share, sidecars, side, nside, report, inos ? inos + at : NULL, &now,
                            0, 0, 0, "" };
    at += share;
    /* job 0 runs here; a thread that cannot start leaves its share to this one */
    if (i > 0) started[i] = pthread_create(&th[i], NULL, unlink_run, &jobs[i]) == 0;
  }
  unlink_run(&jobs[0]);
  for (size_t i = 1; i < k; i++) {
    if (started[i]) pthread_join(th[i], NULL);
    else unlink_run(&jobs[i]);
  }
  long more = 0;
  for (size_t i = 0; i < k; i++) {
    *removed += jobs[i].removed;
    if (jobs[i].gone > GONE_SAID) more += jobs[i].gone - GONE_SAID;
    if (!rc && (rc = jobs[i].rc) && what) snprintf(what, 48, "%s", jobs[i].what);
  }
  if (more)
    mh_info("spool %s: %ld more delivered message(s) had been removed meanwhile (mailhook queue rm, or "
            "by hand)", sp->dir, more);
  free(now.kv);
  free(now.slot);
  if (n && !rc && (rc = fsync_fd(sp->pickupfd)) && what) snprintf(what, 48, "fsync pickup/");
  return rc;
}

/* At the lock: what a deliverer recorded and did not remove (it was killed,
** or stopped with a purge pending) is removed now.  Records that cannot be
** read make their messages go again (the file is set aside to corrupt/ so that
** new records start clean); a removal that fails is tried again by the next
** purge (the records stay, in memory and on disk). */
static void journal_replay(mh_spool *sp) {
  static const char *const names[2] = { JOURNAL_OLD, JOURNAL };
  uint64_t *v = NULL;
  size_t n = 0, cap = 0;
  long removed = 0;
  int rc;
  for (int i = 0; i < 2; i++) {
    if ((rc = journal_read(sp->dirfd, names[i], &v, &n, &cap)) == 0) continue;
    mh_warn("spool %s: the delivered journal %s cannot be read (%s): the messages it records may be "
            "sent again; it is moved to corrupt/", sp->dir, names[i], mh_strerror(rc));
    if (renameat(sp->dirfd, names[i], sp->corruptfd, names[i]) < 0) unlinkat(sp->dirfd, names[i], 0);
  }
  if (!n) {   /* nothing recorded: empty files of a clean stop */
    unlinkat(sp->dirfd, JOURNAL_OLD, 0);
    unlinkat(sp->dirfd, JOURNAL, 0);
    free(v);
    return;
  }
  sort_ids(v, n);
  rc = journal_remove(sp, v, n, 1, NULL, 0, 0, NULL, &removed, NULL);   /* every sidecar: a dead process's records */
  if (rc == 0) {
    unlinkat(sp->dirfd, JOURNAL_OLD, 0);
    unlinkat(sp->dirfd, JOURNAL, 0);
    fsync(sp->dirfd);
    free(v);
    if (removed)
      mh_info("spool %s: removed %ld delivered message(s) that the last deliverer had recorded but not "
              "removed yet", sp->dir, removed);
    return;
  }
  mh_warn("spool %s: cannot remove the delivered messages recorded in its journal: %s (they are not "
          "sent again; tried again later)", sp->dir, mh_strerror(rc));
  pthread_mutex_lock(&sp->jmu);
  sp->jold = v;
  free(sp->jiold);
  sp->jiold = NULL;   /* a dead process's loads: not known */
  sp->njold = n;
  sp->jsall_old = 1;     /* a dead process's records: their sidecars too */
  sp->jmax = v[n - 1];   /* sorted */
  pthread_mutex_unlock(&sp->jmu);
}

static int listing_lookup(mh_spool *sp, const char *id, int *state, char *lx, int *lx_ok,
                          uint64_t *ino);   /* "the listing" */
static uint64_t loaded_take(mh_spool *sp, const char *id);
static void loaded_note(mh_spool *sp, const char *id, uint64_t ino);

/* mh_spool_mark, and mh_spool_mark_memory (write_it = 0): the record kept in
   memory only, no write.  A record that fails gives back the inode it took
   (loaded_take): the record made instead (mh_spool_mark_memory, after the
   unlink failed too) keeps the purge's look at the file it removes. */
static int mark(mh_spool *sp, const char *id, int write_it, char *err) {
  char rec[JOURNAL_REC];
  int rc = 0;
  if (!mh_spool_is_id(id)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if (sp->lockfd < 0)
    return fail(err, MH_EINVAL, "spool %s: only the deliverer (the lock holder) records deliveries", sp->dir);
  /* No look whether the file is still there (an fstat per message, a tenth
     of the kernel's part of the drain; issue 16): a `queue rm` that raced
     the send gets its record all the same, and that is harmless.  The id
     names that message for ever (the id clock, RENAME_NOREPLACE), so the
     record removes nothing else; readers leave a recorded id out, as `queue
     rm` left it out; the purge finds its file (and sidecar) gone, which it
     takes as done, and says that it was removed meanwhile (jold_live).  fd
     (the file held open) is no longer looked at. */
  memcpy(rec, id, 16);
  rec[16] = '\n';
  uint64_t ino = loaded_take(sp, id);   /* the file its load read (0: unknown) */
  int state, side = !listing_lookup(sp, id, &state, NULL, NULL, NULL) || state;   /* may it have a sidecar? */
  pthread_mutex_lock(&sp->jmu);
  if (sp->njcur + sp->njold >= JOURNAL_MAX_IDS) {
    rc = fail(err, MH_ELIMIT, "spool %s: %d delivered messages wait to be removed", sp->dir, JOURNAL_MAX_IDS);
    goto out;
  }
  if (sp->njcur == sp->capcur) {
    size_t nc = sp->capcur ? sp->capcur * 2 : 256;
    uint64_t *t = realloc(sp->jcur, nc * sizeof *t), *ti;
    if (!t) { rc = fail(err, MH_ENOMEM, "spool %s: %s", sp->dir, JOURNAL); goto out; }
    sp->jcur = t;
    if (!(ti = realloc(sp->jicur, nc * sizeof *ti))) { rc = fail(err, MH_ENOMEM, "spool %s: %s", sp->dir, JOURNAL); goto out; }
    sp->jicur = ti;
    sp->capcur = nc;
  }
  if (!write_it) goto noted;
  if (sp->jfd < 0) {
    int jfd = mh_fsutil_open(sp->dirfd, JOURNAL, O_WRONLY | O_APPEND | O_CREAT, 0600, 0, NULL);
    if (jfd < 0) { rc = fail(err, jfd, "spool %s: %s", sp->dir, JOURNAL); goto out; }
    sp->jfd = jfd;
    sp->jnew = 1;
  }
  ssize_t w = fault_at("journal") ? -1 : write(sp->jfd, rec, sizeof rec);
  if (w != (ssize_t)sizeof rec) {
    int e = w < 0 ? errno : ENOSPC;
    /* a part of a record (a full disk) would join the next one into a line
       that is no record: cut it off, or start a new file */
    off_t end = w > 0 ? lseek(sp->jfd, 0, SEEK_END) : -1;
    if (w > 0 && (end < w || ftruncate(sp->jfd, end - w) < 0)) {
      close(sp->jfd);
      sp->jfd = -1;
      if (sp->njcur == 0) unlinkat(sp->dirfd, JOURNAL, 0);
    }
    rc = fail(err, -e, "spool %s: write %s", sp->dir, JOURNAL);
    goto out;
  }
noted:
  sp->jcur[sp->njcur] = id_value(id);
  sp->jicur[sp->njcur] = ino;
  if (sp->jcur[sp->njcur] > sp->jmax) sp->jmax = sp->jcur[sp->njcur];
  sp->njcur++;
  /* its sidecar goes with its message, at the purge: never before the record
     is durable (a power cut that lost the record sends the message again,
     with its sidecar: never to a recipient done before).  None to unlink
     when the listing knows there is none; one written after all (`queue
     retry` racing the record) is an orphan that a later scan removes. */
  if (side && ids_push(&sp->jscur, &sp->njscur, &sp->capscur, id_value(id))) sp->jsall_cur = 1;
out:
  pthread_mutex_unlock(&sp->jmu);
  if (rc && ino) loaded_note(sp, id, ino);
  return rc;
}

int mh_spool_mark(mh_spool *sp, const char *id, int fd, char *err) {
  (void)fd;
  return mark(sp, id, 1, err);
}

int mh_spool_mark_memory(mh_spool *sp, const char *id, char *err) {
  return mark(sp, id, 0, err);
}

long mh_spool_purge(mh_spool *sp, char *err) {
  long removed = 0;
  int rc = 0;
  if (sp->lockfd < 0) return 0;
  pthread_mutex_lock(&sp->jmu);
  /* one at a time; the one asked while another runs waits for it, then
     removes what was recorded since: when it returns, every record made
     before the call is purged (two workers going idle one after the other
     each ask; returning at once left the second one's records for good) */
  while (sp->purging) pthread_cond_wait(&sp->jcv, &sp->jmu);
  if (!sp->njold && !sp->njcur) {
    pthread_mutex_unlock(&sp->jmu);
    return 0;
  }
  if (!sp->njold) {
    /* new records go to a new file from now on; the file renamed holds
       exactly the ids of jcur (appends take jmu) */
    if (renameat(sp->dirfd, JOURNAL, sp->dirfd, JOURNAL_OLD) < 0 && errno != ENOENT) {
      rc = -errno;
      pthread_mutex_unlock(&sp->jmu);
      return fail(err, rc, "spool %s: rename %s", sp->dir, JOURNAL);
    }
    if (sp->jfd >= 0) close(sp->jfd);
    sp->jfd = -1;
    sp->jold = sp->jcur;
    sp->njold = sp->njcur;
    free(sp->jiold);
    sp->jiold = sp->jicur;
    sp->jicur = NULL;
    sp->jcur = NULL;
    sp->njcur = sp->capcur = 0;
    free(sp->jsold);
    sort_ids(sp->jscur, sp->njscur);
    sp->jsold = sp->jscur; sp->njsold = sp->njscur; sp->jsall_old = sp->jsall_cur;
    sp->jscur = NULL; sp->njscur = sp->capscur = 0; sp->jsall_cur = 0;
    sp->jold_live = 1;   /* its first try: a file gone was removed meanwhile */
  }
  sp->purging = 1;
  uint64_t *v = sp->jold;    /* only a purge changes jold (and jsold), and this is the one */
  const uint64_t *inos = sp->jiold;
  size_t n = sp->njold, nside = sp->njsold;
  const uint64_t *side = sp->jsold;
  int all = sp->jsall_old, report = sp->jold_live;
  sp->jold_live = 0;   /* a try again after a failure finds its own unlinks gone */
  pthread_mutex_unlock(&sp->jmu);
  TEST_POINT("purge-renamed");
  char what[48] = "";
  rc = journal_remove(sp, v, n, all, side, nside, report, inos, &removed, what);
  TEST_POINT("purge-removed");
  if (rc == 0 && unlinkat(sp->dirfd, JOURNAL_OLD, 0) < 0 && errno != ENOENT) {
    rc = -errno;
    snprintf(what, sizeof what, "unlink %s", JOURNAL_OLD);
  }
  pthread_mutex_lock(&sp->jmu);
  if (rc == 0) {
    free(sp->jold);
    sp->jold = NULL;
    free(sp->jiold);
    sp->jiold = NULL;
    sp->njold = 0;
    free(sp->jsold);
    sp->jsold = NULL;
    sp->njsold = 0;
    sp->jsall_old = 0;
  }
  sp->purging = 0;
  pthread_cond_broadcast(&sp->jcv);
  pthread_mutex_unlock(&sp->jmu);
  return rc ? fail(err, rc, "spool %s: removing delivered messages%s%s", sp->dir, what[0] ? ": " : "", what)
            : removed;
}

size_t mh_spool_marked(mh_spool *sp) {
  size_t n;
  pthread_mutex_lock(&sp->jmu);
  n = sp->njcur + sp->njold;
  pthread_mutex_unlock(&sp->jmu);
  return n;
}

/* ------------------------------------------------------- the listing
**
** Loading a message the way any reader must costs two more name lookups
** than reading it: an fstatat before the open (mh_fsutil_open's step 1: what
** is under the name is not opened unless it is a regular file) and one for
** ID.state, which most messages never have (a lookup that fails: 3 us in a
** folder of 2,000).  For the deliverer they were a tenth of its time per
** message (issue 16).  Its own scan has just read both answers from pickup/
** (readdir's d_type; the sidecars' names), so the lock holder keeps them: a
** load of an id of the last scan skips the fstatat (the open, O_NONBLOCK |
** O_NOFOLLOW, and the first read (first_read: no fstat) still refuse a FIFO,
** a folder or a link swapped in since: never read) and reads ID.state only when the scan saw
** one, or when one may have been written since the scan began:
**  - by this handle (the holder's defer, fail: recorded in touched, by a
**    sequence number, until a scan that began after them is published);
**  - by any other handle (`queue retry` from the CLI, the console, mh.queue;
**    a defer through the Lua API without the lock): each bumps the counter
**    in DIR/sidecars after its sidecar is in pickup/ and before the message
**    is (retry moves ID.eml back from failed/ after it).  The holder reads
**    the counter before its readdir and at each load: while it has not
**    moved, every sidecar of pickup/ was there before the readdir began,
**    and readdir returns every name that was there when it began.  Once it
**    moved, nothing is known until the next scan.  (readdir gives no such
**    promise for names added while it runs: on ext4 it walks the folder in
**    hash order, and a retry's ID.state may land behind it and its ID.eml
**    ahead of it.)
** A scan that began before the published one is not published (its view is
** older than what touched was cut to).
*/

static int64_t parse_hex(const char *s, size_t n);   /* "ids" */

/* The longest wait for one of the spool's short flocks: DIR/seq (each new
** id: enqueue, hook, sendmail, an adoption), DIR/sidecars (a sidecar written
** without the deliverer lock) and DIR/state.lock (a sidecar's read-modify-
** write: defer, fail, retry).  Their holders keep them for microseconds
** (seq, sidecars: a pread and a pwrite) up to a few fsyncs (state.lock:
** state_write's, fail's rename and its two folder fsyncs), which a loaded
** disk stretches to a second or more: 10 s is generous for those and still
** bounded.  The wait was a blocking flock: a holder that was stopped
** (SIGSTOP, Ctrl-Z, a debugger, an admin's `flock DIR/seq sleep 1000`) held
** every intake with it, forever (`mailhook hook` never returned).  Now the
** operation fails with MH_ETIMEDOUT and a message naming the file and its
** holder's pid (from /proc/locks), and saying whether that one is stopped. */
#define LOCK_WAIT_MS 10000
#ifdef MH_TESTS
static int lock_wait_ms = LOCK_WAIT_MS;   /* test builds: test-spool-hostile.c shortens it */
#else
#define lock_wait_ms LOCK_WAIT_MS
#endif

/* flock(fd, LOCK_EX) on DIR/what, waited for at most lock_wait_ms: tried
** without blocking, then again after a pause growing from 1 ms to 50 ms (a
** holder of microseconds is had within the first pauses; a long wait costs
** 20 wakeups a second).  Polled: a blocked flock cannot be given a deadline
** (no signal of ours may reach a pool thread).  0; MH_ETIMEDOUT, err (when
** given) naming the file; or -errno. */
static int lock_bounded(mh_spool *sp, int fd, const char *what, char *err) {
  int64_t end = mono_us() + (int64_t)lock_wait_ms * 1000, left;
  long pause_us = 1000;
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return -errno;
    if ((left = end - mono_us()) <= 0) break;
    long us = left < pause_us ? (long)left : pause_us;
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);   /* cut short by a signal: the clock says what is left */
    if (pause_us < 50000) pause_us = pause_us * 2 < 50000 ? pause_us * 2 : 50000;
  }
  /* who holds it, when /proc/locks says: the administrator's next step
     (kill -CONT, or end it) needs the pid, and whether it is stopped */
  struct stat st;
  long pid = 0;
  if (fstat(fd, &st) == 0 && mh_fsutil_flock_holder(&st, 3, &pid) == 1) {
    int stopped = mh_fsutil_proc_stopped(pid);
    return fail(err, MH_ETIMEDOUT, "%s/%s: held by process %ld for more than %g s%s", sp->dir, what, pid,
                lock_wait_ms / 1000.0, stopped == 1 ? ", and it is stopped (kill -CONT it, or end it)" : "");
  }
  return fail(err, MH_ETIMEDOUT, "%s/%s: held by another process for more than %g s (one stopped "
              "while holding it?)", sp->dir, what, lock_wait_ms / 1000.0);
}

/* The counter of DIR/sidecars into buf (SIDECARS_REC bytes, zeros when the
** file is empty): 0, or -1 when it cannot be read. */
static int sidecars_read(int fd, char *buf) {
  ssize_t n;
  memset(buf, 0, SIDECARS_REC);
  do n = pread(fd, buf, SIDECARS_REC, 0); while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

void mh_spool_sidecars_mark(mh_spool *sp, char out[17]) {
  int fd;
  pthread_mutex_lock(&sp->lmu);
  fd = sp->xfd;
  pthread_mutex_unlock(&sp->lmu);
  if (fd >= 0) { if (sidecars_read(fd, out) < 0) memset(out, 0, SIDECARS_REC); return; }
  fd = openat(sp->dirfd, SIDECARS, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || sidecars_read(fd, out) < 0) memset(out, 0, SIDECARS_REC);
  if (fd >= 0) close(fd);
}

/* A handle without the lock wrote a sidecar into pickup/: the counter moves
** (under flock, as seq).  0, or the error: the caller must not go on as if
** the deliverer knew (a retry leaves the message in failed/). */
static int sidecars_bump(mh_spool *sp) {
  char buf[SIDECARS_REC + 1], why[MH_SPOOL_ERRLEN] = "";
  int fd = mh_fsutil_open(sp->dirfd, SIDECARS, O_RDWR | O_CREAT, 0600, 0, NULL), rc = 0;
  uint64_t v = 0;
  if (fd < 0) goto out;
  if ((rc = lock_bounded(sp, fd, SIDECARS, why)) == 0 && sidecars_read(fd, buf) < 0) rc = -errno;
  if (rc == 0) {
    /* max(old + 1, now in us), as the id clock: a file removed and made
       again never repeats a value a deliverer may hold from the old one */
    int64_t old = parse_hex(buf, 16), now = now_us();
    v = old < 0 || old < now || old == INT64_MAX ? (uint64_t)now : (uint64_t)old + 1;   /* (the end of
                                                    the range: garbage, the clock again) */
    hex16(buf, v);
    buf[16] = '\n';
    if (pwrite(fd, buf, SIDECARS_REC, 0) != SIDECARS_REC) rc = errno ? -errno : -EIO;
  }
  close(fd);   /* drops the flock */
out:
  if (fd < 0) rc = fd;
  if (rc) {   /* the caller's error names the sidecar: say which file it was (held: for how long) */
    if (!why[0]) fail(why, rc, "%s/%s", sp->dir, SIDECARS);
    mh_warn("spool %s: cannot move the counter: %s; the sidecar just written is left, "
            "the message it belongs to is not moved", sp->dir, why);
  }
  return rc;
}

/* A sidecar of id was written by this handle (after its rename): loads read
** it again.  A handle without the lock moves DIR/sidecars instead. */
static int listing_touch(mh_spool *sp, int dirfd, const char *id) {
  if (sp->lockfd < 0) return dirfd == sp->pickupfd ? sidecars_bump(sp) : 0;
  if (!mh_spool_is_id(id)) return 0;
  pthread_mutex_lock(&sp->lmu);
  if (sp->ntouched == sp->captouched) {
    size_t nc = sp->captouched ? sp->captouched * 2 : 16;
    struct touch *t = realloc(sp->touched, nc * sizeof *t);
    if (!t) {   /* cannot remember it: forget the listing, and the scans under way */
      sp->nlisted = 0;
      sp->lseq = ++sp->tseq;
      pthread_mutex_unlock(&sp->lmu);
      return 0;
    }
    sp->touched = t;
    sp->captouched = nc;
  }
  sp->touched[sp->ntouched].id = id_value(id);
  sp->touched[sp->ntouched++].seq = ++sp->tseq;
  pthread_mutex_unlock(&sp->lmu);
  return 0;
}

/* A scan begins (the holder's, before its readdir): its place in the touch
** sequence, and the counter of DIR/sidecars into x (*x_ok 0: not read). */
static uint64_t listing_begin(mh_spool *sp, char *x, int *x_ok) {
  uint64_t s;
  *x_ok = 0;
  if (sp->lockfd >= 0) {
    /* the file as it is now (removed, replaced: the new one), read under a
       shared flock (never a half-written value), and kept as xfd for the
       loads: dup2 swaps it under the same number, under lmu (two scans at
       once: one descriptor, never lost) */
    int fd = mh_fsutil_open(sp->dirfd, SIDECARS, O_RDONLY | O_CREAT, 0600, 0, NULL);
    if (fd < 0 && note_once(sp, SIDECARS, fd))
      mh_warn("spool %s: %s/%s cannot be opened (%s): each message's sidecar is looked up by name "
              "(slower, nothing else changes; logged once)", sp->dir, sp->dir, SIDECARS, mh_strerror(fd));
    if (fd >= 0) {
      int e;
      while ((e = flock(fd, LOCK_SH)) < 0 && errno == EINTR) {}
      *x_ok = e == 0 && sidecars_read(fd, x) == 0;
      if (e == 0) flock(fd, LOCK_UN);   /* (dup2 keeps the description: its lock with it) */
      pthread_mutex_lock(&sp->lmu);
      if (sp->xfd < 0) { sp->xfd = fd; fd = -1; }
      else if (dup2(fd, sp->xfd) < 0) *x_ok = 0;
      pthread_mutex_unlock(&sp->lmu);
      if (fd >= 0) close(fd);
    }
  }
  pthread_mutex_lock(&sp->lmu);
  s = sp->tseq;
  pthread_mutex_unlock(&sp->lmu);
  return s;
}

/* The inode of each of vals[0..n) (sorted) among seen[0..ns) ({value,
** inode}, any order), or NULL: a binary search per entry seen, no map (a
** hash of the whole folder cost a 20,000-message backlog 256 KB per scan). */
static uint64_t *listing_inos(const uint64_t *vals, size_t n, uint64_t (*seen)[2], size_t ns) {
  uint64_t *out;
  if (!n || !ns || !(out = calloc(n, sizeof *out))) return NULL;
  for (size_t i = 0; i < ns; i++) {
    size_t lo = 0, hi = n;
    while (lo < hi) { size_t m = lo + (hi - lo) / 2; if (vals[m] < seen[i][0]) lo = m + 1; else hi = m; }
    if (lo < n && vals[lo] == seen[i][0]) out[lo] = seen[i][1];
  }
  return out;
}

/* The scan that began at seq0 (DIR/sidecars holding x) returned the ids of
** values vals[0..n) (sorted) and saw the sidecars of side[0..ns) (ids, any
** order): they become the listing, unless a scan that began later was
** published already.  No memory: no listing. */
static void listing_publish(mh_spool *sp, uint64_t seq0, const char *x, int x_ok, const uint64_t *vals,
                            size_t n, char *const *side, size_t ns, uint64_t *inos) {
  uint64_t *l = n ? malloc(n * sizeof *l) : NULL, *st = ns ? malloc(ns * sizeof *st) : NULL;
  size_t k = 0;
  if ((n && !l) || (ns && !st)) { free(l); free(st); l = st = NULL; n = ns = 0; }
  if (n) memcpy(l, vals, n * sizeof *l);
  for (size_t i = 0; i < ns; i++) st[i] = id_value(side[i]);
  sort_ids(st, ns);
  pthread_mutex_lock(&sp->lmu);
  if (seq0 < sp->lseq) {   /* an older view than the one published */
    pthread_mutex_unlock(&sp->lmu);
    free(l);
    free(st);
    free(inos);
    return;
  }
  free(sp->listed);
  free(sp->stated);
  free(sp->linos);
  sp->linos = l ? inos : (free(inos), NULL);
  sp->listed = l; sp->nlisted = n;
  sp->stated = st; sp->nstated = ns;
  sp->lseq = seq0;
  memcpy(sp->lx, x, SIDECARS_REC);
  sp->lx_ok = x_ok;
  for (size_t i = 0; i < sp->ntouched; i++)   /* written before the scan began: it saw them */
    if (sp->touched[i].seq > seq0) sp->touched[k++] = sp->touched[i];
  sp->ntouched = k;
  pthread_mutex_unlock(&sp->lmu);
}

/* Whether the last scan listed id (a canonical id in pickup/): then *state
** says whether its sidecar must be read, as far as the scan and this handle's
** own touches tell.  lx (may be NULL): the counter of DIR/sidecars that
** listing began with, *lx_ok whether it was read, for listing_stale. */
static int listing_lookup(mh_spool *sp, const char *id, int *state, char *lx, int *lx_ok, uint64_t *ino) {
  uint64_t v;
  int known = 0;
  *state = 1;
  if (ino) *ino = 0;
  if (lx_ok) *lx_ok = 0;
  if (sp->lockfd < 0 || !mh_spool_is_id(id)) return 0;
  v = id_value(id);
  pthread_mutex_lock(&sp->lmu);
  if (ids_has(sp->listed, sp->nlisted, v)) {
    known = 1;
    if (ino && sp->linos) {   /* (ids_has found it: its place, for the inode) */
      size_t lo = 0, hi = sp->nlisted;
      while (lo < hi) { size_t m = lo + (hi - lo) / 2; if (sp->listed[m] < v) lo = m + 1; else hi = m; }
      if (lo < sp->nlisted && sp->listed[lo] == v) *ino = sp->linos[lo];
    }
    *state = ids_has(sp->stated, sp->nstated, v);
    for (size_t i = 0; i < sp->ntouched && !*state; i++) *state = sp->touched[i].id == v;
    if (lx) { memcpy(lx, sp->lx, SIDECARS_REC); *lx_ok = sp->lx_ok; }
  }
  pthread_mutex_unlock(&sp->lmu);
  return known;
}

/* A load that the listing told "no sidecar", AFTER its open of ID.eml: has
** another handle written a sidecar since the listing's scan began?  (retry
** bumps the counter before it moves ID.eml back, so an open that found it
** is followed by a read that sees the bump.)  lx, lx_ok: what
** listing_lookup handed back.  1: the sidecar must be read. */
static int listing_stale(mh_spool *sp, const char *lx, int lx_ok) {
  char x[SIDECARS_REC];
  int fd;
  pthread_mutex_lock(&sp->lmu);
  fd = sp->xfd;
  pthread_mutex_unlock(&sp->lmu);
  if (!lx_ok || fd < 0 || sidecars_read(fd, x) < 0) return 1;
  return memcmp(x, lx, SIDECARS_REC) != 0;
}

/* A load of the listed id (the lock holder's): the inode its scan listed,
** kept for its record (loaded_take).  The purge removes the name only while
** that file is under it: a file renamed over it since (an edit, `sed -i`) is
** not the one that was sent (see mh_spool_purge). */
static void loaded_note(mh_spool *sp, const char *id, uint64_t ino) {
  pthread_mutex_lock(&sp->lmu);
  sp->loaded[sp->nloaded++ % LOADED_MAX] = (struct loaded){ id_value(id), ino };
  pthread_mutex_unlock(&sp->lmu);
}

/* The inode the last load of id noted (and forgets it), or 0. */
static uint64_t loaded_take(mh_spool *sp, const char *id) {
  uint64_t v = id_value(id), ino = 0;
  pthread_mutex_lock(&sp->lmu);
  for (unsigned k = 0; k < LOADED_MAX && k < sp->nloaded; k++) {
    struct loaded *l = &sp->loaded[(sp->nloaded - 1 - k) % LOADED_MAX];   /* the newest first */
    if (l->id == v && l->ino) { ino = l->ino; l->ino = 0; break; }
  }
  pthread_mutex_unlock(&sp->lmu);
  return ino;
}

/* ------------------------------------------------------------- lock */

int mh_spool_lock(mh_spool *sp, long *holder) {
  char buf[32];
  int fd, n;
  if (sp->lockfd >= 0) return 0;
  /* never through a link, never a FIFO (a hostile user's lock -> /etc/shadow) */
  fd = mh_fsutil_open(sp->dirfd, "lock", O_RDWR | O_CREAT, 0600, 0, NULL);
  if (fd < 0) return fd;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
      buf[r > 0 ? r : 0] = '\0';
      if (holder) *holder = strtol(buf, NULL, 10);
      close(fd);
      return MH_ELOCKED;
    }
    close(fd);
    return -e;
  }
  n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) { /* informative only */ }
  {
    struct stat st;
    if (fstat(fd, &st) == 0) ident_set(&sp->idlock, &st);
  }
  sp->lockfd = fd;
  /* the lock holder adopts drop-ins, probing each with a read lease for an
     instant (dropin_check); a writer opening it in that instant makes the
     kernel send SIGIO, whose default ends the process.  Nothing here uses
     SIGIO: ignored, unless the host chose a handler. */
  {
    struct sigaction sa;
    if (sigaction(SIGIO, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGIO, SIG_IGN);
  }
  n = mh_spool_sweep(sp, 0);
  if (n > 0) mh_info("spool %s: removed %d stale file(s) from tmp/", sp->dir, n);
  /* the temporaries of atomic writes (status.json, outage, flush.done, the
     rule state) whose writer was killed before its rename */
  n = mh_fsutil_sweep_temps(sp->dirfd, TEMP_MIN_AGE);
  if (n < 0) n = 0;
  for (size_t i = 0; sp->statefd >= 0 && i < sizeof temp_dirs / sizeof *temp_dirs; i++) {
    int sfd = openat(sp->statefd, temp_dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), m;
    if (sfd < 0) continue;
    if ((m = mh_fsutil_sweep_temps(sfd, TEMP_MIN_AGE)) > 0) n += m;
    close(sfd);
  }
  if (n > 0) mh_info("spool %s: removed %d temporary file(s) left by killed writers", sp->dir, n);
  journal_replay(sp);
  return 0;
}

int mh_spool_sweep(mh_spool *sp, int min_age) {
  int dfd = dir_reopen(sp->tmpfd), removed = 0;
  DIR *d;
  struct dirent *de;
  time_t now = time(NULL);
  if (dfd < 0) return -errno;
  d = fdopendir(dfd);
  if (!d) { close(dfd); return -errno; }
  while ((de = readdir(d))) {
    struct stat st, again;
    int fd, creating = !strncmp(de->d_name, CREATING, strlen(CREATING));
    if (de->d_name[0] == '.') continue;
    fd = mh_fsutil_open(sp->tmpfd, de->d_name, O_RDONLY, 0, 0, &st);
    if (fd == MH_ENOTREG) {
      /* nothing but our files belongs in tmp/, which nothing reads: a FIFO,
         link or socket there is removed; a folder is left (and said) */
      if (!S_ISDIR(st.st_mode) && unlinkat(sp->tmpfd, de->d_name, 0) == 0) removed++;
      else if (S_ISDIR(st.st_mode)) {
        char v[VIS_LEN];
        mh_warn("spool %s: tmp/%s is a folder; left alone", sp->dir, vis(de->d_name, v));
      }
      continue;
    }
    if (fd < 0) continue;
    /* a live writer holds a flock on its tmp file; a dead one's lock is gone.
       A "w." file may be a writer between its creat and its flock: stale only
       when that writer is gone, or when it is old (see SWEEP_FRESH). */
    int stale = now - st.st_mtime >= (creating ? SWEEP_FRESH : min_age);
    if (creating && !stale) {   /* w.PID.NAME: its writer is gone? */
      char *end;
      long pid = strtol(de->d_name + strlen(CREATING), &end, 10);
      stale = pid > 0 && *end == '.' && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
    }
    if (stale &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(sp->tmpfd, de->d_name, &again, AT_SYMLINK_NOFOLLOW) == 0 &&
        again.st_ino == st.st_ino && again.st_dev == st.st_dev) {   /* still that file */
      if (unlinkat(sp->tmpfd, de->d_name, 0) == 0) removed++;
    }
    close(fd);
  }
  closedir(d);
  return removed;
}

/* ------------------------------------------------ following the folders
**
** An administrator may remove, move or replace a sub-folder (`rm -rf
** SPOOL/pickup`), the lock file, the journal or the whole spool while a
** service runs.  Its descriptors would go on naming the old, deleted folder:
** a message enqueued into the new pickup/ (which `mailhook enqueue` makes, as
** the first start does) waited unseen until a restart.  So each scan (and
** each enqueue of this handle) looks, at most once per FOLLOW_US, whether each
** path still leads to what its descriptor was opened on (st_dev and st_ino:
** one stat per folder per look, never one per message).  One that does not
** is opened again (made again, mode 0700, when missing, with the checks of
** mh_spool_open) and put under the same descriptor number with dup3: a thread
** using the number meanwhile reaches the old folder or the new one, never a
** closed or reused number, and the purge, the journal and the loads, which
** all go through these numbers, follow.  One log line says so.
**
** The lock follows too (two services must never deliver one spool at once):
** the holder takes the flock of the lock file now at the path; when another
** process holds it already (a second service started once the file was
** gone), this handle stops delivering (scans fail, said once) until that
** lock is free again.  The delivered journal is written again in full into
** a new file when its file was removed (else a crash would send again what
** it recorded).
*/
#define FOLLOW_US 1000000
#define FOLLOW_NOTE "(spool folders)"   /* note_once key of a failed look */

/* Puts the descriptor fd under the number *slot (dup3: atomic for the other
** threads) and closes fd.  0 or -errno (then *slot is unchanged). */
static int fd_swap(int fd, int *slot) {
  int rc = dup3(fd, *slot, O_CLOEXEC) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

/* The lock file at the path is not the one this holder flocked: take the
** new one's flock.  0; MH_ELOCKED (another process holds it: sp->lost says
** who); -errno. */
static int relock(mh_spool *sp) {
  char buf[32];
  for (int tries = 0; tries < 3; tries++) {
    struct stat st, again;
    int fd = mh_fsutil_open(sp->dirfd, "lock", O_RDWR | O_CREAT, 0600, 0, &st), n;
    if (fd < 0) return fd;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int e = errno;
      if (e == EWOULDBLOCK) {
        ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
        long pid;
        buf[r > 0 ? r : 0] = '\0';
        pid = strtol(buf, NULL, 10);
        sp->lost = pid > 0 ? pid : -1;
        close(fd);
        return MH_ELOCKED;
      }
      close(fd);
      return -e;
    }
    /* still the file at the path (not removed between the open and the flock) */
    if (fstatat(sp->dirfd, "lock", &again, AT_SYMLINK_NOFOLLOW) < 0 || again.st_ino != st.st_ino ||
        again.st_dev != st.st_dev) {
      close(fd);
      continue;
    }
    n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) { /* informative only */ }
    int rc = fd_swap(fd, &sp->lockfd);   /* the old file's flock goes with its last descriptor */
    if (rc == 0) { ident_set(&sp->idlock, &st); sp->lost = 0; }
    return rc;
  }
  return -EAGAIN;
}

/* The holder's DIR/delivered was removed or replaced (or the spool was):
** its records are written again into a new file. */
static void journal_follow(mh_spool *sp, int moved) {
  struct stat a, b;
  pthread_mutex_lock(&sp->jmu);
  if (sp->jfd >= 0 &&
      (moved || fstat(sp->jfd, &a) < 0 || fstatat(sp->dirfd, JOURNAL, &b, AT_SYMLINK_NOFOLLOW) < 0 ||
       a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
    int fd = mh_fsutil_open(sp->dirfd, JOURNAL, O_WRONLY | O_APPEND | O_CREAT, 0600, 0, NULL), rc = fd < 0 ? fd : 0;
    char *buf = NULL;
    size_t len = sp->njcur * JOURNAL_REC;
    close(sp->jfd);
    sp->jfd = -1;
    if (rc == 0 && ftruncate(fd, 0) < 0) rc = -errno;
    if (rc == 0 && len && !(buf = malloc(len))) rc = MH_ENOMEM;
    for (size_t i = 0; rc == 0 && i < sp->njcur; i++) {
      hex16(buf + i * JOURNAL_REC, sp->jcur[i]);
      buf[i * JOURNAL_REC + 16] = '\n';
    }
    if (rc == 0 && len) rc = mh_fsutil_write_all(fd, buf, len);
    free(buf);
    if (rc == 0) {
      sp->jfd = fd;
      sp->jnew = 1;
      mh_warn("spool %s: %s/%s was removed or replaced while the service runs: its %zu record(s) "
              "written again into a new one", sp->dir, sp->dir, JOURNAL, sp->njcur);
    } else {
      if (fd >= 0) close(fd);
      mh_warn("spool %s: %s/%s was removed or replaced while the service runs and cannot be written "
              "again (%s): %zu delivered message(s) may be sent again after a crash", sp->dir, sp->dir,
              JOURNAL, mh_strerror(rc), sp->njcur);
    }
  }
  pthread_mutex_unlock(&sp->jmu);
}

/* The error of a handle whose lock was taken over. */
static int lost_error(mh_spool *sp, char *err) {
  char who[40] = "";
  long pid = sp->lost;
  if (!err) return MH_ELOCKED;
  if (pid > 0) snprintf(who, sizeof who, " (pid %ld)", pid);
  snprintf(err, MH_SPOOL_ERRLEN, "spool %s: its lock file was removed or replaced and another process%s "
           "holds the new one: this service does not deliver it meanwhile (two must never deliver one "
           "spool at once)", sp->dir, who);
  return MH_ELOCKED;
}

int mh_spool_follow(mh_spool *sp, int force, char *err) {
  struct stat st;
  char what[MH_SPOOL_ERRLEN], e2[MH_SPOOL_ERRLEN];
  int rc = 0, moved = 0, fd;
  int64_t t = mono_us();
  if (!err) err = e2;
  if (!force && !sp->lost && t - sp->followed < FOLLOW_US) return 0;   /* the usual case: no lock */
  pthread_mutex_lock(&sp->fmu);
  if (!force && t - sp->followed < FOLLOW_US) {
    rc = sp->lost ? lost_error(sp, err) : 0;
    pthread_mutex_unlock(&sp->fmu);
    return rc;
  }
  sp->followed = t;
  /* the spool folder itself, through a link at its path as at open */
  snprintf(what, sizeof what, "spool %s", sp->dir);
  if (stat(sp->dir, &st) < 0 || !ident_is(&sp->idroot, &st)) {
    if ((sp->flags & MH_SPOOL_NO_CREATE) && access(sp->dir, F_OK) < 0 && errno == ENOENT) {
      rc = fail(err, NO_SPOOL, "no spool at %s (it was removed)", sp->dir);
      goto out;
    }
    if (!(sp->flags & MH_SPOOL_NO_CREATE) && mkdir(sp->dir, 0700) < 0 && errno != EEXIST) {
      rc = fail(err, -errno, "%s", what);
      goto out;
    }
    if ((fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) { rc = fail(err, -errno, "%s", what); goto out; }
    if (!(rc = folder_check(fd, what, FOLDER_PRIVATE, err)) && fstat(fd, &st) < 0) rc = fail(err, -errno, "%s", what);
    if (rc) { close(fd); goto out; }
    if ((rc = fd_swap(fd, &sp->dirfd))) { fail(err, rc, "%s", what); goto out; }
    ident_set(&sp->idroot, &st);
    moved = 1;
    mh_warn("spool %s: the spool folder was removed, moved or replaced while the service runs: it now "
            "uses the folder at that path (made again when missing); what the old one held stays there",
            sp->dir);
  }
  for (int i = 0; i < 5; i++) {
    if (!moved && fstatat(sp->dirfd, spool_subs[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 && ident_is(&sp->idsub[i], &st))
      continue;
    int create = !(sp->flags & MH_SPOOL_NO_CREATE);
    if ((fd = open_sub(sp->dirfd, sp->dir, spool_subs[i].name, spool_subs[i].policy, create, err)) == -ENOENT &&
        !create)
      continue;   /* NO_CREATE: makes nothing; what it had open stays */
    if (fd < 0) { rc = fd; goto out; }
    if (fstat(fd, &st) < 0) { rc = fail(err, -errno, "spool %s/%s", sp->dir, spool_subs[i].name); close(fd); goto out; }
    if (*sub_fd(sp, i) < 0) *sub_fd(sp, i) = fd;   /* NO_CREATE: one missing at open, there now */
    else if ((rc = fd_swap(fd, sub_fd(sp, i)))) { fail(err, rc, "spool %s/%s", sp->dir, spool_subs[i].name); goto out; }
    ident_set(&sp->idsub[i], &st);
    if (!moved)
      mh_warn("spool %s: %s/ was removed or replaced while the service runs: opened again (made again "
              "when missing)", sp->dir, spool_subs[i].name);
  }
  if (sp->lockfd >= 0) {
    long was = sp->lost;
    if (was || moved || fstatat(sp->dirfd, "lock", &st, AT_SYMLINK_NOFOLLOW) < 0 || !ident_is(&sp->idlock, &st)) {
      rc = relock(sp);
      if (rc == MH_ELOCKED) { lost_error(sp, err); goto out; }
      if (rc) { fail(err, rc, "spool %s/lock", sp->dir); goto out; }
      if (was) mh_warn("spool %s: the lock is free again: this service delivers it again", sp->dir);
      else if (!moved) mh_warn("spool %s: its lock file was removed or replaced while the service runs: locked again",
                   sp->dir);
    }
    journal_follow(sp, moved);
  }
out:
  if (rc) {
    sp->followed = 0;   /* looked at again by the next scan */
    if (note_once(sp, FOLLOW_NOTE, rc)) mh_error("%s (logged once)", err);
  } else if (note_clear(sp, FOLLOW_NOTE)) {
    mh_info("spool %s: its folders are usable again", sp->dir);
  }
  pthread_mutex_unlock(&sp->fmu);
  return rc;
}

/* -------------------------------------------------------------- ids */

/* n hex digits; -1 for anything else, and for a value past INT64_MAX (a seq,
** a sidecars counter or a drop-in's name "ffffffffffffffff.eml": the sum
** went past the signed range, undefined behaviour, and wrapped negative). */
static int64_t parse_hex(const char *s, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    int c = s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return -1;
    if (v > ((uint64_t)INT64_MAX - (uint64_t)d) / 16) return -1;
    v = v * 16 + (uint64_t)d;
  }
  return (int64_t)v;
}

/* Under flock on DIR/seq: new = max(floor, last + 1); store and return it.
** 0; MH_ETIMEDOUT (held: err says by what), -errno.  Nothing is written
** before the lock is had: an enqueue that fails here leaves no tmp/ file. */
static int seq_bump(mh_spool *sp, int64_t floor, int64_t *out, char *err) {
  char buf[40];
  int64_t last = 0, v;
  ssize_t n;
  int fd = mh_fsutil_open(sp->dirfd, "seq", O_RDWR | O_CREAT, 0600, 0, NULL), rc = 0;
  if (fd < 0) return fail(err, fd, "spool %s: %s/seq", sp->dir, sp->dir);
  if ((rc = lock_bounded(sp, fd, "seq", err))) goto out;
  n = pread(fd, buf, sizeof buf, 0);
  if (n >= 16) last = parse_hex(buf, 16);
  if (last < 0 || last == INT64_MAX) last = 0;   /* garbage, or no id after it: the clock again */
  v = floor > last ? floor : last + 1;
  snprintf(buf, sizeof buf, "%016" PRIx64 "\n", (uint64_t)v);
  /* no fsync: a process crash keeps the page cache, and after a power cut the
     scanner raises seq above every id it finds (mh_spool_raise_seq); an id that
     collides anyway cannot replace a file (rename_new) */
  if (pwrite(fd, buf, 17, 0) != 17) rc = fail(err, errno ? -errno : MH_EINVAL, "spool %s: %s/seq", sp->dir, sp->dir);
  *out = v;
out:
  close(fd);
  return rc;
}

int mh_spool_new_id(mh_spool *sp, char id[MH_SPOOL_IDLEN], char *err) {
  int64_t v;
  int rc = seq_bump(sp, now_us(), &v, err);
  if (rc < 0) return rc;
  snprintf(id, MH_SPOOL_IDLEN, "%016" PRIx64, (uint64_t)v);
  return 0;
}

int mh_spool_raise_seq(mh_spool *sp, const char *id, char *err) {
  int64_t v, got;
  if (!mh_spool_is_id(id)) return fail(err, MH_EINVAL, "id '%s'", id);
  v = parse_hex(id, 16);
  if (v < 0 || v == INT64_MAX) return fail(err, MH_EINVAL, "id %s", id);   /* past any id the clock can give */
  return seq_bump(sp, v, &got, err);
}

/* ------------------------------------------------------ header parsing */

int mh_addr_check(const char *addr, int empty_ok) {
  size_t n = strlen(addr);
  const char *at, *end = addr + n;
  if (n == 0) return empty_ok ? 0 : MH_EBADADDR;
  if (n > 320) return MH_EBADADDR;
  /* a domain that is an address literal: checked whole, the rest as a local part */
  at = strrchr(addr, '@');
  if (at && at[1] == '[') {
    /* the builder's rule, one for both (msg.h): Postfix takes [IPv4] and
    ** [IPv6:...] (a device without DNS, a test box); anything else is no address */
    if (mh_msg_addr_literal(at + 1, strlen(at + 1), NULL)) return MH_EBADADDR;
    end = at + 1;
  }
  const char *p = addr;
  if (*p == '"') {   /* quoted local part: anything printable but CR, LF, NUL */
    for (p++; *p && *p != '"'; p++) {
      if (*p == '\\' && p[1]) p++;
      if ((unsigned char)*p < ' ' || *p == 127) return MH_EBADADDR;
    }
    if (*p != '"' || p[1] != '@') return MH_EBADADDR;
    p++;
  }
  for (; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= ' ' || c == 127 || c == '<' || c == '>' || c == ',' || c == ';' ||
        c == '(' || c == ')' || c == '\\' || c == '[' || c == ']')
      return MH_EBADADDR;
  }
  if (addr[0] != '"' && strchr(addr, '"')) return MH_EBADADDR;
  if (!at || at == addr || !at[1] || at[1] == '.' || addr[n - 1] == '.' || strchr(at, '"') ||
      strstr(at, ".."))
    return MH_EBADADDR;
  return 0;
}

/* The room an array of n items appended one by one (env_grow) has: the
** next power of two at or above n, at least 8; none for 0. */
static size_t env_cap(size_t n) {
  size_t c = 8;
  if (n == 0) return 0;
  while (c < n) c *= 2;
  return c;
}

/* v (an array of n items of sz bytes, its room env_cap(n)) with room for
** one more: doubled when full.  A realloc to n + 1 for every item copied
** the whole array each time where the allocator does not grow a block in
** place (ASan's always copies, musl's often): 20,000 recipients took 7 s
** there, 40,000 28 s.  NULL when out of memory (v unchanged). */
static void *env_grow(void *v, size_t n, size_t sz) {
  if (n != 0 && n != env_cap(n)) return v;   /* room left */
  return realloc(v, env_cap(n + 1) * sz);
}

/* Appends recipient a[0..n) with its DSN parameters (NULL or "" for none),
** keeping to_params parallel to to once a recipient has any.  Both arrays
** grow only here (env_grow: their room is env_cap(nto)).  own: NULL, or a
** copy of a[0..n) from malloc that env takes (kept, or freed here: a
** duplicate, a failure): env_parse's X-Receiver, copied once, not twice (a
** malloc, a copy and a free fewer: some 220 instructions a message loaded). */
static int env_add_p(mh_env *env, const char *a, size_t n, const char *params, char *own) {
  char **nt;
  for (size_t i = 0; i < env->nto && i < 1000; i++)  /* drop exact duplicates */
    if (strlen(env->to[i]) == n && !memcmp(env->to[i], a, n)) { free(own); return 0; }
  if (params && *params && !env->to_params &&
      !(env->to_params = calloc(env_cap(env->nto + 1), sizeof *env->to_params))) {
    free(own);
    return MH_ENOMEM;
  }
  if (env->to_params) {
    char **np = (char **)env_grow(env->to_params, env->nto, sizeof *np);
    if (!np) { free(own); return MH_ENOMEM; }
    env->to_params = np;
    np[env->nto] = NULL;
    if (params && *params && !(np[env->nto] = strdup(params))) { free(own); return MH_ENOMEM; }
  }
  if (!(nt = (char **)env_grow(env->to, env->nto, sizeof *nt))) { free(own); return MH_ENOMEM; }
  env->to = nt;
  if (!(nt[env->nto] = own ? own : xstrndup(a, n))) {
    if (env->to_params) { free(env->to_params[env->nto]); env->to_params[env->nto] = NULL; }
    return MH_ENOMEM;
  }
  env->nto++;
  return 0;
}

static int env_add(mh_env *env, const char *a, size_t n) { return env_add_p(env, a, n, NULL, NULL); }

void mh_env_free(mh_env *env) {
  if (!env) return;
  for (size_t i = 0; i < env->nto; i++) {
    free(env->to[i]);
    if (env->to_params) free(env->to_params[i]);
  }
  free(env->to);
  free(env->to_params);
  free(env->from);
  free(env->from_params);
  for (size_t i = 0; i < env->nbad; i++) { free(env->bad[i].rcpt); free(env->bad[i].reply); }
  free(env->bad);
  memset(env, 0, sizeof *env);
}

int mh_spool_params_ok(const char *p, int sender) {
  static const char *const for_sender[] = { "RET", "ENVID", NULL };
  static const char *const for_rcpt[] = { "NOTIFY", "ORCPT", NULL };
  const char *const *allowed = sender ? for_sender : for_rcpt;
  if (!p) return 0;
  if (strlen(p) > 500) return MH_EBADADDR;
  while (*p) {
    const char *e, *eq;
    int known = 0;
    while (*p == ' ') p++;
    if (!*p) break;
    for (e = p; *e && *e != ' '; e++) {}
    eq = memchr(p, '=', (size_t)(e - p));
    if (!eq || eq == p || eq + 1 == e) return MH_EBADADDR;
    for (int k = 0; allowed[k]; k++)
      if (strlen(allowed[k]) == (size_t)(eq - p) && !strncasecmp(p, allowed[k], (size_t)(eq - p))) known = 1;
    if (!known) return MH_EBADADDR;
    for (const char *q = eq + 1; q < e; q++)
      if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e || *q == '<' || *q == '>') return MH_EBADADDR;
    p = e;
  }
  return 0;
}

/* The value [vs, ve) of an X-Sender / X-Receiver line: the address, without
** its angle brackets, in [*as, *ae), and where its parameters start (*ps: the
** first byte after the address and its spaces; ve when there are none).  The
** address ends at the first space outside a quoted local part. */
static void env_value_split(const char *buf, size_t vs, size_t ve, size_t *as, size_t *ae, size_t *ps) {
  size_t p = vs;
  if (p < ve && buf[p] == '<') {
    const char *gt = memchr(buf + p, '>', ve - p);
    *as = p + 1;
    *ae = gt ? (size_t)(gt - buf) : ve;
    p = gt ? *ae + 1 : ve;
  } else {
    int quote = 0;
    const char *sp = memchr(buf + p, ' ', ve - p);
    size_t e = sp ? (size_t)(sp - buf) : ve;
    *as = p;
    /* the common address, no quote before its first space: ends there (two
    ** memchr calls where the loop below cost some 15 instructions an octet) */
    if (!memchr(buf + p, '"', e - p)) p = e;
    for (; p < ve && (quote || buf[p] != ' '); p++) {
      if (buf[p] == '\\' && quote && p + 1 < ve) p++;
      else if (buf[p] == '"') quote = !quote;
    }
    *ae = p;
  }
  while (p < ve && (buf[p] == ' ' || buf[p] == '\t')) p++;
  *ps = p;
}

/* Ends one mailbox of an address list: plain text or <angle> address. */
static int names_resolve(const mh_spool_names *nm, const char *a, mh_env *env, char *err);

/* A drop-in's recipient item a (raw: the header's bytes) that is no usable
** address (env->keep_bad): kept with why, shown as the log shows it (vis: a
** control byte as \xNN, so no CR, LF or escape reaches a sidecar, a log line
** or a terminal; a backslash as \x5C: the form `sendmail -t` keeps the same
** item in, submit.printable), at most MH_ENV_BAD_MAX of them (the rest
** counted).  why is shown already: a constant, mh_msg_check_addr's, or the
** err of a fail() that quoted the item (names_resolve), never escaped twice
** (a typed backslash would read \x5Cx5C, an item's TAB \x5Cx09).  Cut as
** submit.shown cuts the item `sendmail -t` keeps: its first ENV_BAD_CUT bytes
** as written, shown, then "..." -- never the shown text, whose cut split an
** escape ("\x5C" kept as a bare "\" before the "...").  0 or MH_ENOMEM. */
#define ENV_BAD_CUT 200
static int env_bad(mh_env *env, const char *a, const char *why) {
  char v[VIS_LEN], w[VIS_LEN], head[ENV_BAD_CUT + 1];
  size_t alen = strlen(a);
  if (alen > ENV_BAD_CUT) {
    memcpy(head, a, ENV_BAD_CUT);
    head[ENV_BAD_CUT] = '\0';
  }
  vis(alen > ENV_BAD_CUT ? head : a, v);   /* at most 4 * ENV_BAD_CUT bytes: "..." fits */
  if (alen > ENV_BAD_CUT) strcat(v, "...");
  vis_shown(why, w);
  for (size_t i = 0; i < env->nbad; i++)
    if (!strcmp(env->bad[i].rcpt, v)) return 0;
  if (env->nbad >= MH_ENV_BAD_MAX) { env->nbad_more++; return 0; }
  mh_refused *nb = realloc(env->bad, (env->nbad + 1) * sizeof *nb);
  if (!nb) return MH_ENOMEM;
  env->bad = nb;
  nb[env->nbad].rcpt = strdup(v);
  nb[env->nbad].reply = strdup(w);
  if (!nb[env->nbad].rcpt || !nb[env->nbad].reply) {
    free(nb[env->nbad].rcpt);
    free(nb[env->nbad].reply);
    return MH_ENOMEM;
  }
  env->nbad++;
  return 0;
}

static int finish_mailbox(mh_env *env, const mh_spool_names *nm, char *plain, size_t pn, char *angle,
                          size_t an, int had_angle, char *err);

/* The marks env_addrs leaves in an item where a line break (a fold: CRLF,
** a bare CR or LF, then a blank) or a comment stuck to both sides
** ("ab(x)c@d") stood: blanks to isspace(), so the rest of the parsing reads
** them as one; split_words reads them as "the two sides may be one thing cut
** in two".  A stuck comment with a fold inside it is CFWS_STUCK_FOLD: a line
** break for the why, and still no blank between its two sides (a quoted
** string before it is no display name: "q"(x<CRLF> y)c@d is not c@d). */
#define CFWS_FOLD '\n'
#define CFWS_STUCK '\f'
#define CFWS_STUCK_FOLD '\v'
#define CFWS_MARK(c) ((c) == CFWS_FOLD || (c) == CFWS_STUCK || (c) == CFWS_STUCK_FOLD)

/* RFC 5322's CFWS inside an address (obs-local-part, obs-domain), as
** `sendmail -t` reads it (submit.lua split, angle_spec): blanks next to a '.'
** or an '@' or at either end taken out ("b @example.org", "c@example . org"
** are b@example.org, c@example.org); any other run of blanks made one
** character: CFWS_FOLD when a fold was in it, else CFWS_STUCK when a stuck
** comment was (CFWS_STUCK_FOLD when that one held a fold), else ' '.  Quoted strings and domain literals are kept as
** written.  In place; returns the new length. */
static size_t cfws_norm(char *a, size_t n) {
  size_t o = 0, i = 0;
  int quote = 0, lit = 0;
  while (i < n) {
    char c = a[i];
    if (quote || lit) {
      a[o++] = c;
      if (quote && c == '\\' && i + 1 < n) a[o++] = a[++i];
      else if (quote && c == '"') quote = 0;
      else if (lit && c == ']') lit = 0;
      i++;
      continue;
    }
    if (isspace((unsigned char)c)) {
      char mark = ' ';
      for (; i < n && isspace((unsigned char)a[i]); i++) {
        if (a[i] == CFWS_FOLD) mark = CFWS_FOLD;
        else if (a[i] == CFWS_STUCK_FOLD && mark != CFWS_FOLD) mark = CFWS_STUCK_FOLD;
        else if (a[i] == CFWS_STUCK && mark == ' ') mark = CFWS_STUCK;
      }
      if (o > 0 && i < n && a[o - 1] != '.' && a[o - 1] != '@' && a[i] != '.' && a[i] != '@') a[o++] = mark;
      continue;
    }
    if (c == '"') quote = 1;
    else if (c == '[') lit = 1;
    a[o++] = c;
    i++;
  }
  return o;
}

/* The marks of cfws_norm made plain blanks (an item quoted in a why). */
static void cfws_blank(char *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (CFWS_MARK(a[i])) a[i] = ' ';
}

/* A word of a drop-in's item that is an address: an '@' inside it with no
** '@' next to it (submit.lua split's test: "mple.org@@x" is none, so it goes
** with an address before it as "c@exa mple.org" does). */
static int word_is_addr(const char *w, size_t n) {
  if (n <= 2 || w[0] == '@' || w[n - 1] == '@') return 0;
  for (size_t k = 1; k + 1 < n; k++)
    if (w[k] == '@' && w[k - 1] != '@' && w[k + 1] != '@') return 1;
  return 0;
}

/* Appends the word [w, w + n) to rest (rl bytes), a blank between words. */
static void rest_add(char *rest, size_t *rl, const char *w, size_t n) {
  if (*rl + n + 2 >= VIS_LEN) return;
  if (*rl) rest[(*rl)++] = ' ';
  memcpy(rest + *rl, w, n);
  *rl += n;
}

/* A drop-in's item of several words outside quotes (`To: a@x b@y`, a script's
** "$ADMINS", `John Doe john@x`), CFWS already taken out (cfws_norm): as
** `sendmail -t` reads it (submit.lua split, Postfix's parser adding the
** missing commas), each word with an '@' inside is an address, and the other
** words together an item that is no address (left out, named).  A word right
** after an address goes with it ("c@exa mple.org", a domain folded in two:
** never c@exa), and so does an address right after a word when a fold or a
** stuck comment stands between them ("ab<CRLF> c@x" is what a mailer wrapping
** long lines leaves of abc@x: never c@x); both are then that item, the why
** saying so.  1 when a held several words (*rc: the result), else 0. */
static int split_words(mh_env *env, const mh_spool_names *nm, char *a, size_t n, char *err, int *rc) {
  char rest[VIS_LEN];
  size_t rl = 0, i = 0, ps = 0, pe = 0;
  int quote = 0, nw = 0, pending = 0, prev_rest = 0, prev_quoted = 0;
  const char *why = NULL;
  for (size_t k = 0; k < n; k++) {
    if (a[k] == '"') quote = !quote;
    else if (a[k] == '\\' && quote && k + 1 < n) k++;
    else if (!quote && isspace((unsigned char)a[k])) nw = 1;
  }
  if (!nw) return 0;
  *rc = 0;
  while (i < n && !*rc) {
    size_t s0, e0;
    char sep = 0;   /* the CFWS mark before this word, if any */
    for (; i < n && isspace((unsigned char)a[i]); i++)
      if (CFWS_MARK(a[i])) sep = a[i];
    quote = 0;
    for (s0 = i; i < n && (quote || !isspace((unsigned char)a[i])); i++) {
      if (a[i] == '"') quote = !quote;
      else if (a[i] == '\\' && quote && i + 1 < n) i++;
    }
    e0 = i;
    if (e0 == s0) break;
    int is_addr = word_is_addr(a + s0, e0 - s0);
    const char *cut = sep != CFWS_STUCK ? "a line break inside it: the part with an '@' may be another mailbox"
                                       : "a comment inside it: the part with an '@' may be another mailbox";
    /* "ab<CRLF> c@x": with the word before; a quoted string before is a
    ** display name only with a blank between ("q"(x)c@x is no "q" <c@x>) */
    if (is_addr && prev_rest && sep && !(prev_quoted && sep == CFWS_FOLD)) {
      rest_add(rest, &rl, a + s0, e0 - s0);
      why = cut;
      is_addr = 0;
    } else if (is_addr) {
      if (pending) {
        char w[1024];
        size_t wl = pe - ps < sizeof w ? pe - ps : sizeof w - 1;
        memcpy(w, a + ps, wl);
        *rc = finish_mailbox(env, nm, w, wl, NULL, 0, 0, err);
      }
      pending = 1; ps = s0; pe = e0;
    } else if (pending) {                                /* "c@exa mple.org": with the address before */
      rest_add(rest, &rl, a + ps, pe - ps);
      rest_add(rest, &rl, a + s0, e0 - s0);
      pending = 0;
      if (sep) why = cut;
    } else {
      rest_add(rest, &rl, a + s0, e0 - s0);
    }
    prev_rest = !is_addr;
    prev_quoted = a[s0] == '"';
  }
  if (!*rc && pending) {
    char w[1024];
    size_t wl = pe - ps < sizeof w ? pe - ps : sizeof w - 1;
    memcpy(w, a + ps, wl);
    *rc = finish_mailbox(env, nm, w, wl, NULL, 0, 0, err);
  }
  rest[rl] = '\0';
  cfws_blank(rest, rl);
  if (!*rc && rl) *rc = env_bad(env, rest, why ? why : "not an address");
  return 1;
}

static int finish_mailbox(mh_env *env, const mh_spool_names *nm, char *plain, size_t pn, char *angle,
                          size_t an, int had_angle, char *err) {
  char *a;
  size_t n;
  int rc;
  const char *why;
  if (had_angle) {
    char *c = memchr(angle, ':', an);   /* obsolete source route @a,@b:addr */
    a = angle; n = an;
    if (c && angle[0] == '@') { n -= (size_t)(c + 1 - angle); a = c + 1; }
  } else {
    a = plain; n = pn;
  }
  n = cfws_norm(a, n);   /* "b @example.org" is b@example.org; the ends trimmed */
  if (had_angle) cfws_blank(a, n);   /* <c@exa mple.org>: no address, said with a blank */
  if (n == 0) {
    if (had_angle && env->keep_bad) return env_bad(env, "<>", "empty address");
    if (had_angle) return fail(err, MH_EBADADDR, "empty address <>");
    return 0;  /* an empty list element */
  }
  n = mh_msg_addr_unroot(a, n);   /* To: ops@example.com. is ops@example.com in the envelope */
  a[n] = '\0';
  if (env->keep_bad && !had_angle && split_words(env, nm, a, n, err, &rc)) return rc;
  cfws_blank(a, n);
  if (nm && (rc = names_resolve(nm, a, env, err)) <= 0) {   /* a local name: resolved */
    if (rc == MH_EBADADDR && env->keep_bad) return env_bad(env, a, err ? err : "no such local name");
    return rc;
  }
  if (env->keep_bad) {
    /* a drop-in's recipient gets the checks `sendmail -t` gives its items
       (submit.lua valid: the builder's rule, non-ASCII left to delivery, then
       the spool's): one that fails them is left out, named, and the others
       still get the message (Postfix's pickup and nullmailer send to the valid
       ones and bounce the rest) */
    if (mh_msg_check_addr(a, n, &why) && why && strstr(why, "non-ASCII") == NULL)
      return env_bad(env, a, why);
    if (mh_addr_check(a, 0)) return env_bad(env, a, "not a usable address");
  }
  if (mh_addr_check(a, 0)) return fail(err, MH_EBADADDR, "'%s'", a);
  rc = env_add(env, a, n);
  return rc ? fail(err, rc, "address list") : 0;
}

static int env_addrs(const char *val, size_t len, mh_env *env, const mh_spool_names *nm, char *err);

int mh_env_addrs(const char *val, size_t len, mh_env *env, char *err) {
  return env_addrs(val, len, env, NULL, err);
}

/* An item [s, e) of the address list val with a ':' after an address in it
** ("e@x: d@y", "Name <e@x>: d@y"): group syntax whose name is an address
** (RFC 5322: a group's name is a phrase), so which word was meant as a
** mailbox is unclear.  A drop-in's (env->keep_bad): the whole item, unfolded
** and trimmed, left out, named, as `sendmail -t` leaves it (submit.lua
** split); elsewhere an error.  0, MH_EBADADDR or MH_ENOMEM. */
static int colon_item(mh_env *env, const char *val, size_t s, size_t e, char *err) {
  char t[VIS_LEN];
  size_t o = 0;
  int rc;
  for (; s < e && o + 1 < sizeof t; s++)
    if (val[s] != '\r' && val[s] != '\n') t[o++] = val[s];
  while (o > 0 && isspace((unsigned char)t[o - 1])) o--;
  t[o] = '\0';
  for (s = 0; isspace((unsigned char)t[s]); s++) {}
  if (!env->keep_bad) return fail(err, MH_EBADADDR, "'%.200s': a ':' after an address", t + s);
  rc = env_bad(env, t + s, "a ':' after an address: an address is no group name");
  return rc ? fail(err, rc, "address list") : 0;
}

/* Whether the words of a[0..n) (CFWS taken out, cfws_norm) hold an address
** word (word_is_addr), a quoted string being part of its word. */
static int words_have_addr(const char *a, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t s0;
    int quote = 0;
    for (; i < n && isspace((unsigned char)a[i]); i++) {}
    for (s0 = i; i < n && (quote || !isspace((unsigned char)a[i])); i++) {
      if (a[i] == '"') quote = !quote;
      else if (a[i] == '\\' && quote && i + 1 < n) i++;
    }
    if (i > s0 && word_is_addr(a + s0, i - s0)) return 1;
  }
  return 0;
}

/* An item with words after its angle address's '>' (`<a@x> b@y`, `Ann <a@x>
** Bob <b@y>`: a comma missing), plain[pclose, pn) those words.  As
** `sendmail -t` reads it (submit.lua split_angle): the angle address is an
** item ended at its '>'; the words after it, when one is an address, are
** items of their own as words without a comma between are (split_words);
** else, before a second angle address (at_angle), its display name, and at
** the item's end an item that is no address (a drop-in's: left out, named,
** never a local name; elsewhere a trailing phrase, ignored as before).
** Before, the second address took the first one's place: a recipient lost
** unnamed.  *loose: the words after were addresses.  0 or an error. */
static int angle_split(mh_env *env, const mh_spool_names *nm, char *plain, size_t pclose, size_t pn,
                       char *angle, size_t an, int at_angle, int *loose, char *err) {
  char *post = plain + pclose;
  size_t m = pn - pclose;
  int rc = finish_mailbox(env, nm, plain, pclose, angle, an, 1, err);
  *loose = 0;
  if (rc) return rc;
  m = cfws_norm(post, m);
  if (m == 0) return 0;
  if (words_have_addr(post, m)) {
    *loose = 1;
    return finish_mailbox(env, nm, post, m, NULL, 0, 0, err);
  }
  if (at_angle || !env->keep_bad) return 0;
  post[m] = '\0';
  cfws_blank(post, m);
  rc = env_bad(env, post, "not an address");
  return rc ? fail(err, rc, "address list") : 0;
}

static int env_addrs(const char *val, size_t len, mh_env *env, const mh_spool_names *nm, char *err) {
  char *plain = malloc(len + 1), *angle = malloc(len + 1);
  size_t pn = 0, an = 0, i, item = 0;   /* item: where the item being read starts */
  size_t cstart = 0;   /* where the comment being read began */
  int depth = 0, quote = 0, in_angle = 0, had_angle = 0, lit = 0, rc = 0, cfold = 0;
  int at = 0, colon = 0;   /* an '@' outside quotes, literals, comments and <...>; a ':' after an address */
  size_t pclose = 0, vclose = 0;   /* where the words after the last '>' start, in plain and in val */
  int loose = 0;
  if (!plain || !angle) { rc = fail(err, MH_ENOMEM, "address list"); goto out; }
  for (i = 0; i < len && rc == 0; i++) {
    char c = val[i];
    /* folding (RFC 5322 2.2.3): the CRLF taken out, the blank after it kept;
    ** where it was is marked (CFWS_FOLD) outside quotes, literals and comments;
    ** a bare CR is a line end as CRLF is (hdr_line, eol.h: "ab<CR> c@x" was
    ** sent to c@x), so it marks one too */
    if (c == '\r' && i + 1 < len && val[i + 1] == '\n') continue;
    if (c == '\r' || c == '\n') {
      if (depth) cfold = 1;
      else if (!quote && !lit) { if (in_angle) angle[an++] = CFWS_FOLD; else plain[pn++] = CFWS_FOLD; }
      continue;
    }
    if (lit) {   /* a domain literal [IPv6:2001:db8::1]: its ':' is no group, ends at ']' */
      if (in_angle) angle[an++] = c; else plain[pn++] = c;
      if (c == ']') lit = 0;
      continue;
    }
    if (depth) {
      if (c == '\\' && i + 1 < len) i++;
      else if (c == '(') depth++;
      else if (c == ')' && --depth == 0) {
        /* a comment is a blank (a@exa(x)mple.org is no a@example.org): a
        ** fold if one was inside it, a stuck one if words touch both sides */
        int stuck = cstart > 0 && !isspace((unsigned char)val[cstart - 1]) && !strchr(",;:", val[cstart - 1]) &&
                    i + 1 < len && !isspace((unsigned char)val[i + 1]) && !strchr(",;:<", val[i + 1]);
        char mark = stuck ? (cfold ? CFWS_STUCK_FOLD : CFWS_STUCK) : cfold ? CFWS_FOLD : ' ';
        if (in_angle) angle[an++] = mark; else plain[pn++] = mark;
      }
      continue;
    }
    if (quote) {
      if (in_angle) angle[an++] = c; else plain[pn++] = c;
      if (c == '\\' && i + 1 < len) {
        i++;
        if (in_angle) angle[an++] = val[i]; else plain[pn++] = val[i];
      } else if (c == '"') {
        quote = 0;
      }
      continue;
    }
    switch (c) {
    case '(': depth = 1; cstart = i; cfold = 0; break;
    case '"': quote = 1; if (in_angle) angle[an++] = c; else plain[pn++] = c; break;
    case '<':
      /* inside <...> a '<' is the address's (`<mple.org<c@x>` is no address, as
      ** sendmail -t reads it: never c@x, a piece of it) */
      if (in_angle) { angle[an++] = c; break; }
      if (had_angle && !colon) {   /* a second one: `<a@x> <b@y>` (angle_split) */
        rc = angle_split(env, nm, plain, pclose, pn, angle, an, 1, &loose, err);
        item = loose ? i : vclose;   /* a display name goes with the second; C keeps no names */
        pn = 0;
        at = 0;
      }
      in_angle = 1; had_angle = 1; an = 0;
      break;
    case '>':   /* a stray one outside <...> is part of the word (a>b@x is no ab@x) */
      if (in_angle) { in_angle = 0; pclose = pn; vclose = i + 1; }
      else plain[pn++] = c;
      break;
    case '[': lit = 1; if (in_angle) angle[an++] = c; else plain[pn++] = c; break;
    case ':':
      if (in_angle) angle[an++] = c;
      else if (at || had_angle || colon) { colon = 1; plain[pn++] = c; }   /* an address is no group name */
      else { pn = 0; item = i + 1; }   /* "group name:" */
      break;
    case ',': case ';':
      if (in_angle) { angle[an++] = c; break; }
      if (colon) rc = colon_item(env, val, item, i, err);
      else if (had_angle && pn > pclose) rc = angle_split(env, nm, plain, pclose, pn, angle, an, 0, &loose, err);
      else rc = finish_mailbox(env, nm, plain, pn, angle, an, had_angle, err);
      pn = an = 0; had_angle = at = colon = 0;
      item = i + 1;
      break;
    default:
      if (in_angle) angle[an++] = c; else plain[pn++] = c;
      if (c == '@' && !in_angle) at = 1;
    }
  }
  if (rc == 0 && (depth || quote || in_angle || lit) && env->keep_bad) {
    /* the items before the unbalanced one are in; the rest is no address */
    while (item < len && isspace((unsigned char)val[item])) item++;
    char *rest = xstrndup(val + item, len - item > 300 ? 300 : len - item);
    rc = rest ? env_bad(env, rest, "unbalanced quote, comment, <...> or [...] in the address list") : MH_ENOMEM;
    free(rest);
    if (rc) rc = fail(err, rc, "address list");
    goto out;
  }
  if (rc == 0 && (depth || quote || in_angle || lit))
    rc = fail(err, MH_EBADADDR, "unbalanced address list '%.*s'", (int)(len > 80 ? 80 : len), val);
  if (rc == 0 && colon) rc = colon_item(env, val, item, len, err);
  else if (rc == 0 && had_angle && pn > pclose)
    rc = angle_split(env, nm, plain, pclose, pn, angle, an, 0, &loose, err);
  else if (rc == 0) rc = finish_mailbox(env, nm, plain, pn, angle, an, had_angle, err);
out:
  free(plain);
  free(angle);
  return rc;
}

/* The header line at p (up to the end of the header block he): its end
** (continuations included) and the length of its name.  0, or MH_ECORRUPT.
** Lines end as eol.h says (CRLF, bare CR, bare LF): as the data writer sends
** them, so a bare CR inside a value starts a new field here too. */
static int hdr_line(const char *buf, size_t p, size_t he, size_t *end, size_t *name_len) {
  size_t q = p, e;
  while (q < he && buf[q] != ':') {
    unsigned char c = (unsigned char)buf[q];
    if (c <= 32 || c >= 127) return MH_ECORRUPT;   /* CR and LF included */
    q++;
  }
  if (q == p || q >= he) return MH_ECORRUPT;
  *name_len = q - p;
  e = q;
  for (;;) {
    const char *nl = mh_eol_find(buf + e, he - e);
    e = nl ? (size_t)(nl - buf) + mh_eol_len(nl, he - (size_t)(nl - buf)) : he;
    if (e < he && (buf[e] == ' ' || buf[e] == '\t')) continue;
    break;
  }
  *end = e;
  return 0;
}

/* Where the header block starting at `from` ends (the blank line's first byte),
** and where the body starts.  0, 1 when not found in buf (eof: buf is all
** there is, so a CR at its very end is a whole line end). */
static int find_blank(const char *buf, size_t len, size_t from, int eof, size_t *he, size_t *body) {
  size_t p = from;
  while (p < len) {
    const char *nl;
    if (mh_eol_len(buf + p, len - p)) {   /* a line with nothing on it */
      if (!eof && buf[p] == '\r' && p + 1 == len) return 1;   /* its LF may follow */
      *he = p;
      *body = p + mh_eol_len(buf + p, len - p);
      return 0;
    }
    nl = mh_eol_find(buf + p, len - p);
    if (!nl) return 1;
    p = (size_t)(nl - buf);
    if (!eof && *nl == '\r' && p + 1 == len) return 1;   /* CR or CRLF: the next byte says */
    p += mh_eol_len(nl, len - p);
  }
  return 1;
}

static int name_is(const char *buf, size_t p, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(buf + p, name, n) == 0;
}

/* The value of the header line [p, end) with its name of n bytes: trimmed. */
static void hdr_value(const char *buf, size_t p, size_t end, size_t n, size_t *vs, size_t *ve) {
  size_t s = p + n + 1;
  while (s < end && (buf[s] == ' ' || buf[s] == '\t')) s++;
  while (end > s && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' ' ||
                     buf[end - 1] == '\t'))
    end--;
  *vs = s;
  *ve = end;
}

/* mh_env_parse; lenient_from: a From header that holds no usable address
** (cron's `From: Cron Daemon` written by a script, a bare local name `root`)
** names no sender instead of making the message unparsable: a drop-in's
** (dropin_head), whose adoption then gives it its owner's (dropin_sender),
** its header kept as written, as `mailhook sendmail` does ("intake accepts"). */
/* The X-Spool-Size line (see size_fill): its value is written once the
** message is, over these zeros, so the envelope is still one write. */
#define SIZE_FIELD "X-Spool-Size: "
#define SIZE_DIGITS 12      /* 999 GB: over the 1 GiB limit of a message */

static int env_parse(const char *buf, size_t len, int eof, int lenient_from, const mh_spool_names *nm,
                     mh_env *env, char *err);

int mh_env_parse(const char *buf, size_t len, int eof, mh_env *env, char *err) {
  return env_parse(buf, len, eof, 0, NULL, env, err);
}

int mh__spool_dropin_env(const char *buf, size_t len, mh_env *env, char *err) {
  return env_parse(buf, len, 1, 1, NULL, env, err);
}

/* A drop-in's X-Sender or X-Receiver (env->keep_bad) gets the builder's rule
** as its To/Cc items do (non-ASCII left to delivery): the spool's own check
** alone took bad@@x (an '@' in the local part) and sent it to the server as
** MAIL FROM:<a@@b> or RCPT TO:<bad@@x>.  A file mailhook wrote (canonical,
** already queued) is not checked again: nothing queued is lost to a new rule. */
static int dropin_addr_bad(const mh_env *env, const char *a, const char **why) {
  if (!env->keep_bad || !*a) return 0;
  return mh_msg_check_addr(a, strlen(a), why) && *why && !strstr(*why, "non-ASCII");
}

static int env_parse(const char *buf, size_t len, int eof, int lenient_from, const mh_spool_names *nm,
                     mh_env *env, char *err) {
  size_t p = 0, he, body, end, n, vs, ve;
  int rc, have_sender = 0, from_done = 0;
  memset(env, 0, sizeof *env);
  env->keep_bad = lenient_from;   /* a drop-in's (see env_bad) */
  if (find_blank(buf, len, 0, eof, &he, &body)) {
    if (!eof) return len > HEAD_CAP ? fail(err, MH_ECORRUPT, "header block over 4 MB") : 1;
    he = body = len;   /* a message without a body */
  }
  if (he == 0) return fail(err, MH_ECORRUPT, "no header lines");
  /* canonical X-Sender / X-Receiver lines first */
  while (p < he) {
    if ((rc = hdr_line(buf, p, he, &end, &n))) break;
    if (name_is(buf, p, n, "X-Sender") && !have_sender) {
      size_t as, ae, ps;
      hdr_value(buf, p, end, n, &vs, &ve);
      env_value_split(buf, vs, ve, &as, &ae, &ps);
      /* a drop-in's sender written absolute (bench@example.com.): without the dot */
      if (!(env->from = xstrndup(buf + as, mh_msg_addr_unroot(buf + as, ae - as)))) goto nomem;
      const char *why = NULL;
      if (mh_addr_check(env->from, 1) || dropin_addr_bad(env, env->from, &why)) {
        rc = fail(err, MH_ECORRUPT, "bad X-Sender '%s'%s%s", env->from, why ? ": " : "", why ? why : "");
        goto bad;
      }
      if (ps < ve) {
        if (!(env->from_params = xstrndup(buf + ps, ve - ps))) goto nomem;
        if (mh_spool_params_ok(env->from_params, 1)) {
          rc = fail(err, MH_ECORRUPT, "bad X-Sender parameters '%.100s'", env->from_params);
          goto bad;
        }
      }
      have_sender = 1;
    } else if (name_is(buf, p, n, "X-Receiver")) {
      size_t as, ae, ps;
      hdr_value(buf, p, end, n, &vs, &ve);
      env_value_split(buf, vs, ve, &as, &ae, &ps);
      char *a = xstrndup(buf + as, mh_msg_addr_unroot(buf + as, ae - as)), *params = NULL;
      if (!a) goto nomem;
      const char *why = NULL;
      if (mh_addr_check(a, 0) || dropin_addr_bad(env, a, &why)) {
        rc = fail(err, MH_ECORRUPT, "bad X-Receiver '%s'%s%s", a, why ? ": " : "", why ? why : "");
        free(a);
        goto bad;
      }
      if (ps < ve && (!(params = xstrndup(buf + ps, ve - ps)) || mh_spool_params_ok(params, 0))) {
        rc = params ? fail(err, MH_ECORRUPT, "bad X-Receiver parameters '%.100s'", params) : MH_ENOMEM;
        free(a);
        free(params);
        if (rc == MH_ENOMEM) goto nomem;
        goto bad;
      }
      rc = env_add_p(env, a, strlen(a), params, a);   /* a taken: kept or freed */
      free(params);
      if (rc) goto nomem;
    } else if (name_is(buf, p, n, "X-Spool-Size") && (have_sender || env->nto) && !env->has_size) {
      /* the message's size after the envelope when it was queued (size_fill) */
      unsigned long long v = 0;
      size_t k;
      hdr_value(buf, p, end, n, &vs, &ve);
      for (k = vs; k < ve && k - vs < SIZE_DIGITS && buf[k] >= '0' && buf[k] <= '9'; k++)
        v = v * 10 + (unsigned)(buf[k] - '0');
      if (k == vs || k != ve) {
        rc = fail(err, MH_ECORRUPT, "bad X-Spool-Size '%.*s'", (int)(ve - vs > 40 ? 40 : ve - vs), buf + vs);
        goto bad;
      }
      env->has_size = 1;
      env->size = (uint64_t)v;
    } else if (name_is(buf, p, n, "X-Submitter-Uid") && (have_sender || env->nto)) {
      /* the submitter's uid, and the end of the envelope: a line after it is
      ** the message's, whatever its name (a caller's X-Receiver lookalike) */
      unsigned long long v = 0;
      size_t k;
      hdr_value(buf, p, end, n, &vs, &ve);
      for (k = vs; k < ve && k - vs < 10 && buf[k] >= '0' && buf[k] <= '9'; k++) v = v * 10 + (unsigned)(buf[k] - '0');
      if (k == vs || k != ve || v >= 4294967295ULL) {
        rc = fail(err, MH_ECORRUPT, "bad X-Submitter-Uid '%.*s'", (int)(ve - vs > 40 ? 40 : ve - vs), buf + vs);
        goto bad;
      }
      env->has_uid = 1;
      env->uid = (unsigned long)v;
      p = end;
      break;
    } else {
      break;
    }
    p = end;
  }
  if (have_sender || env->nto) {
    if (!env->nto) { rc = fail(err, MH_ECORRUPT, "X-Sender without X-Receiver"); goto bad; }
    if (!env->from && !(env->from = strdup(""))) goto nomem;
    env->canonical = 1;
    env->offset = p;
    if (p >= he) { rc = fail(err, MH_ECORRUPT, "no message after the X- lines"); goto bad; }
    /* the message proper starts with a header field: anything else is a line
    ** that was smuggled into (or cut out of) the envelope */
    if (hdr_line(buf, p, he, &end, &n)) {
      const char *nl = mh_eol_find(buf + p, he - p);
      size_t ln = nl ? (size_t)(nl - (buf + p)) : he - p;
      rc = fail(err, MH_ECORRUPT, "the line after the X- envelope is not a header ('%.*s')",
                (int)(ln > 60 ? 60 : ln), buf + p);
      goto bad;
    }
    return 0;
  }
  /* else the envelope comes from From and To/Cc/Bcc; every line must be a header */
  for (p = 0; p < he; p = end) {
    if (hdr_line(buf, p, he, &end, &n)) {
      const char *nl = mh_eol_find(buf + p, he - p);
      size_t ln = 1;
      for (size_t k = 0; k < p; k++) ln += buf[k] == '\n' || (buf[k] == '\r' && buf[k + 1] != '\n');
      rc = fail(err, MH_ECORRUPT, "line %zu is not a header ('%.*s')", ln,
                (int)((nl ? (size_t)(nl - buf) : he) - p > 60 ? 60 : (nl ? (size_t)(nl - buf) : he) - p),
                buf + p);
      goto bad;
    }
    hdr_value(buf, p, end, n, &vs, &ve);
    if (name_is(buf, p, n, "From") && !from_done) {
      mh_env tmp;
      memset(&tmp, 0, sizeof tmp);
      rc = mh_env_addrs(buf + vs, ve - vs, &tmp, err);
      if (rc == 0 && tmp.nto) { env->from = tmp.to[0]; tmp.to[0] = strdup(""); }
      mh_env_free(&tmp);
      if (rc && rc != MH_ENOMEM && lenient_from) rc = 0;   /* no sender named (see env_parse) */
      if (rc) { rc = rc == MH_ENOMEM ? rc : MH_ECORRUPT; goto bad_from; }
      from_done = 1;
    } else if (name_is(buf, p, n, "To") || name_is(buf, p, n, "Cc") || name_is(buf, p, n, "Bcc")) {
      rc = env_addrs(buf + vs, ve - vs, env, nm, err);
      if (rc == MH_ENOMEM) goto nomem;   /* not the file's fault: never corrupt/ for it */
      if (rc) {
        char why[MH_SPOOL_ERRLEN];
        snprintf(why, sizeof why, "%s", err ? err : "");
        rc = fail_shown(err, MH_ECORRUPT, "%.*s header: %s", (int)n, buf + p, why);   /* To, Cc or Bcc: why an err */
        goto bad;
      }
    }
  }
  if (!env->nto && env->nbad) {
    /* only bad items: nothing to send (sendmail -t's "no usable recipient") */
    char why[4 * MH_SPOOL_ERRLEN];   /* more than err holds: fail_shown cuts it, never inside an escape */
    size_t o = 0;
    for (size_t i = 0; i < env->nbad && o + 8 < sizeof why; i++)
      o += (size_t)snprintf(why + o, sizeof why - o, "%s'%s': %s", i ? "; " : "", env->bad[i].rcpt,
                            env->bad[i].reply);
    if (o >= sizeof why) memcpy(why + sizeof why - 4, "...", 4);
    rc = fail_shown(err, MH_ECORRUPT, "no usable recipient: %s", why);   /* the items and whys shown (env_bad) */
    goto bad;
  }
  if (!env->nto) { rc = fail(err, MH_ECORRUPT, "no recipients (no X-Receiver, To, Cc or Bcc)"); goto bad; }
  if (!env->from && !(env->from = strdup(""))) goto nomem;
  env->offset = 0;
  return 0;
bad_from:
  if (err) {
    char why[MH_SPOOL_ERRLEN];
    snprintf(why, sizeof why, "%s", err);
    fail_shown(err, MH_ECORRUPT, "From header: %s", why);
  }
  goto bad;
nomem:
  rc = fail(err, MH_ENOMEM, "envelope");
bad:
  mh_env_free(env);
  return rc;
}

/* The fields left out of what is sent, at every intake (sendmail, a drop-in,
** bytes given to the Lua API), as Postfix's cleanup drops them
** (message_drop_headers): Bcc and Resent-Bcc; Return-Path, the final MDA's to
** add (RFC 5321 4.4); Content-Length, wrong once a header is added or a line
** end changed (a reader that trusts it cuts the body).  (submit.lua's
** DROPPED is the same list, for the header intake builds itself.) */
static int never_sent(const char *buf, size_t p, size_t n) {
  return name_is(buf, p, n, "Bcc") || name_is(buf, p, n, "Resent-Bcc") || name_is(buf, p, n, "Return-Path") ||
         name_is(buf, p, n, "Content-Length");
}

/* The one rule for leaving those fields out: the runs of the header block
** buf[0..he) that are none of them (their continuation lines go with them),
** each given to put(arg, run, len) in order.  0, or what put returned. */
static int no_bcc_runs(const char *buf, size_t he, int (*put)(void *, const char *, size_t), void *arg) {
  size_t p = 0, end, n, run = 0;
  int rc;
  while (p < he) {
    if (hdr_line(buf, p, he, &end, &n)) end = he, n = 0;
    if (n && never_sent(buf, p, n)) {
      if ((rc = put(arg, buf + run, p - run))) return rc;
      run = end;
    }
    p = end;
  }
  return put(arg, buf + run, he - run);
}

static int put_fd(void *arg, const char *p, size_t n) { return mh_fsutil_write_all(*(int *)arg, p, n); }

/* Writes the header block buf[0..he) without its Bcc lines. */
static int write_no_bcc(int fd, const char *buf, size_t he) { return no_bcc_runs(buf, he, put_fd, &fd); }

/* An in-place sink: a run never starts before what was kept so far ends. */
typedef struct { char *out; size_t len; } kept;
static int put_kept(void *arg, const char *p, size_t n) {
  kept *k = (kept *)arg;
  memmove(k->out + k->len, p, n);
  k->len += n;
  return 0;
}

size_t mh__spool_drop_bcc(char *buf, size_t len) {
  kept k = { buf, 0 };
  no_bcc_runs(buf, len, put_kept, &k);
  return k.len;
}

/* The X-Sender / X-Receiver lines for an envelope, in one write; the DSN
** parameters (from_params, to_params: may be NULL) after the addresses; then
** X-Spool-Size (zeros, for size_fill: *size_at gets where its digits are and
** *envlen the envelope's length, fd being at offset 0), and X-Submitter-Uid,
** the submitter's uid, always (the envelope's last line). */
static int write_env(int fd, const char *from, const char *from_params, const char *const *to,
                     const char *const *to_params, size_t nto, unsigned long uid, size_t *size_at,
                     size_t *envlen) {
  /* the fixed lines: "X-Sender: <>\r\n" (14, the null sender), the size line
  ** (28), "X-Submitter-Uid: " with 20 digits (39): 81, and the NUL.  It was
  ** 64 + the sender: short of room for the null sender and a uid of 5 digits
  ** (65534), so the uid line lost its CRLF and the write read past buf */
  size_t cap = 96 + strlen(from) + (from_params ? strlen(from_params) + 1 : 0), len = 0;
  char *buf;
  int rc;
  for (size_t i = 0; i < nto; i++)
    cap += 16 + strlen(to[i]) + (to_params && to_params[i] ? strlen(to_params[i]) + 1 : 0);
  if (!(buf = malloc(cap))) return MH_ENOMEM;
  len += (size_t)snprintf(buf, cap, "X-Sender: %s%s%s\r\n", from[0] ? from : "<>",
                          from_params && *from_params ? " " : "", from_params ? from_params : "");
  for (size_t i = 0; i < nto; i++) {
    const char *tp = to_params && to_params[i] ? to_params[i] : "";
    len += (size_t)snprintf(buf + len, cap - len, "X-Receiver: %s%s%s\r\n", to[i], *tp ? " " : "", tp);
  }
  *size_at = len + strlen(SIZE_FIELD);
  len += (size_t)snprintf(buf + len, cap - len, SIZE_FIELD "%0*d\r\n", SIZE_DIGITS, 0);
  len += (size_t)snprintf(buf + len, cap - len, "X-Submitter-Uid: %lu\r\n", uid);
  *envlen = len;
  rc = mh_fsutil_write_all(fd, buf, len);
  free(buf);
  return rc;
}

/* The message is written whole in fd (a tmp/ file, not fsynced yet): its size
** after the envelope (envlen bytes) goes into the X-Spool-Size line's digits
** at size_at.  A load compares it with what the file holds then (fill_entry):
** a spool file cut short or written over after it was queued is never sent
** as if it were whole (docs/spool.md, "a spool file that changed").  0 or
** -errno. */
static int size_fill(int fd, size_t size_at, size_t envlen) {
  struct stat st;
  char d[SIZE_DIGITS + 1];
  if (fstat(fd, &st) < 0) return -errno;
  if ((uint64_t)st.st_size < envlen) return MH_EINVAL;
  snprintf(d, sizeof d, "%0*llu", SIZE_DIGITS, (unsigned long long)((uint64_t)st.st_size - envlen));
  if (strlen(d) != SIZE_DIGITS) return MH_ELIMIT;
  ssize_t w = pwrite(fd, d, SIZE_DIGITS, (off_t)size_at);
  if (w != SIZE_DIGITS) return w < 0 ? -errno : -EIO;
  return 0;
}

/* ----------------------------------------------------------- enqueue */

typedef struct {
  int fd;            /* the tmp file, -1 once closed */
  int state;         /* 0 nothing, 1 in tmp/, 2 renamed into pickup/ */
  int side;          /* 1: its sidecar (items left out) is in pickup/ */
} slot;

static void state_free(mh_state *st);
static int refused_set(mh_state *st, const char *rcpt, const char *reply);
static int state_write(mh_spool *sp, int dirfd, const char *id, const mh_state *st);

/* The items an enqueue left out of the envelope (it->refused: sendmail's `To:
** a@x, Some Name`), recorded the way dropin_refused records a drop-in's: as
** refused in pickup/ID.state, written (fsynced, and the deliverer told:
** state_write) BEFORE ID.eml is renamed in, so no deliverer can load the
** message without them and send it as if nothing was left out.  The scan's
** orphan check looks at tmp/ID before pickup/ID.eml, so the sidecar is not
** taken for an orphan while its message is on its way.  An item spelled as
** one of the recipients is not recorded: the recipient would never get the
** message.  *written: 1 when a sidecar was written (none when nothing was
** left to record).  0 or the error. */
static int left_out_write(mh_spool *sp, const mh_spool_item *it, int *written) {
  mh_state st;
  int rc = 0;
  *written = 0;
  memset(&st, 0, sizeof st);
  for (size_t k = 0; k < it->nrefused && !rc; k++) {
    size_t j;
    for (j = 0; j < it->nto && strcmp(it->to[j], it->refused[k].rcpt); j++) {}
    if (j == it->nto) rc = refused_set(&st, it->refused[k].rcpt, it->refused[k].reply);
  }
  if (!rc && st.nrefused) {
    rc = fault_at("leftout-state") ? -errno : state_write(sp, sp->pickupfd, it->id, &st);
    *written = rc == 0;
  }
  state_free(&st);
  return rc;
}

/* Removes pickup/ID.state (a sidecar left_out_write made, when the message is
** not queued after all). */
static void left_out_unlink(mh_spool *sp, const char *id) {
  char side[MH_SPOOL_IDLEN + 8];
  snprintf(side, sizeof side, "%s.state", id);
  unlinkat(sp->pickupfd, side, 0);
}

static int enqueue_once(mh_spool *sp, mh_spool_item *items, size_t n, const char *given, char *err) {
  slot *s;
  size_t i;
  int rc = 0;
  char name[MH_SPOOL_IDLEN + 8];
  if (n == 0 || n > MH_SPOOL_MAXBATCH) return fail(err, MH_EINVAL, "enqueue of %zu messages", n);
  for (i = 0; i < n; i++) {
    if (mh_addr_check(items[i].from ? items[i].from : "", 1))
      return fail(err, MH_EBADADDR, "sender '%s'", items[i].from);
    if (items[i].nto == 0) return fail(err, MH_EBADADDR, "no recipients");
    for (size_t k = 0; k < items[i].nto; k++)
      if (mh_addr_check(items[i].to[k], 0))
        return fail(err, MH_EBADADDR, "recipient '%s'", items[i].to[k]);
    if (mh_spool_params_ok(items[i].from_params, 1))
      return fail(err, MH_EBADADDR, "DSN parameters '%.100s' of the sender", items[i].from_params);
    if (items[i].has_uid && items[i].uid >= 4294967295UL)
      return fail(err, MH_EINVAL, "submitter uid %lu", items[i].uid);
    for (size_t k = 0; items[i].to_params && k < items[i].nto; k++)
      if (mh_spool_params_ok(items[i].to_params[k], 0))
        return fail(err, MH_EBADADDR, "DSN parameters '%.100s' of '%s'", items[i].to_params[k], items[i].to[k]);
    if (items[i].nrefused > MH_ENV_BAD_MAX || (items[i].nrefused && !items[i].refused))
      return fail(err, MH_EINVAL, "%zu items left out (at most %d are recorded)", items[i].nrefused, MH_ENV_BAD_MAX);
    for (size_t k = 0; k < items[i].nrefused; k++) {
      const mh_refused *r = &items[i].refused[k];
      if (!r->rcpt || !*r->rcpt || strlen(r->rcpt) > MH_SPOOL_REFUSED_LEN || !r->reply ||
          strlen(r->reply) > MH_SPOOL_REFUSED_LEN)
        return fail(err, MH_EINVAL, "item left out %zu: empty, or over %d bytes", k + 1, MH_SPOOL_REFUSED_LEN);
    }
  }
  s = calloc(n, sizeof *s);
  if (!s) return fail(err, MH_ENOMEM, "enqueue");
  for (i = 0; i < n; i++) s[i].fd = -1;
  /* 1. every message into tmp/ID, each under a flock the sweeper respects */
  for (i = 0; i < n; i++) {
    mh_spool_item *it = &items[i];
    if (given) {   /* an adoption's, named in its original's aside: this id or none */
      memcpy(it->id, given, MH_SPOOL_IDLEN);
      mh_spool_raise_seq(sp, it->id, NULL);
    } else if ((rc = mh_spool_new_id(sp, it->id, err))) {
      goto undo;   /* (err names DIR/seq and why: held for LOCK_WAIT_MS, say) */
    }
    if ((rc = create_tmp(sp, it->id, &s[i].fd))) {
      fail(err, rc, "spool %s: create tmp/%s", sp->dir, it->id);
      goto undo;
    }
    s[i].state = 1;
    size_t size_at, envlen;
    if ((rc = write_env(s[i].fd, it->from ? it->from : "", it->from_params, it->to, it->to_params,
                        it->nto, it->has_uid ? it->uid : mh_privdrop_caller(), &size_at, &envlen)) ||
        (rc = it->write(it->arg, s[i].fd)) || (rc = size_fill(s[i].fd, size_at, envlen))) {
      fail(err, rc, "spool %s: write tmp/%s", sp->dir, it->id);
      goto undo;
    }
  }
  /* 2. start write-back of all, then wait for each (group commit) */
  if (n > 1)
    for (i = 0; i < n; i++) sync_file_range(s[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  for (i = 0; i < n; i++) {
    if ((rc = fsync_fd(s[i].fd))) { fail(err, rc, "spool %s: fsync tmp/%s", sp->dir, items[i].id); goto undo; }
  }
  /* 3. rename each into pickup/, never over an existing file; the items an
     item left out first, in its sidecar (left_out_write) */
  for (i = 0; i < n; i++) {
    for (;;) {
      const char *what = "the rename from tmp/ into pickup/";
      snprintf(name, sizeof name, "%s.eml", items[i].id);
      rc = 0;
      /* never a sidecar for an id queued already: it would be that message's */
      if (items[i].nrefused && (rc = mh_spool_has_copy(sp, items[i].id) ? -EEXIST : 0) == 0 &&
          (rc = left_out_write(sp, &items[i], &s[i].side)))
        what = "its sidecar, pickup/ID.state (the items left out)";
      if (rc == 0) {
        TEST_POINT("enqueue-sidecar");
        rc = rename_new(sp->tmpfd, items[i].id, sp->pickupfd, name);
        if (rc && s[i].side) { left_out_unlink(sp, items[i].id); s[i].side = 0; }
      }
      if (rc == -EEXIST && !given) {
        /* an id issued before a lost seq update: take a later one */
        char old[MH_SPOOL_IDLEN];
        memcpy(old, items[i].id, sizeof old);
        if ((rc = mh_spool_new_id(sp, items[i].id, err))) {
          memcpy(items[i].id, old, sizeof old);   /* tmp/OLD is the file undo removes */
          goto undo;   /* err names DIR/seq */
        }
        if (renameat(sp->tmpfd, old, sp->tmpfd, items[i].id) < 0 && (rc = -errno)) {
          memcpy(items[i].id, old, sizeof old);
          what = "the rename in tmp/ for a new id";
        } else {
          continue;
        }
      }
      if (rc) { fail(err, rc, "spool %s: %s: %s", sp->dir, items[i].id, what); goto undo; }
      break;
    }
    s[i].state = 2;
  }
  /* 4. one folder fsync makes every new name durable */
  if ((rc = fsync_fd(sp->pickupfd))) { fail(err, rc, "spool %s: fsync pickup/", sp->dir); goto undo; }
  for (i = 0; i < n; i++) close(s[i].fd);
  free(s);
  return 0;
undo:
  /* nothing is acknowledged: remove every file of the batch (never retry an fd) */
  for (i = 0; i < n; i++) {
    if (s[i].state == 1) unlinkat(sp->tmpfd, items[i].id, 0);
    if (s[i].state == 2) {
      snprintf(name, sizeof name, "%s.eml", items[i].id);
      unlinkat(sp->pickupfd, name, 0);
    }
    if (s[i].side) left_out_unlink(sp, items[i].id);
    if (s[i].fd >= 0) close(s[i].fd);
    items[i].id[0] = '\0';
  }
  fsync(sp->pickupfd);
  free(s);
  return rc;
}

/* A tmp/ or pickup/ removed since the last look (ENOENT: a dead folder takes
** no new name) is followed, and the batch written again, once. */
int mh_spool_enqueue(mh_spool *sp, mh_spool_item *items, size_t n, char *err) {
  int rc;
  mh_spool_follow(sp, 0, NULL);
  rc = enqueue_once(sp, items, n, NULL, err);
  if (rc == -ENOENT && mh_spool_follow(sp, 1, NULL) == 0) rc = enqueue_once(sp, items, n, NULL, err);
  return rc;
}

int mh_spool_enqueue_as(mh_spool *sp, mh_spool_item *item, const char *id, char *err) {
  int rc;
  if (!mh_spool_is_id(id)) return fail(err, MH_EINVAL, "bad id '%.20s'", id);
  mh_spool_follow(sp, 0, NULL);
  rc = enqueue_once(sp, item, 1, id, err);
  if (rc == -ENOENT && mh_spool_follow(sp, 1, NULL) == 0) rc = enqueue_once(sp, item, 1, id, err);
  return rc;
}

/* ----------------------------------------------------------- sidecar */

static void state_free(mh_state *st) {
  for (size_t i = 0; i < st->ndone; i++) free(st->done[i]);
  free(st->done);
  for (size_t i = 0; i < st->nrefused; i++) { free(st->refused[i].rcpt); free(st->refused[i].reply); }
  free(st->refused);
  free(st->last_reply);
  free(st->reason);
  memset(st, 0, sizeof *st);
}

/* Adds rcpt to st's refused recipients, or gives it the new reply.  0 or MH_ENOMEM. */
static int refused_set(mh_state *st, const char *rcpt, const char *reply) {
  size_t k;
  char *r;
  for (k = 0; k < st->nrefused && strcmp(st->refused[k].rcpt, rcpt); k++) {}
  if (!(r = strdup(reply ? reply : ""))) return MH_ENOMEM;
  if (k < st->nrefused) {
    free(st->refused[k].reply);
    st->refused[k].reply = r;
    return 0;
  }
  mh_refused *nr = realloc(st->refused, (st->nrefused + 1) * sizeof *nr);
  if (!nr || !(nr[st->nrefused].rcpt = strdup(rcpt))) {
    free(r);
    if (nr) st->refused = nr;
    return MH_ENOMEM;
  }
  st->refused = nr;
  nr[st->nrefused++].reply = r;
  return 0;
}

static int set_aside(mh_spool *sp, int dirfd, const char *name, int rc, const struct stat *sb);

/* Reads DIRFD/ID.state into st (a missing file leaves st zeroed): 1 found, 0
** none, or a negative code.  An ID.state that is not a regular file (a FIFO
** or a link: planted, never ours) or is over 4 MB is no state: it is set
** aside (set_aside) and 0 returned, so a message is never stuck behind it. */
static int state_read(mh_spool *sp, int dirfd, const char *id, mh_state *st) {
  char name[300], *buf = NULL, *line, *save;
  size_t len = 0;
  struct stat sb;
  int rc;
  memset(st, 0, sizeof *st);
  if (strlen(id) + 7 > sizeof name) return MH_EINVAL;
  join2(name, id, strlen(id), ".state", 6);
  rc = mh_fsutil_read(dirfd, name, 0, HEAD_CAP, &buf, &len, &sb);
  if (rc == -ENOENT) return 0;
  if (rc == MH_ENOTREG || rc == MH_ELIMIT) { set_aside(sp, dirfd, name, rc, &sb); return 0; }
  if (rc < 0) return rc;
  rc = 1;   /* found */
  for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *v = strchr(line, ' ');
    if (!v) continue;
    *v++ = '\0';
    if (!strcmp(line, "attempts")) st->attempts = atoi(v);
    else if (!strcmp(line, "next_attempt")) st->next_attempt = strtoll(v, NULL, 10);
    else if (!strcmp(line, "failed_at")) st->failed_at = strtoll(v, NULL, 10);
    else if (!strcmp(line, "retried_at")) st->retried_at = strtoll(v, NULL, 10);
    else if (!strcmp(line, "last_reply")) { free(st->last_reply); st->last_reply = strdup(v); }
    else if (!strcmp(line, "reason")) { free(st->reason); st->reason = strdup(v); }
    else if (!strcmp(line, "done")) {
      char **nd = realloc(st->done, (st->ndone + 1) * sizeof *nd);
      if (!nd) { rc = MH_ENOMEM; break; }
      st->done = nd;
      if ((nd[st->ndone] = strdup(v))) st->ndone++;
    } else if (!strcmp(line, "refused")) {   /* "refused ADDR<TAB>REPLY" */
      char *tab = strchr(v, '\t');
      if (tab) *tab++ = '\0';
      if ((rc = refused_set(st, v, tab ? tab : "")) < 0) break;
      rc = 1;
    }
  }
  free(buf);
  if (rc < 0) state_free(st);
  return rc;
}

/* Appends "key text" with CR/LF/NUL turned into spaces. */
static void put_text(FILE *f, const char *key, const char *v) {
  if (!v) return;
  fprintf(f, "%s ", key);
  for (; *v; v++) fputc(*v == '\r' || *v == '\n' ? ' ' : *v, f);
  fputc('\n', f);
}

/* Appends "refused ADDR<TAB>REPLY" (control characters of both as spaces). */
static void put_refused(FILE *f, const mh_refused *r) {
  fputs("refused ", f);
  for (const char *v = r->rcpt; *v; v++) fputc((unsigned char)*v < ' ' ? ' ' : *v, f);
  fputc('\t', f);
  for (const char *v = r->reply; *v; v++) fputc((unsigned char)*v < ' ' ? ' ' : *v, f);
  fputc('\n', f);
}

/* Writes st as DIRFD/ID.state atomically: tmp file, fsync, rename, fsync DIRFD. */
static int state_write(mh_spool *sp, int dirfd, const char *id, const mh_state *st) {
  char tname[300], name[300];
  char *mem = NULL;
  size_t mlen = 0;
  FILE *f;
  int fd, rc;
  if (sp->tmpfd < 0) return -ENOENT;   /* a NO_CREATE handle of a spool without tmp/ */
  if (!(f = open_memstream(&mem, &mlen))) return MH_ENOMEM;
  fprintf(f, "attempts %d\nnext_attempt %" PRId64 "\n", st->attempts, st->next_attempt);
  put_text(f, "last_reply", st->last_reply);
  for (size_t i = 0; i < st->ndone; i++) put_text(f, "done", st->done[i]);
  for (size_t i = 0; i < st->nrefused; i++) put_refused(f, &st->refused[i]);
  put_text(f, "reason", st->reason);
  if (st->failed_at) fprintf(f, "failed_at %" PRId64 "\n", st->failed_at);
  if (st->retried_at) fprintf(f, "retried_at %" PRId64 "\n", st->retried_at);
  if (fclose(f) != 0) { free(mem); return MH_ENOMEM; }
  snprintf(tname, sizeof tname, "%s.state.%ld.%u", id, (long)getpid(),
           __atomic_add_fetch(&tmp_counter, 1, __ATOMIC_RELAXED));
  snprintf(name, sizeof name, "%s.state", id);
  if ((rc = create_tmp(sp, tname, &fd))) { free(mem); return rc; }
  rc = fault_at("state-write") ? -errno : mh_fsutil_write_all(fd, mem, mlen);
  free(mem);
  if (!rc) rc = fsync_fd(fd);
  close(fd);
  if (!rc && renameat(sp->tmpfd, tname, dirfd, name) < 0) rc = -errno;
  if (rc) { unlinkat(sp->tmpfd, tname, 0); return rc; }
  int t = listing_touch(sp, dirfd, id);   /* in place: the deliverer learns of it, whatever the fsync says */
  if ((rc = fsync_fd(dirfd))) return rc;
  return t;
}

/* --------------------------------------------------------- load, list */

/* The header block of a drop-in (open as fd, read from its start) through
** intake's converter (runtime/intake.h), the rule `mailhook sendmail` applies
** to its stdin: CR* LF is one line end, a bare CR ends its line, every line end
** becomes CRLF.  Parsed into env.  The one reader of a drop-in's head, for its
** adoption and for a listing by anyone else (`mailhook queue` without the
** lock): both see the same envelope.  *inp (the reader, positioned after
** *lenp bytes of *bufp, *capp large) and *bufp are the caller's to free,
** whatever the result.  0; MH_ECORRUPT (err says why); MH_ENOMEM; -errno. */
static int dropin_head(int fd, const mh_spool_names *nm, mh_intake **inp, char **bufp, size_t *lenp,
                       size_t *capp, mh_env *env, char *err) {
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  mh_intake *in = mh_intake_new(fd, 0);
  int rc;
  *inp = in;
  *bufp = buf;
  *lenp = 0;
  *capp = cap;
  if (!buf || !in) return MH_ENOMEM;
  for (;;) {  /* the whole header block into memory, converted */
    long n;
    if (cap - len < 4) {
      if (cap >= HEAD_CAP) return fail(err, MH_ECORRUPT, "header block over 4 MB");
      char *nb = realloc(buf, cap * 2);
      if (!nb) return MH_ENOMEM;
      *bufp = buf = nb;
      *capp = cap *= 2;
    }
    do {   /* the buffer filled before it is parsed (again): doubling, not a parse per read */
      n = mh_intake_read(in, buf + len, cap - len);
      if (n < 0) return (int)n;
      *lenp = len += (size_t)n;
    } while (n > 0 && cap - len >= 4);
    rc = env_parse(buf, len, n == 0, 1, nm, env, err);
    if (rc != 1) return rc;
    if (n == 0) return fail(err, MH_ECORRUPT, "no header block");   /* never: eof decides */
  }
}

/* Reads the head of the open file fd until mh_env_parse can decide.  With
** head, the bytes read stay there (*head, *headlen; the caller frees them): a
** small file is then read once.  *head may hold on entry what first_read
** read (*headlen bytes of the HEAD_FIRST it asked): not read again. */
#define HEAD_FIRST 8192
static int read_env(int fd, mh_env *env, char **head, size_t *headlen, char *err) {
  size_t cap = HEAD_FIRST, len = 0;
  int rc, pre = head && *head;
  char *buf = pre ? *head : malloc(cap);
  if (pre) { len = *headlen; *head = NULL; }
  if (!buf) return fail(err, MH_ENOMEM, "read");
  for (;;) {
    ssize_t n;
    if (pre) {
      n = (ssize_t)len;
      pre = 0;
    } else {
      n = pread(fd, buf + len, cap - len, (off_t)len);
      if (n < 0) { rc = fail(err, -errno, "read"); break; }
      len += (size_t)n;
    }
    rc = mh_env_parse(buf, len, n == 0 || len < cap, env, err);
    if (rc != 1) break;
    if (cap >= HEAD_CAP) { rc = fail(err, MH_ECORRUPT, "header block over 4 MB"); break; }
    char *nb = realloc(buf, cap * 2);
    if (!nb) { rc = fail(err, MH_ENOMEM, "read"); break; }
    buf = nb;
    cap *= 2;
  }
  if (head && rc == 0) { *head = buf; *headlen = len; return 0; }
  free(buf);
  return rc;
}

/* The deliverer's first read of a listed file opened with MH_FS_UNREAD (no
** fstat after the open: one system call a message, issue 16), which tells
** what the fstat told.  A read shorter than asked is the whole file: spool
** files are written whole in tmp/ and renamed into pickup/, never changed
** after (a drop-in written in place is no listed id), so its size is what
** came.  A FIFO or a socket swapped in since the scan fails the pread
** (ESPIPE: nothing read), a folder too (EISDIR); a read that fails or fills
** the buffer (a file of HEAD_FIRST bytes or more) takes the fstat, as
** before.  What the fstat alone would have refused is a device node whose
** read returns less than asked: only root can make one in pickup/, the open
** already happened (MH_FS_LISTED), and O_NONBLOCK keeps the read from
** waiting; it is then parsed like a message (an empty read: set aside to
** corrupt/).  *sb gets S_IFREG and the size, or the fstat.  0 (*buf, *len:
** the bytes read, the caller's), MH_ENOTREG (sb says what it is), or the
** error. */
static int first_read(int fd, struct stat *sb, char **buf, size_t *len) {
  char *b = malloc(HEAD_FIRST);
  ssize_t n;
  if (!b) return MH_ENOMEM;
  do n = pread(fd, b, HEAD_FIRST, 0); while (n < 0 && errno == EINTR);
  if (n >= 0 && n < HEAD_FIRST) {
    sb->st_mode = S_IFREG;
    sb->st_size = n;
  } else {
    int e = n < 0 ? errno : 0;
    if (fstat(fd, sb) < 0) e = errno;
    else if (!S_ISREG(sb->st_mode)) { free(b); return MH_ENOTREG; }
    if (e) { free(b); return -e; }
  }
  *buf = b;
  *len = (size_t)n;
  return 0;
}

void mh_spool_entry_free(mh_spool_entry *e) {
  mh_env_free(&e->env);
  state_free(&e->state);
  free(e->data);
  e->data = NULL;
}

/* e->data: the file from the envelope's end, when small enough; taken from
** the head already read (head, len: ownership passes here) when it holds it. */
static int read_data(int fd, mh_spool_entry *e, size_t data_max, char *head, size_t len, char *err) {
  size_t want, got = 0;
  if (e->size < (int64_t)e->env.offset) { free(head); return 0; }
  want = (size_t)(e->size - (int64_t)e->env.offset);
  if (want > data_max) { free(head); return 0; }
  if (head && len == (size_t)e->size && len >= e->env.offset) {
    memmove(head, head + e->env.offset, want);
    e->data = head;
    e->datalen = want;
    return 0;
  }
  free(head);
  if (!(e->data = malloc(want + 1))) return fail(err, MH_ENOMEM, "read");
  while (got < want) {
    ssize_t n = pread(fd, e->data + got, want - got, (off_t)(e->env.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { free(e->data); e->data = NULL; return fail(err, -errno, "%s", e->path); }
    if (n == 0) break;   /* shorter than its size said: send what is there */
    got += (size_t)n;
  }
  e->datalen = got;
  return 0;
}

/* Clears e and fills its id, path and folder from name in dirfd.  The id
** and path buffers (4 KB) are written as strings here, not cleared first:
** a memset of the whole entry was ~550 instructions a message loaded. */
static void entry_names(mh_spool *sp, int dirfd, const char *name, mh_spool_entry *e) {
  size_t nl = strlen(name);
  /* id, failed and path first, then size: nothing else is left uncleared */
  _Static_assert(offsetof(mh_spool_entry, failed) == sizeof e->id &&
                 offsetof(mh_spool_entry, path) <= sizeof e->id + 8 &&
                 offsetof(mh_spool_entry, size) <= offsetof(mh_spool_entry, path) + sizeof e->path + 8,
                 "mh_spool_entry: id, failed, path, then size");
  memset((char *)e + offsetof(mh_spool_entry, size), 0, sizeof *e - offsetof(mh_spool_entry, size));
  e->failed = dirfd == sp->failedfd;
  size_t dl = strlen(sp->dir);
  if (nl == 20 && !strcmp(name + 16, ".eml")) join2(e->id, name, 16, "", 0);
  else snprintf(e->id, sizeof e->id, "%s", name);
  if (dl + nl + 9 < sizeof e->path) {   /* DIR/pickup/NAME (failed/ is as long) */
    join2(e->path, sp->dir, dl, e->failed ? "/failed/" : "/pickup/", 8);
    memcpy(e->path + dl + 8, name, nl + 1);
  } else {
    snprintf(e->path, sizeof e->path, "%s/%s/%s", sp->dir, e->failed ? "failed" : "pickup", name);
  }
}

static const char *dropin_bad_reply(char *out, size_t cap, const char *why, const char *vname);

/* Fills e from the open file fd (named name in the folder dirfd); st is the
** fstat of fd that mh_fsutil_open made (its step 3), not taken again. */
/* Whether some process has FD's file open for writing: a read lease is refused
** (EAGAIN) while any writer has it open.  The lease is let go at once; a writer
** opening the file in that instant makes the kernel send SIGIO, whose default
** ends the process: ignored, unless the host chose a handler (the lock holder
** does the same when it takes the lock).  0 when it cannot tell (EACCES: a
** reader who neither owns the file nor has CAP_LEASE; EINVAL: no leases). */
static const char dropin_busy[] = "still being written (a program has it open for writing): "
                                  "adopted once complete and closed";
static int writer_open(int fd) {
  struct sigaction sa;
  if (sigaction(SIGIO, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGIO, SIG_IGN);
  if (fault_at("lease") || fcntl(fd, F_SETLEASE, F_RDLCK) < 0) return errno == EAGAIN;
  fcntl(fd, F_SETLEASE, F_UNLCK);
  return 0;
}

static int fill_entry(mh_spool *sp, int dirfd, int fd, const struct stat *st, const char *name,
                      int state, mh_spool_entry *e, char **head, size_t *headlen, char *err) {
  int rc;
  entry_names(sp, dirfd, name, e);
  e->size = st->st_size;
  e->queued_at = mh_spool_is_id(e->id) ? parse_hex(e->id, 16) / 1000000 : (int64_t)st->st_mtime;
  /* a drop-in not adopted yet is read as its adoption will read it (the
     listing of anyone but the lock holder, who adopts at each scan) */
  int busy = 0;
  if (!head && !mh_spool_is_id(e->id)) {
    mh_intake *in;
    char *buf;
    size_t len, cap;
    mh_spool_names *nm = names_get(sp);
    /* one written in place, still open: what is there so far is no verdict
       (its adoption waits for the close, dropin_check); said as such, not as
       a file the service will set aside nor as the message it will be */
    busy = dirfd == sp->pickupfd && writer_open(fd);
    rc = dropin_head(fd, nm, &in, &buf, &len, &cap, &e->env, err);
    names_put(sp, nm);
    mh_intake_free(in);
    free(buf);
    if (rc == MH_ECORRUPT && busy) {
      char vn[VIS_LEN];
      return fail_shown(err, -EBUSY, "pickup/%s is %s", vis(name, vn), dropin_busy);
    }
    if (rc) return rc == MH_ENOMEM ? fail(err, rc, "read") : rc;
    if (!e->env.canonical && !*e->env.from) {
      /* it names no sender: listed with the one its adoption will give it
         (dropin_sender), not as the null sender it will never go from */
      char who[600];
      dropin_sender(sp, st->st_uid, who, sizeof who);
      char *c = strdup(who);
      if (!c) return fail(err, MH_ENOMEM, "read");
      free(e->env.from);
      e->env.from = c;
    }
  } else if ((rc = read_env(fd, &e->env, head, headlen, err))) {
    return rc;
  } else if (e->env.has_size && (uint64_t)e->size != e->env.offset + e->env.size) {
    /* cut short or written over since it was queued (spool files never
    ** change): never sent as if whole; the lock holder's load sets it aside */
    uint64_t now = (uint64_t)e->size > e->env.offset ? (uint64_t)e->size - e->env.offset : 0, was = e->env.size;
    mh_env_free(&e->env);
    if (head) { free(*head); *head = NULL; }
    return fail(err, MH_ECORRUPT, "the message is %llu bytes, it was %llu when it was queued: the file "
                "changed after it was queued (cut short or written over); not sent",
                (unsigned long long)now, (unsigned long long)was);
  }
  if (!state) memset(&e->state, 0, sizeof e->state);   /* the listing knows there is none */
  if ((rc = state ? state_read(sp, dirfd, e->id, &e->state) : 0) < 0) {
    mh_env_free(&e->env);
    if (head) { free(*head); *head = NULL; }
    return fail(err, rc, "%s.state", e->id);
  }
  e->has_state = rc;
  if (busy && !(e->state.reason = strdup(dropin_busy))) {
    mh_spool_entry_free(e);
    return fail(err, MH_ENOMEM, "read");
  }
  /* a drop-in not adopted yet: the recipients its adoption will leave out,
     listed as refused as they will be (see adopt) */
  for (size_t i = 0; i < e->env.nbad; i++) {
    char vn[VIS_LEN], why[VIS_LEN + 512];
    dropin_bad_reply(why, sizeof why, e->env.bad[i].reply, vis(name, vn));
    if (refused_set(&e->state, e->env.bad[i].rcpt, why)) {
      mh_spool_entry_free(e);
      return fail(err, MH_ENOMEM, "read");
    }
  }
  return 0;
}

static const char *folder_name(mh_spool *sp, int dirfd) {
  return dirfd == sp->failedfd ? "failed" : dirfd == sp->tmpfd ? "tmp" : "pickup";
}

/* Moves DIRFD/NAME to corrupt/ under a free name and fsyncs both folders;
** "moved" is logged once it is done.  A move that fails leaves the file
** where it is (the caller skips it) and is logged once, until the move works
** or fails differently.  0, -ENOENT (gone meanwhile), or the error.  Only the
** deliverer (the lock holder) moves anything: a process without the lock is a
** reader (`mailhook queue show`, `sendmail -bp`, the console's Queue page of a
** `mailhook queue` run beside the service) and leaves the spool as it found
** it; the file is listed with its reason and the deliverer moves it at its
** next look (MH_ELOCKED here: not moved).  why is shown already (an err of
** fail(), or a constant: vis_shown, never escaped twice). */
static int to_corrupt(mh_spool *sp, int dirfd, const char *name, const char *why) {
  char dest[300], key[320];
  const char *folder = folder_name(sp, dirfd);
  int rc;
  if (sp->lockfd < 0) return MH_ELOCKED;
  snprintf(key, sizeof key, "%s/%s", folder, name);
  snprintf(dest, sizeof dest, "%s", name);
  for (int k = 1;; k++) {
    rc = fault_at("corrupt-rename") ? -errno : rename_new(dirfd, name, sp->corruptfd, dest);
    if (rc != -EEXIST || k >= 1000) break;
    snprintf(dest, sizeof dest, "%s.%d", name, k);
  }
  if (rc == -ENOENT) { note_clear(sp, key); return rc; }
  char vk[VIS_LEN], vw[VIS_LEN], vd[VIS_LEN];
  if (rc) {
    if (note_once(sp, key, rc))
      mh_error("spool %s: %s should go to corrupt/ (%s) but cannot be moved: %s; it stays in %s/ and "
               "is skipped (logged once)", sp->dir, vis(key, vk), vis_shown(why, vw), mh_strerror(rc), folder);
    return rc;
  }
  fsync(sp->corruptfd);
  fsync(dirfd);
  note_clear(sp, key);
  mh_warn("spool %s: %s moved to corrupt/%s: %s", sp->dir, vis(key, vk), vis(dest, vd), vis_shown(why, vw));
  return 0;
}

/* What is not a regular file (or is over its limit) where a spool file is
** expected (rc from mh_fsutil_open*, sb what it filled): the deliverer (the
** lock holder) moves it from pickup/ to corrupt/; anyone else leaves it and
** says so once.  Returns 0 once moved, else the reason it is still there. */
static int set_aside(mh_spool *sp, int dirfd, const char *name, int rc, const struct stat *sb) {
  char why[200], key[320];
  mh_fsutil_why(why, sizeof why, "", NULL, rc, sb, HEAD_CAP);
  /* mh_fsutil_why says "input: a FIFO, ...": keep what follows the colon */
  const char *w = strchr(why, ':') ? strchr(why, ':') + 2 : why;
  if (dirfd == sp->pickupfd && sp->lockfd >= 0) return to_corrupt(sp, dirfd, name, w);
  snprintf(key, sizeof key, "%s/%s", folder_name(sp, dirfd), name);
  if (note_once(sp, key, rc)) {
    char vk[VIS_LEN];
    mh_warn("spool %s: %s is %s; ignored", sp->dir, vis(key, vk), w);
  }
  return rc;
}

static int adopt(mh_spool *sp, const char *name, const char *key, int foreign, char *newid);

/* pickup/NAME bears an id's name but is not in the spool's form: no X-Sender /
** X-Receiver envelope lines, which every file mailhook writes starts with
** (write_env, through tmp/ and a rename), whatever wrote it and whenever.  So
** another program wrote it straight into pickup/ under such a name.  Sent as
** it is, it would skip what adoption does (Bcc fields left out, line ends made
** CRLF, Date, Message-ID and From added): it is adopted now, under a fresh id
** (sent at the next scan), or set aside to corrupt/ when it is no message.  A
** file that gives the X- lines itself declares its envelope and is taken as
** it stands (docs/spool.md, "Drop-in").  Called by the lock holder's load:
** MH_ENOTFOUND (this name is no longer a message), or the failure to adopt
** (the file stays; said once, tried again at the next load). */
static int foreign(mh_spool *sp, const char *name, char *err) {
  char newid[MH_SPOOL_IDLEN], key[320], vn[VIS_LEN];
  snprintf(key, sizeof key, "pickup/%s", name);
  int rc = adopt(sp, name, key, 1, newid);   /* a failure noted (once) under amu */
  if (rc < 0) return fail(err, rc, "pickup/%s: not in the spool's form, not adopted", name);
  if (rc == 0) {
    fsync(sp->pickupfd);   /* the original's unlink */
    mh_warn("spool %s: pickup/%s was not in the spool's form (no X-Sender/X-Receiver lines: written "
            "straight into pickup/ under an id's name, not renamed from tmp/ by mailhook): adopted as "
            "a drop-in, as %s", sp->dir, vis(name, vn), newid);
    return fail(err, MH_ENOTFOUND, "pickup/%s was adopted as %s", name, newid);
  }
  return fail(err, MH_ENOTFOUND, "pickup/%s was not in the spool's form and was set aside", name);
}

int mh_spool_load(mh_spool *sp, const char *id, mh_spool_entry *e, char *err) {
  return mh_spool_load_ex(sp, id, e, 0, NULL, err);
}

int mh_spool_load_ex(mh_spool *sp, const char *id, mh_spool_entry *e, size_t data_max, int *keep,
                     char *err) {
  char name[300];
  int dirs[2] = { sp->pickupfd, sp->failedfd }, rc;
  if (keep) *keep = -1;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  /* the holder whose lock was taken over (see "following the folders") sends
     nothing more, not even the rest of its last scan: a look is due at most
     once a second, no system call otherwise */
  if (sp->lockfd >= 0 && mh_spool_follow(sp, 0, NULL) == MH_ELOCKED) return lost_error(sp, err);
  for (int i = 0; i < 2; i++) {
    struct stat sb;
    int fd, listed = 0, state = 1, lx_ok = 0;
    char lx[SIDECARS_REC];
    if (dirs[i] < 0) continue;   /* a NO_CREATE handle's missing folder: empty */
    if (i == 0 && journaled(sp, id)) continue;   /* delivered: its file goes with the next purge */
    uint64_t ino = 0;
    if (i == 0) listed = listing_lookup(sp, id, &state, lx, &lx_ok, &ino);
    /* a listed file is read without updating its access time (its inode
       would be written for that alone: relatime does it at a file's first
       read); O_NOATIME is for the file's owner, as spool files are */
    /* and, when its bytes are wanted, with no fstat: the first read tells */
    unsigned how = listed ? MH_FS_LISTED | (data_max ? MH_FS_UNREAD : 0) : 0;
    char *head = NULL;
    size_t headlen = 0;
    fd = mh_fsutil_open(dirs[i], name, O_RDONLY | (listed ? O_NOATIME : 0), 0, how, &sb);
    if (fd == -EPERM && listed) fd = mh_fsutil_open(dirs[i], name, O_RDONLY, 0, how, &sb);
    if (fd >= 0 && (how & MH_FS_UNREAD) && (rc = first_read(fd, &sb, &head, &headlen)) != 0) {
      close(fd);
      fd = rc;
    }
    if (fd == -ENOENT) continue;
    if (fd == MH_ENOTREG) {   /* a FIFO or a link under a message's name: never ours */
      char why[100];
      snprintf(why, sizeof why, "%s, not a regular file", mh_fsutil_kind(sb.st_mode));
      if (i == 0) to_corrupt(sp, dirs[i], name, why);
      return fail(err, MH_ECORRUPT, "%s/%s is %s", i ? "failed" : "pickup", name, why);
    }
    if (fd < 0) {
      /* a message the deliverer cannot open (chmod 000, a file of another
         owner's made unreadable, an I/O error): it stays queued and is tried
         at each scan; said once, or it would wait without a word */
      if (i == 0 && sp->lockfd >= 0) {
        char key[320], vn[VIS_LEN];
        snprintf(key, sizeof key, "pickup/%s", name);
        if (note_once(sp, key, fd))
          mh_warn("spool %s: pickup/%s cannot be read: %s; it stays queued and is tried again at each "
                  "scan (%s; logged once)", sp->dir, vis(name, vn), mh_strerror(fd),
                  fd == -EACCES || fd == -EPERM ? "fix its mode or owner" : "check the disk");
      }
      return fail(err, fd, "%s/%s", i ? "failed" : "pickup", name);
    }
    if (listed && !state && listing_stale(sp, lx, lx_ok)) state = 1;   /* after the open: see listing_stale */
    rc = fill_entry(sp, dirs[i], fd, &sb, name, state, e, data_max ? &head : NULL, &headlen, err);
    if (rc == 0 && i == 0 && sp->lockfd >= 0 && !e->env.canonical) {
      mh_spool_entry_free(e);
      free(head);
      close(fd);
      return foreign(sp, name, err);
    }
    if (rc == 0 && data_max && (rc = read_data(fd, e, data_max, head, headlen, err)) != 0)
      mh_spool_entry_free(e);
    if (rc == 0 && keep) *keep = fd;
    else close(fd);
    if (rc == 0 && ino) loaded_note(sp, id, ino);
    if (rc == MH_ECORRUPT && i == 0) to_corrupt(sp, dirs[i], name, err ? err : "unparsable");
    return rc;
  }
  return fail(err, MH_ENOTFOUND, "message %s", id);
}

/* The listing's first pass keeps every canonical id as its 64-bit value (ids
** are fixed-width hex, so the numbers sort as the names do): 8 bytes a
** message, 0.8 MB for 100,000, whatever the size of their files. */
struct mh_spool_iter {
  mh_spool *sp;
  int which;            /* folders listed: bit 1 pickup, bit 2 failed */
  int collected;        /* the first pass ran */
  uint64_t *ids[2];     /* pickup/, failed/: sorted ids (oldest first) */
  size_t nids[2], next[2];
  struct iter_other { char *name; int failed; } *others;  /* other names (drop-ins not
                           adopted yet): listed last, by name */
  size_t nothers, onext;
};

int mh_spool_iter_open(mh_spool *sp, int which, mh_spool_iter **out) {
  mh_spool_iter *it = calloc(1, sizeof *it);
  if (!it) return MH_ENOMEM;
  it->sp = sp;
  it->which = which == 1 ? 1 : which == 2 ? 2 : 3;
  *out = it;
  return 0;
}

static int cmp_other(const void *a, const void *b) {
  return strcmp(((const struct iter_other *)a)->name, ((const struct iter_other *)b)->name);
}

/* The first pass: every name of the listed folders, ids only. */
static int iter_collect(mh_spool_iter *it) {
  size_t rcap[2] = { 0, 0 }, ocap = 0, nj = 0;
  uint64_t *jv = NULL;
  if (it->which & 1) journal_snapshot(it->sp, &jv, &nj);   /* before the names: see journal_snapshot */
  for (int f = 0; f < 2; f++) {
    int src = f ? it->sp->failedfd : it->sp->pickupfd, dfd;
    DIR *d;
    struct dirent *de;
    if (!(it->which & (1 << f)) || src < 0) continue;   /* (-1: a NO_CREATE handle's missing folder) */
    if ((dfd = dir_reopen(src)) < 0) { free(jv); return -errno; }
    if (!(d = fdopendir(dfd))) { close(dfd); free(jv); return -errno; }
    for (;;) {
      errno = 0;
      if (!(de = readdir(d))) {
        int e0 = errno;
        closedir(d);
        if (e0) { free(jv); return -e0; }
        break;
      }
      const char *nm = de->d_name;
      size_t nl = strlen(nm);
      char id[MH_SPOOL_IDLEN];
      if (nm[0] == '.' || is_sidecar(nm, nl)) continue;
      if (nl == 20 && !strcmp(nm + 16, ".eml") && (memcpy(id, nm, 16), id[16] = '\0', mh_spool_is_id(id))) {
        uint64_t x = id_value(id);
        if (f == 0 && ids_has(jv, nj, x)) continue;   /* delivered, not yet removed */
        if (it->nids[f] == rcap[f]) {
          uint64_t *t = realloc(it->ids[f], (rcap[f] = rcap[f] ? rcap[f] * 2 : 256) * sizeof *t);
          if (!t) { closedir(d); free(jv); return MH_ENOMEM; }
          it->ids[f] = t;
        }
        it->ids[f][it->nids[f]++] = x;
      } else {
        if (it->nothers == ocap) {
          struct iter_other *t = realloc(it->others, (ocap = ocap ? ocap * 2 : 16) * sizeof *t);
          if (!t) { closedir(d); free(jv); return MH_ENOMEM; }
          it->others = t;
        }
        if (!(it->others[it->nothers].name = strdup(nm))) { closedir(d); free(jv); return MH_ENOMEM; }
        it->others[it->nothers++].failed = f;
      }
    }
  }
  sort_ids(it->ids[0], it->nids[0]);
  sort_ids(it->ids[1], it->nids[1]);
  /* an aside (pickup/ID.adopted) whose copy ID is listed, or was delivered: the
     original of an adoption under way or stopped by a kill, not a message of
     its own (the lock holder removes it) */
  for (size_t k = 0, keep = 0, n0 = it->nothers; k < n0; k++) {
    const char *nm = it->others[k].name;
    char id[MH_SPOOL_IDLEN];
    uint64_t x;
    if (!it->others[k].failed && aside_id(nm, strlen(nm), id) &&
        (x = id_value(id), ids_has(it->ids[0], it->nids[0], x) || ids_has(it->ids[1], it->nids[1], x) ||
                               ids_has(jv, nj, x))) {
      free(it->others[k].name);
      it->nothers--;
      continue;
    }
    it->others[keep++] = it->others[k];
  }
  free(jv);
  if (it->nothers > 1) qsort(it->others, it->nothers, sizeof *it->others, cmp_other);
  it->collected = 1;
  return 0;
}

int mh_spool_iter_next(mh_spool_iter *it, mh_spool_entry *e) {
  if (!it->collected) {
    int rc = iter_collect(it);
    if (rc) return rc;
  }
  for (;;) {
    char name[256];
    int failed;
    int p = it->next[0] < it->nids[0], q = it->next[1] < it->nids[1];
    if (p || q) {   /* merge the two folders, oldest first */
      uint64_t a = p ? it->ids[0][it->next[0]] : 0, b = q ? it->ids[1][it->next[1]] : 0;
      failed = !p || (q && b < a);
      if (p && q && a == b) it->next[1]++;   /* moved between the folders while read: once */
      hex16(name, failed ? b : a);
      memcpy(name + 16, ".eml", 5);
      it->next[failed]++;
    } else if (it->onext < it->nothers) {
      snprintf(name, sizeof name, "%s", it->others[it->onext].name);
      failed = it->others[it->onext++].failed;
    } else {
      return 0;
    }
    int dirfd = failed ? it->sp->failedfd : it->sp->pickupfd;
    struct stat sb;
    int fd = mh_fsutil_open(dirfd, name, O_RDONLY, 0, 0, &sb);
    if (fd == -ENOENT && it->which == 3) {   /* moved by fail or retry meanwhile */
      dirfd = failed ? it->sp->pickupfd : it->sp->failedfd;
      fd = mh_fsutil_open(dirfd, name, O_RDONLY, 0, 0, &sb);
    }
    if (fd == MH_ENOTREG) {   /* a FIFO, a link, a folder: listed, flagged, never opened */
      char why[VIS_LEN + 100], vn[VIS_LEN];
      entry_names(it->sp, dirfd, name, e);
      e->queued_at = (int64_t)sb.st_mtime;
      snprintf(why, sizeof why, "%s/%s is %s, not a regular file", failed ? "failed" : "pickup", vis(name, vn),
               mh_fsutil_kind(sb.st_mode));
      e->state.reason = strdup(why);
      return 1;
    }
    if (fd == -ENOENT) continue;   /* delivered meanwhile */
    if (fd < 0) {
      /* there, but not readable by this process (EACCES: a file of mode 000;
      ** EIO): listed, flagged with why -- it was skipped as "delivered", and
      ** `mailhook queue`, --json and mailq said the queue was empty */
      char why[VIS_LEN + 100], vn[VIS_LEN];
      struct stat ls;
      entry_names(it->sp, dirfd, name, e);
      if (fstatat(dirfd, name, &ls, AT_SYMLINK_NOFOLLOW) == 0) {
        e->size = (int64_t)ls.st_size;
        e->queued_at = (int64_t)ls.st_mtime;
      }
      snprintf(why, sizeof why, "cannot be read: %s (%s/%s)", strerror(-fd), failed ? "failed" : "pickup",
               vis(name, vn));
      e->state.reason = strdup(why);
      return 1;
    }
    char err[MH_SPOOL_ERRLEN];
    int rc = fill_entry(it->sp, dirfd, fd, &sb, name, 1, e, NULL, NULL, err);
    close(fd);
    if (rc == MH_ECORRUPT || rc == -EBUSY) {  /* listed, flagged: the deliverer moves it, or
                                                  waits for its writer (fill_entry) */
      memset(&e->env, 0, sizeof e->env);
      e->state.reason = strdup(rc == -EBUSY ? dropin_busy : err);
      return 1;
    }
    if (rc < 0) continue;
    return 1;
  }
}

void mh_spool_iter_close(mh_spool_iter *it) {
  if (!it) return;
  for (size_t i = 0; i < it->nothers; i++) free(it->others[i].name);
  free(it->others);
  free(it->ids[0]);
  free(it->ids[1]);
  free(it);
}

/* ------------------------------------------------------------- scan */

/* Whether the drop-in NAME (open read-only as fd, st its fstat) may be
** adopted now.  The pickup convention is a complete file renamed into pickup/
** by the spool's user, so:
**   - a file with more than one name is a hard link (O_NOFOLLOW does not see
**     those): to another spool file (sent twice), or to a file of someone
**     else's that the service can read and would mail out.  Set aside;
**   - a file owned by neither the running user nor root got here by a hard
**     link whose first name is gone, or by root's hand: set aside too;
**   - a file over limits.message (1 GiB, as sendmail's stdin): a sparse file
**     (`truncate -s 100G`) takes no disk, but its copy filled the disk and
**     held the scan -- and so every delivery -- for as long.  Set aside;
**   - a file some process still has open for writing is being written in
**     place (a read lease is refused, EAGAIN, while any writer has it open):
**     -EBUSY, tried again at the next scan.  Where leases are not available
**     (EINVAL: some file systems; EACCES: a file of root's, without
**     CAP_LEASE) the size and time are checked again after the copy (adopt).
** 0 yes; 1 set aside (corrupt/; or left, said once, when that move fails);
** -EBUSY. */
static int dropin_check(mh_spool *sp, const char *name, int fd, const struct stat *st) {
  char why[200];
  if (st->st_nlink != 1) {
    snprintf(why, sizeof why, "it has %lu names (a hard link: only a file renamed into pickup/ is "
             "adopted)", (unsigned long)st->st_nlink);
    to_corrupt(sp, sp->pickupfd, name, why);
    return 1;
  }
  if (st->st_uid != geteuid() && st->st_uid != 0) {
    snprintf(why, sizeof why, "it belongs to uid %ld, neither the spool's user (uid %ld) nor root",
             (long)st->st_uid, (long)geteuid());
    to_corrupt(sp, sp->pickupfd, name, why);
    return 1;
  }
  if ((int64_t)st->st_size > MH_LIMIT_MESSAGE) {
    snprintf(why, sizeof why, "it is %lld bytes, over the %lld MiB limit of a message (limits.message)",
             (long long)st->st_size, (long long)(MH_LIMIT_MESSAGE >> 20));
    to_corrupt(sp, sp->pickupfd, name, why);
    return 1;
  }
  return writer_open(fd) ? -EBUSY : 0;
}

/* The drop-in changed while it was copied (a writer in place that leases
** could not see): its size or modification time moved. */
static int changed_since(int fd, const struct stat *st) {
  struct stat now;
  return fstat(fd, &now) < 0 || now.st_size != st->st_size ||
         now.st_mtim.tv_sec != st->st_mtim.tv_sec || now.st_mtim.tv_nsec != st->st_mtim.tv_nsec;
}

/* Whether the header block buf[from..he) has a field NAME. */
static int has_field(const char *buf, size_t from, size_t he, const char *name) {
  size_t p = from, end, n;
  while (p < he) {
    if (hdr_line(buf, p, he, &end, &n)) return 0;
    if (name_is(buf, p, n, name)) return 1;
    p = end;
  }
  return 0;
}

/* The Date and Message-ID a drop-in lacks (RFC 5322 §3.6 requires a Date;
** servers such as Gmail refuse a message without a Message-ID), written once
** at adoption by msg.h's rules, as `mailhook sendmail` adds them at intake
** and Postfix's cleanup adds them to what its pickup takes: so every retry
** sends the same bytes.  The Message-ID's domain is the sender's. */
static int write_missing(int fd, const char *buf, size_t from, size_t he, const char *sender,
                         const char *author) {
  char line[800], v[320];
  size_t len = 0;
  time_t now = time(NULL);
  if (author && *author && !has_field(buf, from, he, "From"))
    len += (size_t)snprintf(line + len, sizeof line - len, "From: <%s>\r\n", author);
  if (!has_field(buf, from, he, "Date")) {
    mh_msg_date(v, sizeof v, now);
    len += (size_t)snprintf(line + len, sizeof line - len, "Date: %s\r\n", v);
  }
  if (!has_field(buf, from, he, "Message-ID")) {
    const char *at = sender ? strrchr(sender, '@') : NULL;
    mh_msg_make_id(v, sizeof v, at && at[1] != '[' ? at + 1 : NULL, now);
    len += (size_t)snprintf(line + len, sizeof line - len, "Message-ID: %s\r\n", v);
  }
  if (!len) return 0;
  /* a file that is all header block and ends mid-line: its last field ended first */
  if (he > from && buf[he - 1] != '\n') {
    int rc = mh_fsutil_write_all(fd, "\r\n", 2);
    if (rc) return rc;
  }
  return mh_fsutil_write_all(fd, line, len);
}

/* What a drop-in's recipient that is no usable address is recorded with (its
** refused reply): why, and that mailhook left it out (no server said so). */
static const char *dropin_bad_reply(char *out, size_t cap, const char *why, const char *vname) {
  if (!strcmp(why, "not an address")) snprintf(out, cap, "not an address: left out of drop-in %s by mailhook, never sent", vname);
  else snprintf(out, cap, "not an address (%s): left out of drop-in %s by mailhook, never sent", why, vname);
  return out;
}

/* The recipients of the drop-in NAME (adopted as NEWID) that are no usable
** address (env->bad: `To: ops@example.com, bad@@example.com`): the message
** goes to the others, as Postfix's pickup and nullmailer send it, and each of
** these is recorded the way a recipient the server refused for good is: in
** NEWID.state as refused, with why (so `mailhook queue`, `queue show`,
** `sendmail -bp` show it, and the message ends in failed/ with it once the
** others are done, through the failure hook), and named in the log with the
** drop-in's name (nobody waits on an exit status for a drop-in).  The sidecar
** is written before the message is renamed into pickup/: never a moment when
** the message could go without the record.  0 or the error. */
static int dropin_refused(mh_spool *sp, const char *name, const char *newid, const mh_env *env) {
  mh_state st;
  char vn[VIS_LEN], why[VIS_LEN + 512];
  int rc = 0;
  memset(&st, 0, sizeof st);
  vis(name, vn);
  for (size_t i = 0; i < env->nbad && !rc; i++)
    rc = refused_set(&st, env->bad[i].rcpt, dropin_bad_reply(why, sizeof why, env->bad[i].reply, vn));
  if (!rc) rc = state_write(sp, sp->pickupfd, newid, &st);
  state_free(&st);
  if (rc) return rc;
  for (size_t i = 0; i < env->nbad; i++)
    mh_warn("spool %s: drop-in pickup/%s: recipient '%s' left out: %s (recorded as refused in %s; its "
            "%zu other recipient(s) get the message)", sp->dir, vn, env->bad[i].rcpt, env->bad[i].reply,
            newid, env->nto);
  if (env->nbad_more)
    mh_warn("spool %s: drop-in pickup/%s: and %zu more recipient(s) left out (no usable address)", sp->dir, vn,
            env->nbad_more);
  return 0;
}

/* A drop-in NAME in pickup/: give it an id, the canonical form (X- lines, no
** Bcc), and make it durable before the original goes.  newid gets the new id.
** 0 adopted; 1 not a message (set aside to corrupt/, or gone meanwhile: skip
** it); a negative code when it could not be done now (it stays; the caller
** says so once): -EBUSY while a program still writes it.  Its X-Submitter-Uid
** is the file's owner (pickup/ is writable by the spool's owner and root
** alone); one already in our form keeps its envelope lines as they are. */
static int adopt_one(mh_spool *sp, const char *name, char *newid);
/* Adopts pickup/NAME (key: "pickup/NAME", the name of its notes) as a new
** message, its id into newid: 0; 1 when it is not a message to count (set
** aside, gone); or the error, logged once (a full disk: it stays, tried again
** at each scan).  Under amu: another scan's adoption of the same name is over
** by then, and this one finds the name gone (1).  The notes are taken under
** amu too: a second scan that saw the aside (ID.adopted) while this adoption
** failed waits on amu, then prunes the notes of the names it did not see
** (NAME among them); had this scan noted the failure after releasing amu, the
** prune could come between, and the failure was logged again at every such
** race (CI, trixie: "cannot adopt pickup/drop.eml" twice on a full disk).
** foreign: a load's adoption of a file under an id's name (foreign()), said
** in its own words, under amu too. */
static int adopt(mh_spool *sp, const char *name, const char *key, int foreign, char *newid) {
  char vn[VIS_LEN];
  TEST_POINT("adopt-wait");
  pthread_mutex_lock(&sp->amu);
  int a = adopt_one(sp, name, newid);
  if (foreign) {                  /* a load's (foreign, below): its own words; the rest it says */
    if (a < 0 && note_once(sp, key, a))
      mh_warn("spool %s: pickup/%s is not in the spool's form (no X-Sender/X-Receiver lines: written "
              "straight into pickup/ under an id's name) and cannot be adopted: %s; it is not sent "
              "as it is, and is tried again at each scan (logged once)", sp->dir, vis(name, vn),
              mh_strerror(a));
    else if (a >= 0)
      note_clear(sp, key);
  } else if (a == -EBUSY) {              /* written in place: once it is closed */
    if (note_once(sp, key, a))
      mh_warn("spool %s: pickup/%s is still being written (a program has it open for writing); "
              "adopted once it is complete and closed (a drop-in should be renamed into pickup/ "
              "when complete; logged once)", sp->dir, vis(name, vn));
  } else if (a < 0) {             /* e.g. a full disk: tried again at each scan, said once */
    if (note_once(sp, key, a))   /* (timed out: only seq's lock is waited for on this path) */
      mh_warn("spool %s: cannot adopt pickup/%s: %s%s; it stays there and is tried again at each "
              "scan (logged once)", sp->dir, vis(name, vn), mh_strerror(a),
              a == MH_ETIMEDOUT ? " (its new id's lock, seq, held by another process)" : "");
  } else if (a == 0 && note_clear(sp, key)) {
    mh_info("spool %s: pickup/%s adopted after all, as %s", sp->dir, vis(name, vn), newid);
  }
  pthread_mutex_unlock(&sp->amu);
  return a;
}

/* Adoption is idempotent across a kill (F3): the original goes aside FIRST,
** under a name that records the id its copy will have, and the copy is made
** after that:
**   1. pickup/NAME is renamed to pickup/ID.adopted (atomic: the file that is
**      there now; its inode is checked against the one read, see take_aside);
**   2. tmp/ID is written, fsynced, renamed to pickup/ID.eml, pickup/ fsynced;
**   3. pickup/ID.adopted is unlinked (fsynced with the scan's other unlinks).
** A kill at any point leaves one of: NAME (before 1: adopted afresh), ID.adopted
** alone (between 1 and 2: adopted under that very id), or ID.adopted and
** ID.eml (between 2 and 3: the aside is removed, the copy is the message).
** Before, the copy was renamed in first and the original unlinked after the
** folder's fsync: a kill in that window (the fsync is the long part) left both
** and the next scan queued the original again, under a new id.  Why not
** unlink the original before the copy is durable: on a file system without a
** journal the unlink could reach the disk before the new name, and a power
** cut lose the message; here nothing is unlinked before the copy's name is
** fsynced, and the aside rename moves one name within one folder, so a power
** cut leaves the message as NAME, ID.adopted or ID.eml, never none.  No fsync
** is spent on the aside rename itself: the folder's fsync after the copy's
** rename covers both; a power cut before it may keep NAME beside ID.eml (the
** message goes twice, as after any power cut), never lose it.  Why the aside
** records the id, not the copy the original's name: a re-adoption is then
** recognised by one lookup (is ID queued?), never by reading every message. */

int mh_spool_has_copy(mh_spool *sp, const char *id) {
  char name[MH_SPOOL_IDLEN + 8];
  struct stat sb;
  if (!mh_spool_is_id(id)) return 0;
  snprintf(name, sizeof name, "%s.eml", id);
  return fstatat(sp->pickupfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
         fstatat(sp->failedfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 || journaled(sp, id);
}

/* The aside pickup/NAME (ID.adopted) of an adoption that was stopped after
** its copy ID was queued: removed, said. */
static void aside_drop(mh_spool *sp, const char *name, const char *id) {
  char v[VIS_LEN];
  if (unlinkat(sp->pickupfd, name, 0) == 0)
    mh_info("spool %s: pickup/%s, the original of %s left by an adoption that was stopped after its copy "
            "was queued, removed: the message is queued once, as %s", sp->dir, vis(name, v), id, id);
}

/* An aside pickup/NAME (= ID.adopted) a killed adoption left, whose copy was
** made: removed by the lock holder (under amu: an adoption under way in
** another scan is over by then).  1 when it was such an aside (its copy
** counts, not it), else 0: it is to be adopted under ID.  Anyone else only
** looks. */
static int aside_copied(mh_spool *sp, const char *name, const char *id) {
  int copied;
  if (sp->lockfd < 0) return mh_spool_has_copy(sp, id);
  pthread_mutex_lock(&sp->amu);
  if ((copied = mh_spool_has_copy(sp, id))) aside_drop(sp, name, id);
  pthread_mutex_unlock(&sp->amu);
  return copied;
}

/* Step 1 (see above): pickup/NAME, read as `read`, goes to pickup/ID.adopted.
** The rename moves whatever is at NAME now: a program may have renamed a new
** complete file onto that name since it was opened (a fixed name,
** `alarm.eml`).  Then the new file goes back under its name for the next
** scan, and the one read, which its producer replaced, is adopted from its
** descriptor with no name left to remove (*named 0); when NAME was taken
** again meanwhile, the new file waits as ID.adopted (adopted as ID) and the
** one read is not adopted (1).  0 (*named 1: the original is the aside);
** 1: NAME gone meanwhile, or not adopted; or the rename's error (it stays). */
static int take_aside(mh_spool *sp, const char *name, const char *aside, const struct stat *read, int *named) {
  struct stat now;
  char v[VIS_LEN];
  int rc = rename_new(sp->pickupfd, name, sp->pickupfd, aside);
  *named = 0;
  if (rc == -ENOENT) return 1;   /* gone meanwhile */
  if (rc) return rc;
  TEST_POINT("adopt-aside");
  if (fstatat(sp->pickupfd, aside, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == read->st_ino &&
      now.st_dev == read->st_dev) {
    *named = 1;
    return 0;
  }
  if (rename_new(sp->pickupfd, aside, sp->pickupfd, name) == 0) return 0;
  mh_warn("spool %s: pickup/%s was replaced while it was adopted, and again while the new file was put back; "
          "the new file waits as pickup/%s (adopted at the next scan), the one read is not adopted",
          sp->dir, vis(name, v), aside);
  return 1;
}

/* After a failure: the original goes back under its name (its notes and the
** log name it), or, when the name was taken meanwhile, waits as the aside. */
static void put_back(mh_spool *sp, const char *aside, const char *name) {
  rename_new(sp->pickupfd, aside, sp->pickupfd, name);
}

/* A canonical drop-in's envelope lines (buf[0..n)) into fd without an
** X-Spool-Size line. */
static int write_no_size(int fd, const char *buf, size_t n) {
  size_t p = 0, end, nl;
  while (p < n) {
    if (hdr_line(buf, p, n, &end, &nl)) end = n;
    else if (name_is(buf, p, nl, "X-Spool-Size")) { p = end; continue; }
    int rc = mh_fsutil_write_all(fd, buf + p, end - p);
    if (rc) return rc;
    p = end;
  }
  return 0;
}

static int adopt_one(mh_spool *sp, const char *name, char *newid) {
  char err[MH_SPOOL_ERRLEN], dest[MH_SPOOL_IDLEN + 8], aside[MH_SPOOL_IDLEN + sizeof ASIDE_SUFFIX];
  mh_env env;
  size_t cap = 8192, len = 0, he, body;
  char *buf = NULL;
  mh_intake *in = NULL;
  struct stat st;
  /* an aside a killed adoption left: its id is given; gone when its copy was made */
  int again = aside_id(name, strlen(name), newid), named = again;
  if (again && mh_spool_has_copy(sp, newid)) { aside_drop(sp, name, newid); return 1; }
  int fd = mh_fsutil_open(sp->pickupfd, name, O_RDONLY, 0, 0, &st), out = -1, rc;
  if (fd == -ENOENT) return 1;
  if (fd == MH_ENOTREG) { set_aside(sp, sp->pickupfd, name, fd, &st); return 1; }
  if (fd < 0) return fd;
  if ((rc = dropin_check(sp, name, fd, &st))) { close(fd); return rc; }
  TEST_POINT("adopt-checked");
  /* the file is read through intake's converter (runtime/intake.h), the rule
  ** `mailhook sendmail` applies to its stdin: CR* LF is one line end, a bare
  ** CR ends its line, every line end is stored as CRLF.  Before, a drop-in was
  ** read by eol.h's rule alone, so a PHP/Windows `Subject: x\r\r\nBcc: y`
  ** ended the header block at the CR CR LF: its Bcc line went out in the
  ** body, and each CR CR LF of the body became two line ends */
  mh_spool_names *nm = names_get(sp);
  rc = dropin_head(fd, nm, &in, &buf, &len, &cap, &env, err);
  names_put(sp, nm);
  if (rc == MH_ENOMEM) goto out;
  if (rc == MH_ECORRUPT) { to_corrupt(sp, sp->pickupfd, name, err); rc = 1; goto out; }
  if (rc) goto out;
  if (!again && (rc = mh_spool_new_id(sp, newid, err))) goto out_env;
  snprintf(dest, sizeof dest, "%s.eml", newid);
  snprintf(aside, sizeof aside, "%s" ASIDE_SUFFIX, newid);
  if (!again && (rc = take_aside(sp, name, aside, &st, &named))) goto out_env;
  if (find_blank(buf, len, 0, 1, &he, &body)) he = body = len;
  /* RFC 5322 §3.6 requires a From.  Postfix's cleanup gives what its pickup
  ** takes without one the envelope sender's; so here: the sender the drop-in
  ** gives (X-Sender), else the settings' `from` (which is then the envelope
  ** sender too: a drop-in without From or X-Sender names none, and mail from
  ** the null sender <> is a bounce).  Neither: it goes without, as before */
  char fallback[600];
  const char *author = NULL, *sender = env.from;
  if (!*env.from && !env.canonical) {
    /* no X-Sender, and no address in a From: never the null sender */
    dropin_sender(sp, st.st_uid, fallback, sizeof fallback);
    sender = fallback;
  }
  if (!has_field(buf, env.offset, he, "From")) {
    if (!*sender) { dropin_sender(sp, st.st_uid, fallback, sizeof fallback); author = fallback; }
    else author = sender;
  }
  TEST_POINT("adopt-taken");
  if ((rc = create_tmp(sp, newid, &out))) goto out_restore;
  if (fault_at("adopt-write") && (rc = -errno)) goto fail_tmp;
  if (env.nbad && (rc = dropin_refused(sp, name, newid, &env))) goto fail_tmp;
  size_t size_at = 0, envlen = 0;
  if (env.canonical) {
    /* already in our form: its envelope lines as they are (its submitter
    ** too, or none), the message without Bcc like any other.  An
    ** X-Spool-Size line (a spool file copied in by hand) is left out: the
    ** copy has a size of its own (Bcc removed), and carries no record */
    if ((rc = write_no_size(out, buf, env.offset)) ||
        (rc = write_no_bcc(out, buf + env.offset, he - env.offset)))
      goto fail_tmp;
  } else if ((rc = write_env(out, sender ? sender : "", env.from_params, (const char *const *)env.to,
                             (const char *const *)env.to_params, env.nto, (unsigned long)st.st_uid,
                             &size_at, &envlen)) ||
             (rc = write_no_bcc(out, buf, he))) {
    goto fail_tmp;
  }
  if ((rc = write_missing(out, buf, env.offset, he, sender, author))) goto fail_tmp;
  /* the rest of the file, converted as it streams */
  if ((rc = mh_fsutil_write_all(out, buf + he, len - he))) goto fail_tmp;
  for (;;) {
    long n = mh_intake_read(in, buf, cap);
    if (n < 0) { rc = (int)n; goto fail_tmp; }
    if (n == 0) break;
    if ((rc = mh_fsutil_write_all(out, buf, (size_t)n))) goto fail_tmp;
  }
  /* a writer still at work (unseen by the lease): not this time */
  if (changed_since(fd, &st)) { rc = -EBUSY; goto fail_tmp; }
  if (envlen && (rc = size_fill(out, size_at, envlen))) goto fail_tmp;
  if ((rc = fsync_fd(out))) goto fail_tmp;
  TEST_POINT("adopt-synced");
  if ((rc = rename_new(sp->tmpfd, newid, sp->pickupfd, dest))) goto fail_tmp;
  TEST_POINT("adopt-renamed");
  if ((rc = fsync_fd(sp->pickupfd))) goto fail_tmp;
  close(out);
  TEST_POINT("adopt-durable");
  /* the adopted copy is durable: the original goes (fsynced by the caller) */
  if (named) unlinkat(sp->pickupfd, aside, 0);
  rc = 0;
  goto out_env;
fail_tmp:
  close(out);
  unlinkat(sp->tmpfd, newid, 0);
  unlinkat(sp->pickupfd, dest, 0);
  if (env.nbad) {   /* the sidecar dropin_refused wrote (none is there otherwise) */
    char side[MH_SPOOL_IDLEN + 8];
    snprintf(side, sizeof side, "%s.state", newid);
    unlinkat(sp->pickupfd, side, 0);
  }
out_restore:
  if (named && !again) put_back(sp, aside, name);
out_env:
  mh_env_free(&env);
out:
  mh_intake_free(in);
  free(buf);
  close(fd);
  return rc;
}

/* A max-heap of id values (the largest at h[0]), to keep the `limit` oldest.
** Values, not names: a canonical id is 16 lowercase hex digits, so its value
** orders as its name does, and a comparison is one instruction, not a strcmp
** through qsort's callback (sorting 2,000 names that way was nine tenths of a
** scan's instructions, ~1 ms; issue 16). */
static void vheap_up(uint64_t *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] >= h[i]) break;
    uint64_t t = h[p]; h[p] = h[i]; h[i] = t;
    i = p;
  }
}

/* Drop-ins one scan adopts at most.  An adoption costs two fsyncs (~5 ms on
** a disk) and the deliverer waits for its scan: a flood of drop-ins (a
** million files) was adopted in one scan of hours while nothing was sent.
** So a scan adopts for ADOPT_MS at most (and ADOPT_MAX files); the rest wait
** for the next scans (the deliverer scans again as soon as its list is used
** up, and every few seconds when idle); they count in *total. */
#define ADOPT_MAX 256
#define ADOPT_MS 500

/* Whether tmp/ID is not (or no longer) an enqueue on its way: gone, or
** TEMP_MIN_AGE seconds old (its writer was killed between the sidecar it
** wrote for the items left out and the rename: left_out_write).  Such a
** sidecar was spared as long as tmp/ID stayed, which is until the next
** lock's sweep, and would have been taken by a message given that id again
** (review4).  tmp/ID itself is left to that sweep: a writer merely slow
** (its fsyncs past a minute) then fails its rename and says so, where
** removing it here would be a message gone unsaid. */
static int tmp_gone_or_dead(mh_spool *sp, const char *id) {
  struct stat st;
  if (fstatat(sp->tmpfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT;
  return time(NULL) - st.st_mtime >= TEMP_MIN_AGE;
}

long mh_spool_scan(mh_spool *sp, size_t limit, char ***out, long *total, char *err) {
  int dfd, rc = 0;
  long all = 0;
  DIR *d;
  struct dirent *de;
  char **ids = NULL, **orphans = NULL;
  uint64_t *vals = NULL;   /* the ids kept, as values (vheap_up); names made at the end */
  size_t n = 0, cap = 0, no = 0, ocap = 0;
  uint64_t (*inos_seen)[2] = NULL;   /* the lock holder's: each id's value and d_ino (listing_inos) */
  size_t nseen = 0, cseen = 0;
  int adopted = 0;
  char fresh[ADOPT_MAX][MH_SPOOL_IDLEN];   /* ids this scan gave: readdir may show their
                                              new names too, and each must count once */
  int64_t t0 = now_us();
  char id_max[MH_SPOOL_IDLEN] = "";
  int noted;   /* notes were there before this scan: each name seen is marked */
  unsigned gen = notes_begin(sp, &noted);
  uint64_t *jv = NULL;   /* delivered, not yet removed: left out (see journal_snapshot) */
  size_t nj = 0;
  char x0[SIDECARS_REC];
  int x0_ok;
  uint64_t seq0;
  *out = NULL;
  /* a pickup/ (lock, spool) removed or replaced meanwhile: the one at the path now */
  if ((rc = mh_spool_follow(sp, 0, err))) return rc;
  if (sp->pickupfd < 0) { if (total) *total = 0; return 0; }   /* NO_CREATE, no pickup/ yet: empty */
  dfd = dir_reopen(sp->pickupfd);
  int derr = errno;   /* (listing_begin may change errno: an EIO was said as ENOENT) */
  seq0 = listing_begin(sp, x0, &x0_ok);   /* before readdir: see "the listing" */
  if (dfd < 0) return fail(err, -derr, "spool %s: pickup/", sp->dir);
  if (!(d = fdopendir(dfd))) { close(dfd); return fail(err, -errno, "spool %s: pickup/", sp->dir); }
  journal_snapshot(sp, &jv, &nj);
  /* readdir's NULL is the end or a failure (getdents: EIO): errno tells,
     cleared before each call (the loop's own calls set it) */
  while ((errno = 0, de = readdir(d))) {
    const char *nm = de->d_name;
    size_t nl = strlen(nm);
    char id[MH_SPOOL_IDLEN], key[300];
    struct stat sb;
    int type = de->d_type;
    if (nm[0] == '.') continue;
    join2(key, "pickup/", 7, nm, nl);   /* nl < 256: a d_name */
    if (noted) note_seen(sp, key, gen);
    if (type == DT_UNKNOWN) {   /* file systems without d_type */
      if (fstatat(sp->pickupfd, nm, &sb, AT_SYMLINK_NOFOLLOW) < 0) continue;   /* gone */
      type = IFTODT(sb.st_mode);
    }
    sb.st_mode = DTTOIF(type);
    if (type != DT_REG) {
      /* a FIFO, a link, a folder...: not a message whatever its name.  The
         deliverer moves it aside (once); anyone else leaves it alone. */
      if (sp->lockfd >= 0) set_aside(sp, sp->pickupfd, nm, MH_ENOTREG, &sb);
      continue;
    }
    if (is_sidecar(nm, nl)) {
      if (sp->lockfd >= 0) {   /* remember: removed below if its .eml is gone */
        if (no == ocap) {
          char **t = realloc(orphans, (ocap = ocap ? ocap * 2 : 16) * sizeof *t);
          if (!t) { rc = MH_ENOMEM; break; }
          orphans = t;
        }
        if (!(orphans[no] = xstrndup(nm, nl - 6))) { rc = MH_ENOMEM; break; }
        no++;
      }
      continue;
    }
    uint64_t ino = (uint64_t)de->d_ino;   /* the listed file's: the purge's identity check */
    if (nl == 20 && !strcmp(nm + 16, ".eml") && (memcpy(id, nm, 16), id[16] = '\0', mh_spool_is_id(id))) {
      /* ours; unless adopted by this very scan (already counted) or delivered */
      int seen = nj && ids_has(jv, nj, id_value(id));
      for (int k = 0; k < adopted && !seen; k++) seen = !strcmp(fresh[k], id);
      if (seen) continue;
    } else {
      int as = aside_id(nm, nl, id);
      if (as && sp->lockfd >= 0 && (id_max[0] == '\0' || strcmp(id, id_max) > 0))
        memcpy(id_max, id, sizeof id_max);   /* its id is taken: the clock goes past it */
      if (sp->lockfd < 0 || adopted >= ADOPT_MAX ||   /* only the lock holder adopts drop-ins, */
          (adopted && now_us() - t0 > ADOPT_MS * 1000)) {
        /* an aside (ID.adopted) whose copy is queued: the copy counts; the
           lock holder removes it now, whatever its slice (a copy sent and
           purged first would leave it looking never adopted) */
        if (as && aside_copied(sp, nm, id)) continue;
        all++;                        /* a slice per scan; they still wait to be sent: */
        continue;                     /* counted (a flush with no service running must */
      }                               /* not see an empty queue) */
      int a = adopt(sp, nm, key, 0, id);   /* logs its failure (once) */
      TEST_POINT("adopt-returned");
      if (a) continue;                /* set aside to corrupt/, gone, or not now */
      memcpy(fresh[adopted++], id, MH_SPOOL_IDLEN);
      /* the entry read was the drop-in's: the message is its copy, ID.eml (with
         the drop-in's inode, the purge took every adopted message for one
         replaced after its send and moved it to corrupt/) */
      {
        char cname[MH_SPOOL_IDLEN + 8];
        struct stat cst;
        snprintf(cname, sizeof cname, "%s.eml", id);
        ino = fstatat(sp->pickupfd, cname, &cst, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)cst.st_ino : 0;
      }
    }
    all++;
    if (id_max[0] == '\0' || strcmp(id, id_max) > 0) memcpy(id_max, id, sizeof id_max);
    uint64_t v = id_value(id);
    if (sp->lockfd >= 0 && ino) {   /* (no memory: no inode known, unlinked as before) */
      if (nseen == cseen) {
        uint64_t (*t)[2] = realloc(inos_seen, (cseen = cseen ? cseen * 2 : 64) * sizeof *t);
        if (t) inos_seen = t; else cseen = nseen;
      }
      if (nseen < cseen) { inos_seen[nseen][0] = v; inos_seen[nseen++][1] = ino; }
    }
    if (limit && n == limit) {          /* full: replace the newest if this is older */
      if (v < vals[0]) {
        vals[0] = v;
        sift(vals, n, 0);
      }
      continue;
    }
    if (n == cap) {
      uint64_t *t = realloc(vals, (cap = cap ? cap * 2 : 64) * sizeof *t);
      if (!t) { rc = MH_ENOMEM; break; }
      vals = t;
    }
    vals[n++] = v;
    if (limit) vheap_up(vals, n - 1);
  }
  int rderr = de ? 0 : errno;
  closedir(d);
  free(jv);
  /* a listing cut short by a read error is no listing: never taken as the
     queue (nor published: it would say the messages not read were gone) */
  if (rc == 0 && rderr) rc = -rderr;
  if (rc == 0 && n) {   /* oldest first, then their names */
    sort_ids(vals, n);
    if (!(ids = malloc(n * sizeof *ids))) rc = MH_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      if (!(ids[i] = malloc(MH_SPOOL_IDLEN))) { n = i; rc = MH_ENOMEM; break; }
      hex16(ids[i], vals[i]);
      ids[i][16] = '\0';
    }
  }
  if (rc == 0 && sp->lockfd >= 0)
    listing_publish(sp, seq0, x0, x0_ok, vals, n, orphans, no, listing_inos(vals, n, inos_seen, nseen));
  free(inos_seen);
  free(vals);
  for (size_t i = 0; i < no; i++) {
    if (rc == 0) {
      char name[300], *buf = NULL;
      size_t blen;
      struct stat st;
      snprintf(name, sizeof name, "%s.eml", orphans[i]);
      /* failed/ first: `queue retry` writes pickup/ID.state, then moves
         ID.eml from failed/ to pickup/; looked at in this order, one of the
         two looks finds it (it was a sidecar removed under a retry).  tmp/ID
         before pickup/ too: an enqueue with items left out writes
         pickup/ID.state, then renames tmp/ID to pickup/ID.eml (left_out_write;
         the sidecar was removed under it, and the message went without them) */
      if (fstatat(sp->failedfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
          tmp_gone_or_dead(sp, orphans[i]) &&
          fstatat(sp->pickupfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
        /* a sidecar whose message was delivered or failed (a crash between
           the two unlinks): ours, removed; a file that only bears the name
           and is no state file is kept for a human */
        snprintf(name, sizeof name, "%s.state", orphans[i]);
        if (mh_fsutil_read(sp->pickupfd, name, 0, HEAD_CAP, &buf, &blen, &st) == 0 &&
            !strncmp(buf, "attempts ", 9))
          unlinkat(sp->pickupfd, name, 0);
        else if (buf)
          to_corrupt(sp, sp->pickupfd, name, "an orphan sidecar that is no state file");
        free(buf);
      }
    }
    free(orphans[i]);
  }
  free(orphans);
  if (rc == 0) notes_prune(sp, gen);
  if (rc) {
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);   /* (no names made yet: ids NULL) */
    free(ids);
    return fail(err, rc, rderr ? "spool %s: reading pickup/" : "spool %s: scan", sp->dir);
  }
  if (adopted) fsync(sp->pickupfd);   /* the unlinks of adopted originals */
  if (id_max[0]) {
    /* (best effort, as before: the next scan raises it; DIR/seq held, the
       scan waited LOCK_WAIT_MS for it: said once, until it changes) */
    char e2[MH_SPOOL_ERRLEN];
    int r2 = mh_spool_raise_seq(sp, id_max, e2);
    if (r2 == 0) note_clear(sp, "seq");
    else if (note_once(sp, "seq", r2)) mh_warn("%s (logged once)", e2);
  }
  *out = ids;
  if (total) *total = all;
  return (long)n;
}

/* ----------------------------------------------- delivered, defer, ... */

int mh_spool_delivered(mh_spool *sp, const char *id, char *err) {
  char name[300];
  int rc;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if (unlinkat(sp->pickupfd, name, 0) < 0)
    return fail(err, errno == ENOENT ? MH_ENOTFOUND : -errno, "spool %s: unlink pickup/%s", sp->dir, name);
  snprintf(name, sizeof name, "%s.state", id);
  unlinkat(sp->pickupfd, name, 0);
  if ((rc = fsync_fd(sp->pickupfd))) return fail(err, rc, "spool %s: fsync pickup/", sp->dir);
  return 0;
}

int mh_spool_delivered_nosync(mh_spool *sp, const char *id, char *err) {
  char name[300];
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if (unlinkat(sp->pickupfd, name, 0) < 0)
    return fail(err, errno == ENOENT ? MH_ENOTFOUND : -errno, "spool %s: unlink pickup/%s", sp->dir, name);
  snprintf(name, sizeof name, "%s.state", id);
  unlinkat(sp->pickupfd, name, 0);
  return 0;
}

int mh_spool_unlink_names(mh_spool *sp, const char *id, int has_state, char *err) {
  char name[300];
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if (unlinkat(sp->pickupfd, name, 0) < 0)
    return fail(err, errno == ENOENT ? MH_ENOTFOUND : -errno, "spool %s: unlink pickup/%s", sp->dir, name);
  if (has_state) {
    snprintf(name, sizeof name, "%s.state", id);
    unlinkat(sp->pickupfd, name, 0);
  }
  return 0;
}

int mh_spool_delivered_held(mh_spool *sp, const char *id, int *held, char *err) {
  char name[300];
  int rc;
  *held = -1;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  /* open first: the unlink below then drops the last name, not the last
  ** reference, and the slow eviction waits for the caller's close */
  *held = mh_fsutil_open(sp->pickupfd, name, O_RDONLY, 0, 0, NULL);
  if (*held < 0) *held = -1;
  rc = mh_spool_delivered_nosync(sp, id, err);
  if (rc && *held >= 0) { close(*held); *held = -1; }
  return rc;
}

int mh_spool_sync(mh_spool *sp, char *err) {
  int rc = 0, jfd = -1, jnew;
  pthread_mutex_lock(&sp->jmu);
  if (sp->jfd >= 0) jfd = dup(sp->jfd);   /* a purge may close it meanwhile */
  jnew = sp->jnew;
  sp->jnew = 0;
  pthread_mutex_unlock(&sp->jmu);
  if (jfd >= 0) {
    if (fdatasync(jfd) < 0) rc = -errno;
    close(jfd);
    if (rc) return fail(err, rc, "spool %s: fsync %s", sp->dir, JOURNAL);
  }
  if (jnew && (rc = fsync_fd(sp->dirfd))) {
    pthread_mutex_lock(&sp->jmu);
    sp->jnew = 1;
    pthread_mutex_unlock(&sp->jmu);
    return fail(err, rc, "spool %s: fsync", sp->dir);
  }
  rc = fsync_fd(sp->pickupfd);
  return rc ? fail(err, rc, "spool %s: fsync pickup/", sp->dir) : 0;
}

static int exists_in(int dirfd, const char *id) {
  char name[300];
  struct stat st;
  if (file_name(id, name, sizeof name)) return 0;
  return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* The lock of a sidecar's read-modify-write (defer, fail, retry): a flock on
** DIR/state.lock, through a descriptor of its own each time (so it also holds
** between threads of one process: the console's retry beside the deliverer).
** A `queue retry` that read ID.state before the deliverer's deferral wrote
** "done a@x" and renamed its copy after it erased that line: a@x got the
** message again.  0 and *fdp, the lock (-1: none to be had, a full disk
** cannot create the file, flock refused it: the write goes on unlocked, as
** before).  MH_ETIMEDOUT (err says so) when another holds it past
** LOCK_WAIT_MS: the operation fails, nothing written.  Going on unlocked
** there would reopen that race, and the holder is no full disk but a process
** stopped or stuck; a deferral not recorded is kept in the deliverer's
** memory, a `queue retry` is told and can be typed again. */
static int state_lock(mh_spool *sp, int *fdp, char *err) {
  int fd = mh_fsutil_open(sp->dirfd, "state.lock", O_RDWR | O_CREAT, 0600, 0, NULL), rc;
  *fdp = -1;
  if (fd < 0) return 0;
  if ((rc = lock_bounded(sp, fd, "state.lock", err))) {
    close(fd);
    return rc == MH_ETIMEDOUT ? rc : 0;
  }
  *fdp = fd;
  return 0;
}
static void state_unlock(int fd) { if (fd >= 0) close(fd); }

int mh_spool_defer(mh_spool *sp, const char *id, int attempts, int64_t next_attempt, const char *reply,
                   const char *const *done, size_t ndone, const mh_refused *refused, size_t nrefused,
                   char *err) {
  mh_state st;
  int rc, lk;
  if (!exists_in(sp->pickupfd, id)) return fail(err, MH_ENOTFOUND, "message %s in pickup/", id);
  if ((rc = state_lock(sp, &lk, err))) return rc;
  if ((rc = state_read(sp, sp->pickupfd, id, &st)) < 0) { state_unlock(lk); return fail(err, rc, "%s.state", id); }
  st.attempts = attempts >= 0 ? attempts : st.attempts + 1;
  st.next_attempt = next_attempt;
  if (reply) { free(st.last_reply); st.last_reply = strdup(reply); }
  for (size_t i = 0; i < ndone; i++) {
    size_t k;
    for (k = 0; k < st.ndone && strcmp(st.done[k], done[i]); k++) {}
    if (k < st.ndone) continue;
    char **nd = realloc(st.done, (st.ndone + 1) * sizeof *nd);
    if (!nd) { state_free(&st); state_unlock(lk); return fail(err, MH_ENOMEM, "defer"); }
    st.done = nd;
    if ((nd[st.ndone] = strdup(done[i]))) st.ndone++;
  }
  for (size_t i = 0; i < nrefused; i++)
    if (refused_set(&st, refused[i].rcpt, refused[i].reply)) {
      state_free(&st);
      state_unlock(lk);
      return fail(err, MH_ENOMEM, "defer");
    }
  rc = state_write(sp, sp->pickupfd, id, &st);
  state_free(&st);
  state_unlock(lk);
  return rc ? fail(err, rc, "spool %s: write pickup/%s.state", sp->dir, id) : 0;
}

static int fail_locked(mh_spool *sp, const char *id, const char *reason, const char *reply, int attempts,
                       const mh_refused *refused, size_t nrefused, char *err);

int mh_spool_fail(mh_spool *sp, const char *id, const char *reason, const char *reply, int attempts,
                  const mh_refused *refused, size_t nrefused, char *err) {
  char name[300];
  int rc, lk;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if (!exists_in(sp->pickupfd, id)) return fail(err, MH_ENOTFOUND, "message %s in pickup/", id);
  if ((rc = state_lock(sp, &lk, err))) return rc;
  rc = fail_locked(sp, id, reason, reply, attempts, refused, nrefused, err);
  state_unlock(lk);
  return rc;
}

/* mh_spool_fail's work, under the sidecars' lock. */
static int fail_locked(mh_spool *sp, const char *id, const char *reason, const char *reply, int attempts,
                       const mh_refused *refused, size_t nrefused, char *err) {
  char name[300];
  mh_state st;
  int rc;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  if ((rc = state_read(sp, sp->pickupfd, id, &st)) < 0) return fail(err, rc, "%s.state", id);
  free(st.reason);
  st.reason = strdup(reason ? reason : "failed");
  if (reply) { free(st.last_reply); st.last_reply = strdup(reply); }
  if (attempts >= 0) st.attempts = attempts;
  for (size_t i = 0; i < nrefused; i++)
    if (refused_set(&st, refused[i].rcpt, refused[i].reply)) { state_free(&st); return fail(err, MH_ENOMEM, "fail"); }
  st.failed_at = (int64_t)time(NULL);
  /* sidecar first (an orphan in failed/ is harmless), then the message */
  rc = state_write(sp, sp->failedfd, id, &st);
  state_free(&st);
  if (rc) return fail(err, rc, "spool %s: write failed/%s.state", sp->dir, id);
  if (renameat(sp->pickupfd, name, sp->failedfd, name) < 0)
    return fail(err, -errno, "spool %s: move %s to failed/", sp->dir, name);
  if ((rc = fsync_fd(sp->failedfd)) || (rc = fsync_fd(sp->pickupfd)))
    return fail(err, rc, "spool %s: fsync", sp->dir);
  snprintf(name, sizeof name, "%s.state", id);
  unlinkat(sp->pickupfd, name, 0);
  return 0;
}

int mh_spool_retry(mh_spool *sp, const char *id, char *err) {
  char name[300];
  mh_state st;
  int rc, from_failed;
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  from_failed = exists_in(sp->failedfd, id);
  if (!from_failed && (!exists_in(sp->pickupfd, id) || journaled(sp, id)))
    return fail(err, MH_ENOTFOUND, "message %s", id);
  int lk;
  if ((rc = state_lock(sp, &lk, err))) return rc;
  rc = state_read(sp, from_failed ? sp->failedfd : sp->pickupfd, id, &st);
  if (rc < 0) { state_unlock(lk); return fail(err, rc, "%s.state", id); }
  TEST_POINT("retry-read");
  st.next_attempt = 0;
  free(st.reason); st.reason = NULL;
  st.failed_at = 0;
  st.retried_at = (int64_t)time(NULL);   /* a new max_queue_age from now: one more chance */
  for (size_t i = 0; i < st.nrefused; i++) { free(st.refused[i].rcpt); free(st.refused[i].reply); }
  free(st.refused);
  st.refused = NULL;
  st.nrefused = 0;
  rc = state_write(sp, sp->pickupfd, id, &st);
  state_free(&st);
  state_unlock(lk);
  if (rc) return fail(err, rc, "spool %s: write pickup/%s.state", sp->dir, id);
  if (!from_failed) return 0;
  if ((rc = rename_new(sp->failedfd, name, sp->pickupfd, name)))
    return fail(err, rc, "spool %s: move %s back to pickup/", sp->dir, name);
  if ((rc = fsync_fd(sp->pickupfd)) || (rc = fsync_fd(sp->failedfd)))
    return fail(err, rc, "spool %s: fsync", sp->dir);
  snprintf(name, sizeof name, "%s.state", id);
  unlinkat(sp->failedfd, name, 0);
  return 0;
}

int mh_spool_remove(mh_spool *sp, const char *id, char *err) {
  char name[300];
  int dirs[2] = { sp->pickupfd, sp->failedfd };
  if (file_name(id, name, sizeof name)) return fail(err, MH_EINVAL, "bad id '%s'", id);
  for (int i = 0; i < 2; i++) {
    if (dirs[i] < 0) continue;   /* a NO_CREATE handle's missing folder: empty */
    if (i == 0 && journaled(sp, id)) continue;   /* delivered already */
    if (unlinkat(dirs[i], name, 0) < 0) {
      if (errno == ENOENT) continue;
      return fail(err, -errno, "spool %s: unlink %s", sp->dir, name);
    }
    snprintf(name, sizeof name, "%s.state", id);
    unlinkat(dirs[i], name, 0);
    /* and the original of its adoption, if a kill left it: it would be
       adopted again once its copy is gone (adopt_one) */
    if (mh_spool_is_id(id)) {
      snprintf(name, sizeof name, "%s" ASIDE_SUFFIX, id);
      if (unlinkat(sp->pickupfd, name, 0) == 0 && i) fsync(sp->pickupfd);
    }
    fsync(dirs[i]);
    return 0;
  }
  return fail(err, MH_ENOTFOUND, "message %s", id);
}


int mh__spool_write_no_bcc(int fd, const char *buf, size_t len) {
  size_t he, body;
  int rc;
  if (find_blank(buf, len, 0, 1, &he, &body)) he = len;
  if ((rc = write_no_bcc(fd, buf, he))) return rc;
  return mh_fsutil_write_all(fd, buf + he, len - he);
}
