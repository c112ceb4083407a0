/* The message builder (runtime/msg.c), without Lua: headers, encodings,
** line limits, header injection, attachments streamed and decoded back. */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "msg.h"
#include "fsutil.h"

/* 1 when every line ends in CRLF, is at most 998 octets and there is no bare CR or LF. */
static int lines_ok(const char *s, size_t n, char *why, size_t whysz) {
  size_t col = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r') {
      if (i + 1 >= n || s[i + 1] != '\n') { snprintf(why, whysz, "bare CR at %zu", i); return 0; }
      i++;
      col = 0;
    } else if (s[i] == '\n') {
      snprintf(why, whysz, "bare LF at %zu", i);
      return 0;
    } else if (++col > 998) {
      snprintf(why, whysz, "line over 998 at %zu", i);
      return 0;
    }
  }
  if (n && col) { snprintf(why, whysz, "last line without CRLF"); return 0; }
  return 1;
}

/* The header block (up to the first empty line), NUL-terminated copy. */
static char *head_of(const char *s) {
  const char *e = strstr(s, "\r\n\r\n");
  size_t n = e ? (size_t)(e - s) + 2 : strlen(s);
  char *h = malloc(n + 1);
  memcpy(h, s, n);
  h[n] = '\0';
  return h;
}

/* Counts header fields named name (case-sensitive, at line starts) in a header block. */
static int count_field(const char *head, const char *name) {
  int c = 0;
  size_t n = strlen(name);
  for (const char *p = head; p && *p; ) {
    if (!strncmp(p, name, n) && p[n] == ':') c++;
    p = strstr(p, "\r\n");
    if (p) p += 2;
  }
  return c;
}

static mh_msg *basic(void) {
  mh_msg *m = mh_msg_new();
  mh_msg_add_addr(m, MH_MSG_FROM, "PBX <pbx@example.com>", 21, NULL);
  return m;
}

static char *build(mh_msg *m, size_t *len) {
  char *out = NULL;
  int rc = mh_msg_finish(m, 1700000000);
  if (rc == 0) rc = mh_msg_bytes(m, &out, len);
  if (rc < 0) diag("build failed: %s", mh_msg_error(m));
  return out;
}

static void test_addresses(void) {
  const char *why;
  static const char *good[] = { "a@b.c", "first.last+tag@example.co.uk", "\"x y\"@example.com",
                                "u@[192.0.2.1]", "u@[IPv6:2001:db8::1]", "x@localhost", NULL };
  static const char *bad[] = { "", "no-at", "@example.com", "a@", "a..b@x.com", ".a@x.com", "a.@x.com",
                               "a@-x.com", "a@x-.com", "a@x..com", "a b@x.com", "a@x_y.com", "é@x.com",
                               "a@b@c", "\"unterminated@x.com", NULL };
  for (int i = 0; good[i]; i++)
    ok(mh_msg_check_addr(good[i], strlen(good[i]), &why) == 0, "valid: %s", good[i]);
  for (int i = 0; bad[i]; i++) {
    int rc = mh_msg_check_addr(bad[i], strlen(bad[i]), &why);
    ok(rc == MH_EBADADDR && why && *why, "invalid: '%s' (%s)", bad[i], why ? why : "");
  }
  is_int(mh_msg_check_addr("a\r\n@x.com", 9, &why), MH_EBADHDR, "CR/LF in an address: EBADHDR");
  is_int(mh_msg_check_addr("a\0b@x.com", 9, &why), MH_EBADHDR, "NUL in an address: EBADHDR");
  char longlocal[80];
  memset(longlocal, 'a', 65);
  strcpy(longlocal + 65, "@x.com");
  ok(!mh_msg_valid_addr(longlocal), "local part over 64 refused");
}

/* A domain written absolute (the root's dot): the one rule every way in uses. */
static void test_root_dot(void) {
  static const struct { const char *in, *out; } cases[] = {
    { "ops@example.com.", "ops@example.com" }, { "a@b.", "a@b" }, { "a@x-1.", "a@x-1" },
    { "\"a.\"@x.org.", "\"a.\"@x.org" },
    /* kept: two dots, an empty domain, a literal, no domain at all, a local part's dot */
    { "a@example.com..", "a@example.com.." }, { "a@.", "a@." }, { "a@[192.0.2.1].", "a@[192.0.2.1]." },
    { "a.", "a." }, { "\"x@y.\"", "\"x@y.\"" }, { "ops@example.com", "ops@example.com" }, { "", "" },
  };
  const char *why;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = mh_msg_addr_unroot(cases[i].in, strlen(cases[i].in));
    ok(n == strlen(cases[i].out) && !strncmp(cases[i].in, cases[i].out, n), "unroot '%s' -> '%s'", cases[i].in,
       cases[i].out);
  }
  ok(mh_msg_check_addr("ops@example.com.", 16, &why) == 0, "ops@example.com. is a valid address");
  ok(mh_msg_check_addr("a@example.com..", 15, &why) == MH_EBADADDR && !strcmp(why, "empty label in domain"),
     "a@example.com.. is not: %s", why ? why : "");
  ok(mh_msg_check_addr("a@.", 3, &why) == MH_EBADADDR, "a@. is not");

  /* the builder: the header as written, the envelope without the dot */
  mh_msg *m = mh_msg_new();
  char *out = NULL;
  size_t len = 0;
  ok(mh_msg_add_addr(m, MH_MSG_FROM, "f@example.org.", 14, NULL) == 0 &&
     mh_msg_add_addr(m, MH_MSG_TO, "ops@example.com., ops@example.com", 33, NULL) == 0 &&
     mh_msg_finish(m, 1700000000) == 0 && mh_msg_bytes(m, &out, &len) == 0, "a message with root dots builds");
  ok(!strcmp(mh_msg_env_from(m), "f@example.org"), "envelope sender: %s", mh_msg_env_from(m));
  ok(mh_msg_rcpt_count(m) == 1 && !strcmp(mh_msg_rcpt(m, 0), "ops@example.com"),
     "one recipient, without the dot (the same address twice): %s", mh_msg_rcpt(m, 0));
  ok(out && strstr(out, "To: ops@example.com., ops@example.com\r\n") && strstr(out, "From: f@example.org.\r\n"),
     "the headers as written");
  ok(out && strstr(out, "@example.org>\r\n"), "the Message-ID's domain without the dot");
  free(out);
  mh_msg_free(m);
}

