/*
** l_notify.c — core.notify: the service manager's notification protocol
** (runtime/notify.h) for lua/mailhook/service.lua.
**
**   core.notify.init() -> whether a manager listens; takes NOTIFY_SOCKET, WATCHDOG_USEC and
**        WATCHDOG_PID out of the environment (only `mailhook run` calls it: an embedding
**        host's environment is its own)
**   core.notify.send{READY = 1, STATUS = "3 queued; idle"} -> true | false | nil, message, info
**        true: sent; false: no manager listens ($NOTIFY_SOCKET unset)
**   core.notify.watchdog() -> seconds between pings the manager demands | nil
**
** A value holding a newline would smuggle another assignment into the
** datagram (a STATUS text that says READY=1): it is an argument error, so
** callers clean their text first.
*/
#include <string.h>
#include "error.h"
#include "l_sched.h"
#include "notify.h"

/* Appends KEY=VALUE\n for one pair of the table; raises on a bad key or value. */
static void add_pair(lua_State *L, luaL_Buffer *b, int kidx, int vidx) {
  const char *k, *v;
  size_t kl, vl;
  if (lua_type(L, kidx) != LUA_TSTRING) mh_l_field_error(L, kidx, "notify.send", "a key", "a string");
  k = lua_tolstring(L, kidx, &kl);
  for (size_t i = 0; i < kl; i++)
    if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
      luaL_error(L, "notify.send: '%s' is not a notification variable (upper-case letters, digits and _)", k);
  if (kl == 0) luaL_error(L, "notify.send: empty variable name");
  if (lua_type(L, vidx) == LUA_TBOOLEAN) {
    v = lua_toboolean(L, vidx) ? "1" : "0";
    vl = 1;
  } else if (lua_type(L, vidx) == LUA_TNUMBER || lua_type(L, vidx) == LUA_TSTRING) {
    v = lua_tolstring(L, vidx, &vl);
  } else {
    mh_l_field_error(L, vidx, "notify.send", k, "a string, a number or a boolean");
    return;
  }
  if (memchr(v, '\n', vl) || memchr(v, 0, vl))
    luaL_error(L, "notify.send: %s holds a newline or NUL", k);
  luaL_addlstring(b, k, kl);
  luaL_addchar(b, '=');
  luaL_addlstring(b, v, vl);
  luaL_addchar(b, '\n');
}

/* send(table) -> true | false | nil, message, info */
static int l_send(lua_State *L) {
  luaL_Buffer b;
  int rc;
  mh_l_arg_type(L, 1, "variables", LUA_TTABLE);
  lua_settop(L, 1);
  luaL_buffinit(L, &b);            /* the buffer's box sits at index 2 */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    /* tostring of a number key or value must not change the key for lua_next */
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    add_pair(L, &b, lua_gettop(L) - 1, lua_gettop(L));
    lua_pop(L, 3);
  }
  luaL_pushresult(&b);
  rc = mh_notify_send(lua_tostring(L, -1));
  if (rc < 0)
    return mh_l_fail(L, rc, "notify", "cannot notify the service manager (NOTIFY_SOCKET=%s): %s", mh_notify_socket(),
                     mh_strerror(rc));
  lua_pushboolean(L, rc == 1);
  return 1;
}

/* init() -> true (a manager listens) | false: reads and clears the environment */
static int l_init(lua_State *L) {
  lua_pushboolean(L, mh_notify_init() == 1);
  return 1;
}

/* watchdog() -> seconds | nil */
static int l_watchdog(lua_State *L) {
  uint64_t usec = mh_notify_watchdog_usec();
  if (!usec) return 0;
  lua_pushnumber(L, (lua_Number)usec / 1e6);
  return 1;
}

void l_notify_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "init", l_init },
    { "send", l_send },
    { "watchdog", l_watchdog },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "notify");
}
