/*
** l_sched.c — tasks (coroutines on the libuv loop) and the wait mechanism of
** l_sched.h, plus the Lua functions built directly on them: spawn, sleep,
** every, resolve, log, now.
**
** A task is a full userdata "mailhook.Task" whose user value holds its
** coroutine, its result table, and its joiners.  The registry table TASKS maps
** each live coroutine to its task, which is how mh_wait_init() knows that the
** running coroutine may wait (and which task to resume later).
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "l_sched.h"
#include "error.h"
#include "log.h"

#define TASK_MT "mailhook.Task"
#define EVERY_MT "mailhook.Every"
#define CTX_MT "mailhook.Loop"

/* Registry keys: only their addresses are used (never written). */
static const char TASKS = 0;     /* coroutine -> task userdata */
static const char INTERRUPT = 0; /* sentinel value a task is resumed with when interrupted */
static const char CTX = 0;       /* the state's mh_lctx userdata */

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
  int sigpipe_guard;         /* SIGPIPE was not ignored when the state opened (a foreign
                                interpreter): writes and loop runs block it */
};

static mh_lctx *ctx_of(lua_State *L) {
  mh_lctx *x;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX);
  x = (mh_lctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
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

static mh_task *find_task(lua_State *L) {
  mh_task *t;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(L);
  lua_rawget(L, -2);
  t = (mh_task *)luaL_testudata(L, -1, TASK_MT);
  lua_pop(L, 2);
  return t;
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
** true, results... or false, message. */
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
    const char *msg = lua_touserdata(co, -1) == &INTERRUPT ? "interrupted" : lua_tostring(co, -1);
    t->state = -1;
    if (msg == NULL) {
      if (luaL_callmeta(co, -1, "__tostring") && lua_type(co, -1) == LUA_TSTRING)
        msg = lua_tostring(co, -1);
      else
        msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
    }
    luaL_traceback(L, co, msg, 0);
    if (!t->quiet) mh_error("%s: %s", t->name, lua_tostring(L, -1));
    lua_setfield(L, -2, "traceback");
    lua_pushstring(L, msg);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "n");
    lua_resetthread(co);
  }
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
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_settop(L, top);
}

