/*
** l_msg.c — core.msg: the message builder of msg.c for Lua.
*/
#include "l_sched.h"
#include "error.h"
#include "msg.h"

/* valid_address(s) -> true | nil, "reason" */
static int l_valid_address(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n), *why;
  if (mh_msg_check_addr(s, n, &why) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

void l_msg_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "valid_address", l_valid_address },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "msg");
}
