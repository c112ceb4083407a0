/*
** l_rstate.c — the few system calls the rule layer needs for its state on
** disk (spool/state/rules/) and its calendars, as core.rstate:
**
**   rstate.lock(path [, timeout]) -> lock | nil, err, info   (waits) an
**       exclusive flock on path (created 0600), so concurrent `mailhook hook`
**       processes take turns on one key's state; lock:unlock() (also
**       __close/__gc) releases it.  After timeout seconds (default 10) it fails
**       with ETIMEDOUT, naming the file and the holder's pid when /proc/locks
**       knows it.
**   rstate.write(path, data) -> true | nil, err, info   (waits): core.fsutil's
**       write_atomic (mh_fsutil_write_atomic: the one atomic, durable write,
**       mode 0600) run on the thread pool, so a rule's state never stalls the
**       loop; core.fsutil.write_atomic is the same write, blocking.
**   rstate.localtime(t, tz) -> {year, month, day, hour, min, sec, wday, yday,
**       isdst, gmtoff}: the broken-down local time of epoch t in zone tz
**       (a zoneinfo name such as "Europe/Paris"; nil or "" = the process zone).
**   rstate.exists(path) -> bool.
**   rstate.ticker(seconds, fn) -> handle:stop(): fn as a task every period, on
**       a timer that does not keep the process alive (the service's sweep).
**   rstate.list(dir) -> sorted names; rstate.mkdir(path): mkdir -p, 0700.
**   rstate.mktime(fields, tz) -> epoch: the inverse (isdst = -1: the zone's
**       rules decide, so a time in a DST gap moves forward, as mktime does).
**
** The zone functions switch TZ, call tzset(), convert and restore TZ: all Lua
** runs on the loop thread, and no thread-pool work of ours reads the zone.
** An unknown zone name is an error (glibc would silently use UTC).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "admin.h"
#include "l_sched.h"
#include "fsutil.h"
#include "error.h"

#define LOCK_MT "mailhook.Lock"

typedef struct {
  int fd;                 /* the locked file; -1 once released */
} lock_t;

/* ------------------------------------------------------------------ lock */

/* How long rstate.lock waits by default (docs/rules.md).  The wait runs on a
** pool thread (libuv has four): without a bound, a `mailhook hook` stuck while
** holding the lock held one of them for ever, and the rule waiting for it (its
** stop deferred while it updates its state) with it. */
#define LOCK_TIMEOUT_DEFAULT 10.0
#define LOCK_TIMEOUT_MAX 3600.0

typedef struct {
  char path[PATH_MAX];    /* the lock file */
  double timeout;         /* seconds */
  int fd;                 /* result: the locked descriptor, or -1 */
  int err;                /* result: errno of the failure (or -MH_ENOTREG: not a regular file) */
  long holder;            /* result of a timeout: the pid holding the lock, 0 if unknown */
} lock_req;

/* The pid holding a flock on fd's file (admin.c: /proc/locks, read until it
** lists it); 0 when not found (no /proc, another namespace). */
static long lock_holder(int fd) {
  struct stat st;
  long pid = 0;
  if (fstat(fd, &st) != 0 || mh_admin_flock_holder(&st, &pid) != 1) return 0;
  return pid;
}

static void lock_work(void *arg) {
  lock_req *r = (lock_req *)arg;
  uint64_t start = uv_hrtime(), limit = (uint64_t)(r->timeout * 1e9);
  long nap_us = 500;
  /* a spool file: never through a link, never a FIFO (fsutil's rule) */
  r->fd = mh_fsutil_open(AT_FDCWD, r->path, O_RDWR | O_CREAT, 0600, 0, NULL);
  if (r->fd < 0) { r->err = -r->fd; r->fd = -1; return; }   /* an errno, or -MH_ENOTREG */
  /* polled, not a blocking flock: a blocked flock cannot be given a deadline
     from a pool thread (no signal of ours may reach it); naps from 0.5 ms,
     doubling up to 10 ms, keep the hand-over prompt between hook processes */
  for (;;) {
    uint64_t spent;
    if (flock(r->fd, LOCK_EX | LOCK_NB) == 0) return;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) break;
    spent = uv_hrtime() - start;
    if (spent >= limit) {
      r->holder = lock_holder(r->fd);
      errno = ETIMEDOUT;
      break;
    }
    {
      uint64_t left_us = (limit - spent) / 1000 + 1;
      struct timespec ts;
      long us = (uint64_t)nap_us < left_us ? nap_us : (long)left_us;
      ts.tv_sec = us / 1000000;
      ts.tv_nsec = (us % 1000000) * 1000;
      nanosleep(&ts, NULL);
      if (nap_us < 10000) nap_us *= 2;
    }
  }
  r->err = errno;
  close(r->fd);
  r->fd = -1;
}

