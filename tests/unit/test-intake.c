/*
** test-intake.c — the streaming reader of mailhook sendmail (runtime/intake.c)
** against the rule it replaces (the whole input in memory: every LF not after
** a CR made CRLF, cut before the first lone "." line unless -i, CRLF added at
** the end).  Input goes through a packet pipe (O_DIRECT), so each write is one
** read on the other side: CR/LF pairs and ".\r\n" lines are cut at chosen
** read boundaries.
*/

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "intake.h"
#include "intake-ref.h"
#include "error.h"
#include "fsutil.h"
#include <sys/stat.h>

/* Runs the reader over in[0..n) cut into packets at cuts[]; the message it
** writes goes to out (its length returned), *empty set; -1 on an error. */
static long through(const char *in, size_t n, const size_t *cuts, size_t ncuts, int dot, char *out,
                    size_t cap, int *empty) {
  int p[2], tmp;
  const char *head;
  size_t hl, at = 0;
  char err[MH_INTAKE_ERRLEN];
  long got = -1;
  if (pipe2(p, O_DIRECT) < 0) return -1;
  for (size_t k = 0; k <= ncuts; k++) {   /* small inputs: the pipe holds them all */
    size_t end = k < ncuts ? cuts[k] : n;
    if (end > at && write(p[1], in + at, end - at) != (ssize_t)(end - at)) goto out;
    at = end > at ? end : at;
  }
  close(p[1]);
  p[1] = -1;
  mh_intake *r = mh_intake_new(p[0], dot);
  if (!r || mh_intake_head(r, &head, &hl, empty, err)) { mh_intake_free(r); goto out; }
  if (*empty) { mh_intake_free(r); got = 0; goto out; }
  if ((tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600)) < 0) { mh_intake_free(r); goto out; }
  if (mh_intake_write(r, tmp) == 0) got = pread(tmp, out, cap, 0);
  close(tmp);
  mh_intake_free(r);
out:
  close(p[0]);
  if (p[1] >= 0) close(p[1]);
  return got;
}

static int same(const char *in, size_t n, const size_t *cuts, size_t ncuts, int dot) {
  char want[2048], got[2048];
  int empty;
  size_t wl = intake_reference(in, n, dot, want);
  long gl = through(in, n, cuts, ncuts, dot, got, sizeof got, &empty);
  if (gl < 0 || (size_t)gl != wl || memcmp(got, want, wl) || (wl == 0) != (empty == 1)) {
    diag("input '%.*s' dot %d: got %ld bytes '%.*s', want %zu '%.*s'", (int)n, in, dot, gl,
         gl > 0 ? (int)gl : 0, got, wl, (int)wl, want);
    return 0;
  }
  return 1;
}

static void fixed(void) {
  size_t c1[] = { 6 }, c2[] = { 4, 5 }, c3[] = { 3, 4 };
  ok(same("To: a\r\n\r\nbody", 14, c1, 1, 1), "CR | LF across a read: one CRLF");
  ok(same("x\n.\r\nmore", 10, c2, 2, 1), "'.' | '\\r' | '\\n' across reads: the message ends");
  ok(same("x\n.\r\nmore", 10, c2, 2, 0), "the same with -i: kept");
  ok(same("a\n.", 3, c3, 0, 1), "a dot at the end without newline is text");
  ok(same("a\n.\r", 4, c3, 2, 1), "'.\\r' at the end: a bare CR ends the line, a lone dot ends the message");
  ok(same("Subject: hi\rBcc: x\r\n", 20, c3, 2, 1), "a bare CR in a header line: two CRLF lines");
  {   /* CR CR LF (Windows/PHP callers): one line end, the header block whole */
    size_t c4[] = { 6, 7 }, c5[] = { 7 };   /* cut between the CRs, and before the LF */
    ok(same("To: a\r\r\nSubject: s\r\r\n\r\r\nbody\r\r\n", 31, c4, 2, 1),
       "CR CR LF: one line end, across reads too");
    ok(same("To: a\r\r\r\r\nX: 1\r\n\r\nb", 19, c5, 1, 1), "CR CR CR CR LF: one line end");
    ok(same("a\r\rb\r\r", 6, c3, 2, 1), "CRs before no LF: each a line end, at the end of input too");
    ok(same("x\n.\r\r\nmore", 10, c2, 2, 1), "'.' CR CR LF: a lone dot line");
  }
  ok(same("a\n..\n. \n.x\n", 12, NULL, 0, 1), "'..', '. ' and '.x' lines are text");
  ok(same(".\nafter", 7, NULL, 0, 1), "a dot first: empty message");
  ok(same("", 0, NULL, 0, 1), "no input: empty message");
  ok(same("\n\nbody", 6, c3, 1, 1), "an empty first line");
}