static void test_headers_and_bcc(void) {
  mh_msg *m = basic();
  size_t len;
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "a@example.com, \"Doe, John\" <j@example.com>", 42, NULL), 0, "to list");
  is_int(mh_msg_add_addr(m, MH_MSG_CC, "c@example.com", 13, NULL), 0, "cc");
  is_int(mh_msg_add_addr(m, MH_MSG_BCC, "hidden@example.com", 18, NULL), 0, "bcc");
  is_int(mh_msg_add_addr(m, MH_MSG_BCC, "a@example.com", 13, NULL), 0, "bcc duplicate of a To");
  is_int(mh_msg_set_subject(m, "Voicemail", 9), 0, "subject");
  is_int(mh_msg_add_header(m, "X-Event", "voicemail", 9), 0, "extra header");
  is_int(mh_msg_set_text(m, "hi\n", 3), 0, "text");
  char *out = build(m, &len);
  ok(out != NULL, "built");
  if (!out) { mh_msg_free(m); return; }
  char *head = head_of(out);
  static const char *once[] = { "Date", "From", "To", "Cc", "Subject", "Message-ID", "X-Event",
                                "MIME-Version", "Content-Type", "Content-Transfer-Encoding", NULL };
  for (int i = 0; once[i]; i++) is_int(count_field(head, once[i]), 1, "one %s header", once[i]);
  is_int(count_field(head, "Bcc"), 0, "no Bcc header");
  ok(strstr(out, "hidden@example.com") == NULL, "the Bcc address is nowhere in the bytes");
  ok(strstr(head, "Date: Tue, 14 Nov 2023 ") != NULL, "Date fixed at build time (given clock)");
  ok(strstr(head, "To: a@example.com, \"Doe, John\" <j@example.com>\r\n") != NULL, "To list with a quoted name");
  is_int(mh_msg_rcpt_count(m), 4, "envelope: 4 distinct recipients");
  is_str(mh_msg_rcpt(m, 3), "hidden@example.com", "envelope holds the Bcc");
  is_str(mh_msg_env_from(m), "pbx@example.com", "envelope sender");
  ok(!strncmp(mh_msg_id(m), "<20231114", 9) && strstr(mh_msg_id(m), "@example.com>"), "Message-ID %s", mh_msg_id(m));
  char why[64] = "";
  ok(lines_ok(out, len, why, sizeof why), "CRLF lines <= 998 (%s)", why);
  /* the same bytes through a descriptor */
  char path[] = "/tmp/mh-msg.XXXXXX";
  int fd = mkstemp(path);
  is_int(mh_msg_write(m, fd), 0, "write to a descriptor");
  off_t sz = lseek(fd, 0, SEEK_END);
  char *back = malloc((size_t)sz + 1);
  ok(pread(fd, back, (size_t)sz, 0) == sz && (size_t)sz == len && !memcmp(back, out, len),
     "mh_msg_write gives the same bytes as mh_msg_bytes");
  close(fd);
  unlink(path);
  free(back);
  free(head);
  free(out);
  mh_msg_free(m);
}

static void test_injection(void) {
  mh_msg *m = basic();
  is_int(mh_msg_set_subject(m, "a\r\nBcc: x@evil.com", 18), MH_EBADHDR, "CRLF in subject refused");
  ok(strstr(mh_msg_error(m), "subject") != NULL, "error names the subject: %s", mh_msg_error(m));
  is_int(mh_msg_set_subject(m, "a\nb", 3), MH_EBADHDR, "LF in subject refused");
  is_int(mh_msg_set_subject(m, "a\0b", 3), MH_EBADHDR, "NUL in subject refused");
  is_int(mh_msg_add_header(m, "X-A", "v\rw", 3), MH_EBADHDR, "CR in a header value refused");
  is_int(mh_msg_add_header(m, "X-A\n", "v", 1), MH_EBADHDR, "LF in a header name refused");
  is_int(mh_msg_add_header(m, "X A", "v", 1), MH_EINVAL, "space in a header name refused");
  /* the error quotes the name: its control bytes shown as \xNN, never raw (a CR/LF would
     forge a line where the error is logged, an ESC drive the terminal) */
  is_int(mh_msg_add_header(m, "X-A\r\nBcc: q@evil.com", "v", 1), MH_EBADHDR, "CRLF in a header name refused");
  is_str(mh_msg_error(m), "header X-A\\x0d\\x0aBcc: q@evil.com: CR, LF or NUL in the header name or value",
         "and the error shows the CR LF as \\x0d\\x0a");
  is_int(mh_msg_add_header(m, "X-\033[31m", "v", 1), MH_EINVAL, "ESC in a header name refused");
  ok(!strchr(mh_msg_error(m), 033) && strstr(mh_msg_error(m), "X-\\x1b[31m"), "its error shows \\x1b: %s",
     mh_msg_error(m));
  is_int(mh_msg_add_header(m, "bcc", "v@x.com", 7), MH_EINVAL, "Bcc as an extra header refused");
  is_int(mh_msg_add_header(m, "Content-Type", "text/html", 9), MH_EINVAL, "Content-* refused");
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "x@y.com\r\nBcc: z@evil.com", 24, NULL), MH_EBADHDR, "CRLF in To refused");
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, "Name\nBcc: z@evil.com"), MH_EBADHDR, "LF in a display name refused");
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "bob, x@y.com", 12, NULL), MH_EBADADDR, "a bad address in a list");
  ok(strstr(mh_msg_error(m), "'bob'") != NULL, "error names it: %s", mh_msg_error(m));
  is_int(mh_msg_add_addr(m, MH_MSG_FROM, "b@x.com", 7, NULL), MH_EINVAL, "a second From refused");
  /* encoded-word tricks: text that looks like an encoded CRLF is itself encoded */
  const char *trick = "=?UTF-8?B?DQpCY2M6IGV2aWxAeC5jb20=?=";
  is_int(mh_msg_set_subject(m, trick, strlen(trick)), 0, "encoded-word-looking subject accepted");
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, "=?UTF-8?Q?a=0D=0AX-Evil:_1?=");
  size_t len;
  char *out = build(m, &len);
  char *head = out ? head_of(out) : NULL;
  ok(head && !strstr(head, "Subject: =?UTF-8?B?DQpCY2M6IGV2aWxAeC5jb20=?=\r\n"), "not passed through as is");
  ok(head && strstr(head, "Subject: =?UTF-8?B?PT9VVEYtOD9CP0RRcENZMk02SUdWMmFXeEFlQzVqYjIwPT89?=") != NULL,
     "but encoded, so it decodes to the literal text");
  ok(head && !strstr(head, "=?UTF-8?Q?a=0D"), "the display name trick is encoded too");
  free(head);
  free(out);
  mh_msg_free(m);
}

