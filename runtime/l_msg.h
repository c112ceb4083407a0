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

/* A thread-pool job that reads the message at idx (l_msg_test said it is
** one) holds it: a close meanwhile, or its __gc at lua_close (which runs
** every finalizer, anchored or not, before the loop's last run waits for
** the job), leaves it to the job's l_msg_release (loop thread), which frees
** it.  Returns what l_msg_release takes. */
void *l_msg_hold(lua_State *L, int idx);
void l_msg_release(void *hold);

#endif