/* Random inputs over a small alphabet, random cuts: the same bytes as the reference. */
static void random_inputs(void) {
  static const char alpha[] = "a.\r\n: ";
  char in[400];
  size_t cuts[8];
  int bad = 0, runs = 3000;
  srand(42);
  for (int r = 0; r < runs; r++) {
    size_t n = (size_t)rand() % sizeof in, nc = (size_t)rand() % 8;
    for (size_t i = 0; i < n; i++) in[i] = alpha[rand() % 6];
    for (size_t k = 0; k < nc; k++) cuts[k] = n ? (size_t)rand() % n : 0;
    for (size_t k = 1; k < nc; k++)   /* ascending */
      for (size_t j = k; j > 0 && cuts[j - 1] > cuts[j]; j--) { size_t t = cuts[j]; cuts[j] = cuts[j - 1]; cuts[j - 1] = t; }
    if (!same(in, n, cuts, nc, r & 1) && ++bad > 3) break;
  }
  ok(bad == 0, "%d random inputs cut at random reads: the bytes of the in-memory rule", runs);
}

/* A UTF-8 BOM first is dropped however the reads cut it: each write to the
** packet pipe is one read, so the BOM arrives byte by byte (a pipe from
** `printf '\xef'; sleep; printf '\xbb\xbf...'`), with no timing involved. */
static void bom_split(void) {
  static const char msg[] = "\xEF\xBB\xBFSubject: x\n\nbody\n", want[] = "Subject: x\r\n\r\nbody\r\n";
  size_t n = sizeof msg - 1;
  size_t c12[] = { 1, 2 }, c1[] = { 1 }, c2[] = { 2 }, c3[] = { 3 }, c4[] = { 4 };
  const size_t *cuts[] = { c12, c1, c2, c3, c4, NULL };
  const size_t ncuts[] = { 2, 1, 1, 1, 1, 0 };
  const char *names[] = { "EF | BB | BF", "EF | BB BF", "EF BB | BF", "EF BB BF | text", "EF BB BF S | ...",
                          "in one read" };
  for (int k = 0; k < 6; k++) {
    char got[256];
    int empty;
    long gl = through(msg, n, cuts[k], ncuts[k], 0, got, sizeof got, &empty);
    ok(gl == (long)sizeof want - 1 && !memcmp(got, want, sizeof want - 1),
       "a BOM read as %s: dropped, the first line a header", names[k]);
  }
  {   /* the head the caller parses starts with the field too */
    int p[2];
    const char *head;
    size_t hl;
    mh_intake *r = NULL;
    if (pipe2(p, O_DIRECT) == 0 && write(p[1], "\xEF", 1) == 1 && write(p[1], "\xBB", 1) == 1 &&
        write(p[1], "\xBF" "To: a@x\n\nb\n", 12) == 12) {
      close(p[1]);
      int empty;
      char err[MH_INTAKE_ERRLEN];
      r = mh_intake_new(p[0], 1);
      ok(r && mh_intake_head(r, &head, &hl, &empty, err) == 0 && hl == 9 && !memcmp(head, "To: a@x\r\n", 9),
         "byte by byte: the header block starts with 'To:'");
      close(p[0]);
    } else {
      ok(0, "packet pipe: %s", strerror(errno));
    }
    mh_intake_free(r);
  }
  /* what only starts like a BOM is kept, byte for byte */
  ok(same("\xEF\xBBX: y\n\nb\n", 11, c12, 2, 0), "EF | BB | 'X': no BOM, every byte kept");
  ok(same("\xEF", 1, NULL, 0, 0), "a lone EF, then the end: kept");
  ok(same("\xEF\xBB", 2, c1, 1, 0), "EF | BB, then the end: kept");
  ok(same("\xEF\xBB\xBF", 3, c12, 2, 0), "only a BOM: an empty message");
  ok(same("a: b\n\n\xEF\xBB\xBF", 9, c3, 1, 0), "a BOM after the start is text");
  {   /* random inputs that start with the bytes of a BOM, random cuts */
    static const char alpha[] = "\xEF\xBB\xBF" "a:\r\n.";
    char in[64];
    size_t rc4[4];
    int bad = 0;
    srand(7);
    for (int r = 0; r < 2000 && bad <= 3; r++) {
      size_t m = 1 + (size_t)rand() % sizeof in, nc = (size_t)rand() % 4;
      for (size_t i = 0; i < m; i++) in[i] = alpha[rand() % 8];
      if (r & 1 && m >= 3) memcpy(in, "\xEF\xBB\xBF", 3);
      for (size_t k = 0; k < nc; k++) {   /* ascending, near the start */
        size_t c = (k ? rc4[k - 1] : 0) + 1 + (size_t)rand() % 2;
        rc4[k] = c < m ? c : m;
      }
      if (!same(in, m, rc4, nc, r & 2)) bad++;
    }
    ok(bad == 0, "2000 inputs starting with BOM bytes, cut near the start: the in-memory rule");
  }
}

