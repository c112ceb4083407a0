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
** A caller outside the loop (mailhook.core loaded by a stock Lua, no task
** running) cannot yield to a loop that nobody runs: there the same wait runs
** the loop itself until it is over, blocking the caller as LuaSocket does.
**
** Rule code runs under budgets (instructions, running time, lifetime, Lua
** memory) kept here too, with a watchdog thread for what no hook reaches:
** core.rule_call and friends, documented in l_sched.c and docs/rules.md.
**
** Only for runtime/l_*.c: the C core never sees Lua.
*/
#ifndef MH_L_SCHED_H
#define MH_L_SCHED_H

#include <signal.h>
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

/* Each Lua state has its own libuv loop and scheduler state (an mh_lctx, made
** by luaopen_mailhook_core and closed with the state: its __gc cancels what
** still waits, closes every handle and the loop), so two states in one process
** never share one, and nothing here is global.  loop->data is the mh_lctx. */
typedef struct mh_lctx mh_lctx;

/* Makes (once per state) and returns the state's context; luaopen calls it. */
mh_lctx *mh_l_ctx_open(lua_State *L);
/* l_core.c: drops every relative template ("./?.lua") from package.path and
** cpath.  The binary's own hosts (main.c, l_embed.c) call it before adding
** their folders; a stock interpreter loading core.so keeps its paths. */
void mh_l_absolute_paths(lua_State *L);
/* The context of L's state; raises when the state has none (no luaopen). */
mh_lctx *mh_l_ctx(lua_State *L);

/* The loop of L's state: where a binding starts its handles and requests.
** A callback finds it on its handle (h->loop) and keeps it for what it starts. */
uv_loop_t *mh_l_loop(lua_State *L);

/* A thread of the state that callbacks may push on and spawn from (never
** running, never the caller's: the state's main thread may be blocked inside
** a wait, or be a host's).  Keep it, not LUA_RIDX_MAINTHREAD, in callbacks. */
lua_State *mh_l_cbstate(lua_State *L);

/* Runs the loop of L's state (uv_run with MODE) for a host: main.c,
** mh_emit, mh.run, mh.step.  The loop is not reentrant: raises when called
** from inside it (a task, a callback).  Returns uv_run's result. */
int mh_l_run(lua_State *L, uv_run_mode mode);

/* SIGPIPE around a write to a socket, for a process that did not ignore it
** (a foreign interpreter: the mailhook binary ignores it, and this costs
** nothing there).  The signal a write raises is consumed, and the write fails
** with EPIPE instead of killing the host.  Loop runs are guarded already. */
typedef struct { int active, was_pending; sigset_t old; } mh_l_sigpipe;
void mh_l_sigpipe_begin(uv_loop_t *loop, mh_l_sigpipe *g);
void mh_l_sigpipe_end(mh_l_sigpipe *g);

/* Ties w to the running task, or, outside the loop (a foreign interpreter's
** main thread or its coroutines, when no task runs), to the caller, which
** mh_wait_yield then blocks.  Raises a clear Lua error (naming `what`) when L
** cannot wait: inside the running loop but not in a task that may yield (a
** C-call boundary such as a table.sort comparator or a __gc, a coroutine.wrap
** inside a task).  Call before starting I/O. */
void mh_wait_init(lua_State *L, mh_wait *w, const char *what);

/* In a task: yields it; when resumed returns the values the callback pushed.
** Outside the loop: runs the loop until the callback has pushed them (other
** tasks run meanwhile), as a blocking call does.  Use as
** `return mh_wait_yield(L, w);`.  Raises "interrupted" on Ctrl-C/cancel, and a
** clear error when the loop runs dry while the caller still waits. */
int mh_wait_yield(lua_State *L, mh_wait *w);

/* In the callback: the stack to push results on, or NULL if the wait was cancelled
** (then only free the request). */
lua_State *mh_wait_co(mh_wait *w);

/* In the callback, after pushing nres values on mh_wait_co(w): resume the task.
** w is not touched afterwards, so the request may be freed after this returns. */
void mh_wait_resume(mh_wait *w, int nres);
/* In the callback, instead of mh_wait_co + pushes + mh_wait_resume: push(co,
** arg) pushes the results (returns their count) as a protected call (made on
** the callback thread, the results then moved to the waiter), and the
** waiter resumes with them; a push that raises (a refused allocation: out
** of memory, the budget of a rule whose blocking wait runs the loop) resumes
** it with nil and the error instead of unwinding through uv_run.  Nothing
** happens when the wait was cancelled.  w is not touched afterwards. */
typedef int (*mh_push_fn)(lua_State *co, void *arg);
void mh_wait_deliver(mh_wait *w, mh_push_fn push, void *arg);
/* The same from Lua that runs now (another task, a __gc): the waiter resumes
** on the next loop turn with the nres values, never inside the caller (smtp
** c:close() ending the wait of the task that waits on the session). */
void mh_wait_resume_later(mh_wait *w, int nres);

