/*
** l_spool.h — for l_smtp.c: the message data of a spool entry loaded with
** spool:load(id, {data = N, buffer = true}) is a mailhook.SpoolData handle
** (the bytes read from the file, not copied into a Lua string: the
** deliverer's per-message load); c:submit and c:send take it where they take
** a data string, and its bytes with it (once).  Neither function raises.
*/
#ifndef MH_L_SPOOL_H
#define MH_L_SPOOL_H

#include <stddef.h>
#include <lua.h>

#define MH_SPOOL_DATA_MT "mailhook.SpoolData"

/* The bytes of the handle at idx in *p, *len (alive while it is: keep it on
** the stack), and the handle itself in *h for l_spool_data_take: 1; 0 when
** idx holds no handle; -1 when a submission took them already (a handle is
** sent once). */
int l_spool_data(lua_State *L, int idx, const char **p, size_t *len, void **h);

/* The submission at hand copied the bytes of the handle h (l_spool_data's,
** still on the stack): they are freed now, not when the collector gets to the
** handle (it cannot see the buffer, so it would not hurry); h:bytes() is nil
** after.  (h, not a stack index: the handle's metatable was checked once,
** per message two lookups fewer; issue 16.) */
void l_spool_data_take(void *h);

#endif
