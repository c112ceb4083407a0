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
#include "log.h"

static mh_log_level min_level = MH_LOG_INFO;
static int level_from_env = 0;  /* $MAILHOOK_LOG_LEVEL read once */
static int to_syslog = 0;
static mh_log_hook hook_before;   /* around each stderr line: see mh_log_set_hooks */
static mh_log_hook hook_after;
static void *hook_ud;
static pthread_t hook_thread;     /* the hooks run only for lines of the thread that set them */

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
  if (l >= 0) min_level = (mh_log_level)l;
}

void mh_log_set_level(mh_log_level level) { level_from_env = 1; min_level = level; }
mh_log_level mh_log_get_level(void) { init_from_env(); return min_level; }

void mh_log_use_syslog(const char *ident) {
  if (ident) {
    openlog(ident, LOG_PID, LOG_MAIL);
    to_syslog = 1;
  } else if (to_syslog) {
    closelog();
    to_syslog = 0;
  }
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
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (to_syslog) {
    syslog(prio[level], "%s", msg);
    return;
  }
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
  fprintf(stderr, "%s.%03d+00:00 %-5s %s\n", ts, (int)(tv.tv_usec / 1000),
          level_names[level], msg);
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
