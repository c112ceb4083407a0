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

/* The writer given msg cut at the offsets in cuts (ascending, then len), and
** the session streaming it cut there (DATA, its direct writes of clean lines
** included): does each match the reference?  0 both, else which failed. */
static int cut_case(const char *msg, size_t len, const size_t *cuts, size_t ncuts) {
  mh_buf a = { 0 }, b = { 0 };
  ref r = { 1, 0, 0, 1, 0, 0, 0, 0 };
  mh_smtp_dotw w;
  int bad = 0;
  for (size_t i = 0; i < len; i++) ref_byte(&r, &a, msg[i]);
  ref_end(&r, &a);
  mh_smtp_dot_init(&w);
  for (size_t k = 0, at = 0; k <= ncuts; k++) {
    size_t to = k < ncuts ? cuts[k] : len;
    mh_smtp_dot_write(&w, &b, msg + at, to - at);
    at = to;
  }
  mh_smtp_dot_end(&w, &b);
  if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0 || r.dots != w.dots) bad |= 1;
  mh_buf_add(&a, ".\r\n", 3);
  {
    srec sr = { { 0 }, 0 };
    mh_smtp_params p = { .helo = "c", .command_ms = 1000, .data_ms = 1000 };
    mh_smtp_io io = { &sr, sw, st, ss, sd, sm };
    mh_smtp *s = mh_smtp_new(&p, &io);
    const char *to[] = { "b@x" };
    mh_smtp_connected(s, 0);
    feed(s, "220 x\r\n");
    feed(s, "250-x\r\n250 PIPELINING\r\n");
    mh_smtp_send_stream(s, "a@x", to, 1, len, 0, NULL);
    feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
    sr.out.len = 0;
    for (size_t k = 0, at = 0; k <= ncuts; k++) {
      size_t end = k < ncuts ? cuts[k] : len;
      mh_smtp_more(s, msg + at, end - at, end == len);
      mh_smtp_flushed(s);
      at = end;
    }
    if (sr.out.len != a.len || memcmp(sr.out.data, a.data, a.len) != 0) bad |= 2;
    mh_smtp_free(s);
    mh_buf_free(&sr.out);
  }
  mh_buf_free(&a);
  mh_buf_free(&b);
  return bad;
}

/* The body's line scan (smtp.c clean_body: 32 octets' line ends at once)
** at its edges, each special line put at every offset of a 70-octet span
** (every place in a 32-octet window, its last two included, where a CRLF's
** LF falls in the next one) in a body of 80-octet lines, the message cut
** there and around it, and at a 256 KiB piece boundary as the client cuts
** a spool file: a line that starts with '.', a CR that ends one piece and
** its LF that starts the next, a bare CR, a bare LF, CR CR LF, and lines of
** 997 to 1000 octets (998 is the most that leaves whole). */
static void scan_edges(void) {
  static char m[300000];
  static const char *const specials[] = { ".dot", "..", ".", "bare\rcr", "bare\nlf", "crcr\r\r", "\r", "\n", NULL };
  static const size_t longs[] = { 997, 998, 999, 1000 };
  const size_t piece = 262144;
  int bad = 0, cases = 0;
  for (int kind = 0; kind < 12; kind++) {
    for (size_t shift = 0; shift < 70; shift++) {
      size_t n = 0, at, l;
      n += (size_t)sprintf(m, "Subject: edges\r\n\r\n");
      /* lines of 80 up to the special's offset (then a filler of shift octets) */
      for (int k = 0; k < 40; k++) { memset(m + n, 'a' + k % 26, 78); n += 78; m[n++] = '\r'; m[n++] = '\n'; }
      memset(m + n, 'f', shift); n += shift; m[n++] = '\r'; m[n++] = '\n';
      at = n;
      if (kind < 8) {
        l = strlen(specials[kind]);
        memcpy(m + n, specials[kind], l);
      } else {
        l = longs[kind - 8];
        memset(m + n, 'L', l);
      }
      n += l;
      m[n++] = '\r'; m[n++] = '\n';
      for (int k = 0; k < 10; k++) { memset(m + n, 'z', 78); n += 78; m[n++] = '\r'; m[n++] = '\n'; }
      {
        size_t cuts1[] = { at }, cuts2[] = { at - 1 }, cuts3[] = { at + 1 }, cuts4[] = { at + l + 1 };
        int r = cut_case(m, n, NULL, 0) | cut_case(m, n, cuts1, 1) | cut_case(m, n, cuts2, 1) |
                cut_case(m, n, cuts3, 1) | cut_case(m, n, cuts4, 1);
        cases += 5;
        if (r && !bad++) diag("special %d at +%zu: %s wrong", kind, shift, r & 1 ? "the writer" : "the session");
      }
    }
  }
  is_int(bad, 0, "%d cuts of special lines at every place of the 32-octet scan: the reference's bytes", cases);
  /* at the client's 256 KiB piece boundary: a '.' line opening the second
     piece, then a CR ending the first piece with its LF opening the second */
  bad = 0;
  for (int kind = 0; kind < 3; kind++) {
    size_t n = (size_t)sprintf(m, "Subject: piece\r\n\r\n"), cuts[] = { piece };
    while (n < piece - 100) { memset(m + n, 'p', 78); n += 78; m[n++] = '\r'; m[n++] = '\n'; }
    /* fill to the boundary: the last line before it ends at piece (kind 0),
       one octet before (kind 1: its CR last in the piece), or runs over (kind 2) */
    {
      size_t stop = kind == 0 ? piece - 2 : kind == 1 ? piece - 1 : piece + 5;
      while (n < stop) m[n++] = 'q';
      m[n++] = '\r';
      m[n++] = '\n';
    }
    memcpy(m + n, ".first\r\n..second\r\n", 19); n += 19;
    for (int k = 0; k < 100; k++) { memset(m + n, 'r', 78); n += 78; m[n++] = '\r'; m[n++] = '\n'; }
    if (cut_case(m, n, cuts, 1)) bad++;
    if (kind == 1 && !(m[piece - 1] == '\r' && m[piece] == '\n')) bad++;
    if (kind == 0 && m[piece] != '.') bad++;
  }
  is_int(bad, 0, "a '.' line opening a 256 KiB piece, a CRLF split across two: stuffed once, one line end");
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
  scan_edges();
  return done_testing();
}
