/*
** l_proc.c — child processes of this same binary joined by a message channel:
** what `mailhook run` uses to keep its rules in a separate process (the rules
** worker, lua/mailhook/rule_worker.lua), so that nothing a rule does — an
** endless C call, a finalizer that never returns, a heap that grows without
** end — can hold the delivery loop: the service kills and restarts the worker.
**
**   proc.spawn(args) -> proc, channel | nil, err   runs this binary with args
**       (argv[1..]); stdin /dev/null, stdout and stderr shared, fd 3 the channel
**   proc:wait() -> exit_status, signal (waits)    proc:kill([signal name]) -> ok
**   proc:pid()
**   proc.channel() -> channel | nil, err          the worker's end (fd 3)
**   channel:send(string) -> true | nil, err       one frame, in order
**   channel:recv() -> string | nil                 next frame (waits); nil at the end
**   channel:close()
**   proc.limit{data = bytes, core = bytes, nice = n} -> true | nil, err
**       setrlimit/setpriority for the worker itself (the data limit is skipped
**       under AddressSanitizer, whose shadow memory counts as data)
**   proc.die_with_parent()   the kernel kills this process when its parent dies
**
** A frame is "LENGTH\n" then LENGTH bytes: the channel carries whole Lua
** strings, whatever their bytes.  Memory of handles is owned by C and freed in
** libuv's close callbacks; the userdata only point at it.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include "l_sched.h"
#include "error.h"

#define PROC_MT "mailhook.Proc"
#define CHAN_MT "mailhook.Channel"
#define MAX_FRAME (16u << 20)   /* a frame larger than this is a broken peer */

#if defined(__SANITIZE_ADDRESS__)
#define MH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MH_ASAN 1
#endif
#endif

/* ---------------------------------------------------------------- channel */

typedef struct chan chan;

typedef struct {
  mh_wait w;
  chan *c;
} recv_req;

struct chan {
  uv_pipe_t pipe;           /* the socketpair end */
  int closing;              /* uv_close called: no more I/O */
  int eof;                  /* the peer closed it, or it broke: recv returns nil */
  char *buf;                /* bytes received and not yet returned as frames */
  size_t len, cap;
  recv_req *reader;         /* a recv() waiting, or NULL */
  struct chan_ud *ud;       /* the userdata pointing here, NULL once collected */
};

typedef struct chan_ud { chan *c; } chan_ud;

/* A complete frame at the head of c->buf: its payload offset and length. */
static int frame_ready(chan *c, size_t *off, size_t *n) {
  char *nl;
  unsigned long v;
  char *end;
  size_t look = c->len < 12 ? c->len : 12;
  if (!look || !(nl = memchr(c->buf, '\n', look))) {
    if (c->len >= 12) c->eof = 1;           /* no length line: a broken peer */
    return 0;
  }
  v = strtoul(c->buf, &end, 10);
  if (end != nl || v > MAX_FRAME) { c->eof = 1; return 0; }
  *off = (size_t)(nl - c->buf) + 1;
  *n = v;
  return c->len >= *off + v;
}

/* Pushes the next frame (or nil at the end) on L, if there is an answer now. */
static int take_frame(chan *c, lua_State *L) {
  size_t off, n;
  if (frame_ready(c, &off, &n)) {
    lua_pushlstring(L, c->buf + off, n);
    memmove(c->buf, c->buf + off + n, c->len - off - n);
    c->len -= off + n;
    return 1;
  }
  if (c->eof || c->closing) { lua_pushnil(L); return 1; }
  return 0;
}

/* deliver's push: the frame (or the nil of the end) known to be there */
static int deliver_push(lua_State *L, void *arg) {
  return take_frame((chan *)arg, L);
}

/* Resumes the waiting recv() when a frame (or the end) has come.  From a loop
** callback: the frame is pushed as a protected call (mh_wait_deliver), so a
** refused allocation resumes the waiter with nil and the error instead of
** unwinding through uv_run; the frame then stays for the next recv(). */
static void deliver(chan *c) {
  recv_req *r = c->reader;
  size_t off, n;
  if (!r) return;
  if (!mh_wait_co(&r->w)) { c->reader = NULL; free(r); return; }
  if (!frame_ready(c, &off, &n) && !c->eof && !c->closing) return;
  c->reader = NULL;
  mh_wait_deliver(&r->w, deliver_push, c);
  free(r);
}

