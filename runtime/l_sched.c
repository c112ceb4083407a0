/*
** l_sched.c — tasks (coroutines on the libuv loop) and the wait mechanism of
** l_sched.h, plus the Lua functions built directly on them: spawn, sleep,
** every, resolve, log, now.
**
** A task is a full userdata "mailhook.Task" whose user value holds its
** coroutine, its result table, and its joiners.  The registry table TASKS maps
** each live coroutine to its task, which is how mh_wait_init() knows that the
** running coroutine may wait (and which task to resume later).
**
** Budgets (the second half of this file) bound what rule code may spend:
** every task and coroutine a rule creates is charged to the rule's budget,
** through a C count hook that lua_newthread copies into each new coroutine,
** a wall-clock deadline enforced by a loop timer (for waits) and by a watchdog
** thread (for time spent inside one C call, where no hook runs), and a memory
** cap in the Lua allocator.  docs/rules.md says why it is built this way.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "l_sched.h"
#include "error.h"
#include "log.h"
#include "text.h"

#define TASK_MT "mailhook.Task"
#define EVERY_MT "mailhook.Every"
#define CTX_MT "mailhook.Loop"

/* Registry keys: only their addresses are used (never written). */
static const char TASKS = 0;     /* coroutine -> task userdata */
static const char INTERRUPT = 0; /* sentinel value a task is resumed with when interrupted */
static const char CTX = 0;       /* the state's mh_lctx userdata */

/* A rule's budget: see the budgets section below. */
typedef struct mh_budget mh_budget;
enum { STOP_NONE, STOP_INSTR, STOP_TIME, STOP_LIFE, STOP_MEM };

struct mh_budget {
  int refs;                 /* tasks and rule_call frames holding it */
  int id;                   /* stable number for Lua (core.budget()) */
  int stopped;              /* STOP_*: why it was stopped, once it was */
  int defer;                /* > 0: in a section that must not be cut (rule state lock) */
  int reported;             /* its rule_call reported the failure: tasks need not */
  int expired_seen;         /* the wall timer interrupted its tasks already */
  long long instr_used;     /* instructions counted so far */
  long long instr_limit;
  uint64_t start;           /* uv_hrtime() at creation */
  uint64_t run_used;        /* ns its slices ran (wall clock while charged), ended slices */
  uint64_t run_limit;       /* ns of running time allowed */
  uint64_t deadline;        /* start + the lifetime limit: waits included (ns) */
  double seconds, life;     /* the limits in seconds, for messages */
  size_t mem_limit;         /* Lua heap bytes allowed while it is charged */
  size_t mem_refused;       /* growth the allocator last refused it, 0: none since
                               (the hook then collects and decides: see budget_hook) */
  mh_budget *prev, *next;   /* the live list (the watchdog thread names them) */
  mh_lctx *x;               /* the state of the tasks it charges (its wall timer, its tasks) */
  char label[160];          /* "rule NAME for event 'E'", "rule file F", ... */
};

struct mh_task {
  lua_State *co;            /* the coroutine (kept alive by the user value); for the
                               blocker, the blocked caller's thread */
  mh_lctx *x;               /* the state's context (its loop, its ready queue) */
  mh_wait *wait;            /* the wait in progress, NULL while running or ready */
  mh_task *next_ready;      /* link in the ready queue */
  int ready;                /* queued: resume with ready_nargs values on co's stack */
  int ready_nargs;
  int started;              /* first resume done (arguments consumed) */
  int state;                /* 0 running, 1 returned, -1 raised */
  int quiet;                /* a joiner (or the REPL) reports the error, do not log it */
  int interrupted;          /* an interrupt is pending for the next resume */
  int blocker;              /* this is x->blocker, not a task: see mh_wait_yield */
  int woke;                 /* blocker only: the wait is over, its results are pushed */
  mh_budget *budget;        /* the rule budget its slices are charged to (a reference),
                               or NULL: inherited at spawn, swapped by rule_call */
  int rule_task;            /* spawned while a budget was current: counted in
                               rule_tasks_live, its failure reported by rule_tasks_wait */
  char name[48];            /* for log lines: script name, handler, "repl" */
};

typedef struct joiner {     /* a task (or the blocked caller) waiting in task:wait() */
  mh_wait w;
  struct joiner *next;
  mh_task *target;
} joiner;

/* ------------------------------------------------------------ the state
** One mh_lctx per Lua state, a userdata in the registry made by luaopen before
** anything else that has a __gc: lua_close finalizes in the reverse order of
** creation, so its __gc (ctx_gc) runs last, after every binding object closed
** its handles, and closes the loop.  Nothing a state uses is shared with
** another state: two interpreters in one process each have their own. */
struct mh_lctx {
  uv_loop_t loop;            /* the state's loop (loop.data = this) */
  lua_State *cb;             /* scratch thread for callbacks (the ctx's user value):
                                never running, so results and spawns never land on
                                a caller's stack (the main thread may be blocked in
                                mh_wait_yield, or be a host's) */
  uv_idle_t ready_idle;      /* resumes ready tasks on the next loop turn; ref'd only
                                while one is ready */
  mh_task *ready_head, *ready_tail;   /* the ready queue, in order */
  mh_task blocker;           /* stands for the caller blocked in mh_wait_yield outside
                                the loop (at most one: the loop is not reentrant) */
  const char *blocking_what; /* what the blocked caller waits in (messages) */
  int running;               /* inside uv_run: a task or a callback runs, and nothing may
                                run the loop again (uv_run is not reentrant) */
  int closing;               /* ctx_gc started: callbacks only free, nothing resumes */
  int closed;                /* the loop is closed */
  unsigned gen;              /* fork_gen when the loop's kernel state (epoll fd, async
                                eventfd) was made: a child of fork() shares them with
                                its parent until uv_loop_fork (ctx_forked) */
  int sigpipe_guard;         /* SIGPIPE was not ignored when the state opened (a foreign
                                interpreter): writes and loop runs block it */
  /* budgets section (below): what a budget needs of its state */
  uv_timer_t wall_timer;     /* interrupts the waits of this state's budgets past their lifetime */
  int wall_timer_init;
  /* the task of the coroutine that last asked (find_task, once per wait: the
     TASKS lookup and its luaL_testudata were ~600 instructions a message);
     valid while TASKS[last_co] is last_task: forgotten when that task ends
     (finish) or is collected (l_task_gc) */
  lua_State *last_co;
  mh_task *last_task;
  int jobs_inline;           /* mh_l_work runs its jobs on this thread (mh_l_jobs_inline) */
};

/* One more in every child of fork() (pthread_atfork, registered with the first
** state): a state compares it with the generation its loop was made in.  A
** load, where getpid() was a system call per use of the state, several per
** message a deliverer sends. */
static volatile unsigned fork_gen;
static pthread_once_t fork_gen_once = PTHREAD_ONCE_INIT;
static void fork_gen_child(void) { fork_gen++; }
static void fork_gen_register(void) { pthread_atfork(NULL, NULL, fork_gen_child); }

/* After fork() the child's loop still shares its epoll fd and its wake-up
** eventfd with the parent's: a completion one of them signals may be consumed
** by the other, whose wait then never ends.  The first use of the state in the
** child gives its loop kernel state of its own (before any request is made). */
static void ctx_forked(mh_lctx *x) {
  int rc;
  if (x->closed || x->gen == fork_gen) return;
  x->gen = fork_gen;
  if ((rc = uv_loop_fork(&x->loop)) < 0)
    mh_error("after fork(): the mailhook loop could not be renewed: %s", uv_strerror(rc));
}

static mh_lctx *ctx_of(lua_State *L) {
  mh_lctx *x;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX);
  x = (mh_lctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (x) ctx_forked(x);
  return x;
}

mh_lctx *mh_l_ctx(lua_State *L) {
  mh_lctx *x = ctx_of(L);
  if (!x || x->closed) luaL_error(L, "mailhook.core is not open in this Lua state");
  return x;
}

uv_loop_t *mh_l_loop(lua_State *L) { return &mh_l_ctx(L)->loop; }

lua_State *mh_l_cbstate(lua_State *L) { return mh_l_ctx(L)->cb; }

/* ------------------------------------------------------------- SIGPIPE */

void mh_l_sigpipe_begin(uv_loop_t *loop, mh_l_sigpipe *g) {
  mh_lctx *x = (mh_lctx *)loop->data;
  sigset_t set, pend;
  g->active = 0;
  if (!x || !x->sigpipe_guard) return;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &set, &g->old) != 0) return;
  if (sigismember(&g->old, SIGPIPE)) return;   /* blocked already (a guard outside this one) */
  g->active = 1;
  g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
}

void mh_l_sigpipe_end(mh_l_sigpipe *g) {
  sigset_t set, pend;
  if (!g->active) return;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (!g->was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
    static const struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
  g->active = 0;
}

/* ---------------------------------------------------------------- tasks */

static void task_resume(mh_task *t, int nargs);

/* Budgets (defined below, used by the task machinery). */
static mh_budget *cur;                      /* the budget charged now, or NULL */
static int rule_tasks_live;                 /* tasks with rule_task set, not finished */
static mh_budget *budget_ref(mh_budget *b);
static void budget_unref(mh_budget *b);
static mh_budget *slice_switch(mh_budget *b);
static void hook_arm(lua_State *co, mh_budget *b);
static int budget_over(mh_budget *b);
static const char *budget_why(mh_budget *b, char *buf, size_t n);

#define MAX_ERROR 1000      /* bytes of a task's error kept for the log and its rule's failure */

/* The one text of an error value, for the log and a rule's failure (not for
** task:wait(), which returns the value itself, as pcall does): a string (or a
** number) as it is, NUL bytes and all; what a __tostring returns (called
** protected: one that raises or returns no string is described instead);
** else a short description that keeps what a table holds: "(error object: a
** table {code=5, why="disk"})".  It was "(error object is a table value)",
** the fields lost.  Pushed on L; returns it and its length in *len. */
#define DESCRIBED_FIELDS 8  /* fields of a table error shown, then ", ..." */
static int call_tostring(lua_State *L) {
  if (!luaL_callmeta(L, 1, "__tostring") || lua_type(L, -1) != LUA_TSTRING) lua_pushnil(L);
  return 1;
}
static void describe_scalar(lua_State *L, int idx, int quoted) {
  size_t n;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    if (!quoted) { lua_pushvalue(L, idx); return; }
    lua_pushliteral(L, "\"");
    lua_pushlstring(L, s, n > 60 ? 60 : n);
    lua_pushstring(L, n > 60 ? "...\"" : "\"");
    lua_concat(L, 3);
    return;
  case LUA_TNUMBER:
    lua_pushvalue(L, idx);
    lua_tolstring(L, -1, NULL);   /* (on the copy: a key must stay a number for lua_next) */
    return;
  case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); return;
  default: lua_pushfstring(L, "(a %s)", luaL_typename(L, idx)); return;
  }
}
static const char *error_value_text(lua_State *L, int idx, size_t *len) {
  int t = lua_type(L, idx), top, shown = 0;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 12, "error text");
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    lua_pushvalue(L, idx);
    return lua_tolstring(L, -1, len);
  }
  if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushcfunction(L, call_tostring);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) return lua_tolstring(L, -1, len);
    lua_pop(L, 1);
  }
  if (t != LUA_TTABLE) {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
    return lua_tolstring(L, -1, len);
  }
  top = lua_gettop(L);
  lua_pushliteral(L, "(error object: a table {");
  lua_pushnil(L);
  while (lua_next(L, idx)) {          /* raw: no __pairs, no __index is called */
    /* [..., key, value] */
    if (shown == DESCRIBED_FIELDS) { lua_pop(L, 2); lua_pushliteral(L, ", ..."); break; }
    luaL_checkstack(L, 8, "error text");
    lua_pushstring(L, shown++ ? ", " : "");
    if (lua_type(L, -3) == LUA_TSTRING) {
      describe_scalar(L, -3, 0);
    } else {
      lua_pushliteral(L, "[");
      describe_scalar(L, -4, 1);
      lua_pushliteral(L, "]");
      lua_concat(L, 3);
    }
    lua_pushliteral(L, "=");
    describe_scalar(L, -4, 1);
    lua_concat(L, 4);                 /* [..., key, value, "SEP K=V"] */
    lua_remove(L, -2);
    lua_insert(L, -2);                /* [..., "SEP K=V", key] */
  }
  lua_pushliteral(L, "})");
  lua_concat(L, lua_gettop(L) - top);
  return lua_tolstring(L, -1, len);
}