static int lock_push(lua_State *co, void *arg) {
  lock_req *r = (lock_req *)arg;
  lock_t *lk;
  if (r->fd < 0 && r->err == ETIMEDOUT) {
    char who[48], secs[32];
    if (r->holder) snprintf(who, sizeof who, "process %ld", r->holder);
    else snprintf(who, sizeof who, "another process");
    snprintf(secs, sizeof secs, "%g", r->timeout);   /* "10", not lua's "10.0" */
    return mh_l_fail(co, MH_ETIMEDOUT, "state", "cannot lock %s: held by %s for more than %s s "
                     "(a stuck `mailhook hook`?); nothing was changed", r->path, who, secs);
  }
  if (r->fd < 0)
    return mh_l_fail(co, -r->err, "state", "cannot lock %s: %s", r->path, mh_strerror(-r->err));
  lk = (lock_t *)lua_newuserdatauv(co, sizeof *lk, 0);
  lk->fd = r->fd;
  r->fd = -1;             /* owned by the userdata now */
  luaL_setmetatable(co, LOCK_MT);
  return 1;
}

static void lock_done(void *arg) {
  lock_req *r = (lock_req *)arg;
  if (r->fd >= 0) close(r->fd);  /* task interrupted: nobody took the lock */
  free(r);
}

