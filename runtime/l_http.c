/*
** l_http.c — core.http: the console's HTTP server (runtime/http.c) as Lua
** objects.  Each request runs its handler as a new task, so a handler may
** wait (a Test of the mail server, a page of the queue read on the thread
** pool) and answer when it is done.
**
**   local srv, err = core.http.listen{host = "127.0.0.1", port = 8025,
**       max_body =, max_head =, max_conns =, rate =, burst =, req_timeout =, stall =,
**       max_stream_buffer =, json_prefix = "/api/", trust_cookie =, open = {"GET /login", ...},
**       handler = function(req) ... end}
**   (open: routes never rate-limited, "METHOD /path", a trailing * for a prefix: http.h)
**   (json_prefix: the server's own errors, 400 413 429 431..., to paths under it
**   are JSON {"ok":false,"error":"..."}, as the console's handlers answer)
**   srv:address() -> host, port      srv:stats() -> {connections=, requests=, limited=, malformed=, ...}
**   srv:close()                      -- waits until every connection is closed
**   req:method() req:path() req:query() req:header(lc_name) req:body() req:peer()
**   req:respond(status, headers, body) -> true | nil, "closed"
**   req:stream(status, headers) ; req:write(data) ; req:finish()   -- chunked (SSE)
**   req:alive()
** A handler that raises before it answered: 500 at once (handler_run); one that
** returns without answering: 500 when its request is collected (r_gc).
** headers: {["Content-Type"] = "text/html", ...} and/or a list of {name, value}
** pairs (for a header given twice).  A name or value holding CR, LF or NUL is
** misuse (it would split the response): it raises.
**
** The server is mailhook's own (runtime/http.c over runtime/httpparse.c, on
** libuv), linked into the binary: it needs no library the binary does not
** already load.
*/
#include <stdlib.h>
#include <string.h>
#include "l_sched.h"
#include "http.h"

#define SERVER_MT "mailhook.HttpServer"
#define REQ_MT "mailhook.HttpRequest"

static const mh_http_api *api;   /* runtime/http.c's table (set by l_http_open) */

typedef struct {
  mh_http_server *s;             /* NULL when listen failed */
  lua_State *L;                  /* the state's callback thread, to spawn handler tasks from */
  int handler_ref;               /* the Lua handler (registry) */
  int closed;                    /* close() ran to its end */
  mh_wait *closing;              /* the task waiting in close(), if any */
  int close_done;                /* the done callback ran */
} server_ud;

typedef struct {
  mh_http_req *r;                /* NULL once released */
} req_ud;

/* --------------------------------------------------------------- requests */

static mh_http_req *check_req(lua_State *L) {
  req_ud *u = (req_ud *)luaL_checkudata(L, 1, REQ_MT);
  if (!u->r) luaL_error(L, "request already released");
  return u->r;
}

static int push_str(lua_State *L, const char *s, size_t len) {
  if (s) lua_pushlstring(L, s, len); else lua_pushnil(L);
  return 1;
}

static int r_method(lua_State *L) { size_t n; const char *s = api->method(check_req(L), &n); return push_str(L, s, n); }
static int r_path(lua_State *L) { size_t n; const char *s = api->path(check_req(L), &n); return push_str(L, s, n); }
static int r_query(lua_State *L) { size_t n; const char *s = api->query(check_req(L), &n); return push_str(L, s, n); }
static int r_body(lua_State *L) { size_t n; const char *s = api->body(check_req(L), &n); return push_str(L, s, n); }

static int r_header(lua_State *L) {
  mh_http_req *r = check_req(L);
  size_t n;
  const char *s = api->header(r, mh_l_field_string(L, 2, "req:header", "name"), &n);
  return push_str(L, s, n);
}

static int r_peer(lua_State *L) {
  char buf[64];
  if (api->peer(check_req(L), buf, sizeof buf) != 0) return push_str(L, NULL, 0);
  lua_pushstring(L, buf);
  return 1;
}

static int r_alive(lua_State *L) {
  lua_pushboolean(L, api->alive(check_req(L)));
  return 1;
}

/* A name or value is used as it is: one holding CR, LF or NUL is misuse. */
static const char *check_field(lua_State *L, int idx, const char *what) {
  size_t len;
  const char *s = luaL_tolstring(L, idx, &len);
  if (strlen(s) != len || strpbrk(s, "\r\n"))
    luaL_error(L, "response header %s must not contain CR, LF or NUL", what);
  return s;
}