/* Pushes s (len bytes) for a C log line: each NUL as "\0" (the log line was
** cut at the first NUL, what followed lost; log.c shows the other control
** bytes).  Returns the copy, a C string. */
static const char *nul_escaped(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    if (s[i]) luaL_addchar(&b, s[i]);
    else luaL_addlstring(&b, "\\0", 2);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* A task's error as logged and reported: its start, cut on a UTF-8 character
** boundary past MAX_ERROR bytes with how much was cut (an error may carry an
** event's value of megabytes; cut silently by the log, the traceback after it
** was lost too).  Pushed on co when cut; *len is updated. */
static const char *bounded_error(lua_State *co, const char *msg, size_t *len) {
  size_t n = *len, cut = MAX_ERROR;
  if (n <= MAX_ERROR || !lua_checkstack(co, 3)) return msg;
  cut = mh_text_cut(msg, cut);
  lua_pushlstring(co, msg, cut);
  lua_pushfstring(co, " ... (%I more bytes)", (lua_Integer)(n - cut));
  lua_concat(co, 2);
  return lua_tolstring(co, -1, len);
}
static void rule_task_finished(mh_task *t, const char *msg, size_t len);

static void ready_cb(uv_idle_t *h) {
  mh_lctx *x = (mh_lctx *)h->data;
  while (x->ready_head && !x->closing) {
    mh_task *t = x->ready_head;
    x->ready_head = t->next_ready;
    if (!x->ready_head) x->ready_tail = NULL;
    t->ready = 0;
    t->next_ready = NULL;
    task_resume(t, t->ready_nargs);
  }
  uv_idle_stop(h);
  uv_unref((uv_handle_t *)h);
}

/* Queue t to be resumed on the next loop turn with nargs values on its stack.
** The blocker is not queued: its wait is over, mh_wait_yield returns. */
static void make_ready(mh_task *t, int nargs) {
  mh_lctx *x = t->x;
  if (t->blocker) { t->woke = 1; t->ready_nargs += nargs; return; }
  if (t->ready) { t->ready_nargs += nargs; return; }
  t->ready = 1;
  t->ready_nargs = nargs;
  if (x->ready_tail) x->ready_tail->next_ready = t; else x->ready_head = t;
  x->ready_tail = t;
  if (x->closing) return;
  /* idle keeps the loop spinning only while something is ready */
  uv_ref((uv_handle_t *)&x->ready_idle);
  uv_idle_start(&x->ready_idle, ready_cb);
}

/* Pushes the task userdata of t (found through TASKS). */
static void push_task(lua_State *L, mh_task *t) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(t->co);
  lua_xmove(t->co, L, 1);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

static mh_task *find_task_in(mh_lctx *x, lua_State *L) {
  mh_task *t;
  if (x && L == x->last_co) return x->last_task;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(L);
  lua_rawget(L, -2);
  t = (mh_task *)luaL_testudata(L, -1, TASK_MT);
  lua_pop(L, 2);
  if (x && t) { x->last_co = L; x->last_task = t; }
  return t;
}

static mh_task *find_task(lua_State *L) { return find_task_in(NULL, L); }

/* the task no longer stands for its coroutine (it ended, or is collected) */
static void forget_task(mh_lctx *x, mh_task *t) {
  if (x && x->last_task == t) { x->last_co = NULL; x->last_task = NULL; }
}

/* Wake every joiner of the finished task t (user value slot 3 holds joiners list as
** a light chain in C; results in slot 2). */
static joiner *joiners_of(lua_State *L, int tidx) {
  joiner *j;
  lua_getiuservalue(L, tidx, 3);
  j = (joiner *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return j;
}

static void set_joiners(lua_State *L, int tidx, joiner *j) {
  lua_pushlightuserdata(L, j);
  lua_setiuservalue(L, tidx, 3);
}

/* Pushes on L what task:wait() returns for finished task at tidx:
** true, results... or false and the error value (the object raised, as pcall returns it;
** the reason for a task stopped by its budget or cancelled). */
static int push_outcome(lua_State *L, int tidx) {
  int n, i;
  lua_getiuservalue(L, tidx, 2);          /* results table {n=, ...} */
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n + 1, "too many results");
  lua_pushboolean(L, ((mh_task *)lua_touserdata(L, tidx))->state > 0);
  for (i = 1; i <= n; i++) lua_rawgeti(L, -2 - (i - 1), i);
  lua_remove(L, -(n + 2));
  return n + 1;
}

/* The task's end: its results (or error) kept for task:wait(), its joiners
** woken.  Works on the state's callback thread, never on a caller's stack. */
static void finish(mh_task *t, int status, int nres) {
  lua_State *L = t->x->cb, *co = t->co;
  int top = lua_gettop(L), tidx, i;
  joiner *j;
  /* The end of a task is the scheduler's bookkeeping, run from a callback
  ** where no protected call is: nobody's, never refused by a budget.  Run
  ** from a rule's blocking wait (a host's lua5.4), it was charged to that
  ** rule: a refused result table or traceback unwound through uv_run (the
  ** loop left half-run for good) or, where no pcall is, was a Lua panic. */
  mh_budget *was = slice_switch(NULL);
  luaL_checkstack(L, nres + LUA_MINSTACK, "too many results");
  push_task(L, t);
  tidx = lua_gettop(L);
  lua_createtable(L, nres, 1);
  if (status == LUA_OK) {
    t->state = 1;
    int tbl = lua_gettop(L);
    lua_xmove(co, L, nres);
    for (i = nres; i >= 1; i--) lua_rawseti(L, tbl, i);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
  } else {
    char why[200];
    /* ended by task:cancel() (shutdown, reload, a wake-up): normal, not an error */
    int cancelled = lua_touserdata(co, -1) == &INTERRUPT, res = tidx + 1, vidx = tidx + 2, tbi;
    const char *msg, *shown;
    size_t len;
    t->state = -1;
    if (t->budget && t->budget->mem_refused && !t->budget->stopped) t->budget->stopped = STOP_MEM;
    if (t->budget && t->budget->stopped) {
      lua_pushstring(L, budget_why(t->budget, why, sizeof why));  /* not "interrupted" nor "not enough memory" */
      cancelled = 0;                                  /* a rule stopped by its budget is an error */
    } else if (cancelled) {
      lua_pushliteral(L, "interrupted");
    } else {
      lua_pushvalue(co, -1);   /* the error value itself: task:wait() returns it, as pcall does */
      lua_xmove(co, L, 1);
    }
    /* its text (on L: no call is made on co, a thread in error), lengths kept:
       a NUL cut the log line, the failure and task:wait()'s message short */
    msg = error_value_text(L, vidx, &len);
    msg = bounded_error(L, msg, &len);
    lua_pushlstring(L, msg, len);
    /* an error that carries its traceback (a message handler's, as core.http's
       handler_run raises again) gets no second one, which would show only the
       frame that raised it again */
    if (strstr(msg, "\nstack traceback:\n") == NULL) {
      lua_pushliteral(L, "\n");
      luaL_traceback(L, co, NULL, 0);
      lua_concat(L, 3);
    }
    tbi = lua_gettop(L);
    if (t->quiet) {
    } else if (cancelled) {   /* debug at most, and no traceback: it says where it waited, not a fault */
      if (t->budget) mh_debug("%s (a task of %s): cancelled", t->name, t->budget->label);
      else mh_debug("%s: cancelled", t->name);
    } else {
      size_t tlen;
      const char *tb = lua_tolstring(L, tbi, &tlen);
      shown = nul_escaped(L, tb, tlen);
      if (t->budget) mh_error("%s (a task of %s): %s", t->name, t->budget->label, shown);
      else mh_error("%s: %s", t->name, shown);
    }
    if (t->rule_task) rule_task_finished(t, cancelled ? NULL : msg, len);   /* cancelled by its rule: no failure */
    lua_pushvalue(L, tbi);
    lua_setfield(L, res, "traceback");
    lua_pushvalue(L, vidx);
    lua_rawseti(L, res, 1);
    lua_pushinteger(L, 1);
    lua_setfield(L, res, "n");
    lua_settop(L, res);
    lua_resetthread(co);
  }
  if (t->rule_task && status == LUA_OK) rule_task_finished(t, NULL, 0);
  budget_unref(t->budget);
  t->budget = NULL;
  lua_setiuservalue(L, tidx, 2);
  /* wake joiners */
  j = joiners_of(L, tidx);
  set_joiners(L, tidx, NULL);
  while (j) {
    joiner *next = j->next;
    lua_State *jco = mh_wait_co(&j->w);
    if (jco) {
      int n = push_outcome(L, tidx);
      lua_xmove(L, jco, n);
      j->w.task->wait = NULL;
      make_ready(j->w.task, n);
    }
    free(j);
    j = next;
  }
  /* forget the coroutine: the task object lives on while referenced */
  forget_task(t->x, t);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_settop(L, top);
  slice_switch(was);
}

static void task_resume(mh_task *t, int nargs) {
  int nres = 0, st;
  mh_budget *saved;
  if (t->state != 0 || t->x->closing) return;
  /* a rule out of budget does not run again: it raises where it waits */
  if (t->budget && t->started && !t->budget->defer && budget_over(t->budget)) t->interrupted = 1;
  if (t->interrupted) {
    t->interrupted = 0;
    lua_pop(t->co, nargs);
    if (!t->started) {  /* never ran: raise in its place (a cancellation, as finish() sees it) */
      lua_pushlightuserdata(t->co, (void *)&INTERRUPT);
      finish(t, LUA_ERRRUN, 0);
      return;
    }
    lua_pushlightuserdata(t->co, (void *)&INTERRUPT);
    nargs = 1;
  }
  if (!t->started) {
    t->started = 1;
    nargs = lua_gettop(t->co) - 1;   /* function + arguments pushed at spawn */
  }
  saved = slice_switch(t->budget);
  hook_arm(t->co, t->budget);
  st = lua_resume(t->co, NULL, nargs, &nres);
  slice_switch(saved);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (!t->wait && !t->ready) make_ready(t, 0);  /* plain coroutine.yield(): let others run */
    return;
  }
  finish(t, st, nres);
}

mh_task *mh_task_spawn(lua_State *L, int idx, int nargs, const char *name) {
  mh_task *t;
  lua_State *co;
  mh_lctx *x = mh_l_ctx(L);
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TFUNCTION);
  /* the arguments are copied onto L, then moved to the new coroutine, whose
     stack starts at LUA_MINSTACK (20) slots: room is made on both first
     (mailhook with 30 arguments, mh.spawn(f, table.unpack(t)) wrote past the
     end of the stack: a crash, or a hang) */
  luaL_checkstack(L, nargs + 8, "too many arguments for a task");
  t = (mh_task *)lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->x = x;
  snprintf(t->name, sizeof t->name, "%s", name ? name : "task");
  luaL_setmetatable(L, TASK_MT);
  co = lua_newthread(L);
  if (!lua_checkstack(co, nargs + 2)) luaL_error(L, "too many arguments for a task (%d)", nargs);
  t->co = co;
  lua_setiuservalue(L, -2, 1);              /* keeps the coroutine alive */
  lua_pushvalue(L, idx);
  lua_xmove(L, co, 1);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, idx + i);
  lua_xmove(L, co, nargs);
  /* TASKS[co] = task */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (cur) {                  /* a task a rule starts is part of the rule */
    t->budget = budget_ref(cur);
    t->rule_task = 1;
    rule_tasks_live++;
  }
  make_ready(t, 0);
  return t;
}

int mh_l_cb_call(lua_State *L, lua_CFunction fn, void *ud, const char *what) {
  int top = lua_gettop(L), st;
  /* Nothing before lua_pcall may raise: lua_checkstack reports a refused
  ** growth by its result; a C function without upvalues and a light
  ** userdata are pushed as values, allocating nothing (lapi.c:
  ** lua_pushcclosure with n == 0 is setfvalue, lua_pushlightuserdata
  ** setpvalue).  What lua_pcall allocates (a CallInfo, stack for fn) it
  ** allocates inside its protection. */
  if (!lua_checkstack(L, 2)) st = LUA_ERRMEM;
  else {
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    st = lua_pcall(L, 1, 0, 0);
  }
  if (st != LUA_OK) {
    /* a string error is shown as it is (the refusal's is preallocated: no
       conversion, nothing allocated here); another value is only named; a
       refusal by the rule's budget as its stop is (a rule's error says) */
    char why[200];
    const char *msg = st == LUA_ERRMEM ? "not enough memory"
                      : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(an error object that is no string)";
    if (cur && st == LUA_ERRMEM && cur->mem_refused && !cur->stopped) cur->stopped = STOP_MEM;
    if (cur && cur->stopped) msg = budget_why(cur, why, sizeof why);
    if (cur) mh_error("%s (in %s): %s", what, cur->label, msg);
    else mh_error("%s: %s", what, msg);
  }
  lua_settop(L, top);
  return st;
}

int mh_task_done(const mh_task *t) { return t->state; }
void mh_task_set_quiet(mh_task *t, int quiet) { t->quiet = quiet; }

void mh_task_interrupt(mh_task *t) {
  if (t->state != 0) return;
  if (t->wait) {
    mh_wait *w = t->wait;
    t->wait = NULL;
    w->task = NULL;
    if (w->cancel) w->cancel(w);
  }
  t->interrupted = 1;
  make_ready(t, 0);   /* the blocker: its wait_blocking raises "interrupted" */
}

/* ---------------------------------------------------------------- waits */

/* mh_wait_init would not raise: L is a task's and may yield, or the loop is
** not running (the caller blocks). */
static int wait_possible(lua_State *L) {
  mh_lctx *x = mh_l_ctx(L);
  mh_task *t = find_task_in(x, L);
  return (t && lua_isyieldable(L)) || !x->running;
}

