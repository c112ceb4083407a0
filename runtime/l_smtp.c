/*
** l_smtp.c — core.smtp: the SMTP client (client.c: the session of smtp.c on
** the transport of transport.c) as a Lua object whose operations wait
** (l_sched.h).  This file only turns calls into waits and C results into
** `nil, message, info` or result tables.
**
**   local c = core.smtp.new{host=, port=, tls="auto"|"implicit"|"starttls"|"opportunistic"|"none",
**                           tls_required=, greeting_wait=, helo=, verify=, ca_file=, fingerprint=, min_version=,
**                           connect_timeout=, command_timeout=, data_timeout=, session_deadline=}
**   c:open()                      -> true | nil, err, info      (waits: DNS, every address, TLS, EHLO)
**   c:auth(mech, user, secret)    -> true | nil, err, info      (waits)
**   c:mask(user, secret)          -> true: masked in every reply, the greeting's too (never waits)
**   c:send(from, {rcpt...}, data) -> result | nil, err, info    (waits)
**   c:submit(from, {rcpt...}, data) -> true                     (never waits)
**   c:submit_file(from, {rcpt...}, path [, offset [, size]]) -> true | nil, err, info   (never waits)
**   c:result([brief])             -> what send returns, for the oldest submission (waits);
**                                    brief: the number of recipients when all took it
**   c:release()                   -> (the collected ones are settled: the next data may go)
**   c:pending()                   -> submissions not collected yet (at most 2)
**   c:check_sender(from [, rcpt]) -> true | nil, err, info      (waits: MAIL FROM [+ RCPT TO] + RSET)
**   c:quit()                      -> true                       (waits)
**   c:close()  c:alive()  c:info() -> table
**
** tls = "auto" (client.h): a greeting within greeting_wait seconds means plain
** SMTP (then STARTTLS: required when tls_required, else when offered), and
** silence means implicit TLS.  A late plain greeting during that handshake is
** reported as info.plain_smtp, and the Lua layer reconnects with STARTTLS.
**
** A failure by timeout names what never came in info.waited: "dns", "connect",
** "greeting" (connected, and the server sent not one byte; info.tls_probe when
** tls = auto also tried a ClientHello that got no answer), "tls" (implicit TLS),
** "the TLS handshake after STARTTLS", or the command whose reply was due
** ("EHLO", "AUTH", "MAIL FROM", "the final dot", ...).  A TLS failure with a
** known cause says it as a code: info.why = "tls_version" (no version in
** common; info.tls_reason: how it showed, "alert protocol version", ...) or
** "tls_closed" (the server hung up during the handshake), with info.server
** and info.port; never to be found in the message's words.
**
** submit/result pipeline across messages (smtp.h): with one message in flight
** a second may be submitted, and its commands leave with the first one's final
** dot.  Outcomes come back in order through result(), which also opens the gate
** for the next message's data: the caller settles each message (removes it
** from the spool) before asking for the next result.
**
** A waiting task is resumed from the client's notify (a loop callback) or
** right after a call into the client that may have ended what it waits for
** (wake), never from inside the session.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "l_sched.h"
#include "l_spool.h"   /* a loaded entry's data handle */
#include "client.h"
#include "error.h"
#include "fsutil.h"

#define CONN_MT "mailhook.SmtpConn"

/* What the task waiting on the session waits for. */
enum { WAIT_NONE, WAIT_OP, WAIT_SEND };

/* The userdata: the client, and the one task that may wait on it. */
typedef struct {
  mh_wait w;                   /* first member: cancel_cb gets it back */
  int waiting;                 /* WAIT_*: a task waits (w in use) */
  const char *op;              /* what it waits in ("smtp auth"): a close names it */
  int brief;                   /* the waiting result() is brief: an integer when every
                                  recipient took the message (the deliverer, per message) */
  mh_client *c;                /* NULL once closed */
  mh_client_result held;       /* the outcome being pushed, owned here (its recipients are
                                  malloc'd), not by a C local: a push that raises (out of
                                  memory under a rule's budget) leaves it for the next
                                  pop_outcome or the close to free */
} lconn;

