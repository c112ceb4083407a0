/*
** l_maildrop.c — core.maildrop: unprivileged submission (runtime/maildrop.c,
** the setgid runtime/drop.c) for Lua, and who the caller is.
**
**   core.maildrop.whoami() -> {uid, euid, gid, login, name}   (the kernel's ids;
**                             login and name from the password database)
**   core.maildrop.owner(path) -> uid | nil      core.maildrop.login(uid) -> name | nil
**   core.maildrop.submit({drop, args...}, source) -> exit status | nil, err, info
**       (waits) runs the drop program with the message on its stdin: source is
**       a string, or a core.spool Stream (read as it is written; its head set)
**   core.maildrop.list(spool [, stale_age]) -> {names}, {stale t. names}
**       | false (no maildrop/) | nil, err, info    (waits)
**   core.maildrop.open(spool, name) -> record, fd | nil, err, info   (waits)
**       record = {uid, gid, pid, time, from, to = {...}, notify, ret, envid, size, offset
**                 (where the message starts in the file),
**                 left = {{item =, why =}...} or nil: the items sendmail left out}
**       fd: the file at its message (core.spool.stream(fd, {dot = false}));
**       close it with core.maildrop.close(fd)
**   core.maildrop.done(spool, name [, corrupt [, as]]) -> true | nil, err, info  (waits)
**       as: the name it had before aside() (corrupt/maildrop.AS)
**   core.maildrop.remove(spool, name) -> true | nil, err, info  (waits)
**       `queue rm`: unlinks it; info.code ENOTFOUND when it is not there
**   core.maildrop.aside(spool, name, id, fd) -> aside name | nil, err, info  (waits)
**       renames the open file to ID.adopted before its copy is made (maildrop.h)
**   core.maildrop.watch(dir, fn) -> Watch (:stop()): fn() as a task when a
**       file appears in dir (bursts coalesced)
*/
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "l_sched.h"
#include "l_watch.h"
#include "error.h"
#include "intake.h"
#include "privdrop.h"
#include "maildrop.h"
#include "privdrop.h"


/* A core.spool Stream userdata holds its mh_intake * as its first member
** (runtime/l_spool.c, INTERFACES.md): taken here, the stream is used up. */
#define STREAM_MT "mailhook.SpoolStream"

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* whoami() */
static int l_whoami(lua_State *L) {
  /* uid, login, name: the caller's (root's, when root works as the spool's
  ** owner: privdrop.h); euid, elogin: who this process acts as */
  uid_t uid = (uid_t)mh_privdrop_caller();
  struct passwd *pw;
  lua_createtable(L, 0, 6);
  pw = getpwuid(geteuid());
  if (pw) set_str(L, "elogin", pw->pw_name);
  pw = getpwuid(uid);
  lua_pushinteger(L, (lua_Integer)uid); lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)geteuid()); lua_setfield(L, -2, "euid");
  lua_pushinteger(L, (lua_Integer)getgid()); lua_setfield(L, -2, "gid");
  if (pw) {
    char name[256];
    size_t n = strcspn(pw->pw_gecos ? pw->pw_gecos : "", ",");
    set_str(L, "login", pw->pw_name);
    snprintf(name, sizeof name, "%.*s", (int)n, pw->pw_gecos ? pw->pw_gecos : "");
    if (name[0]) set_str(L, "name", name);
  }
  return 1;
}

/* owner(path) -> uid | nil */
static int l_owner(lua_State *L) {
  struct stat st;
  if (stat(mh_l_arg_path(L, 1, "path"), &st) < 0) return 0;
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  return 1;
}

/* login(uid) -> name | nil */
static int l_login(lua_State *L) {
  struct passwd *pw = getpwuid((uid_t)mh_l_arg_integer(L, 1, "uid"));
  if (!pw) return 0;
  lua_pushstring(L, pw->pw_name);
  return 1;
}

/* -------------------------------------------------------- thread-pool ops */

enum { OP_SUBMIT, OP_LIST, OP_OPEN, OP_DONE, OP_REMOVE, OP_ASIDE };

