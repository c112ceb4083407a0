/*
** log.c — timestamped log lines on stderr, or syslog (see log.h).
** Timestamps are UTC in ISO 8601 with the offset written out
** (2026-12-04T13:30:32.123+00:00): the same clock as `mailhook queue`, and a
** line read next to the server's log or another machine's needs no guess
** about which zone it was written in.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "error.h"
#include "journal.h"
#include "log.h"
#include "text.h"

static mh_log_level min_level = MH_LOG_INFO;
static int level_from_env = 0;  /* $MAILHOOK_LOG_LEVEL read once */
static int to_syslog = 0;
static mh_log_hook hook_before;   /* around each stderr line: see mh_log_set_hooks */
static mh_log_hook hook_after;
static void *hook_ud;
static pthread_t hook_thread;     /* the hooks run only for lines of the thread that set them */
static int to_journal = 0;        /* the sinks: see "sinks" at the end */
static int level_explicit = 0;    /* -v/-q, $MAILHOOK_LOG_LEVEL or mh.log.level(): the settings yield */
static _Thread_local int journal_skip;
static int journal_line(mh_log_level level, const char *msg, const mh_journal_field *extra, size_t n);

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int mh_log_parse_level(const char *name) {
  for (int i = 0; i < 4; i++)
    if (name && strcasecmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *mh_log_level_name(mh_log_level level) {
  return (unsigned)level < 4 ? level_names[level] : "?";
}

static void init_from_env(void) {
  if (level_from_env) return;
  level_from_env = 1;
  int l = mh_log_parse_level(getenv("MAILHOOK_LOG_LEVEL"));
  if (l >= 0) { min_level = (mh_log_level)l; level_explicit = 1; }
}

void mh_log_set_level(mh_log_level level) { level_from_env = 1; level_explicit = 1; min_level = level; }
mh_log_level mh_log_get_level(void) { init_from_env(); return min_level; }

/* openlog(3) keeps the ident pointer: mh_log_set_sink copies it first (a Lua
** string passed here may be collected once the call returns). */
void mh_log_use_syslog(const char *ident) {
  mh_log_set_sink(ident ? MH_LOG_SYSLOG : MH_LOG_STDERR, ident, -1);
}

void mh_log_set_hooks(mh_log_hook before, mh_log_hook after, void *ud) {
  hook_before = before;
  hook_after = after;
  hook_ud = ud;
  hook_thread = pthread_self();
}

void mh_vlog(mh_log_level level, const char *fmt, va_list ap) {
  static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
  init_from_env();
  if (level < min_level) return;
  char msg[2048];
  int full = vsnprintf(msg, sizeof msg, fmt, ap);
  if (full >= (int)sizeof msg) {
    /* a longer message (a rule's error quoting an event's value of megabytes):
       its start, cut on a UTF-8 boundary, and how much is not shown (was cut
       without a word) */
    char tail[48];
    size_t keep = sizeof msg - sizeof tail;
    keep = mh_text_cut(msg, keep);
    snprintf(tail, sizeof tail, " ... (%lld more bytes)", (long long)full - (long long)keep);
    memcpy(msg + keep, tail, strlen(tail) + 1);
  }
  /* text from outside (a server's reply, a file name, a header) must not
     drive the terminal that shows the log: control bytes but newline and
     tab, C1 controls, direction overrides, bytes that are no UTF-8 become '?'
     (an escape sequence, a CR that rewrites the line; text.h) */
  mh_text_shown(msg, strlen(msg), MH_TEXT_KEEP_LINES);
  if (to_syslog) {
    syslog(prio[level], "%s", msg);
    return;
  }
  if (to_journal && !journal_skip && journal_line(level, msg, NULL, 0) == 0) return;   /* else stderr */
  struct timeval tv;
  struct tm tm;
  char ts[32];
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  /* a line of a worker thread (spool work on libuv's pool) is written bare:
     the hooks touch the front end's state, which is the loop thread's only */
  int hooked = (hook_before || hook_after) && pthread_equal(pthread_self(), hook_thread);
  if (hooked && hook_before) hook_before(hook_ud);
  /* a message of several lines (a traceback; a value holding a newline) continues
     on lines that start with a tab: only the first line of an entry starts with a
     time stamp, so text from outside cannot forge an entry of its own */
  /* The entry is built whole and written with one write(2): stderr is
     unbuffered, and the service and its rules worker share it, so an entry
     written in pieces (stamp, text, newline) could be cut by the other's
     (seen: "...info  2026-...info  maildrop: ..."). Up to PIPE_BUF bytes a
     pipe (the journal's stdout stream) keeps one write whole. */
  char entry[64 + 2 * sizeof msg];
  size_t n = (size_t)snprintf(entry, 64, "%s.%03d+00:00 %-5s ", ts, (int)(tv.tv_usec / 1000),
                              level_names[level]);
  for (const char *line = msg, *nl; ; line = nl + 1) {
    size_t len;
    nl = strchr(line, '\n');
    len = nl ? (size_t)(nl - line) : strlen(line);
    if (line != msg) entry[n++] = '\t';
    memcpy(entry + n, line, len);
    n += len;
    entry[n++] = '\n';
    if (!nl || !nl[1]) break;   /* a final newline ends the entry, as none would */
  }
  fflush(stderr);   /* (unbuffered unless a host changed it: what it holds goes first) */
  for (size_t off = 0; off < n; ) {
    ssize_t w = write(STDERR_FILENO, entry + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;   /* nowhere to say it */
    off += (size_t)w;
  }
  if (hooked && hook_after) {
    fflush(stderr);   /* the line first, then what the hook redraws after it */
    hook_after(hook_ud);
  }
}

void mh_log(mh_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mh_vlog(level, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ sinks
** The `log` setting: stderr (above), syslog(3), or the journal's native
** protocol (journal.h) with structured fields.  A line the journal does not
** take (no journald, a full socket) is written to stderr instead, and the
** first such failure says why there: nothing is dropped silently. */

static const int syslog_prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
static char sink_ident[64] = "mailhook";   /* SYSLOG_IDENTIFIER, openlog's ident */
static int sink_facility = LOG_MAIL;       /* syslog facility (also SYSLOG_FACILITY) */
static int journal_failed;                 /* the failure was reported once */
/* journal_skip (declared above): this thread's line failed the journal already, stderr it is */

/* Whether something listens on the Unix socket at PATH (a datagram socket, or
** a stream one for a syslogd that listens so): 0 or -errno.  syslog(3) itself
** drops lines silently when nothing does. */
static int probe(const char *path) {
  struct sockaddr_un sa;
  int types[2] = {SOCK_DGRAM, SOCK_STREAM}, rc = -ENOENT;
  if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  for (int i = 0; i < 2; i++) {
    int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    close(fd);
    if (rc != -EPROTOTYPE) break;
  }
  return rc;
}

int mh_log_set_sink(mh_log_sink sink, const char *ident, int facility) {
  int rc = 0;
  if (sink != MH_LOG_STDERR && sink != MH_LOG_SYSLOG && sink != MH_LOG_JOURNAL) return MH_EINVAL;
  if (sink == MH_LOG_SYSLOG) rc = probe(_PATH_LOG);
  if (sink == MH_LOG_JOURNAL) rc = probe(mh_journal_socket());
  if (rc < 0) return rc;
  snprintf(sink_ident, sizeof sink_ident, "%s", ident && *ident ? ident : "mailhook");
  if (facility >= 0) sink_facility = facility;
  if (to_syslog) closelog();
  to_syslog = 0;
  to_journal = 0;
  journal_failed = 0;
  if (sink == MH_LOG_SYSLOG) {
    openlog(sink_ident, LOG_PID, sink_facility);   /* sink_ident: openlog keeps the pointer */
    to_syslog = 1;
  } else if (sink == MH_LOG_JOURNAL) {
    to_journal = 1;
  }
  return 0;
}

mh_log_sink mh_log_get_sink(void) {
  return to_syslog ? MH_LOG_SYSLOG : to_journal ? MH_LOG_JOURNAL : MH_LOG_STDERR;
}

void mh_log_set_default_level(mh_log_level level) {
  init_from_env();
  if (!level_explicit) min_level = level;
}

/* One journal entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, SYSLOG_FACILITY and
** the caller's fields.  0, or the failure (the caller writes to stderr). */
static int journal_line(mh_log_level level, const char *msg, const mh_journal_field *extra, size_t n) {
  mh_journal_field f[32];
  char prio[12], fac[12];
  size_t k = 0;
  int rc;
  snprintf(prio, sizeof prio, "%d", syslog_prio[level]);
  snprintf(fac, sizeof fac, "%d", sink_facility >> 3);
  f[k++] = (mh_journal_field){"MESSAGE", msg, (size_t)-1};
  f[k++] = (mh_journal_field){"PRIORITY", prio, (size_t)-1};
  f[k++] = (mh_journal_field){"SYSLOG_IDENTIFIER", sink_ident, (size_t)-1};
  f[k++] = (mh_journal_field){"SYSLOG_FACILITY", fac, (size_t)-1};
  for (size_t i = 0; i < n && k < sizeof f / sizeof f[0]; i++) f[k++] = extra[i];
  rc = mh_journal_send(f, k);
  if (rc < 0 && !journal_failed) {
    journal_failed = 1;
    fprintf(stderr, "mailhook: the journal (%s) does not take log entries: %s; logging to stderr\n",
            mh_journal_socket(), mh_strerror(rc));
  }
  return rc;
}

/* A journal entry's MESSAGE and the caller's field values as mh_vlog shows an
** entry (text.h, lines kept: the journal frames them): a reply or an address
** in a mail log line never carries an ESC or a C1 control to `journalctl`.
** 0, or the failure (journal_line's, MH_ENOMEM). */
static int journal_shown(mh_log_level level, const char *msg, const mh_journal_field *extra, size_t n) {
  mh_journal_field f[32];
  char *copy[33];
  size_t k = 0;
  int rc = MH_ENOMEM;
  if (n > sizeof f / sizeof f[0]) n = sizeof f / sizeof f[0];
  for (; k <= n; k++) {
    const char *v = k ? extra[k - 1].value : msg;
    size_t len = k ? extra[k - 1].len : (size_t)-1;
    if (len == (size_t)-1) len = strlen(v);
    if (!(copy[k] = malloc(len + 1))) goto out;
    memcpy(copy[k], v, len);
    copy[k][len] = '\0';
    len = mh_text_shown(copy[k], len, MH_TEXT_KEEP_LINES);
    if (k) f[k - 1] = (mh_journal_field){extra[k - 1].name, copy[k], len};
  }
  rc = journal_line(level, copy[0], f, n);
out:
  while (k > 0) free(copy[--k]);
  return rc;
}

int mh_log_fields(mh_log_level level, const char *msg, const mh_journal_field *extra, size_t n) {
  init_from_env();
  if (level < min_level) return 0;
  if (to_journal && journal_shown(level, msg, extra, n) == 0) return 1;
  journal_skip = to_journal;
  mh_log(level, "%s", msg);
  journal_skip = 0;
  return 1;
}