static void chan_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  chan *c = (chan *)h->data;
  (void)hint;
  if (c->cap - c->len < 65536) {
    char *nb = (char *)realloc(c->buf, c->cap + 65536);
    if (!nb) { b->base = NULL; b->len = 0; return; }
    c->buf = nb;
    c->cap += 65536;
  }
  b->base = c->buf + c->len;
  b->len = c->cap - c->len;
}

static void chan_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  chan *c = (chan *)s->data;
  (void)b;
  if (nread > 0) c->len += (size_t)nread;
  else if (nread < 0) { c->eof = 1; uv_read_stop(s); }
  deliver(c);
}

static void chan_close_cb(uv_handle_t *h) {
  chan *c = (chan *)h->data;
  if (c->ud) c->ud->c = NULL;
  free(c->buf);
  free(c);
}

static void chan_close(chan *c) {
  if (!c || c->closing) return;
  c->closing = 1;
  if (c->reader) {           /* a waiting recv gets nil */
    recv_req *r = c->reader;
    lua_State *co = mh_wait_co(&r->w);
    c->reader = NULL;
    if (co) { lua_pushnil(co); mh_wait_resume(&r->w, 1); }
    free(r);
  }
  uv_close((uv_handle_t *)&c->pipe, chan_close_cb);
}

static chan *chan_new(uv_loop_t *loop) {
  chan *c = (chan *)calloc(1, sizeof *c);
  if (!c) return NULL;
  uv_pipe_init(loop, &c->pipe, 0);
  c->pipe.data = c;
  return c;
}

/* A Channel userdata with no channel yet, pushed: made before the channel it
** will hold, so that no push may raise (a rule's memory budget) while a
** channel (its pipe, a descriptor) is held in a C local only.  chan_ud_set
** gives it its channel. */
static chan_ud *push_chan_ud(lua_State *L) {
  chan_ud *u = (chan_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, CHAN_MT);
  return u;
}

static void chan_ud_set(chan_ud *u, chan *c) {
  u->c = c;
  c->ud = u;
}

static chan *check_chan(lua_State *L) {
  chan_ud *u = (chan_ud *)luaL_checkudata(L, 1, CHAN_MT);
  return u->c && !u->c->closing ? u->c : NULL;
}

static void recv_cancel(mh_wait *w) {
  recv_req *r = (recv_req *)w;
  if (r->c && r->c->reader == r) r->c->reader = NULL;
  free(r);
}