void mh_wait_init(lua_State *L, mh_wait *w, const char *what) {
  mh_lctx *x = mh_l_ctx(L);
  mh_task *t = find_task_in(x, L);
  if (t && lua_isyieldable(L)) {   /* a task: it yields, the loop runs on */
    w->task = t;
    return;
  }
  if (!x->running) {               /* outside the loop: the caller blocks */
    mh_task *b = &x->blocker;
    b->co = L;
    b->wait = NULL;
    b->woke = 0;
    b->ready_nargs = 0;
    x->blocking_what = what;
    w->task = b;
    return;
  }
  if (!lua_isyieldable(L))
    luaL_error(L, "%s waits, and cannot wait here (a metamethod, a __gc or a "
               "C call such as table.sort's comparator)", what);
  luaL_error(L, "%s waits, and must run in a mailhook task, not inside a plain "
             "coroutine (use mh.spawn instead of coroutine.wrap)", what);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  int n = lua_gettop(L) - (int)ctx;
  (void)status;
  if (n >= 1 && lua_touserdata(L, -1) == &INTERRUPT) {
    lua_pop(L, n);
    lua_pushlightuserdata(L, (void *)&INTERRUPT);  /* finish() prints it as "interrupted" */
    return lua_error(L);
  }
  return n;
}

/* The blocked caller: runs the loop, one turn at a time, until the callback of
** its wait pushed the results on its stack (other tasks run meanwhile). */
static int wait_blocking(lua_State *L, mh_wait *w) {
  mh_task *b = w->task;
  mh_lctx *x = b->x;
  int base = lua_gettop(L);
  luaL_checkstack(L, LUA_MINSTACK, "mailhook wait");   /* room for the callbacks' results */
  b->wait = w;
  while (!b->woke) {
    int alive = mh_l_run(L, UV_RUN_ONCE);
    if (!b->woke && !alive) {
      /* nothing left that could end the wait (a join on a task that waits on
         nothing, a signal nobody sends): give the request up */
      const char *what = x->blocking_what ? x->blocking_what : "a call";
      b->wait = NULL;
      w->task = NULL;
      if (w->cancel) w->cancel(w);
      mh_l_run(L, UV_RUN_NOWAIT);   /* close callbacks of what cancel closed */
      return luaL_error(L, "%s waits for something that can no longer happen: the loop "
                        "has nothing left to run", what);
    }
  }
  b->woke = 0;
  x->blocking_what = NULL;
  if (b->interrupted) {   /* another task closed what it waited on (smtp close) */
    b->interrupted = 0;
    lua_settop(L, base);
    return luaL_error(L, "interrupted");
  }
  return lua_gettop(L) - base;
}

int mh_wait_yield(lua_State *L, mh_wait *w) {
  if (w->task->blocker) return wait_blocking(L, w);
  w->task->wait = w;
  return lua_yieldk(L, 0, (lua_KContext)lua_gettop(L), wait_k);
}

/* In a callback: the thread to push results on (the task's coroutine, or the
** blocked caller), with room for them; NULL when the wait was cancelled or the
** state is closing (then only free the request). */
lua_State *mh_wait_co(mh_wait *w) {
  mh_task *t = w->task;
  if (!t || t->x->closing) return NULL;
  lua_checkstack(t->co, LUA_MINSTACK);
  return t->co;
}

void mh_wait_resume(mh_wait *w, int nres) {
  mh_task *t = w->task;
  if (!t) return;
  w->task = NULL;
  t->wait = NULL;
  if (t->blocker) { t->woke = 1; return; }
  task_resume(t, nres);
}

void mh_wait_resume_later(mh_wait *w, int nres) {
  mh_task *t = w->task;
  if (!t) return;
  w->task = NULL;
  t->wait = NULL;
  make_ready(t, nres);
}

/* Thread-pool work ----------------------------------------------------- */

static int work_inline(lua_State *L, mh_wait *w, mh_work_fn work, mh_push_fn push,
                       void (*done)(void *), void *arg);   /* budgets section */

void mh_l_jobs_inline(lua_State *L, int on) { mh_l_ctx(L)->jobs_inline = on; }

typedef struct {
  mh_wait w;
  uv_work_t req;
  mh_work_fn work;
  mh_push_fn push;
  void (*done)(void *);
  void *arg;
} work_req;

static void work_cb(uv_work_t *req) {
  work_req *r = (work_req *)req->data;
  r->work(r->arg);
}

typedef struct { mh_push_fn push; void *arg; } wait_push;

static int wait_push_call(lua_State *L) {
  wait_push *p = (wait_push *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  return p->push(L, p->arg);
}

void mh_wait_deliver(mh_wait *w, mh_push_fn push, void *arg) {
  lua_State *co = mh_wait_co(w), *cb;
  wait_push p = { push, arg };
  int top, n = 0, st = LUA_ERRMEM;
  if (!co) return;
  cb = w->task->x->cb;
  top = lua_gettop(cb);
  if (lua_checkstack(cb, 2)) {
    lua_pushcfunction(cb, wait_push_call);   /* allocate nothing: see mh_l_cb_call */
    lua_pushlightuserdata(cb, &p);
    st = lua_pcall(cb, 1, LUA_MULTRET, 0);
    n = lua_gettop(cb) - top;
  }
  if (st == LUA_OK && lua_checkstack(co, n)) {
    lua_xmove(cb, co, n);
  } else {
    /* nil and the error (moved, not made: nothing to allocate); a rule
       refused here is stopped, as a refusal in its own code stops it */
    if (cur && st == LUA_ERRMEM && cur->mem_refused && !cur->stopped) cur->stopped = STOP_MEM;
    lua_pushnil(co);
    n = 1;
    if (st != LUA_OK && lua_gettop(cb) > top && lua_type(cb, -1) == LUA_TSTRING) { lua_xmove(cb, co, 1); n = 2; }
    lua_settop(cb, top);
  }
  mh_wait_resume(w, n);
}

static void after_work_cb(uv_work_t *req, int status) {
  work_req *r = (work_req *)req->data;
  mh_wait_deliver(&r->w, r->push, r->arg);
  if (r->done) r->done(r->arg);
  free(r);
  (void)status;
}

static void work_cancel(mh_wait *w) {
  work_req *r = (work_req *)((char *)w - offsetof(work_req, w));
  mh_lctx *x = (mh_lctx *)r->req.loop->data;
  /* At lua_close (an os.exit(0, true) in a callback, a host closing its state)
     a job asked for still runs: ctx_gc's last loop run waits for it.  Dropped,
     an enqueue not yet started would be lost without a word, a delivered not
     done would deliver twice. */
  if (x && x->closing) return;
  uv_cancel((uv_req_t *)&r->req);  /* if already running, after_work still frees */
}

static int work_start(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
                      void (*done)(void *), void *arg, int may_inline) {
  mh_wait probe;
  work_req *r;
  /* mh_wait_init raises where no wait is possible: the same contexts may wait
     whichever thread runs the job; arg is the caller's, freed by done first */
  if (!wait_possible(L) && done) done(arg);
  mh_wait_init(L, &probe, what);
  if (may_inline && mh_l_ctx(L)->jobs_inline) return work_inline(L, &probe, work, push, done, arg);
  r = (work_req *)calloc(1, sizeof *r);
  if (!r) {
    if (done) done(arg);
    return luaL_error(L, "%s: out of memory", what);
  }
  r->w = probe;
  r->w.cancel = work_cancel;
  r->work = work;
  r->push = push;
  r->done = done;
  r->arg = arg;
  r->req.data = r;
  uv_queue_work(mh_l_loop(L), &r->req, work_cb, after_work_cb);
  return mh_wait_yield(L, &r->w);
}

int mh_l_work(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
              void (*done)(void *), void *arg) {
  return work_start(L, what, work, push, done, arg, 1);
}

int mh_l_work_pool(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
                   void (*done)(void *), void *arg) {
  return work_start(L, what, work, push, done, arg, 0);
}

/* ---------------------------------------------------------------- errors */

static const char *class_of(int code) {
  switch (code) {
    case MH_EINVAL: case MH_EBADADDR: case MH_EBADHDR: case MH_ETOOLONG:
    case MH_ETOOBIG: case MH_EDISABLED: case MH_ENOTFOUND:
      return "permanent";
    default:
      return "transient";
  }
}

int mh_l_fail(lua_State *L, int code, const char *stage, const char *fmt, ...) {
  lua_pushnil(L);
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
  } else {
    lua_pushstring(L, mh_strerror(code));
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, mh_err_name(code));
  lua_setfield(L, -2, "code");
  lua_pushstring(L, class_of(code));
  lua_setfield(L, -2, "class");
  if (stage) {
    lua_pushstring(L, stage);
    lua_setfield(L, -2, "stage");
  }
  return 3;
}

void mh_l_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    int n = 0;
    while (methods[n].name) n++;
    lua_createtable(L, 0, n);   /* sized once: no rehash per doubling (a one-shot command opens several) */
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1);   /* the metatable as upvalue 1: mh_l_checkself */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    if (tostring) {
      lua_pushcfunction(L, tostring);
      lua_setfield(L, -2, "__tostring");
    }
  }
  lua_pop(L, 1);
}

void *mh_l_checkself(lua_State *L, int idx, const char *name) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    /* (a C function without upvalues: an invalid index, never equal) */
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return p;
  }
  return luaL_checkudata(L, idx, name);
}

/* ---------------------------------------------------------------- budgets
**
** What a rule may spend, and how each way of spending is bounded:
**
**  - Lua instructions and running time: a C count hook (budget_hook) checks
**    the budget charged now (`cur`) every STEP instructions.  It is a C hook
**    on purpose: lua_newthread copies the creator's hook into every new
**    coroutine, so coroutine.wrap/create inside a rule are counted too.  The
**    debug library's Lua hooks were not: its C dispatcher looks the Lua
**    function up per thread, finds none for a new coroutine, and does nothing.
**    Once a budget is spent the hook raises at every instruction (count 1),
**    so a pcall inside the rule cannot swallow the stop.
**    Running time is the wall-clock time of the rule's own slices, so a
**    rule is not charged for the time another rule held the loop.
**  - Waits: a rule also has a lifetime (waits included, a multiple of its
**    running time).  A loop timer (wall_timer) interrupts the waiting tasks of
**    a budget past it, so a rule sleeping in a loop, or a task it spawned,
**    ends too.
**  - Time inside one C call (a backtracking string.find, a __gc finalizer,
**    which runs with hooks disabled): no hook can run there, so a watchdog
**    thread outside the Lua state ends the process once the running slice
**    passes its deadline plus a grace (and, where asked, once the loop itself
**    stalls outside any rule).  Mail made durable before stays queued.
**  - Memory: the allocator refuses to grow the Lua heap past the limit while
**    a budget is charged; a refusal that Lua's emergency collection does not
**    cure stops the rule.
**
** A budget is shared (refcounted) by the rule_call that made it and by every
** task started while it was charged (mh.spawn from a handler, task:wait...).
** Tasks of a budget hold it in mh_task.budget; task_resume makes it `cur` for
** the slice. */

#define STEP 10000          /* instructions between two checks of the hook */
#define HOOK_MASK (LUA_MASKCOUNT | LUA_MASKCALL)
#define BUDGET_MT "mailhook.RuleCall"

/* Defaults for new budgets: core.budget_limits{} (rules.lua sets them from
** the settings rule_timeout and rule_memory). */
static struct {
  long long instructions;
  double seconds;           /* running time */
  double life;              /* lifetime, waits included */
  size_t memory;
  double grace;             /* seconds the watchdog adds before ending the process */
} limits = { 50000000LL, 10.0, 30.0, (size_t)128 << 20, 1.0 };

static mh_budget *live;     /* budgets alive (refs > 0); loop thread only */
static int last_id;
/* The counting allocator of a state (lua_setallocf'd by budget_state_open): it
** forwards to the allocator the state had (luaL_newstate's, or a host's) and
** counts what the state holds.  Per state, freed when the state closes. */
typedef struct {
  lua_Alloc prev;           /* the state's own allocator, which does the work */
  void *prev_ud;
  size_t heap;              /* bytes the Lua state holds */
} lheap;

/* Rule tasks that failed (spawned tasks: their rule_call was over), for
** core.rule_tasks_wait(); waiters resumed when rule_tasks_live drops to 0. */
/* text: "LABEL (a task it started, NAME): ERROR" (len bytes), the error within MAX_ERROR */
typedef struct rt_failure { struct rt_failure *next; size_t len; char text[]; } rt_failure;
static rt_failure *rt_failures, **rt_failures_tail = &rt_failures;
typedef struct rt_waiter { mh_wait w; struct rt_waiter *next; } rt_waiter;
static rt_waiter *rt_waiters;

