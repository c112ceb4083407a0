/*
** test-smtp.c — the SMTP session state machine driven by scripted reply lines,
** with no socket: what it writes is captured and compared byte for byte.
*/
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "smtp-helpers.h"
#include "smtp.h"
#include "mime7.h"
#include "error.h"

/* What the session told its owner. */
typedef struct {
  mh_buf out;        /* every byte written */
  int writes;        /* number of write calls (a pipelined group is one) */
  int done, rc;      /* io.done calls and the last rc */
  int starttls;      /* io.starttls calls */
  uint64_t timer;    /* last timer armed */
  int more;          /* io.more calls (a streamed message's next piece wanted) */
} rec;

static void w_cb(void *ud, const char *b, size_t n) { rec *r = ud; mh_buf_add(&r->out, b, n); r->writes++; }
static void t_cb(void *ud, uint64_t ms) { ((rec *)ud)->timer = ms; }
static void s_cb(void *ud) { ((rec *)ud)->starttls++; }
static void d_cb(void *ud, int rc) { rec *r = ud; r->done++; r->rc = rc; }
static void m_cb(void *ud) { ((rec *)ud)->more++; }

static mh_smtp *new_session(rec *r, int starttls) {
  mh_smtp_params p = { .helo = "client.test", .host = "mx.test", .port = 25, .starttls = starttls,
                       .command_ms = 60000, .data_ms = 600000 };
  mh_smtp_io io = { r, w_cb, t_cb, s_cb, d_cb, m_cb };
  mh_buf_free(&r->out);
  memset(r, 0, sizeof *r);
  return mh_smtp_new(&p, &io);
}


static const char *take(rec *r) { return take_out(&r->out, &r->writes); }

/* The output since the last take() is want. */
#define like_out(r, want, ...) is_str(take(r), want, __VA_ARGS__)

static const char *EHLO_FULL =
  "250-mx.test greets you\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n"
  "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250 STARTTLS\r\n";

