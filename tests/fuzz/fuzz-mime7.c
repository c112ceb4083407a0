/*
** fuzz-mime7.c — libFuzzer target for the 7-bit converter (runtime/mime7.c).
** The first byte picks what to convert and the size of the pieces; the rest
** is the message.  Asserts, for any input: no crash or leak; mh_mime7_size is
** the size written, converted or not; the output is the same whatever the
** pieces; and when the converter says it can convert, the output is 7-bit (no
** NUL it did not find: those left are the data writer's to drop) with CRLF line ends only, and the independent decoder (tests/unit/mime7-ref.h)
** reads in it exactly what it reads in the input.
*/
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mime7.h"
#include "error.h"
#include "../unit/mime7-ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *ud, const char *p, size_t n) { rb_add((rbuf *)ud, p, n); return 0; }

/* Scans and converts in pieces of step bytes; 0 when converted. */
static int run(const char *in, size_t n, unsigned what, size_t step, rbuf *out, uint64_t *sz, int *can) {
  mh_mime7 *m = mh_mime7_new();
  int rc;
  assert(m);
  for (size_t i = 0; i < n; i += step) assert(mh_mime7_scan(m, in + i, n - i < step ? n - i : step) == 0);
  assert(mh_mime7_scan_end(m) == 0);
  *can = mh_mime7_why(m, what) == NULL;
  *sz = mh_mime7_size(m, what);
  rc = mh_mime7_convert_begin(m, what, sink, out);
  for (size_t i = 0; i < n && rc == 0; i += step) rc = mh_mime7_convert(m, in + i, n - i < step ? n - i : step);
  if (rc == 0) rc = mh_mime7_convert_end(m);
  mh_mime7_free(m);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  unsigned what = data[0] & 3;
  size_t step = 1 + (data[0] >> 2);
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  rbuf a = { 0 }, b = { 0 };
  uint64_t sa, sb;
  int ca, cb;
  int ra = run(in, n, what, n ? n : 1, &a, &sa, &ca);
  int rb = run(in, n, what, step, &b, &sb, &cb);
  assert(ra == rb && ca == cb && sa == sb);
  if (ra == 0) {
    assert(ca);
    assert(a.n == sa);                                   /* the size said is the size written */
    assert(a.n == b.n && (a.n == 0 || !memcmp(a.p, b.p, a.n)));   /* whatever the pieces */
    for (size_t i = 0; i < a.n; i++) {
      if (a.p[i] == '\r') assert(i + 1 < a.n && a.p[i + 1] == '\n');
      if (a.p[i] == '\n') assert(i > 0 && a.p[i - 1] == '\r');
    }
    if (what == (MH_MIME7_BODIES | MH_MIME7_HEADERS)) {
      /* 7-bit.  A NUL may stay where the converter leaves it (a header field, a part
      ** that says it is encoded already): the data writer drops it (smtp.c,
      ** test-smtp-dotw.c); the converter never adds one */
      size_t nul_in = 0, nul_out = 0;
      for (size_t i = 0; i < n; i++) nul_in += in[i] == '\0';
      for (size_t i = 0; i < a.n; i++) {
        assert((unsigned char)a.p[i] < 0x80);
        nul_out += a.p[i] == '\0';
      }
      assert(nul_out <= nul_in);
      size_t x, y;
      char *da = ref_decode(in, n, &x), *db = ref_decode(a.p ? a.p : "", a.n, &y);
      assert(x == y && !memcmp(da, db, x));              /* decodes to the original */
      free(da);
      free(db);
    }
  } else {
    assert(ra == MH_E8BIT && !ca);
  }
  free(a.p);
  free(b.p);
  return 0;
}
