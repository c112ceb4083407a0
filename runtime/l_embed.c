/*
** l_embed.c — the embedding API of mailhook.h: a Lua state with the runtime,
** the rules loaded once, and mh_emit() running the rules' dispatch (the same
** code as `mailhook hook`) in a task on the libuv loop until it finished.
** A binding file (l_*) because it drives Lua; l_embed_open() marks the core
** table so Lua code can tell it runs embedded.
*/
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "fsutil.h"
#include "instpaths.h"
#include "l_sched.h"
#include "mailhook.h"
#include "msg.h"

int luaopen_mailhook_core(lua_State *L);

struct mh_runtime {
  lua_State *L;             /* the state holding the rules; closed by mh_close */
};

static void set_err(char **err, const char *fmt, ...) {
  va_list ap;
  char buf[2048];
  if (!err) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  *err = strdup(buf);
}

/* core.paths as main.c builds them, from $MAILHOOK_ROOT or the PREFIX. */
static void set_paths(lua_State *L, const char *conf, const char *spool) {
  char root[PATH_MAX - 64], lua[PATH_MAX], probe[PATH_MAX + 32], dconf[PATH_MAX], dspool[PATH_MAX];
  const char *r = getenv("MAILHOOK_ROOT"), *given;
  int installed;
  snprintf(root, sizeof root, "%s", r && *r ? r : mh_instpaths_prefix());
  snprintf(probe, sizeof probe, "%s/lua/mailhook/init.lua", root);
  installed = access(probe, R_OK) != 0;
  snprintf(lua, sizeof lua, installed ? "%s/share/mailhook/lua" : "%s/lua", root);
  /* who named the settings file: a file named by the host or $MAILHOOK_CONF must
     exist (settings.lua, conf_given), as one named by -c: a typo is an error,
     not the defaults.  Only the default path may be absent. */
  given = conf && *conf ? "mh_open" : NULL;
  if (!given && (conf = getenv("MAILHOOK_CONF")) && *conf) given = "$MAILHOOK_CONF";
  if (!spool || !*spool) spool = getenv("MAILHOOK_SPOOL");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "mailhook.core");
  lua_createtable(L, 0, 6);
  lua_pushstring(L, root);
  lua_setfield(L, -2, "root");
  lua_pushstring(L, lua);
  lua_setfield(L, -2, "lua");
  lua_pushfstring(L, installed ? "%s/share/mailhook/scripts" : "%s/scripts", root);
  lua_setfield(L, -2, "scripts");
  if (installed) mh_instpaths_defaults(root, dconf, sizeof dconf, dspool, sizeof dspool);  /* as main.c */
  if (conf && *conf) lua_pushstring(L, conf);
  else if (installed) lua_pushstring(L, dconf);
  else lua_pushfstring(L, "%s/mailhook.conf", root);
  lua_setfield(L, -2, "conf");
  if (given) {
    lua_pushstring(L, given);
    lua_setfield(L, -2, "conf_given");
  }
  if (spool && *spool) lua_pushstring(L, spool);
  else if (installed) lua_pushstring(L, dspool);
  else lua_pushfstring(L, "%s/spool", root);
  lua_setfield(L, -2, "spool");
  lua_pushboolean(L, installed);
  lua_setfield(L, -2, "installed");
  lua_setfield(L, -2, "paths");
  lua_pop(L, 2);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lua, lua);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* Loads the settings and the rule files; returns nil on success, else a message. */
static const char OPEN_LUA[] =
  "local settings = require 'mailhook.settings'\n"
  "local rules = require 'mailhook.rules'\n"
  "local cfg, err = settings.load()\n"
  "if not cfg then return 'settings: ' .. tostring(err) end\n"
  "local _, errors = rules.load(rules.default_paths(cfg))\n"
  "if #errors > 0 then\n"
  "  return 'rule file ' .. errors[1].file .. ' did not load: ' .. errors[1].error:match('^[^\\n]*')\n"
  "end\n";

