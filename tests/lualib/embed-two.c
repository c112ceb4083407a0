/*
** embed-two.c — the embedding API (runtime/mailhook.h) used as a careless host
** would: two runtimes open at once in one process (each its own Lua state and
** loop), events emitted on them alternately, NULL where a pointer is expected,
** one runtime closed while the other goes on, mh_close(NULL).  Built with
** ASan/UBSan by tests/integration/embed.sh: a leak or a bad access fails it.
** Prints "ok - ..." / "not ok - ..." lines.  MAILHOOK_ROOT is the checkout; the
** settings file CONF has a rule for the event "note" that enqueues.
**
**   embed-two CONF DIR      (spools DIR/a and DIR/b)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include "mailhook.h"

static int failures;

static void ok(int cond, const char *what, const char *err) {
  printf("%s - %s%s%s\n", cond ? "ok" : "not ok", what, err ? ": " : "", err ? err : "");
  fflush(stdout);
  if (!cond) failures++;
}

static int count(const char *dir) {
  char path[4200];
  struct dirent *e;
  DIR *d;
  int n = 0;
  snprintf(path, sizeof path, "%s/pickup", dir);
  if (!(d = opendir(path))) return 0;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".eml")) n++;
  closedir(d);
  return n;
}

int main(int argc, char **argv) {
  char a_dir[4096], b_dir[4096], *err = NULL;
  const char *kv[] = {"who", "a", NULL}, *kv_b[] = {"who", "b", NULL};
  mh_runtime *a, *b;
  int rc, i;
  if (argc < 3) { fprintf(stderr, "usage: embed-two CONF DIR\n"); return 2; }
  snprintf(a_dir, sizeof a_dir, "%s/a", argv[2]);
  snprintf(b_dir, sizeof b_dir, "%s/b", argv[2]);

  rc = mh_emit(NULL, "note", kv, &err);
  ok(rc == 2 && err && strstr(err, "no runtime"), "mh_emit(NULL runtime): status 2, said", err);
  free(err); err = NULL;
  mh_close(NULL);
  ok(1, "mh_close(NULL) is nothing", NULL);

  a = mh_open(argv[1], a_dir, &err);
  ok(a != NULL, "a first runtime opens", err);
  free(err); err = NULL;
  b = mh_open(argv[1], b_dir, &err);
  ok(b != NULL, "a second one opens beside it (its own Lua state and loop)", err);
  free(err); err = NULL;
  if (!a || !b) { mh_close(a); mh_close(b); return 1; }

  for (i = 0; i < 3; i++) {
    rc = mh_emit(a, "note", kv, &err);
    if (rc) break;
    rc = mh_emit(b, "note", kv_b, &err);
    if (rc) break;
  }
  ok(rc == 0, "events emitted alternately on both", err);
  free(err); err = NULL;
  ok(count(a_dir) == 3 && count(b_dir) == 3, "each runtime queued into its own spool (3 and 3)", NULL);

  rc = mh_emit(a, NULL, kv, &err);
  ok(rc == 2 && err != NULL, "mh_emit(NULL event): status 2, said", err);
  free(err); err = NULL;
  rc = mh_emit(a, "note", NULL, &err);
  ok(rc == 0, "mh_emit(NULL fields): the event without fields", err);
  free(err); err = NULL;
  rc = mh_emit(a, "note", kv, NULL);
  ok(rc == 0, "mh_emit(NULL err): runs, nothing to report through", NULL);
  rc = mh_emit(a, "bad event", kv, NULL);
  ok(rc == 2, "a malformed event with NULL err: status 2, no crash", NULL);

  mh_close(a);
  rc = mh_emit(b, "note", kv_b, &err);
  ok(rc == 0 && count(b_dir) == 4, "the second runtime works on after the first closed", err);
  free(err); err = NULL;
  mh_close(b);
  ok(count(a_dir) == 5, "the first queued 5 in all", NULL);
  return failures ? 1 : 0;
}