/* What the watchdog thread sees; every field under mu (the loop thread
** writes, the watchdog reads). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started;
  uint64_t slice_deadline;  /* when the running slice must have ended, 0: none */
  char slice_label[160];    /* whose slice it is */
  uint64_t progress_at;     /* last slice change or pong: the loop thread moves */
  uint64_t stall_limit;     /* 0: no stall detection (only hook and the rules worker) */
  uint64_t ping_sent;       /* an unanswered ping went at this time, 0: none */
  uint64_t wake_at;         /* when the thread will look next */
  int in_job;               /* the loop thread runs a job itself (work_inline): a
                               slow disk, not a stall */
  int exit_code;            /* what the process exits with when the watchdog fires */
  char gc_label[160];       /* a rule's __gc finalizer runs now: that rule ("" none) */
  /* Past the budget, the CPU the loop thread burns decides, not the wall
  ** clock: a machine too busy to run the loop thread (CI's two cores under
  ** six processes, a host swapping) stalled a rule the hook was about to stop
  ** past its deadline plus the grace, and the watchdog ended the process
  ** blaming "one call where rules cannot be interrupted".  Code the hook cannot
  ** reach burns CPU (a backtracking pattern, a looping __gc): it is ended once
  ** it has burnt the grace past the budget; a loop thread that does not run
  ** (starved, or blocked in a system call) only after STARVE_GRACES graces. */
  uint64_t slice_due;       /* slice_deadline without the grace: the budget's end */
  clockid_t loop_cpu;       /* the loop thread's CPU clock (pthread_getcpuclockid) */
  int loop_cpu_ok;          /* loop_cpu is known (else the wall clock decides, as before) */
  int past_sampled;         /* past_cpu0 holds the loop thread's CPU time at slice_due */
  uint64_t past_cpu0;
} wd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, "", 0, 0, 0, 0, 0, 1, "", 0, 0, 0, 0, 0 };
#define STARVE_GRACES 10    /* wall-clock graces past the budget before a loop thread that
                               burns no CPU is ended anyway (blocked for good) */
static uv_async_t pong;
static uv_loop_t *pong_loop; /* the loop pong is on; pong_dead (under wd.mu) once it closed */
static int pong_dead;
static pid_t wd_pid;         /* the process the thread runs in: a child of fork() has none */

static void watchdog_start(uv_loop_t *loop);
static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

static uint64_t secs_ns(double s) { return s <= 0 ? 0 : (uint64_t)(s * 1e9); }
static uint64_t cur_t0;     /* when cur's slice began */

static void wall_timer_cb(uv_timer_t *h);

/* Re-arms x's wall_timer for the earliest lifetime of its budgets not yet
** enforced (a budget in a deferred section is left to budget_release, which
** re-arms it). */
static void wall_timer_arm(mh_lctx *x) {
  uint64_t now = uv_hrtime(), due = 0;
  if (!x || x->closing) return;
  for (mh_budget *b = live; b; b = b->next)
    if (b->x == x && !b->expired_seen && !b->defer && (!due || b->deadline < due)) due = b->deadline;
  if (!x->wall_timer_init) {
    uv_timer_init(&x->loop, &x->wall_timer);
    x->wall_timer.data = x;
    uv_unref((uv_handle_t *)&x->wall_timer);   /* never keeps a process alive */
    x->wall_timer_init = 1;
  }
  if (!due) { uv_timer_stop(&x->wall_timer); return; }
  uv_timer_start(&x->wall_timer, wall_timer_cb, due > now ? (due - now) / 1000000 + 1 : 0, 0);
}

static mh_budget *budget_new(mh_lctx *x, const char *label) {
  mh_budget *b = (mh_budget *)calloc(1, sizeof *b);
  if (!b) return NULL;
  watchdog_start(&x->loop);
  b->x = x;
  b->refs = 1;
  b->id = ++last_id;
  b->instr_limit = limits.instructions;
  b->seconds = limits.seconds;
  b->life = limits.life > limits.seconds ? limits.life : limits.seconds;
  b->start = uv_hrtime();
  b->run_limit = secs_ns(b->seconds);
  b->deadline = b->start + secs_ns(b->life);
  b->mem_limit = limits.memory;
  {
    size_t n = strlen(label);
    if (n >= sizeof b->label) n = sizeof b->label - 1;
    memcpy(b->label, label, n);   /* calloc'd: NUL-terminated */
  }
  b->next = live;
  if (live) live->prev = b;
  live = b;
  wall_timer_arm(x);
  return b;
}

static mh_budget *budget_ref(mh_budget *b) { if (b) b->refs++; return b; }

static void budget_unref(mh_budget *b) {
  if (!b || --b->refs > 0) return;
  if (b->prev) b->prev->next = b->next; else live = b->next;
  if (b->next) b->next->prev = b->prev;
  if (cur == b) slice_switch(NULL);   /* cannot happen while charged; be safe */
  free(b);
}

static mh_budget *budget_by_id(int id) {
  for (mh_budget *b = live; b; b = b->next) if (b->id == id) return b;
  return NULL;
}

/* Running time of b so far, the slice running now included. */
static uint64_t run_time(mh_budget *b, uint64_t now) {
  return b->run_used + (b == cur && now > cur_t0 ? now - cur_t0 : 0);
}

/* Spent?  Marks it stopped (instructions, running time, lifetime) the first time. */
static int budget_over(mh_budget *b) {
  uint64_t now;
  if (b->stopped) return 1;
  now = uv_hrtime();
  if (b->instr_used > b->instr_limit) b->stopped = STOP_INSTR;
  else if (run_time(b, now) > b->run_limit) b->stopped = STOP_TIME;
  else if (now > b->deadline) b->stopped = STOP_LIFE;
  return b->stopped != STOP_NONE;
}

static const char *budget_why(mh_budget *b, char *buf, size_t n) {
  switch (b->stopped) {
    case STOP_INSTR:
      snprintf(buf, n, "stopped: exceeded its budget of %lld instructions (an endless loop?)", b->instr_limit);
      break;
    case STOP_TIME:
      snprintf(buf, n, "stopped: exceeded its budget of %g seconds of running time (an endless loop? "
               "the setting rule_timeout gives more)", b->seconds);
      break;
    case STOP_LIFE:
      snprintf(buf, n, "stopped: not finished %g seconds after it started, waits included (a wait "
               "that never ends? it is 3 x the setting rule_timeout)", b->life);
      break;
    case STOP_MEM:
      snprintf(buf, n, "stopped: exceeded the memory limit of %zu MB for rules (the setting rule_memory)",
               b->mem_limit >> 20);
      break;
    default:
      snprintf(buf, n, "stopped");
  }
  return buf;
}

/* Publishes the running slice to the watchdog thread (deadline + grace). */
static void watchdog_slice(mh_budget *b, uint64_t now) {
  pthread_mutex_lock(&wd.mu);
  wd.progress_at = now;
  if (b) {
    uint64_t used = run_time(b, now), left = used < b->run_limit ? b->run_limit - used : 0;
    uint64_t dl = (now + left < b->deadline ? now + left : b->deadline);
    dl = dl > now ? dl : now;
    wd.slice_due = dl;
    wd.past_sampled = 0;
    dl += secs_ns(limits.grace);
    wd.slice_deadline = dl;
    memcpy(wd.slice_label, b->label, sizeof wd.slice_label);
    if (wd.slice_due < wd.wake_at) pthread_cond_signal(&wd.cv);   /* it samples at the budget's end */
  } else {
    wd.slice_deadline = 0;
    wd.past_sampled = 0;
  }
  pthread_mutex_unlock(&wd.mu);
}

/* Makes b the charged budget; returns the one it replaces (for slice_switch
** back).  No clock read when nothing changes (unbudgeted tasks). */
static mh_budget *slice_switch(mh_budget *b) {
  mh_budget *old = cur;
  uint64_t now;
  if (old == b) return old;
  now = uv_hrtime();
  if (old && now > cur_t0) old->run_used += now - cur_t0;
  cur = b;
  cur_t0 = now;
  if (wd.started) watchdog_slice(b, now);
  return old;
}

/* A job of mh_l_work run here, on the loop thread, where the state asked for it
** (mh_l_jobs_inline: the one-shot intake commands, whose jobs come one after
** another with nothing to overlap them, so a pool thread was only its start,
** its malloc arena and its join: ~0.5 ms of a ~10 ms hook, bench/60-hook.sh).
** The job's time is a wait, as on the pool: charged to no rule's running time
** (a slow disk does not stop a rule that a fast one lets finish) and, while it
** runs, no stall for the watchdog (a hung disk hangs the command as a pool job
** would: the state waits for its jobs before it closes).  Then push and done
** run as after_work_cb runs them; the caller gets the results at once. */
/* The push of a job run inline, as a protected call: it pushes on the
** caller's state, under the caller's budget, and a refused push must not
** skip done (arg holds the job's malloc'd results): wait_push_call, as
** mh_wait_deliver's. */

static int work_inline(lua_State *L, mh_wait *w, mh_work_fn work, mh_push_fn push,
                       void (*done)(void *), void *arg) {
  mh_lctx *x = mh_l_ctx(L);
  mh_budget *was = slice_switch(NULL);
  wait_push p = { push, arg };
  int top = lua_gettop(L), st;
  pthread_mutex_lock(&wd.mu);
  wd.in_job = 1;
  pthread_mutex_unlock(&wd.mu);
  work(arg);
  pthread_mutex_lock(&wd.mu);
  wd.in_job = 0;
  wd.progress_at = uv_hrtime();
  wd.ping_sent = 0;
  pthread_mutex_unlock(&wd.mu);
  slice_switch(was);
  if (w->task == &x->blocker) x->blocking_what = NULL;   /* no wait_blocking to end */
  if (!lua_checkstack(L, 2)) {
    if (done) done(arg);
    return luaL_error(L, "mailhook job: stack overflow");
  }
  lua_pushcfunction(L, wait_push_call);
  lua_pushlightuserdata(L, &p);
  st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (done) done(arg);
  if (st != LUA_OK) return lua_error(L);   /* the push's error, arg freed */
  return lua_gettop(L) - top;
}

/* The hook of budgeted coroutines: count events (every STEP instructions)
** charge instructions; call events check the clock, so that a loop calling a
** slow C function (string.rep of megabytes, a big table.concat) meets its
** deadline within one call, not within STEP of them. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  mh_budget *b = cur;
  int count = lua_gethookcount(L);
  char why[200];
  if (!b) return;                        /* a rule's coroutine resumed outside it */
  if (ar->event == LUA_HOOKCOUNT) b->instr_used += count;
  else if (ar->event != LUA_HOOKCALL && ar->event != LUA_HOOKTAILCALL) return;
  if (b->mem_refused && !b->stopped) {   /* a refusal with no collection behind it */
    size_t need = b->mem_refused;
    b->mem_refused = 0;
    cur = NULL;                          /* the collection is nobody's */
    lua_gc(L, LUA_GCCOLLECT, 0);
    cur = b;
    void *hud;
    if (lua_getallocf(L, &hud) == budget_alloc && ((lheap *)hud)->heap + need > b->mem_limit)
      b->stopped = STOP_MEM;
  }
  if (!budget_over(b) || b->defer) return;
  if (count != 1) lua_sethook(L, budget_hook, HOOK_MASK, 1);  /* raise at every instruction */
  lua_pushstring(L, budget_why(b, why, sizeof why));
  lua_error(L);
}

/* Installs (or removes) the budget hook on a coroutine about to run. */
static void hook_arm(lua_State *co, mh_budget *b) {
  if (b) {
    int count = b->stopped && !b->defer ? 1 : STEP;
    if (lua_gethook(co) != budget_hook || lua_gethookcount(co) != count)
      lua_sethook(co, budget_hook, HOOK_MASK, count);
  } else if (lua_gethook(co) == budget_hook) {
    lua_sethook(co, NULL, 0, 0);   /* keeps plain tasks on Lua's fast path */
  }
}

