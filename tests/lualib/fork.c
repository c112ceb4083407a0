/*
** fork.c — a C host that embeds Lua 5.4 (liblua5.4), requires mailhook, then
** fork()s, as a PBX or a pre-forking server does after loading its modules:
** parent and child both enqueue at the same time, in blocking calls and in
** mh.run tasks.  A child's loop shares its epoll fd and its wake-up eventfd
** with the parent's until it is renewed (l_sched.c, ctx_forked): without that,
** a completion (an fsync on the thread pool) signalled in one process is
** consumed by the other, and a blocking mh.enqueue waits for ever.  An alarm
** turns such a hang into a failure.  Prints "ok - ..." / "not ok - ..." lines
** (tests/integration/lualib.sh numbers them).  MAILHOOK_CONF names settings
** that allow intake; the spool is DIR.
**
**   fork DIR
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define ROUNDS 30

/* Runs ROUNDS blocking enqueues and ROUNDS in tasks of one mh.run, subjects
** tagged WHO; returns how many were queued, or -1 after printing the error. */
static long enqueue_all(lua_State *L, const char *who) {
  static const char code[] =
    "local who, n = ...\n"
    "local mh = require 'mailhook'\n"
    "local c = 0\n"
    "for i = 1, n do\n"
    "  local id, err = mh.enqueue{to = 'ops@example.com', subject = who .. ' ' .. i, text = 't'}\n"
    "  if not id then error(who .. ': ' .. tostring(err)) end\n"
    "  c = c + 1\n"
    "end\n"
    "return c + mh.run(function()\n"
    "  local ts, k = {}, 0\n"
    "  for i = 1, n do ts[i] = mh.spawn(mh.enqueue, {to = 'ops@example.com', subject = who .. ' task ' .. i, text = 't'}) end\n"
    "  for i = 1, n do if ts[i]:wait() then k = k + 1 end end\n"
    "  return k\n"
    "end)\n";
  long v;
  if (luaL_loadstring(L, code) != LUA_OK) { printf("# %s\n", lua_tostring(L, -1)); return -1; }
  lua_pushstring(L, who);
  lua_pushinteger(L, ROUNDS);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    printf("# %s: lua error: %s\n", who, lua_tostring(L, -1));
    lua_settop(L, 0);
    return -1;
  }
  v = (long)lua_tointeger(L, -1);
  lua_settop(L, 0);
  return v;
}

/* Whether this process has the rules' watchdog thread (named mh-watchdog). */
static int has_watchdog(void) {
  char cmd[96], line[64];
  FILE *p;
  int found = 0;
  snprintf(cmd, sizeof cmd, "cat /proc/%ld/task/*/comm 2>/dev/null", (long)getpid());
  if (!(p = popen(cmd, "r"))) return 0;
  while (fgets(line, sizeof line, p)) if (strncmp(line, "mh-watchdog", 11) == 0) found = 1;
  pclose(p);
  return found;
}

/* Runs the rule of the event "note" (set by main): the rules' budgets start the
** watchdog thread in this process if it has none; 1 when the rule queued. */
static int emit_note(lua_State *L, const char *who) {
  int ok;
  lua_settop(L, 0);
  if (luaL_loadstring(L, "local who = ...; return (require('mailhook').emit('note', {who = who}))") != LUA_OK)
    return 0;
  lua_pushstring(L, who);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  if (!ok) printf("# emit in %s: %s\n", who, lua_tostring(L, -1));
  lua_settop(L, 0);
  return ok;
}

static long count_files(const char *dir) {
  char cmd[1200];
  long n = -1;
  FILE *p;
  snprintf(cmd, sizeof cmd, "ls '%s/pickup' | grep -c '\\.eml$'", dir);
  if ((p = popen(cmd, "r"))) { if (fscanf(p, "%ld", &n) != 1) n = -1; pclose(p); }
  return n;
}

int main(int argc, char **argv) {
  lua_State *L;
  pid_t pid;
  int st, failures = 0;
  long n;
  char code[1200];
  if (argc < 2) { fprintf(stderr, "usage: fork DIR\n"); return 2; }
  alarm(300);                 /* a hang is a failure (SIGALRM), not a stuck suite */
  L = luaL_newstate();
  luaL_openlibs(L);
  snprintf(code, sizeof code, "require('mailhook').configure{spool = '%s'}", argv[1]);
  if (luaL_dostring(L, code) != LUA_OK) { printf("not ok - require: %s\n", lua_tostring(L, -1)); return 1; }
  if (luaL_dostring(L, "require('mailhook').on('note', function(ev) "
                   "assert(require('mailhook').enqueue{to = 'ops@example.com', subject = ev.who, text = 't'}) end)")
      != LUA_OK) { printf("not ok - mh.on: %s\n", lua_tostring(L, -1)); return 1; }
  failures += !emit_note(L, "parent rule");
  printf("%s - a rule ran in the parent, which has the watchdog thread\n", has_watchdog() ? "ok" : "not ok");
  failures += !has_watchdog();
  n = enqueue_all(L, "before");
  printf("%s - the parent enqueues before fork (%ld)\n", n == 2 * ROUNDS ? "ok" : "not ok", n);
  fflush(stdout);
  failures += n != 2 * ROUNDS;
  if ((pid = fork()) < 0) { perror("fork"); return 1; }
  if (pid == 0) {             /* the child: its own enqueues, then lua_close */
    alarm(300);
    n = enqueue_all(L, "child");
    /* the thread stayed in the parent: the child's first rule starts its own,
       so a rule stuck in a C call is still stopped there */
    st = emit_note(L, "child rule");
    if (!has_watchdog()) { printf("# child: no thread named mh-watchdog after its rule\n"); st = 0; }
    if (n != 2 * ROUNDS) printf("# child: %ld of %d enqueued\n", n, 2 * ROUNDS);
    lua_close(L);
    fflush(stdout);           /* _exit does not: the reasons above reach the log */
    _exit(n == 2 * ROUNDS && st ? 0 : 1);
  }
  n = enqueue_all(L, "parent");
  printf("%s - the parent enqueues while its child does (%ld)\n", n == 2 * ROUNDS ? "ok" : "not ok", n);
  failures += n != 2 * ROUNDS;
  if (waitpid(pid, &st, 0) != pid) st = -1;
  printf("%s - the child enqueues after fork, runs a rule with a watchdog thread of its own, "
         "closes its state (status %d%s)\n",
         WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "not ok", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
         WIFSIGNALED(st) ? (WTERMSIG(st) == SIGALRM ? ", hung: killed by its alarm" : ", killed") : "");
  failures += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  n = enqueue_all(L, "after");
  printf("%s - the parent enqueues after its child exited (%ld)\n", n == 2 * ROUNDS ? "ok" : "not ok", n);
  failures += n != 2 * ROUNDS;
  lua_close(L);
  n = count_files(argv[1]);
  printf("%s - every message is in the spool (%ld of %d)\n", n == 8 * ROUNDS + 2 ? "ok" : "not ok", n, 8 * ROUNDS + 2);
  failures += n != 8 * ROUNDS + 2;
  return failures ? 1 : 0;
}
