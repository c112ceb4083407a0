/*
** l_watch.c — see l_watch.h.  No functions of its own in core: l_watch_open
** only registers the handle's metatable.
*/
#include <string.h>
#include <uv.h>
#include "l_sched.h"
#include "l_watch.h"

#define WATCH_MT "mailhook.Watch"

typedef struct {
  uv_fs_event_t ev;
  uv_timer_t timer;        /* coalesces a burst of events into one call */
  lua_State *L;            /* the state's callback thread, to spawn from */
  mh_l_watch_skip skip;    /* names that are no news, or NULL */
  const char *task_name;   /* a literal of the caller's */
  int fn_ref;
  int closing;             /* handles left to close: 2, 1, 0 */
  int stopped;
} lwatch;

static void watch_fire(uv_timer_t *t) {
  lwatch *w = (lwatch *)t->data;
  if (w->stopped) return;
  lua_rawgeti(w->L, LUA_REGISTRYINDEX, w->fn_ref);
  mh_task_spawn(w->L, -1, 0, w->task_name);
  lua_pop(w->L, 2);
}

static void watch_event(uv_fs_event_t *h, const char *name, int events, int status) {
  lwatch *w = (lwatch *)h->data;
  (void)events;
  (void)status;
  if (w->stopped || (name && w->skip && w->skip(name))) return;
  if (!uv_is_active((uv_handle_t *)&w->timer)) uv_timer_start(&w->timer, watch_fire, 5, 0);
}

static void watch_closed(uv_handle_t *h) {
  lwatch *w = (lwatch *)h->data;
  if (--w->closing == 0) {   /* both closed: the userdata may go */
    lua_pushnil(w->L);
    lua_rawsetp(w->L, LUA_REGISTRYINDEX, w);
  }
}

static void watch_stop(lwatch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  luaL_unref(w->L, LUA_REGISTRYINDEX, w->fn_ref);
  w->fn_ref = LUA_NOREF;
  w->closing = 2;
  uv_fs_event_stop(&w->ev);
  uv_close((uv_handle_t *)&w->ev, watch_closed);
  uv_close((uv_handle_t *)&w->timer, watch_closed);
}

static int l_stop(lua_State *L) {
  watch_stop((lwatch *)luaL_checkudata(L, 1, WATCH_MT));
  return 0;
}

int mh_l_watch(lua_State *L, const char *dir, int fn_idx, mh_l_watch_skip skip, const char *stage,
               const char *task_name) {
  lwatch *w;
  int rc;
  fn_idx = lua_absindex(L, fn_idx);
  luaL_checktype(L, fn_idx, LUA_TFUNCTION);
  w = (lwatch *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, WATCH_MT);
  w->L = mh_l_cbstate(L);
  w->skip = skip;
  w->task_name = task_name;
  uv_fs_event_init(mh_l_loop(L), &w->ev);
  uv_timer_init(mh_l_loop(L), &w->timer);
  w->ev.data = w->timer.data = w;
  lua_pushvalue(L, fn_idx);
  w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, w);   /* pinned until both handles closed */
  if ((rc = uv_fs_event_start(&w->ev, watch_event, dir, 0)) < 0) {
    watch_stop(w);
    return mh_l_fail(L, rc, stage, "watch %s: %s", dir, uv_strerror(rc));
  }
  return 1;
}

void l_watch_open(lua_State *L) {
  luaL_newmetatable(L, WATCH_MT);
  lua_newtable(L);
  lua_pushcfunction(L, l_stop); lua_setfield(L, -2, "stop");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_stop); lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_stop); lua_setfield(L, -2, "__gc");   /* pinned: at lua_close only */
  lua_pop(L, 1);
}
