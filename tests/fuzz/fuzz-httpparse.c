/*
** fuzz-httpparse.c — libFuzzer target for the console's request parser
** (runtime/httpparse.c).  The first byte sets the size of the pieces the rest
** is fed in.  Asserts, for any input: no crash or leak; the same requests,
** with the same status on a refusal, whatever the pieces (a byte at a time
** or all at once); every request read has a path starting with '/' and no
** "." or ".." segment, a body of its Content-Length, header values without
** CR, LF or NUL, and its head within max_head bytes.
*/
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEAD 512
#define MAX_BODY 256

/* What one run saw: a fingerprint of each request, and how it ended. */
typedef struct { unsigned long sum; int requests; int status; } seen;

static void check(const mh_hp_req *r) {
  assert(r->path_len >= 1 && r->path[0] == '/');
  for (size_t i = 0; i < r->path_len; i++) {
    size_t e = i + 1;
    if (r->path[i] != '/') continue;
    while (e < r->path_len && r->path[e] != '/') e++;
    assert(!(e - i - 1 == 1 && r->path[i + 1] == '.'));
    assert(!(e - i - 1 == 2 && r->path[i + 1] == '.' && r->path[i + 2] == '.'));
  }
  assert(r->head_len <= MAX_HEAD);
  assert(r->content_length <= MAX_BODY && (r->content_length == 0) == (r->body == NULL));
  for (size_t i = 0; i < r->nfields; i++)
    for (size_t k = 0; k < r->fields[i].value_len; k++) {
      char c = r->fields[i].value[k];
      assert(c != '\r' && c != '\n' && c != 0);
    }
}

static seen run(const char *in, size_t n, size_t step) {
  mh_hp p;
  seen s = { 0, 0, 0 };
  size_t at = 0;
  mh_hp_init(&p, MAX_HEAD, MAX_BODY);
  while (at < n) {
    size_t used, k = n - at < step ? n - at : step;
    int rc = mh_hp_feed(&p, in + at, k, &used);
    assert(used <= k);
    at += used;
    if (rc == MH_HP_ERROR) { s.status = p.status; break; }
    if (rc == MH_HP_DONE) {
      mh_hp_req *r = mh_hp_take(&p);
      assert(r);
      check(r);
      s.requests++;
      s.sum = s.sum * 31 + r->path_len * 7 + r->content_length * 3 + r->nfields + (unsigned long)r->keep_alive;
      mh_hp_req_free(r);
    } else if (rc == MH_HP_MORE) {
      assert(used == k);   /* MORE uses every byte it was given */
    }
  }
  mh_hp_free(&p);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  seen a, b;
  size_t step;
  if (size < 1 || size > 8192) return 0;
  step = 1 + data[0] % 64;
  a = run((const char *)data + 1, size - 1, step);
  b = run((const char *)data + 1, size - 1, size);
  assert(a.requests == b.requests && a.sum == b.sum && a.status == b.status);
  return 0;
}
