/*
** l_signal.c — core.signal: POSIX signals as Lua callbacks, on the libuv loop.
**
**   local h = core.signal.on("TERM", function(name) ... end)   -- fn runs as a new task
**   h:stop()                                                    -- idempotent
**   core.signal.kill(pid, "USR1") -> true | nil, message, info
**
** The service (`mailhook run`) uses it for TERM/INT (finish the message in
** flight, then exit), HUP (reload settings and rules) and USR1 (flush now).
** Each delivery spawns a task, so a handler may wait (send, sleep, ...) and a
** handler that raises is logged by the scheduler, never unwinding through
** libuv.  A handle does not keep the loop alive on its own (it is unref'd):
** a process whose work is done exits even while it listens for signals.
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include "l_sched.h"
#include "error.h"

#define SIGNAL_MT "mailhook.Signal"

/* The uv handle lives on the heap, not in the userdata: a userdata collected
** by lua_close() at exit may go before libuv has run the close callback, and
** libuv needs the memory until then. */
typedef struct {
  uv_signal_t h;             /* the libuv handle; h.data points back here */
  lua_State *L;              /* the state's callback thread, to spawn tasks from */
  int fn_ref;                /* the Lua callback (registry ref), released on stop */
  int signum;                /* for the task name and the callback's argument */
} sigwatch;

typedef struct {
  sigwatch *s;                 /* NULL once stopped (the heap part is closing or freed) */
} sig_ud;

static const struct { const char *name; int num; } names[] = {
  {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"USR1", SIGUSR1},
  {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {"CHLD", SIGCHLD}, {"WINCH", SIGWINCH},
  {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"KILL", SIGKILL}, {"STOP", SIGSTOP},
  {"CONT", SIGCONT}, {NULL, 0}};

static const char *name_of(int num) {
  for (int i = 0; names[i].name; i++)
    if (names[i].num == num) return names[i].name;
  return "?";
}

/* Accepts "TERM", "SIGTERM", "term" or a number; raises on anything else. */
static int check_signum(lua_State *L, int idx) {
  const char *s;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = mh_l_arg_integer(L, idx, "signal");
    if (!(n > 0 && n < 65)) mh_l_arg_error(L, idx, "signal", "a signal number 1-64");
    return (int)n;
  }
  s = mh_l_arg_string(L, idx, "signal");
  if (!strncasecmp(s, "SIG", 3)) s += 3;
  for (int i = 0; names[i].name; i++)
    if (!strcasecmp(s, names[i].name)) return names[i].num;
  lua_pushfstring(L, "a signal name such as TERM (unknown signal '%s')", s);
  return mh_l_arg_error(L, idx, "signal", lua_tostring(L, -1));
}

static void close_cb(uv_handle_t *h) { free(h->data); }

/* Delivery: spawn the callback as a task with the signal's name (protected:
** mh_l_cb_call; a refused spawn leaves nothing behind but garbage). */
static int signal_spawn(lua_State *L) {
  sigwatch *s = (sigwatch *)lua_touserdata(L, 1);
  char task_name[32];
  snprintf(task_name, sizeof task_name, "signal %s", name_of(s->signum));
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushstring(L, name_of(s->signum));
  mh_task_spawn(L, -2, 1, task_name);
  return 0;
}

static void signal_cb(uv_signal_t *h, int signum) {
  sigwatch *s = (sigwatch *)h->data;
  char what[32];
  if (s->fn_ref == LUA_NOREF) return;
  snprintf(what, sizeof what, "signal %s", name_of(signum));
  mh_l_cb_call(s->L, signal_spawn, s, what);
}

/* Stops listening; the heap part is freed by libuv's close callback. */
static void stop(lua_State *L, sig_ud *u) {
  sigwatch *s = u->s;
  if (!s) return;
  u->s = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->fn_ref);
  s->fn_ref = LUA_NOREF;
  uv_signal_stop(&s->h);
  uv_close((uv_handle_t *)&s->h, close_cb);
}

/* on(signal, fn) -> handle.  fn(name) runs as a new task at each delivery. */
static int l_on(lua_State *L) {
  int signum = check_signum(L, 1);
  sig_ud *u;
  sigwatch *s;
  int rc, fn_ref;
  lua_State *cb;
  uv_loop_t *loop;
  mh_l_arg_type(L, 2, "fn", LUA_TFUNCTION);
  if (signum == SIGKILL || signum == SIGSTOP) mh_l_arg_error(L, 1, "signal", "one that can be caught (not KILL nor STOP)");
  cb = mh_l_cbstate(L);   /* these raise where core is not open */
  loop = mh_l_loop(L);
  u = (sig_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SIGNAL_MT);
  /* Everything that may raise (the reference may grow the registry: out of
  ** memory, a rule's memory budget) before the handle is started: a reference
  ** taken after the start and refused left a started handle nothing could
  ** stop, whose delivery ran no function (a Lua panic: the process ended) */
  lua_pushvalue(L, 2);
  fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s = (sigwatch *)calloc(1, sizeof *s);
  if (!s) {
    luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
    return luaL_error(L, "out of memory");
  }
  s->L = cb;
  s->signum = signum;
  s->fn_ref = fn_ref;
  s->h.data = s;
  uv_signal_init(loop, &s->h);
  rc = uv_signal_start(&s->h, signal_cb, signum);
  if (rc < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
    uv_close((uv_handle_t *)&s->h, close_cb);
    return luaL_error(L, "signal %s: %s", name_of(signum), uv_strerror(rc));
  }
  uv_unref((uv_handle_t *)&s->h);
  u->s = s;
  return 1;
}

static int l_stop(lua_State *L) {
  stop(L, (sig_ud *)luaL_checkudata(L, 1, SIGNAL_MT));
  return 0;
}

static int l_tostring(lua_State *L) {
  sig_ud *u = (sig_ud *)luaL_checkudata(L, 1, SIGNAL_MT);
  if (u->s) lua_pushfstring(L, "mailhook.Signal(%s): %p", name_of(u->s->signum), (void *)u);
  else lua_pushfstring(L, "mailhook.Signal(stopped): %p", (void *)u);
  return 1;
}

/* kill(pid, signal) -> true | nil, message, info.  Signal 0 probes a pid. */
static int l_kill(lua_State *L) {
  lua_Integer pid = mh_l_arg_integer(L, 1, "pid");
  int signum = (lua_isinteger(L, 2) && lua_tointeger(L, 2) == 0) ? 0 : check_signum(L, 2);
  if (pid <= 0) mh_l_arg_error(L, 1, "pid", "> 0");
  if (kill((pid_t)pid, signum) < 0)
    return mh_l_fail(L, -errno, NULL, "kill %d: %s", (int)pid, strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

void l_signal_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"on", l_on}, {"kill", l_kill}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"stop", l_stop}, {NULL, NULL}};
  mh_l_newclass(L, SIGNAL_MT, methods, l_stop, l_tostring);
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "signal");
}
