/*
** test-mime7.c — the 7-bit converter (runtime/mime7.h) on its own: fixed cases
** for each rule (8-bit text to quoted-printable or base64, whichever is smaller;
** nested multiparts and message/rfc822; RFC 2047 words for Subject and display
** names; RFC 2231 for parameters; what cannot be converted, with why), and a
** property over random MIME messages: the converted message is 7-bit, its
** encoded lines are at most 76 octets, its size is what mh_mime7_size said,
** it is the same whatever the pieces it was fed in, and an independent decoder
** (tests/unit/mime7-ref.h) reads in it exactly what it reads in the original.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "mime7.h"
#include "error.h"
#include "mime7-ref.h"

static int sink(void *ud, const char *p, size_t n) { rb_add((rbuf *)ud, p, n); return 0; }

/* Converts msg fed in pieces at cuts (a cut every `step` bytes; 0 = whole). */
typedef struct {
  int rc;             /* convert's result */
  const char *why;    /* mh_mime7_why */
  uint64_t size;      /* mh_mime7_size(what) */
  mh_mime7_info info;
  rbuf out;
} conv;

static conv run(const char *msg, size_t n, unsigned what, size_t step) {
  conv c;
  mh_mime7 *m = mh_mime7_new();
  memset(&c, 0, sizeof c);
  if (!step) step = n ? n : 1;
  for (size_t i = 0; i < n; i += step) mh_mime7_scan(m, msg + i, n - i < step ? n - i : step);
  mh_mime7_scan_end(m);
  c.info = *mh_mime7_get_info(m);
  c.why = mh_mime7_why(m, what);
  static char whybuf[300];
  if (c.why) { snprintf(whybuf, sizeof whybuf, "%s", c.why); c.why = whybuf; }
  c.size = mh_mime7_size(m, what);
  c.rc = mh_mime7_convert_begin(m, what, sink, &c.out);
  for (size_t i = 0; i < n && c.rc == 0; i += step) c.rc = mh_mime7_convert(m, msg + i, n - i < step ? n - i : step);
  if (c.rc == 0) c.rc = mh_mime7_convert_end(m);
  if (!c.out.p) rb_add(&c.out, "", 0);
  mh_mime7_free(m);
  return c;
}

/* The output is 7-bit, CRLF only, lines at most 998 octets (76 where long = 0). */
static int seven_bit(const rbuf *o, size_t maxline) {
  size_t col = 0;
  for (size_t i = 0; i < o->n; i++) {
    unsigned char c = (unsigned char)o->p[i];
    if (c >= 0x80 || c == 0) return 0;
    if (c == '\r') { if (i + 1 >= o->n || o->p[i + 1] != '\n') return 0; continue; }
    if (c == '\n') { if (i == 0 || o->p[i - 1] != '\r') return 0; col = 0; continue; }
    if (++col > maxline) return 0;
  }
  return 1;
}

/* The canonical decodings of a and b are the same. */
static int same_decoded(const char *a, size_t an, const char *b, size_t bn) {
  size_t x, y;
  char *da = ref_decode(a, an, &x), *db = ref_decode(b, bn, &y);
  int same = x == y && !memcmp(da, db, x);
  if (!same && getenv("MIME7_DUMP") && access("/tmp/mime7-a", F_OK) != 0) {
    FILE *f = fopen("/tmp/mime7-a", "wb"); fwrite(da, 1, x, f); fclose(f);
    f = fopen("/tmp/mime7-b", "wb"); fwrite(db, 1, y, f); fclose(f);
    f = fopen("/tmp/mime7-in", "wb"); fwrite(a, 1, an, f); fclose(f);
    f = fopen("/tmp/mime7-out", "wb"); fwrite(b, 1, bn, f); fclose(f);
  }
  if (!same) {
    diag("original decodes to:\n%s", da);
    diag("converted decodes to:\n%s", db);
  }
  free(da);
  free(db);
  return same;
}

static void free_conv(conv *c) { free(c->out.p); }