/* headers at idx -> an array of nh pairs, in a userdata left on the stack with
** the strings (anchored in its user value), so everything lives until the call
** is made and nothing leaks when a bad field raises. */
static mh_http_header *collect_headers(lua_State *L, int idx, size_t *nh) {
  size_t n = 0, i = 0;
  mh_http_header *h;
  int anchor;
  *nh = 0;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (!lua_istable(L, idx)) mh_l_field_error(L, idx, "response headers", "headers", "a table");
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  h = (mh_http_header *)lua_newuserdatauv(L, (n ? n : 1) * sizeof *h, 1);
  lua_createtable(L, (int)(2 * n), 0);         /* the strings */
  anchor = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) && i < n) {
    if (lua_type(L, -2) == LUA_TNUMBER) {      /* {name, value} */
      if (!lua_istable(L, -1)) luaL_error(L, "response headers: list items must be {name, value}");
      lua_rawgeti(L, -1, 1);
      h[i].name = check_field(L, -1, "name");
      lua_rawseti(L, anchor, (lua_Integer)(2 * i + 1));
      lua_pop(L, 1);
      lua_rawgeti(L, -1, 2);
      h[i].value = check_field(L, -1, "value");
      lua_rawseti(L, anchor, (lua_Integer)(2 * i + 2));
      lua_pop(L, 1);
    } else {
      h[i].name = check_field(L, -2, "name");
      lua_rawseti(L, anchor, (lua_Integer)(2 * i + 1));
      h[i].value = check_field(L, -1, "value");
      lua_rawseti(L, anchor, (lua_Integer)(2 * i + 2));
    }
    i++;
    lua_pop(L, 1);
  }
  lua_setiuservalue(L, -2, 1);                 /* the strings live with the array */
  *nh = i;
  return h;
}

static int result(lua_State *L, int rc) {
  if (rc == 0) { lua_pushboolean(L, 1); return 1; }
  lua_pushnil(L);
  lua_pushstring(L, rc == MH_HTTP_GONE ? "closed" : rc == MH_HTTP_BUSY ? "already answered"
                    : rc == MH_HTTP_FULL ? "client not reading (dropped)" : uv_strerror(rc));
  return 2;
}

/* The status at 2: range-checked before any cast (2^32 + 200 was 200). */
static int check_status(lua_State *L, const char *fn) {
  lua_Integer status = mh_l_field_integer(L, 2, fn, "status");
  if (status < 100 || status > 599) mh_l_field_error(L, 2, fn, "status", "an HTTP status 100-599");
  return (int)status;
}

/* req:respond(status, headers, body) -> true | nil, why */
static int r_respond(lua_State *L) {
  mh_http_req *r = check_req(L);
  int status = check_status(L, "req:respond");
  size_t nh, len = 0;
  const char *body = lua_isnoneornil(L, 4) ? "" : mh_l_field_lstring(L, 4, "req:respond", "body", &len);
  mh_http_header *h;
  int rc;
  h = collect_headers(L, 3, &nh);
  rc = api->respond(r, status, h, nh, body, len);
  return result(L, rc);
}

static int r_stream(lua_State *L) {
  mh_http_req *r = check_req(L);
  int status = check_status(L, "req:stream");
  size_t nh;
  mh_http_header *h;
  int rc;
  h = collect_headers(L, 3, &nh);
  rc = api->stream(r, status, h, nh);
  return result(L, rc);
}

static int r_write(lua_State *L) {
  mh_http_req *r = check_req(L);
  size_t len;
  const char *data = mh_l_field_lstring(L, 2, "req:write", "data", &len);
  return result(L, api->write(r, data, len));
}

static int r_finish(lua_State *L) { return result(L, api->end(check_req(L))); }

/* A 500 to a request nobody answered (a no-op when it was: MH_HTTP_BUSY). */
static void answer_500(mh_http_req *r, const char *msg) {
  static const mh_http_header h[] = { { "Content-Type", "text/plain; charset=utf-8" } };
  if (api->alive(r)) api->respond(r, 500, h, 1, msg, strlen(msg));
}

static int r_gc(lua_State *L) {
  req_ud *u = (req_ud *)luaL_checkudata(L, 1, REQ_MT);
  if (u->r) {
    mh_http_req *r = u->r;
    u->r = NULL;
    /* a handler that returned without answering and left the request to nobody */
    answer_500(r, "internal error: the handler did not answer\n");
    api->release(r);
  }
  return 0;
}

