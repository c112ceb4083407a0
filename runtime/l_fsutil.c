/*
** l_fsutil.c — core.fsutil: the durable-file helpers of fsutil.c for Lua,
** plus hostname() (the default EHLO name).  These calls block the loop
** briefly; they are meant for small files written rarely (settings).
*/
#include <uv.h>
#include "l_sched.h"
#include "error.h"
#include "fsutil.h"

/* write_atomic(path, bytes [, mode = 0600]) -> true | nil, err, info */
static int l_write_atomic(lua_State *L) {
  size_t len;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer mode = luaL_optinteger(L, 3, 0600);
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "mode out of range");
  int rc = mh_fsutil_write_atomic(path, data, len, (mode_t)mode);
  if (rc < 0) return mh_l_fail(L, rc, "write", "%s: %s", path, mh_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* hostname() -> the machine's host name | nil, err */
static int l_hostname(lua_State *L) {
  char buf[256];
  size_t n = sizeof buf;
  int rc = uv_os_gethostname(buf, &n);
  if (rc < 0) return mh_l_fail(L, rc, NULL, "hostname: %s", uv_strerror(rc));
  lua_pushlstring(L, buf, n);
  return 1;
}

void l_fsutil_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "write_atomic", l_write_atomic },
    { "hostname", l_hostname },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "fsutil");
}