/* Thread-pool work: `work` runs off the loop without Lua (or on it, at once, where
** the state runs jobs inline: `work` never touches Lua either way); then `push`
** runs on the loop, pushes the results on co and returns their count; then `done`
** frees arg (also when the task was interrupted).  Returns what the task is
** resumed with. */
typedef void (*mh_work_fn)(void *arg);
int mh_l_work(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
              void (*done)(void *arg), void *arg);
/* The same, always on the pool: for a job that may wait long on another process
** (a lock), which must not hold this state's loop where jobs run inline. */
int mh_l_work_pool(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
                   void (*done)(void *arg), void *arg);
/* on: mh_l_work runs its jobs on the loop thread, at once (a one-shot command whose
** jobs come one at a time: no pool thread to start and join).  l_sched.c
** work_inline says what stays the same. */
void mh_l_jobs_inline(lua_State *L, int on);

/* Spawn fn (at index idx) with the nargs values above it as a new task; pushes the
** task object.  The task starts on the next loop turn.  Spawned while a rule
** runs (core.rule_call), it belongs to that rule: same budget (see l_sched.c). */
mh_task *mh_task_spawn(lua_State *L, int idx, int nargs, const char *name);

/* For a libuv callback that enters Lua (spawns a task, takes a reference,
** pushes a value): runs fn on L (the state's callback thread) with ud as
** its one argument, a light userdata, as a protected call.  Anything there
** may raise (a refused allocation: out of memory, or the memory budget of
** the rule charged while the loop runs a host's blocking wait), and no
** protected call surrounds a callback: the raise was a Lua panic (the
** process aborted: `mailhook run` and every rule with it) or unwound
** through uv_run into a host's pcall (the loop left half-run, marked
** running for good: no wait worked again).  Now it fails this one call,
** logged as an error naming what ("signal USR2", a timer's name) and the
** rule charged, if any; the stack is left as it was.  fn keeps its handle
** consistent when it raises half-way.  Returns LUA_OK or the error status. */
int mh_l_cb_call(lua_State *L, lua_CFunction fn, void *ud, const char *what);

/* Task state for hosts (main.c, the REPL). */
int mh_task_done(const mh_task *t);   /* 0 running, 1 returned, -1 raised */
void mh_task_set_quiet(mh_task *t, int quiet); /* don't log its error (a joiner reports it) */
/* Interrupt: cancel the wait in progress and raise "interrupted" in the task. */
void mh_task_interrupt(mh_task *t);

/* Failure convention for expected errors: pushes nil, message, info where
** info = {code = "EXXX", class = ..., stage = ...}.  Returns 3. */
int mh_l_fail(lua_State *L, int code, const char *stage, const char *fmt, ...);

/* Misuse of a value that is not at a fixed argument position (a field of an
** options table, an item of a list): luaL_check*(L, -1) raised "bad argument
** #-1 to '?'", naming neither the function nor the field, and a call through
** pcall or a local alias names no function either.  These raise instead
** "FN: FIELD must be EXPECTED (got TYPE)", e.g. "smtp.new: port must be an
** integer (got string)"; a number is shown as its value ("got 2.5").  fn is
** the Lua-visible name ("smtp.new"), field the key as a caller writes it
** ("port", "argv[2]").  They accept what luaL_check* accepts (a numeric
** string for a number, a number for a string: converted in place, on the
** stack, as there) and read the value at index i without popping it.
** l_core.c. */
int mh_l_field_error(lua_State *L, int i, const char *fn, const char *field, const char *expected);
lua_Integer mh_l_field_integer(lua_State *L, int i, const char *fn, const char *field);
lua_Number mh_l_field_number(lua_State *L, int i, const char *fn, const char *field);
const char *mh_l_field_lstring(lua_State *L, int i, const char *fn, const char *field, size_t *len);
#define mh_l_field_string(L, i, fn, field) mh_l_field_lstring(L, i, fn, field, NULL)
/* A string a C buffer or a C call will hold (a host, a file name): as
** mh_l_field_lstring, and raises "FN: FIELD must be at most MAX bytes (got
** N)" when longer than max, or "FN: FIELD must hold no NUL byte" (C would
** see it cut at the NUL): both would name another host or another file. */
const char *mh_l_field_cstring(lua_State *L, int i, const char *fn, const char *field, size_t max);
const char *mh_l_optfield_cstring(lua_State *L, int i, const char *fn, const char *field, size_t max,
                                  const char *def);