static void test_long_and_non_ascii(void) {
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  char subj[5000], body[6000], name[400];
  memset(subj, 'S', sizeof subj);                 /* one 5000-character word */
  for (size_t i = 0; i < sizeof body; i++) body[i] = (i % 3000 == 2999) ? '\n' : 'b';
  for (size_t i = 0; i + 2 < sizeof name; i += 2) { name[i] = (char)0xC3; name[i + 1] = (char)0xA9; } /* é... */
  name[sizeof name - 2] = 'x';
  name[sizeof name - 1] = '\0';
  mh_msg_add_addr(m, MH_MSG_CC, "c@y.com", 7, name);
  mh_msg_set_subject(m, subj, sizeof subj);
  mh_msg_set_text(m, body, sizeof body);
  mh_msg_add_header(m, "X-Long", "word word word word word word word word word word word word word word word word word", 84);
  size_t len;
  char *out = build(m, &len);
  char why[64] = "";
  ok(out && lines_ok(out, len, why, sizeof why), "every line CRLF and <= 998 (%s)", why);
  ok(out && strstr(out, "Content-Transfer-Encoding: quoted-printable") != NULL, "3000-char lines: quoted-printable");
  char *head = out ? head_of(out) : NULL;
  int maxcol = 0, col = 0;
  for (char *p = head; p && *p; p++) {
    if (*p == '\r') { col = 0; continue; }
    if (*p != '\n' && ++col > maxcol) maxcol = col;
  }
  ok(maxcol <= 78, "header lines folded to <= 78 columns (longest %d)", maxcol);
  /* encoded words are at most 75 characters */
  int ew_ok = 1;
  for (char *p = head; p && (p = strstr(p, "=?UTF-8?B?")); ) {
    char *e = strstr(p + 10, "?=");
    if (!e || e + 2 - p > 75) ew_ok = 0;
    p = e ? e + 2 : p + 1;
  }
  ok(ew_ok, "every encoded word <= 75 characters");
  ok(head && strstr(head, "X-Long: word") && strstr(head, "\r\n word"), "unstructured header folded at spaces");
  free(head);
  free(out);
  mh_msg_free(m);
}

/* Long runs of spaces or tabs in a Subject or an extra header value (a template
** makes every control byte of a value a space: a PBX field padded with blanks,
** a value full of CRs): the plain writer folded only before whitespace, so a
** 2000-space run, or trailing blanks added to the line they followed, made a
** header line of 2000 octets; each value must come back exactly. */
static void test_long_whitespace(void) {
  static const char *shapes[] = { "a%sb", "a%s", "%sb", "%s", "word %sword", NULL };
  char run[2100], val[2200];
  for (int r = 0; r < 3; r++) {
    size_t rn = r == 0 ? 2000 : r == 1 ? 950 : 899;
    memset(run, r == 1 ? '\t' : ' ', rn);
    run[rn] = '\0';
    for (int k = 0; shapes[k]; k++) {
      snprintf(val, sizeof val, shapes[k], run);
      for (int h = 0; h < 2; h++) {
        mh_msg *m = basic();
        mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
        if (h == 0) mh_msg_set_subject(m, val, strlen(val));
        else mh_msg_add_header(m, "X-Pad", val, strlen(val));
        size_t len;
        char *out = build(m, &len);
        char why[64] = "";
        ok(out && lines_ok(out, len, why, sizeof why), "%s: '%.10s' around %zu %s: lines <= 998 (%s)",
           h ? "X-Pad" : "Subject", shapes[k], rn, r == 1 ? "tabs" : "spaces", why);
        free(out);
        mh_msg_free(m);
      }
    }
  }
  /* blanks after a long word: added to that word's line */
  memset(val, 'w', 890);
  memset(val + 890, ' ', 200);
  val[1090] = '\0';
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  mh_msg_set_subject(m, val, strlen(val));
  size_t len;
  char *out = build(m, &len);
  char why[64] = "";
  ok(out && lines_ok(out, len, why, sizeof why), "Subject: 200 blanks after an 890-character word: lines <= 998 (%s)", why);
  free(out);
  mh_msg_free(m);
}

/* A body line starting "From " is written ">From " by an mbox (Postfix's
** local(8), procmail) and the reader shows the '>': such a body goes
** quoted-printable with the F as =46, also where a soft break puts "From " at
** the start of an encoded line. */
static void test_from_lines(void) {
  char soft[200];
  memset(soft, 'a', 75);
  memcpy(soft + 75, "From x \xc3\xa9\n", 11);
  soft[86] = '\0';
  const char *bodies[] = { "From me\n", "hi\nFrom me\n", "hi\rFrom me", "hi\r\nFrom me\r\n",
                           "caf\xc3\xa9\nFrom me\n", soft, NULL };
  for (int k = 0; bodies[k]; k++) {
    for (int h = 0; h < 2; h++) {
      mh_msg *m = basic();
      mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
      if (h == 0) mh_msg_set_text(m, bodies[k], strlen(bodies[k]));
      else mh_msg_set_html(m, bodies[k], strlen(bodies[k]));
      size_t len;
      char *out = build(m, &len);
      int starts = out && strncmp(out, "From ", 5) == 0;
      for (size_t i = 0; out && i + 5 < len; i++)
        if (out[i] == '\n' && strncmp(out + i + 1, "From ", 5) == 0) starts = 1;
      ok(out && !starts && strstr(out, "=46rom ") != NULL,
         "%s body %d: no line starts \"From \", written =46rom", h ? "html" : "text", k);
      free(out);
      mh_msg_free(m);
    }
  }
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  mh_msg_set_text(m, "From: me\nFromage\n from x\n", 25);
  size_t len;
  char *out = build(m, &len);
  ok(out && strstr(out, "Content-Transfer-Encoding: 7bit") != NULL, "\"From:\", \"Fromage\", \" from\": still 7bit");
  free(out);
  mh_msg_free(m);
}

