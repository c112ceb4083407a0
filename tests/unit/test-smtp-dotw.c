/*
** test-smtp-dotw.c — the data writer (mh_smtp_dot_write, smtp.h) against a
** byte-by-byte reference written from its contract: line ends of any kind
** leave as CRLF, a line starting with '.' gets another (not with nostuff, for
** BDAT), a line over 998 octets is broken (folded in the header).  The writer
** takes whole clean lines at once (memchr); random messages cut into random
** pieces must come out identical to the reference, byte for byte.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "smtp.h"

/* The reference: one byte at a time, the contract and nothing else. */
typedef struct { int bol, cr, body, empty, nostuff, ws; size_t col; unsigned long dots; } ref;

static void ref_eol(ref *r, mh_buf *o) {
  if (!r->body && r->empty) r->body = 1;
  r->bol = r->empty = 1;
  r->col = 0;
  r->ws = 0;
  mh_buf_add(o, "\r\n", 2);
}

static void ref_byte(ref *r, mh_buf *o, char c) {
  if (r->cr) {
    r->cr = 0;
    ref_eol(r, o);
    if (c == '\n') return;
  }
  if (c == '\r') { r->cr = 1; return; }
  if (c == '\n') { ref_eol(r, o); return; }
  if (c == '\0') return;   /* never sent: dropped, after a CR's line end (no line end merged) */
  /* a header line past column 900 is folded before a blank that follows a non-blank */
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
  if (r->bol && c == '.' && !r->nostuff) { mh_buf_add(o, ".", 1); r->col++; r->dots++; }
  r->bol = r->empty = 0;
  r->col++;
  mh_buf_add(o, &c, 1);
}

static void ref_end(ref *r, mh_buf *o) {
  if (r->cr) { r->cr = 0; ref_eol(r, o); }
  if (!r->bol) ref_eol(r, o);
}

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (unsigned)(rng % n);
}

/* A message: mostly CRLF text lines, with dots, bare CR and LF, empty lines,
** long lines and 8-bit bytes mixed in, as kind asks. */
static size_t make(char *m, size_t cap, int kind) {
  size_t n = 0;
  while (n + 5000 < cap) {   /* room for the longest line and its end */
    unsigned what = rnd(kind ? 20 : 200), len = rnd(90);
    if (what == 0) len = 990 + rnd(20);          /* around the 998 limit */
    else if (what == 1) len = 1500 + rnd(3000);  /* to be broken */
    if (what == 2) m[n++] = '.';
    if (what == 3) { m[n++] = '.'; m[n++] = '.'; }
    for (unsigned k = 0; k < len; k++)
      m[n++] = (char)(kind == 2 && rnd(60) == 0 ? 0 : kind && rnd(50) == 0 ? 0xc3 : rnd(12) == 0 ? ' ' : 'a' + rnd(26));
    if (kind == 2 && rnd(20) == 0) m[n++] = 0;   /* a NUL before the line end, or at a line's start */
    switch (rnd(kind ? 8 : 40)) {
      case 0: m[n++] = '\n'; break;
      case 1: m[n++] = '\r'; break;
      case 2: m[n++] = '\r'; m[n++] = '\r'; m[n++] = '\n'; break;
      case 3: break;   /* the next line runs on */
      default: m[n++] = '\r'; m[n++] = '\n'; break;
    }
    if (rnd(30) == 0) { m[n++] = '\r'; m[n++] = '\n'; }   /* an empty line */
  }
  return n;
}

/* A session streaming a message in pieces: what reaches the server. */
typedef struct { mh_buf out; int more; } srec;
static void sw(void *ud, const char *b, size_t n) { mh_buf_add(&((srec *)ud)->out, b, n); }
static void st(void *ud, uint64_t ms) { (void)ud; (void)ms; }
static void ss(void *ud) { (void)ud; }
static void sd(void *ud, int rc) { (void)ud; (void)rc; }
static void sm(void *ud) { ((srec *)ud)->more++; }

static void feed(mh_smtp *s, const char *t) { mh_smtp_data(s, t, strlen(t)); }

/* The message as the session sends it (DATA: stuffed, its dot; BDAT: the
** chunks' bytes joined), in pieces of random sizes; NULL when it did not go. */
static mh_buf streamed(const char *msg, size_t len, int chunking) {
  srec r = { { 0 }, 0 };
  mh_smtp_params p = { .helo = "c", .command_ms = 1000, .data_ms = 1000 };
  mh_smtp_io io = { &r, sw, st, ss, sd, sm };
  mh_smtp *s = mh_smtp_new(&p, &io);
  const char *to[] = { "b@x" };
  mh_buf body = { 0 };
  mh_smtp_connected(s, 0);
  feed(s, "220 x\r\n");
  feed(s, chunking ? "250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n" : "250-x\r\n250 PIPELINING\r\n");
  if (mh_smtp_send_stream(s, "a@x", to, 1, len, 0, NULL) < 0) diag("send: %s", mh_smtp_send_error(s, NULL));
  feed(s, chunking ? "250 ok\r\n250 ok\r\n" : "250 ok\r\n250 ok\r\n354 go\r\n");
  r.out.len = 0;
  for (size_t i = 0; i < len;) {
    size_t n = rnd(3) == 0 ? 1 + rnd(5) : 1 + rnd(300000);
    if (n > len - i) n = len - i;
    mh_smtp_more(s, msg + i, n, i + n == len);
    mh_smtp_flushed(s);
    i += n;
  }
  if (!chunking) {
    mh_buf_add(&body, r.out.data, r.out.len);
  } else {   /* "BDAT n[ LAST]\r\n" and n bytes, again and again */
    size_t k = 0;
    while (k < r.out.len) {
      char *e;
      size_t n = strtoul(r.out.data + k + 5, &e, 10);
      const char *d = strstr(e, "\r\n") + 2;
      mh_buf_add(&body, d, n);
      k = (size_t)(d - r.out.data) + n;
    }
  }
  mh_smtp_free(s);
  mh_buf_free(&r.out);
  return body;
}