static void task_resume(mh_task *t, int nargs) {
  int nres = 0, st;
  if (t->state != 0 || t->x->closing) return;
  if (t->interrupted) {
    t->interrupted = 0;
    lua_pop(t->co, nargs);
    if (!t->started) {  /* never ran: raise in its place */
      lua_pushstring(t->co, "interrupted");
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
  st = lua_resume(t->co, NULL, nargs, &nres);
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
  t = (mh_task *)lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->x = x;
  snprintf(t->name, sizeof t->name, "%s", name ? name : "task");
  luaL_setmetatable(L, TASK_MT);
  co = lua_newthread(L);
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
  make_ready(t, 0);
  return t;
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

void mh_wait_init(lua_State *L, mh_wait *w, const char *what) {
  mh_lctx *x = mh_l_ctx(L);
  mh_task *t = find_task(L);
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

/* Thread-pool work ----------------------------------------------------- */

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

static void after_work_cb(uv_work_t *req, int status) {
  work_req *r = (work_req *)req->data;
  lua_State *co = mh_wait_co(&r->w);
  if (co) {
    int n = r->push(co, r->arg);
    mh_wait_resume(&r->w, n);
  }
  if (r->done) r->done(r->arg);
  free(r);
  (void)status;
}

static void work_cancel(mh_wait *w) {
  work_req *r = (work_req *)((char *)w - offsetof(work_req, w));
  uv_cancel((uv_req_t *)&r->req);  /* if already running, after_work still frees */
}

int mh_l_work(lua_State *L, const char *what, mh_work_fn work, mh_push_fn push,
              void (*done)(void *), void *arg) {
  mh_wait probe;
  work_req *r;
  mh_wait_init(L, &probe, what);  /* raises before anything is allocated */
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
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
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

/* ------------------------------------------------------------ Lua: tasks */

/* spawn(fn, ...) -> task.  The task starts on the next loop turn. */
static int l_spawn(lua_State *L) {
  lua_Debug ar;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  if (!lua_getinfo(L, ">S", &ar)) strcpy(ar.short_src, "task");
  mh_task_spawn(L, 1, lua_gettop(L) - 1, ar.short_src);
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
  if (t->state != 0) return push_outcome(L, 1);
  j = (joiner *)calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  mh_wait_init(L, &j->w, "task:wait");
  j->w.cancel = joiner_cancel;
  j->target = t;
  j->next = joiners_of(L, 1);
  set_joiners(L, 1, j);
  t->quiet = 1;  /* the joiner receives the error */
  return mh_wait_yield(L, &j->w);
}

static int l_task_cancel(lua_State *L) {
  mh_task_interrupt((mh_task *)luaL_checkudata(L, 1, TASK_MT));
  return 0;
}

static int l_task_status(lua_State *L) {
  mh_task *t = (mh_task *)luaL_checkudata(L, 1, TASK_MT);
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
  (void)t;
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

static uint64_t to_ms(lua_State *L, int idx) {
  lua_Number s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0 && s < 1e9, idx, "seconds must be >= 0");
  return (uint64_t)(s * 1000.0 + 0.5);
}

/* sleep(seconds): waits, letting other tasks run. */
static int l_sleep(lua_State *L) {
  uint64_t ms = to_ms(L, 1);
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
} every_t;

/* Only now may the userdata go: unpin it (l_every pinned it in the registry). */
static void every_close_cb(uv_handle_t *h) {
  every_t *e = (every_t *)h->data;
  lua_pushnil(e->L);
  lua_rawsetp(e->L, LUA_REGISTRYINDEX, e);
}

static void every_cb(uv_timer_t *h) {
  every_t *e = (every_t *)h->data;
  lua_State *L = e->L;
  if (e->task_ref != LUA_NOREF) {
    mh_task *prev;
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->task_ref);
    prev = (mh_task *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (prev && prev->state == 0) return;  /* previous tick still running: skip */
    luaL_unref(L, LUA_REGISTRYINDEX, e->task_ref);
    e->task_ref = LUA_NOREF;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->fn_ref);
  mh_task_spawn(L, -1, 0, "every");
  e->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
}

static void every_stop(lua_State *L, every_t *e) {
  if (e->closed) return;
  e->closed = 1;
  uv_timer_stop(&e->timer);
  uv_close((uv_handle_t *)&e->timer, every_close_cb);
  luaL_unref(L, LUA_REGISTRYINDEX, e->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, e->task_ref);
  e->fn_ref = e->task_ref = LUA_NOREF;
}

/* every(seconds, fn) -> handle with :stop().  fn runs as a new task each period. */
static int l_every(lua_State *L) {
  uint64_t ms = to_ms(L, 1);
  every_t *e;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, ms > 0, 1, "period must be > 0");
  e = (every_t *)lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, EVERY_MT);
  e->L = mh_l_cbstate(L);
  lua_pushvalue(L, 2);
  e->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  e->task_ref = LUA_NOREF;
  e->timer.data = e;
  uv_timer_init(mh_l_loop(L), &e->timer);
  uv_timer_start(&e->timer, every_cb, ms, ms);
  /* a running timer must not be collected: pin it in the registry until stopped */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, e);
  return 1;
}

static int l_every_stop(lua_State *L) {
  every_t *e = (every_t *)luaL_checkudata(L, 1, EVERY_MT);
  every_stop(L, e);
  return 0;
}

/* ---------------------------------------------------------- Lua: resolve */

typedef struct {
  mh_wait w;
  uv_getaddrinfo_t req;
  char host[256];
} resolve_req;

static void resolve_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_req *r = (resolve_req *)req->data;
  lua_State *co = mh_wait_co(&r->w);
  if (co) {
    int n;
    if (status < 0) {
      n = mh_l_fail(co, MH_EDNS, "dns", "%s: %s", r->host, uv_strerror(status));
    } else {
      int i = 0;
      lua_newtable(co);
      for (struct addrinfo *a = res; a; a = a->ai_next) {
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
      n = 1;
    }
    mh_wait_resume(&r->w, n);
  }
  uv_freeaddrinfo(res);
  free(r);
}

static void resolve_cancel(mh_wait *w) {
  resolve_req *r = (resolve_req *)w;
  uv_cancel((uv_req_t *)&r->req);
}

/* resolve(host) -> {addr, ...} | nil, message, info   (waits) */
static int l_resolve(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  struct addrinfo hints;
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
  int level = mh_log_parse_level(luaL_checkstring(L, 1));
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_argcheck(L, level >= 0, 1, "level must be debug, info, warn or error");
  if ((mh_log_level)level < mh_log_get_level()) return 0;
  luaL_buffinit(L, &b);
  for (int i = 2; i <= n; i++) {
    if (i > 2) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  mh_log((mh_log_level)level, "%s", lua_tostring(L, -1));
  return 0;
}

static int l_log_level(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    int level = mh_log_parse_level(luaL_checkstring(L, 1));
    luaL_argcheck(L, level >= 0, 1, "level must be debug, info, warn or error");
    mh_log_set_level((mh_log_level)level);
  }
  lua_pushstring(L, mh_log_level_name(mh_log_get_level()));
  return 1;
}

static int l_log_syslog(lua_State *L) {
  mh_log_use_syslog(lua_toboolean(L, 1) ? luaL_optstring(L, 2, "mailhook") : NULL);
  return 0;
}

/* now() -> seconds since the epoch, with milliseconds */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

/* monotonic() -> seconds on a clock that never steps */
static int l_monotonic(lua_State *L) {
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
    luaL_checktype(L, 1, LUA_TFUNCTION);
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
  luaL_checkstack(L, LUA_MINSTACK, "mh.step");
  mh_l_run(L, UV_RUN_NOWAIT);
  /* tasks woken in that turn start on the next: give them a few turns now */
  for (int i = 0; i < 16 && x->ready_head; i++) mh_l_run(L, UV_RUN_NOWAIT);
  lua_pushboolean(L, uv_loop_alive(&x->loop) || x->ready_head != NULL);
  return 1;
}

/* pollfd() -> fd: readable when the loop has I/O to handle (its epoll fd). */
static int l_pollfd(lua_State *L) {
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
static int ctx_gc(lua_State *L) {
  mh_lctx *x = (mh_lctx *)lua_touserdata(L, 1);
  int rc;
  if (!x || x->closed || x->closing) return 0;
  x->closing = 1;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      mh_task *t = (mh_task *)luaL_testudata(L, -1, TASK_MT);
      if (t && t->wait) {
        mh_wait *w = t->wait;
        t->wait = NULL;
        w->task = NULL;
        if (w->cancel) w->cancel(w);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  x->ready_head = x->ready_tail = NULL;
  uv_close((uv_handle_t *)&x->ready_idle, NULL);
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
    {"wait_mode", l_wait_mode}, {NULL, NULL}};
  static const luaL_Reg task_m[] = {
    {"wait", l_task_wait}, {"cancel", l_task_cancel}, {"status", l_task_status},
    {NULL, NULL}};
  mh_l_ctx_open(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS) != LUA_TTABLE) {   /* once per state */
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS);
  }
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
