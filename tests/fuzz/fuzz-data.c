/*
** fuzz-data.c — the data writer: whatever the message bytes and however they
** are split, the output has only CRLF line ends, no line over 998 octets but
** where a fold was needed, every line starting with '.' is stuffed, and
** "\r\n.\r\n" appears exactly once: at the very end; no NUL is sent.  And the output is the
** same however the input is split, and the same as a plain byte-at-a-time
** reference writer's (the engine copies runs of ordinary bytes at once, and
** whole clean lines found with memchr).  BDAT's mode (nostuff: no dot doubled,
** no final dot) matches the reference without its stuffing too.
*/
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "smtp.h"

/* The reference: one byte at a time, the rules spelled out. */
typedef struct { int bol, cr, body, empty, col, nostuff, ws; } ref;
static void ref_eol(ref *r, mh_buf *o) {
  if (!r->body && r->empty) r->body = 1;
  r->bol = r->empty = 1;
  r->col = 0;
  r->ws = 0;
  mh_buf_add(o, "\r\n", 2);
}
static void ref_write(ref *r, mh_buf *o, const uint8_t *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = (char)in[i];
    if (r->cr) { r->cr = 0; ref_eol(r, o); if (c == '\n') continue; }
    if (c == '\r') { r->cr = 1; continue; }
    if (c == '\n') { ref_eol(r, o); continue; }
    if (c == '\0') continue;   /* never sent: dropped, no fold, the line stays empty if it was */
    /* a header line past column 900 is folded before a blank that follows a
    ** non-blank (as tests/unit/test-smtp-dotw.c's reference, since 3b22841) */
    if (!r->body && (c == ' ' || c == '\t') && !r->ws && r->col >= MH_SMTP_FOLD_AT && r->col < MH_SMTP_TEXT_LINE) {
      mh_buf_add(o, "\r\n", 2);
      r->col = 0;
    }
    r->ws = c == ' ' || c == '\t';
    if (r->col >= MH_SMTP_TEXT_LINE) {
      mh_buf_add(o, r->body ? "\r\n" : "\r\n ", r->body ? 2 : 3);
      r->col = r->body ? 0 : 1;
      r->bol = r->body;
    }
    if (r->bol && c == '.' && !r->nostuff) { mh_buf_add(o, ".", 1); r->col++; }
    r->bol = r->empty = 0;
    r->col++;
    mh_buf_add(o, &c, 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mh_smtp_dotw w;
  mh_buf out = { 0 };
  size_t split = size ? data[0] % (size + 1) : 0;
  mh_smtp_dot_init(&w);
  mh_smtp_dot_write(&w, &out, (const char *)data, split);
  mh_smtp_dot_write(&w, &out, (const char *)data + split, size - split);
  mh_smtp_dot_finish(&w, &out);
  {
    mh_smtp_dotw w1;
    mh_buf whole = { 0 }, exp = { 0 };
    ref r = { 1, 0, 0, 1, 0, 0 };
    mh_smtp_dot_init(&w1);
    mh_smtp_dot_write(&w1, &whole, (const char *)data, size);
    mh_smtp_dot_finish(&w1, &whole);
    assert(whole.len == out.len && memcmp(whole.data, out.data, out.len) == 0);
    ref_write(&r, &exp, data, size);
    if (r.cr) { r.cr = 0; ref_eol(&r, &exp); }
    if (!r.bol) ref_eol(&r, &exp);
    mh_buf_add(&exp, ".\r\n", 3);
    assert(exp.len == out.len && memcmp(exp.data, out.data, out.len) == 0);
    mh_buf_free(&whole);
    mh_buf_free(&exp);
  }
  {   /* BDAT: the same bytes unstuffed, split where the other was */
    mh_smtp_dotw wb;
    mh_buf got = { 0 }, exp = { 0 };
    ref r = { 1, 0, 0, 1, 0, 1 };
    mh_smtp_dot_init(&wb);
    wb.nostuff = 1;
    mh_smtp_dot_write(&wb, &got, (const char *)data, split);
    mh_smtp_dot_write(&wb, &got, (const char *)data + split, size - split);
    mh_smtp_dot_end(&wb, &got);
    ref_write(&r, &exp, data, size);
    if (r.cr) { r.cr = 0; ref_eol(&r, &exp); }
    if (!r.bol) ref_eol(&r, &exp);
    assert(exp.len == got.len && (got.len == 0 || memcmp(exp.data, got.data, got.len) == 0));
    assert(wb.dots == 0);
    mh_buf_free(&got);
    mh_buf_free(&exp);
  }
  const char *o = out.data;
  size_t n = out.len;
  assert(n >= 3 && memcmp(o + n - 3, ".\r\n", 3) == 0);
  assert(n == 3 || (n >= 5 && memcmp(o + n - 5, "\r\n.\r\n", 5) == 0));
  size_t col = 0;
  int bol = 1;
  for (size_t i = 0; i < n; i++) {
    if (o[i] == '\r') { assert(i + 1 < n && o[i + 1] == '\n'); continue; }
    if (o[i] == '\n') { assert(i > 0 && o[i - 1] == '\r'); col = 0; bol = 1; continue; }
    if (bol && o[i] == '.' && i + 3 != n) {
      /* a line starting with '.' inside the data: stuffed, so never "." alone */
      assert(i + 1 < n && o[i + 1] == '.');
    }
    bol = 0;
    col++;
    assert(col <= 1000);   /* 998 + a stuffed dot + a folding space */
  }
  /* the terminator only at the end (the input itself may never produce it) */
  const char *t = o;
  size_t left = n;
  while (left >= 5) {
    const char *hit = memmem(t, left, "\r\n.\r\n", 5);
    if (!hit) break;
    assert(hit + 5 == o + n);
    left -= (size_t)(hit + 1 - t);
    t = hit + 1;
  }
  assert(!(n > 3 && memcmp(o, ".\r\n", 3) == 0));
  mh_buf_free(&out);
  return 0;
}
