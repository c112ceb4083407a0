/*
** l_msg.h — for other bindings (l_spool.c) that take a message object built by
** mh.message: the userdata "mailhook.Message" holds the mh_msg * as its first
** member; l_msg_check() returns it, raising a Lua error for anything else or
** for a closed message.
*/
#ifndef MH_L_MSG_H
#define MH_L_MSG_H

#include <lua.h>
#include "msg.h"

#define MH_MSG_MT "mailhook.Message"

/* The finished message at idx; raises (luaL_argerror / "message is closed"). */
mh_msg *l_msg_check(lua_State *L, int idx);

#endif