/* ------------------------------------------------------------ fixed cases */

static void test_plain_8bit(void) {
  const char *msg = "From: a@example.com\nTo: b@example.com\nSubject: hi\n\nCaf\xc3\xa9 cr\xc3\xa8me\nline two  \n";
  conv c = run(msg, strlen(msg), MH_MIME7_BODIES, 0);
  is_int(c.rc, 0, "a message without MIME fields and an 8-bit body converts");
  ok(c.info.body8 && !c.info.head8, "scan: 8-bit body, 7-bit header");
  ok(seven_bit(&c.out, 76), "the output is 7-bit, CRLF, lines <= 76");
  ok(strstr(c.out.p, "MIME-Version: 1.0\r\n") && strstr(c.out.p, "Content-Type: text/plain; charset=utf-8\r\n") &&
     strstr(c.out.p, "Content-Transfer-Encoding: quoted-printable\r\n"), "MIME fields added");
  ok(strstr(c.out.p, "\r\n\r\nCaf=C3=A9 cr=C3=A8me\r\nline two =20\r\n") != NULL,
     "quoted-printable body; the trailing blank before a line end encoded");
  is_int(c.size, c.out.n, "the size said is the size written (%zu)", c.out.n);
  ok(same_decoded(msg, strlen(msg), c.out.p, c.out.n), "decodes to the original text");
  free_conv(&c);

  const char *latin = "Subject: x\n\n\xe9t\xe9\n";
  c = run(latin, strlen(latin), MH_MIME7_BODIES, 0);
  ok(strstr(c.out.p, "charset=unknown-8bit") != NULL, "not UTF-8: the charset added says unknown-8bit");
  ok(same_decoded(latin, strlen(latin), c.out.p, c.out.n), "and decodes to the same bytes");
  free_conv(&c);

  /* mostly 8-bit: base64 is smaller */
  const char *cjk = "Subject: x\nContent-Type: text/plain; charset=UTF-8\n\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae"
                    "\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xa7\xe3\x81\x99\n";
  c = run(cjk, strlen(cjk), MH_MIME7_BODIES, 0);
  ok(strstr(c.out.p, "Content-Transfer-Encoding: base64\r\n") != NULL, "mostly 8-bit text: base64, the smaller");
  ok(same_decoded(cjk, strlen(cjk), c.out.p, c.out.n), "decodes to the original");
  is_int(c.size, c.out.n, "size exact");
  free_conv(&c);

  const char *ascii = "Subject: x\n\nplain\n";
  c = run(ascii, strlen(ascii), MH_MIME7_BODIES | MH_MIME7_HEADERS, 0);
  is_str(c.out.p, "Subject: x\r\n\r\nplain\r\n", "7-bit input: unchanged but for its line ends");
  ok(!c.info.body8 && !c.info.head8, "scan: nothing 8-bit");
  free_conv(&c);
}

