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

static char TASKS;          /* registry key: coroutine -> task userdata */
static char INTERRUPT;      /* sentinel value a task is resumed with when interrupted */

struct mh_task {
  lua_State *co;            /* the coroutine (kept alive by the user value) */
  mh_wait *wait;            /* the wait in progress, NULL while running or ready */
  mh_task *next_ready;      /* link in the ready queue */
  int ready;                /* queued: resume with ready_nargs values on co's stack */
  int ready_nargs;
  int started;              /* first resume done (arguments consumed) */
  int state;                /* 0 running, 1 returned, -1 raised */
  int quiet;                /* a joiner (or the REPL) reports the error, do not log it */
  int interrupted;          /* an interrupt is pending for the next resume */
  char name[48];            /* for log lines: script name, handler, "repl" */
};

typedef struct joiner {     /* a task waiting in task:wait() */
  mh_wait w;
  struct joiner *next;
  mh_task *target;
} joiner;

static lua_State *mainL;
static uv_idle_t ready_idle;
static int ready_idle_init;
static mh_task *ready_head, *ready_tail;

uv_loop_t *mh_l_loop(void) { return uv_default_loop(); }

/* ---------------------------------------------------------------- tasks */

static void task_resume(mh_task *t, int nargs);

static void ready_cb(uv_idle_t *h) {
  while (ready_head) {
    mh_task *t = ready_head;
    ready_head = t->next_ready;
    if (!ready_head) ready_tail = NULL;
    t->ready = 0;
    t->next_ready = NULL;
    task_resume(t, t->ready_nargs);
  }
  uv_idle_stop(h);
}

/* Queue t to be resumed on the next loop turn with nargs values on its stack. */
static void make_ready(mh_task *t, int nargs) {
  if (t->ready) { t->ready_nargs += nargs; return; }
  t->ready = 1;
  t->ready_nargs = nargs;
  if (ready_tail) ready_tail->next_ready = t; else ready_head = t;
  ready_tail = t;
  if (!ready_idle_init) {
    uv_idle_init(mh_l_loop(), &ready_idle);
    uv_unref((uv_handle_t *)&ready_idle);
    ready_idle_init = 1;
  }
  /* idle keeps the loop spinning only while something is ready */
  uv_ref((uv_handle_t *)&ready_idle);
  uv_idle_start(&ready_idle, ready_cb);
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

static void finish(mh_task *t, int status, int nres) {
  lua_State *L = mainL, *co = t->co;
  int top = lua_gettop(L), tidx, i;
  joiner *j;
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
  if (t->state != 0) return;
  if (t->interrupted) {
    t->interrupted = 0;
    lua_pop(t->co, nargs);
    if (!t->started) {  /* never ran: raise in its place */
      lua_pushstring(t->co, "interrupted");
      finish(t, LUA_ERRRUN, 0);
      return;
    }
    lua_pushlightuserdata(t->co, &INTERRUPT);
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
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TFUNCTION);
  t = (mh_task *)lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
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
  make_ready(t, 0);
}

/* ---------------------------------------------------------------- waits */

void mh_wait_init(lua_State *L, mh_wait *w, const char *what) {
  mh_task *t;
  if (!lua_isyieldable(L))
    luaL_error(L, "%s waits, and cannot wait here (main thread, a metamethod or a "
               "C call such as table.sort's comparator)", what);
  t = find_task(L);
  if (!t)
    luaL_error(L, "%s waits, and must run in a mailhook task, not inside a plain "
               "coroutine (use mh.spawn instead of coroutine.wrap)", what);
  w->task = t;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  int n = lua_gettop(L) - (int)ctx;
  (void)status;
  if (n >= 1 && lua_touserdata(L, -1) == &INTERRUPT) {
    lua_pop(L, n);
    lua_pushlightuserdata(L, &INTERRUPT);  /* finish() prints it as "interrupted" */
    return lua_error(L);
  }
  return n;
}

int mh_wait_yield(lua_State *L, mh_wait *w) {
  w->task->wait = w;
  return lua_yieldk(L, 0, (lua_KContext)lua_gettop(L), wait_k);
}

lua_State *mh_wait_co(mh_wait *w) { return w->task ? w->task->co : NULL; }

void mh_wait_resume(mh_wait *w, int nres) {
  mh_task *t = w->task;
  if (!t) return;
  w->task = NULL;
  t->wait = NULL;
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
  uv_queue_work(mh_l_loop(), &r->req, work_cb, after_work_cb);
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
  while (j) { joiner *n = j->next; free(j); j = n; }
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
  uv_timer_init(mh_l_loop(), &r->timer);
  uv_update_time(mh_l_loop());  /* the cached loop time may be stale after long Lua work */
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
  e->L = mainL;
  lua_pushvalue(L, 2);
  e->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  e->task_ref = LUA_NOREF;
  e->timer.data = e;
  uv_timer_init(mh_l_loop(), &e->timer);
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
  rc = uv_getaddrinfo(mh_l_loop(), &r->req, resolve_cb, r->host, NULL, &hints);
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
  if (h != (uv_handle_t *)&ready_idle && uv_is_active(h) && uv_has_ref(h) && !uv_is_closing(h))
    ++*(int *)arg;
}

/* handles() -> number of active handles that keep the loop alive (tests use it to
** fail a test that leaves a timer or a socket open) */
static int l_handles(lua_State *L) {
  int n = 0;
  uv_walk(mh_l_loop(), count_cb, &n);
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

void l_sched_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"sleep", l_sleep}, {"every", l_every},
    {"resolve", l_resolve}, {"log", l_log}, {"log_level", l_log_level},
    {"log_syslog", l_log_syslog}, {"now", l_now}, {"monotonic", l_monotonic},
    {"current_task", l_current}, {"handles", l_handles}, {NULL, NULL}};
  static const luaL_Reg task_m[] = {
    {"wait", l_task_wait}, {"cancel", l_task_cancel}, {"status", l_task_status},
    {NULL, NULL}};
  mainL = L;
  {
    lua_State *ml;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ml = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (ml) mainL = ml;
  }
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS);
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
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
