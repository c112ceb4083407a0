/*
** mailhook.h — the public API for applications that link the runtime
** (build/libmailhook.a) instead of running `mailhook hook` once per event.
**
** An mh_runtime is one Lua state with the mailhook modules, the settings file
** and the spool it was opened on, and the rule files named by the settings
** (`rules`, default ./rules beside the settings file).  mh_emit() has the
** semantics of `mailhook hook EVENT KEY=VALUE ...`: the handlers for the event
** run, and whatever they enqueued is durable (fsynced in the spool) before it
** returns.  Delivery is the service's job (`mailhook run`).
**
** Threads: each runtime is a Lua state with a libuv loop of its own, run
** while mh_emit() runs: several may be open in one process and used from one
** thread (tests/lualib/embed-two.c), not from two threads at once (the rules'
** budgets are the process's).  A child of fork() may go on using a runtime its
** parent opened (its loop is renewed on first use).  A runtime must not be used
** after mh_close(), as memory after free().  Link with:
**   cc host.c libmailhook.a $(pkg-config --libs lua5.4 libuv openssl) -lreadline -lm
** The Lua modules are found under $MAILHOOK_ROOT (a source tree or an install
** PREFIX), else under the PREFIX the library was built for.
*/
#ifndef MAILHOOK_H
#define MAILHOOK_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mh_runtime mh_runtime;

/* Opens a runtime on the settings file conf and the spool folder spool (NULL:
** $MAILHOOK_CONF / $MAILHOOK_SPOOL, else the defaults of the command line) and
** loads the rules.  A settings file named here or by $MAILHOOK_CONF must exist
** (a typo is an error, as with -c); only the default may be absent.  Returns NULL on failure with *err set to a message the
** caller frees with free() (err may be NULL).  A rule file that fails to load
** is a failure: the message names the file. */
mh_runtime *mh_open(const char *conf, const char *spool, char **err);

/* Emits event with fields kv = {"key", "value", ..., NULL} (a value that is
** not UTF-8 is read as Windows-1252, as hook reads it).  Returns 0 when
** every handler succeeded (their mail is durable); 1 when a handler failed
** (*err names it, and its error; also any error inside mh_emit itself, out
** of memory included: "mh_emit: ...", never an abort of the host); 2 for a
** malformed event (a bad event or field
** name, a key without a value; nothing ran).  *err, when set, is freed by the
** caller with free(). */
int mh_emit(mh_runtime *rt, const char *event, const char *const *kv, char **err);

/* Closes the runtime (NULL is fine). */
void mh_close(mh_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif
