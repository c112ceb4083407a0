/*
** l_msg.c — core.msg: the message builder of msg.c for Lua.
**
**   core.msg.build{from=, to=, cc=, bcc=, reply_to=, subject=, text=, html=,
**                  attachments = {{path=, type=, name=} | "path", ...},
**                  headers = {["X-Foo"] = "v"} | {{"X-Foo", "v"}, ...}, date = epoch}
**     -> Message | nil, err, info      (info.code "EBADADDR", info.field "to", ...)
**   msg:envelope() -> {from = "a@b", to = {"x@y", ...}}
**   msg:bytes() -> string     msg:id() -> "<...>"    msg:save(path) -> true | nil, err
**   core.msg.valid_address(s) -> true | nil, reason
**   core.msg.envelope_address(s) -> s without the root's dot of its domain
**   core.msg.type_for(filename) -> content type
**   core.msg.date([t]) -> RFC 5322 date     core.msg.new_id([domain]) -> "<...@domain>"
**
** Addresses: "a@b", "Name <a@b>", a comma-separated string of those, or
** {name = "Name", address = "a@b"}, or a list of any of these.
** Wrong argument types raise; bad values return nil, err, info.
** The userdata "mailhook.Message" holds the mh_msg * as its first member, so
** other bindings (l_spool.c) can take it with luaL_checkudata.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "l_sched.h"
#include "error.h"
#include "msg.h"
#include "fsutil.h"
#include "l_msg.h"

#define MSG_MT MH_MSG_MT

typedef struct {
  mh_msg *m;                /* the message; other bindings get it by l_msg_test() */
  int ready;                /* finished; until then u->m is only owned (freed by __gc
                               if a wrong argument raised half-way through build) */
  int held;                 /* jobs reading u->m (l_msg_hold): a close leaves m to them */
  int closing;              /* closed while held: the last release frees m */
} l_msg;

static l_msg *check_msg(lua_State *L, int idx) {
  l_msg *u = luaL_checkudata(L, idx, MSG_MT);
  if (!u->m || !u->ready) luaL_error(L, "message is closed");
  return u;
}

mh_msg *l_msg_test(lua_State *L, int idx, int *closed) {
  l_msg *u = luaL_testudata(L, idx, MSG_MT);
  *closed = u && (!u->m || !u->ready || u->closing);
  return u && !*closed ? u->m : NULL;
}

void *l_msg_hold(lua_State *L, int idx) {
  l_msg *u = luaL_testudata(L, idx, MSG_MT);
  if (u) u->held++;
  return u;
}

/* The userdata's memory outlives the job: anchored by it while the state
** lives, and freed by lua_close only after the context's last loop run. */
void l_msg_release(void *hold) {
  l_msg *u = (l_msg *)hold;
  if (!u || --u->held > 0 || !u->closing) return;
  mh_msg_free(u->m);
  u->m = NULL;
  u->closing = 0;
}

/* nil, err, info{code, class, field} from the builder's last error; frees
** the half-built message of u. */
static int build_fail(lua_State *L, l_msg *u, int code, const char *field) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", mh_msg_error(u->m));
  mh_msg_free(u->m);
  u->m = NULL;
  int n = mh_l_fail(L, code, NULL, "%s", msg);
  lua_pushstring(L, field);
  lua_setfield(L, -2, "field");
  return n;
}

/* The value at idx as a C string for a builder parameter that takes one (a
** display name, an attachment's path, type or name, a header name), or NULL;
** *cut set when it holds a NUL: the C string would end there, and
** "report.pdf\0.exe" be sent as report.pdf instead of refused as CR and LF
** are (docs/message.md: never stripped). */
static const char *cstr(lua_State *L, int idx, int *cut) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (s && strlen(s) != n) *cut = 1;
  return s;
}

