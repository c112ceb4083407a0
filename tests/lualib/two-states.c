/*
** two-states.c — a C host that embeds Lua 5.4 (liblua5.4) and loads mailhook
** into two lua_States with `require`, as a server with one interpreter per
** worker would: core.so is dlopen'd once, and each state gets its own loop.
** Prints "ok - ..." / "not ok - ..." lines (tests/integration/lualib.sh numbers
** them).  MAILHOOK_CONF names settings that allow intake; the spools are
** DIR/a, DIR/b, DIR/t0, DIR/t1, DIR/r.
**
**   two-states DIR
**
** 1. One thread, two states, interleaved: distinct loops; tasks in both
**    progress while the host polls both fds and steps each; closing one state
**    while the other still has a timer running leaves the other working.
** 2. Two threads, a state each, blocking enqueues and sleeps at the same time.
** 3. No descriptor of either state is left open (epoll, eventfd, spool files),
**    and under ASan no memory (the host is built with the sanitizer).
** 4. core.so stays loaded after the last state that loaded it closed (a
**    thread of its own, the rules' watchdog, runs on).
*/
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int failures;

static void ok(int cond, const char *fmt, ...) {
  va_list ap;
  char buf[512];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  printf("%s - %s\n", cond ? "ok" : "not ok", buf);
  fflush(stdout);
  if (!cond) failures++;
}

/* Runs CODE in L; returns its first result as an integer (booleans 0/1),
** or -1 after printing the error. */
static long run(lua_State *L, const char *code) {
  long v;
  if (luaL_dostring(L, code) != LUA_OK) {
    printf("# lua error: %s\n", lua_tostring(L, -1));
    lua_settop(L, 0);
    return -1;
  }
  v = lua_isboolean(L, 1) ? lua_toboolean(L, 1) : (long)lua_tointeger(L, 1);
  lua_settop(L, 0);
  return v;
}

static lua_State *open_state(const char *dir, const char *name) {
  char code[1024];
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  snprintf(code, sizeof code, "mh = require 'mailhook'; mh.configure{spool = '%s/%s'}; return 1", dir, name);
  if (run(L, code) != 1) { lua_close(L); return NULL; }
  return L;
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (!d) return -1;
  while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;   /* the DIR's own */
}

static int count_mail(const char *dir, const char *name) {
  char path[1024];
  int n = 0;
  DIR *d;
  struct dirent *e;
  snprintf(path, sizeof path, "%s/%s/pickup", dir, name);
  if (!(d = opendir(path))) return -1;
  while ((e = readdir(d))) if (strstr(e->d_name, ".eml")) n++;
  closedir(d);
  return n;
}

/* Whether a file whose path ends in NAME is mapped into this process. */
static int mapped(const char *name) {
  char line[4096];
  int found = 0;
  size_t n = strlen(name);
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return 0;
  while (!found && fgets(line, sizeof line, f)) {
    size_t l = strcspn(line, "\n");
    line[l] = 0;
    found = l >= n && strcmp(line + l - n, name) == 0;
  }
  fclose(f);
  return found;
}

typedef struct { const char *dir; char name[8]; int done; } worker;