/* channel:recv() -> frame | nil   (waits) */
static int l_chan_recv(lua_State *L) {
  chan *c = check_chan(L);
  recv_req *r;
  mh_wait probe;
  if (!c) { lua_pushnil(L); return 1; }
  if (take_frame(c, L)) return 1;
  if (c->reader) return luaL_error(L, "channel:recv: another task is receiving");
  mh_wait_init(L, &probe, "channel:recv");
  r = (recv_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  r->w = probe;
  r->w.cancel = recv_cancel;
  r->c = c;
  c->reader = r;
  return mh_wait_yield(L, &r->w);
}

typedef struct { uv_write_t req; char data[]; } write_req;

static void write_cb(uv_write_t *req, int status) {
  (void)status;   /* a broken channel shows as the end of recv */
  free(req);
}

/* channel:send(s) -> true | nil, err: queued in order, never waits. */
static int l_chan_send(lua_State *L) {
  chan *c = check_chan(L);
  size_t n, hlen;
  const char *s = mh_l_field_lstring(L, 2, "channel:send", "data", &n);
  char hdr[24];
  write_req *w;
  uv_buf_t b;
  int rc;
  if (!c || c->eof) return mh_l_fail(L, MH_ECANCELED, "channel", "the channel is closed");
  if (n > MAX_FRAME)
    return luaL_error(L, "channel:send: data must be at most %I bytes (got %I)", (lua_Integer)MAX_FRAME, (lua_Integer)n);
  hlen = (size_t)snprintf(hdr, sizeof hdr, "%zu\n", n);
  w = (write_req *)malloc(sizeof *w + hlen + n);
  if (!w) return luaL_error(L, "out of memory");
  memcpy(w->data, hdr, hlen);
  memcpy(w->data + hlen, s, n);
  b = uv_buf_init(w->data, (unsigned)(hlen + n));
  {
    mh_l_sigpipe g;   /* a peer that died: EPIPE, not a killed process (l_sched.h) */
    mh_l_sigpipe_begin(c->pipe.loop, &g);
    rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
    mh_l_sigpipe_end(&g);
  }
  if (rc < 0) {
    free(w);
    return mh_l_fail(L, MH_EINVAL, "channel", "channel: %s", uv_strerror(rc));
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_chan_close(lua_State *L) {
  chan_ud *u = (chan_ud *)luaL_checkudata(L, 1, CHAN_MT);
  chan_close(u->c);
  return 0;
}

static int l_chan_gc(lua_State *L) {
  chan_ud *u = (chan_ud *)luaL_checkudata(L, 1, CHAN_MT);
  if (u->c) {
    u->c->ud = NULL;
    chan_close(u->c);
    u->c = NULL;
  }
  return 0;
}

static int l_chan_tostring(lua_State *L) {
  chan_ud *u = (chan_ud *)luaL_checkudata(L, 1, CHAN_MT);
  lua_pushfstring(L, "mailhook.Channel: %p%s", (void *)u, u->c && !u->c->closing ? "" : " (closed)");
  return 1;
}

/* proc.channel() -> the channel on fd 3 | nil, err (not started by proc.spawn). */
static int l_channel(lua_State *L) {
  struct stat st;
  chan_ud *cu;
  chan *c;
  int rc;
  if (fstat(3, &st) < 0 || !S_ISSOCK(st.st_mode))
    return mh_l_fail(L, MH_EINVAL, "channel", "no channel on fd 3 (this command is started by `mailhook run`)");
  /* the channel is this process's alone: a program a rule starts (os.execute,
     io.popen) must not inherit it and write frames to the service */
  fcntl(3, F_SETFD, FD_CLOEXEC);
  cu = push_chan_ud(L);   /* first: nothing below may raise with c held */
  c = chan_new(mh_l_loop(L));
  if (!c) return luaL_error(L, "out of memory");
  rc = uv_pipe_open(&c->pipe, 3);
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->pipe, chan_alloc_cb, chan_read_cb);
  if (rc < 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->pipe, chan_close_cb);
    return mh_l_fail(L, MH_EINVAL, "channel", "channel: %s", uv_strerror(rc));
  }
  chan_ud_set(cu, c);
  return 1;
}

/* ---------------------------------------------------------------- process */

typedef struct proc proc;

typedef struct {
  mh_wait w;
  proc *p;
} pwait_req;

struct proc {
  uv_process_t h;
  int exited;               /* the exit callback ran */
  int64_t status;           /* its exit status */
  int signal;               /* the signal that ended it, 0 if none */
  pwait_req *waiter;        /* a wait() waiting */
  struct proc_ud *ud;       /* the userdata, NULL once collected */
};

typedef struct proc_ud { proc *p; } proc_ud;

static void proc_close_cb(uv_handle_t *h) {
  proc *p = (proc *)h->data;
  if (p->ud) p->ud->p = NULL;
  free(p);
}

static void proc_exit_cb(uv_process_t *h, int64_t status, int sig) {
  proc *p = (proc *)h->data;
  p->exited = 1;
  p->status = status;
  p->signal = sig;
  if (p->waiter) {
    pwait_req *r = p->waiter;
    lua_State *co = mh_wait_co(&r->w);
    p->waiter = NULL;
    if (co) {
      lua_pushinteger(co, (lua_Integer)status);
      lua_pushinteger(co, sig);
      mh_wait_resume(&r->w, 2);
    }
    free(r);
  }
  /* nobody will ask.  The waiter resumed above may have run on until its
  ** proc was collected, whose __gc closed the handle already: once only */
  if (!p->ud && !uv_is_closing((uv_handle_t *)h)) uv_close((uv_handle_t *)h, proc_close_cb);
}

static proc *check_proc(lua_State *L) {
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROC_MT);
  if (!u->p) luaL_error(L, "process handle already released");
  return u->p;
}