/* ------------------------------------------------------------- results */

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* The per-recipient lists of a send: accepted = {rcpt...}, rejected = {{rcpt=,...}}. */
static void push_rcpts(lua_State *L, const mh_smtp_rcpt *r, size_t n) {
  size_t a = 0, j = 0;
  lua_newtable(L);
  for (size_t i = 0; i < n; i++)
    if (r[i].accepted) { lua_pushstring(L, r[i].rcpt); lua_rawseti(L, -2, (lua_Integer)++a); }
  lua_setfield(L, -2, "accepted");
  lua_newtable(L);
  for (size_t i = 0; i < n; i++) {
    if (r[i].accepted) continue;
    lua_createtable(L, 0, 5);
    set_str(L, "rcpt", r[i].rcpt);
    if (r[i].code) {
      lua_pushinteger(L, r[i].code);
      lua_setfield(L, -2, "smtp");
      set_str(L, "enhanced", r[i].enhanced);
      set_str(L, "text", r[i].text);
      set_str(L, "class", r[i].code >= 500 ? "permanent" : "transient");
    } else {
      set_str(L, "class", "transient");   /* never answered (connection lost) */
    }
    lua_rawseti(L, -2, (lua_Integer)++j);
  }
  lua_setfield(L, -2, "rejected");
}

/* info.errors = {{address =, errno =}, ...}: each address a failed connect
** tried and its cause by errno name ("ECONNREFUSED", "ETIMEDOUT",
** "ENETUNREACH"...); info.errno: the cause they share, when they all have
** one.  For code to read instead of the English of the message. */
static void push_causes(lua_State *L, const char *causes) {
  const char *p = causes, *common = NULL;
  size_t common_len = 0;
  int same = 1;
  lua_Integer i = 0;
  lua_newtable(L);
  while (*p) {
    const char *nl = strchr(p, '\n'), *sp;
    if (!nl) break;   /* a line cut by the buffer's end: left out */
    sp = memchr(p, ' ', (size_t)(nl - p));
    if (sp) {
      lua_createtable(L, 0, 2);
      lua_pushlstring(L, p, (size_t)(sp - p));
      lua_setfield(L, -2, "address");
      lua_pushlstring(L, sp + 1, (size_t)(nl - sp - 1));
      lua_setfield(L, -2, "errno");
      lua_rawseti(L, -2, ++i);
      if (!common) { common = sp + 1; common_len = (size_t)(nl - sp - 1); }
      else if ((size_t)(nl - sp - 1) != common_len || memcmp(common, sp + 1, common_len)) same = 0;
    }
    p = nl + 1;
  }
  lua_setfield(L, -2, "errors");
  if (common && same) {
    lua_pushlstring(L, common, common_len);
    lua_setfield(L, -2, "errno");
  }
}

/* Pushes what an operation (send: a send) returns to Lua, from its C result:
** true (an operation), the result table (a send), or nil, message, info. */
static int push_outcome(lua_State *L, lconn *u, const mh_client_result *r, int send, int brief) {
  if (r->rc >= 0) {
    if (!send) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (brief && r->nrcpt > 0) {   /* the usual outcome, as one integer: four tables fewer */
      size_t i = 0;
      while (i < r->nrcpt && r->rcpts[i].accepted) i++;
      if (i == r->nrcpt) { lua_pushinteger(L, (lua_Integer)i); return 1; }
    }
    lua_newtable(L);
    push_rcpts(L, r->rcpts, r->nrcpt);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "smtp");
    set_str(L, "enhanced", r->enhanced);
    set_str(L, "text", r->text);
    lua_setfield(L, -2, "reply");
    return 1;
  }
  mh_l_fail(L, r->rc, r->stage ? r->stage : "connect", "%s", r->msg);
  if (r->code) {
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "smtp");
    if (r->enhanced[0]) set_str(L, "enhanced", r->enhanced);
    set_str(L, "text", r->text);
    set_str(L, "class", r->code >= 500 ? "permanent" : "transient");
  }
  if (r->rc == MH_ETOOBIG || r->rc == MH_EBADADDR || r->rc == MH_E8BIT) set_str(L, "class", "permanent");
  set_bool(L, "connection", r->closed);
  if (!send && r->plain_smtp) set_bool(L, "plain_smtp", 1);
  if (r->causes[0]) push_causes(L, r->causes);
  if (r->waited) {
    set_str(L, "waited", r->waited);
    if (!send && r->tls_probe) set_bool(L, "tls_probe", 1);
  }
  if (!send && r->why != MH_CLIENT_WHY_NONE) {
    set_str(L, "why", r->why == MH_CLIENT_WHY_TLS_VERSION ? "tls_version" : "tls_closed");
    if (r->tls_reason && *r->tls_reason) set_str(L, "tls_reason", r->tls_reason);
    set_str(L, "server", mh_client_host(u->c));
    lua_pushinteger(L, mh_client_port(u->c));
    lua_setfield(L, -2, "port");
  }
  if (send) push_rcpts(L, r->rcpts, r->nrcpt);
  return 3;
}

/* Pushes the finished operation's outcome (send = 0), or the oldest send's
** (send = 1: what c:send returns; brief: see c:result), and forgets it. */
static int pop_outcome(lua_State *L, lconn *u, int send, int brief) {
  int n;
  mh_client_result_free(&u->held);   /* one whose push raised */
  if (send) mh_client_result_take(u->c, &u->held);
  else mh_client_op_take(u->c, &u->held);
  n = push_outcome(L, u, &u->held, send, brief);
  mh_client_result_free(&u->held);
  return n;
}