/* An intake reading msg through a pipe whose write end is closed (the whole
** input is there); its head already read into *head / *hl.  p[0] stays open
** for the caller to close.  NULL when the pipe cannot be made. */
static mh_intake *piped(const char *msg, size_t len, int p[2], const char **head, size_t *hl) {
  int empty;
  char err[MH_INTAKE_ERRLEN];
  if (pipe(p) < 0) return NULL;
  ok(write(p[1], msg, len) == (ssize_t)len, "written");
  close(p[1]);
  mh_intake *r = mh_intake_new(p[0], 1);
  is_int(mh_intake_head(r, head, hl, &empty, err), 0, "head read");
  return r;
}

/* A line of the header block that is no header field starts the body, with an
** empty line put before it (Postfix's rule): `echo hi | sendmail root`,
** `(echo Subject: df; df -h) | sendmail root` are mail, not errors. */
static void body_without_blank(void) {
  static const struct { const char *in, *want, *head, *what; } t[] = {
    { "hello world\n", "\r\nhello world\r\n", "", "no header at all: all body" },
    { "Subject: df\nFilesystem  Size Used\n/dev/sda1 1G\n",
      "Subject: df\r\n\r\nFilesystem  Size Used\r\n/dev/sda1 1G\r\n", "Subject: df\r\n",
      "a header, then text: the text is the body" },
    { "Subject: x\n folded\nTo : a@b\n: no name\n", "Subject: x\r\n folded\r\nTo : a@b\r\n\r\n: no name\r\n",
      "Subject: x\r\n folded\r\nTo : a@b\r\n", "a continuation and 'Name :' are header lines, ': x' is not" },
    { " indented first\n", "\r\n indented first\r\n", "", "a blank-led first line continues nothing: body" },
    { "From 1b2c3d Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH] x\n\nbody\n",
      "From: A <a@b>\r\nSubject: [PATCH] x\r\n\r\nbody\r\n", "From: A <a@b>\r\nSubject: [PATCH] x\r\n",
      "git format-patch --stdout: its From_ line dropped (as Postfix)" },
    { ">From x\nFrom y\nTo: a@b\nFrom z\n", "To: a@b\r\n\r\nFrom z\r\n", "To: a@b\r\n",
      "'>From ' and 'From ' lines at the start dropped; one after a header is body" },
    { "From", "\r\nFrom\r\n", "", "'From' alone is no From_ line" },
    { "Subject: no end", "Subject: no end\r\n", "Subject: no end\r\n", "a header cut at the end stays a header" },
    { "To: a@b\r\r\nSubject: s\r\r\nX-Mailer: PHP\r\r\n\r\r\nbody\r\r\n",
      "To: a@b\r\nSubject: s\r\nX-Mailer: PHP\r\n\r\nbody\r\n", "To: a@b\r\nSubject: s\r\nX-Mailer: PHP\r\n",
      "CR CR LF line ends (Windows/PHP): every field in the header block, as Postfix keeps them" },
    { "Subject: hi\rBcc: x\r\r\n\r\nb", "Subject: hi\r\nBcc: x\r\n\r\nb\r\n", "Subject: hi\r\nBcc: x\r\n",
      "a bare CR inside a line still ends it: the field after it is a field (its Bcc removed as any)" },
  };
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    int p[2];
    const char *head;
    size_t hl;
    char got[256];
    mh_intake *r = piped(t[k].in, strlen(t[k].in), p, &head, &hl);
    if (!r) continue;
    ok(hl == strlen(t[k].head) && !memcmp(head, t[k].head, hl), "%s: the header block", t[k].what);
    int tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    is_int(mh_intake_write(r, tmp), 0, "written");
    ssize_t n = pread(tmp, got, sizeof got, 0);
    ok(n == (ssize_t)strlen(t[k].want) && !memcmp(got, t[k].want, (size_t)n), "%s: the message", t[k].what);
    is_int(mh_intake_written(r), strlen(t[k].want), "written counts the empty line put in");
    close(tmp);
    mh_intake_free(r);
    close(p[0]);
  }
}