static void test_headers(void) {
  const char *msg = "From: J\xc3\xa9r\xc3\xb4me Dupont <j@example.com>, \"Ann, B\" <ann@example.com>\n"
                    "To: \"Z\xc3\xb6" "e\" <z@example.com>\n"
                    "Subject: h\xc3\xa9llo w\xc3\xb6rld, \xc3\xa7\x61 va ? A long subject that goes on and on, with "
                    "accents \xc3\xa0 \xc3\xa9 \xc3\xa8 \xc3\xb9 and more words to fold over several lines\n"
                    "X-Note:   caf\xc3\xa9\n"
                    "\nbody\n";
  conv c = run(msg, strlen(msg), MH_MIME7_HEADERS, 0);
  is_int(c.rc, 0, "8-bit header fields convert");
  ok(c.info.head8 && !c.info.body8, "scan: 8-bit header only");
  ok(seven_bit(&c.out, 78), "7-bit, lines <= 78");
  ok(strstr(c.out.p, "Subject: =?UTF-8?B?") != NULL, "Subject as RFC 2047 words");
  ok(strstr(c.out.p, "From: =?UTF-8?B?") != NULL && strstr(c.out.p, "<j@example.com>") != NULL &&
     strstr(c.out.p, "\"Ann, B\" <ann@example.com>") != NULL, "a display name as words; the ASCII one as it was");
  is_int(c.size, c.out.n, "size exact");
  ok(same_decoded(msg, strlen(msg), c.out.p, c.out.n), "decodes to the original fields");
  free_conv(&c);

  static const struct { const char *msg; const char *why; } bad[] = {
    { "To: j\xc3\xa9r\xc3\xb4me@example.com\n\nx\n", "non-ASCII address" },
    { "To: Name <j\xc3\xa9@example.com>\n\nx\n", "non-ASCII address" },
    { "Message-ID: <\xc3\xa9@example.com>\n\nx\n", "Message-ID header" },
    { "From: J\xc3\xa9 (comment \xc3\xa9) <j@example.com>\n\nx\n", "8-bit comment" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = run(bad[i].msg, strlen(bad[i].msg), MH_MIME7_HEADERS, 0);
    ok(c.why && strstr(c.why, bad[i].why), "cannot convert (%s): %s", bad[i].why, c.why ? c.why : "(null)");
    is_int(c.rc, MH_E8BIT, "and convert says MH_E8BIT");
    free_conv(&c);
  }
}

static void test_nested(void) {
  const char *msg =
    "From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"
    "preamble\n"
    "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
    "--inner\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n"
    "Gr\xc3\xbc\xc3\x9f Gott\n--dash line\n.dot line\n\n"
    "--inner\nContent-Type: text/html; charset=UTF-8\n\n<p>\xc3\xa9</p>\n"
    "--inner--\n"
    "--outer\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"
    "Subject: inner \xc3\xa9\nFrom: x@example.com\n\nInner body \xc3\xa9\n"
    "--outer\nContent-Type: application/octet-stream; name=\"\xc3\xa9t\xc3\xa9.bin\"\n"
    "Content-Disposition: attachment; filename=\"\xc3\xa9t\xc3\xa9-a-rather-long-file-name-to-make-a-continuation.bin\"\n\n"
    "\xff\xfe\x01\x02 binary-ish \x80\n"
    "--outer\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n"
    "--outer--\nepilogue\n";
  for (size_t step = 0; step <= 7; step += 7) {
    conv c = run(msg, strlen(msg), MH_MIME7_BODIES | MH_MIME7_HEADERS, step);
    is_int(c.rc, 0, "nested multiparts and a message/rfc822 convert (pieces of %zu)", step);
    ok(seven_bit(&c.out, 998), "7-bit");
    is_int(c.info.parts, 8, "8 entities met");
    ok(strstr(c.out.p, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n") != NULL,
       "message/rfc822 relabelled 7bit (it cannot be encoded), its message converted inside");
    ok(strstr(c.out.p, "Subject: =?UTF-8?B?") != NULL, "the inner message's Subject as words");
    ok(strstr(c.out.p, "filename*0*=utf-8''%C3%A9t%C3%A9") != NULL && strstr(c.out.p, "filename*1*=") != NULL,
       "an 8-bit filename as an RFC 2231 value, in continuations");
    ok(strstr(c.out.p, "name*=utf-8''%C3%A9t%C3%A9.bin") != NULL, "an 8-bit name parameter");
    ok(strstr(c.out.p, "\r\n=2D-dash line\r\n") != NULL, "a line starting with '-' in an encoded part: =2D");
    ok(strstr(c.out.p, "aGVsbG8=\r\n--outer--") != NULL, "the base64 part passes unchanged");
    is_int(c.size, c.out.n, "size exact");
    ok(same_decoded(msg, strlen(msg), c.out.p, c.out.n), "decodes to the original, part by part");
    free_conv(&c);
  }
  /* only the headers (a server with 8BITMIME, without SMTPUTF8): nested part
  ** headers are body to SMTP, left alone */
  conv c = run(msg, strlen(msg), MH_MIME7_HEADERS, 0);
  is_int(c.rc, 0, "headers only");
  ok(strstr(c.out.p, "Gr\xc3\xbc\xc3\x9f") != NULL && strstr(c.out.p, "name=\"\xc3\xa9t\xc3\xa9.bin\"") != NULL,
     "8-bit bodies and part headers left as they are");
  is_int(c.size, c.out.n, "size exact");
  free_conv(&c);

  static const struct { const char *msg; const char *why; } bad[] = {
    { "Content-Type: multipart/mixed; boundary=b\n\npr\xc3\xa9\n--b\n\nx\n--b--\n", "preamble" },
    { "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n\xc3\xa9\n", "already encoded" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = run(bad[i].msg, strlen(bad[i].msg), MH_MIME7_BODIES, 0);
    ok(c.why && strstr(c.why, bad[i].why), "cannot convert (%s): %s", bad[i].why, c.why ? c.why : "(null)");
    free_conv(&c);
  }
}

static void test_long_and_edges(void) {
  /* a 3000-octet 8-bit line: soft breaks; a line that a soft break could make
  ** look like a boundary */
  rbuf m = { 0 };
  rb_adds(&m, "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\n");
  for (int i = 0; i < 1000; i++) rb_adds(&m, "\xc3\xa9-");
  rb_adds(&m, "\n");
  for (int i = 0; i < 74; i++) rb_adds(&m, "a");
  rb_adds(&m, "--zz\xc3\xa9\n--zz--\n");
  conv c = run(m.p, m.n, MH_MIME7_BODIES, 0);
  is_int(c.rc, 0, "long 8-bit lines convert");
  ok(seven_bit(&c.out, 76), "every line <= 76 octets");
  ok(same_decoded(m.p, m.n, c.out.p, c.out.n), "decodes to the original");
  is_int(c.size, c.out.n, "size exact");
  free_conv(&c);
  free(m.p);

  /* no final line end; bare CR and LF line ends */
  const char *msg = "Subject: a\rX: b\n\r\n\xc3\xa9\rx\r\ny";
  for (size_t step = 0; step <= 1; step++) {
    c = run(msg, strlen(msg), MH_MIME7_BODIES, step);
    is_int(c.rc, 0, "bare CR/LF and no final line end (pieces of %zu)", step);
    ok(seven_bit(&c.out, 76), "CRLF only");
    ok(same_decoded(msg, strlen(msg), c.out.p, c.out.n), "decodes to the original as sent");
    is_int(c.size, c.out.n, "size exact");
    free_conv(&c);
  }
  c = run("", 0, MH_MIME7_BODIES, 0);
  is_int(c.rc, 0, "an empty input");
  free_conv(&c);
  is_int(mh_mime7_head8("Subject: \xc3\xa9\r\n\r\nx", 15), 1, "head8: an 8-bit header");
  is_int(mh_mime7_head8("Subject: x\r\n\r\n\xc3\xa9", 15), 0, "head8: 8-bit only in the body");
}

/* ------------------------------------------------------------ property */

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static const char *const WORDS[] = { "a", "word", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xff", "\x80\x81",
                                     "-", "--", ".", "=", "=?x?", " ", "\t", "longerwordwithoutspaces",
                                     "\xf0\x9f\x98\x80", "Z" };
static void text(rbuf *b, int nwords, int header) {
  for (int i = 0; i < nwords; i++) {
    const char *w = WORDS[rnd(sizeof WORDS / sizeof WORDS[0])];
    if (header && (w[0] == '=' )) w = "x";
    rb_adds(b, w);
    if (!header && rnd(10) == 0) rb_adds(b, rnd(3) == 0 ? "\n" : rnd(2) ? "\r\n" : "\r");
    if (!header && rnd(40) == 0) rb_add(b, "\0", 1);
  }
}

static int nbnd;
static void entity(rbuf *b, int depth, int top) {
  int kind = depth < 3 ? (int)rnd(5) : 3;
  if (rnd(2)) { rb_adds(b, "Subject: "); text(b, 1 + (int)rnd(30), 1); rb_adds(b, "\r\n"); }
  if (rnd(2)) { rb_adds(b, "From: "); text(b, 1 + (int)rnd(5), 1); rb_adds(b, " <f@example.com>\n"); }
  if (rnd(3) == 0) { rb_adds(b, "X-Folded: one\r\n two "); text(b, 3, 1); rb_adds(b, "\n"); }
  if (kind <= 1) {
    char bnd[32];
    snprintf(bnd, sizeof bnd, "=_b%d_", nbnd++);
    rb_adds(b, "Content-Type: multipart/mixed; boundary=\"");
    rb_adds(b, bnd);
    rb_adds(b, "\"\n");
    if (rnd(3) == 0) rb_adds(b, "Content-Transfer-Encoding: 8bit\n");
    rb_adds(b, "\npreamble\n");
    int parts = 1 + (int)rnd(3);
    for (int i = 0; i < parts; i++) {
      rb_adds(b, "--"); rb_adds(b, bnd); rb_adds(b, rnd(3) ? "\r\n" : "  \n");
      entity(b, depth + 1, 0);
      rb_adds(b, "\r\n");
    }
    rb_adds(b, "--"); rb_adds(b, bnd); rb_adds(b, "--\r\n");
    if (rnd(2)) rb_adds(b, "epilogue\r\n");
  } else if (kind == 2) {
    rb_adds(b, "Content-Type: message/rfc822\n\n");
    entity(b, depth + 1, 0);
  } else {
    if (rnd(2)) {
      rb_adds(b, rnd(2) ? "Content-Type: text/plain; charset=UTF-8\n" : "Content-Type: application/octet-stream; name=\"");
      if (b->p[b->n - 1] == '"') { text(b, 1 + (int)rnd(4), 1); rb_adds(b, ".bin\"\n"); }
    }
    if (rnd(2)) rb_adds(b, rnd(2) ? "Content-Transfer-Encoding: 8bit\n" : "Content-Transfer-Encoding: 7bit\n");
    rb_adds(b, "\n");
    text(b, (int)rnd(200), 0);
  }
  (void)top;
}

static void test_property(void) {
  int bad_decode = 0, bad_7bit = 0, bad_size = 0, bad_pieces = 0, converted = 0, refused = 0;
  for (int round = 0; round < 400; round++) {
    rbuf m = { 0 };
    nbnd = 0;
    entity(&m, 0, 1);
    if (rnd(4) == 0) rb_adds(&m, "\n");
    unsigned what = MH_MIME7_BODIES | MH_MIME7_HEADERS;
    conv a = run(m.p, m.n, what, 0), b = run(m.p, m.n, what, 1 + rnd(37));
    if (a.why) {
      refused++;
    } else {
      converted++;
      if (a.rc || !seven_bit(&a.out, 998)) { bad_7bit++; if (bad_7bit == 1) diag("not 7-bit: %s", a.out.p); }
      if (a.size != a.out.n) bad_size++;
      if (a.out.n != b.out.n || memcmp(a.out.p, b.out.p, a.out.n)) bad_pieces++;
      if (!same_decoded(m.p, m.n, a.out.p, a.out.n)) {
        if (++bad_decode == 1) diag("round %d input:\n%.*s\noutput:\n%s", round, (int)m.n, m.p, a.out.p);
      }
    }
    conv z = run(m.p, m.n, 0, 0);   /* nothing converted: the input as sent */
    if (z.size != z.out.n) bad_size++;
    free_conv(&a);
    free_conv(&b);
    free_conv(&z);
    free(m.p);
  }
  diag("%d random messages converted, %d refused (a reason given)", converted, refused);
  ok(converted > 200, "most random messages convert");
  is_int(bad_7bit, 0, "every converted message is 7-bit, CRLF, lines <= 998");
  is_int(bad_size, 0, "mh_mime7_size is the size written, converted or not");
  is_int(bad_pieces, 0, "the same output whatever the pieces");
  is_int(bad_decode, 0, "every converted message decodes to the original");
}

/* RFC 5321 §4.5.3.1.6: no line over 998 octets, 8BITMIME or not.  A 7bit (or
** unlabelled) part with a longer line is encoded, quoted-printable's soft breaks
** keeping its text as it was; a part already encoded is left to the data writer. */
static void test_long_lines(void) {
  char *msg = malloc(8000), *p = msg;
  p += sprintf(p, "Subject: x\n\n");
  memset(p, 'x', 3000); p += 3000;
  p += sprintf(p, "\nend\n");
  size_t n = (size_t)(p - msg);
  conv c = run(msg, n, MH_MIME7_BODIES, 0);
  ok(c.info.bodylong && !c.info.body8, "scan: a 3000-octet ASCII line is long, not 8-bit");
  is_int(c.rc, 0, "it converts");
  ok(seven_bit(&c.out, 76), "the output has no line over 76 octets");
  ok(strstr(c.out.p, "Content-Transfer-Encoding: quoted-printable\r\n") &&
     strstr(c.out.p, "Content-Type: text/plain; charset=us-ascii\r\n") && strstr(c.out.p, "MIME-Version: 1.0\r\n"),
     "quoted-printable, labelled us-ascii, MIME-Version added");
  is_int(c.size, c.out.n, "size exact");
  ok(same_decoded(msg, n, c.out.p, c.out.n), "decodes to the original: the line whole");
  free_conv(&c);
  for (size_t step = 1; step <= 4096; step *= 8) {
    conv d = run(msg, n, MH_MIME7_BODIES, step);
    c = run(msg, n, MH_MIME7_BODIES, 0);
    ok(d.rc == 0 && d.out.n == c.out.n && !memcmp(d.out.p, c.out.p, c.out.n), "the same fed %zu bytes at a time", step);
    free_conv(&c); free_conv(&d);
  }
  /* exactly 998: not long */
  p = msg + sprintf(msg, "Subject: x\n\n"); memset(p, 'y', 998); p += 998; p += sprintf(p, "\r\n");
  c = run(msg, (size_t)(p - msg), MH_MIME7_BODIES, 0);
  ok(!c.info.bodylong, "a 998-octet line is not long");
  free_conv(&c);
  /* in a multipart: only the part with the long line is encoded */
  p = msg + sprintf(msg, "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nshort\n"
                         "--b\nContent-Type: text/html\nContent-Transfer-Encoding: 7bit\n\n<p>");
  memset(p, 'h', 5000); p += 5000;
  p += sprintf(p, "</p>\n--b--\n");
  n = (size_t)(p - msg);
  c = run(msg, n, MH_MIME7_BODIES, 0);
  ok(c.info.bodylong && c.rc == 0 && seven_bit(&c.out, 998), "a long HTML part: converted, no line over 998");
  ok(strstr(c.out.p, "\r\n\r\nshort\r\n") != NULL, "the short part unchanged");
  ok(strstr(c.out.p, "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n") != NULL,
     "the long part relabelled quoted-printable");
  ok(same_decoded(msg, n, c.out.p, c.out.n), "decodes to the original");
  free_conv(&c);
  /* a base64 part on one long line: not this converter's (base64 ignores line breaks) */
  p = msg + sprintf(msg, "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n");
  memset(p, 'A', 2000); p += 2000; p += sprintf(p, "\n");
  c = run(msg, (size_t)(p - msg), MH_MIME7_BODIES, 0);
  ok(!c.info.bodylong && !c.why, "a long line inside a base64 part is not flagged");
  free_conv(&c);
  /* mh_mime7_longline, the pre-check, across pieces */
  uint64_t run_ = 0;
  ok(!mh_mime7_longline("abc\r\n", 5, &run_) && run_ == 0, "longline: a short line");
  char big[1200]; memset(big, 'z', sizeof big);
  run_ = 0;
  ok(!mh_mime7_longline(big, 600, &run_) && run_ == 600, "600 octets, no line end yet");
  ok(mh_mime7_longline(big, 600, &run_), "600 more of the same line: long");
  run_ = 0;
  ok(!mh_mime7_longline(big, 998, &run_) && !mh_mime7_longline("\r\n", 2, &run_), "998 then CRLF: not long");
  big[500] = '\r';
  run_ = 0;
  ok(!mh_mime7_longline(big, 1200, &run_), "a bare CR ends a line too (500 + 699)");
  free(msg);
}

/* mh_mime7_longline's rule written out line by line (as it was before it
** learnt to jump over lines): a line runs to an LF, or to a CR that is not
** last before the LF (nor last in the piece); its octets, the CR of a CRLF
** not counted, are carried across pieces in *run. */
static int longline_ref(const char *buf, size_t len, uint64_t *run) {
  const char *p = buf, *end = buf + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
    uint64_t n = (uint64_t)(stop - p);
    if (*run + n > 998) {
      const char *cr = memchr(p, '\r', (size_t)(stop - p));
      while (cr && cr + 1 < stop) {
        if (*run + (uint64_t)(cr - p) > 998) return 1;
        *run = 0;
        p = cr + 1;
        cr = memchr(p, '\r', (size_t)(stop - p));
      }
      n = (uint64_t)(stop - p);
      if (cr && cr + 1 == stop) n--;
      if (*run + n > 998) return 1;
    }
    if (!nl) { *run += (uint64_t)(stop - p); return 0; }
    *run = 0;
    p = nl + 1;
  }
  return 0;
}

/* mh_mime7_longline against the rule over random messages whose lines sit
** around the 998-octet limit, with LF, CRLF and bare CR line ends, fed in
** random pieces: the same answer after every piece, and the same run. */
static void test_longline_property(void) {
  static char buf[8192];
  int agree = 1, longs = 0;
  for (int t = 0; t < 20000 && agree; t++) {
    size_t n = 0;
    while (n < sizeof buf - 1100) {
      unsigned k = rnd(4);
      size_t ll = k == 0 ? rnd(80) : k == 1 ? 990 + rnd(12) : k == 2 ? rnd(1001) : 996 + rnd(6);
      memset(buf + n, 'a' + (int)rnd(26), ll);
      n += ll;
      if (rnd(5) == 0) break;   /* no line end: the message ends mid-line */
      k = rnd(8);
      if (k < 5) { buf[n++] = '\r'; buf[n++] = '\n'; }
      else if (k < 7) buf[n++] = '\n';
      else buf[n++] = '\r';
      if (rnd(4) == 0) n = n > 1 ? n - 1 - rnd(2) : n;   /* cut a line end in two */
    }
    uint64_t r1 = rnd(3) == 0 ? rnd(1000) : 0, r2 = r1;
    size_t off = 0;
    while (off < n) {
      size_t piece = rnd(3) == 0 ? n - off : 1 + rnd((unsigned)(n - off));
      int a = mh_mime7_longline(buf + off, piece, &r1), b = longline_ref(buf + off, piece, &r2);
      if (a != b || (!a && r1 != r2)) {
        agree = 0;
        diag("longline: case %d at %zu+%zu: %d (run %llu), the rule says %d (run %llu)", t, off, piece, a,
             (unsigned long long)r1, b, (unsigned long long)r2);
      }
      if (a || b) { longs++; break; }
      off += piece;
    }
  }
  ok(agree, "longline: the rule's answer on 20000 random messages in random pieces");
  ok(longs > 1000, "longline: many of them long (%d)", longs);
}

int main(void) {
  test_plain_8bit();
  test_headers();
  test_nested();
  test_long_and_edges();
  test_long_lines();
  test_property();
  test_longline_property();
  return done_testing();
}