/* wake's push: the outcome the waiter was waiting for */
typedef struct { lconn *u; int send; } wake_arg;

static int wake_push(lua_State *L, void *arg) {
  wake_arg *a = (wake_arg *)arg;
  return pop_outcome(L, a->u, a->send, a->u->brief);
}

/* Resumes the waiting task when what it waits for has ended.  From a loop
** callback: the outcome is pushed as a protected call (mh_wait_deliver), so a
** refused allocation (a rule's memory budget, while its blocking wait runs
** the loop) resumes the waiter with nil and the error instead of unwinding
** through uv_run (a Lua panic where no pcall is above the loop). */
static void wake(lconn *u) {
  int kind = u->waiting;
  wake_arg a;
  if (!kind || !u->c) return;
  if (kind == WAIT_OP ? !mh_client_op_done(u->c) : !mh_client_result_ready(u->c)) return;
  u->waiting = WAIT_NONE;
  a.u = u;
  a.send = kind != WAIT_OP;
  mh_wait_deliver(&u->w, wake_push, &a);
}

/* The client's notify: from a loop callback. */
static void notify(void *ud) { wake((lconn *)ud); }

/* ---------------------------------------------------------- Lua side */

static lconn *check_lconn(lua_State *L) {
  lconn *u = (lconn *)mh_l_checkself(L, 1, CONN_MT);
  if (!u->c) luaL_error(L, "SMTP session is closed");
  return u;
}

/* The task was interrupted (Ctrl-C, its rule's budget): the connection goes. */
static void cancel_cb(mh_wait *w) {
  lconn *u = (lconn *)w;   /* w is the first member */
  u->waiting = WAIT_NONE;
  if (u->c) mh_client_close(u->c);
}

/* A duration in seconds; absent or 0: def.  Negative, NaN, infinite or past a
** year is refused: converted to milliseconds it was a silent other value
** (a negative one, the default; 1e300 or NaN, whatever the cast made of it). */
#define MAX_SECONDS 31536000.0
static uint64_t opt_ms(lua_State *L, const char *k, double def) {
  double v;
  lua_getfield(L, 1, k);
  v = mh_l_optfield_number(L, -1, "smtp.new", k, def);
  if (!(v >= 0 && v <= MAX_SECONDS))
    mh_l_field_error(L, -1, "smtp.new", k, "seconds from 0 (the default) up to 31536000 (a year)");
  lua_pop(L, 1);
  if (v == 0) v = def;
  return (uint64_t)(v * 1000.0);
}

/* Copied whole or refused (mh_l_field_cstring): a host cut to fit is
** another host, a ca_file cut is another file. */
static void opt_str(lua_State *L, const char *k, char *dst, size_t cap, const char *def) {
  const char *v;
  lua_getfield(L, 1, k);
  v = mh_l_optfield_cstring(L, -1, "smtp.new", k, cap - 1, def);
  snprintf(dst, cap, "%s", v ? v : "");
  lua_pop(L, 1);
}