/* Interrupts every unfinished task of b (they raise where they wait). */
static void budget_interrupt_tasks(mh_budget *b) {
  lua_State *L = b->x->cb;
  if (b->x->closing) return;
  int top = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    mh_task *t = (mh_task *)luaL_testudata(L, -1, TASK_MT);
    if (t && t->budget == b && t->state == 0 && !t->interrupted) mh_task_interrupt(t);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

/* Budgets past their deadline: their waiting tasks are interrupted (a rule
** sleeping in a loop, a spawned task waiting forever). */
static void wall_timer_cb(uv_timer_t *h) {
  mh_lctx *x = (mh_lctx *)h->data;
  uint64_t now = uv_hrtime();
  mh_budget *due[32];
  int n = 0;
  for (mh_budget *b = live; b && n < 32; b = b->next) {
    if (b->x != x || b->expired_seen || b->deadline > now) continue;
    if (b->defer) continue;              /* budget_release looks again */
    b->expired_seen = 1;
    if (!b->stopped) b->stopped = STOP_LIFE;
    due[n++] = budget_ref(b);
  }
  for (int i = 0; i < n; i++) {
    budget_interrupt_tasks(due[i]);
    budget_unref(due[i]);
  }
  wall_timer_arm(x);
}

/* A rule task ended (msg: its error of len bytes, NULL when it returned). */
static void rule_task_finished(mh_task *t, const char *msg, size_t len) {
  t->rule_task = 0;
  rule_tasks_live--;
  if (msg && t->budget && !t->budget->reported) {
    int head = snprintf(NULL, 0, "%s (a task it started, %s): ", t->budget->label, t->name);
    rt_failure *f = head < 0 ? NULL : (rt_failure *)malloc(sizeof *f + (size_t)head + len + 1);
    if (f) {
      f->next = NULL;
      snprintf(f->text, (size_t)head + 1, "%s (a task it started, %s): ", t->budget->label, t->name);
      memcpy(f->text + head, msg, len);   /* (NUL bytes and all: the error is shown escaped) */
      f->len = (size_t)head + len;
      f->text[f->len] = '\0';
      *rt_failures_tail = f;
      rt_failures_tail = &f->next;
    }
  }
  if (rule_tasks_live == 0) {
    while (rt_waiters) {
      rt_waiter *w = rt_waiters;
      rt_waiters = w->next;
      if (w->w.task) {
        mh_task *wt = w->w.task;
        w->w.task = NULL;
        wt->wait = NULL;
        make_ready(wt, 0);
      }
      free(w);
    }
  }
}

/* ---------------------------------------------------------- the allocator
** lua_setallocf'd over luaL_newstate's (both realloc/free, so blocks made
** before are freed correctly).  Lua retries a refused allocation once after an
** emergency full collection: a refusal of the same request right after that is
** final, and stops the rule (so a pcall inside it cannot go on allocating).
** Some refusals get no such retry (lauxlib's buffers call the allocator
** directly: string.rep, table.concat, io.read): the next hook collects and
** stops the rule if the heap still has no room for what was refused. */
static struct { const void *ptr; size_t nsize; int armed; } refused;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lheap *hp = (lheap *)ud;
  size_t old = ptr ? osize : 0;
  void *p;
  if (nsize == 0) {
    hp->prev(hp->prev_ud, ptr, osize, 0);
    hp->heap -= old;
    return NULL;
  }
  if (nsize > old && cur && hp->heap + (nsize - old) > cur->mem_limit) {
    if (refused.armed && refused.ptr == ptr && refused.nsize == nsize && !cur->stopped)
      cur->stopped = STOP_MEM;
    cur->mem_refused = nsize - old;
    refused.armed = 1;
    refused.ptr = ptr;
    refused.nsize = nsize;
    return NULL;
  }
  p = hp->prev(hp->prev_ud, ptr, osize, nsize);
  if (!p) return NULL;
  hp->heap = hp->heap - old + nsize;
  if (nsize > old) refused.armed = 0;
  return p;
}

/* --------------------------------------------------------------- watchdog
** A thread that never touches Lua.  It ends the process (after one log line
** naming the rule) when the slice running now passes its deadline plus the
** grace: only code the count hook cannot reach gets there (one long C call,
** a __gc finalizer).  With stall detection on (hook, the rules worker), it also
** pings the loop and ends the process when the loop neither answers nor
** changes slice for stall_limit: code outside any rule stuck the same way
** (a finalizer run by a collection outside a rule, lua_close's finalizers). */

static void pong_cb(uv_async_t *h) {
  (void)h;
  pthread_mutex_lock(&wd.mu);
  wd.ping_sent = 0;
  wd.progress_at = uv_hrtime();
  pthread_mutex_unlock(&wd.mu);
}

static void fire(const char *what) {
  mh_error("%s; ending the process (mail already queued stays queued)", what);
  fflush(stderr);
  _exit(wd.exit_code);
}

/* The loop thread's CPU time in ns, or 0 when it cannot be read. */
static uint64_t loop_cpu_ns(void) {
  struct timespec t;
  if (!wd.loop_cpu_ok || clock_gettime(wd.loop_cpu, &t) < 0) return 0;
  return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* Past the slice's deadline and grace (wd.mu held): FIRE_BURNT (it burns
** CPU the hook cannot stop, or nothing is known: the wall clock) or
** FIRE_IDLE (it has not run for STARVE_GRACES graces) when the process is to
** end now; else 0 and *next is when to look again.  See wd.slice_due. */
enum { FIRE_BURNT = 1, FIRE_IDLE = 2 };
static int past_budget_fires(uint64_t now, uint64_t *next) {
  uint64_t grace = secs_ns(limits.grace), cpu;
  if (!wd.past_sampled || !(cpu = loop_cpu_ns())) return FIRE_BURNT;
  if (cpu - wd.past_cpu0 >= grace) return FIRE_BURNT;
  if (now - wd.slice_due >= STARVE_GRACES * grace) return FIRE_IDLE;
  *next = now + (grace / 8 > 20000000ULL ? grace / 8 : 20000000ULL);
  return 0;
}

static void *watchdog_main(void *arg) {
  char msg[640];
  (void)arg;
  pthread_mutex_lock(&wd.mu);
  for (;;) {
    uint64_t now = uv_hrtime(), next = now + 1000000000ULL;
    struct timespec ts;
    if (wd.slice_deadline && !wd.past_sampled && now >= wd.slice_due) {
      /* the budget's end: what the loop thread has burnt so far */
      wd.past_cpu0 = loop_cpu_ns();
      wd.past_sampled = wd.past_cpu0 != 0;
    }
    int how = wd.slice_deadline && now >= wd.slice_deadline ? past_budget_fires(now, &next) : 0;
    if (how == FIRE_IDLE) {
      /* no CPU burnt past the budget: what it waits for, not a loop (the
         message said "still running 1.0 s ... a string pattern" of it) */
      snprintf(msg, sizeof msg, "%s: stopped: not finished %.1f s past its budget, burning no CPU "
               "(blocked inside one call where rules cannot be interrupted, or the machine too busy "
               "to run it)", wd.slice_label, (double)(now - wd.slice_due) / 1e9);
      pthread_mutex_unlock(&wd.mu);
      fire(msg);
    }
    if (how) {
      if (wd.gc_label[0])
        snprintf(msg, sizeof msg, "%s: stopped: still running %.1f s past its budget, inside a __gc "
                 "finalizer set by %s that never returns", wd.slice_label, limits.grace, wd.gc_label);
      else
        snprintf(msg, sizeof msg, "%s: stopped: still running %.1f s past its budget, inside one "
                 "call where rules cannot be interrupted (a C function such as a string pattern "
                 "that backtracks, or a __gc finalizer)", wd.slice_label, limits.grace);
      pthread_mutex_unlock(&wd.mu);
      fire(msg);
    }
    if (wd.stall_limit && !wd.slice_deadline && !wd.in_job) {   /* a slice has its own deadline */
      if (wd.ping_sent) {
        uint64_t last = wd.ping_sent > wd.progress_at ? wd.ping_sent : wd.progress_at;
        if (now - last >= wd.stall_limit) {
          if (wd.gc_label[0])
            snprintf(msg, sizeof msg, "%s: stopped: its __gc finalizer has run for %.1f s and never "
                     "returns", wd.gc_label, (double)(now - last) / 1e9);
          else
            snprintf(msg, sizeof msg, "rules: stopped: the event loop has not moved for %.1f s, "
                     "outside any rule (a __gc finalizer that never returns?)",
                     (double)(now - last) / 1e9);
          pthread_mutex_unlock(&wd.mu);
          fire(msg);
        }
        if (last + wd.stall_limit < next) next = last + wd.stall_limit;
      } else if (!pong_dead) {
        wd.ping_sent = now;
        uv_async_send(&pong);
      }
    }
    if (wd.slice_deadline && now < wd.slice_deadline) {
      uint64_t at = wd.past_sampled || now >= wd.slice_due ? wd.slice_deadline : wd.slice_due;
      if (at < next) next = at;
    }
    if (next <= now) next = now + 1000000;
    wd.wake_at = next;
    ts.tv_sec = (time_t)(next / 1000000000ULL);
    ts.tv_nsec = (long)(next % 1000000000ULL);
    pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
  }
  return NULL;
}

/* fork() copies wd.mu as the watchdog thread may hold it, and not the thread:
** the mutex is taken around the fork, and the child's first rule starts a
** thread of its own (watchdog_start, wd_pid), so its rules stay bounded. */
static void wd_fork_prepare(void) { pthread_mutex_lock(&wd.mu); }
static void wd_fork_parent(void) { pthread_mutex_unlock(&wd.mu); }
static void wd_fork_child(void) {
  pthread_cond_init(&wd.cv, NULL);   /* its waiter is not in this process */
  pthread_mutex_unlock(&wd.mu);
}

/* Starts the thread once (from the loop thread).  uv_hrtime is CLOCK_MONOTONIC,
** so the condition variable waits on that clock. */
static void watchdog_start(uv_loop_t *loop) {
  pthread_condattr_t ca;
  pthread_attr_t at;
  pthread_t th;
  if (wd.started && wd_pid == getpid()) return;
  if (!pong_loop) {
    /* on the first state's loop: stall detection is for a process that exists to
       run rules (hook, the rules worker: one state); closed with that loop, and
       never pinged after (budget_loop_closed).  A child of fork() keeps it (the
       same handle on its renewed loop) and only needs a thread of its own. */
    uv_async_init(loop, &pong, pong_cb);
    uv_unref((uv_handle_t *)&pong);
    pong_loop = loop;
    pthread_atfork(wd_fork_prepare, wd_fork_parent, wd_fork_child);
  }
  /* this thread runs the rules: its CPU clock (a child of fork() has its own) */
  wd.loop_cpu_ok = pthread_getcpuclockid(pthread_self(), &wd.loop_cpu) == 0;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_destroy(&wd.cv);
  pthread_cond_init(&wd.cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 64 * 1024);
  wd.started = 1;
  wd_pid = getpid();
  wd.progress_at = uv_hrtime();
  wd.wake_at = UINT64_MAX;
  if (pthread_create(&th, &at, watchdog_main, NULL) != 0) {
    wd.started = 0;
    mh_error("rules: cannot start the watchdog thread: rules stuck in a C call will not be stopped");
  } else {
    /* named here, not by the thread: the name (ps -L, /proc/PID/task) is
       there when this returns, whenever the new thread first runs; the
       thread never exits, so th stays valid though detached */
    pthread_setname_np(th, "mh-watchdog");
  }
  pthread_attr_destroy(&at);
}

/* ------------------------------------------------------- Lua: rule budgets */

/* The frame of one core.rule_call: the budget it made and what it replaced. */
typedef struct {
  mh_budget *b;             /* the rule's budget (a reference) */
  mh_budget *saved;         /* the task's budget before (a reference), or cur's */
  mh_task *t;               /* the task it runs in, NULL on a thread that is none */
  int done;                 /* restored: __gc has nothing to do */
} rcall;

static void rcall_restore(lua_State *L, rcall *rc) {
  if (rc->done) return;
  rc->done = 1;
  if (rc->t && rc->t->state == 0) {
    budget_unref(rc->t->budget);
    rc->t->budget = budget_ref(rc->saved);
  }
  slice_switch(rc->saved);
  if (L) hook_arm(L, rc->saved);
  if (rc->b->stopped) budget_interrupt_tasks(rc->b);   /* its sleepers end with it */
  budget_unref(rc->b);
  budget_unref(rc->saved);
}

static int rcall_gc(lua_State *L) {
  rcall *rc = (rcall *)lua_touserdata(L, 1);
  if (!rc->done) {   /* the coroutine was abandoned inside the rule */
    rc->done = 1;
    budget_unref(rc->b);
    budget_unref(rc->saved);
  }
  return 0;
}

/* The message handler: C, so no Lua instruction (and no budget hook) runs in
** it; nothing is charged or refused while it builds the traceback. */
static int rcall_msgh(lua_State *L) {
  mh_budget *b = cur;
  char why[200];
  cur = NULL;
  if (b && b->stopped) lua_pushstring(L, budget_why(b, why, sizeof why));
  else error_value_text(L, 1, NULL);   /* lengths kept (a NUL cut it); a table's __tostring or fields */
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, -2);
  lua_pushliteral(L, "\n");
  luaL_traceback(L, L, NULL, 1);
  lua_concat(L, 3);
  lua_rawseti(L, -2, 2);
  cur = b;
  return 1;
}

/* Stack: [rcall, label, msgh, results... | error]. */
static int rule_call_k(lua_State *L, int status, lua_KContext ctx) {
  rcall *rc = (rcall *)lua_touserdata(L, 1);
  mh_budget *b = rc->b;
  char why[200];
  int nres = lua_gettop(L) - 3, mem;
  (void)ctx;
  if (status == LUA_YIELD) status = LUA_OK;   /* resumed after a wait, then returned */
  if ((status == LUA_ERRMEM || (status != LUA_OK && b->mem_refused)) && !b->stopped)
    b->stopped = STOP_MEM;    /* it failed for want of memory the limit refused */
  if (status == LUA_OK && !b->stopped) {
    rcall_restore(L, rc);
    lua_pushboolean(L, 1);
    lua_replace(L, 3);
    return nres + 1;
  }
  slice_switch(NULL);         /* nothing below is charged or refused */
  b->reported = 1;
  if (b->stopped) {
    int tb = status != LUA_OK && lua_istable(L, -1) && lua_rawgeti(L, -1, 2) == LUA_TSTRING
             ? lua_gettop(L) : 0;
    size_t tlen = 0, wlen;
    const char *tbs = tb ? lua_tolstring(L, tb, &tlen) : NULL;
    wlen = strlen(budget_why(b, why, sizeof why));
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    if (tb && (tlen < wlen || memcmp(tbs, why, wlen) != 0)) {
      lua_pushfstring(L, "%s\n", why);
      lua_pushvalue(L, tb);
      lua_concat(L, 2);
    } else {
      lua_pushvalue(L, tb ? tb : -1);
    }
  } else if (lua_istable(L, -1)) {
    lua_pushboolean(L, 0);
    lua_rawgeti(L, -2, 1);
    lua_rawgeti(L, -3, 2);
  } else {
    int e = lua_gettop(L);
    lua_pushboolean(L, 0);
    if (lua_isstring(L, e)) { lua_pushvalue(L, e); lua_tolstring(L, -1, NULL); }   /* lengths kept */
    else lua_pushliteral(L, "error in the error handler");
    lua_pushvalue(L, -1);
  }
  mem = b->stopped == STOP_MEM;
  rcall_restore(L, rc);       /* may free b */
  if (mem) lua_gc(L, LUA_GCCOLLECT);   /* give the heap back now */
  return 3;
}