typedef struct {
  int kind;
  int rc;
  char err[MH_DROP_ERRLEN];
  char *spool, *name;
  /* submit */
  char **argv;
  mh_intake *in;          /* a Stream's reader (ours now), or NULL */
  const char *data;       /* or bytes (anchored) */
  size_t len;
  int status;
  /* list */
  char **names, **stale;
  size_t n, nstale;
  long long stale_age;
  int absent;
  /* open / done */
  mh_drop_rec rec;
  int fd;
  int corrupt;
  /* aside */
  char id[20], aside[256];   /* aside: its new name; done: the name it came under */
  int afd;                /* the caller's descriptor (not ours to close) */
  lua_State *main;
  int anchor;
} op;

static int write_bytes(void *arg, int fd) {
  op *o = (op *)arg;
  size_t off = 0;
  while (off < o->len) {
    ssize_t w = write(fd, o->data + off, o->len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? -errno : -EIO;
    off += (size_t)w;
  }
  return 0;
}

static int write_stream(void *arg, int fd) { return mh_intake_write(((op *)arg)->in, fd); }

static void op_work(void *arg) {
  op *o = (op *)arg;
  switch (o->kind) {
  case OP_SUBMIT:
    o->rc = mh_maildrop_submit((const char *const *)o->argv, o->in ? write_stream : write_bytes, o,
                               &o->status, o->err);
    /* a read error of the stream (sendmail's stdin) is the reason, not the pipe */
    if (o->in && mh_intake_error(o->in) && o->rc < 0)
      snprintf(o->err, sizeof o->err, "reading the message: %s", mh_strerror(mh_intake_error(o->in)));
    break;
  case OP_LIST:
    o->rc = mh_maildrop_list(o->spool, &o->names, &o->n, (int64_t)o->stale_age, &o->stale, &o->nstale);
    if (o->rc == 1) { o->absent = 1; o->rc = 0; }
    if (o->rc < 0) snprintf(o->err, sizeof o->err, "%s/maildrop: %s", o->spool, mh_strerror(o->rc));
    break;
  case OP_OPEN:
    o->rc = mh_maildrop_open(o->spool, o->name, &o->rec, &o->fd, o->err);
    break;
  case OP_DONE:
    o->rc = mh_maildrop_done(o->spool, o->name, o->corrupt, o->aside[0] ? o->aside : NULL, o->err);
    break;
  case OP_REMOVE:
    o->rc = mh_maildrop_remove(o->spool, o->name, o->err);
    break;
  case OP_ASIDE:
    o->rc = mh_maildrop_aside(o->spool, o->name, o->id, o->afd, o->aside, o->err);
    break;
  }
}

static void push_list(lua_State *L, char **v, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int op_push(lua_State *co, void *arg) {
  op *o = (op *)arg;
  if (o->rc < 0) return mh_l_fail(co, o->rc, "maildrop", "%s", o->err[0] ? o->err : mh_strerror(o->rc));
  switch (o->kind) {
  case OP_SUBMIT:
    lua_pushinteger(co, o->status);
    return 1;
  case OP_LIST:
    if (o->absent) { lua_pushboolean(co, 0); return 1; }
    push_list(co, o->names, o->n);
    push_list(co, o->stale, o->nstale);
    return 2;
  case OP_OPEN:
    lua_createtable(co, 0, 10);
    lua_pushinteger(co, (lua_Integer)o->rec.uid); lua_setfield(co, -2, "uid");
    lua_pushinteger(co, (lua_Integer)o->rec.gid); lua_setfield(co, -2, "gid");
    lua_pushinteger(co, (lua_Integer)o->rec.pid); lua_setfield(co, -2, "pid");
    lua_pushinteger(co, (lua_Integer)o->rec.time); lua_setfield(co, -2, "time");
    lua_pushinteger(co, (lua_Integer)o->rec.size); lua_setfield(co, -2, "size");
    lua_pushinteger(co, (lua_Integer)o->rec.offset); lua_setfield(co, -2, "offset");
    set_str(co, "from", o->rec.from);
    set_str(co, "notify", o->rec.notify);
    set_str(co, "ret", o->rec.ret);
    set_str(co, "envid", o->rec.envid);
    push_list(co, o->rec.to, o->rec.nto);
    lua_setfield(co, -2, "to");
    if (o->rec.nleft) {   /* the items sendmail left out: {{item =, why =}...} */
      lua_createtable(co, (int)o->rec.nleft, 0);
      for (size_t i = 0; i < o->rec.nleft; i++) {
        lua_createtable(co, 0, 2);
        set_str(co, "item", o->rec.left_item[i]);
        set_str(co, "why", o->rec.left_why[i]);
        lua_rawseti(co, -2, (lua_Integer)i + 1);
      }
      lua_setfield(co, -2, "left");
    }
    lua_pushinteger(co, o->fd);
    o->fd = -1;   /* the caller's now */
    return 2;
  case OP_ASIDE:
    lua_pushstring(co, o->aside);
    return 1;
  default:
    lua_pushboolean(co, 1);
    return 1;
  }
}

static void op_done(void *arg) {
  op *o = (op *)arg;
  for (size_t i = 0; o->argv && o->argv[i]; i++) free(o->argv[i]);
  free(o->argv);
  mh_intake_free(o->in);
  for (size_t i = 0; i < o->n; i++) free(o->names[i]);
  for (size_t i = 0; i < o->nstale; i++) free(o->stale[i]);
  free(o->names);
  free(o->stale);
  mh_drop_rec_free(&o->rec);
  if (o->fd >= 0) close(o->fd);   /* opened but nobody took it (interrupted) */
  free(o->spool);
  free(o->name);
  if (o->anchor != LUA_NOREF) luaL_unref(o->main, LUA_REGISTRYINDEX, o->anchor);
  free(o);
}

static void op_release(void *p) {
  if (*(op **)p) op_done(*(op **)p);
}

/* A new op, owned by a box pushed on the stack (mh_l_box) until op_start
** hands it to mh_l_work: what is read after it (a path, a number made text, a
** registry ref) may raise, for misuse or for want of memory, and an op freed
** by hand before each luaL_error was lost at every other raise.  nargs: the
** function's arguments, the stack set to them first (the box above an absent
** argument would be read as that argument). */
static op **op_new(lua_State *L, int kind, int nargs) {
  lua_settop(L, nargs);
  op **ob = (op **)mh_l_box(L, sizeof *ob, op_release);
  op *o = (op *)calloc(1, sizeof *o);
  if (!o) luaL_error(L, "out of memory");
  o->kind = kind;
  o->fd = -1;
  o->anchor = LUA_NOREF;
  *ob = o;
  return ob;
}

/* Runs the op: mh_l_work's from here (it calls op_done, also when it raises). */
static int op_start(lua_State *L, op **ob, const char *what) {
  op *o = *ob;
  *ob = NULL;
  return mh_l_work(L, what, op_work, op_push, op_done, o);
}

/* Callbacks push and spawn on the state's callback thread (l_sched.h), never its main thread. */
static lua_State *main_state(lua_State *L) { return mh_l_cbstate(L); }

/* submit({drop, arg...}, source) */
static int l_submit(lua_State *L) {
  size_t n;
  op **ob, *o;
  mh_l_arg_type(L, 1, "arguments", LUA_TTABLE);
  n = (size_t)luaL_len(L, 1);
  if (n < 1) mh_l_arg_error(L, 1, "arguments", "a list, the drop program's path first");
  if (lua_type(L, 2) != LUA_TSTRING && !luaL_testudata(L, 2, STREAM_MT))
    return mh_l_arg_error(L, 2, "input", "a string or a core.spool Stream");
  ob = op_new(L, OP_SUBMIT, 2);
  o = *ob;
  if (!(o->argv = (char **)calloc(n + 1, sizeof *o->argv))) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    if (!lua_isstring(L, -1)) {
      char item[40];
      snprintf(item, sizeof item, "arguments[%zu]", i + 1);
      return mh_l_field_error(L, -1, "maildrop.submit", item, "a string");
    }
    if (!(o->argv[i] = strdup(lua_tostring(L, -1)))) return luaL_error(L, "out of memory");
    lua_pop(L, 1);
  }
  if (lua_type(L, 2) == LUA_TSTRING) {
    o->data = lua_tolstring(L, 2, &o->len);
    o->main = main_state(L);
    lua_pushvalue(L, 2);
    o->anchor = luaL_ref(L, LUA_REGISTRYINDEX);   /* the bytes live until done */
  } else {
    mh_intake **in = (mh_intake **)lua_touserdata(L, 2);
    if (!*in) return mh_l_arg_error(L, 2, "input", "a stream not closed nor used already");
    o->in = *in;
    *in = NULL;
  }
  return op_start(L, ob, "maildrop.submit");
}

/* list(spool [, stale_age = 86400]) */
static int l_list(lua_State *L) {
  op **ob = op_new(L, OP_LIST, 2), *o = *ob;
  o->stale_age = (long long)mh_l_optarg_integer(L, 2, "stale_age", 86400);
  if (!(o->spool = strdup(mh_l_arg_path(L, 1, "spool")))) return luaL_error(L, "out of memory");
  return op_start(L, ob, "maildrop.list");
}

/* open(spool, name) */
static int l_open(lua_State *L) {
  op **ob = op_new(L, OP_OPEN, 2), *o = *ob;
  if (!(o->spool = strdup(mh_l_arg_path(L, 1, "spool"))) || !(o->name = strdup(mh_l_arg_path(L, 2, "name"))))
    return luaL_error(L, "out of memory");
  return op_start(L, ob, "maildrop.open");
}

/* done(spool, name [, corrupt [, as]]) */
static int l_done(lua_State *L) {
  const char *as = mh_l_optarg_string(L, 4, "as", NULL);
  op **ob = op_new(L, OP_DONE, 4), *o = *ob;
  o->corrupt = lua_toboolean(L, 3);
  if (as) snprintf(o->aside, sizeof o->aside, "%s", as);
  if (!(o->spool = strdup(mh_l_arg_path(L, 1, "spool"))) || !(o->name = strdup(mh_l_arg_path(L, 2, "name"))))
    return luaL_error(L, "out of memory");
  return op_start(L, ob, "maildrop.done");
}

/* remove(spool, name) */
static int l_remove(lua_State *L) {
  op **ob = op_new(L, OP_REMOVE, 2), *o = *ob;
  if (!(o->spool = strdup(mh_l_arg_path(L, 1, "spool"))) || !(o->name = strdup(mh_l_arg_path(L, 2, "name"))))
    return luaL_error(L, "out of memory");
  return op_start(L, ob, "maildrop.remove");
}

/* aside(spool, name, id, fd) */
static int l_aside(lua_State *L) {
  size_t len;
  const char *id = mh_l_arg_lstring(L, 3, "id", &len);
  lua_Integer fd = mh_l_arg_integer(L, 4, "fd");
  op **ob, *o;
  if (len != 16) mh_l_arg_error(L, 3, "id", "a spool id (16 hex digits)");
  if (!(fd > 2 && fd <= 0x7fffffff)) mh_l_arg_error(L, 4, "fd", "a descriptor of core.maildrop.open");
  ob = op_new(L, OP_ASIDE, 4);
  o = *ob;
  memcpy(o->id, id, 17);
  o->afd = (int)fd;
  if (!(o->spool = strdup(mh_l_arg_path(L, 1, "spool"))) || !(o->name = strdup(mh_l_arg_path(L, 2, "name"))))
    return luaL_error(L, "out of memory");
  return op_start(L, ob, "maildrop.aside");
}

/* close(fd) */
static int l_close(lua_State *L) {
  lua_Integer fd = mh_l_arg_integer(L, 1, "fd");
  if (!(fd > 2 && fd <= 0x7fffffff)) mh_l_arg_error(L, 1, "fd", "a descriptor of core.maildrop.open");
  close((int)fd);
  return 0;
}

/* ------------------------------------------------------------------ watch */

/* Dot files and the drop program's temporary t.* files are not news. */
static int maildrop_skip(const char *name) { return name[0] == '.' || !strncmp(name, "t.", 2); }

/* watch(dir, fn) -> Watch | nil, err, info (l_watch.h) */
static int l_watch(lua_State *L) {
  return mh_l_watch(L, mh_l_arg_path(L, 1, "dir"), 2, maildrop_skip, "maildrop", "maildrop watch");
}

void l_maildrop_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "whoami", l_whoami }, { "owner", l_owner }, { "login", l_login }, { "submit", l_submit },
    { "list", l_list }, { "open", l_open }, { "done", l_done }, { "remove", l_remove }, { "close", l_close },
    { "aside", l_aside },
    { "watch", l_watch }, { NULL, NULL },
  };
  luaL_newlib(L, fns);
  /* the drop program's bound on recipients (maildrop.h), which the adoption
  ** applies to the items of a record's "to" lines (each an address list) */
  lua_pushinteger(L, MH_DROP_MAX_RCPT);
  lua_setfield(L, -2, "MAX_RCPT");
  lua_setfield(L, -2, "maildrop");
}