/* The Date in a zone whose offset +hhmm cannot say: in seconds (POSIX TZ
** "XXX+0:44:30", tzdata's Africa/Monrovia until 1972) or of 24 hours or more
** (readers refuse +2430): written in UTC, the same instant; an ordinary zone
** keeps its offset. */
static void test_date_zones(void) {
  static const struct { const char *tz, *want; } v[] = {
    { "XXX+0:44:30", "Thu, 1 Jan 1970 00:00:00 +0000" },
    { "XXX-24:30", "Thu, 1 Jan 1970 00:00:00 +0000" },
    { "XXX+24", "Thu, 1 Jan 1970 00:00:00 +0000" },
    { "XXX+3:30", "Wed, 31 Dec 1969 20:30:00 -0330" },
    { "XXX-13:45", "Thu, 1 Jan 1970 13:45:00 +1345" },
  };
  const char *old = getenv("TZ");
  char *saved = old ? strdup(old) : NULL;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char out[64];
    setenv("TZ", v[i].tz, 1);
    tzset();
    mh_msg_date(out, sizeof out, 0);
    is_str(out, v[i].want, "Date in TZ=%s", v[i].tz);
  }
  if (saved) setenv("TZ", saved, 1); else unsetenv("TZ");
  tzset();
  free(saved);
}