/* rule_call(label, fn, ...) -> true, results... | false, message, traceback
** Runs fn(...) in the calling coroutine under a fresh budget (the defaults of
** budget_limits), named label in every message.  Tasks fn starts share the
** budget.  May wait (when fn does). */
static int l_rule_call(lua_State *L) {
  rcall *rc;
  mh_budget *b;
  mh_task *t;
  int nargs;
  const char *label = mh_l_arg_string(L, 1, "label");
  mh_l_arg_type(L, 2, "fn", LUA_TFUNCTION);
  nargs = lua_gettop(L) - 2;
  rc = (rcall *)lua_newuserdatauv(L, sizeof *rc, 0);
  memset(rc, 0, sizeof *rc);
  rc->done = 1;
  luaL_setmetatable(L, BUDGET_MT);
  lua_insert(L, 1);                          /* [rc, label, fn, args...] */
  lua_pushcfunction(L, rcall_msgh);
  lua_insert(L, 3);                          /* [rc, label, msgh, fn, args...] */
  b = budget_new(mh_l_ctx(L), label);
  if (!b) return luaL_error(L, "rule_call: out of memory");
  t = find_task(L);
  rc->b = b;
  rc->t = t;
  rc->saved = budget_ref(t ? t->budget : cur);
  rc->done = 0;
  if (t) {
    budget_unref(t->budget);
    t->budget = budget_ref(b);
  }
  slice_switch(b);
  hook_arm(L, b);
  return rule_call_k(L, lua_pcallk(L, nargs, LUA_MULTRET, 3, 0, rule_call_k), 0);
}

/* budget_limits([{instructions=, seconds=, life=, memory=, grace=}]) -> the
** limits now: seconds of running time, life seconds from start (waits
** included; never less than seconds).
** New budgets take them; budgets alive keep theirs. */
static int l_budget_limits(lua_State *L) {
  static const char *const known[] = { "instructions", "seconds", "life", "memory", "grace", NULL };
  mh_l_check_nargs(L, 1, "budget_limits");
  mh_l_check_options(L, 1, "budget_limits", known);
  if (lua_istable(L, 1)) {
    lua_Number v;
    if (lua_getfield(L, 1, "instructions") != LUA_TNIL) {
      v = mh_l_field_number(L, -1, "budget_limits", "instructions");
      if (!(v >= 1)) luaL_error(L, "budget_limits: instructions must be >= 1 (got %s)", luaL_tolstring(L, -1, NULL));
      limits.instructions = (long long)v;
    }
    if (lua_getfield(L, 1, "seconds") != LUA_TNIL) {
      v = mh_l_field_number(L, -1, "budget_limits", "seconds");
      if (!(v > 0 && v < 1e7)) luaL_error(L, "budget_limits: seconds must be > 0 and below 1e7 (got %s)", luaL_tolstring(L, -1, NULL));
      limits.seconds = v;
    }
    if (lua_getfield(L, 1, "life") != LUA_TNIL) {
      v = mh_l_field_number(L, -1, "budget_limits", "life");
      if (!(v > 0 && v < 1e7)) luaL_error(L, "budget_limits: life must be > 0 and below 1e7 (got %s)", luaL_tolstring(L, -1, NULL));
      limits.life = v;
    }
    if (lua_getfield(L, 1, "memory") != LUA_TNIL) {
      v = mh_l_field_number(L, -1, "budget_limits", "memory");
      if (!(v >= 1 << 20)) luaL_error(L, "budget_limits: memory must be at least 1 MB (got %s)", luaL_tolstring(L, -1, NULL));
      limits.memory = (size_t)v;
    }
    if (lua_getfield(L, 1, "grace") != LUA_TNIL) {
      v = mh_l_field_number(L, -1, "budget_limits", "grace");
      if (!(v >= 0 && v < 1e6)) luaL_error(L, "budget_limits: grace must be 0 up to 1e6 seconds (got %s)", luaL_tolstring(L, -1, NULL));
      limits.grace = v;
    }
    lua_settop(L, 1);
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)limits.instructions);
  lua_setfield(L, -2, "instructions");
  lua_pushnumber(L, limits.seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushnumber(L, limits.life);
  lua_setfield(L, -2, "life");
  lua_pushinteger(L, (lua_Integer)limits.memory);
  lua_setfield(L, -2, "memory");
  lua_pushnumber(L, limits.grace);
  lua_setfield(L, -2, "grace");
  return 1;
}

/* budget() -> id, label of the budget charged now | nil */
static int l_budget(lua_State *L) {
  if (!cur) return 0;
  lua_pushinteger(L, cur->id);
  lua_pushstring(L, cur->label);
  return 2;
}

/* budget_hold() -> token | nil: until budget_release(token), a stop of the
** budget charged now is deferred (a rule-state update is never cut half-way). */
static int l_budget_hold(lua_State *L) {
  if (!cur) return 0;
  if (cur->defer++ == 0) wall_timer_arm(cur->x);   /* its lifetime waits for the release */
  lua_pushinteger(L, cur->id);
  return 1;
}

static int l_budget_release(lua_State *L) {
  mh_budget *b = budget_by_id((int)mh_l_arg_integer(L, 1, "hold"));
  if (b && b->defer > 0 && --b->defer == 0) {
    if (budget_over(b)) b->expired_seen = 0;   /* the timer interrupts what waits */
    wall_timer_arm(b->x);
  }
  return 0;
}

static void rt_waiter_cancel(mh_wait *w) {
  rt_waiter **p = &rt_waiters;
  while (*p && *p != (rt_waiter *)w) p = &(*p)->next;
  if (*p) { *p = ((rt_waiter *)w)->next; free(w); }
}

static int rt_failures_push(lua_State *L) {
  int i = 0;
  lua_newtable(L);
  while (rt_failures) {
    rt_failure *f = rt_failures;
    rt_failures = f->next;
    lua_pushlstring(L, f->text, f->len);
    lua_rawseti(L, -2, ++i);
    free(f);
  }
  rt_failures_tail = &rt_failures;
  return 1;
}

/* rule_tasks_wait(): waits until no task started by a rule is left (each ends
** by its rule's deadline).  rule_failures() -> {"text", ...}: the failures of
** such tasks that their rule did not report itself, forgotten once returned. */
static int l_rule_tasks_wait(lua_State *L) {
  rt_waiter *w;
  mh_wait probe;
  if (rule_tasks_live <= 0) return 0;
  mh_wait_init(L, &probe, "rule_tasks_wait");
  w = (rt_waiter *)calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  w->w = probe;
  w->w.cancel = rt_waiter_cancel;
  w->next = rt_waiters;
  rt_waiters = w;
  return mh_wait_yield(L, &w->w);
}

static int l_rule_failures(lua_State *L) { return rt_failures_push(L); }

/* watchdog{stall = seconds | false, exit = code}: starts the watchdog thread
** (budgets start it anyway), with stall detection for a process that exists to
** run rules (hook, the rules worker); exit is the status it ends the process with. */
static int l_watchdog(lua_State *L) {
  static const char *const known[] = { "stall", "exit", NULL };
  mh_l_arg_type(L, 1, "options", LUA_TTABLE);
  mh_l_check_options(L, 1, "watchdog", known);
  watchdog_start(mh_l_loop(L));
  pthread_mutex_lock(&wd.mu);
  if (lua_getfield(L, 1, "stall") == LUA_TNUMBER) wd.stall_limit = secs_ns(lua_tonumber(L, -1));
  else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) wd.stall_limit = 0;
  if (lua_getfield(L, 1, "exit") == LUA_TNUMBER) wd.exit_code = (int)lua_tointeger(L, -1);
  wd.progress_at = uv_hrtime();
  pthread_cond_signal(&wd.cv);
  pthread_mutex_unlock(&wd.mu);
  lua_pushboolean(L, wd.started);
  return 1;
}

/* A rule's finalizer, wrapped (upvalues: the rule's label, the finalizer) so
** that the watchdog can name the rule while it runs: finalizers run with hooks
** off, at any collection, often outside the rule that made them. */
static int gc_wrapper(lua_State *L) {
  char saved[sizeof wd.gc_label];
  int st;
  pthread_mutex_lock(&wd.mu);
  memcpy(saved, wd.gc_label, sizeof saved);
  snprintf(wd.gc_label, sizeof wd.gc_label, "%s", lua_tostring(L, lua_upvalueindex(1)));
  pthread_mutex_unlock(&wd.mu);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  st = lua_pcall(L, lua_gettop(L) - 1, 0, 0);
  pthread_mutex_lock(&wd.mu);
  memcpy(wd.gc_label, saved, sizeof saved);
  pthread_mutex_unlock(&wd.mu);
  if (st != LUA_OK) return lua_error(L);   /* Lua turns it into a warning */
  return 0;
}

/* gc_guard(mt) -> mt: when a rule is charged and mt.__gc is a Lua function,
** replaces it by gc_wrapper naming the rule (rule files' setmetatable). */
static int l_gc_guard(lua_State *L) {
  if (cur && lua_istable(L, 1) && lua_getfield(L, 1, "__gc") == LUA_TFUNCTION &&
      lua_tocfunction(L, -1) != gc_wrapper) {
    lua_pushstring(L, cur->label);
    lua_insert(L, -2);
    lua_pushcclosure(L, gc_wrapper, 2);
    lua_setfield(L, 1, "__gc");
  }
  lua_settop(L, 1);
  return 1;
}

/* heap() -> bytes the Lua state holds (the allocator's count) */
static int l_heap(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  lua_pushinteger(L, f == budget_alloc ? (lua_Integer)((lheap *)ud)->heap
                                       : (lua_Integer)lua_gc(L, LUA_GCCOUNT) * 1024 + lua_gc(L, LUA_GCCOUNTB));
  return 1;
}

/* Installs the counting allocator over the state's own (once per state). */
static void budget_state_open(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  lheap *hp;
  if (f == budget_alloc) return;
  if (!(hp = (lheap *)malloc(sizeof *hp))) return;   /* no count: no memory limit */
  hp->prev = f;
  hp->prev_ud = ud;
  hp->heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  lua_setallocf(L, budget_alloc, hp);
}

/* The state closes (ctx_gc, the last finalizer): its allocator is given back
** (what remains is freed by it, as it was made by it), and pong is never
** pinged again once its loop goes. */
static void budget_state_close(lua_State *L, mh_lctx *x) {
  void *ud;
  if (lua_getallocf(L, &ud) == budget_alloc) {
    lheap *hp = (lheap *)ud;
    lua_setallocf(L, hp->prev, hp->prev_ud);
    free(hp);
  }
  pthread_mutex_lock(&wd.mu);
  if (pong_loop == &x->loop) pong_dead = 1;
  pthread_mutex_unlock(&wd.mu);
}

/* ------------------------------------------------------------ Lua: tasks */

/* fn_where(L, idx, prefix, out, cap): "PREFIXFILE:LINE" for the function at
** idx, FILE without its folders (as rules.lua names handlers): a log line
** then says which of a rule file's tasks or timers failed, and a long path
** no longer pushes the line number out of a task's 48-byte name. */
static void fn_where(lua_State *L, int idx, const char *prefix, char *out, size_t cap) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">S", &ar)) {
    snprintf(out, cap, "%stask", prefix);
    return;
  }
  const char *src = strrchr(ar.short_src, '/');
  char line[24] = "";
  src = src ? src + 1 : ar.short_src;
  if (ar.linedefined > 0) snprintf(line, sizeof line, ":%d", ar.linedefined);
  size_t fixed = strlen(prefix) + strlen(line);
  int room = cap > fixed + 1 ? (int)(cap - fixed - 1) : 0;   /* the file name is cut, never the line */
  snprintf(out, cap, "%s%.*s%s", prefix, room, src, line);
}

/* spawn(fn, ...) -> task.  The task starts on the next loop turn. */
static int l_spawn(lua_State *L) {
  mh_l_arg_type(L, 1, "fn", LUA_TFUNCTION);
  char name[48];
  fn_where(L, 1, "", name, sizeof name);
  mh_task_spawn(L, 1, lua_gettop(L) - 1, name);
  return 1;
}

static void joiner_cancel(mh_wait *w) {
  joiner *j = (joiner *)w;  /* stays linked; freed when the target finishes */
  (void)j;
}

