/*
** l_spool.h — for l_smtp.c: the message data of a spool entry loaded with
** spool:load(id, {data = N, buffer = true}) is a mailhook.SpoolData handle
** (the bytes read from the file, not copied into a Lua string: the
** deliverer's per-message load); c:submit and c:send take it where they take
** a data string.  l_spool_data never raises.
*/
#ifndef MH_L_SPOOL_H
#define MH_L_SPOOL_H

#include <stddef.h>
#include <lua.h>

#define MH_SPOOL_DATA_MT "mailhook.SpoolData"

/* The bytes of the handle at idx (alive while it is: keep it on the stack),
** or NULL when idx holds no handle. */
const char *l_spool_data(lua_State *L, int idx, size_t *len);

#endif
