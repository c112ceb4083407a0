/*
** test-spool-grow.c — the recipients of a long list are collected in linear
** time: spool.c's arrays grow by doubling (env_grow), not by one item per
** realloc, which copied the whole array each time where the allocator cannot
** grow a block in place (ASan's always copies: 20,000 recipients took 7 s
** there and 40,000 28 s, so test-oom-leak.lua ran past its time limit under
** `make asan`).  Counted, not timed: this test is linked with
** -Wl,--wrap=realloc (Makefile), so every realloc spool.c makes goes through
** __wrap_realloc below.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "error.h"
#include "spool.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static size_t nrealloc;
void *__wrap_realloc(void *p, size_t n) {
  nrealloc++;
  return __real_realloc(p, n);
}

/* "user00001@example.com, user00002@example.com, ..." of n (malloc'd) */
static char *list_of(size_t n) {
  char *s = malloc(n * 64 + 1), *w = s;
  if (!s) exit(1);
  for (size_t i = 1; i <= n; i++)
    w += sprintf(w, "%suser%05zu@example.com", i > 1 ? ", " : "", i);
  return s;
}

int main(void) {
  static const size_t sizes[] = { 1, 8, 9, 20000 };
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    char *s = list_of(n), err[MH_SPOOL_ERRLEN] = "";
    mh_env env;
    memset(&env, 0, sizeof env);
    nrealloc = 0;
    int rc = mh_env_addrs(s, strlen(s), &env, err);
    size_t made = nrealloc;
    is_int(rc, 0, "%zu recipients parse (%s)", n, err);
    ok(env.nto == n, "%zu recipients collected (got %zu)", n, env.nto);
    ok(env.nto == n && !strcmp(env.to[0], "user00001@example.com") &&
       !strcmp(env.to[n - 1], strrchr(s, ' ') ? strrchr(s, ' ') + 1 : s), "%zu: the first and the last kept", n);
    /* doubling from 8: 20,000 items need 13 reallocs (one per power of two), not 20,000 */
    ok(made <= 20, "%zu recipients: %zu reallocs (at most 20: the arrays double)", n, made);
    mh_env_free(&env);
    free(s);
  }
  return done_testing();
}