/* task:wait() -> true, results... | false, message   (waits) */
static int l_task_wait(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
  joiner *j;
  mh_wait probe;
  mh_l_check_method_nargs(L, 0, "task:wait");
  if (t->state != 0) return push_outcome(L, 1);
  /* its own end: a wait that can never end (the binary's main task then
     said only "never finished", the pcall around it never returned) */
  if (L == t->co) return luaL_error(L, "task:wait: a task cannot wait for itself");
  /* nor for a task that waits (through task:wait, at any depth) for it: two
     tasks waiting on each other both hung for ever, the binary's main task
     saying only "never finished".  Each wait was checked when it began, so
     the chain from t has no cycle of its own and ends. */
  {
    mh_task *me = find_task(L), *x = t;
    int depth = 0;
    while (me && x && x->wait && x->wait->cancel == joiner_cancel) {
      x = ((joiner *)x->wait)->target;   /* (w is a joiner's first member) */
      depth++;
      if (x == me)
        return luaL_error(L, "task:wait: the task %s waits for this one (%d deep): they would wait for "
                          "each other for ever", t->name, depth);
    }
  }
  /* raises when L cannot wait (a plain coroutine while the loop runs): before
     the joiner is made, which a raise after it lost (as mh.sleep checks) */
  mh_wait_init(L, &probe, "task:wait");
  j = (joiner *)calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  j->w = probe;
  j->w.cancel = joiner_cancel;
  j->target = t;
  j->next = joiners_of(L, 1);
  set_joiners(L, 1, j);
  t->quiet = 1;  /* the joiner receives the error */
  return mh_wait_yield(L, &j->w);
}

static int l_task_cancel(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
  mh_l_check_method_nargs(L, 0, "task:cancel");
  mh_task_interrupt(t);
  return 0;
}

static int l_task_status(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
  mh_l_check_method_nargs(L, 0, "task:status");
  lua_pushstring(L, t->state > 0 ? "done" : t->state < 0 ? "failed"
                    : t->wait ? "waiting" : "ready");
  return 1;
}

static int l_task_tostring(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
  lua_pushfstring(L, "mailhook.Task(%s): %p", t->name, (void *)t);
  return 1;
}

static int l_task_gc(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
  joiner *j = joiners_of(L, 1);
  while (j) {   /* a joiner still waiting (lua_close) forgets this wait before it goes */
    joiner *n = j->next;
    if (j->w.task && j->w.task->wait == &j->w) j->w.task->wait = NULL;
    free(j);
    j = n;
  }
  set_joiners(L, 1, NULL);
  if (t->rule_task && t->state == 0) { t->rule_task = 0; rule_tasks_live--; }
  forget_task(t->x, t);
  budget_unref(t->budget);    /* a task collected unfinished (lua_close) */
  t->budget = NULL;
  return 0;
}

/* ------------------------------------------------------------ Lua: sleep */

typedef struct {
  mh_wait w;
  uv_timer_t timer;
} sleep_req;

static void free_handle_cb(uv_handle_t *h) { free(h->data); }

static void sleep_cb(uv_timer_t *h) {
  sleep_req *r = (sleep_req *)h->data;
  uv_close((uv_handle_t *)h, free_handle_cb);
  mh_wait_resume(&r->w, 0);
}

static void sleep_cancel(mh_wait *w) {
  sleep_req *r = (sleep_req *)w;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, free_handle_cb);
}

/* A duration in seconds, 0 up to (not including) 1e9 (31 years: past it the
** milliseconds would not fit a timer), as milliseconds.  Each way out of the
** range is named as it is: 1e300 "must be below", not "must be >= 0". */
static uint64_t to_ms(lua_State *L, int idx) {
  lua_Number s = mh_l_arg_number(L, idx, "seconds");
  if (s != s) mh_l_arg_error(L, idx, "seconds", "a number, not NaN");
  if (s < 0) mh_l_arg_error(L, idx, "seconds", ">= 0");
  if (s >= 1e9)
    mh_l_arg_error(L, idx, "seconds", "below 1e9 (about 31 years)");
  return (uint64_t)(s * 1000.0 + 0.5);
}

/* sleep(seconds): waits, letting other tasks run. */
static int l_sleep(lua_State *L) {
  uint64_t ms = to_ms(L, 1);
  mh_l_check_nargs(L, 1, "mh.sleep");
  sleep_req *r;
  mh_wait probe;
  mh_wait_init(L, &probe, "mh.sleep");  /* check before allocating */
  r = (sleep_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  r->w = probe;
  r->w.cancel = sleep_cancel;
  r->timer.data = r;
  uv_timer_init(mh_l_loop(L), &r->timer);
  uv_update_time(mh_l_loop(L));  /* the cached loop time may be stale after long Lua work */
  uv_timer_start(&r->timer, sleep_cb, ms, 0);
  return mh_wait_yield(L, &r->w);
}

/* ------------------------------------------------------------ Lua: every */

typedef struct {
  uv_timer_t timer;
  lua_State *L;            /* main state, to spawn from */
  int fn_ref;              /* the callback, released on stop */
  int task_ref;            /* the last tick's task, to skip overlapping ticks */
  int closed;
  int budgeted;            /* made by a rule: each tick runs under a fresh budget */
  char label[160];         /* that rule's name */
  char name[48];           /* each tick's task: "every@FILE:LINE" of fn */
} every_t;

/* Only now may the userdata go: unpin it (l_every pinned it in the registry). */
static void every_close_cb(uv_handle_t *h) {
  every_t *e = (every_t *)h->data;
  lua_pushnil(e->L);
  lua_rawsetp(e->L, LUA_REGISTRYINDEX, e);
}

/* A tick's Lua work, protected (mh_l_cb_call): the task's reference is
** taken first, holding false, then set to the task (an existing key: no
** allocation), so a refusal anywhere leaves e consistent: no reference, or
** one to false (no previous tick running), dropped at the next tick or stop. */
static int every_tick(lua_State *L) {
  every_t *e = (every_t *)lua_touserdata(L, 1);
  mh_task *t;
  if (e->task_ref != LUA_NOREF) {
    mh_task *prev;
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->task_ref);
    prev = (mh_task *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (prev && prev->state == 0) return 0;  /* previous tick still running: skip */
    luaL_unref(L, LUA_REGISTRYINDEX, e->task_ref);
    e->task_ref = LUA_NOREF;
  }
  lua_pushboolean(L, 0);
  e->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->fn_ref);
  t = mh_task_spawn(L, -1, 0, e->name);
  if (e->budgeted) {       /* a timer a rule started is that rule's, tick by tick */
    mh_budget *b = budget_new(mh_l_ctx(L), e->label);
    if (b) {
      /* spawned while a rule is charged (a host's blocking wait), t holds
         that budget already, and is counted: the reference is given back */
      if (t->budget) budget_unref(t->budget);
      else { t->rule_task = 1; rule_tasks_live++; }
      t->budget = b;
    }
  }
  lua_rawseti(L, LUA_REGISTRYINDEX, e->task_ref);
  return 0;
}

static void every_cb(uv_timer_t *h) {
  every_t *e = (every_t *)h->data;
  mh_l_cb_call(e->L, every_tick, e, e->name);
}

/* Also what a timer whose making was refused half-way runs (collected
** unpinned, its timer never made: closed from the start): it drops the
** function's reference, if any. */
static void every_stop(lua_State *L, every_t *e) {
  if (e->closed) {
    luaL_unref(L, LUA_REGISTRYINDEX, e->fn_ref);
    e->fn_ref = LUA_NOREF;
    return;
  }
  e->closed = 1;
  uv_timer_stop(&e->timer);
  uv_close((uv_handle_t *)&e->timer, every_close_cb);
  luaL_unref(L, LUA_REGISTRYINDEX, e->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, e->task_ref);
  e->fn_ref = e->task_ref = LUA_NOREF;
}

/* every(seconds, fn) -> handle with :stop().  fn runs as a new task each period.
** Made by a rule, each tick runs under a fresh budget named after that rule,
** and the timer does not keep the process alive (a rule's leftover). */
static int l_every(lua_State *L) {
  mh_l_arg_type(L, 2, "fn", LUA_TFUNCTION);
  uint64_t ms = to_ms(L, 1);
  every_t *e;
  uv_loop_t *loop;
  mh_l_check_nargs(L, 2, "mh.every");
  /* 0.0001 rounds to 0 ms: "period must be > 0" said nothing of the rounding */
  if (ms == 0) mh_l_field_error(L, 1, "mh.every", "seconds", "at least 0.001");
  loop = mh_l_loop(L);      /* raises where core is not open */
  e = (every_t *)lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  e->closed = 1;            /* no timer yet: its __gc has none to stop */
  e->fn_ref = e->task_ref = LUA_NOREF;
  luaL_setmetatable(L, EVERY_MT);
  e->L = mh_l_cbstate(L);
  fn_where(L, 2, "every@", e->name, sizeof e->name);
  /* What may raise (the reference and the pin may grow the registry: out of
  ** memory, a rule's memory budget) comes before the timer is started: a pin
  ** refused after it left a running timer in a userdata nothing held, ticking
  ** for a call that had failed, then collected while libuv still held it */
  lua_pushvalue(L, 2);
  e->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* a running timer must not be collected: pin it in the registry until stopped */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, e);
  e->timer.data = e;
  uv_timer_init(loop, &e->timer);
  e->closed = 0;
  if (cur) {                /* a rule's timer: budgeted ticks, and it never holds a process */
    e->budgeted = 1;
    snprintf(e->label, sizeof e->label, "%s", cur->label);
    uv_unref((uv_handle_t *)&e->timer);
  }
  uv_timer_start(&e->timer, every_cb, ms, ms);
  return 1;
}

static int l_every_stop(lua_State *L) {
  every_t *e = (every_t *)luaL_checkudata(L, 1, EVERY_MT);
  mh_l_check_method_nargs(L, 0, "timer:stop");
  every_stop(L, e);
  return 0;
}

/* ---------------------------------------------------------- Lua: resolve */

typedef struct {
  mh_wait w;
  uv_getaddrinfo_t req;
  char host[256];
} resolve_req;

typedef struct { resolve_req *r; int status; struct addrinfo *res; } resolve_out;

/* resolve_cb's results (mh_wait_deliver: a protected push) */
static int resolve_push(lua_State *co, void *arg) {
  resolve_out *o = (resolve_out *)arg;
  int i = 0;
  if (o->status < 0) return mh_l_fail(co, MH_EDNS, "dns", "%s: %s", o->r->host, uv_strerror(o->status));
  lua_newtable(co);
  for (struct addrinfo *a = o->res; a; a = a->ai_next) {
    char buf[64];
    if (a->ai_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)a->ai_addr, buf, sizeof buf);
    else if (a->ai_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, buf, sizeof buf);
    else
      continue;
    lua_pushstring(co, buf);
    lua_rawseti(co, -2, ++i);
  }
  /* the name's canonical form (AI_CANONNAME: /etc/hosts' first name, or
  ** DNS's), where the resolver gave one: what a short host name stands for */
  if (o->res && o->res->ai_canonname) {
    lua_pushstring(co, o->res->ai_canonname);
    lua_setfield(co, -2, "canonical");
  }
  return 1;
}

static void resolve_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_req *r = (resolve_req *)req->data;
  resolve_out o = { r, status, res };
  mh_wait_deliver(&r->w, resolve_push, &o);
  uv_freeaddrinfo(res);
  free(r);
}

static void resolve_cancel(mh_wait *w) {
  resolve_req *r = (resolve_req *)w;
  uv_cancel((uv_req_t *)&r->req);
}

