/*
** l_admin.c — core.admin: runtime/admin.c for `mailhook status` and the console.
**
**   core.admin.lock_holder(spool_dir) -> pid | false | nil, err   (reads /proc/locks)
**   core.admin.page(folder_dir, {after =, before =, last =, limit =})
**       -> {ids...}, total, skipped, others | nil, err, info       (waits: thread pool)
** See admin.h for what a page is.
*/
#include <limits.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "l_sched.h"
#include "admin.h"
#include "error.h"

static int l_lock_holder(lua_State *L) {
  const char *dir = mh_l_arg_path(L, 1, "dir");
  long pid = 0;
  int rc = mh_admin_lock_holder(dir, &pid);
  if (rc == -EAGAIN)   /* held, its holder not listed (admin.c): not "nobody" */
    return mh_l_fail(L, rc, "status", "%s/lock is held, but /proc/locks does not list its holder", dir);
  if (rc < 0) return mh_l_fail(L, rc, "status", "cannot tell who holds %s/lock: %s", dir, mh_strerror(rc));
  if (rc == 0) lua_pushboolean(L, 0); else lua_pushinteger(L, pid);
  return 1;
}

#define PAGE_MAX 1000

typedef struct {
  char dir[PATH_MAX];
  char after[MH_ADMIN_IDLEN], before[MH_ADMIN_IDLEN];
  mh_admin_page_opts o;
  char (*ids)[MH_ADMIN_IDLEN];
  size_t n, total, skipped, others;
  int rc;
} page_req;

static void page_work(void *arg) {
  page_req *r = (page_req *)arg;
  r->rc = mh_admin_page(r->dir, &r->o, r->ids, &r->n, &r->total, &r->skipped, &r->others);
}

static int page_push(lua_State *co, void *arg) {
  page_req *r = (page_req *)arg;
  if (r->rc < 0) return mh_l_fail(co, r->rc, "spool", "%s: %s", r->dir, mh_strerror(r->rc));
  lua_createtable(co, (int)r->n, 0);
  for (size_t i = 0; i < r->n; i++) {
    lua_pushstring(co, r->ids[i]);
    lua_rawseti(co, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(co, (lua_Integer)r->total);
  lua_pushinteger(co, (lua_Integer)r->skipped);
  lua_pushinteger(co, (lua_Integer)r->others);
  return 4;
}

static void page_done(void *arg) {
  page_req *r = (page_req *)arg;
  free(r->ids);
  free(r);
}

/* An id option: a canonical id or nothing (anything else is misuse). */
static const char *opt_id(lua_State *L, const char *key, char *out) {
  const char *s;
  size_t len;
  lua_getfield(L, 2, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  s = mh_l_field_lstring(L, -1, "admin.page", key, &len);
  if (len != 16 || strspn(s, "0123456789abcdef") != 16) mh_l_field_error(L, -1, "admin.page", key, "a spool id");
  memcpy(out, s, 17);
  lua_pop(L, 1);
  return out;
}

static int l_page(lua_State *L) {
  size_t len;
  const char *dir = mh_l_arg_cstring(L, 1, "dir", PATH_MAX - 1);
  len = strlen(dir);
  char a[MH_ADMIN_IDLEN], b[MH_ADMIN_IDLEN];
  const char *pa, *pb;
  page_req *r;
  lua_Integer limit;
  int last;
  if (lua_isnoneornil(L, 2)) { lua_settop(L, 1); lua_newtable(L); }
  mh_l_arg_type(L, 2, "options", LUA_TTABLE);
  {
    static const char *const known[] = { "limit", "last", "after", "before", NULL };
    mh_l_check_nargs(L, 2, "admin.page");
    mh_l_check_options(L, 2, "admin.page", known);
  }
  lua_getfield(L, 2, "limit");
  limit = mh_l_optfield_integer(L, -1, "admin.page", "limit", 50);
  lua_pop(L, 1);
  if (limit < 0 || limit > PAGE_MAX) luaL_error(L, "admin.page: limit must be 0-1000 (got %d)", (int)limit);
  lua_getfield(L, 2, "last");
  last = lua_toboolean(L, -1);
  lua_pop(L, 1);
  pa = opt_id(L, "after", a);          /* may raise: nothing is allocated yet */
  pb = opt_id(L, "before", b);
  r = (page_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  if (!(r->ids = calloc((size_t)limit + 1, sizeof *r->ids))) { free(r); return luaL_error(L, "out of memory"); }
  memcpy(r->dir, dir, len + 1);
  r->o.limit = (size_t)limit;
  r->o.last = last;
  if (pa) { memcpy(r->after, a, sizeof a); r->o.after = r->after; }
  if (pb) { memcpy(r->before, b, sizeof b); r->o.before = r->before; }
  return mh_l_work(L, "admin.page", page_work, page_push, page_done, r);
}

void l_admin_open(lua_State *L) {
  static const luaL_Reg funcs[] = { { "lock_holder", l_lock_holder }, { "page", l_page }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "admin");
}