/* The handler's task runs handler_run(req), which calls the handler under a
** yieldable pcall: a handler that raised got its 500 only from the request's
** __gc, at the next collection (seconds or hours later, the client waiting).
** Now it is answered when the handler raises; a request the handler answered,
** or streams, is left as it is.  The error is raised again for the task, so
** the scheduler logs it as before; the message handler adds the traceback of
** where the handler raised, which the pcall unwinds (the task's own then shows
** only handler_run). */
static int handler_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg && lua_type(L, 1) == LUA_TSTRING) luaL_traceback(L, L, msg, 1);
  return 1;   /* another value (a table, a cancellation's marker) as it is */
}

static int handler_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    req_ud *u = (req_ud *)lua_touserdata(L, 1);
    /* a cancellation (the server or the state closing) is no fault of the
       handler's: close() answers what is still held */
    if (u && u->r && lua_type(L, -1) != LUA_TLIGHTUSERDATA)
      answer_500(u->r, "internal error: the handler failed\n");
    return lua_error(L);
  }
  return 0;
}

static int handler_run(lua_State *L) {   /* upvalue 1: the handler; 1: the request */
  lua_settop(L, 1);
  lua_pushcfunction(L, handler_msgh);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  return handler_k(L, lua_pcallk(L, 1, 0, 2, 0, handler_k), 0);
}

static int r_tostring(lua_State *L) {
  req_ud *u = (req_ud *)luaL_checkudata(L, 1, REQ_MT);
  lua_pushfstring(L, "mailhook.HttpRequest: %p%s", (void *)u, u->r ? "" : " (released)");
  return 1;
}

/* ---------------------------------------------------------------- server */

/* From the server, on the loop: a request passed the limits.  The handler runs as a
** new task with the request object; the object's __gc releases it. */
typedef struct { server_ud *su; mh_http_req *r; int owned; } request_call;

/* on_request's Lua work, protected (mh_l_cb_call): once the request object
** holds r (owned), its __gc answers and releases it, also when what follows
** is refused. */
static int request_spawn(lua_State *L) {
  request_call *c = (request_call *)lua_touserdata(L, 1);
  req_ud *u;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->su->handler_ref);
  u = (req_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->r = NULL;
  luaL_setmetatable(L, REQ_MT);
  u->r = c->r;
  c->owned = 1;
  mh_task_spawn(L, -2, 1, "console");
  return 0;
}

static void on_request(void *ud, mh_http_req *r) {
  server_ud *su = (server_ud *)ud;
  request_call c = { su, r, 0 };
  if (mh_l_cb_call(su->L, request_spawn, &c, "console") != LUA_OK && !c.owned) {
    /* no object holds it: answer here, as a handler that never answered is */
    answer_500(r, "internal error: the handler could not start\n");
    api->release(r);
  }
}

static lua_Number opt_num(lua_State *L, const char *key, lua_Number def) {
  lua_Number v;
  lua_getfield(L, 1, key);
  v = mh_l_optfield_number(L, -1, "http.listen", key, def);
  lua_pop(L, 1);
  return v;
}

/* An option checked to lie in [lo, hi] before any cast: (int)(2^32 + 80) is
** undefined, and in practice port 80; (size_t)1e300 or NaN anything. */
static lua_Number opt_in(lua_State *L, const char *key, lua_Number def, lua_Number lo, lua_Number hi) {
  lua_Number v = opt_num(L, key, def);
  if (!(v >= lo && v <= hi)) {
    const char *got;
    lua_getfield(L, 1, key);
    got = luaL_tolstring(L, -1, NULL);
    luaL_error(L, "http.listen: %s must be %I up to %I (got %s)", key, (lua_Integer)lo, (lua_Integer)hi, got);
  }
  return v;
}

/* An option that must also be at least min (above 0 when min is 0): 0 for
** max_conns, rate or burst refuses every request, for req_timeout times every
** one out.  The error names the option and the value given (one message
** naming all four left the caller to guess which). */
static lua_Number opt_positive(lua_State *L, const char *key, lua_Number def, lua_Number min, lua_Number hi,
                               const char *expected) {
  lua_Number v = opt_num(L, key, def);
  if (!((min > 0 ? v >= min : v > 0) && v <= hi)) {     /* NaN fails too */
    lua_getfield(L, 1, key);
    mh_l_field_error(L, -1, "http.listen", key, expected);
  }
  return v;
}