/* Opens a session up to READY with the given EHLO reply. */
static mh_smtp *opened(rec *r, const char *ehlo) {
  mh_smtp *s = new_session(r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx.test ESMTP\r\n");
  feed(s, ehlo);
  take(r);
  r->done = 0;
  return s;
}

static void test_ehlo_caps(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  is_int(mh_smtp_get_state(s), MH_SMTP_BANNER, "waits for the greeting");
  is_int(r.timer, 60000, "greeting timer is the RFC 5 min capped by command_timeout");
  feed(s, "220 mx.test ESMTP\r\n");
  is_str(take(&r), "EHLO client.test\r\n", "EHLO with the helo name");
  feed(s, EHLO_FULL);
  is_int(r.done, 1, "open done");
  is_int(r.rc, 0, "open ok");
  const mh_smtp_caps *c = mh_smtp_get_caps(s);
  ok((c->flags & MH_SMTP_CAP_PIPELINING) && (c->flags & MH_SMTP_CAP_8BITMIME) &&
     (c->flags & MH_SMTP_CAP_SMTPUTF8) && (c->flags & MH_SMTP_CAP_STARTTLS) &&
     (c->flags & MH_SMTP_CAP_ENHANCED), "PIPELINING 8BITMIME SMTPUTF8 STARTTLS ENHANCEDSTATUSCODES");
  is_int(c->size, 100000, "SIZE limit");
  is_int(c->auth, MH_SMTP_AUTH_PLAIN | MH_SMTP_AUTH_LOGIN | MH_SMTP_AUTH_XOAUTH2, "AUTH mechanisms");
  ok(strstr(c->list, "AUTH,PLAIN,LOGIN,XOAUTH2") != NULL, "capability list for the report: %s", c->list);
  ok(mh_smtp_used_ehlo(s), "EHLO used");
  is_int(r.timer, 0, "no timer while idle");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* A 421 in the same read as the greeting: the session closes, and the EHLO the
** greeting produced is never written (the fuzzer's input "222\n421\n" ended in
** smtp.c's assertion that a closed session writes nothing). */
static void test_421_with_greeting(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx.test\r\n421 4.3.2 going down\r\n");
  is_str(take(&r), "", "nothing written: not the EHLO of the greeting");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "closed");
  is_int(r.done, 1, "the open ends once");
  is_int(r.rc, MH_EREPLY, "with the server's refusal");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* A greeting that is no SMTP is quoted, escaped and cut (the admin sees an SSH
** or HTTP server there); a malformed reply later is not (it could echo AUTH). */
static void test_garbage_greeting_quoted(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "SSH-2.0-OpenSSH_9.2 \x1b[31m\\\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "a greeting that is no SMTP: closed");
  is_str(mh_smtp_errmsg(s), "malformed reply line (line 1): 'SSH-2.0-OpenSSH_9.2 \\x1b[31m\\x5c'",
         "the greeting quoted, its control byte and backslash escaped");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
  r = (rec){ 0 };
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  char big[200];
  memset(big, 'H', sizeof big);
  memcpy(big + sizeof big - 3, "\r\n", 3);
  feed(s, big);
  ok(strstr(mh_smtp_errmsg(s), "HHHH...'") != NULL && strlen(mh_smtp_errmsg(s)) < 120,
     "a long one cut at 60 bytes: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);
  mh_buf_free(&r.out);
  r = (rec){ 0 };
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx.test\r\n");
  take(&r);
  feed(s, "AHVzZXIAcGFzcw==\r\n");
  is_str(mh_smtp_errmsg(s), "malformed reply line (line 1)", "a malformed reply after the greeting: not quoted");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_helo_fallback(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 old.test\r\n");
  take(&r);
  feed(s, "502 5.5.1 command not implemented\r\n");
  is_str(take(&r), "HELO client.test\r\n", "HELO after a 5xx to EHLO");
  feed(s, "250 old.test\r\n");
  is_int(r.rc, 0, "open ok with HELO");
  ok(!mh_smtp_used_ehlo(s), "no EHLO");
  is_int(mh_smtp_get_caps(s)->flags, 0, "no capabilities");
  is_str(mh_smtp_ehlo_refused(s), "502 5.5.1 command not implemented", "the refusal kept, for the report");
  mh_smtp_free(s);
  /* a server that takes EHLO: nothing kept */
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 new.test\r\n");
  take(&r);
  feed(s, "250 new.test\r\n");
  ok(mh_smtp_used_ehlo(s) && !mh_smtp_ehlo_refused(s), "EHLO taken: no refusal to report");
  mh_smtp_free(s);
  /* HELO refused too: no session took HELO (the report said "and took HELO") */
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 older.test\r\n");
  take(&r);
  feed(s, "502 5.5.1 command not implemented\r\n");
  take(&r);
  feed(s, "550 5.7.1 go away\r\n");
  ok(r.rc != 0 && !mh_smtp_ehlo_refused(s), "EHLO and HELO refused: no session without extensions to explain");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_pipelining(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, EHLO_FULL);
  const char *to[] = { "b@x.test", "c@x.test" };
  const char *msg = "Subject: hi\r\n\r\nbody\r\n";
  is_int(mh_smtp_send(s, "a@x.test", to, 2, msg, strlen(msg)), 0, "send started");
  is_int(r.writes, 1, "the group is one write");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n",
         "MAIL, RCPT, RCPT, DATA pipelined");
  feed(s, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n");
  is_int(r.writes, 1, "body and dot in one write");
  is_str(take(&r), "Subject: hi\r\n\r\nbody\r\n.\r\n", "body then dot");
  is_int(r.timer, 600000, "final dot timer is data_timeout");
  is_int(r.done, 0, "not done before the final reply");
  feed(s, "250 2.0.0 queued as X\r\n");
  is_int(r.done, 1, "done");
  is_int(r.rc, 0, "accepted");
  size_t n;
  const mh_smtp_rcpt *rc = mh_smtp_rcpts(s, &n);
  is_int(n, 2, "two recipient results");
  ok(rc[0].accepted && rc[0].code == 250, "first accepted");
  ok(!rc[1].accepted && rc[1].code == 550, "second refused");
  is_str(rc[1].enhanced, "5.1.1", "its enhanced code");
  is_str(rc[1].text, "5.1.1 no such user", "its text");
  /* next message: the dot ended the transaction, so no RSET in front */
  is_int(mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg)), 0, "second send");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "no RSET after a completed transaction");
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  feed(s, "250 ok\r\n");
  is_int(r.rc, 0, "second accepted");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_pipelined_mail_refused(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  const char *to[] = { "b@x.test" };
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  take(&r);
  feed(s, "550 5.7.1 sender refused\r\n");
  is_int(r.done, 0, "the pipelined replies are still awaited");
  feed(s, "503 5.5.1 need MAIL\r\n554 5.5.1 no valid recipients\r\n");
  is_int(r.done, 1, "done after the DATA reply");
  is_int(r.rc, MH_EREPLY, "refused");
  is_str(mh_smtp_stage(s), "mail", "stage mail");
  is_int(mh_smtp_last_reply(s)->code, 550, "MAIL's reply decides");
  is_str(take(&r), "", "no data sent");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready for the next message");
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  ok(strncmp(take(&r), "RSET\r\n", 6) == 0, "RSET before the next transaction");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_no_pipelining(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 8BITMIME\r\n");
  const char *to[] = { "b@x.test", "c@x.test" };
  mh_smtp_send(s, "a@x.test", to, 2, "x", 1);
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\n", "MAIL alone");
  feed(s, "250 ok\r\n");
  is_str(take(&r), "RCPT TO:<b@x.test>\r\n", "first RCPT");
  feed(s, "451 4.3.0 try later\r\n");
  is_str(take(&r), "RCPT TO:<c@x.test>\r\n", "second RCPT");
  feed(s, "550 5.1.1 unknown\r\n");
  is_int(r.done, 1, "done without DATA");
  is_int(r.rc, MH_EREPLY, "no recipient accepted");
  is_str(take(&r), "", "no DATA sent");
  is_str(mh_smtp_stage(s), "rcpt", "stage rcpt");
  is_int(mh_smtp_last_reply(s)->code, 451, "decisive reply is the first refusal");
  ok(strstr(mh_smtp_errmsg(s), "b@x.test") != NULL, "message names the recipient: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_size(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 SIZE 100\r\n");
  const char *to[] = { "b@x.test" };
  char big[200];
  memset(big, 'a', sizeof big);
  is_int(mh_smtp_send(s, "a@x.test", to, 1, big, sizeof big), MH_ETOOBIG, "over SIZE fails at once");
  is_str(take(&r), "", "nothing sent");
  is_int(r.done, 0, "no io.done for a refusal before start");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "session still usable");
  is_str(mh_smtp_errmsg(s), "message is 202 bytes, the server accepts at most 100 (its SIZE); not sent",
         "the reason gives both sizes, and says it was decided here (issue 19.3)");
  is_int(mh_smtp_send(s, "a@x.test", to, 1, big, 50), 0, "under SIZE goes");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=52\r\n", "SIZE parameter");
  feed(s, "250 ok\r\n");
  feed(s, "250 ok\r\n");
  feed(s, "354 go\r\n");
  feed(s, "250 ok\r\n");
  take(&r);
  is_int(mh_smtp_send(s, "a@x.test", to, 1, ".a\r\n..\r\nb", 9), 0, "a message with dots at line starts");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=11\r\n", "SIZE: the message with its CRLF, not the stuffed dots");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
  /* the parameter's digits are written by hand (no snprintf per message): every width */
  s = opened(&r, "250-mx\r\n250 SIZE\r\n");
  size_t lines[] = { 1, 10, 100, 6553, 104857 };   /* of 10 bytes: SIZE = 10 x lines */
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    size_t n = lines[i] * 10;
    char *m = (char *)malloc(n), want[64];
    for (size_t k = 0; k < n; k += 10) memcpy(m + k, "aaaaaaaa\r\n", 10);
    is_int(mh_smtp_send(s, "a@x.test", to, 1, m, n), 0, "send %zu bytes", n);
    snprintf(want, sizeof want, "MAIL FROM:<a@x.test> SIZE=%zu\r\n", n);
    is_str(take(&r), want, "SIZE=%zu", n);
    feed(s, "250 ok\r\n");
    feed(s, "250 ok\r\n");
    feed(s, "354 go\r\n");
    feed(s, "250 ok\r\n");
    take(&r);
    free(m);
  }
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* mh_smtp_strcopy: snprintf(dst, cap, "%s", src) without the format parser */
static void test_strcopy(void) {
  char b[6];
  mh_smtp_strcopy(b, sizeof b, "abc");
  is_str(b, "abc", "short: whole");
  mh_smtp_strcopy(b, sizeof b, "abcde");
  is_str(b, "abcde", "cap - 1 bytes: whole");
  mh_smtp_strcopy(b, sizeof b, "abcdefgh");
  is_str(b, "abcde", "longer: cut to cap - 1, terminated");
  mh_smtp_strcopy(b, 1, "abc");
  is_str(b, "", "cap 1: empty");
  memcpy(b, "zzzzz", 6);
  mh_smtp_strcopy(b, 0, "abc");
  is_str(b, "zzzzz", "cap 0: nothing written");
  mh_smtp_strcopy(b, sizeof b, "");
  is_str(b, "", "empty source");
}

static void test_bad_addresses(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250 mx\r\n");
  const char *to[] = { "b@x.test>\r\nRCPT TO:<evil@x" };
  const char *ok_to[] = { "b@x.test" };
  is_int(mh_smtp_send(s, "a@x.test", to, 1, "x", 1), MH_EBADADDR, "CRLF in a recipient refused");
  is_int(mh_smtp_send(s, "a@x.test\r\nDATA", ok_to, 1, "x", 1), MH_EBADADDR, "CRLF in the sender refused");
  const char *u[] = { "j\xc3\xbcrg@x.test" };
  is_int(mh_smtp_send(s, "a@x.test", u, 1, "x", 1), MH_EBADADDR, "UTF-8 address without SMTPUTF8");
  is_str(take(&r), "", "nothing sent");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* Returns 1 if every CR and LF in b[0..n) is part of a CRLF pair. */
static int crlf_only(const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (b[i] == '\r' && (i + 1 >= n || b[i + 1] != '\n')) return 0;
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) return 0;
  }
  return 1;
}

static void test_dot_stuffing(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  const char *to[] = { "b@x.test" };
  const char msg[] = "Subject: x\n\nline1\n.\nfoo\r.\rbar\rbaz\r\n..x\n.";
  mh_smtp_send(s, "a@x.test", to, 1, msg, sizeof msg - 1);
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  const char *got = take(&r);
  is_str(got, "Subject: x\r\n\r\nline1\r\n..\r\nfoo\r\n..\r\nbar\r\nbaz\r\n...x\r\n..\r\n.\r\n",
         "dot-stuffed, every line end CRLF, one terminator");
  ok(crlf_only(got, strlen(got)), "no bare CR or LF on the wire");
  ok(strstr(got, "\r\n.\r\n") == got + strlen(got) - 5, "\\r\\n.\\r\\n only at the end");
  mh_smtp_free(s);
  mh_buf_free(&r.out);

  /* the writer alone, in pieces: a CR at the end of one chunk and LF at the next */
  mh_smtp_dotw w;
  mh_buf out = { 0 };
  mh_smtp_dot_init(&w);
  mh_smtp_dot_write(&w, &out, "a\r", 2);
  mh_smtp_dot_write(&w, &out, "\n.b\r", 4);
  mh_smtp_dot_write(&w, &out, ".c", 2);
  mh_smtp_dot_finish(&w, &out);
  is_str(out.data, "a\r\n..b\r\n..c\r\n.\r\n", "CRLF split across writes is one line end");
  mh_buf_free(&out);

  /* a 2000-byte header line is folded (continuation starts with a space), a body line broken */
  char big[2100];
  memcpy(big, "X-Long: ", 8);
  memset(big + 8, 'h', 1992);
  memcpy(big + 2000, "\n\n", 2);
  memset(big + 2002, 'b', 98);
  mh_smtp_dot_init(&w);
  mh_smtp_dot_write(&w, &out, big, 2100);
  mh_smtp_dot_finish(&w, &out);
  int maxline = 0, cur = 0, folded = 0;
  for (size_t i = 0; i < out.len; i++) {
    if (out.data[i] == '\r') {
      if (cur > maxline) maxline = cur;
      cur = 0;
      i++;
      if (i + 1 < out.len && out.data[i + 1] == ' ') folded++;
      continue;
    }
    cur++;
  }
  ok(maxline <= 998, "no line over 998 octets (max %d)", maxline);
  ok(folded >= 2, "header line folded with a leading space (%d folds)", folded);
  mh_buf_free(&out);
}

/* The joined text of a reply: its lines' text after the code, one LF between
** them, each control byte and DEL as '?' (bytes over 0x7f kept), cut at the
** buffer's end: against the rule byte by byte, over random lines whose
** control bytes fall at every position of the parser's 8-byte steps. */
static void test_reply_text(void) {
  static const unsigned char pick[] = { 'a', ' ', '\0', '\t', '\r', 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff };
  static char want[sizeof ((mh_smtp_reply *)0)->text];
  static mh_smtp_reply rep;
  unsigned seed = 7;
  int bad = 0, cut = 0;
  for (int round = 0; round < 400; round++) {
    int nlines = 1 + round % 5, longer = round % 50 == 4;   /* five lines of 2,000 bytes */
    size_t wn = 0;
    mh_smtp_reply_reset(&rep);
    for (int l = 0; l < nlines; l++) {
      char line[MH_SMTP_LINE_MAX];
      size_t n = longer ? MH_SMTP_LINE_MAX : 4 + ((seed = seed * 1103515245u + 12345u) >> 16) % 40;
      memcpy(line, l + 1 < nlines ? "250-" : "250 ", 4);
      for (size_t i = 4; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        line[i] = (char)((seed >> 16) % 3 ? 'a' + (seed >> 20) % 26 : pick[(seed >> 18) % sizeof pick]);
      }
      if (l > 0 && wn < sizeof want - 1) want[wn++] = '\n';
      for (size_t i = 4; i < n && wn < sizeof want - 1; i++) {
        unsigned char c = (unsigned char)line[i];
        want[wn++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;   /* 0x80, 0xff: no UTF-8 */
      }
      mh_smtp_reply_line(&rep, line, n);
    }
    want[wn] = '\0';
    cut += wn == sizeof want - 1;
    if (rep.len != wn || memcmp(rep.text, want, wn + 1)) bad++;
  }
  is_int(bad, 0, "reply text: control bytes and stray high bytes as '?', lines joined, cut at the buffer's end "
         "(400 replies)");
  ok(cut > 0, "some replies filled the text buffer (%d)", cut);
}

/* A hostile server's text as it may be shown (text.h): what drives a terminal
** (C1 controls, ESC), turns text around (U+202E) or breaks a line (U+2028),
** bytes that are no UTF-8, each become '?'; UTF-8 text is kept, and the joined
** text is cut at its end on a character boundary. */
static void test_reply_text_shown(void) {
  static mh_smtp_reply rep;
  static const struct { const char *in, *want, *what; } cases[] = {
    { "550 a\xc2\x9b" "2Jb", "a?2Jb", "C1 CSI (U+009B, xterm's and VTE's ESC [)" },
    { "550 \xc2\x9d" "52;c;ZXZpbA==\xc2\x9c", "?52;c;ZXZpbA==?", "C1 OSC 52 and ST" },
    { "550 \x1b]0;title\x07x", "?]0;title?x", "ESC and BEL" },
    { "550 evil\xe2\x80\xaegpj.exe", "evil?gpj.exe", "right-to-left override" },
    { "550 a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "a?b?c", "line and paragraph separators" },
    { "550 \xe2\x81\xa6x\xe2\x81\xa9\xe2\x80\x8f\xd8\x9c", "?x???", "isolates, RLM, ALM" },
    { "550 raw\x9b" "2J \xff\xfe \xc0\xaf \xed\xa0\x80", "raw?2J ?? ?? ???", "stray, overlong, surrogate bytes" },
    { "550 Zugang f\xc3\xbcr \xe2\x82\xac \xf0\x9f\x93\xa7 verweigert", "Zugang f\xc3\xbcr \xe2\x82\xac \xf0\x9f\x93\xa7 verweigert",
      "UTF-8 kept" },
    { "550 cut \xe2\x82", "cut ??", "a character cut at the line's end" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mh_smtp_reply_reset(&rep);
    is_int(mh_smtp_reply_line(&rep, cases[i].in, strlen(cases[i].in)), 1, "%s: a reply", cases[i].what);
    is_str(rep.text, cases[i].want, "%s: shown as text", cases[i].what);
    is_str(rep.first, cases[i].want, "%s: the line too (the EHLO list's source)", cases[i].what);
  }
  /* the joined text full: a 3-byte character that does not fit is left out whole */
  char line[MH_SMTP_LINE_MAX];
  size_t room = sizeof rep.text - 1, n = 0;
  mh_smtp_reply_reset(&rep);
  memcpy(line, "250-", 4);
  memset(line + 4, 'a', sizeof line - 4);
  while (room - n > MH_SMTP_LINE_MAX) {
    mh_smtp_reply_line(&rep, line, sizeof line);
    n = rep.len + 1;
  }
  size_t pad = room - n - 1;   /* then one byte of room left for "\xe2\x82\xac" */
  memcpy(line, "250 ", 4);
  memset(line + 4, 'b', pad);
  memcpy(line + 4 + pad, "\xe2\x82\xac", 3);
  mh_smtp_reply_line(&rep, line, 4 + pad + 3);
  is_int((int)rep.len, (int)(room - 1), "the text cut before the character that does not fit");
  ok(rep.text[rep.len - 1] == 'b', "no piece of it at the end");
  /* the same, ended by 40 bytes that are no UTF-8 (0x80, continuation bytes of
     no character): the text cut at the buffer's end, not walked back over the
     whole run (which cut the last line's words with it) */
  mh_smtp_reply_reset(&rep);
  memcpy(line, "250-", 4);
  memset(line + 4, 'a', sizeof line - 4);
  n = 0;
  while (room - n > MH_SMTP_LINE_MAX) {
    mh_smtp_reply_line(&rep, line, sizeof line);
    n = rep.len + 1;
  }
  pad = room - n - 10;
  memcpy(line, "250 ", 4);
  memset(line + 4, 'b', pad);
  memset(line + 4 + pad, 0x80, 40);
  mh_smtp_reply_line(&rep, line, 4 + pad + 40);
  is_int((int)rep.len, (int)room, "stray bytes at the end: the text cut where the buffer ends");
}

static void test_reply_parser(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220-first\r\n250 other code\r\n");
  is_int(r.rc, MH_EPROTO, "continuation with another code is a violation");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "session closed");
  ok(strstr(mh_smtp_errmsg(s), "continuation") != NULL, "message says why: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);

  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  char line[2100];
  memset(line, 'a', sizeof line);
  memcpy(line, "220 ", 4);
  mh_smtp_data(s, line, sizeof line);
  is_int(r.rc, MH_ETOOLONG, "over-long line (even before its LF) refused");
  mh_smtp_free(s);

  /* a greeting that is no SMTP at all: quoted (its start, escaped), said as a
  ** protocol violation (EPROTO), whether it is too long or cut by a hang-up */
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  memset(line, 'B', sizeof line);
  line[0] = '\x16';
  mh_smtp_data(s, line, sizeof line);
  is_int(r.rc, MH_EPROTO, "an over-long greeting that is no reply: a protocol violation");
  ok(strstr(mh_smtp_errmsg(s), "'\\x16BBBB") && strstr(mh_smtp_errmsg(s), "BBB...'"),
     "its start quoted, escaped and cut: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  mh_smtp_data(s, "\x00\x01" "bin\x1b[31m", 10);
  mh_smtp_error(s, MH_EEOF, "connection closed by the server");
  is_int(r.rc, MH_EPROTO, "binary, then a hang-up: a protocol violation");
  ok(strstr(mh_smtp_errmsg(s), "after '\\x00\\x01bin\\x1b[31m'") != NULL, "what came quoted: %s",
     mh_smtp_errmsg(s));
  mh_smtp_free(s);
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  mh_smtp_data(s, "220 cut", 7);
  mh_smtp_error(s, MH_EEOF, "connection closed by the server");
  is_int(r.rc, MH_EEOF, "a greeting cut short: still the hang-up it is");
  ok(strstr(mh_smtp_errmsg(s), "after '220 cut'") != NULL, "quoted too: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);
  /* all of its first 60 bytes escaped (a TLS record, binary): still cut
  ** with "..." when there was more (the room for it was 4 bytes short) */
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  memset(line, '\x16', 100);
  mh_smtp_data(s, line, 100);
  mh_smtp_error(s, MH_EEOF, "connection closed by the server");
  ok(strstr(mh_smtp_errmsg(s), "\\x16\\x16...'") != NULL, "binary cut, said so: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);

  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  for (int i = 0; i < 150 && r.done == 0; i++) feed(s, "220-more\r\n");
  is_int(r.rc, MH_ETOOLONG, "more than %d lines refused", MH_SMTP_LINES_MAX);
  mh_smtp_free(s);

  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "22O hello\r\n");
  is_int(r.rc, MH_EPROTO, "non-digit code refused");
  mh_smtp_free(s);

  mh_smtp_reply rep;
  mh_smtp_reply_reset(&rep);
  is_int(mh_smtp_reply_line(&rep, "451 4.7.1 greylisted", 20), 1, "one-line reply complete");
  is_str(rep.enhanced, "4.7.1", "enhanced code");
  mh_smtp_reply_reset(&rep);
  mh_smtp_reply_line(&rep, "451 5.7.1 class mismatch", 24);
  is_str(rep.enhanced, "", "enhanced code of another class ignored");
  mh_smtp_reply_reset(&rep);
  is_int(mh_smtp_reply_line(&rep, "250", 3), 1, "bare code is a complete reply");
  test_reply_text();
  test_reply_text_shown();
}

static void test_starttls(void) {
  rec r = { 0 };
  mh_smtp *s = new_session(&r, 2);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx\r\n");
  take(&r);
  feed(s, "250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
  is_str(take(&r), "STARTTLS\r\n", "STARTTLS sent");
  feed(s, "220 go ahead\r\n250-injected\r\n");
  is_int(r.done, 1, "done");
  is_int(r.rc, MH_EPROTO, "bytes after the 220 abort the session");
  is_int(r.starttls, 0, "no handshake started");
  is_str(take(&r), "", "nothing sent after");
  is_str(mh_smtp_stage(s), "tls", "stage tls");
  mh_smtp_free(s);

  s = new_session(&r, 2);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx\r\n");
  feed(s, "250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
  take(&r);
  feed(s, "220 go ahead\r\n");
  is_int(r.starttls, 1, "handshake requested");
  is_int(mh_smtp_get_caps(s)->auth, 0, "capabilities from before TLS forgotten");
  feed(s, "2");
  is_int(r.rc, MH_EPROTO, "a byte during the handshake aborts too");
  mh_smtp_free(s);

  s = new_session(&r, 2);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx\r\n");
  feed(s, "250-mx\r\n250 STARTTLS\r\n");
  feed(s, "220 go ahead\r\n");
  take(&r);
  mh_smtp_tls_ready(s);
  is_str(take(&r), "EHLO client.test\r\n", "EHLO again after the handshake");
  feed(s, "250-mx\r\n250 AUTH LOGIN\r\n");
  is_int(r.rc, 0, "open ok");
  ok(mh_smtp_is_tls(s), "TLS on");
  is_int(mh_smtp_get_caps(s)->auth, MH_SMTP_AUTH_LOGIN, "capabilities from after TLS");
  mh_smtp_free(s);

  s = new_session(&r, 2);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx\r\n");
  take(&r);
  feed(s, "250-mx\r\n250 AUTH PLAIN\r\n");
  is_int(r.rc, MH_ENOTLS, "STARTTLS not offered while required");
  is_str(take(&r), "", "nothing sent (no AUTH, no MAIL)");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "closed");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_auth(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_PLAIN, "user", "pass");
  is_str(take(&r), "AUTH PLAIN AHVzZXIAcGFzcw==\r\n", "AUTH PLAIN with initial response");
  feed(s, "235 2.7.0 ok\r\n");
  is_int(r.rc, 0, "authenticated");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 AUTH LOGIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_LOGIN, "user", "pass");
  is_str(take(&r), "AUTH LOGIN\r\n", "AUTH LOGIN");
  feed(s, "334 VXNlcm5hbWU6\r\n");
  is_str(take(&r), "dXNlcg==\r\n", "user name");
  feed(s, "334 UGFzc3dvcmQ6\r\n");
  is_str(take(&r), "cGFzcw==\r\n", "password");
  feed(s, "535 5.7.8 bad credentials\r\n");
  is_int(r.rc, MH_EAUTH, "refused");
  is_str(mh_smtp_stage(s), "auth", "stage auth");
  is_int(mh_smtp_last_reply(s)->code, 535, "server's code kept");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "session still usable after 535");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 AUTH XOAUTH2\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_XOAUTH2, "u", "tok");
  is_str(take(&r), "AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHRvawEB\r\n", "XOAUTH2 initial response");
  feed(s, "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
  is_str(take(&r), "\r\n", "empty answer to the error challenge");
  feed(s, "535 5.7.3 token expired\r\n");
  is_int(r.rc, MH_EAUTH, "refused after the challenge");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* An OAuth access token runs to kilobytes.  RFC 4954 4: the AUTH command is
** still bound by SMTP's line limit (512), and a client MUST NOT put an initial
** response that would pass it on the AUTH line: the command alone, then the
** response whole after the server's empty 334 (a 3 KB token on the line got
** "500 Command line too long"; Postfix cuts lines past 2048).  A short one
** stays on the line (one round trip less). */
static void test_auth_long_token(void) {
  rec r = { 0 };
  static char tok[3000], want[8192], raw[3100];
  mh_buf b = { 0 };
  memset(tok, 'T', sizeof tok - 1);
  mh_smtp *s = opened(&r, "250-mx\r\n250 AUTH XOAUTH2 PLAIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_XOAUTH2, "u", tok);
  int n = snprintf(raw, sizeof raw, "user=u\001auth=Bearer %s\001\001", tok);
  mh_buf_b64(&b, raw, (size_t)n);
  is_str(take(&r), "AUTH XOAUTH2\r\n", "a 4 KB initial response: the AUTH command alone");
  feed(s, "334 \r\n");
  snprintf(want, sizeof want, "%s\r\n", b.data);
  const char *got = take(&r);
  is_int(strlen(got), strlen(want), "then the response line, whole (%zu bytes)", strlen(want));
  ok(strcmp(got, want) == 0, "and exactly the initial response");
  feed(s, "235 ok\r\n");
  is_int(r.rc, 0, "authenticated");
  mh_buf_free(&b);
  mh_smtp_free(s);
  /* the same for PLAIN with a long secret; a failure after it wipes what was kept */
  s = opened(&r, "250-mx\r\n250 AUTH PLAIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_PLAIN, "u", tok);
  is_str(take(&r), "AUTH PLAIN\r\n", "PLAIN with a 3 KB secret: the command alone");
  feed(s, "535 5.7.8 no\r\n");
  is_int(r.rc, MH_EAUTH, "refused before the response was asked for");
  is_str(take(&r), "", "and the response never sent");
  mh_smtp_free(s);
  /* a short one: on the line */
  s = opened(&r, "250-mx\r\n250 AUTH PLAIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_PLAIN, "u", "pw");
  is_str(take(&r), "AUTH PLAIN AHUAcHc=\r\n", "a short initial response: on the AUTH line");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_check_sender_and_quit(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  is_int(mh_smtp_check_sender(s, "a@x.test", NULL), 0, "check started");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRSET\r\n", "MAIL and RSET pipelined");
  feed(s, "553 5.7.1 sender not allowed\r\n250 ok\r\n");
  is_int(r.rc, MH_EREPLY, "sender refused");
  is_str(mh_smtp_stage(s), "mail", "stage mail");
  is_int(mh_smtp_last_reply(s)->code, 553, "code kept");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready again");
  /* after a transaction that ended before its dot: the RSET that clears it
  ** leaves alone, then MAIL and RSET as a group; the learned PIPELINING is
  ** not touched on the way */
  const char *to[] = { "b@x.test" };
  mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3);
  take(&r);
  feed(s, "250 ok\r\n550 no such user\r\n554 no valid recipients\r\n");
  is_int(r.rc, MH_EREPLY, "a message refused before its data");
  is_int(mh_smtp_check_sender(s, "c@x.test", NULL), 0, "a check after it");
  is_str(take(&r), "RSET\r\n", "the clearing RSET alone");
  ok(mh_smtp_get_caps(s)->flags & MH_SMTP_CAP_PIPELINING, "PIPELINING still known meanwhile");
  feed(s, "250 flushed\r\n");
  is_str(take(&r), "MAIL FROM:<c@x.test>\r\nRSET\r\n", "then MAIL and RSET pipelined");
  feed(s, "250 ok\r\n250 ok\r\n");
  is_int(r.rc, 0, "sender accepted");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready again");
  mh_smtp_quit(s);
  is_str(take(&r), "QUIT\r\n", "QUIT");
  feed(s, "221 bye\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "closed after QUIT");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* The check with a recipient (the Test button's postmaster@ of the From's
** domain): Postfix decides its HELO, sender and relay checks at RCPT, so MAIL
** alone passed for sessions whose every message it refuses. */
static void test_check_sender_rcpt(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  is_int(mh_smtp_check_sender(s, "a@x.test", "postmaster@x.test"), 0, "check with a recipient started");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRCPT TO:<postmaster@x.test>\r\nRSET\r\n", "MAIL, RCPT, RSET pipelined");
  feed(s, "250 ok\r\n554 5.7.1 <postmaster@x.test>: Relay access denied\r\n250 ok\r\n");
  is_int(r.rc, MH_EREPLY, "the RCPT's refusal is the outcome");
  is_str(mh_smtp_stage(s), "rcpt", "stage rcpt");
  is_int(mh_smtp_last_reply(s)->code, 554, "its code kept");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready again");
  is_int(mh_smtp_check_sender(s, "a@x.test", "postmaster@x.test"), 0, "again");
  take(&r);
  feed(s, "553 5.7.1 sender not allowed\r\n503 5.5.1 need MAIL\r\n250 ok\r\n");
  is_int(r.rc, MH_EREPLY, "MAIL refused, the RCPT's reply read all the same");
  is_str(mh_smtp_stage(s), "mail", "the outcome is MAIL's");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready again, in step with the server");
  is_int(mh_smtp_check_sender(s, "a@x.test", "postmaster@x.test"), 0, "and again");
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n250 ok\r\n");
  is_int(r.rc, 0, "both accepted");
  mh_smtp_free(s);
  /* without PIPELINING: one command at a time; a refused MAIL asks no RCPT */
  s = opened(&r, "250 mx\r\n");
  mh_smtp_check_sender(s, "a@x.test", "postmaster@x.test");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\n", "MAIL alone");
  feed(s, "250 ok\r\n");
  is_str(take(&r), "RCPT TO:<postmaster@x.test>\r\n", "then RCPT");
  feed(s, "504 5.5.2 <vm>: Helo command rejected: need fully-qualified hostname\r\n");
  is_str(take(&r), "RSET\r\n", "then RSET");
  feed(s, "250 ok\r\n");
  is_int(r.rc, MH_EREPLY, "refused at RCPT");
  mh_smtp_check_sender(s, "a@x.test", "postmaster@x.test");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\n", "MAIL");
  feed(s, "550 no\r\n");
  is_str(take(&r), "RSET\r\n", "refused: RSET, no RCPT");
  feed(s, "250 ok\r\n");
  is_str(mh_smtp_stage(s), "mail", "stage mail");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_timeouts_and_421(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250 mx\r\n");
  const char *to[] = { "b@x.test" };
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  is_int(mh_smtp_state_timeout(s), 60000, "MAIL: 5 min capped by command_timeout");
  feed(s, "250 ok\r\n");
  feed(s, "250 ok\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_DATA, "waiting for 354");
  is_int(r.timer, 60000, "DATA: 2 min capped");
  feed(s, "3");
  mh_smtp_timeout(s);
  is_int(r.rc, MH_ETIMEDOUT, "a partial reply does not stop the timeout");
  is_str(mh_smtp_stage(s), "data", "stage data");
  mh_smtp_free(s);

  s = opened(&r, "250 mx\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  feed(s, "421 4.4.2 shutting down\r\n");
  is_int(r.rc, MH_EREPLY, "421 ends the op");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "and the session");
  mh_smtp_free(s);

  /* a refusal before the session is ready is named by the step it came at: the
  ** connection had worked ("connect" is for no TCP connection) */
  {
    static const struct { const char *replies[3], *stage, *what; } before_ready[] = {
      { { "554 go away\r\n" }, "greeting", "a 554 greeting" },
      { { "220 mx\r\n", "421 4.3.2 going down\r\n" }, "ehlo", "a 421 to EHLO (right after the 220)" },
      { { "220 mx\r\n", "550 no EHLO\r\n", "451 not now\r\n" }, "helo", "EHLO, then its fallback HELO refused" },
    };
    for (size_t i = 0; i < sizeof before_ready / sizeof before_ready[0]; i++) {
      s = new_session(&r, 0);
      mh_smtp_connected(s, 0);
      for (int k = 0; k < 3 && before_ready[i].replies[k]; k++) feed(s, before_ready[i].replies[k]);
      is_int(r.rc, MH_EREPLY, "%s fails the open", before_ready[i].what);
      is_str(mh_smtp_stage(s), before_ready[i].stage, "%s: stage %s", before_ready[i].what, before_ready[i].stage);
      mh_smtp_free(s);
    }
  }
  mh_buf_free(&r.out);
}

static void test_state_names(void) {
  is_str(mh_smtp_state_name(MH_SMTP_BANNER), "BANNER", "state names from the X-macro");
  is_str(mh_smtp_state_name(MH_SMTP_CLOSED), "CLOSED", "last state");
}

/* A message streamed in pieces (mh_smtp_send_stream): asked for piece by piece
** as each one leaves, stuffed across the pieces, and the next message's
** commands ride with the last piece and its dot. */
static void test_streamed(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n");
  const char *to[] = { "b@x.test" };
  is_int(mh_smtp_send_stream(s, "a@x.test", to, 1, 5000, MH_SMTP_STREAM_8BIT, NULL), MH_ETOOBIG, "over the SIZE limit: refused at once");
  is_int(r.done, 0, "without io.done");
  is_int(mh_smtp_send_stream(s, "a@x.test", to, 1, 20, MH_SMTP_STREAM_8BIT, NULL), 0, "streamed send started");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "SIZE from the given size, BODY=8BITMIME as asked");
  is_int(mh_smtp_send(s, "a@x.test", to, 1, "two\r\n", 5), 0, "a second message queued behind it");
  is_str(take(&r), "", "nothing more yet");
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  is_int(r.more, 1, "the 354 asks for the first piece");
  is_str(take(&r), "", "and writes nothing by itself");
  mh_smtp_more(s, "Subject: s\r\n\r\nab\r\n", 18, 0);
  is_str(take(&r), "Subject: s\r\n\r\nab\r\n", "first piece out");
  is_int(r.more, 1, "no second request before it left");
  mh_smtp_flushed(s);
  is_int(r.more, 2, "it left: the next piece is asked for");
  mh_smtp_more(s, ".x\r\n", 4, 1);
  is_int(r.writes, 1, "the last piece, the dot and the next commands: one write");
  is_str(take(&r), "..x\r\n.\r\nMAIL FROM:<a@x.test> SIZE=5\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "a dot at the start of a piece is stuffed; the next MAIL rides with the final dot");
  mh_smtp_flushed(s);
  is_int(r.more, 2, "nothing more asked after the last piece");
  feed(s, "250 q1\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  is_int(r.done, 1, "message 1 done");
  is_int(r.rc, 0, "accepted");
  mh_smtp_release(s);
  is_str(take(&r), "two\r\n.\r\n", "message 2's data after release");
  feed(s, "250 q2\r\n");
  is_int(r.done, 2, "message 2 done");
  mh_smtp_free(s);

  /* the gate holds a streamed message's first request; a read error ends the session */
  s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, "one\r\n", 5);
  mh_smtp_send_stream(s, "a@x.test", to, 1, 10, 0, NULL);
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  take(&r);
  feed(s, "250 q1\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  is_int(r.done, 1, "message 1 done");
  is_int(r.more, 0, "message 2 gated: no piece asked for yet");
  mh_smtp_release(s);
  is_int(r.more, 1, "released: its first piece is asked for");
  mh_smtp_more_error(s, MH_EEOF, "the file got shorter");
  is_int(r.done, 2, "the half-sent message ends");
  is_int(r.rc, MH_EEOF, "with the read error");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "and the session with it (half a message must not look complete)");
  ok(strstr(mh_smtp_errmsg(s), "file got shorter") != NULL, "the reason says why: %s", mh_smtp_errmsg(s));
  is_str(mh_smtp_stage(s), "file", "at stage file: the message's file, not the server (outcome.classify)");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}


/* Issue 10.3: a reply is only ever the answer to something written.  A server
** that answers DATA with "354" and "250 ok" in one packet (and closes) must not
** make the message look delivered: the 250 came before the body and its dot
** left.  The class: any reply with no command outstanding. */
static void test_reply_before_written(void) {
  rec r = { 0 };
  const char *to[] = { "b@x.test" };
  const char *msg = "Subject: hi\r\n\r\nbody\r\n";
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n");
  is_int(r.done, 1, "354 and 250 in one read: the send ends");
  is_int(r.rc, MH_EPROTO, "as a protocol violation, not a delivery");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "the session is dropped");
  ok(strstr(mh_smtp_errmsg(s), "before the message and its final dot were sent") != NULL,
     "the reason says so: %s", mh_smtp_errmsg(s));
  is_str(take(&r), "", "and the body is not sent after the fact");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  is_str(take(&r), "Subject: hi\r\n\r\nbody\r\n.\r\n", "one reply per read: the body and dot leave");
  feed(s, "250 2.0.0 queued\r\n");
  is_int(r.rc, 0, "and the 250 that follows them is the result");
  feed(s, "250 extra\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "a reply while idle (nothing asked): closed");
  ok(strstr(mh_smtp_errmsg(s), "no command outstanding") != NULL, "named: %s", mh_smtp_errmsg(s));
  is_int(r.done, 1, "no io.done for it (no operation ran)");
  mh_smtp_free(s);

  /* without PIPELINING the RCPT leaves after MAIL's reply: a RCPT reply in the
  ** same read as MAIL's answers nothing */
  s = opened(&r, "250 mx\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\n", "MAIL alone");
  feed(s, "250 ok\r\n250 ok\r\n");
  is_int(r.rc, MH_EPROTO, "a reply to RCPT before RCPT was sent: violation");
  is_str(mh_smtp_stage(s), "rcpt", "at stage rcpt");
  mh_smtp_free(s);

  /* the greeting and the EHLO reply in one read */
  s = new_session(&r, 0);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx\r\n250 mx\r\n");
  is_int(r.rc, MH_EPROTO, "an EHLO reply before EHLO: the open fails");
  mh_smtp_free(s);

  /* a streamed message: a reply while its pieces are still being given */
  s = opened(&r, "250-mx\r\n250-8BITMIME\r\n250 PIPELINING\r\n");
  mh_smtp_send_stream(s, "a@x.test", to, 1, 20, MH_SMTP_STREAM_8BIT, NULL);
  take(&r);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  mh_smtp_more(s, "Subject: s\r\n\r\n", 14, 0);
  mh_smtp_flushed(s);
  feed(s, "250 2.0.0 queued\r\n");
  is_int(r.rc, MH_EPROTO, "streamed: a 250 before the last piece and the dot is a violation");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "closed");
  mh_smtp_free(s);

  /* a 421 may come at any time: the session closes, not a violation */
  s = opened(&r, "250 mx\r\n");
  feed(s, "421 4.4.2 idle too long\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "an unsolicited 421 closes the session");
  ok(strstr(mh_smtp_errmsg(s), "violation") == NULL, "and is not called a violation: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);

  /* AUTH LOGIN: the password line leaves only after the second 334 */
  s = opened(&r, "250-mx\r\n250 AUTH LOGIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_LOGIN, "user", "pass");
  take(&r);
  feed(s, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n");
  is_int(r.rc, MH_EPROTO, "two 334s in one read: the second answers nothing");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* The AUTH line's argument of the last write (after "AUTH MECH "), or the line. */
static char b64_sent[512];
static const char *auth_arg(const char *out) {
  const char *p = strncmp(out, "AUTH ", 5) == 0 ? strchr(out + 5, ' ') : NULL;
  size_t n;
  p = p ? p + 1 : out;
  n = strcspn(p, "\r\n");
  if (n >= sizeof b64_sent) n = sizeof b64_sent - 1;
  memcpy(b64_sent, p, n);
  b64_sent[n] = '\0';
  return b64_sent;
}

/* Checks that neither the secret nor the base64 of the exchange is left in
** what the session reports after a 535 that quotes them. */
static void no_creds(mh_smtp *s, const char *secret, const char *b64s, const char *what) {
  const char *e = mh_smtp_errmsg(s), *t = mh_smtp_last_reply(s)->text;
  ok(strstr(e, b64s) == NULL && strstr(t, b64s) == NULL, "%s: the base64 is masked: %s", what, e);
  ok(strstr(e, secret) == NULL && strstr(t, secret) == NULL, "%s: the secret is masked", what);
  ok(strstr(e, "********") != NULL, "%s: in its place ********", what);
  is_int(mh_smtp_last_reply(s)->code, 535, "%s: the code is kept", what);
}

/* Issue 10.8: a server that echoes the AUTH line in its 535 reply. */
static void test_auth_echo_masked(void) {
  rec r = { 0 };
  char reply[1200];
  mh_smtp *s = opened(&r, "250-mx\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_PLAIN, "alice", "s3cret-pw");
  const char *a = auth_arg(take(&r));
  snprintf(reply, sizeof reply, "535 5.7.8 AUTH PLAIN %s: authentication failed\r\n", a);
  feed(s, reply);
  is_int(r.rc, MH_EAUTH, "PLAIN refused");
  no_creds(s, "s3cret-pw", a, "PLAIN");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 AUTH LOGIN\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_LOGIN, "alice", "s3cret-pw");
  take(&r);
  feed(s, "334 VXNlcm5hbWU6\r\n");
  take(&r);
  feed(s, "334 UGFzc3dvcmQ6\r\n");
  a = auth_arg(take(&r));
  snprintf(reply, sizeof reply, "535-5.7.8 you said\r\n535-5.7.8 %s\r\n535 5.7.8 and s3cret-pw is wrong\r\n", a);
  feed(s, reply);
  no_creds(s, "s3cret-pw", a, "LOGIN (multi-line, and the password in clear)");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 AUTH XOAUTH2\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_XOAUTH2, "alice", "ya29.token-value");
  a = auth_arg(take(&r));
  snprintf(reply, sizeof reply, "535 5.7.3 bad XOAUTH2 %.24s\r\n", a);   /* a truncated echo */
  feed(s, reply);
  char piece[32];
  snprintf(piece, sizeof piece, "%.24s", a);
  no_creds(s, "ya29.token-value", piece, "XOAUTH2 (an echo cut short)");
  mh_smtp_free(s);

  s = opened(&r, "250-mx\r\n250 AUTH OAUTHBEARER\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_OAUTHBEARER, "alice", "ya29.token-value");
  a = auth_arg(take(&r));
  snprintf(reply, sizeof reply, "535 5.7.8 [%s] rejected\r\n", a);
  feed(s, reply);
  no_creds(s, "ya29.token-value", a, "OAUTHBEARER");
  ok(strstr(mh_smtp_errmsg(s), "rejected") != NULL, "the rest of the reply stays: %s", mh_smtp_errmsg(s));
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* AUTH CRAM-MD5 (RFC 2195): the example of its section 2, byte for byte; the
** server's 535 as for the other mechanisms; a challenge that is no base64
** (or empty) cancelled with "*" and nothing derived from the password sent;
** the answer masked in an echo.  Order and choice are mailhook.smtp's. */
static void test_auth_cram_md5(void) {
  rec r = { 0 };
  char reply[600];
  mh_smtp *s = opened(&r, "250-mx\r\n250 AUTH LOGIN CRAM-MD5 PLAIN\r\n");
  is_int(mh_smtp_get_caps(s)->auth, MH_SMTP_AUTH_PLAIN | MH_SMTP_AUTH_LOGIN | MH_SMTP_AUTH_CRAM_MD5,
         "CRAM-MD5 parsed from EHLO");
  is_int(mh_smtp_auth(s, MH_SMTP_AUTH_CRAM_MD5, "tim", "tanstaaftanstaaf"), 0, "AUTH CRAM-MD5 starts");
  is_str(take(&r), "AUTH CRAM-MD5\r\n", "the command, no initial response");
  /* base64 of "<1896.697170952@postoffice.reston.mci.net>" (RFC 2195 2) */
  feed(s, "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
  /* base64 of "tim b913a602c7eda7a495b4e6e7334d3890", the RFC's answer */
  is_str(take(&r), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n",
         "the RFC 2195 response: tim b913a602c7eda7a495b4e6e7334d3890");
  feed(s, "235 2.7.0 ok\r\n");
  is_int(r.rc, 0, "authenticated");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "ready");
  mh_smtp_free(s);

  /* a wrong password: 535, as PLAIN and LOGIN get it; an echo of the answer masked */
  s = opened(&r, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_CRAM_MD5, "tim", "wrong-secret");
  take(&r);
  feed(s, "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
  const char *a = take(&r);
  char sent[200];
  snprintf(sent, sizeof sent, "%.*s", (int)strcspn(a, "\r"), a);
  snprintf(reply, sizeof reply, "535 5.7.8 %s: authentication failed\r\n", sent);
  feed(s, reply);
  is_int(r.rc, MH_EAUTH, "refused: MH_EAUTH");
  is_str(mh_smtp_stage(s), "auth", "stage auth");
  is_int(mh_smtp_last_reply(s)->code, 535, "the server's 535 kept");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "session still usable after 535");
  no_creds(s, "wrong-secret", sent, "CRAM-MD5");
  mh_smtp_free(s);

  /* challenges that are not base64, and an empty one: cancelled */
  static const char *const bad[] = { "334 not*base64!\r\n", "334 PDE4OTYu=jk3\r\n", "334 \r\n",
                                     "334 A\r\n", "334 PDE4 OTYu\r\n" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = opened(&r, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
    mh_smtp_auth(s, MH_SMTP_AUTH_CRAM_MD5, "tim", "tanstaaftanstaaf");
    take(&r);
    feed(s, bad[i]);
    is_str(take(&r), "*\r\n", "bad challenge %zu: cancelled with '*'", i);
    is_int(r.done, 0, "  the operation waits for the reply to '*'");
    feed(s, "501 5.7.0 AUTH aborted\r\n");
    is_int(r.rc, MH_EPROTO, "  then fails as a protocol error");
    is_str(mh_smtp_stage(s), "auth", "  at stage auth");
    ok(strstr(mh_smtp_errmsg(s), "CRAM-MD5 challenge is not") != NULL, "  said: %s", mh_smtp_errmsg(s));
    is_int(mh_smtp_get_state(s), MH_SMTP_READY, "  the session is usable");
    mh_smtp_free(s);
  }

  /* a server that takes "*" for an answer (235): no SMTP, the session ends */
  s = opened(&r, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
  mh_smtp_auth(s, MH_SMTP_AUTH_CRAM_MD5, "tim", "tanstaaftanstaaf");
  take(&r);
  feed(s, "334 %%%\r\n");
  take(&r);
  feed(s, "235 2.7.0 ok\r\n");
  is_int(r.rc, MH_EPROTO, "235 to '*': a protocol error");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "and the session is closed");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

/* Issue 10.4, defence in depth: whatever a caller passes, no CR, LF, NUL,
** space or angle bracket gets into MAIL FROM:<...> or RCPT TO:<...>. */
static void test_command_injection(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  static const char *const bad[] = {
    "a@x\r\nRCPT TO:<evil@y>", "a@x\nRCPT TO:<evil@y>", "a@x\rRCPT TO:<evil@y>", "a@x> NOTIFY=NEVER",
    "a@x>\r\nDATA", "<a@x", "a@x ORCPT=rfc822;b", "a@x\tb", "" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *to[] = { bad[i] };
    const char *good[] = { "b@x.test" };
    is_int(mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3), MH_EBADADDR, "recipient %zu refused", i);
    if (*bad[i])
      is_int(mh_smtp_send(s, bad[i], good, 1, "x\r\n", 3), MH_EBADADDR, "sender %zu refused", i);
    if (*bad[i]) is_int(mh_smtp_check_sender(s, bad[i], NULL), MH_EBADADDR, "check_sender %zu refused", i);
  }
  is_str(take(&r), "", "nothing written for any of them");
  is_int(r.done, 0, "and no io.done");
  is_int(mh_smtp_get_state(s), MH_SMTP_READY, "the session is still usable");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}


/* A quoted local part may hold a space ("e x"@y: RFC 5321's qtextSMTP, which
** the intake takes): refused here, the message failed for every recipient.
** An angle bracket stays refused inside the quotes too (a server that does
** not parse quotes would end the path there), as does an unbalanced quote. */
static void test_quoted_local(void) {
  rec r = { 0 };
  mh_smtp *s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  const char *to[] = { "\"e x\"@x.test", "\"a\\\" b\"@x.test" };
  is_int(mh_smtp_send(s, "\"s p\"@x.test", to, 2, "x\r\n", 3), 0, "a space inside quotes: sent");
  is_str(take(&r), "MAIL FROM:<\"s p\"@x.test>\r\nRCPT TO:<\"e x\"@x.test>\r\nRCPT TO:<\"a\\\" b\"@x.test>\r\nDATA\r\n",
         "the paths as written");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
  static const char *const bad[] = { "\"a>b\"@x.test", "\"a<b\"@x.test", "\"a\\>b\"@x.test", "\"e x@x.test",
                                     "e x@x.test", "\"e\tx\"@x.test", "\"e\r\nx\"@x.test" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rec q = { 0 };
    const char *one[] = { bad[i] };
    s = opened(&q, "250-mx\r\n250 PIPELINING\r\n");
    is_int(mh_smtp_send(s, "a@x.test", one, 1, "x\r\n", 3), MH_EBADADDR, "refused: %s", bad[i]);
    is_str(take(&q), "", "nothing written for it");
    mh_smtp_free(s);
    mh_buf_free(&q.out);
  }
}

/* Issue 19.3: 8-bit and UTF-8 negotiated, never assumed. */
static void test_8bit_negotiated(void) {
  rec r = { 0 };
  const char *to[] = { "b@x.test" };
  const char *msg = "Subject: caf\xc3\xa9\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me, and a longer sentence in ASCII\r\n";
  /* a server with 8BITMIME and SMTPUTF8: sent as it is, both declared */
  mh_smtp *s = opened(&r, "250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  like_out(&r, "MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
           "8BITMIME and SMTPUTF8 offered: both declared");
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  ok(strstr(take(&r), "Caf\xc3\xa9 cr\xc3\xa8me") != NULL, "the 8-bit bytes go as they are");
  mh_smtp_free(s);

  /* 8BITMIME without SMTPUTF8: the header is converted (RFC 2047), not the body */
  s = opened(&r, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  const char *o = take(&r);
  ok(strstr(o, " BODY=8BITMIME\r\n") && !strstr(o, "SMTPUTF8"), "BODY=8BITMIME, no SMTPUTF8: %s", o);
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  o = take(&r);
  ok(strstr(o, "Subject: =?UTF-8?B?Y2Fmw6k=?=\r\n") && strstr(o, "Caf\xc3\xa9 cr\xc3\xa8me"),
     "Subject as RFC 2047 words, the body as it is");
  mh_smtp_free(s);

  /* neither: everything converted, SIZE= the converted size */
  s = opened(&r, "250-mx\r\n250-PIPELINING\r\n250 SIZE 100000\r\n");
  mh_smtp_send(s, "a@x.test", to, 1, msg, strlen(msg));
  o = take(&r);
  ok(strstr(o, "MAIL FROM:<a@x.test> SIZE=") && !strstr(o, "BODY=8BITMIME") && !strstr(o, "SMTPUTF8"),
     "no 8BITMIME: neither declared: %s", o);
  unsigned long size = strstr(o, "SIZE=") ? strtoul(strstr(o, "SIZE=") + 5, NULL, 10) : 0;
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  o = take(&r);
  int seven = 1;
  for (const char *p = o; *p; p++) if ((unsigned char)*p >= 0x80) seven = 0;
  ok(seven, "nothing 8-bit on the wire (RFC 6152 §3)");
  ok(strstr(o, "Content-Transfer-Encoding: quoted-printable\r\n") && strstr(o, "Caf=C3=A9 cr=C3=A8me, and"),
     "the body as quoted-printable (smaller than base64 here)");
  is_int(size, strlen(o) - 3, "SIZE= is the size actually sent (%lu)", size);
  mh_smtp_free(s);

  /* what cannot be converted: refused at once, saying why */
  s = opened(&r, "250-mx\r\n250 PIPELINING\r\n");
  const char *bad = "Message-ID: <\xc3\xa9@x>\r\n\r\nbody\r\n";
  is_int(mh_smtp_send(s, "a@x.test", to, 1, bad, strlen(bad)), MH_E8BIT, "an 8-bit Message-ID: MH_E8BIT");
  ok(strstr(mh_smtp_errmsg(s), "does not offer SMTPUTF8") && strstr(mh_smtp_errmsg(s), "Message-ID"),
     "the reason names the missing extension and the field: %s", mh_smtp_errmsg(s));
  is_str(take(&r), "", "nothing sent");
  mh_smtp_free(s);

  /* a streamed message with its scan: converted piece by piece */
  s = opened(&r, "250-mx\r\n250-SIZE 100000\r\n250 PIPELINING\r\n");
  mh_mime7 *scan = mh_mime7_new();
  mh_mime7_scan(scan, msg, strlen(msg));
  mh_mime7_scan_end(scan);
  uint64_t want = mh_mime7_size(scan, MH_MIME7_BODIES | MH_MIME7_HEADERS);
  is_int(mh_smtp_send_stream(s, "a@x.test", to, 1, strlen(msg), MH_SMTP_STREAM_8BIT, scan), 0, "streamed, scanned");
  o = take(&r);
  is_int(strstr(o, "SIZE=") ? strtoul(strstr(o, "SIZE=") + 5, NULL, 10) : 0, want, "SIZE= the converted size");
  feed(s, "250 ok\r\n250 ok\r\n354 go\r\n");
  mh_smtp_more(s, msg, 10, 0);
  mh_smtp_flushed(s);
  mh_smtp_more(s, msg + 10, strlen(msg) - 10, 1);
  o = take(&r);
  ok(strstr(o, "=?UTF-8?B?Y2Fmw6k=?=") && strstr(o, "Caf=C3=A9 cr=C3=A8me, and a longer sentence in ASCII\r\n.\r\n"),
     "converted as the pieces pass");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

int main(void) {
  test_ehlo_caps();
  test_421_with_greeting();
  test_garbage_greeting_quoted();
  test_helo_fallback();
  test_pipelining();
  test_pipelined_mail_refused();
  test_no_pipelining();
  test_size();
  test_strcopy();
  test_bad_addresses();
  test_dot_stuffing();
  test_reply_parser();
  test_starttls();
  test_auth();
  test_auth_long_token();
  test_auth_cram_md5();
  test_check_sender_and_quit();
  test_check_sender_rcpt();
  test_timeouts_and_421();
  test_state_names();
  test_streamed();
  test_reply_before_written();
  test_auth_echo_masked();
  test_command_injection();
  test_quoted_local();
  test_8bit_negotiated();
  return done_testing();
}