static void head_split(void) {
  int p[2];
  const char *head;
  size_t hl;
  const char msg[] = "From: a@b\nTo: c@d\n\nbody\n";
  mh_intake *r = piped(msg, sizeof msg - 1, p, &head, &hl);
  if (!r) return;
  ok(hl == 20 && !memcmp(head, "From: a@b\r\nTo: c@d\r\n", 20), "head: the header lines, CRLF, without the empty line");
  int tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
  char got[64];
  mh_intake_set_head(r, "To: c@d\r\n", 9);
  is_int(mh_intake_write(r, tmp), 0, "written with a replaced head");
  ssize_t n = pread(tmp, got, sizeof got, 0);
  ok(n == 17 && !memcmp(got, "To: c@d\r\n\r\nbody\r\n", 17), "replaced head, then the rest");
  is_int(mh_intake_written(r), 17, "written counts it all");
  close(tmp);
  mh_intake_free(r);
  close(p[0]);
}

/* Sets the head `set` on a message piped in, writes it, and checks that what
** was written is `want` (its header block, then the body). */
static void set_head_writes(const char *set, const char *want, const char *what, const char *checked) {
  int p[2];
  const char *head;
  size_t hl;
  char got[128];
  const char msg[] = "To: c@d\n\nbody\n";
  mh_intake *r = piped(msg, sizeof msg - 1, p, &head, &hl);
  if (!r) return;
  int tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
  is_int(mh_intake_set_head(r, set, strlen(set)), 0, "a head with %s set", what);
  is_int(mh_intake_write(r, tmp), 0, "written");
  ssize_t n = pread(tmp, got, sizeof got, 0);
  ok(n == (ssize_t)strlen(want) && !memcmp(got, want, strlen(want)), "%s", checked);
  close(tmp);
  mh_intake_free(r);
  close(p[0]);
}

