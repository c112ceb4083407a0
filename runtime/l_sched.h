/*
** l_sched.h — the scheduler shared by every Lua binding.
**
** All Lua runs on the loop thread, each script, handler and REPL line in its
** own coroutine (a "task").  A binding that waits for the network or the disk
** embeds an mh_wait in its request, starts the libuv request, and returns
** mh_wait_yield(); the libuv callback pushes the results on mh_wait_co() and
** calls mh_wait_resume().  That is the one mechanism: timers, getaddrinfo,
** thread-pool work (mh_l_work), SMTP sessions all go through it.
**
** Rule code runs under budgets (instructions, running time, lifetime, Lua
** memory) kept here too, with a watchdog thread for what no hook reaches:
** core.rule_call and friends, documented in l_sched.c and docs/rules.md.
**
** Only for runtime/l_*.c: the C core never sees Lua.
*/
#ifndef MH_L_SCHED_H
#define MH_L_SCHED_H

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

typedef struct mh_task mh_task;
typedef struct mh_wait mh_wait;

/* Embedded (first or anywhere) in a binding's request struct. */
struct mh_wait {
  mh_task *task;               /* the waiting task; NULL once the wait was cancelled */
  void (*cancel)(mh_wait *w);  /* stop the libuv request on interrupt (may be NULL);
                                  the request's callback must still run and free itself */
};

/* The loop every binding uses. */
uv_loop_t *mh_l_loop(void);

/* Ties w to the running task.  Raises a clear Lua error (naming `what`) when L
** cannot wait: the main thread, a C-call boundary, or a coroutine that is not
** a mailhook task (coroutine.wrap inside a script). Call before starting I/O. */
void mh_wait_init(lua_State *L, mh_wait *w, const char *what);

/* Yields the task; when resumed returns the values the callback pushed.
** Use as `return mh_wait_yield(L, w);`.  Raises "interrupted" on Ctrl-C/cancel. */
int mh_wait_yield(lua_State *L, mh_wait *w);

/* In the callback: the stack to push results on, or NULL if the wait was cancelled
** (then only free the request). */
lua_State *mh_wait_co(mh_wait *w);

/* In the callback, after pushing nres values on mh_wait_co(w): resume the task.
** w is not touched afterwards, so the request may be freed after this returns. */
void mh_wait_resume(mh_wait *w, int nres);

/* Thread-pool work: `work` runs off the loop without Lua; then `push` runs on the
** loop, pushes the results on co and returns their count; then `done` frees arg
** (also when the task was interrupted).  Returns what the task is resumed with. */
typedef void (*mh_work_fn)(void *arg);
typedef int (*mh_push_fn)(lua_State *co, void *arg);
int mh_l_work(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
              void (*done)(void *arg), void *arg);

/* Spawn fn (at index idx) with the nargs values above it as a new task; pushes the
** task object.  The task starts on the next loop turn.  Spawned while a rule
** runs (core.rule_call), it belongs to that rule: same budget (see l_sched.c). */
mh_task *mh_task_spawn(lua_State *L, int idx, int nargs, const char *name);

/* Task state for hosts (main.c, the REPL). */
int mh_task_done(const mh_task *t);   /* 0 running, 1 returned, -1 raised */
void mh_task_set_quiet(mh_task *t, int quiet); /* don't log its error (a joiner reports it) */
/* Interrupt: cancel the wait in progress and raise "interrupted" in the task. */
void mh_task_interrupt(mh_task *t);

/* Failure convention for expected errors: pushes nil, message, info where
** info = {code = "EXXX", class = ..., stage = ...}.  Returns 3. */
int mh_l_fail(lua_State *L, int code, const char *stage, const char *fmt, ...);

/* The userdata class of STYLE.md: metatable `name` with methods as __index, and
** one idempotent close as both __gc and __close; tostring may be NULL. */
void mh_l_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring);

/* Per-module registration (generated list in build/l_modules.h). */
#define MH_MODULE(name) void name##_open(lua_State *L);
#include "l_modules.h"
#undef MH_MODULE

#endif