/* Adds the addresses in the value at idx to field. */
static int add_addrs(lua_State *L, mh_msg *m, int idx, mh_msg_field f, const char *fname) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) return 0;
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return mh_msg_add_addr(m, f, s, n, NULL);
  }
  if (t != LUA_TTABLE) return luaL_error(L, "mh.message: %s must be a string or a table", fname);
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, "address") != LUA_TNIL) {
    size_t n;
    const char *a = lua_tolstring(L, -1, &n);
    if (!a) return luaL_error(L, "mh.message: %s.address must be a string", fname);
    lua_getfield(L, idx, "name");
    int cut = 0;
    const char *name = cstr(L, -1, &cut);
    int rc = cut ? mh_msg_set_error(m, MH_EBADHDR, "%s: CR, LF or NUL in a display name", fname)
                 : mh_msg_add_addr(m, f, a, n, name ? name : "");
    lua_pop(L, 2);
    return rc;
  }
  lua_pop(L, 1);
  /* An empty list adds no one, as nil does: a rule's list made from an event
  ** (a JSON "cc": []) is data, not misuse; with no recipient at all the
  ** builder says so ("no recipient") as a value. */
  lua_Integer len = luaL_len(L, idx);
  if (len == 0) {           /* but {name = "x"} without its address is misuse */
    lua_pushnil(L);
    if (lua_next(L, idx)) {
      lua_pop(L, 2);
      return luaL_error(L, "mh.message: %s must be an address, {name=, address=} or a list of them "
                        "(got a table with no address and no list items)", fname);
    }
    return 0;
  }
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, idx, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      int nested = lua_geti(L, -1, 1) != LUA_TNIL;   /* lists inside lists: misuse */
      lua_pop(L, 1);
      if (nested)
        return luaL_error(L, "mh.message: %s[%d] must be a string or {name=, address=}", fname, (int)i);
    }
    int rc = add_addrs(L, m, -1, f, fname);
    lua_pop(L, 1);
    if (rc < 0) return rc;
  }
  return 0;
}

/* A float as a person writes it (as mailhook.template does, the rule of
** JavaScript's Number#toString): the fewest digits that read back as v,
** written out from 1e-6 up to 1e21 ("3", "100000000000000000000",
** "0.30000000000000004"), with an exponent past them ("1e+300"); NaN and
** the infinities as "NaN", "Infinity", "-Infinity" (C's were "nan", "-nan",
** "inf").  Lua's own text was "3.0" and "1e+20". */
static void float_text(char *out, size_t cap, double v) {
  char e[64], digits[32];
  if (v != v || v == HUGE_VAL || v == -HUGE_VAL) { snprintf(out, cap, "%s", v != v ? "NaN" : v > 0 ? "Infinity" : "-Infinity"); return; }
  if (v == floor(v) && fabs(v) < 9.2e18) { snprintf(out, cap, "%lld", (long long)v); return; }
  for (int prec = 0; prec <= 16; prec++) {
    snprintf(e, sizeof e, "%.*e", prec, v);
    if (strtod(e, NULL) == v) break;
  }
  const char *p = e;
  int neg = *p == '-', n = 0;
  if (neg) p++;
  for (; *p && *p != 'e'; p++) if (*p != '.') digits[n++] = *p;
  while (n > 1 && digits[n - 1] == '0') n--;
  digits[n] = '\0';
  int exp = atoi(p + 1);
  size_t o = 0;
  if (neg) out[o++] = '-';
  if (exp >= 21 || exp < -6)
    snprintf(out + o, cap - o, "%c%s%se%c%d", digits[0], n > 1 ? "." : "", digits + 1, exp >= 0 ? '+' : '-', abs(exp));
  else if (exp >= 0)
    snprintf(out + o, cap - o, "%.*s%.*s%s%s", exp + 1 < n ? exp + 1 : n, digits,
             exp + 1 > n ? exp + 1 - n : 0, "000000000000000000000", exp + 1 < n ? "." : "",
             exp + 1 < n ? digits + exp + 1 : "");
  else
    snprintf(out + o, cap - o, "0.%.*s%s", -exp - 1, "000000", digits);
}

/* The value at idx as text (lua_tolstring), a float by float_text.  The value
** at idx is replaced by the string. */
static const char *val_str(lua_State *L, int idx, size_t *len) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx)) {
    char buf[64];
    float_text(buf, sizeof buf, (double)lua_tonumber(L, idx));
    lua_pushstring(L, buf);
    lua_replace(L, idx);
  }
  return lua_tolstring(L, idx, len);
}