/* The head a caller sets loses its Bcc fields (folded lines included): the
** spool's rule, the one mailhook sendmail relies on. */
static void head_no_bcc(void) {
  set_head_writes("Date: x\r\nbcc: hidden@x,\r\n more@y\r\nTo: c@d\r\nBCC:z@z\r\nX-Bcc: kept\r\n",
                  "Date: x\r\nTo: c@d\r\nX-Bcc: kept\r\n\r\nbody\r\n", "Bcc fields",
                  "every Bcc field left out, folded lines with it; X-Bcc kept");
  /* Resent-Bcc is a Bcc too (RFC 5322 3.6.6; Postfix drops both) */
  set_head_writes("Resent-To: n@x\r\nResent-Bcc: hidden@x,\r\n more@y\r\nRESENT-BCC:z@z\r\nX-Resent-Bcc: kept\r\n",
                  "Resent-To: n@x\r\nX-Resent-Bcc: kept\r\n\r\nbody\r\n", "Resent-Bcc fields",
                  "every Resent-Bcc field left out, folded lines with it; X-Resent-Bcc kept");
  /* Return-Path and Content-Length: never sent either (Postfix's cleanup drops them) */
  set_head_writes("Return-Path: <old@x>\r\nTo: c@d\r\ncontent-length:\r\n 5\r\nX-Content-Length: kept\r\n",
                  "To: c@d\r\nX-Content-Length: kept\r\n\r\nbody\r\n", "Return-Path and Content-Length",
                  "Return-Path and Content-Length (folded) left out; X-Content-Length kept");
}

static void head_cap(void) {
  int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600), empty;
  const char *head;
  size_t hl;
  char err[MH_INTAKE_ERRLEN];
  char *big = malloc(MH_INTAKE_HEADMAX + 100);
  memcpy(big, "X: ", 3);
  memset(big + 3, 'a', MH_INTAKE_HEADMAX + 90);
  memcpy(big + MH_INTAKE_HEADMAX + 93, "\n\nbody", 6);
  ok(write(fd, big, MH_INTAKE_HEADMAX + 99) == MH_INTAKE_HEADMAX + 99, "a 4 MB header line written");
  lseek(fd, 0, SEEK_SET);
  mh_intake *r = mh_intake_new(fd, 1);
  is_int(mh_intake_head(r, &head, &hl, &empty, err), MH_ECORRUPT, "a header block over the limit: MH_ECORRUPT");
  is_str(err, "header block over 4 MB", "err says so");
  mh_intake_free(r);
  free(big);
  close(fd);
}

/* An endless input (`yes | mailhook sendmail -i`) stops at the message limit
** (MH_LIMIT_MESSAGE; a small one here) instead of filling the disk. */
static void total_cap(void) {
  int in = open("/tmp", O_TMPFILE | O_RDWR, 0600), out = open("/tmp", O_TMPFILE | O_RDWR, 0600), empty;
  const char *head;
  size_t hl;
  char err[MH_INTAKE_ERRLEN], line[1000];
  struct stat st;
  ok(write(in, "To: c@d\n\n", 9) == 9, "a header block");
  memset(line, 'y', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  for (int i = 0; i < 300; i++) if (write(in, line, sizeof line) != (ssize_t)sizeof line) break;
  lseek(in, 0, SEEK_SET);
  mh_intake *r = mh_intake_new(in, 0);
  is_int(mh_intake_max(r), (size_t)MH_LIMIT_MESSAGE, "the default limit is limits.message");
  mh_intake_set_max(r, 100000);
  is_int(mh_intake_head(r, &head, &hl, &empty, err), 0, "head read");
  is_int(mh_intake_write(r, out), MH_ELIMIT, "300 KB of input past a 100 KB limit: MH_ELIMIT");
  is_int(mh_intake_error(r), MH_ELIMIT, "blamed on the input, not the spool");
  ok(fstat(out, &st) == 0 && st.st_size <= 100000, "no byte past the limit was written (%lld)", (long long)st.st_size);
  mh_intake_free(r);
  close(in);
  close(out);
}

int main(void) {
  fixed();
  body_without_blank();
  random_inputs();
  bom_split();
  head_split();
  head_no_bcc();
  head_cap();
  total_cap();
  return done_testing();
}