/* A thread with a state of its own: blocking calls only (no task). */
static void *work(void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = open_state(w->dir, w->name);
  if (!L) return NULL;
  w->done = (int)run(L,
    "for i = 1, 20 do\n"
    "  assert(mh.enqueue{to = 'x@example.com', subject = 'thread ' .. i, text = 'x'})\n"
    "  mh.sleep(0.001)\n"
    "end\n"
    "return 20");
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  int fds0, fa, fb, spins = 0;
  lua_State *A, *B;
  pthread_t th[2];
  worker w[2];

  /* the baseline: after a first state came and went, since libuv makes a
     process-wide pipe once (its signal lock), kept while libuv is loaded, and
     core.so, which links it, is never unloaded (4.) */
  A = open_state(dir, "w");
  if (A) lua_close(A);
  fds0 = count_fds();
  A = open_state(dir, "a");
  B = open_state(dir, "b");
  ok(A && B, "two states require mailhook");
  if (!A || !B) return 1;
  fa = (int)run(A, "return mh.pollfd()");
  fb = (int)run(B, "return mh.pollfd()");
  ok(fa >= 0 && fb >= 0 && fa != fb, "each has its own loop (fds %d and %d)", fa, fb);

  run(A, "order = {}; ta = mh.spawn(function() mh.sleep(0.05); return mh.enqueue{to = 'a@example.com', "
         "subject = 'from A', text = 'a'} end) return 1");
  run(B, "tb = mh.spawn(function() return mh.enqueue{to = 'b@example.com', subject = 'from B', text = 'b'} end)"
         " tlong = mh.spawn(function() repeat mh.sleep(0.01) until go; return 'late' end) return 1");
  /* tlong's timers run until told (a fixed 0.2 s sleep was over before A's task
     under load, and "B still has a timer running" failed) */
  /* the host's loop: poll both fds, step both, until both first tasks are done */
  for (;;) {
    struct pollfd p[2] = {{fa, POLLIN, 0}, {fb, POLLIN, 0}};
    long ta, tb, wa, wb;
    run(A, "mh.step() return 1");
    run(B, "mh.step() return 1");
    ta = run(A, "return ta:status() == 'done'");
    tb = run(B, "return tb:status() == 'done'");
    if ((ta && tb) || ++spins > 100000) break;
    wa = run(A, "return mh.timeout()");
    wb = run(B, "return mh.timeout()");
    poll(p, 2, (int)(wa < 0 ? wb : wb < 0 ? wa : wa < wb ? wa : wb));
  }
  ok(spins <= 100000, "tasks of both states finished in one host loop");
  ok(run(A, "return select(2, ta:wait()) ~= nil") == 1, "A's task enqueued");
  ok(run(B, "return select(2, tb:wait()) ~= nil") == 1, "B's task enqueued");
  ok(run(B, "return tlong:status() ~= 'done'") == 1, "B still has a timer running");
  lua_close(A);   /* closes A's loop: B's must not notice */
  ok(run(B, "go = true local ok, v = tlong:wait() return ok and v == 'late'") == 1,
     "after A was closed, B's task finished on B's loop");
  ok(run(B, "return mh.core.handles() == 0") == 1, "B has no handle left");
  lua_close(B);
  ok(count_mail(dir, "a") == 1 && count_mail(dir, "b") == 1, "each state wrote to its own spool (%d, %d)",
     count_mail(dir, "a"), count_mail(dir, "b"));

  /* two threads, a state each, waiting at the same time */
  for (int i = 0; i < 2; i++) {
    w[i].dir = dir;
    snprintf(w[i].name, sizeof w[i].name, "t%d", i);
    w[i].done = 0;
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  ok(w[0].done == 20 && w[1].done == 20, "two threads, two states: blocking enqueues in both");
  ok(count_mail(dir, "t0") == 20 && count_mail(dir, "t1") == 20, "20 messages in each spool");

  ok(count_fds() == fds0, "no descriptor left open after both states closed (%d, was %d)", count_fds(), fds0);

  /* a state that ran a rule (its budget started the watchdog thread, which
     lives in core.so), closed: Lua's package library dlcloses core.so with the
     last state that loaded it, and the thread, still waiting on a condition
     variable in core.so, would wake in unmapped memory (a futex error or a
     SIGSEGV, within a second).  core.so is never unloaded (-z nodelete). */
  {
    lua_State *R = open_state(dir, "r");
    ok(R && run(R, "mh.on('ping', function() end, 'noop') return (mh.emit('ping', {})) and 1 or 0") == 1,
       "a rule ran in a third state");
    if (R) lua_close(R);
    ok(mapped("mailhook/core.so"), "after its last state closed, core.so stays loaded (its watchdog thread runs on)");
  }
  return failures ? 1 : 0;
}