/* new(opts) -> connection object (nothing happens until :open()) */
static int l_new(lua_State *L) {
  static const char *const modes[] = { "none", "implicit", "starttls", "opportunistic", "auto" };
  static const int mode_of[] = { MH_CLIENT_TLS_NONE, MH_CLIENT_TLS_IMPLICIT, MH_CLIENT_TLS_STARTTLS,
                                 MH_CLIENT_TLS_OPPORTUNISTIC, MH_CLIENT_TLS_AUTO };
  mh_client_params p;
  char host[MH_CLIENT_HOST_MAX + 1], helo[MH_CLIENT_HELO_MAX + 1], ca_file[MH_CLIENT_CA_FILE_MAX + 1];
  char fingerprint[MH_CLIENT_FINGERPRINT_MAX + 1], min_version[MH_CLIENT_MIN_VERSION_MAX + 1];
  lconn *u;
  size_t i;
  static const char *const known[] = { "host", "port", "tls", "tls_required", "helo", "ca_file", "fingerprint",
    "min_version", "verify", "connect_timeout", "session_deadline", "greeting_wait", "command_timeout",
    "data_timeout", NULL };
  mh_l_arg_type(L, 1, "options", LUA_TTABLE);
  mh_l_check_nargs(L, 1, "smtp.new");
  mh_l_check_options(L, 1, "smtp.new", known);
  memset(&p, 0, sizeof p);
  opt_str(L, "host", host, sizeof host, NULL);
  if (!*host) return luaL_error(L, "smtp.new: host missing (a host name or address is required)");
  p.host = host;
  lua_getfield(L, 1, "port");
  {
    lua_Integer port = mh_l_optfield_integer(L, -1, "smtp.new", "port", 25);
    if (port < 1 || port > 65535) mh_l_field_error(L, -1, "smtp.new", "port", "1-65535");
    p.port = (int)port;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "tls");
  {
    /* compared whole: "none\0..." is no mode */
    size_t len;
    const char *tlsm = mh_l_optfield_string(L, -1, "smtp.new", "tls", NULL);
    if (!tlsm) tlsm = "starttls", len = 8;
    else lua_tolstring(L, -1, &len);
    for (i = 0; i < sizeof modes / sizeof modes[0] && (strlen(modes[i]) != len || memcmp(tlsm, modes[i], len)); i++) {}
    if (i == sizeof modes / sizeof modes[0])
      return luaL_error(L, "smtp.new: tls must be auto, implicit, starttls, opportunistic or none (got '%s')", tlsm);
  }
  lua_pop(L, 1);
  p.tls = mode_of[i];
  lua_getfield(L, 1, "tls_required");
  p.tls_required = lua_toboolean(L, -1);
  lua_pop(L, 1);
  opt_str(L, "helo", helo, sizeof helo, "localhost");
  opt_str(L, "ca_file", ca_file, sizeof ca_file, NULL);
  opt_str(L, "fingerprint", fingerprint, sizeof fingerprint, NULL);
  opt_str(L, "min_version", min_version, sizeof min_version, "1.2");
  p.helo = helo;
  p.ca_file = ca_file;
  p.fingerprint = fingerprint;
  p.min_version = min_version;
  lua_getfield(L, 1, "verify");
  p.verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  p.connect_ms = opt_ms(L, "connect_timeout", 30);
  p.deadline_ms = opt_ms(L, "session_deadline", 900);
  p.greeting_wait_ms = opt_ms(L, "greeting_wait", 1.5);
  p.command_ms = opt_ms(L, "command_timeout", 300);
  p.data_ms = opt_ms(L, "data_timeout", 600);
  p.loop = mh_l_loop(L);   /* the loop of this state (each state has its own) */
  p.notify = notify;
  u = (lconn *)lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, CONN_MT);
  p.ud = u;
  if (!(u->c = mh_client_new(&p)))   /* every string was checked: out of memory */
    return luaL_error(L, "smtp.new: %s", strerror(errno));
  return 1;
}

/* Common start of an operation: the task may wait (raises otherwise), one at a time. */
static void begin(lua_State *L, lconn *u, const char *what) {
  if (u->waiting) luaL_error(L, "%s: another operation is in progress on this session", what);
  mh_wait_init(L, &u->w, what);
  u->w.cancel = cancel_cb;
  u->op = what;
}

/* Ends an operation's start: the outcome at once when it already ended, else wait. */
static int wait_op(lua_State *L, lconn *u) {
  if (mh_client_op_done(u->c)) return pop_outcome(L, u, 0, 0);
  u->waiting = WAIT_OP;
  return mh_wait_yield(L, &u->w);
}

static int l_open(lua_State *L) {
  lconn *u = check_lconn(L);
  if (!mh_client_can_open(u->c))
    return luaL_error(L, "smtp open: the session was already opened");
  begin(L, u, "smtp open");
  mh_client_open(u->c);
  return wait_op(L, u);
}

/* Every operation but open needs a usable session: else nil, message, info. */
static int not_ready(lua_State *L, lconn *u, const char *what) {
  if (mh_client_alive(u->c)) return 0;
  lua_pushnil(L);
  lua_pushfstring(L, "%s: the SMTP session is not usable (%s)", what,
                  *mh_client_errmsg(u->c) ? mh_client_errmsg(u->c) : "closed");
  lua_createtable(L, 0, 4);
  set_str(L, "code", "ECONNECT");
  set_str(L, "class", "transient");
  set_str(L, "stage", "connect");
  set_bool(L, "connection", 1);
  return 1;
}

static int l_auth(lua_State *L) {
  lconn *u = check_lconn(L);
  const char *mech = mh_l_field_string(L, 2, "smtp auth", "mechanism");
  const char *user = mh_l_field_string(L, 3, "smtp auth", "user");
  const char *secret = mh_l_field_string(L, 4, "smtp auth", "secret");
  unsigned m = !strcasecmp(mech, "plain") ? MH_SMTP_AUTH_PLAIN : !strcasecmp(mech, "login") ? MH_SMTP_AUTH_LOGIN
             : !strcasecmp(mech, "xoauth2") ? MH_SMTP_AUTH_XOAUTH2
             : !strcasecmp(mech, "oauthbearer") ? MH_SMTP_AUTH_OAUTHBEARER
             : !strcasecmp(mech, "cram-md5") ? MH_SMTP_AUTH_CRAM_MD5 : 0;
  if (!m) luaL_error(L, "smtp auth: mechanism must be plain, login, cram-md5, xoauth2 or oauthbearer (got '%s')", mech);
  if (not_ready(L, u, "smtp auth")) return 3;
  begin(L, u, "smtp auth");
  mh_client_auth(u->c, m, user, secret);
  return wait_op(L, u);
}