static const char *opt_string(lua_State *L, int idx, const char *field, size_t *len) {
  int t = lua_getfield(L, idx, field);
  if (t == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  if (t != LUA_TSTRING && t != LUA_TNUMBER) luaL_error(L, "mh.message: %s must be a string", field);
  const char *s = val_str(L, -1, len);
  lua_pop(L, 1);            /* still referenced by the table */
  return s;
}

static int add_attachments(lua_State *L, mh_msg *m, int idx) {
  if (lua_getfield(L, idx, "attachments") == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (!lua_istable(L, -1))   /* named: luaL_checktype said "bad argument #-1 to 'build'" */
    return luaL_error(L, "mh.message: attachments must be a list of paths or {path=, type=, name=} "
                      "(got a %s%s)", luaL_typename(L, -1), lua_type(L, -1) == LUA_TSTRING ? ": one file is written {\"path\"}" : "");
  int at = lua_gettop(L);
  lua_Integer len = luaL_len(L, at);
  for (lua_Integer i = 1; i <= len; i++) {
    int rc, cut = 0;
    if (lua_geti(L, at, i) == LUA_TSTRING) {
      const char *path = cstr(L, -1, &cut);
      rc = cut ? mh_msg_set_error(m, MH_EBADHDR, "attachments[%d]: NUL in the path", (int)i)
               : mh_msg_add_attachment(m, path, NULL, NULL);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "path");
      lua_getfield(L, -2, "type");
      lua_getfield(L, -3, "name");
      const char *path = cstr(L, -3, &cut);
      if (!path) return luaL_error(L, "mh.message: attachments[%d].path must be a string", (int)i);
      /* a table or a boolean given as the type or the name was taken as none */
      if (!lua_isnil(L, -2) && !lua_isstring(L, -2))
        return luaL_error(L, "mh.message: attachments[%d].type must be a string (got a %s)", (int)i,
                          luaL_typename(L, -2));
      if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
        return luaL_error(L, "mh.message: attachments[%d].name must be a string (got a %s)", (int)i,
                          luaL_typename(L, -1));
      const char *type = cstr(L, -2, &cut), *name = cstr(L, -1, &cut);
      rc = cut ? mh_msg_set_error(m, MH_EBADHDR, "attachments[%d]: NUL in the path, type or name", (int)i)
               : mh_msg_add_attachment(m, path, type, name);
      lua_pop(L, 3);
    } else {
      return luaL_error(L, "mh.message: attachments[%d] must be a path or {path=, type=, name=}", (int)i);
    }
    lua_pop(L, 1);
    if (rc < 0) { lua_pop(L, 1); return rc; }
  }
  lua_pop(L, 1);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_headers(lua_State *L, mh_msg *m, int idx) {
  int rc = 0;
  if (lua_getfield(L, idx, "headers") == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (!lua_istable(L, -1))
    return luaL_error(L, "mh.message: headers must be a table {[\"X-Name\"] = \"value\"} or {{\"X-Name\", \"value\"}, ...} "
                      "(got a %s)", luaL_typename(L, -1));
  int h = lua_gettop(L);
  lua_Integer len = luaL_len(L, h);
  if (len > 0) {            /* a list of {name, value} pairs: in that order */
    for (lua_Integer i = 1; i <= len && rc == 0; i++) {
      lua_geti(L, h, i);
      if (!lua_istable(L, -1)) return luaL_error(L, "mh.message: headers[%d] must be {name, value}", (int)i);
      lua_geti(L, -1, 1);
      lua_geti(L, -2, 2);
      size_t vn;
      int cut = 0;
      const char *name = cstr(L, -2, &cut), *value = lua_isnumber(L, -1) ? val_str(L, -1, &vn) : lua_tolstring(L, -1, &vn);
      if (!name || !value) return luaL_error(L, "mh.message: headers[%d] must be {name, value}", (int)i);
      rc = cut ? mh_msg_set_error(m, MH_EBADHDR, "headers[%d]: CR, LF or NUL in the header name", (int)i)
               : mh_msg_add_header(m, name, value, vn);
      lua_pop(L, 3);
    }
  } else {                  /* a map: sorted by name, so the bytes do not depend on hashing */
    size_t n = 0, cap = 8;
    int oom = 0;
    /* boxed at h + 1: lua_getfield (a long name) and val_str (a number made
    ** text) allocate, and may raise under a rule's budget */
    const char ***names = (const char ***)mh_l_box(L, sizeof *names, mh_l_free_ptr);
    *names = malloc(cap * sizeof **names);
    lua_pushnil(L);
    while (*names && lua_next(L, h)) {
      if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
        return luaL_error(L, "mh.message: headers must map names to strings");
      if (n == cap) {
        const char **nn = realloc(*names, (cap *= 2) * sizeof *nn);
        if (!nn) { oom = 1; break; }
        *names = nn;
      }
      int cut = 0;
      (*names)[n++] = cstr(L, -2, &cut);
      lua_pop(L, 1);
      if (cut) {   /* looked up again below by its C string: it would find nothing */
        mh_l_box_free(L, h + 1);   /* frees names */
        lua_settop(L, h - 1);      /* the key, the box, the table */
        return mh_msg_set_error(m, MH_EBADHDR, "headers: CR, LF or NUL in a header name");
      }
    }
    if (!*names || oom) return luaL_error(L, "out of memory");
    qsort(*names, n, sizeof **names, cmp_names);
    for (size_t i = 0; i < n && rc == 0; i++) {
      size_t vn;
      lua_getfield(L, h, (*names)[i]);
      const char *value = val_str(L, -1, &vn);
      rc = mh_msg_add_header(m, (*names)[i], value, vn);
      lua_pop(L, 1);
    }
    mh_l_box_free(L, h + 1);   /* frees names */
    lua_settop(L, h);
  }
  lua_pop(L, 1);
  return rc;
}

static const char *const known[] = {
  "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers", "date", NULL,
};

/* build{...} -> Message | nil, err, info */
static int l_build(lua_State *L) {
  mh_l_arg_type(L, 1, "fields", LUA_TTABLE);
  mh_l_check_nargs(L, 1, "mh.message");
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; known[i]; i++) ok |= !strcmp(known[i], lua_tostring(L, -2));
    if (!ok) return luaL_error(L, "mh.message: unknown field '%s'", luaL_tolstring(L, -2, NULL));
    lua_pop(L, 1);
  }
  l_msg *u = lua_newuserdatauv(L, sizeof *u, 0);   /* index 2, created closed */
  u->m = NULL;
  u->ready = 0;
  u->held = u->closing = 0;
  luaL_setmetatable(L, MSG_MT);
  mh_msg *m = u->m = mh_msg_new();
  if (!m) return luaL_error(L, "out of memory");
  static const struct { const char *name; mh_msg_field f; } fields[] = {
    { "from", MH_MSG_FROM }, { "to", MH_MSG_TO }, { "cc", MH_MSG_CC },
    { "bcc", MH_MSG_BCC }, { "reply_to", MH_MSG_REPLY_TO },
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    lua_getfield(L, 1, fields[i].name);
    int rc = add_addrs(L, m, -1, fields[i].f, fields[i].name);
    lua_pop(L, 1);
    if (rc < 0) return build_fail(L, u, rc, fields[i].name);
  }
  size_t n;
  const char *s;
  int rc;
  if ((s = opt_string(L, 1, "subject", &n)) && (rc = mh_msg_set_subject(m, s, n)) < 0)
    return build_fail(L, u, rc, "subject");
  if ((s = opt_string(L, 1, "text", &n)) && (rc = mh_msg_set_text(m, s, n)) < 0)
    return build_fail(L, u, rc, "text");
  if ((s = opt_string(L, 1, "html", &n)) && (rc = mh_msg_set_html(m, s, n)) < 0)
    return build_fail(L, u, rc, "html");
  if ((rc = add_headers(L, m, 1)) < 0) return build_fail(L, u, rc, "headers");
  if ((rc = add_attachments(L, m, 1)) < 0) return build_fail(L, u, rc, "attachments");
  lua_getfield(L, 1, "date");
  int whole = 1;
  time_t now = lua_isnil(L, -1) ? time(NULL) : (time_t)lua_tointegerx(L, -1, &whole);
  if (!whole && lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == floor(lua_tonumber(L, -1)))
    /* whole but past 64 bits (1e300): out of range, as 253402300800 is (not "must be whole") */
    return build_fail(L, u, mh_msg_set_error(m, MH_EINVAL, "date: %s is out of range (seconds since 1970, "
                                             "up to the year 9999)", lua_tostring(L, -1)), "date");
  if (!whole)   /* misuse: raises, naming the field (not "bad argument #-1 to 'build'") */
    return luaL_error(L, "mh.message: date must be whole seconds since 1970 (got %s)", luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  if ((rc = mh_msg_finish(m, now)) < 0) {
    const char *e = mh_msg_error(m);
    return build_fail(L, u, rc, !strncmp(e, "from", 4) ? "from" : !strncmp(e, "to", 2) ? "to" :
                      !strncmp(e, "date", 4) ? "date" : "message");
  }
  u->ready = 1;
  return 1;
}

static int l_envelope(lua_State *L) {
  l_msg *u = check_msg(L, 1);
  mh_l_check_method_nargs(L, 0, "msg:envelope");
  lua_createtable(L, 0, 2);
  lua_pushstring(L, mh_msg_env_from(u->m));
  lua_setfield(L, -2, "from");
  size_t n = mh_msg_rcpt_count(u->m);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, mh_msg_rcpt(u->m, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "to");
  return 1;
}

static int l_bytes(lua_State *L) {
  l_msg *u = check_msg(L, 1);
  mh_l_check_method_nargs(L, 0, "msg:bytes");
  char **out = (char **)mh_l_box(L, sizeof *out, mh_l_free_ptr);   /* pushing them may raise */
  size_t len;
  int rc = mh_msg_bytes(u->m, out, &len);
  if (rc < 0) return mh_l_fail(L, rc, NULL, "%s", mh_msg_error(u->m));
  lua_pushlstring(L, *out, len);
  return 1;   /* the box frees out as the function returns */
}

static int l_id(lua_State *L) {
  l_msg *u = check_msg(L, 1);
  mh_l_check_method_nargs(L, 0, "msg:id");
  lua_pushstring(L, mh_msg_id(u->m));
  return 1;
}

/* save(path) -> true | nil, err: writes the message to a new or truncated file
** (mode 0600).  Blocks while writing; meant for tools and tests, the spool has
** its own durable path.  Opened by the core's rule (mh_fsutil_open, no link
** followed): a symbolic link planted at path (in /tmp, by another user) is
** refused, never written through, and a FIFO cannot block the caller. */
static int l_save(lua_State *L) {
  l_msg *u = check_msg(L, 1);
  size_t plen;
  const char *path = mh_l_field_lstring(L, 2, "msg:save", "path", &plen);
  mh_l_check_method_nargs(L, 1, "msg:save");
  struct stat st;
  char why[4200];
  if (strlen(path) != plen)   /* the C string would end at the NUL: another file */
    return mh_l_fail(L, MH_EINVAL, NULL, "msg:save: NUL in the path");
  int fd = mh_fsutil_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, 0600, 0, &st);
  if (fd < 0) return mh_l_fail(L, fd, NULL, "%s", mh_fsutil_why(why, sizeof why, "", path, fd, &st, 0));
  int rc = mh_msg_write(u->m, fd);
  if (close(fd) < 0 && rc == 0) rc = -errno;
  if (rc < 0) return mh_l_fail(L, rc, NULL, "%s: %s", path, mh_msg_error(u->m)[0] ? mh_msg_error(u->m) : mh_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_close(lua_State *L) {
  l_msg *u = luaL_checkudata(L, 1, MSG_MT);
  u->ready = 0;
  if (u->held) {   /* a job writes it now: the last one frees it */
    u->closing = 1;
    return 0;
  }
  mh_msg_free(u->m);
  u->m = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  l_msg *u = luaL_checkudata(L, 1, MSG_MT);
  if (u->m && u->ready) lua_pushfstring(L, "mailhook.Message %s", mh_msg_id(u->m));
  else lua_pushliteral(L, "mailhook.Message (closed)");
  return 1;
}

/* valid_address(s) -> true | nil, "reason" */
static int l_valid_address(lua_State *L) {
  size_t n;
  const char *s = mh_l_arg_lstring(L, 1, "address", &n), *why;
  mh_l_check_nargs(L, 1, "msg.valid_address");
  if (mh_msg_check_addr(s, n, &why) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* envelope_address(s) -> s as the envelope carries it: the root's dot of a
** domain written absolute dropped (ops@example.com. -> ops@example.com), the
** one rule of mh_msg_addr_unroot; nothing else is changed or checked. */
static int l_envelope_address(lua_State *L) {
  size_t n;
  const char *s = mh_l_arg_lstring(L, 1, "address", &n);
  mh_l_check_nargs(L, 1, "msg.envelope_address");
  lua_pushlstring(L, s, mh_msg_addr_unroot(s, n));
  return 1;
}

/* date([t]) -> "Fri, 4 Dec 2026 13:30:32 +0100" (now by default): the Date rule */
static int l_date(lua_State *L) {
  char out[64];
  int whole = 1;
  lua_Integer t = lua_isnoneornil(L, 1) ? (lua_Integer)time(NULL) : lua_tointegerx(L, 1, &whole);
  mh_l_check_nargs(L, 1, "msg.date");
  /* raised as "msg.date: t ...": luaL_argerror named the function '?' when
  ** called through pcall or an alias */
  if (!whole && !(lua_type(L, 1) == LUA_TNUMBER && lua_tonumber(L, 1) == floor(lua_tonumber(L, 1))))
    mh_l_field_error(L, 1, "msg.date", "t", "whole seconds since 1970");
  /* 1e300 is whole but no integer: out of range, not "no integer representation" */
  if (!whole || !mh_msg_date_ok((time_t)t))
    luaL_error(L, "msg.date: t is out of range (seconds since 1970, up to the year 9999; got %s)",
               luaL_tolstring(L, 1, NULL));
  mh_msg_date(out, sizeof out, (time_t)t);
  lua_pushstring(L, out);
  return 1;
}

/* new_id([domain]) -> "<...@domain>": the Message-ID rule (the one build uses) */
static int l_new_id(lua_State *L) {
  char out[320];
  mh_l_check_nargs(L, 1, "msg.new_id");
  mh_msg_make_id(out, sizeof out, mh_l_optarg_string(L, 1, "domain", NULL), time(NULL));
  lua_pushstring(L, out);
  return 1;
}

/* utf8(s) -> s as UTF-8 by the builder's one rule (mh_msg_utf8): a byte that
** is no UTF-8 read as Windows-1252, valid UTF-8 kept; s itself when it is
** UTF-8 already.  `mailhook hook` reads every event value through it. */
static int l_utf8(lua_State *L) {
  size_t n, outn;
  const char *s = mh_l_arg_lstring(L, 1, "s", &n);
  mh_l_check_nargs(L, 1, "msg.utf8");
  char **u = (char **)mh_l_box(L, sizeof *u, mh_l_free_ptr);   /* 2; pushing it may raise */
  if (!(*u = mh_msg_utf8(s, n, &outn))) return luaL_error(L, "msg.utf8: out of memory");
  if (outn == n && memcmp(*u, s, n) == 0) { mh_l_box_free(L, 2); lua_settop(L, 1); }
  else lua_pushlstring(L, *u, outn);
  return 1;   /* the box frees u as the function returns */
}

static int l_type_for(lua_State *L) {
  mh_l_check_nargs(L, 1, "msg.type_for");
  lua_pushstring(L, mh_msg_type_for(mh_l_arg_string(L, 1, "name")));
  return 1;
}

void l_msg_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "envelope", l_envelope }, { "bytes", l_bytes }, { "id", l_id },
    { "save", l_save }, { "close", l_close }, { NULL, NULL },
  };
  static const luaL_Reg fns[] = {
    { "build", l_build },
    { "valid_address", l_valid_address }, { "envelope_address", l_envelope_address },
    { "type_for", l_type_for }, { "utf8", l_utf8 },
    { "date", l_date },
    { "new_id", l_new_id },
    { NULL, NULL },
  };
  mh_l_newclass(L, MSG_MT, methods, l_close, l_tostring);
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "msg");
}