/* listen{...} -> server | nil, message, info */
static int l_listen(lua_State *L) {
  char err[600];
  mh_http_params p;
  server_ud *su;
  const char *host;
  int rc, anchor;
  uv_loop_t *loop;
  static const char *const known[] = { "handler", "host", "port", "json_prefix", "max_body", "max_head",
    "max_conns", "rate", "burst", "req_timeout", "stall", "max_stream_buffer", "trust_cookie", "open", NULL };
  const char *open[MH_HTTP_OPEN + 1] = { NULL };
  mh_l_arg_type(L, 1, "options", LUA_TTABLE);
  mh_l_check_nargs(L, 1, "http.listen");
  mh_l_check_options(L, 1, "http.listen", known);
  lua_getfield(L, 1, "handler");
  if (!lua_isfunction(L, -1)) mh_l_field_error(L, -1, "http.listen", "handler", "a function");
  lua_pop(L, 1);
  lua_getfield(L, 1, "host");
  host = mh_l_optfield_string(L, -1, "http.listen", "host", "127.0.0.1");
  memset(&p, 0, sizeof p);
  p.host = host;
  lua_getfield(L, 1, "json_prefix");
  p.json_prefix = mh_l_optfield_cstring(L, -1, "http.listen", "json_prefix", 63, NULL);
  lua_getfield(L, 1, "trust_cookie");
  p.trust_cookie = mh_l_optfield_cstring(L, -1, "http.listen", "trust_cookie", 63, NULL);
  lua_getfield(L, 1, "open");                 /* {"GET /login", ...}: http.h */
  if (!lua_isnil(L, -1)) {
    lua_Integer n;
    if (!lua_istable(L, -1)) mh_l_field_error(L, -1, "http.listen", "open", "a list of 'METHOD /path' strings");
    n = (lua_Integer)lua_rawlen(L, -1);
    if (n > MH_HTTP_OPEN) luaL_error(L, "http.listen: open: at most %d entries", MH_HTTP_OPEN);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) mh_l_field_error(L, -1, "http.listen", "open", "a list of 'METHOD /path' strings");
      open[i - 1] = lua_tostring(L, -1);       /* kept alive by the options table */
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  p.open = open;
  {
    lua_Number port = opt_num(L, "port", 0);
    if (!(port >= 0 && port <= 65535)) luaL_error(L, "http.listen: port must be 0-65535");
    p.port = (int)port;
  }
  p.max_body = (size_t)opt_in(L, "max_body", 64 * 1024, 0, 1ull << 40);
  p.max_head = (size_t)opt_in(L, "max_head", 8 * 1024, 0, 1 << 30);
  p.max_conns = (unsigned)opt_positive(L, "max_conns", 32, 1, 1 << 20, "1 up to 1048576");
  p.rate = opt_positive(L, "rate", 20, 0, 1e9, "above 0 up to 1e9 (requests a second)");
  p.burst = opt_positive(L, "burst", 100, 1, 1e9, "1 up to 1e9");
  p.req_timeout_ms = (unsigned)(opt_positive(L, "req_timeout", 10, 0.001, 86400, "0.001 up to 86400 (seconds)") * 1000);
  p.stall_ms = (unsigned)(opt_in(L, "stall", 30, 0, 86400) * 1000);
  p.max_stream_buffer = (size_t)opt_in(L, "max_stream_buffer", 1 << 20, 0, 1ull << 40);
  su = (server_ud *)lua_newuserdatauv(L, sizeof *su, 0);
  memset(su, 0, sizeof *su);
  su->handler_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  p.on_request = on_request;
  p.ud = su;
  su->L = mh_l_cbstate(L);   /* the state's callback thread (l_sched.h) */
  loop = mh_l_loop(L);
  /* The references before the server listens: they may grow the registry and
  ** raise (out of memory, a rule's memory budget), and taken after it they
  ** left a listening server whose requests ran no handler (a Lua panic), in a
  ** userdata nothing held */
  lua_getfield(L, 1, "handler");
  lua_pushcclosure(L, handler_run, 1);
  su->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* held until lua_close: its __gc then runs with the loop stopped and frees
     what close() left */
  lua_pushvalue(L, -1);
  anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  rc = api->listen(loop, &p, &su->s, err, sizeof err);
  if (rc != 0) {
    su->closed = 1;
    luaL_unref(L, LUA_REGISTRYINDEX, anchor);   /* the handler's: its __gc */
    return mh_l_fail(L, rc, "console", "%s", err);
  }
  return 1;
}

