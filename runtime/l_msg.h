/*
** l_msg.h — for other bindings (l_spool.c) that take a message object built by
** mh.message: l_msg_test() hands them its mh_msg *, so no other file knows the
** userdata's layout.  It never raises (a binding half-way through building an
** operation must free it before it reports the error).
*/
#ifndef MH_L_MSG_H
#define MH_L_MSG_H

#include <lua.h>
#include "msg.h"

#define MH_MSG_MT "mailhook.Message"

/* The finished message at idx, or NULL: *closed = 1 when idx is a message
** object that is closed (or not finished), 0 when it is no message at all. */
mh_msg *l_msg_test(lua_State *L, int idx, int *closed);

#endif