/* The same where nil (an absent field) means def. */
lua_Integer mh_l_optfield_integer(lua_State *L, int i, const char *fn, const char *field, lua_Integer def);
lua_Number mh_l_optfield_number(lua_State *L, int i, const char *fn, const char *field, lua_Number def);
const char *mh_l_optfield_string(lua_State *L, int i, const char *fn, const char *field, const char *def);

/* Positional arguments of module functions (not methods): as the field
** helpers, "FN: NAME must be EXPECTED (got ...)", FN being the function's
** public name ("spool.stream", "mh.sleep"), found by the helper (l_core.c),
** never written at the call.  Replace luaL_check*, luaL_argcheck and
** luaL_argerror there, whose "bad argument #1 to 'mailhook.core.spool.stream'"
** named the internal C function and no argument. */
int mh_l_arg_error(lua_State *L, int arg, const char *name, const char *expected);
lua_Integer mh_l_arg_integer(lua_State *L, int arg, const char *name);
lua_Number mh_l_arg_number(lua_State *L, int arg, const char *name);
const char *mh_l_arg_lstring(lua_State *L, int arg, const char *name, size_t *len);
#define mh_l_arg_string(L, arg, name) mh_l_arg_lstring(L, arg, name, NULL)
/* A string C keeps or hands to the system (a path): refused when longer
** than max or holding a NUL, as mh_l_field_cstring, never cut. */
const char *mh_l_arg_cstring(lua_State *L, int arg, const char *name, size_t max);
#define mh_l_arg_path(L, arg, name) mh_l_arg_cstring(L, arg, name, 4095)
void mh_l_arg_type(lua_State *L, int arg, const char *name, int type);   /* LUA_TTABLE, LUA_TFUNCTION */
lua_Integer mh_l_optarg_integer(lua_State *L, int arg, const char *name, lua_Integer def);
lua_Number mh_l_optarg_number(lua_State *L, int arg, const char *name, lua_Number def);
const char *mh_l_optarg_string(lua_State *L, int arg, const char *name, const char *def);

/* A table of options (at idx; nothing when no table is there) whose keys must
** all be in known (NULL-terminated): else raises "FN: unknown option 'KEY'
** (known: A, B, ...)".  A misspelt option ({timout = 5}) was silently the
** default.  l_core.c (also core.check_options, for the Lua modules). */
void mh_l_check_options(lua_State *L, int idx, const char *fn, const char *const *known);
/* Raises "FN: takes at most MAX arguments (got N)": an extra argument (a
** second options table, a value meant for another call) was ignored. */
void mh_l_check_nargs(lua_State *L, int max, const char *fn);
/* The same for a method, self not counted: "task:wait: takes no arguments (got 1)". */
void mh_l_check_method_nargs(lua_State *L, int max, const char *fn);

/* Boxes (l_core.c): C memory a binding holds while it calls Lua, which may
** raise (out of memory under a rule's budget) and must not leak it.
** mh_l_box pushes a to-be-closed userdata with size zeroed bytes and returns
** them; release(them) runs once: when the box is closed (the C function
** returns, lua_settop drops it, an error unwinds it) or collected.  Store
** the block in the box before any further Lua call.  Dropped only by the
** function's return or by mh_l_box_free(L, idx), which runs release at
** once and leaves nil in its slot, never by lua_settop or lua_pop over it
** (Lua 5.4.4's lua_settop may use a stale stack pointer after running a
** __close).  One box at a time per C function.  mh_l_free_ptr is the release of a box holding one
** malloc'd pointer: char **p = mh_l_box(L, sizeof *p, mh_l_free_ptr). */
void *mh_l_box(lua_State *L, size_t size, void (*release)(void *));
void mh_l_box_free(lua_State *L, int idx);
/* mh_l_box, the box kept in user value uv of the userdata at owner (a slot
** set aside for it, nil at first) and used again by later calls: no garbage
** per call.  For a binding called once per message. */
void *mh_l_box_at(lua_State *L, int owner, int uv, size_t size, void (*release)(void *));
void mh_l_free_ptr(void *p);

/* The userdata class of STYLE.md: metatable `name` with methods as __index, and
** one idempotent close as both __gc and __close; tostring may be NULL.  Each
** method has the metatable as its upvalue 1 (for mh_l_checkself). */
void mh_l_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring);

/* luaL_checkudata(L, idx, name) for a method of mh_l_newclass's class `name`:
** the same result and the same errors, without looking the metatable up by
** name (a string key in the registry, some 130 instructions: several times a
** message in the deliverer) when the object's metatable is the method's
** upvalue 1.  Called from anything else it is luaL_checkudata. */
void *mh_l_checkself(lua_State *L, int idx, const char *name);

/* Per-module registration (generated list in build/l_modules.h). */
#define MH_MODULE(name) void name##_open(lua_State *L);
#include "l_modules.h"
#undef MH_MODULE

#endif