static server_ud *check_server(lua_State *L) {
  server_ud *su = (server_ud *)luaL_checkudata(L, 1, SERVER_MT);
  if (!su->s) luaL_error(L, "HTTP server is not listening");
  return su;
}

static int s_address(lua_State *L) {
  server_ud *su = check_server(L);
  char host[64];
  int port;
  api->address(su->s, host, sizeof host, &port);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

static int s_stats(lua_State *L) {
  server_ud *su = check_server(L);
  mh_http_stats st;
  api->stats(su->s, &st);
  lua_createtable(L, 0, 7);
#define F(name) lua_pushinteger(L, (lua_Integer)st.name); lua_setfield(L, -2, #name);
  F(connections) F(accepted) F(requests) F(limited) F(refused) F(evicted) F(stalled) F(malformed)
#undef F
  return 1;
}

/* srv:trust(key, on) -> true | nil, message: requests carrying key (the
** trust_cookie's value, or a bearer token) are rate-limited apart from the
** rest (http.h: trust). */
static int s_trust(lua_State *L) {
  server_ud *su = check_server(L);
  size_t n;
  const char *key = mh_l_arg_lstring(L, 2, "key", &n);
  int on = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  if (api->trust(su->s, key, n, on) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "http trust: the table is full (%d) or the key is over %d bytes", MH_HTTP_TRUSTED,
                    MH_HTTP_TRUST_LEN);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

typedef struct {
  mh_wait w;
  server_ud *su;
} close_wait;

static void close_done(void *ud) {
  server_ud *su = (server_ud *)ud;
  su->close_done = 1;
  su->closed = 1;
  if (su->closing) {
    mh_wait *w = su->closing;
    su->closing = NULL;
    if (mh_wait_co(w)) mh_wait_resume(w, 0);   /* NULL: the waiter was interrupted */
    free(w);
  }
}

/* srv:close() — waits until every connection is closed.  Idempotent. */
static int s_close(lua_State *L) {
  server_ud *su = (server_ud *)luaL_checkudata(L, 1, SERVER_MT);
  close_wait *cw;
  mh_wait probe;
  if (!su->s || su->closed) return 0;
  if (su->closing) return luaL_error(L, "HTTP server: close() already waited on by another task");
  api->close(su->s, close_done, su);
  if (su->close_done) return 0;  /* nothing was open */
  mh_wait_init(L, &probe, "console close");   /* raises where no wait is possible: before cw */
  cw = (close_wait *)calloc(1, sizeof *cw);
  if (!cw) return luaL_error(L, "out of memory");
  cw->su = su;
  cw->w = probe;
  cw->w.cancel = NULL;           /* an interrupted waiter: the close goes on */
  su->closing = &cw->w;
  return mh_wait_yield(L, &cw->w);
}

/* At lua_close (see l_listen): the loop is not running. */
static int s_gc(lua_State *L) {
  server_ud *su = (server_ud *)luaL_checkudata(L, 1, SERVER_MT);
  if (su->s) {
    api->destroy(su->s);
    su->s = NULL;
  }
  if (su->handler_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, su->handler_ref);
    su->handler_ref = LUA_NOREF;
  }
  return 0;
}

static int s_tostring(lua_State *L) {
  server_ud *su = (server_ud *)luaL_checkudata(L, 1, SERVER_MT);
  lua_pushfstring(L, "mailhook.HttpServer: %p%s", (void *)su, su->closed ? " (closed)" : "");
  return 1;
}

void l_http_open(lua_State *L) {
  static const luaL_Reg funcs[] = { { "listen", l_listen }, { NULL, NULL } };
  static const luaL_Reg req_methods[] = {
    { "method", r_method }, { "path", r_path }, { "query", r_query }, { "header", r_header },
    { "body", r_body }, { "peer", r_peer }, { "respond", r_respond }, { "stream", r_stream },
    { "write", r_write }, { "finish", r_finish }, { "alive", r_alive }, { NULL, NULL } };
  static const luaL_Reg server_methods[] = {
    { "address", s_address }, { "stats", s_stats }, { "close", s_close }, { "trust", s_trust }, { NULL, NULL } };
  api = mh_http_api_v1();
  mh_l_newclass(L, REQ_MT, req_methods, r_gc, r_tostring);
  /* the server: __gc only (no __close: destroying it needs the loop stopped) */
  if (luaL_newmetatable(L, SERVER_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, server_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, s_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, s_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "http");
}