static void test_bodies(void) {
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  mh_msg_set_text(m, "line1\nline2\r\nline3\rend", 22);
  mh_msg_set_html(m, "<p>caf\xc3\xa9 = ok</p>\n", 18);
  size_t len;
  char *out = build(m, &len);
  ok(out && strstr(out, "Content-Type: multipart/alternative;") != NULL, "text + html: multipart/alternative");
  ok(out && strstr(out, "\r\n\r\nline1\r\nline2\r\nline3\r\nend\r\n") != NULL, "bare LF and CR normalised to CRLF");
  ok(out && strstr(out, "<p>caf=C3=A9 =3D ok</p>") != NULL, "non-ASCII html: quoted-printable");
  ok(out && strstr(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit") != NULL,
     "ASCII text: 7bit");
  char why[64] = "";
  ok(out && lines_ok(out, len, why, sizeof why), "CRLF only (%s)", why);
  free(out);
  mh_msg_free(m);
  /* trailing whitespace and long lines in QP */
  m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  char line[2100];
  memset(line, 'q', 2000);
  memcpy(line + 2000, "  \n\xff", 4);
  mh_msg_set_text(m, line, 2004);
  out = build(m, &len);
  ok(out && lines_ok(out, len, why, sizeof why), "long QP body lines ok (%s)", why);
  ok(out && strstr(out, "=20\r\n=C3=BF\r\n") != NULL, "trailing space encoded; 0xff (no UTF-8) is Latin-1's \u00ff");
  int qp_ok = 1;
  const char *body = out ? strstr(out, "\r\n\r\n") + 4 : NULL;
  for (const char *p = body; p && *p; ) {
    const char *e = strstr(p, "\r\n");
    if (!e) break;
    if (e - p > 76) qp_ok = 0;
    p = e + 2;
  }
  ok(qp_ok, "quoted-printable lines <= 76");
  free(out);
  mh_msg_free(m);
}

/* Bytes that are no UTF-8 in what the builder labels UTF-8 are read as
** Windows-1252 (a PBX's Latin-1 "J\xe9r\xf4me"); valid UTF-8 beside them is kept. */
static void test_not_utf8(void) {
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  mh_msg_add_addr(m, MH_MSG_CC, "c@y.com", 7, "J\xe9r\xf4me");
  const char *subj = "caf\xe9 \x80 caf\xc3\xa9", *text =
    "From: J\xe9r\xf4me \x93quoted\x94 \x81 \xed\xa0\x80 \xc0\xaf \xf0\x9f\x93\x9e \xf0\x9f\n";
  is_int(mh_msg_set_subject(m, subj, strlen(subj)), 0, "a Latin-1 subject: taken");
  is_int(mh_msg_add_header(m, "X-Caller", "M\xfcller", 6), 0, "a Latin-1 header value: taken");
  is_int(mh_msg_set_text(m, text, strlen(text)), 0, "a body with bytes that are no UTF-8: taken");
  size_t len;
  char *out = build(m, &len);
  /* "Jérôme" -> =?UTF-8?B?SsOpcsO0bWU=?= ; "café € café" ; "Müller" */
  ok(out && strstr(out, "=?UTF-8?B?SsOpcsO0bWU=?= <c@y.com>") != NULL, "a Latin-1 display name sent as UTF-8");
  ok(out && strstr(out, "Subject: =?UTF-8?B?Y2Fmw6kg4oKsIGNhZsOp?=") != NULL,
     "a Latin-1 subject (and cp1252's 0x80, the euro) as UTF-8, its UTF-8 part kept");
  ok(out && strstr(out, "X-Caller: =?UTF-8?B?TcO8bGxlcg==?=") != NULL, "a header value too");
  ok(out && strstr(out, "From: J=C3=A9r=C3=B4me =E2=80=9Cquoted=E2=80=9D =EF=BF=BD") != NULL,
     "the body: Latin-1 and cp1252's quotes as UTF-8, an undefined byte U+FFFD");
  ok(out && strstr(out, "=C3=AD=C2=A0=E2=") && strstr(out, "=82=AC =C3=80=C2=AF =F0=9F=93=9E =C3=B0=C5=B8") != NULL,
     "a surrogate's bytes, an overlong form and a cut sequence are no UTF-8 (each byte read alone); a 4-byte "
     "character kept");
  free(out);
  mh_msg_free(m);
}

static int b64v(char c) {
  const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(t, c) : NULL;
  return p ? (int)(p - t) : -1;
}

static void test_attachment(void) {
  char path[] = "/tmp/mh-att-XXXXXX.pdf";
  int fd = mkstemps(path, 4);
  size_t n = 200000 + 7;          /* several read chunks and a partial last line */
  unsigned char *data = malloc(n);
  unsigned x = 12345;
  for (size_t i = 0; i < n; i++) { x = x * 1103515245 + 12345; data[i] = (unsigned char)(x >> 16); }
  ok(write(fd, data, n) == (ssize_t)n, "test file written");
  close(fd);
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  mh_msg_set_text(m, "see attached", 12);
  is_int(mh_msg_add_attachment(m, path, NULL, "Fax 12.pdf"), 0, "attachment added");
  is_int(mh_msg_add_attachment(m, path, "audio/wav", "r\xc3\xa9sum\xc3\xa9 \"1\".wav"), 0, "non-ASCII name");
  is_int(mh_msg_add_attachment(m, "/nonexistent/msg.wav", NULL, NULL), -ENOENT, "missing file refused");
  ok(strstr(mh_msg_error(m), "/nonexistent/msg.wav") != NULL, "error names the path: %s", mh_msg_error(m));
  is_int(mh_msg_add_attachment(m, path, "bad type", NULL), MH_EINVAL, "bad content type refused");
  is_int(mh_msg_add_attachment(m, path, "text/plain\r\nX: y", NULL), MH_EBADHDR, "CRLF in type refused");
  /* parameters whole: an unbalanced quote swallowed the name= written after it */
  is_int(mh_msg_add_attachment(m, path, "audio/wav; x=\"\\", NULL), MH_EINVAL, "an unbalanced quote refused");
  is_int(mh_msg_add_attachment(m, path, "audio/wav; x=\"a", NULL), MH_EINVAL, "a quote never closed refused");
  is_int(mh_msg_add_attachment(m, path, "audio/wav; =x", NULL), MH_EINVAL, "a parameter without a name refused");
  is_int(mh_msg_add_attachment(m, path, "audio/wav; x", NULL), MH_EINVAL, "a parameter without '=' refused");
  is_int(mh_msg_add_attachment(m, path, "audio/wav; x=a b", NULL), MH_EINVAL, "two words unquoted refused");
  is_int(mh_msg_add_attachment(m, path, "text/csv; charset=utf-8; header=\"present; x\\\"y\"", NULL), 0,
         "tokens and a quoted string (its ';' and escaped quote inside) accepted");
  is_int(mh_msg_add_attachment(m, path, "application/x-trail; ", "trail.bin"), 0, "a trailing ';' accepted");
  /* the type may not name the file: readers took its name= over the checked one */
  is_int(mh_msg_add_attachment(m, path, "application/pdf; name=\"evil.exe\"", "Gr\xc3\xbc\xc3\x9f" "e.pdf"), MH_EINVAL,
         "name= in the type refused");
  ok(strstr(mh_msg_error(m), "names the file") != NULL, "saying why: %s", mh_msg_error(m));
  is_int(mh_msg_add_attachment(m, path, "application/pdf; x=1; NAME*=UTF-8''evil.exe", NULL), MH_EINVAL,
         "NAME* (any case, RFC 2231) refused");
  is_int(mh_msg_add_attachment(m, path, "text/plain; filename=a", NULL), MH_EINVAL, "filename= refused");
  is_int(mh_msg_add_attachment(m, path, "text/plain; names=x; xname=y", NULL), 0, "names=, xname= are other parameters");
  is_int(mh_msg_add_attachment(m, "/tmp", NULL, NULL), MH_ENOTREG, "a folder refused");
  is_int(mh_msg_add_attachment(m, "/dev/zero", NULL, NULL), MH_ENOTREG, "/dev/zero refused (never read)");
  ok(strstr(mh_msg_error(m), "/dev/zero: a character device, not a regular file") != NULL,
     "the error names it: %s", mh_msg_error(m));
  size_t len;
  char *out = build(m, &len);
  char why[64] = "";
  ok(out && lines_ok(out, len, why, sizeof why), "CRLF lines (%s)", why);
  ok(out && strstr(out, "Content-Type: application/x-trail;\r\n name=\"trail.bin\"") != NULL,
     "the trailing ';' dropped: one before name=");
  ok(out && strstr(out, "Content-Type: multipart/mixed;") != NULL, "multipart/mixed");
  ok(out && strstr(out, "Content-Type: application/pdf;\r\n name=\"Fax 12.pdf\"\r\n"
                        "Content-Disposition: attachment;\r\n filename=\"Fax 12.pdf\"\r\n") != NULL,
     "type from the extension, quoted name");
  ok(out && strstr(out, "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.wav") != NULL, "RFC 2231 name");
  /* decode the first base64 part and compare */
  const char *p = out ? strstr(out, "Content-Transfer-Encoding: base64\r\n\r\n") : NULL;
  unsigned char *dec = malloc(n + 4);
  size_t dn = 0;
  int linelen_ok = 1;
  if (p) {
    p += 37;
    while (*p && *p != '\r') {
      const char *e = strstr(p, "\r\n");
      if (e - p > 76) linelen_ok = 0;
      for (const char *q = p; q + 3 < e + 1 && q < e; q += 4) {
        int a = b64v(q[0]), b = b64v(q[1]), c = b64v(q[2]), d = b64v(q[3]);
        dec[dn++] = (unsigned char)(a << 2 | b >> 4);
        if (q[2] != '=') dec[dn++] = (unsigned char)(b << 4 | c >> 2);
        if (q[3] != '=') dec[dn++] = (unsigned char)(c << 6 | d);
      }
      p = e + 2;
    }
  }
  ok(linelen_ok, "base64 lines <= 76");
  ok(dn == n && !memcmp(dec, data, n), "base64 decodes back byte-identical (%zu of %zu bytes)", dn, n);
  /* the file vanishing before the write: an error naming it */
  unlink(path);
  char *o2 = NULL;
  size_t l2;
  is_int(mh_msg_bytes(m, &o2, &l2), -ENOENT, "a vanished attachment fails the write");
  ok(strstr(mh_msg_error(m), path) != NULL, "naming the path");
  free(o2);
  free(dec);
  free(data);
  free(out);
  mh_msg_free(m);
}

static void test_misc(void) {
  is_str(mh_msg_type_for("a.WAV"), "audio/wav", "wav");
  is_str(mh_msg_type_for("a.mp3"), "audio/mpeg", "mp3");
  is_str(mh_msg_type_for("x/a.tif"), "image/tiff", "tif");
  is_str(mh_msg_type_for("a.tiff"), "image/tiff", "tiff");
  is_str(mh_msg_type_for("a.jpg"), "image/jpeg", "jpg");
  is_str(mh_msg_type_for("a.csv"), "text/csv", "csv");
  is_str(mh_msg_type_for("a.d/noext"), "application/octet-stream", "no extension");
  mh_msg *m = mh_msg_new();
  is_int(mh_msg_finish(m, 0), MH_EINVAL, "no From: refused");
  mh_msg_add_addr(m, MH_MSG_FROM, "a@b.c", 5, NULL);
  is_int(mh_msg_finish(m, 0), MH_EINVAL, "no recipient: refused");
  mh_msg_add_addr(m, MH_MSG_BCC, "z@b.c", 5, NULL);
  is_int(mh_msg_finish(m, 0), 0, "Bcc only is enough");
  char *out;
  size_t len;
  mh_msg_bytes(m, &out, &len);
  ok(strstr(out, "To: undisclosed-recipients:;\r\n") != NULL, "To: undisclosed-recipients:;");
  is_int(mh_msg_set_subject(m, "x", 1), MH_EINVAL, "setters fail after finish");
  free(out);
  mh_msg_free(m);
}

static void test_edges(void) {
  char line[1000];
  size_t len;
  memset(line, 'a', sizeof line);
  for (int extra = 0; extra < 2; extra++) {
    mh_msg *m = basic();
    mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
    mh_msg_set_text(m, line, 998 + (size_t)extra);
    char *out = build(m, &len);
    ok(out && strstr(out, extra ? "quoted-printable" : "Content-Transfer-Encoding: 7bit"),
       "a %d-octet line: %s", 998 + extra, extra ? "quoted-printable" : "7bit");
    free(out);
    mh_msg_free(m);
  }
  mh_msg *m = basic();
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "ok@y.com, also@y.com, bad@", 26, NULL), MH_EBADADDR, "a list with a bad address");
  is_int(mh_msg_add_addr(m, MH_MSG_TO, "only@y.com", 10, NULL), 0, "then a good one");
  mh_msg_add_addr(m, MH_MSG_REPLY_TO, "r1@y.com, R Two <r2@y.com>", 26, NULL);
  char *out = build(m, &len);
  ok(out && strstr(out, "\r\nTo: only@y.com\r\n"), "the failed list added nothing (all or nothing)");
  ok(out && strstr(out, "\r\nReply-To: r1@y.com, R Two <r2@y.com>\r\n"), "Reply-To list");
  is_int(mh_msg_rcpt_count(m), 1, "Reply-To is not a recipient");
  ok(out && strstr(out, "charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n") &&
     out[len - 1] == '\n', "no body: an empty text part");
  free(out);
  mh_msg_free(m);
}

