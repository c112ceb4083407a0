/*
** l_watch.h — a folder watched for new files, for the bindings that offer one
** (Spool:watch on pickup/, core.maildrop.watch on maildrop/): libuv's fs event
** on the folder, a burst of events coalesced into one call 5 ms later, and fn()
** run as a task.  One implementation, so both get the same lifetime rules: the
** handle is pinned until both libuv handles are closed, and the task is spawned
** from the state's callback thread (mh_l_cbstate), never its main thread.
*/
#ifndef MH_L_WATCH_H
#define MH_L_WATCH_H

#include <lua.h>

/* 1 when an event for this file name is no news (a hidden file, our own sidecar). */
typedef int (*mh_l_watch_skip)(const char *name);

/* Watches dir; fn (at stack index fn_idx) runs as a task named task_name.
** Pushes a handle with :stop() (also its __close) and returns 1, or returns
** mh_l_fail's nil, message, info (stage names the caller) when the folder
** cannot be watched. */
int mh_l_watch(lua_State *L, const char *dir, int fn_idx, mh_l_watch_skip skip, const char *stage,
               const char *task_name);

#endif