/* mask(user, secret) -> true: the credentials are masked in every reply from
** the greeting on (smtp.h: mh_smtp_mask); before open, never waits. */
static int l_mask(lua_State *L) {
  lconn *u = check_lconn(L);
  const char *user = mh_l_field_string(L, 2, "smtp mask", "user");
  const char *secret = mh_l_field_string(L, 3, "smtp mask", "secret");
  mh_l_check_nargs(L, 3, "smtp mask");
  if (mh_client_mask(u->c, user, secret) < 0) return luaL_error(L, "smtp mask: out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

/* A descriptor held while the Lua API is called (submit_file's file): in a
** box (mh_l_box), closed as the call returns or an error unwinds it, unless
** it was handed on (open = 0).  Zeroed: no descriptor. */
typedef struct {
  int open;          /* fd is ours to close */
  int fd;
} fdbox;

static void fdbox_release(void *p) {
  fdbox *b = (fdbox *)p;
  if (b->open) close(b->fd);
  b->open = 0;
}

/* Submits one send (arguments 2..4: from, {rcpt...}, data, or fb's file);
** its outcome joins the queue that c:result() reads.  Never waits.  fb (or
** NULL): the file's box, whose descriptor the engine takes when the send is
** submitted; a raise before (a recipient of the wrong type, a __len that
** raises, a list refused under a rule's memory budget) leaves it to the box,
** and a send refused at once too. */
static void submit(lua_State *L, lconn *u, const char *what, fdbox *fb, uint64_t off, uint64_t size) {
  mh_client *c = u->c;
  int fd = fb ? fb->fd : -1;
  size_t fromlen, len = 0, n;
  const char *from = mh_l_field_lstring(L, 2, what, "sender", &fromlen);
  const char *data = NULL;
  int handle = 0;   /* data is a SpoolData handle's (hd): taken (freed) once submitted */
  void *hd = NULL;
  const char **rcpt;
  const char *nul = fromlen != strlen(from) ? from : NULL;   /* an address cut short by a NUL */
  if (!lua_istable(L, 3)) mh_l_field_error(L, 3, what, "recipients", "a table");
  /* data: a string, or a spool entry's data handle (l_spool.h), alive on the stack */
  if (fd < 0 && (handle = l_spool_data(L, 4, &data, &len, &hd)) < 0)
    luaL_error(L, "%s: data: this SpoolData handle was submitted already (its bytes went with it: load the "
                  "message again)", what);
  if (fd < 0 && !handle) data = mh_l_field_lstring(L, 4, what, "data", &len);
  n = (size_t)luaL_len(L, 3);
  if ((u->waiting && u->waiting != WAIT_SEND) || mh_client_busy(c))
    luaL_error(L, "%s: another operation is in progress on this session", what);
  if (mh_client_pending(c) >= MH_CLIENT_MAX_SENDS)
    luaL_error(L, "%s: %d sends are outstanding already (collect one with result())", what, MH_CLIENT_MAX_SENDS);
  /* the list: on the C stack for the usual few recipients (a userdata per
  ** message was an allocation for the collector), else freed by the GC */
  const char *few[16];
  int boxed = n > sizeof few / sizeof *few;
  rcpt = boxed ? (const char **)lua_newuserdatauv(L, n * sizeof *rcpt, 0) : few;
  for (size_t i = 0; i < n; i++) {
    size_t rl;
    lua_rawgeti(L, 3, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) {   /* a number converted here would be no item of the table */
      char item[40];
      snprintf(item, sizeof item, "recipients[%zu]", i + 1);
      mh_l_field_error(L, -1, what, item, "a string");
    }
    rcpt[i] = lua_tolstring(L, -1, &rl);
    if (!nul && rl != strlen(rcpt[i])) nul = rcpt[i];
    lua_pop(L, 1);   /* the string stays alive in the table */
  }
  if (!mh_client_can_submit(c)) {
    char msg[700];
    snprintf(msg, sizeof msg, "%s: the SMTP session is not usable (%s)", what,
             *mh_client_errmsg(c) ? mh_client_errmsg(c) : "closed");
    mh_client_refuse(c, MH_ECONNECT, "connect", msg, 1);
  } else if (nul) {
    /* the engine sees C strings: "a@x\0RCPT TO:<y>" would reach it as "a@x" */
    char msg[300];
    snprintf(msg, sizeof msg, "invalid %s address: a NUL byte in '%.100s...'",
             nul == from ? "sender" : "recipient", nul);
    mh_client_refuse(c, MH_EBADADDR, nul == from ? "mail" : "rcpt", msg, 0);
  } else if (fd >= 0) {
    fb->open = 0;   /* the engine's from here */
    mh_client_submit_file(c, from, rcpt, n, fd, off, size);
  } else {
    mh_client_submit(c, from, rcpt, n, data, len);   /* (copies the data) */
  }
  if (handle) l_spool_data_take(hd);
  if (boxed) lua_pop(L, 1);   /* rcpt */
}

/* The oldest outcome; waits for it.  Releases the gate first: the caller has
** settled the previous message, so the next one's data may leave. */
static int collect(lua_State *L, lconn *u, const char *what, int brief) {
  if (!mh_client_pending(u->c)) luaL_error(L, "%s: no send is outstanding on this session", what);
  if (u->waiting) luaL_error(L, "%s: another task is waiting on this session", what);
  /* asking for a result not in yet means the ones before were settled */
  mh_client_release(u->c);
  if (mh_client_result_ready(u->c)) return pop_outcome(L, u, 1, brief);
  mh_wait_init(L, &u->w, what);
  u->w.cancel = cancel_cb;
  u->op = what;
  u->waiting = WAIT_SEND;
  u->brief = brief;
  return mh_wait_yield(L, &u->w);
}

/* c:send(from, {rcpt...}, data) -> result | nil, err, info   (waits) */
static int l_send(lua_State *L) {
  lconn *u = check_lconn(L);
  size_t n = mh_client_pending(u->c);
  if (n) luaL_error(L, "smtp send: %d submitted send(s) not collected (use result())", (int)n);
  submit(L, u, "smtp send", NULL, 0, 0);
  return collect(L, u, "smtp send", 0);
}

/* c:set_dsn([mail [, {rcpt params...}]]): the RFC 3461 parameters of the next
** send or submit (mh_client_set_dsn: sent only where the server offers DSN);
** the list is parallel to that send's recipients.  Without arguments: none.
** Never waits. */
static int l_set_dsn(lua_State *L) {
  lconn *u = check_lconn(L);
  const char *mail = mh_l_optfield_string(L, 2, "smtp set_dsn", "mail", NULL);
  const char **rp = NULL;
  size_t n = 0;
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_istable(L, 3)) mh_l_field_error(L, 3, "smtp set_dsn", "recipient parameters", "a table");
    n = (size_t)luaL_len(L, 3);
    rp = (const char **)lua_newuserdatauv(L, (n ? n : 1) * sizeof *rp, 0);   /* freed by the GC */
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 3, (lua_Integer)i + 1);
      rp[i] = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;   /* false: none */
      lua_pop(L, 1);   /* the string stays alive in the table */
    }
  }
  if (mh_client_set_dsn(u->c, mail, rp, n) < 0) return luaL_error(L, "out of memory");
  return 0;
}

