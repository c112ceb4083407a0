/*
** fuzz-intake.c — libFuzzer target for mailhook sendmail's streaming reader
** (runtime/intake.c).  The first byte chooses the lone-dot rule and where the
** input is cut into reads (a packet pipe: one write, one read); the rest is
** the input.  Asserts: no crash or leak, and the bytes written are exactly
** those of the in-memory rule it replaced (a UTF-8 BOM first dropped, every line end, CR* LF included,
** made CRLF, cut before the first
** lone "." line, CRLF at the end), and the head is their prefix.
*/
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "intake.h"
#include "../unit/intake-ref.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  int dot = data[0] & 1, step = 1 + (data[0] >> 1);   /* packets of 1..128 bytes */
  const char *in = (const char *)data + 1;
  size_t n = size - 1, at = 0;
  int p[2], empty, out;
  const char *head;
  size_t hl;
  char err[MH_INTAKE_ERRLEN];
  char *want = malloc(2 * n + 4), *got = malloc(2 * n + 4);
  if (pipe2(p, O_DIRECT) < 0) abort();
  /* every packet takes a page of the pipe until read: at most 14 of them fit
  ** the default pipe, so longer inputs are cut into fewer, larger packets */
  if (n / (size_t)step > 14) step = (int)(n / 14 + 1);
  size_t wl = intake_reference(in, n, dot, want);   /* a BOM first: dropped, however cut */
  while (at < n) {
    size_t k = n - at < (size_t)step ? n - at : (size_t)step;
    if (write(p[1], in + at, k) != (ssize_t)k) abort();
    at += k;
  }
  close(p[1]);
  mh_intake *r = mh_intake_new(p[0], dot);
  if (mh_intake_head(r, &head, &hl, &empty, err)) abort();   /* under 4 MB: never refused */
  if (empty != (wl == 0) || hl > wl || memcmp(head, want, hl)) abort();
  if (!empty) {
    if ((out = memfd_create("intake", 0)) < 0) abort();
    if (mh_intake_write(r, out)) abort();
    if ((size_t)pread(out, got, 2 * n + 4, 0) != wl || memcmp(got, want, wl)) abort();
    close(out);
  }
  mh_intake_free(r);
  close(p[0]);
  free(want);
  free(got);
  return 0;
}