/* Each attachment is within its 64 MiB; their sum must stay within a message's
** 1 GiB (--attach given 1,000 times made a 64 GB message).  Sparse files: no disk. */
static void test_attachments_total(void) {
  char path[] = "/tmp/mh-att-big-XXXXXX";
  int fd = mkstemp(path), rc = 0;
  ok(fd >= 0 && ftruncate(fd, MH_LIMIT_ATTACHMENT) == 0, "a sparse file of the attachment limit (64 MiB)");
  if (fd >= 0) close(fd);
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  int n = (int)(MH_LIMIT_MESSAGE / MH_LIMIT_ATTACHMENT), i;
  for (i = 0; i < n && rc == 0; i++) rc = mh_msg_add_attachment(m, path, NULL, NULL);
  is_int(rc, 0, "%d of them: exactly the 1 GiB of a message", n);
  is_int(mh_msg_add_attachment(m, path, NULL, NULL), MH_ELIMIT, "one more: refused");
  ok(strstr(mh_msg_error(m), "the attachments add up to 1140850688 bytes, over the 1024 MiB limit of a message") != NULL,
     "naming the sum and the limit: %s", mh_msg_error(m));
  mh_msg_free(m);
  unlink(path);
}

/* The files may grow between mh_msg_add_attachment and the write: their sum is
** checked again before a byte is written (17 empty files then, 64 MiB each now:
** a message over 1 GiB refused, not written).  Sparse files: no disk. */
static void test_attachments_grow(void) {
  char path[] = "/tmp/mh-att-grow-XXXXXX", outp[] = "/tmp/mh-att-out-XXXXXX";
  int fd = mkstemp(path), ofd = mkstemp(outp), rc = 0, i;
  int n = (int)(MH_LIMIT_MESSAGE / MH_LIMIT_ATTACHMENT) + 1;
  struct stat st;
  ok(fd >= 0 && ofd >= 0, "an empty file and an output file");
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  for (i = 0; i < n && rc == 0; i++) rc = mh_msg_add_attachment(m, path, NULL, NULL);
  is_int(rc, 0, "%d empty attachments: 0 bytes, within the limit", n);
  is_int(mh_msg_finish(m, 1700000000), 0, "finished");
  ok(fd >= 0 && ftruncate(fd, MH_LIMIT_ATTACHMENT) == 0, "then the file grows to 64 MiB (sparse)");
  is_int(mh_msg_write(m, ofd), MH_ELIMIT, "the write is refused: the attachments now add up to over 1 GiB");
  ok(strstr(mh_msg_error(m), "the attachments grew to 1140850688 bytes since they were added, over the 1024 MiB "
                             "limit of a message") != NULL, "naming the sum and the limit: %s", mh_msg_error(m));
  ok(fstat(ofd, &st) == 0 && st.st_size == 0, "nothing was written (checked before the first byte)");
  mh_msg_free(m);
  if (fd >= 0) close(fd);
  if (ofd >= 0) close(ofd);
  unlink(path);
  unlink(outp);
}