/* c:submit(from, {rcpt...}, data) -> true   (never waits; c:result() tells) */
static int l_submit(lua_State *L) {
  lconn *u = check_lconn(L);
  submit(L, u, "smtp submit", NULL, 0, 0);
  wake(u);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:submit_file(from, {rcpt...}, path [, offset [, size]]) -> true | nil, err, info
** (never waits).  As submit, for a message read from its file while it is sent,
** one piece at a time (memory stays at 64 KiB whatever its size).  nil when
** the file cannot be opened: nothing was submitted.  size: the file's size
** when it was loaded (the deliverer's entry); a file of another size is not
** the one loaded (another file renamed over its name since: sent from the
** loaded offset, its envelope's last lines went as the message's first and
** its end under the loaded recipients), so nil, nothing submitted. */
static int l_submit_file(lua_State *L) {
  lconn *u = check_lconn(L);
  const char *path = mh_l_field_cstring(L, 4, "smtp submit_file", "path", PATH_MAX - 1);
  lua_Integer off = mh_l_optfield_integer(L, 5, "smtp submit_file", "offset", 0);
  lua_Integer want = mh_l_optfield_integer(L, 6, "smtp submit_file", "size", -1);
  struct stat st;
  int fd;
  fdbox *fb;
  if (off < 0) mh_l_field_error(L, 5, "smtp submit_file", "offset", ">= 0");
  /* checked before the file opens */
  mh_l_field_string(L, 2, "smtp submit_file", "sender");
  if (!lua_istable(L, 3)) mh_l_field_error(L, 3, "smtp submit_file", "recipients", "a table");
  /* the file is held in a box from its open: what submit reads and pushes
     after it may raise (a descriptor in a C local was lost then, one per call) */
  lua_settop(L, 6);
  fb = (fdbox *)mh_l_box(L, sizeof *fb, fdbox_release);
  /* a spool file: opened by fsutil's rule (regular, never a FIFO or a link) */
  fd = mh_fsutil_open(AT_FDCWD, path, O_RDONLY, 0, 0, &st);
  if (fd < 0)
    return mh_l_fail(L, fd == -ENOENT ? MH_ENOTFOUND : fd, "data", "%s: %s", path, mh_strerror(fd));
  fb->fd = fd;
  fb->open = 1;
  if (want >= 0 && (uint64_t)st.st_size != (uint64_t)want)   /* (the box closes fd) */
    return mh_l_fail(L, MH_ECORRUPT, "data", "%s: changed since it was loaded (%I bytes, now %I): not sent",
                     path, want, (lua_Integer)st.st_size);
  if ((uint64_t)st.st_size < (uint64_t)off)
    return mh_l_fail(L, MH_EINVAL, "data", "%s: offset %lld past its end", path, (long long)off);
  submit(L, u, "smtp submit", fb, (uint64_t)off, (uint64_t)st.st_size - (uint64_t)off);
  wake(u);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:result([brief]) -> what c:send returns, for the oldest submitted send
** (waits).  brief: when every recipient took the message, their number (an
** integer) instead of the result table; any other outcome as without it.  For
** the deliverer's usual message, whose reply text nothing reads. */
static int l_result(lua_State *L) {
  lconn *u = check_lconn(L);
  return collect(L, u, "smtp result", lua_toboolean(L, 2));
}

/* c:release(): every outcome collected so far is settled: the oldest send
** outstanding may send its data now (result() does this too).  Called after
** submitting the next message, the data leaves with that one's commands. */
static int l_release(lua_State *L) {
  lconn *u = check_lconn(L);
  mh_client_release(u->c);
  wake(u);
  return 0;
}

/* c:pending() -> number of submitted sends whose outcome was not collected */
static int l_pending(lua_State *L) {
  lconn *u = check_lconn(L);
  lua_pushinteger(L, (lua_Integer)mh_client_pending(u->c));
  return 1;
}

static int l_check_sender(lua_State *L) {
  lconn *u = check_lconn(L);
  const char *from = mh_l_field_string(L, 2, "smtp check_sender", "sender");
  const char *rcpt = lua_isnoneornil(L, 3) ? NULL : mh_l_field_string(L, 3, "smtp check_sender", "recipient");
  if (not_ready(L, u, "smtp check_sender")) return 3;
  begin(L, u, "smtp check_sender");
  mh_client_check_sender(u->c, from, rcpt);
  return wait_op(L, u);
}

static int l_quit(lua_State *L) {
  lconn *u = check_lconn(L);
  if (!mh_client_alive(u->c)) {
    mh_client_close(u->c);
    lua_pushboolean(L, 1);
    return 1;
  }
  begin(L, u, "smtp quit");
  mh_client_quit(u->c);
  return wait_op(L, u);
}

static int l_alive(lua_State *L) {
  lconn *u = check_lconn(L);
  lua_pushboolean(L, mh_client_alive(u->c));
  return 1;
}

/* Idempotent: __gc, __close and :close(). */
static int l_close(lua_State *L) {
  lconn *u = (lconn *)luaL_checkudata(L, 1, CONN_MT);
  mh_client *c = u->c;
  if (!c) return 0;
  /* another task waiting on this session: its wait ends with the library's
     failure, naming the operation and its stage (it raised "interrupted",
     which said neither what happened nor where) */
  if (u->waiting && u->w.task) {
    lua_State *co = mh_wait_co(&u->w);
    if (co) {
      const char *op = u->op ? u->op : "smtp";
      const char *stage = !strcmp(op, "smtp open") ? "connect" : !strcmp(op, "smtp auth") ? "auth"
                        : !strcmp(op, "smtp check_sender") ? "mail" : !strcmp(op, "smtp quit") ? "quit" : "data";
      mh_l_fail(co, MH_ECANCELED, stage, "%s: session closed (c:close() while this task waited)", op);
      set_bool(co, "connection", 1);
      mh_wait_resume_later(&u->w, 3);
    }
  }
  u->waiting = WAIT_NONE;
  u->c = NULL;
  mh_client_free(c);
  mh_client_result_free(&u->held);
  return 0;
}

static int l_info(lua_State *L) {
  lconn *u = check_lconn(L);
  mh_client *c = u->c;
  const mh_smtp *s = mh_client_session(c);
  const mh_smtp_caps *caps = mh_smtp_get_caps(s);
  mh_tls_info ti;
  const char *tls_err;
  lua_newtable(L);
  set_str(L, "server", mh_client_host(c));
  set_str(L, "address", mh_client_address(c));
  lua_pushinteger(L, mh_client_port(c));
  lua_setfield(L, -2, "port");
  set_str(L, "security", mh_client_security(c));
  set_str(L, "helo", mh_client_helo(c));
  set_bool(L, "esmtp", mh_smtp_used_ehlo(s));
  if (mh_smtp_ehlo_refused(s)) set_str(L, "ehlo_refused", mh_smtp_ehlo_refused(s));
  if (mh_client_tls_info(c, &ti, &tls_err)) {
    if (strcmp(mh_client_security(c), "none") != 0) {
      set_str(L, "tls_version", ti.version);
      set_str(L, "cipher", ti.cipher);
    }
    lua_createtable(L, 0, 8);
    set_str(L, "subject", ti.subject);
    set_str(L, "names", ti.names);
    set_str(L, "issuer", ti.issuer);
    set_str(L, "not_after", ti.not_after);
    set_str(L, "fingerprint", ti.fingerprint);
    set_bool(L, "verified", ti.verified);
    set_str(L, "result", ti.verify_result);
    if (!ti.verified && *tls_err) set_str(L, "error", tls_err);
    lua_setfield(L, -2, "cert");
  }
  /* capabilities: keywords as the server sent them */
  lua_newtable(L);
  {
    const char *p = caps->list;
    int i = 0;
    while (*p) {
      const char *e = strchr(p, ' ');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      lua_pushlstring(L, p, n);
      lua_rawseti(L, -2, ++i);
      p += n;
      while (*p == ' ') p++;
    }
  }
  lua_setfield(L, -2, "capabilities");
  lua_newtable(L);
  {
    static const struct { unsigned bit; const char *name; } mechs[] = {
      { MH_SMTP_AUTH_OAUTHBEARER, "oauthbearer" }, { MH_SMTP_AUTH_XOAUTH2, "xoauth2" },
      { MH_SMTP_AUTH_PLAIN, "plain" }, { MH_SMTP_AUTH_LOGIN, "login" }, { MH_SMTP_AUTH_CRAM_MD5, "cram-md5" } };
    int i = 0;
    for (size_t k = 0; k < sizeof mechs / sizeof mechs[0]; k++)
      if (caps->auth & mechs[k].bit) { lua_pushstring(L, mechs[k].name); lua_rawseti(L, -2, ++i); }
  }
  lua_setfield(L, -2, "auth_offered");
  set_bool(L, "pipelining", (caps->flags & MH_SMTP_CAP_PIPELINING) != 0);
  set_bool(L, "starttls_offered", mh_client_starttls_offered(c));
  if (mh_client_greeting_ms(c)) {   /* seconds the plain-text greeting took */
    lua_pushnumber(L, (lua_Number)mh_client_greeting_ms(c) / 1000.0);
    lua_setfield(L, -2, "greeting_after");
  }
  set_bool(L, "eightbitmime", (caps->flags & MH_SMTP_CAP_8BITMIME) != 0);
  set_bool(L, "smtputf8", (caps->flags & MH_SMTP_CAP_SMTPUTF8) != 0);
  set_bool(L, "chunking", (caps->flags & MH_SMTP_CAP_CHUNKING) != 0);   /* BDAT is used */
  if (caps->size) { lua_pushinteger(L, (lua_Integer)caps->size); lua_setfield(L, -2, "size"); }
  set_str(L, "state", mh_smtp_state_name(mh_smtp_get_state(s)));
  return 1;
}

static int l_tostring(lua_State *L) {
  lconn *u = (lconn *)luaL_checkudata(L, 1, CONN_MT);
  if (!u->c) lua_pushstring(L, "mailhook.SmtpConn (closed)");
  else lua_pushfstring(L, "mailhook.SmtpConn(%s:%d, %s)", mh_client_host(u->c), mh_client_port(u->c),
                       mh_smtp_state_name(mh_smtp_get_state(mh_client_session(u->c))));
  return 1;
}

void l_smtp_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "open", l_open }, { "mask", l_mask }, { "auth", l_auth }, { "send", l_send }, { "submit", l_submit }, { "set_dsn", l_set_dsn },
    { "submit_file", l_submit_file }, { "result", l_result }, { "release", l_release },
    { "pending", l_pending }, { "check_sender", l_check_sender },
    { "quit", l_quit }, { "alive", l_alive }, { "close", l_close }, { "info", l_info }, { NULL, NULL } };
  mh_l_newclass(L, CONN_MT, methods, l_close, l_tostring);
  lua_newtable(L);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "smtp");
}
