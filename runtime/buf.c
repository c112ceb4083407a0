/*
** buf.c — the growable byte buffer (see buf.h).
*/
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "b64.h"
#include "error.h"

/* Room for n more bytes and the NUL; 0 or MH_ENOMEM (sticky). */
static int reserve(mh_buf *b, size_t n) {
  size_t cap;
  char *d;
  if (b->oom) return MH_ENOMEM;
  if (b->len + n + 1 <= b->cap) return 0;
  if (n > (size_t)-1 / 4 - b->len) { b->oom = 1; return MH_ENOMEM; }
  cap = b->cap ? b->cap : 256;
  while (cap < b->len + n + 1) cap *= 2;
  if (!(d = (char *)realloc(b->data, cap))) { b->oom = 1; return MH_ENOMEM; }
  b->data = d;
  b->cap = cap;
  return 0;
}

int mh_buf_add(mh_buf *b, const void *p, size_t n) {
  int rc = reserve(b, n);
  if (rc < 0) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int mh_buf_adds(mh_buf *b, const char *s) { return mh_buf_add(b, s, strlen(s)); }

int mh_buf_vprintf(mh_buf *b, const char *fmt, va_list ap) {
  va_list aq;
  int n, rc;
  va_copy(aq, ap);
  n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0) return MH_EINVAL;
  if ((rc = reserve(b, (size_t)n)) < 0) return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int mh_buf_printf(mh_buf *b, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = mh_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int mh_buf_b64(mh_buf *b, const void *in, size_t n) {
  size_t need = MH_B64_LEN(n);
  int rc = reserve(b, need);
  if (rc < 0) return rc;
  b->len += mh_b64_encode(b->data + b->len, in, n);
  assert(b->len < b->cap);
  b->data[b->len] = '\0';
  return 0;
}

void mh_buf_free(mh_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void mh_buf_wipe(mh_buf *b) {
  volatile unsigned char *v = (volatile unsigned char *)b->data;
  for (size_t i = 0; v && i < b->cap; i++) v[i] = 0;
  mh_buf_free(b);
}
