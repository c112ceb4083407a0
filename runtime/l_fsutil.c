/*
** l_fsutil.c — core.fsutil: the durable-file helpers of fsutil.c for Lua,
** plus hostname() (the default EHLO name), mode(path), with_lock(path, fn) and
** isatty(fd) (a progress line only on a terminal, without forking a shell).  These calls block the loop
** briefly; they are meant for small files written rarely (settings).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#include "l_sched.h"
#include "error.h"
#include "fsutil.h"

/* isatty(fd) -> boolean */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

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

/* mode(path) -> permission bits (e.g. 384 for 0600) | nil, err */
static int l_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) < 0) return mh_l_fail(L, -errno, NULL, "%s: %s", path, strerror(errno));
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* with_lock(path, fn, ...) -> fn(...)'s results.  Holds an exclusive flock on
** the folder that contains path while fn runs, so that read-modify-write cycles
** on files in it (settings updates) do not interleave between processes.  fn
** must not yield; an error in fn is re-raised after the lock is released. */
static int l_with_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    while (flock(fd, LOCK_EX) < 0 && errno == EINTR) {}
  }
  /* no folder (or no lock): run anyway; fn reports the real error (ENOENT ...) */
  int nargs = lua_gettop(L) - 2;
  int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
  if (fd >= 0) close(fd);             /* releases the lock */
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L) - 1;
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
    { "isatty", l_isatty },
    { "hostname", l_hostname },
    { "mode", l_mode },
    { "with_lock", l_with_lock },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "fsutil");
}
