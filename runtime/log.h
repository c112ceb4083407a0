/*
** log.h — the one logger of the process, shared by the C core and Lua.
** Lines go to stderr as "TIMESTAMP LEVEL message" (or to syslog when asked),
** TIMESTAMP in UTC with its offset (ISO 8601: 2026-12-04T13:30:32.123+00:00),
** so an administrator reading a journal at 3 a.m. sees one format.
** Nothing here ever formats a password: callers pass masked values.
*/
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include "journal.h"

typedef enum { MH_LOG_DEBUG, MH_LOG_INFO, MH_LOG_WARN, MH_LOG_ERROR } mh_log_level;

/* Lines below level are dropped; default MH_LOG_INFO ($MAILHOOK_LOG_LEVEL). */
void mh_log_set_level(mh_log_level level);
mh_log_level mh_log_get_level(void);

/* Send lines to syslog(3) with ident instead of stderr; NULL goes back. */
void mh_log_use_syslog(const char *ident);

/* Parse "debug"/"info"/"warn"/"error"; returns -1 for anything else. */
int mh_log_parse_level(const char *name);
const char *mh_log_level_name(mh_log_level level);

/* Called just before and just after every line written to stderr (not to
** syslog), with ud: lets an interactive front end (the REPL's readline) take
** its prompt off the screen and draw it again below the line, so log lines of
** background tasks do not land in the middle of the line being typed.  Either
** may be NULL; mh_log_set_hooks(NULL, NULL, NULL) removes them.  They run
** only for lines logged by the thread that set them (the loop thread); lines
** of other threads (libuv's workers) are written without them. */
typedef void (*mh_log_hook)(void *ud);
void mh_log_set_hooks(mh_log_hook before, mh_log_hook after, void *ud);

void mh_log(mh_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mh_vlog(mh_log_level level, const char *fmt, va_list ap);

/* Where lines go (the `log` setting): stderr, syslog(3) with IDENT and
** FACILITY (LOG_MAIL, LOG_DAEMON, LOG_LOCAL0, ...; -1 keeps the last, LOG_MAIL
** at first), or the journal's native protocol (journal.h) with
** SYSLOG_IDENTIFIER=IDENT.  A line the journal refuses goes to stderr, and
** the first refusal is reported there.  0; -errno when nothing listens on
** the sink's socket (/dev/log, the journal's), then the sink is unchanged;
** MH_EINVAL for an unknown sink. */
typedef enum { MH_LOG_STDERR, MH_LOG_SYSLOG, MH_LOG_JOURNAL } mh_log_sink;
int mh_log_set_sink(mh_log_sink sink, const char *ident, int facility);
mh_log_sink mh_log_get_sink(void);

/* The level from the settings (log_level): applied unless -v/-q,
** $MAILHOOK_LOG_LEVEL or mh_log_set_level chose one, which win. */
void mh_log_set_default_level(mh_log_level level);

/* A line with structured fields: in the journal, MESSAGE=msg plus the n
** EXTRA fields (MAILHOOK_QUEUE_ID=...); on stderr and in syslog, msg alone.
** Returns 0 when the level drops it, 1 when it was written. */
int mh_log_fields(mh_log_level level, const char *msg, const mh_journal_field *extra, size_t n);

#define mh_debug(...) mh_log(MH_LOG_DEBUG, __VA_ARGS__)
#define mh_info(...)  mh_log(MH_LOG_INFO, __VA_ARGS__)
#define mh_warn(...)  mh_log(MH_LOG_WARN, __VA_ARGS__)
#define mh_error(...) mh_log(MH_LOG_ERROR, __VA_ARGS__)

#endif