/* The name shown for an attachment is a file name, never a path (RFC 2183
** 2.3): a reader that saves "../../.bashrc" as given writes outside its
** folder.  Also nothing in it may trick the reader: control bytes, direction
** overrides ("invoice\u202Efdp.exe" shown as
** invoiceexe.pdf); a dot-only result takes the file's own name; a long one is
** cut keeping its extension. */
static const char *name_shown(const char *path, const char *name, char *got, size_t cap) {
  mh_msg *m = basic();
  mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
  int rc = mh_msg_add_attachment(m, path, "application/octet-stream", name);
  size_t len;
  char *out = rc == 0 ? build(m, &len) : NULL;
  snprintf(got, cap, "%s", rc < 0 ? mh_msg_error(m) : "(no Content-Disposition)");
  const char *d = out ? strstr(out, "Content-Disposition: attachment;\r\n ") : NULL;
  if (d && strncmp(d + 35, "filename*0*=", 12) != 0) {
    d += 35;
    size_t k = strcspn(d, "\r");
    snprintf(got, cap, "%.*s", (int)k, d);
  } else if (d) {   /* RFC 2231 continuations: joined into the one-parameter form */
    size_t o = (size_t)snprintf(got, cap, "filename*=");
    d += 35;
    for (int part = 0; o < cap; part++) {
      char head[32];
      int hl = snprintf(head, sizeof head, "filename*%d*=", part);
      if (strncmp(d, head, (size_t)hl) != 0) break;
      d += hl;
      size_t k = strcspn(d, ";\r");
      o += (size_t)snprintf(got + o, cap - o, "%.*s", (int)k, d);
      d += k;
      if (strncmp(d, ";\r\n ", 4) != 0) break;
      d += 4;
    }
  }
  free(out);
  mh_msg_free(m);
  return got;
}