int main(void) {
  static char msg[400000];
  int bad = 0, cases = 0;
  for (int round = 0; round < 300; round++) {
    int nostuff = round & 1, kind = (round >> 1) % 3;
    size_t len = make(msg, 20000 + rnd(sizeof msg - 20000), kind);
    mh_buf a = { 0 }, b = { 0 };
    ref r = { 1, 0, 0, 1, nostuff, 0, 0, 0 };
    mh_smtp_dotw w;
    mh_smtp_dot_init(&w);
    w.nostuff = nostuff;
    for (size_t i = 0; i < len; i++) ref_byte(&r, &a, msg[i]);
    ref_end(&r, &a);
    /* the writer, given the message in random pieces (1 byte .. 70 KB) */
    for (size_t i = 0; i < len;) {
      size_t n = rnd(4) == 0 ? 1 + rnd(3) : 1 + rnd(70000);
      if (n > len - i) n = len - i;
      mh_smtp_dot_write(&w, &b, msg + i, n);
      i += n;
    }
    mh_smtp_dot_end(&w, &b);
    cases++;
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0 || r.dots != w.dots) {
      if (!bad++) {
        size_t k = 0;
        while (k < a.len && k < b.len && a.data[k] == b.data[k]) k++;
        diag("round %d (nostuff %d kind %d): lengths %zu %zu, dots %lu %lu, first difference at %zu",
             round, nostuff, kind, a.len, b.len, r.dots, (unsigned long)w.dots, k);
      }
    }
    mh_buf_free(&a);
    mh_buf_free(&b);
  }
  is_int(bad, 0, "%d random messages in random pieces: the writer's bytes are the reference's", cases);
  /* the same through a session streaming them (clean lines handed on without
     a copy, the rest through the writer), with DATA and with BDAT */
  bad = 0;
  for (int round = 0; round < 60; round++) {
    int chunking = round & 1;
    size_t len = make(msg, 20000 + rnd(sizeof msg - 20000), (round >> 1) % 3);
    mh_buf a = { 0 }, b;
    ref r = { 1, 0, 0, 1, chunking, 0, 0, 0 };
    for (size_t i = 0; i < len; i++) ref_byte(&r, &a, msg[i]);
    ref_end(&r, &a);
    if (!chunking) mh_buf_add(&a, ".\r\n", 3);
    b = streamed(msg, len, chunking);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
      if (!bad++) diag("session round %d (chunking %d): lengths %zu %zu", round, chunking, a.len, b.len);
    }
    mh_buf_free(&a);
    mh_buf_free(&b);
  }
  is_int(bad, 0, "60 messages streamed in random pieces, DATA and BDAT: the server gets the reference's bytes");
  /* the one-append path: a clean message is one mh_buf_add, so its output is
     exactly its input */
  {
    const char *m = "Subject: x\r\n\r\n.dot\r\nline\r\n";
    mh_buf o = { 0 };
    mh_smtp_dotw w;
    mh_smtp_dot_init(&w);
    w.nostuff = 1;
    mh_smtp_dot_write(&w, &o, m, strlen(m));
    is_str(o.data, m, "BDAT: a clean message leaves exactly as given");
    mh_buf_free(&o);
    mh_smtp_dot_init(&w);
    mh_smtp_dot_write(&w, &o, m, strlen(m));
    mh_smtp_dot_finish(&w, &o);
    is_str(o.data, "Subject: x\r\n\r\n..dot\r\nline\r\n.\r\n", "DATA: the same stuffed, with the dot");
    mh_buf_free(&o);
  }
  /* NUL bytes never leave (RFC 5321 §4.5.2): dropped; a CR before one is still
     a line end of its own, as the header parsers split it (eol.h) */
  {
    const char *m = "Subject: a\0b\r\0\nX: y\r\n\r\n\0.dot\0\r\nend";
    mh_buf o = { 0 };
    mh_smtp_dotw w;
    mh_smtp_dot_init(&w);
    mh_smtp_dot_write(&w, &o, m, 34);
    mh_smtp_dot_finish(&w, &o);
    is_str(o.data, "Subject: ab\r\n\r\nX: y\r\n\r\n..dot\r\nend\r\n.\r\n",
           "NULs dropped; CR NUL LF is two line ends; a line that starts with NUL then '.' is stuffed");
    mh_buf_free(&o);
  }
  return done_testing();
}
