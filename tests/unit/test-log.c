/*
** test-log.c — the hooks around each stderr line of runtime/log.c
** (mh_log_set_hooks): called once before and once after every line written,
** in that order, never for a line dropped by the level nor one of another
** thread, gone once removed; and the timestamp of a line: UTC with its
** offset written out (ISO 8601), whatever the process's local zone.
** stderr is pointed at a scratch file; the hooks write markers into it.
*/
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
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

  /* a message of several lines: only the first starts an entry (a time stamp); the
     others start with a tab, so a newline in a value cannot forge an entry */
  mh_error("outer: %s", "x\n2026-01-01T00:00:00.000+00:00 info  forged\nend\n");
  got = take(f);
  ok(strstr(got, " error outer: x\n\t2026-01-01T00:00:00.000+00:00 info  forged\n\tend\n") != NULL,
     "continuation lines start with a tab");
  ok(got[strlen(got) - 1] == '\n' && got[strlen(got) - 2] == 'd', "a final newline adds no empty line");

  /* text from outside that would drive the terminal reading the log: ESC and
     CR, the C1 CSI (U+009B), a direction override, a line separator, bytes
     that are no UTF-8 each become '?' (runtime/text.h); UTF-8 text stays */
  mh_error("reply: %s", "a\x1b[2J\rb\xc2\x9b" "2Jc\xe2\x80\xae" "d\xe2\x80\xa8" "e\x9b\xff f\xc3\xbcr\tx");
  got = take(f);
  ok(strstr(got, " error reply: a?[2J?b?2Jc?d?e?? f\xc3\xbcr\tx\n") != NULL,
     "controls, C1, bidi, separators, stray bytes as '?' (tab kept): %s", got);

  /* a message over the 2 KiB of a line: its start, then how much was cut */
  {
    static char big[100000];
    memset(big, 'x', sizeof big - 1);
    mh_error("big: %s", big);
    got = take(f);
    ok(strstr(got, " error big: xxxx") != NULL, "a 100 KB message: its start");
    ok(strstr(got, "x ... (98004 more bytes)\n") != NULL, "and how much was cut: %s",
       strstr(got, " ... (") ? strstr(got, " ... (") : "(none)");
    ok(strlen(got) < 2200, "the line stays within its 2 KiB (%zu)", strlen(got));
  }
  /* ... when it is a run of bytes that are no UTF-8 (0x80: a continuation
     byte of no character): its start and the run up to the cut, each byte a
     '?'; a walk back over the whole run logged "stray: ... (N more bytes)"
     alone, the text the run followed hidden (an event's value could hide it) */
  {
    static char stray[5000];
    memset(stray, 0x80, sizeof stray - 1);
    memcpy(stray, "start of it ", 12);
    mh_error("stray: %s", stray);
    got = take(f);
    ok(strstr(got, " error stray: start of it ????") != NULL, "stray bytes: its start shown: %.80s", got);
    ok(strstr(got, " ... (") && strstr(got, " ... (") - got > 1900, "and the run up to the cut (%zu bytes before it)",
       strstr(got, " ... (") ? (size_t)(strstr(got, " ... (") - got) : (size_t)0);
  }

  /* a local zone 5 h 30 away from UTC (a POSIX TZ string: no tzdata needed) */
  setenv("TZ", "IST-5:30", 1);
  tzset();
  {
    struct tm tm;
    int ms = -1, n = 0;
    char off[8] = "";
    time_t before = time(NULL), at;
    mh_warn("stamp");
    got = take(f);
    memset(&tm, 0, sizeof tm);
    ok(sscanf(got, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%6s %n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
              &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, off, &n) == 8 && n > 0,
       "the timestamp is ISO 8601 with milliseconds and an offset: %.40s", got);
    is_str(off, "+00:00", "the offset is written out (UTC)");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    at = timegm(&tm);
    /* the zone's 19,800 s would show; a minute covers any load on the machine */
    ok(at >= before - 1 && at <= time(NULL) + 60, "and it is the UTC time, not the local one (%lld vs %lld)",
       (long long)at, (long long)before);
    ok(strstr(got, " warn  stamp\n") != NULL, "then the level and the message");
  }
  /* two processes sharing stderr (the service and its rules worker): each
     entry is written whole, never cut by the other's (an entry written as
     stamp, text and newline gave "...info  2026-...info  maildrop: ...") */
  {
    FILE *g = tmpfile();
    enum { N = 3000 };
    pid_t kids[2];
    int bad = 0, lines = 0;
    char line[512];
    if (!g || dup2(fileno(g), 2) < 0) { ok(0, "a second scratch file"); return done_testing(); }
    fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_APPEND);
    for (int k = 0; k < 2; k++) {
      if ((kids[k] = fork()) == 0) {
        for (int i = 0; i < N; i++) mh_warn("process %d entry %d\ncontinued", k, i);
        _exit(0);
      }
    }
    for (int k = 0; k < 2; k++) waitpid(kids[k], NULL, 0);
    rewind(g);
    while (fgets(line, sizeof line, g)) {
      int k, i, n = 0;
      lines++;
      if (line[0] == '\t') { bad += strcmp(line, "\tcontinued\n") != 0; continue; }
      bad += !(sscanf(line, "%*4d-%*2d-%*2dT%*2d:%*2d:%*2d.%*3d+00:00 warn  process %d entry %d\n%n",
                      &k, &i, &n) == 2 && n == (int)strlen(line));
    }
    is_int(lines, 2 * 2 * N, "every line of both processes is there");
    is_int(bad, 0, "and no entry was cut by the other process's");
    fclose(g);
  }
  return done_testing();
}