/* rstate.lock(path [, timeout]) */
static int l_lock(lua_State *L) {
  size_t len;
  const char *path = mh_l_field_cstring(L, 1, "rstate.lock", "path", PATH_MAX - 1);
  double timeout = lua_isnoneornil(L, 2) ? LOCK_TIMEOUT_DEFAULT
                 : (double)mh_l_field_number(L, 2, "rstate.lock", "timeout");
  lock_req *r;
  if (!(timeout > 0 && timeout <= LOCK_TIMEOUT_MAX))
    mh_l_field_error(L, 2, "rstate.lock", "timeout", "seconds, more than 0 up to 3600");
  len = strlen(path);
  r = (lock_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  memcpy(r->path, path, len + 1);
  r->timeout = timeout;
  r->fd = -1;
  return mh_l_work_pool(L, "rstate.lock", lock_work, lock_push, lock_done, r);   /* waits up to timeout */
}

/* Idempotent: __gc, __close and unlock() all come here. */
static int l_unlock(lua_State *L) {
  lock_t *lk = (lock_t *)luaL_checkudata(L, 1, LOCK_MT);
  if (lk->fd >= 0) {
    close(lk->fd);        /* closing the only descriptor releases the flock */
    lk->fd = -1;
  }
  return 0;
}

static int l_lock_tostring(lua_State *L) {
  lock_t *lk = (lock_t *)luaL_checkudata(L, 1, LOCK_MT);
  lua_pushfstring(L, "mailhook.Lock(%s)", lk->fd >= 0 ? "held" : "released");
  return 1;
}

/* ----------------------------------------------------------------- write */

typedef struct {
  char path[PATH_MAX];    /* destination */
  char *data;             /* copy of the bytes (the Lua string may go) */
  size_t len;
  int err;                /* result: errno, 0 on success */
  const char *step;       /* result: which step failed, for the message */
} write_req;

/* Off the loop: the durable replace of fsutil (temp file, fsync, rename, folder fsync). */
static void write_work(void *arg) {
  write_req *r = (write_req *)arg;
  int rc = mh_fsutil_write_atomic(r->path, r->data, r->len, 0600);
  if (rc < 0) {
    r->err = -rc;
    r->step = "atomic write";
  }
}

static int write_push(lua_State *co, void *arg) {
  write_req *r = (write_req *)arg;
  if (r->err)
    return mh_l_fail(co, -r->err, "state", "cannot write %s (%s): %s", r->path, r->step,
                     strerror(r->err));
  lua_pushboolean(co, 1);
  return 1;
}

static void write_done(void *arg) {
  write_req *r = (write_req *)arg;
  free(r->data);
  free(r);
}

static int l_write(lua_State *L) {
  size_t plen, dlen;
  const char *path = mh_l_arg_cstring(L, 1, "path", PATH_MAX - 1);
  const char *data = mh_l_arg_lstring(L, 2, "data", &dlen);
  write_req *r;
  plen = strlen(path);
  r = (write_req *)calloc(1, sizeof *r);
  if (!r || !(r->data = (char *)malloc(dlen ? dlen : 1))) {
    free(r);
    return luaL_error(L, "out of memory");
  }
  memcpy(r->path, path, plen + 1);
  memcpy(r->data, data, dlen);
  r->len = dlen;
  return mh_l_work(L, "rstate.write", write_work, write_push, write_done, r);
}

/* ----------------------------------------------------------------- zones */

/* Switches the process zone to tz (NULL/"" = leave it); returns the previous
** TZ value to restore (malloc'd, or NULL when TZ was unset) through *old and
** whether a switch happened. */
static int zone_enter(lua_State *L, const char *tz, char **old) {
  const char *cur;
  char file[PATH_MAX];
  *old = NULL;
  if (!tz || !*tz) return 0;
  if (tz[0] != ':' && strcmp(tz, "UTC") != 0 && !strchr(tz, ',')) {
    /* a zoneinfo name must exist: glibc falls back to UTC silently */
    if (strstr(tz, "..") || tz[0] == '/')
      luaL_error(L, "time zone '%s' is not a zoneinfo name", tz);
    snprintf(file, sizeof file, "/usr/share/zoneinfo/%s", tz);
    if (access(file, R_OK) != 0) luaL_error(L, "unknown time zone '%s'", tz);
  }
  cur = getenv("TZ");
  if (cur) *old = strdup(cur);
  setenv("TZ", tz, 1);
  tzset();
  return 1;
}

static void zone_leave(int switched, char *old) {
  if (!switched) return;
  if (old) { setenv("TZ", old, 1); free(old); }
  else unsetenv("TZ");
  tzset();
}

static void setint(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int l_localtime(lua_State *L) {
  time_t t = (time_t)mh_l_arg_integer(L, 1, "t");
  const char *tz = mh_l_optarg_string(L, 2, "tz", NULL);
  struct tm tm;
  char *old;
  int sw = zone_enter(L, tz, &old);
  int ok = localtime_r(&t, &tm) != NULL;
  zone_leave(sw, old);
  if (!ok) return luaL_error(L, "time %I out of range", (lua_Integer)t);
  lua_createtable(L, 0, 10);
  setint(L, "year", tm.tm_year + 1900L);
  setint(L, "month", tm.tm_mon + 1L);
  setint(L, "day", tm.tm_mday);
  setint(L, "hour", tm.tm_hour);
  setint(L, "min", tm.tm_min);
  setint(L, "sec", tm.tm_sec);
  setint(L, "wday", tm.tm_wday + 1L);   /* as os.date: 1 = Sunday */
  setint(L, "yday", tm.tm_yday + 1L);
  setint(L, "gmtoff", tm.tm_gmtoff);
  lua_pushboolean(L, tm.tm_isdst > 0);
  lua_setfield(L, -2, "isdst");
  return 1;
}

static int getint(lua_State *L, const char *k, int def) {
  int v, isnum;
  lua_getfield(L, 1, k);
  v = (int)lua_tointegerx(L, -1, &isnum);
  if (!isnum) {
    if (def < 0) luaL_error(L, "field '%s' missing in date table", k);
    v = def;
  }
  lua_pop(L, 1);
  return v;
}

static int l_mktime(lua_State *L) {
  const char *tz = mh_l_optarg_string(L, 2, "tz", NULL);
  struct tm tm;
  time_t t;
  char *old;
  int sw;
  static const char *const known[] = { "year", "month", "day", "hour", "min", "sec", "isdst", "wday", "yday",
                                       "gmtoff", NULL };   /* what localtime returns may come back */
  mh_l_arg_type(L, 1, "fields", LUA_TTABLE);
  mh_l_check_nargs(L, 2, "rstate.mktime");
  mh_l_check_options(L, 1, "rstate.mktime", known);
  memset(&tm, 0, sizeof tm);
  tm.tm_year = getint(L, "year", -1) - 1900;
  tm.tm_mon = getint(L, "month", -1) - 1;
  tm.tm_mday = getint(L, "day", -1);
  tm.tm_hour = getint(L, "hour", 12);
  tm.tm_min = getint(L, "min", 0);
  tm.tm_sec = getint(L, "sec", 0);
  tm.tm_isdst = -1;
  sw = zone_enter(L, tz, &old);
  t = mktime(&tm);
  zone_leave(sw, old);
  lua_pushinteger(L, (lua_Integer)t);
  return 1;
}

/* list(dir) -> {name, ...} sorted, without dot files | nil, err, info.
** Synchronous: the state folders hold a handful of small files. */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names read, in a box (mh_l_box): pushing them may raise (a rule's
** memory budget), and a C local would lose them. */
typedef struct { char **v; size_t n; } name_list;

static void name_list_release(void *p) {
  name_list *l = (name_list *)p;
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int l_list(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "dir");
  name_list *names = (name_list *)mh_l_box(L, sizeof *names, name_list_release);
  DIR *d = opendir(path);
  struct dirent *e;
  size_t cap = 0;
  if (!d) return mh_l_fail(L, -errno, "state", "cannot list %s: %s", path, strerror(errno));
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (names->n == cap) {
      char **nn = (char **)realloc(names->v, (cap ? cap * 2 : 16) * sizeof *nn);
      if (!nn) break;
      names->v = nn;
      cap = cap ? cap * 2 : 16;
    }
    if (!(names->v[names->n] = strdup(e->d_name))) break;
    names->n++;
  }
  closedir(d);
  if (names->n) qsort(names->v, names->n, sizeof *names->v, cmp_str);
  lua_createtable(L, (int)names->n, 0);
  for (size_t i = 0; i < names->n; i++) {
    lua_pushstring(L, names->v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;   /* the box frees the names as the function returns */
}

/* mkdir(path) -> true | nil, err, info: like mkdir -p, mode 0700. */
static int l_mkdir(lua_State *L) {
  size_t len;
  const char *path = mh_l_arg_cstring(L, 1, "path", PATH_MAX - 1);
  char buf[PATH_MAX];
  len = strlen(path);
  if (!len) mh_l_arg_error(L, 1, "path", "a path, not an empty string");
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return mh_l_fail(L, -errno, "state", "cannot create %s: %s", buf, strerror(errno));
      *p = c;
      if (!c) break;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* exists(path) -> true | false (it is not there: ENOENT, ENOTDIR) | nil,
** "PATH: why", info when it cannot be told (EACCES: a folder on the way that
** the user may not search).  Both failures are falsy; a caller that must not
** take "cannot see it" for "not there" (the rules folder: a folder 0700 of
** another user read "no such folder or file") tells them apart. */
static int l_exists(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "path");
  int there = access(path, F_OK) == 0, e = errno;
  if (there || e == ENOENT || e == ENOTDIR) {
    lua_pushboolean(L, there);
    return 1;
  }
  return mh_l_fail(L, -e, "state", "%s: %s", path, strerror(e));
}

/* ---------------------------------------------------------------- ticker */

/* A periodic timer that never keeps the process alive (uv_unref): the sweep of
** due summaries runs while `mailhook run` runs, and does not hold it once the
** service stopped its own handles.  Each tick spawns fn as a task unless the
** previous tick's task is still running. */
#define TICKER_MT "mailhook.Ticker"

/* Owned by C (malloc), not by the userdata: the timer's memory must outlive the
** Lua state when lua_close() collects a ticker that was never stopped, until
** libuv's close callback runs. */
typedef struct {
  uv_timer_t timer;
  lua_State *L;           /* the main state, to spawn from; NULL once stopped */
  int fn_ref;             /* the function, released on stop */
  mh_task *last;          /* the previous tick's task (kept by last_ref) */
  int last_ref;
  int live;               /* its timer was made (else only the memory to free) */
} ticker_t;

typedef struct {
  ticker_t *t;            /* NULL once stopped */
} ticker_ud;

static void ticker_close_cb(uv_handle_t *h) { free(h->data); }

/* A tick's Lua work, protected (mh_l_cb_call).  The reference is taken
** first (holding false), then set to the task (an existing key: no
** allocation): a refusal anywhere leaves no task marked running (last NULL)
** and at most a reference to false, dropped at the next tick or stop. */
static int ticker_tick(lua_State *L) {
  ticker_t *t = (ticker_t *)lua_touserdata(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->last_ref);
  t->last_ref = LUA_NOREF;
  t->last = NULL;
  lua_pushboolean(L, 0);
  t->last_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  t->last = mh_task_spawn(L, -1, 0, "rules sweep");
  lua_rawseti(L, LUA_REGISTRYINDEX, t->last_ref);
  return 0;
}

static void ticker_cb(uv_timer_t *h) {
  ticker_t *t = (ticker_t *)h->data;
  if (!t->L || (t->last && mh_task_done(t->last) == 0)) return;
  mh_l_cb_call(t->L, ticker_tick, t, "rules sweep");
}

/* Stops the timer and hands its memory to the close callback.  release: also
** drop the Lua references and the pin (not during lua_close, from __gc). */
static void ticker_stop(lua_State *L, ticker_ud *u, int release) {
  ticker_t *t = u->t;
  if (!t) return;
  u->t = NULL;
  if (!t->live) {   /* its making was refused half-way: no timer, no pin */
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    free(t);
    return;
  }
  if (release) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->last_ref);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, u);
  }
  t->L = NULL;
  t->last = NULL;
  uv_timer_stop(&t->timer);
  uv_close((uv_handle_t *)&t->timer, ticker_close_cb);
}