/* proc.spawn({arg1, ...}) -> proc, channel | nil, err */
static int l_spawn_proc(lua_State *L) {
  char exe[4096];
  size_t exelen = sizeof exe;
  const char **argv;
  int n, i, rc;
  uv_process_options_t o;
  uv_stdio_container_t stdio[4];
  proc *p;
  chan *c;
  proc_ud *u;
  chan_ud *cu;
  mh_l_arg_type(L, 1, "arguments", LUA_TTABLE);
  n = (int)luaL_len(L, 1);
  if (uv_exepath(exe, &exelen) < 0) return mh_l_fail(L, MH_EINVAL, "spawn", "cannot find this program's path");
  /* a binary replaced on disk reads "PATH (deleted)": argv[0] is its path */
  if (exelen > 10 && !strcmp(exe + exelen - 10, " (deleted)")) exe[exelen - 10] = '\0';
  argv = (const char **)lua_newuserdatauv(L, sizeof *argv * (size_t)(n + 2), 0);
  argv[0] = exe;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING) {   /* a number converted here would be no item of the table */
      char item[32];
      snprintf(item, sizeof item, "arguments[%d]", i);
      mh_l_field_error(L, -1, "proc.spawn", item, "a string");
    }
    argv[i] = lua_tostring(L, -1);
    lua_pop(L, 1);   /* the table keeps the string alive */
  }
  argv[n + 1] = NULL;
  /* the results' userdata first, empty (their __gc takes NULL): a push after
  ** the spawn, refused under a rule's memory budget, left the child's handle
  ** and its channel's pipe (a descriptor) in C locals, lost */
  u = (proc_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->p = NULL;
  luaL_setmetatable(L, PROC_MT);
  cu = push_chan_ud(L);
  p = (proc *)calloc(1, sizeof *p);
  c = p ? chan_new(mh_l_loop(L)) : NULL;
  if (!c) { free(p); return luaL_error(L, "out of memory"); }
  memset(&o, 0, sizeof o);
  memset(stdio, 0, sizeof stdio);
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  stdio[3].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE);
  stdio[3].data.stream = (uv_stream_t *)&c->pipe;
  /* the running image itself, through /proc/self/exe in the child (it is that
  ** process's own link, to the same file): after an upgrade replaced the binary
  ** on disk, its path names "... (deleted)" and a rules worker killed by its
  ** budget could never be started again (the service logged the failure for
  ** ever and said "mail is flowing").  argv[0] keeps the path, for ps. */
  o.file = access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : exe;
  o.args = (char **)argv;
  o.exit_cb = proc_exit_cb;
  o.stdio = stdio;
  o.stdio_count = 4;
  p->h.data = p;
  rc = uv_spawn(mh_l_loop(L), &p->h, &o);
  if (rc < 0) {
    int e = rc;
    uv_close((uv_handle_t *)&p->h, proc_close_cb);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->pipe, chan_close_cb);
    return mh_l_fail(L, MH_EINVAL, "spawn", "cannot start %s: %s", exe, uv_strerror(e));
  }
  rc = uv_read_start((uv_stream_t *)&c->pipe, chan_alloc_cb, chan_read_cb);
  if (rc < 0) c->eof = 1;
  u->p = p;   /* nothing from here may raise */
  p->ud = u;
  chan_ud_set(cu, c);
  return 2;   /* the proc and the channel, on top */
}

static void pwait_cancel(mh_wait *w) {
  pwait_req *r = (pwait_req *)w;
  if (r->p && r->p->waiter == r) r->p->waiter = NULL;
  free(r);
}

/* proc:wait() -> exit_status, signal   (waits) */
static int l_proc_wait(lua_State *L) {
  proc *p = check_proc(L);
  pwait_req *r;
  mh_wait probe;
  if (p->exited) {
    lua_pushinteger(L, (lua_Integer)p->status);
    lua_pushinteger(L, p->signal);
    return 2;
  }
  if (p->waiter) return luaL_error(L, "proc:wait: another task is waiting");
  mh_wait_init(L, &probe, "proc:wait");
  r = (pwait_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  r->w = probe;
  r->w.cancel = pwait_cancel;
  r->p = p;
  p->waiter = r;
  return mh_wait_yield(L, &r->w);
}

static const struct { const char *name; int sig; } SIGNALS[] = {
  {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"STOP", SIGSTOP},
  {"CONT", SIGCONT}, {"USR1", SIGUSR1}, {NULL, 0}};

/* proc:kill([name = "TERM"]) -> true | nil, err */
static int l_proc_kill(lua_State *L) {
  proc *p = check_proc(L);
  const char *name = mh_l_optfield_string(L, 2, "proc:kill", "signal", "TERM");
  int i, rc;
  for (i = 0; SIGNALS[i].name && strcmp(SIGNALS[i].name, name); i++) {}
  if (!SIGNALS[i].name) return luaL_error(L, "proc:kill: signal must be a signal name such as TERM (got '%s')", name);
  if (p->exited) return mh_l_fail(L, MH_EINVAL, "kill", "the process has exited");
  rc = uv_process_kill(&p->h, SIGNALS[i].sig);
  if (rc < 0) return mh_l_fail(L, MH_EINVAL, "kill", "kill: %s", uv_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_proc_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L)->h.pid);
  return 1;
}

