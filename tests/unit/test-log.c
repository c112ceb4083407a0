/*
** test-log.c — the hooks around each stderr line of runtime/log.c
** (mh_log_set_hooks): called once before and once after every line written,
** in that order, never for a line dropped by the level nor one of another
** thread, gone once removed.
** stderr is pointed at a scratch file; the hooks write markers into it.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "tap.h"

static int calls;   /* hook calls, both kinds */

static void before(void *ud) { calls++; fputs((const char *)ud, stderr); fputs("<", stderr); }
static void after(void *ud) { calls++; fputs(">", stderr); (void)ud; }

/* Everything written to the scratch stderr since the last call. */
static char *take(FILE *f) {
  static char buf[4096];
  size_t n;
  fflush(stderr);
  rewind(f);
  n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  if (ftruncate(fileno(f), 0) != 0) buf[0] = 0;
  rewind(f);
  return buf;
}

static void *worker(void *arg) { (void)arg; mh_warn("from a worker"); return NULL; }

int main(void) {
  pthread_t th;
  FILE *f = tmpfile();
  char *got;
  if (!f || dup2(fileno(f), 2) < 0) { printf("1..0 # SKIP no scratch file\n"); return 0; }
  mh_log_set_level(MH_LOG_INFO);

  mh_log_set_hooks(before, after, (void *)"ud");
  mh_warn("one %d", 1);
  got = take(f);
  ok(!strncmp(got, "ud<", 3), "before runs first, with its ud");
  ok(strstr(got, " warn  one 1\n>") && got[strlen(got) - 1] == '>', "then the line, then after");
  is_int(calls, 2, "one call of each per line");

  mh_debug("dropped");
  got = take(f);
  is_str(got, "", "a line below the level is not written");
  is_int(calls, 2, "and calls no hook");

  if (pthread_create(&th, NULL, worker, NULL) == 0) pthread_join(th, NULL);
  got = take(f);
  ok(strstr(got, " warn  from a worker\n") && !strchr(got, '<') && !strchr(got, '>'),
     "a line of another thread is written without the hooks");
  is_int(calls, 2, "which were not called");

  mh_log_set_hooks(NULL, after, NULL);
  mh_error("two");
  got = take(f);
  ok(got[0] != '<' && strstr(got, " error two\n>"), "a NULL before is skipped");

  mh_log_set_hooks(NULL, NULL, NULL);
  calls = 0;
  mh_info("three");
  got = take(f);
  ok(strstr(got, " info  three\n") && !strchr(got, '>') && !strchr(got, '<'), "removed: the bare line");
  is_int(calls, 0, "no hook called");
  return done_testing();
}
