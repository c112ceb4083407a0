/*
** l_watch.c — see l_watch.h.  No functions of its own in core: l_watch_open
** only registers the handle's metatable.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#include "l_sched.h"
#include "l_watch.h"
#include "log.h"

/* How often the watched path is looked at (one stat): a folder removed, moved
** or replaced (`rm -rf SPOOL/pickup`, `mv SPOOL ...`) leaves the kernel's
** watch on the old one, and new files would wake nothing. */
#define WATCH_CHECK_MS 1000

#define WATCH_MT "mailhook.Watch"

typedef struct {
  uv_fs_event_t ev;
  uv_timer_t timer;        /* coalesces a burst of events into one call */
  uv_timer_t check;        /* looks each WATCH_CHECK_MS whether path is still the folder watched */
  char *path;              /* the folder's path (the caller's, copied) */
  dev_t dev;               /* the folder watched (what path led to when the watch began) */
  ino_t ino;
  lua_State *L;            /* the state's callback thread, to spawn from */
  mh_l_watch_skip skip;    /* names that are no news, or NULL */
  const char *task_name;   /* a literal of the caller's */
  int fn_ref;
  int closing;             /* handles left to close: 3, 2, 1, 0 */
  int stopped;
} lwatch;

/* watch_fire's Lua work, protected (mh_l_cb_call). */
static int watch_spawn(lua_State *L) {
  lwatch *w = (lwatch *)lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
  mh_task_spawn(L, -1, 0, w->task_name);
  return 0;
}

static void watch_fire(uv_timer_t *t) {
  lwatch *w = (lwatch *)t->data;
  if (w->stopped) return;
  mh_l_cb_call(w->L, watch_spawn, w, w->task_name);
}

static void watch_event(uv_fs_event_t *h, const char *name, int events, int status) {
  lwatch *w = (lwatch *)h->data;
  (void)events;
  (void)status;
  if (w->stopped || (name && w->skip && w->skip(name))) return;
  if (!uv_is_active((uv_handle_t *)&w->timer)) uv_timer_start(&w->timer, watch_fire, 5, 0);
}

/* The path leads to another folder than the one watched (or none yet): the
** watch moves to the one there now, once there is one, and fn runs (files may
** have arrived unseen meanwhile).  Said once per move. */
static void watch_check(uv_timer_t *t) {
  lwatch *w = (lwatch *)t->data;
  struct stat st;
  if (w->stopped || stat(w->path, &st) < 0 || !S_ISDIR(st.st_mode) || (st.st_dev == w->dev && st.st_ino == w->ino))
    return;
  uv_fs_event_stop(&w->ev);
  int rc = uv_fs_event_start(&w->ev, watch_event, w->path, 0);
  if (rc < 0) {
    mh_warn("watch %s: it was removed or replaced, and the new one cannot be watched: %s (tried again "
            "each second)", w->path, uv_strerror(rc));
    return;
  }
  w->dev = st.st_dev;
  w->ino = st.st_ino;
  mh_warn("watch %s: it was removed or replaced: the folder now there is watched", w->path);
  if (!uv_is_active((uv_handle_t *)&w->timer)) uv_timer_start(&w->timer, watch_fire, 5, 0);
}

static void watch_closed(uv_handle_t *h) {
  lwatch *w = (lwatch *)h->data;
  if (--w->closing == 0) {   /* all closed: the userdata may go */
    free(w->path);
    w->path = NULL;
    lua_pushnil(w->L);
    lua_rawsetp(w->L, LUA_REGISTRYINDEX, w);
  }
}

/* Also what a watch whose making was refused half-way (collected unpinned,
** its handles never made) runs: it drops the function's reference, if any. */
static void watch_stop(lwatch *w) {
  luaL_unref(w->L, LUA_REGISTRYINDEX, w->fn_ref);
  w->fn_ref = LUA_NOREF;
  if (w->stopped) return;
  w->stopped = 1;
  w->closing = 3;
  uv_fs_event_stop(&w->ev);
  uv_close((uv_handle_t *)&w->ev, watch_closed);
  uv_close((uv_handle_t *)&w->timer, watch_closed);
  uv_close((uv_handle_t *)&w->check, watch_closed);
}

static int l_stop(lua_State *L) {
  watch_stop((lwatch *)luaL_checkudata(L, 1, WATCH_MT));
  return 0;
}

int mh_l_watch(lua_State *L, const char *dir, int fn_idx, mh_l_watch_skip skip, const char *stage,
               const char *task_name) {
  lwatch *w;
  int rc;
  uv_loop_t *loop;
  fn_idx = lua_absindex(L, fn_idx);
  luaL_checktype(L, fn_idx, LUA_TFUNCTION);
  loop = mh_l_loop(L);   /* raises where core is not open */
  w = (lwatch *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->stopped = 1;        /* no handles yet: its __gc has none to close */
  w->fn_ref = LUA_NOREF;
  w->L = mh_l_cbstate(L);
  luaL_setmetatable(L, WATCH_MT);
  w->skip = skip;
  w->task_name = task_name;
  /* What may raise (the reference and the pin may grow the registry: out of
  ** memory, a rule's memory budget) comes before the handles are linked into
  ** the loop: a reference refused after them left the userdata unpinned with
  ** its handles in the loop, collected while libuv still held them (their
  ** close callbacks then wrote to freed memory) */
  lua_pushvalue(L, fn_idx);
  w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, w);   /* pinned until all three handles closed */
  uv_fs_event_init(loop, &w->ev);
  uv_timer_init(loop, &w->timer);
  uv_timer_init(loop, &w->check);
  w->ev.data = w->timer.data = w->check.data = w;
  w->stopped = 0;
  if ((rc = uv_fs_event_start(&w->ev, watch_event, dir, 0)) < 0) {
    watch_stop(w);
    return mh_l_fail(L, rc, stage, "watch %s: %s", dir, uv_strerror(rc));
  }
  {
    struct stat st;
    if (stat(dir, &st) == 0) { w->dev = st.st_dev; w->ino = st.st_ino; }
    if ((w->path = strdup(dir))) {
      uv_timer_start(&w->check, watch_check, WATCH_CHECK_MS, WATCH_CHECK_MS);
      uv_unref((uv_handle_t *)&w->check);   /* never what keeps the loop running */
    }
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