/* The userdata goes: an exited process's handle is closed; a running one is
** left to run (its exit callback closes the handle). */
static int l_proc_gc(lua_State *L) {
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROC_MT);
  proc *p = u->p;
  if (!p) return 0;
  u->p = NULL;
  p->ud = NULL;
  if (p->exited && !uv_is_closing((uv_handle_t *)&p->h)) uv_close((uv_handle_t *)&p->h, proc_close_cb);
  else if (!p->exited) uv_unref((uv_handle_t *)&p->h);   /* never holds the loop once forgotten */
  return 0;
}

static int l_proc_tostring(lua_State *L) {
  proc_ud *u = (proc_ud *)luaL_checkudata(L, 1, PROC_MT);
  if (u->p) lua_pushfstring(L, "mailhook.Proc(%d)", u->p->h.pid);
  else lua_pushliteral(L, "mailhook.Proc (released)");
  return 1;
}

/* ------------------------------------------------------------------ limits */

/* Sets the soft limit only (at most the hard one), so that a later call may
** raise it again: a reload may give the rules more memory. */
static int set_limit(int res, lua_Integer v) {
  struct rlimit rl;
  if (getrlimit(res, &rl) < 0) return -1;
  rl.rlim_cur = (rlim_t)v;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
  return setrlimit(res, &rl);
}

/* limit{data = bytes, core = bytes, nice = n} -> true | nil, err */
static int l_limit(lua_State *L) {
  static const char *const known[] = { "data", "core", "nice", NULL };
  mh_l_arg_type(L, 1, "limits", LUA_TTABLE);
  mh_l_check_nargs(L, 1, "proc.limit");
  mh_l_check_options(L, 1, "proc.limit", known);
  if (lua_getfield(L, 1, "data") == LUA_TNUMBER) {
#ifndef MH_ASAN
    if (set_limit(RLIMIT_DATA, lua_tointeger(L, -1)) < 0)
      return mh_l_fail(L, MH_EINVAL, "limit", "RLIMIT_DATA: %s", strerror(errno));
#endif
  }
  if (lua_getfield(L, 1, "core") == LUA_TNUMBER && set_limit(RLIMIT_CORE, lua_tointeger(L, -1)) < 0)
    return mh_l_fail(L, MH_EINVAL, "limit", "RLIMIT_CORE: %s", strerror(errno));
  if (lua_getfield(L, 1, "nice") == LUA_TNUMBER) {
    errno = 0;
    if (setpriority(PRIO_PROCESS, 0, (int)lua_tointeger(L, -1)) < 0)
      return mh_l_fail(L, MH_EINVAL, "limit", "setpriority: %s", strerror(errno));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* die_with_parent(): on Linux the kernel sends SIGKILL to this process when
** the parent that started it dies (a service killed by SIGKILL leaves no
** rules worker behind).  Elsewhere the end of the channel does it. */
static int l_die_with_parent(lua_State *L) {
#ifdef __linux__
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);   /* the parent died before prctl */
  lua_pushboolean(L, 1);
#else
  lua_pushboolean(L, 0);
#endif
  return 1;
}

void l_proc_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn_proc}, {"channel", l_channel}, {"limit", l_limit},
    {"die_with_parent", l_die_with_parent}, {NULL, NULL}};
  static const luaL_Reg proc_m[] = {
    {"wait", l_proc_wait}, {"kill", l_proc_kill}, {"pid", l_proc_pid}, {NULL, NULL}};
  static const luaL_Reg chan_m[] = {
    {"send", l_chan_send}, {"recv", l_chan_recv}, {"close", l_chan_close}, {NULL, NULL}};
  mh_l_newclass(L, PROC_MT, proc_m, l_proc_gc, l_proc_tostring);
  mh_l_newclass(L, CHAN_MT, chan_m, l_chan_gc, l_chan_tostring);
  /* a Channel's __close must close it; its __gc (set above) does too */
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "proc");
}