static void test_attachment_names(void) {
  char path[] = "/tmp/mh-attn-XXXXXX";
  int fd = mkstemp(path);
  ok(fd >= 0 && write(fd, "x", 1) == 1, "a test file");
  close(fd);
  const char *base = strrchr(path, '/') + 1;
  char got[2048], want[600];
  static const struct { const char *in, *want; } cases[] = {
    { "../../x", "filename=\"x\"" },
    { "/etc/passwd", "filename=\"passwd\"" },
    { "C:\\x\\y.pdf", "filename=\"y.pdf\"" },
    { "C:y.pdf", "filename=\"y.pdf\"" },
    { "dir/file.pdf", "filename=\"file.pdf\"" },
    { "..\\..\\Windows\\win.ini", "filename=\"win.ini\"" },
    { "a\tb\x1b[31m\x7f.txt", "filename=\"a_b_[31m_.txt\"" },
    { "invoice\xe2\x80\xae" "fdp.exe", "filename=\"invoice_fdp.exe\"" },
    { "x\xe2\x81\xa6y\xe2\x80\x8f.pdf\xd8\x9c", "filename=\"x_y_.pdf_\"" },
    /* bytes that are no UTF-8: read as Windows-1252, as the builder reads all its
       text (a PBX's Latin-1 name was "r_sum_.pdf" while its subject said résumé) */
    { "r\xe9sum\xe9.pdf", "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" },
    { "\x93q\x94 \x85\x81.pdf", "filename*=UTF-8''%E2%80%9Cq%E2%80%9D%20%E2%80%A6%EF%BF%BD.pdf" },
    { "\xed\xa0\x80.pdf", "filename*=UTF-8''%C3%AD%C2%A0%E2%82%AC.pdf" },   /* a surrogate's bytes, each alone */
    { "say \"hi\" \\o/.txt", "filename=\".txt\"" },
    { "say \"hi\".txt", "filename*=UTF-8''say%20%22hi%22.txt" },
    { "=?UTF-8?B?ZXZpbC5leGU=?=", "filename*=UTF-8''%3D%3FUTF-8%3FB%3FZXZpbC5leGU%3D%3F%3D" },
    { "caf\xc3\xa9.pdf", "filename*=UTF-8''caf%C3%A9.pdf" },
    { "  report.pdf . ", "filename=\"report.pdf\"" },       /* as Windows would save it */
    { "evil.exe.", "filename=\"evil.exe\"" },
    { ".profile", "filename=\".profile\"" },
    { "..\xef\xbc\x8f..\xef\xbc\xbc" "x\xe2\x88\x95y.pdf", "filename=\".._.._x_y.pdf\"" },   /* ／ ＼ ∕ */
    { "a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d\xc2\x9f.pdf", "filename=\"a_b_c_d_.pdf\"" },   /* NEL, U+2028/9, C1 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    is_str(name_shown(path, cases[i].in, got, sizeof got), cases[i].want, "name %zu shown as %s", i, cases[i].want);
  /* nothing left, or only dots: the file's own name */
  static const char *const empty[] = { "..", "../..", "/", "dir/", "C:\\", "...", "./.", " ", "x/ . ", NULL };
  snprintf(want, sizeof want, "filename=\"%s\"", base);
  for (int i = 0; empty[i]; i++)
    is_str(name_shown(path, empty[i], got, sizeof got), want, "name '%s': the file's own name", empty[i]);
  /* a long name (300 bytes, then 300 two-byte characters): cut to 255 bytes, extension kept */
  char longn[700];
  memset(longn, 'a', 300);
  strcpy(longn + 300, ".pdf");
  name_shown(path, longn, got, sizeof got);
  char exp[300];
  memset(exp, 'a', 251);
  snprintf(exp + 251, sizeof exp - 251, ".pdf");
  snprintf(want, sizeof want, "filename*=UTF-8''%s", exp);
  is_str(got, want, "a 304-byte name cut to 255 bytes, .pdf kept");
  for (int i = 0; i < 300; i++) { longn[2 * i] = '\xc3'; longn[2 * i + 1] = '\xa9'; }
  strcpy(longn + 600, ".pdf");
  name_shown(path, longn, got, sizeof got);
  int whole = 1, k = 0;
  const char *p = got + strlen("filename*=UTF-8''");
  for (; !strncmp(p, "%C3%A9", 6); p += 6) k++;
  whole = !strcmp(p, ".pdf");
  ok(whole && k == 125, "300 two-byte characters: 125 kept whole (250 bytes) and .pdf (%d, %s)", k, got);
  /* no name given: the file's own name, a Latin-1 one read the same way */
  char lpath[] = "/tmp/mh-att\xe9-XXXXXX";
  int lfd = mkstemp(lpath);
  ok(lfd >= 0, "a test file with a Latin-1 name");
  if (lfd >= 0) close(lfd);
  snprintf(want, sizeof want, "filename*=UTF-8''mh-att%%C3%%A9-%s", lpath + strlen("/tmp/mh-att\xe9-"));
  is_str(name_shown(lpath, NULL, got, sizeof got), want, "a Latin-1 file name as UTF-8 (was mh-att_-...)");
  unlink(lpath);
  /* CR, LF and NUL are still refused, never stripped */
  ok(strstr(name_shown(path, "a\r\nContent-Type: text/html", got, sizeof got), "CR, LF or NUL in the file name") != NULL,
     "CRLF in a name refused: %s", got);
  unlink(path);
}

/* A long name goes in RFC 2231 continuations (filename*0*=UTF-8''...;
** filename*1*=...), each line within 78 characters, each piece whole %XX
** triplets of whole UTF-8 characters (a reader may decode pieces one by one);
** a name whose one parameter fits in 78 stays one parameter. */
static void test_attachment_name_folding(void) {
  char path[] = "/tmp/mh-attf-XXXXXX";
  int fd = mkstemp(path);
  ok(fd >= 0 && write(fd, "x", 1) == 1, "a test file");
  close(fd);
  static const char *const names[] = {
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.pdf",   /* 76 ASCII */
    "a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9.pdf",    /* é, odd offset */
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80.png",                                 /* 4-byte */
    NULL,
  };
  for (int i = 0; names[i]; i++) {
    mh_msg *m = basic();
    mh_msg_add_addr(m, MH_MSG_TO, "x@y.com", 7, NULL);
    size_t len;
    char *out = mh_msg_add_attachment(m, path, NULL, names[i]) == 0 ? build(m, &len) : NULL;
    const char *d = out ? strstr(out, "Content-Disposition: attachment;\r\n") : NULL;
    ok(d != NULL, "name %d built", i);
    if (!d) { free(out); mh_msg_free(m); continue; }
    d += 34;
    int pieces = 0, fits = 1, whole = 1;
    while (!strncmp(d, " filename", 9)) {
      size_t k = strcspn(d, "\r");
      if (k > 78) fits = 0;
      const char *v = memchr(d, '=', k);
      if (!strncmp(d, " filename*0*=UTF-8''", 20)) v = d + 19;
      /* the piece decoded alone is whole UTF-8: count lead and continuation bytes */
      int need = 0;
      for (const char *p = v + 1; p < d + k && *p != ';'; p++) {
        unsigned c = (unsigned char)*p;
        if (*p == '%') { c = (unsigned)strtoul((char[]){p[1], p[2], 0}, NULL, 16); p += 2; }
        if ((c & 0xc0) == 0x80) { if (need-- <= 0) whole = 0; }
        else { if (need) whole = 0; need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0; }
      }
      if (need) whole = 0;
      pieces++;
      d += k + 2;
    }
    ok(fits, "name %d: every line within 78", i);
    ok(whole, "name %d: every piece whole characters", i);
    ok(pieces >= 2, "name %d: %d continuations", i, pieces);
    free(out);
    mh_msg_free(m);
  }
  unlink(path);
}

/* 100,000 recipients (To, then each again in Bcc, and with a root dot): the
** duplicates go, and the work of finding them is linear.  A search of the list
** so far made it quadratic: 80,000 recipients took 13 s in one C call, 20,000
** took 0.6 s.  What is checked is the count of slots looked at, not a time:
** it does not depend on the machine's speed or load, and the hash and the
** addresses are fixed, so the count is the same at every run (about 1.3 per
** address here; the old search made n*n/2, 5 billion for 100,000). */
static void test_many_recipients(void) {
  enum { N = 100000 };
  mh_msg *m = mh_msg_new();
  char a[64];
  int bad = 0;
  mh_msg_add_addr(m, MH_MSG_FROM, "pbx@example.com", 15, NULL);
  for (int i = 0; i < N && !bad; i++) {
    int n = snprintf(a, sizeof a, "user%d@example.com", i);
    bad = mh_msg_add_addr(m, MH_MSG_TO, a, (size_t)n, NULL) != 0;
    if (i % 10 == 0 && !bad) bad = mh_msg_add_addr(m, MH_MSG_BCC, a, (size_t)n, NULL) != 0;
    if (i % 10 == 1 && !bad) {   /* the same with a root dot: the same envelope address */
      n = snprintf(a, sizeof a, "user%d@example.com.", i);
      bad = mh_msg_add_addr(m, MH_MSG_CC, a, (size_t)n, NULL) != 0;
    }
  }
  ok(!bad, "100,000 recipients added");
  is_int(mh_msg_finish(m, 1700000000), 0, "the message is finished");
  is_int(mh_msg_rcpt_count(m), N, "each envelope recipient once (20,000 repeats dropped)");
  is_str(mh_msg_rcpt(m, N - 1), "user99999@example.com", "in the order given");
  size_t probes = mh__msg_rcpt_probes(m);
  ok(probes <= 3 * (size_t)(N + N / 5), "finding repeats looked at %zu slots for %d addresses (linear, "
     "at most 3 each; the old search looked at n*n/2)", probes, N + N / 5);
  mh_msg_free(m);
}

int main(void) {
  test_edges();
  test_addresses();
  test_root_dot();
  test_headers_and_bcc();
  test_injection();
  test_long_and_non_ascii();
  test_long_whitespace();
  test_bodies();
  test_from_lines();
  test_date_zones();
  test_not_utf8();
  test_attachment();
  test_attachment_names();
  test_attachment_name_folding();
  test_attachments_total();
  test_attachments_grow();
  test_misc();
  test_many_recipients();
  return done_testing();
}