/* resolve(host) -> {addr, ..., canonical = name} | nil, message, info   (waits) */
static int l_resolve(lua_State *L) {
  /* copied into r->host whole or refused: a name cut to fit is another name */
  const char *host = mh_l_field_cstring(L, 1, "mh.resolve", "host", sizeof ((resolve_req *)0)->host - 1);
  struct addrinfo hints;
  mh_l_check_nargs(L, 1, "mh.resolve");
  resolve_req *r;
  mh_wait probe;
  int rc;
  mh_wait_init(L, &probe, "mh.resolve");
  r = (resolve_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  r->w = probe;
  r->w.cancel = resolve_cancel;
  snprintf(r->host, sizeof r->host, "%s", host);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_CANONNAME;
  r->req.data = r;
  rc = uv_getaddrinfo(mh_l_loop(L), &r->req, resolve_cb, r->host, NULL, &hints);
  if (rc < 0) {
    free(r);
    return mh_l_fail(L, MH_EDNS, "dns", "%s: %s", host, uv_strerror(rc));
  }
  return mh_wait_yield(L, &r->w);
}

/* ------------------------------------------------------------ Lua: misc */

/* log(level, ...) : values joined with spaces, as print does. */
static int l_log(lua_State *L) {
  int level = mh_log_parse_level(mh_l_arg_string(L, 1, "level"));
  int n = lua_gettop(L);
  luaL_Buffer b;
  if (level < 0) mh_l_arg_error(L, 1, "level", "debug, info, warn or error");
  if ((mh_log_level)level < mh_log_get_level()) return 0;
  luaL_buffinit(L, &b);
  for (int i = 2; i <= n; i++) {
    if (i > 2) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    mh_log((mh_log_level)level, "%s", nul_escaped(L, s, len));   /* a NUL cut the line there */
  }
  return 0;
}

/* Named here: found in the core table it was "mh.log_level", but the API
** is mh.log.level (and mh.log.syslog). */
static int l_log_level(lua_State *L) {
  mh_l_check_nargs(L, 1, "mh.log.level");
  if (!lua_isnoneornil(L, 1)) {
    /* a number is named as it is ("got 5"), not converted to a string first */
    int level = lua_type(L, 1) == LUA_TSTRING ? mh_log_parse_level(lua_tostring(L, 1)) : -1;
    if (level < 0) mh_l_field_error(L, 1, "mh.log.level", "level", "debug, info, warn or error");
    mh_log_set_level((mh_log_level)level);
  }
  lua_pushstring(L, mh_log_level_name(mh_log_get_level()));
  return 1;
}

static int l_log_syslog(lua_State *L) {
  mh_l_check_nargs(L, 2, "mh.log.syslog");
  mh_log_use_syslog(lua_toboolean(L, 1) ? (lua_isnoneornil(L, 2) ? "mailhook"
                                           : mh_l_field_string(L, 2, "mh.log.syslog", "ident")) : NULL);
  return 0;
}

/* now() -> seconds since the epoch, with milliseconds */
static int l_now(lua_State *L) {
  mh_l_check_nargs(L, 0, "mh.now");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

/* monotonic() -> seconds on a clock that never steps */
static int l_monotonic(lua_State *L) {
  mh_l_check_nargs(L, 0, "mh.monotonic");
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

static void count_cb(uv_handle_t *h, void *arg) {
  mh_lctx *x = (mh_lctx *)h->loop->data;
  if (h != (uv_handle_t *)&x->ready_idle && uv_is_active(h) && uv_has_ref(h) && !uv_is_closing(h))
    ++*(int *)arg;
}

/* handles() -> number of active handles that keep the loop alive (tests use it to
** fail a test that leaves a timer or a socket open) */
static int l_handles(lua_State *L) {
  int n = 0;
  uv_walk(mh_l_loop(L), count_cb, &n);
  lua_pushinteger(L, n);
  return 1;
}

/* current_task() -> the running task, or nil outside one */
static int l_current(lua_State *L) {
  mh_l_check_nargs(L, 0, "mh.current_task");
  mh_task *t = find_task(L);
  if (!t) return 0;
  push_task(L, t);
  return 1;
}

/* ------------------------------------------------- running the loop
** In the mailhook binary main.c runs the loop and everything happens in
** tasks.  Loaded by another interpreter, nothing runs it: a waiting call
** outside a task runs it until it is over (mh_wait_yield), mh.run(fn) runs fn
** as a task until the loop has nothing left to do, and a host with a loop of
** its own polls mh.pollfd(), sleeps at most mh.timeout() and calls mh.step(). */

int mh_l_run(lua_State *L, uv_run_mode mode) {
  mh_lctx *x = mh_l_ctx(L);
  mh_l_sigpipe g;
  int r;
  if (x->running)
    return luaL_error(L, "the mailhook loop is running already: this runs inside it (a task "
                      "or a callback), where waiting calls yield instead");
  mh_l_sigpipe_begin(&x->loop, &g);
  x->running++;
  r = uv_run(&x->loop, mode);
  x->running--;
  mh_l_sigpipe_end(&g);
  return r;
}

/* run([fn, ...]) -> fn's results.  fn runs as a task (waiting calls in it
** yield), and the loop runs until nothing is left for it: every task done,
** every timer, watch and connection closed, as `mailhook SCRIPT.lua` runs.
** fn's error is raised here; without fn, the tasks already spawned run. */
static int l_run(lua_State *L) {
  mh_lctx *x = mh_l_ctx(L);
  mh_task *t = NULL;
  int n, tidx = 0;
  if (x->running) return luaL_error(L, "mh.run: called inside the running loop (a task or a "
                                    "callback); use mh.spawn there");
  if (!lua_isnoneornil(L, 1)) {
    mh_l_arg_type(L, 1, "fn", LUA_TFUNCTION);
    t = mh_task_spawn(L, 1, lua_gettop(L) - 1, "mh.run");
    t->quiet = 1;             /* its error is raised here, not logged */
    tidx = lua_gettop(L);
  }
  luaL_checkstack(L, LUA_MINSTACK, "mh.run");
  mh_l_run(L, UV_RUN_DEFAULT);
  if (!t) return 0;
  if (t->state == 0)
    return luaL_error(L, "mh.run: the task never finished: it waits for something that can "
                      "no longer happen (the loop has nothing left to run)");
  n = push_outcome(L, tidx);
  if (!lua_toboolean(L, -n)) return lua_error(L);   /* false, message: raise the message */
  return n - 1;                                     /* the results above `true` */
}

/* step() -> busy: runs what is ready (expired timers, I/O the poll found, tasks
** woken) and never blocks.  busy: mailhook still has something that will need
** a step (a timer, a connection, a request, a task to resume). */
static int l_step(lua_State *L) {
  mh_lctx *x = mh_l_ctx(L);
  mh_l_check_nargs(L, 0, "mh.step");
  luaL_checkstack(L, LUA_MINSTACK, "mh.step");
  mh_l_run(L, UV_RUN_NOWAIT);
  /* tasks woken in that turn start on the next: give them a few turns now */
  for (int i = 0; i < 16 && x->ready_head; i++) mh_l_run(L, UV_RUN_NOWAIT);
  lua_pushboolean(L, uv_loop_alive(&x->loop) || x->ready_head != NULL);
  return 1;
}

/* pollfd() -> fd: readable when the loop has I/O to handle (its epoll fd). */
static int l_pollfd(lua_State *L) {
  mh_l_check_nargs(L, 0, "mh.pollfd");
  lua_pushinteger(L, uv_backend_fd(mh_l_loop(L)));
  return 1;
}

static void due_cb(uv_handle_t *h, void *arg) {
  if (h->type == UV_TIMER && uv_is_active(h) && !uv_is_closing(h)) {
    int64_t *min = (int64_t *)arg, due = (int64_t)uv_timer_get_due_in((uv_timer_t *)h);
    if (*min < 0 || due < *min) *min = due;
  }
}

/* timeout() -> ms: how long a host may sleep before the next step(): 0 when
** work is ready now, -1 when only the fd can bring work (no timer).  Timers
** that do not keep the loop alive count too: a host's loop runs anyway. */
static int l_timeout(lua_State *L) {
  mh_lctx *x = mh_l_ctx(L);
  int64_t ms = -1;
  mh_l_check_nargs(L, 0, "mh.timeout");
  uv_update_time(&x->loop);   /* the cached time may be old: the host did other work */
  if (x->ready_head) ms = 0;
  else if (uv_loop_alive(&x->loop)) ms = uv_backend_timeout(&x->loop);
  else uv_walk(&x->loop, due_cb, &ms);
  lua_pushinteger(L, (lua_Integer)ms);
  return 1;
}

/* wait_mode() -> "task" (a waiting call here yields), "block" (it runs the
** loop until it is over: outside the loop), or nil (it cannot wait here). */
static int l_wait_mode(lua_State *L) {
  mh_l_check_nargs(L, 0, "mh.wait_mode");
  mh_lctx *x = mh_l_ctx(L);
  if (find_task(L) && lua_isyieldable(L)) lua_pushliteral(L, "task");
  else if (!x->running) lua_pushliteral(L, "block");
  else lua_pushnil(L);
  return 1;
}

/* ------------------------------------------------ the state's context */

static void close_leftover(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h)) return;
  mh_debug("closing a %s handle left open at lua_close", uv_handle_type_name(h->type));
  uv_close(h, NULL);
}

/* __gc of the context, last of the state's finalizers: every wait still in
** progress is cancelled (its request ends and frees itself), handles left
** open are closed, the loop runs until nothing is in flight (a fsync on the
** thread pool is waited for), and is closed.  After it, no handle nor request
** of this state is left, and lua_close may free the memory they lived in. */
static void budget_state_close(lua_State *L, mh_lctx *x);   /* budgets section */

static int ctx_gc(lua_State *L) {
  mh_lctx *x = (mh_lctx *)lua_touserdata(L, 1);
  int rc;
  if (!x || x->closed || x->closing) return 0;
  ctx_forked(x);              /* a child closing what its parent opened */
  x->closing = 1;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS) == LUA_TTABLE) {
    int never = 0;
    char first[sizeof x->blocker.name] = "";
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      mh_task *t = (mh_task *)luaL_testudata(L, -1, TASK_MT);
      if (t && !t->started && !t->blocker && !never++) memcpy(first, t->name, sizeof first);
      if (t && t->wait) {
        mh_wait *w = t->wait;
        t->wait = NULL;
        w->task = NULL;
        if (w->cancel) w->cancel(w);
      }
      lua_pop(L, 1);
    }
    /* a host that spawned work and never ran the loop (no mh.run, mh.step nor
       wait) would lose it without a word: the state is closing, no Lua may run */
    if (never)
      mh_warn("lua_close: %d mailhook task%s never ran (one: %s): a task runs only while "
              "the loop does (mh.run, mh.step, task:wait() or a blocking call); its work is abandoned",
              never, never > 1 ? "s" : "", first[0] ? first : "?");
  }
  lua_pop(L, 1);
  x->ready_head = x->ready_tail = NULL;
  uv_close((uv_handle_t *)&x->ready_idle, NULL);
  budget_state_close(L, x);
  x->running++;               /* callbacks see a running loop: nothing may block in them */
  uv_run(&x->loop, UV_RUN_NOWAIT);    /* close callbacks, cancelled requests */
  uv_walk(&x->loop, close_leftover, NULL);
  uv_run(&x->loop, UV_RUN_DEFAULT);   /* what is still in flight ends */
  x->running--;
  rc = uv_loop_close(&x->loop);
  if (rc < 0) mh_warn("lua_close: the mailhook loop could not be closed: %s", uv_strerror(rc));
  x->closed = 1;
  return 0;
}

mh_lctx *mh_l_ctx_open(lua_State *L) {
  mh_lctx *x = ctx_of(L);
  struct sigaction sa;
  int rc;
  if (x && !x->closed) return x;
  x = (mh_lctx *)lua_newuserdatauv(L, sizeof *x, 1);
  memset(x, 0, sizeof *x);
  x->closed = 1;              /* until the loop is made */
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  x->cb = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  if ((rc = uv_loop_init(&x->loop)) < 0) {
    luaL_error(L, "mailhook: cannot make an event loop: %s", uv_strerror(rc));
    return NULL;
  }
  x->loop.data = x;
  pthread_once(&fork_gen_once, fork_gen_register);
  x->gen = fork_gen;
  x->closed = 0;
  uv_idle_init(&x->loop, &x->ready_idle);
  x->ready_idle.data = x;
  uv_unref((uv_handle_t *)&x->ready_idle);
  x->blocker.x = x;
  x->blocker.blocker = 1;
  snprintf(x->blocker.name, sizeof x->blocker.name, "%s", "caller");
  /* SIGPIPE's disposition is the process's, and stays as it is: only when it
     would kill the process (not ignored, as a stock interpreter leaves it) do
     writes and loop runs block it for their duration */
  x->sigpipe_guard = !(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX);
  return x;
}

/* every's __gc: lua_close stops a timer still running (pinned, it is collected
** only then) with its callback, which unpins it. */
static int l_every_gc(lua_State *L) {
  every_t *e = (every_t *)luaL_checkudata(L, 1, EVERY_MT);
  every_stop(L, e);
  return 0;
}

void l_sched_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"sleep", l_sleep}, {"every", l_every},
    {"resolve", l_resolve}, {"log", l_log}, {"log_level", l_log_level},
    {"log_syslog", l_log_syslog}, {"now", l_now}, {"monotonic", l_monotonic},
    {"current_task", l_current}, {"handles", l_handles},
    {"run", l_run}, {"step", l_step}, {"pollfd", l_pollfd}, {"timeout", l_timeout},
    {"wait_mode", l_wait_mode},
    {"rule_call", l_rule_call}, {"budget_limits", l_budget_limits}, {"budget", l_budget},
    {"budget_hold", l_budget_hold}, {"budget_release", l_budget_release},
    {"rule_tasks_wait", l_rule_tasks_wait}, {"rule_failures", l_rule_failures},
    {"watchdog", l_watchdog}, {"heap", l_heap}, {"gc_guard", l_gc_guard}, {NULL, NULL}};
  static const luaL_Reg task_m[] = {
    {"wait", l_task_wait}, {"cancel", l_task_cancel}, {"status", l_task_status},
    {NULL, NULL}};
  mh_l_ctx_open(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS) != LUA_TTABLE) {   /* once per state */
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS);
  }
  lua_pop(L, 1);
  budget_state_open(L);   /* the counting allocator (budgets section) */
  luaL_newmetatable(L, BUDGET_MT);
  lua_pushcfunction(L, rcall_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, TASK_MT);
  luaL_newlib(L, task_m);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, l_task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, EVERY_MT);
  lua_newtable(L);
  lua_pushcfunction(L, l_every_stop);
  lua_setfield(L, -2, "stop");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_every_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