static int l_ticker_stop(lua_State *L) {
  ticker_stop(L, (ticker_ud *)luaL_checkudata(L, 1, TICKER_MT), 1);
  return 0;
}

static int l_ticker_gc(lua_State *L) {
  ticker_stop(L, (ticker_ud *)luaL_checkudata(L, 1, TICKER_MT), 0);
  return 0;
}

static int l_ticker_tostring(lua_State *L) {
  ticker_ud *u = (ticker_ud *)luaL_checkudata(L, 1, TICKER_MT);
  lua_pushfstring(L, "mailhook.Ticker(%s)", u->t ? "running" : "stopped");
  return 1;
}

/* ticker(seconds, fn) -> handle with :stop() */
static int l_ticker(lua_State *L) {
  lua_Number s = mh_l_arg_number(L, 1, "seconds");
  ticker_ud *u;
  ticker_t *t;
  uv_loop_t *loop;
  uint64_t ms;
  if (!(s > 0 && s < 1e9)) mh_l_arg_error(L, 1, "seconds", "more than 0, below 1e9");
  mh_l_arg_type(L, 2, "fn", LUA_TFUNCTION);
  ms = (uint64_t)(s * 1000.0 + 0.5);
  if (ms == 0) ms = 1;
  loop = mh_l_loop(L);      /* raises where core is not open */
  u = (ticker_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->t = NULL;
  luaL_setmetatable(L, TICKER_MT);
  t = (ticker_t *)calloc(1, sizeof *t);
  if (!t) return luaL_error(L, "out of memory");
  t->L = mh_l_cbstate(L);
  t->fn_ref = t->last_ref = LUA_NOREF;
  u->t = t;                 /* from here the userdata's __gc frees it */
  /* What may raise (the reference and the pin may grow the registry: out of
  ** memory, a rule's memory budget) comes before the timer is started: a pin
  ** refused after it left a ticking timer for a call that had failed */
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, u);      /* pinned until stopped */
  t->timer.data = t;
  uv_timer_init(loop, &t->timer);
  t->live = 1;
  uv_timer_start(&t->timer, ticker_cb, ms, ms);
  uv_unref((uv_handle_t *)&t->timer);
  return 1;
}

void l_rstate_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"lock", l_lock}, {"write", l_write}, {"localtime", l_localtime},
    {"mktime", l_mktime}, {"list", l_list}, {"exists", l_exists}, {"ticker", l_ticker}, {"mkdir", l_mkdir}, {NULL, NULL}};
  static const luaL_Reg lock_m[] = {{"unlock", l_unlock}, {NULL, NULL}};
  static const luaL_Reg ticker_m[] = {{"stop", l_ticker_stop}, {NULL, NULL}};
  mh_l_newclass(L, TICKER_MT, ticker_m, l_ticker_gc, l_ticker_tostring);
  mh_l_newclass(L, LOCK_MT, lock_m, l_unlock, l_lock_tostring);
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "rstate");
}
