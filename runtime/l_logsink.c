/*
** l_logsink.c — core.logsink: where log lines go (the `log` setting) and
** lines with structured fields (the per-message mail log, maillog.lua).
**
**   core.logsink.set("stderr"|"syslog"|"journal" [, {ident =, facility = "mail"}])
**        -> true | nil, message, info   (nothing listens on /dev/log or the journal's
**           socket: the sink stays what it was)
**   core.logsink.get() -> "stderr"|"syslog"|"journal"
**   core.logsink.default_level("info")     -- the log_level setting; -v/-q/env win
**   core.logsink.entry(level, message, {MAILHOOK_QUEUE_ID = "...", ...}) -> written?
**   core.logsink.facilities -> {"mail", "daemon", "user", "local0", ...}
**
** Misuse (an unknown sink, level or facility, a field name the journal
** refuses, a value that is not a string or number) raises.
*/
#include <string.h>
#include <syslog.h>
#include "error.h"
#include "l_sched.h"
#include "log.h"

static const struct { const char *name; int value; } facilities[] = {
  {"mail", LOG_MAIL}, {"daemon", LOG_DAEMON}, {"user", LOG_USER},
  {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
  {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
  {NULL, 0}};

static const char *const sinks[] = {"stderr", "syslog", "journal", NULL};

/* set(sink [, {ident =, facility =}]) */
static int l_set(lua_State *L) {
  const char *name = mh_l_arg_string(L, 1, "sink");
  int sink = 0, facility = -1;
  const char *ident = NULL;
  while (sinks[sink] && strcmp(sinks[sink], name)) sink++;
  if (!sinks[sink]) mh_l_arg_error(L, 1, "sink", "stderr, syslog or journal");
  if (!lua_isnoneornil(L, 2)) {
    static const char *const known[] = { "ident", "facility", NULL };
    mh_l_arg_type(L, 2, "options", LUA_TTABLE);
    mh_l_check_nargs(L, 2, "logsink.set");
    mh_l_check_options(L, 2, "logsink.set", known);
    if (lua_getfield(L, 2, "ident") != LUA_TNIL) ident = mh_l_field_string(L, -1, "logsink.set", "ident");
    if (lua_getfield(L, 2, "facility") != LUA_TNIL) {
      const char *f = mh_l_field_string(L, -1, "logsink.set", "facility");
      for (int i = 0; facilities[i].name; i++)
        if (!strcmp(f, facilities[i].name)) facility = facilities[i].value;
      if (facility < 0) luaL_error(L, "logsink.set: facility must be a syslog facility such as daemon or local0 (got '%s')", f);
    }
  }
  int rc = mh_log_set_sink((mh_log_sink)sink, ident, facility);
  if (rc < 0)
    return mh_l_fail(L, rc, "log", "%s: nothing listens on %s: %s", sinks[sink],
                     sink == MH_LOG_SYSLOG ? _PATH_LOG : mh_journal_socket(), mh_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_get(lua_State *L) {
  lua_pushstring(L, sinks[mh_log_get_sink()]);
  return 1;
}

static int check_level(lua_State *L, int idx) {
  int level = mh_log_parse_level(mh_l_arg_string(L, idx, "level"));
  if (level < 0) mh_l_arg_error(L, idx, "level", "debug, info, warn or error");
  return level;
}

static int l_default_level(lua_State *L) {
  mh_log_set_default_level((mh_log_level)check_level(L, 1));
  return 0;
}

/* entry(level, message [, fields]) -> true when written, false when the level drops it */
static int l_entry(lua_State *L) {
  int level = check_level(L, 1);
  const char *msg = mh_l_arg_string(L, 2, "message");
  mh_journal_field f[24];
  size_t n = 0;
  if (!lua_isnoneornil(L, 3)) {
    mh_l_arg_type(L, 3, "fields", LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k;
      if (lua_type(L, -2) != LUA_TSTRING || !mh_journal_valid_name(k = lua_tostring(L, -2)))
        return luaL_error(L, "logsink.entry: field names are upper-case letters, digits and _ (not first; got %s)",
                          luaL_tolstring(L, -2, NULL));
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        return mh_l_field_error(L, -1, "logsink.entry", k, "a string or a number");
      if (n >= sizeof f / sizeof f[0]) luaL_error(L, "logsink.entry: too many fields (at most %d)", (int)(sizeof f / sizeof f[0]));
      /* the strings stay alive: each value is kept on the stack below the key */
      luaL_checkstack(L, 4, "too many fields");
      lua_pushvalue(L, -1);
      f[n].name = k;
      f[n].value = lua_tolstring(L, -1, &f[n].len);
      n++;
      lua_insert(L, 4);               /* keep the value's string below the iteration */
      lua_pop(L, 1);                  /* the value; the key stays for lua_next */
    }
  }
  lua_pushboolean(L, mh_log_fields((mh_log_level)level, msg, f, n));
  return 1;
}

void l_logsink_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "set", l_set },
    { "get", l_get },
    { "default_level", l_default_level },
    { "entry", l_entry },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_newtable(L);
  for (int i = 0; facilities[i].name; i++) {
    lua_pushstring(L, facilities[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "facilities");
  lua_setfield(L, -2, "logsink");
}