mh_runtime *mh_open(const char *conf, const char *spool, char **err) {
  mh_runtime *rt;
  lua_State *L;
  if (err) *err = NULL;
  rt = (mh_runtime *)calloc(1, sizeof *rt);
  L = rt ? luaL_newstate() : NULL;
  if (!L) {
    free(rt);
    set_err(err, "out of memory");
    return NULL;
  }
  rt->L = L;
  luaL_openlibs(L);
  mh_l_absolute_paths(L);   /* before our folders are added: nothing from the current folder */
  luaL_requiref(L, "mailhook.core", luaopen_mailhook_core, 0);
  lua_pop(L, 1);
  set_paths(L, conf, spool);
  if (luaL_loadbuffer(L, OPEN_LUA, sizeof OPEN_LUA - 1, "=mh_open") != LUA_OK ||
      lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isnil(L, -1)) {
    set_err(err, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot load the rules");
    mh_close(rt);
    return NULL;
  }
  lua_settop(L, 0);
  return rt;
}

/* The task body: res = {status=, message=} filled by rules.dispatch. */
static const char EMIT_LUA[] =
  "local res, event, fields = ...\n"
  "local status, msgs = require('mailhook.rules').dispatch(event, fields)\n"
  "res.status = status\n"
  "res.message = table.concat(msgs, '; ')\n";

/* nil, message, code (2: the caller's mistake, 1: ours) for emit_fields. */
static int emit_fail(lua_State *L, int code, const char *fmt, ...) {
  va_list ap;
  char buf[2048];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lua_pushnil(L);
  lua_pushstring(L, buf);
  lua_pushinteger(L, code);
  return 3;
}

/* emit_fields(rules, kv) -> fields | nil, message, code: mh_emit's fields
** table from kv (NULL-terminated name, value pairs), called by emit_run
** (under mh_emit's lua_pcall: a push refused for want of memory raises). */
static int emit_fields(lua_State *L) {
  const char *const *kv = (const char *const *)lua_touserdata(L, 2);
  lua_newtable(L);                                   /* 3: fields */
  for (int i = 0; kv && kv[i]; i += 2) {
    /* hook's rule for a field (rules.field_problem): a valid name, not the
    ** reserved 'event', not given twice; its message escapes control bytes */
    lua_getfield(L, 1, "field_problem");
    lua_pushstring(L, kv[i]);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    if (!lua_isnil(L, -1)) return emit_fail(L, 2, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!kv[i + 1]) return emit_fail(L, 2, "field '%s' has no value", kv[i]);
    if ((int64_t)strlen(kv[i + 1]) > MH_LIMIT_FIELD)   /* hook's limit (docs/spool.md, "Limits") */
      return emit_fail(L, 2, "field '%s': %zu bytes, over the %lld KiB limit", kv[i], strlen(kv[i + 1]),
                       (long long)(MH_LIMIT_FIELD >> 10));
    /* hook's rule for a value that is not UTF-8 (a PBX's Latin-1): read as
    ** Windows-1252 (mh_msg_utf8; docs/rules.md, "Values"), so the rules see
    ** the text `mailhook hook` would give them; boxed (4), as pushing it may
    ** raise */
    size_t un;
    char **u = (char **)mh_l_box(L, sizeof *u, mh_l_free_ptr);
    if (!(*u = mh_msg_utf8(kv[i + 1], strlen(kv[i + 1]), &un))) return emit_fail(L, 1, "out of memory");
    lua_pushlstring(L, *u, un);
    lua_setfield(L, 3, kv[i]);
    mh_l_box_free(L, 4);                             /* frees u */
    lua_pop(L, 1);
  }
  return 1;
}

/* emit_run(event, kv) -> status, message | nil: mh_emit's body, run by
** lua_pcall (event and kv light userdata).  Every step may raise: a string or
** a table refused for want of memory, a Lua function of the rules module
** (event_problem, field_problem: a rule file can replace them) raising, the
** loop's own errors; mh_emit, called from C with no protected call around
** it, reached Lua's panic (an abort of the host) at any of them.  Nothing C
** is held here: the messages go back as Lua strings, copied by mh_emit. */
static int emit_run(lua_State *L) {
  const char *event = (const char *)lua_touserdata(L, 1);
  const char *const *kv = (const char *const *)lua_touserdata(L, 2);
  mh_task *task;
  int done;
  lua_settop(L, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "mailhook.rules");           /* 2: rules */
  /* hook's rule for an event's name (rules.event_problem): letters, digits,
  ** _ . : -, at most rules.max_name bytes; its message escapes control bytes */
  lua_getfield(L, 2, "event_problem");
  lua_pushstring(L, event);
  lua_call(L, 1, 1);
  if (!lua_isnil(L, -1)) {
    lua_pushinteger(L, 2);
    lua_insert(L, -2);
    return 2;
  }
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, EMIT_LUA, sizeof EMIT_LUA - 1, "=mh_emit") != LUA_OK) {
    lua_pushinteger(L, 1);
    lua_insert(L, -2);
    return 2;
  }                                                  /* 3: function */
  lua_newtable(L);                                   /* 4: res */
  lua_pushstring(L, event);                          /* 5 */
  lua_pushcfunction(L, emit_fields);                 /* 6: fields */
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, (void *)kv);
  lua_call(L, 2, 3);
  if (!lua_istable(L, 6)) {                          /* nil, message, code */
    lua_pushvalue(L, 8);
    lua_pushvalue(L, 7);
    return 2;
  }
  lua_settop(L, 6);
  task = mh_task_spawn(L, 3, 3, "mh_emit");
  mh_l_run(L, UV_RUN_DEFAULT);
  done = mh_task_done(task);
  if (done <= 0) {
    lua_pushinteger(L, 1);
    lua_pushfstring(L, "mh_emit: the rules did not finish%s", done < 0 ? " (an internal error, see the log)" : "");
    return 2;
  }
  lua_getfield(L, 4, "status");
  lua_getfield(L, 4, "message");
  return 2;
}

int mh_emit(mh_runtime *rt, const char *event, const char *const *kv, char **err) {
  lua_State *L;
  int status;
  if (err) *err = NULL;
  if (!rt || !event) { set_err(err, "mh_emit: no runtime or no event"); return 2; }
  L = rt->L;
  lua_settop(L, 0);
  lua_pushcfunction(L, emit_run);   /* (none of these three allocates) */
  lua_pushlightuserdata(L, (void *)event);
  lua_pushlightuserdata(L, (void *)kv);
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
    set_err(err, "mh_emit: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "an error that is no string");
    lua_settop(L, 0);
    return 1;
  }
  status = (int)lua_tointeger(L, 1);
  if (status != 0) set_err(err, "%s", lua_tostring(L, 2) ? lua_tostring(L, 2) : "a rule failed");
  lua_settop(L, 0);
  return status;
}

void mh_close(mh_runtime *rt) {
  if (!rt) return;
  if (rt->L) lua_close(rt->L);   /* closes the state's loop too (l_sched.c, ctx_gc) */
  free(rt);
}

void l_embed_open(lua_State *L) {
  (void)L;   /* nothing to add: the API is for C hosts */
}
