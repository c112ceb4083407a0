/*
** test-smtp-bdat.c — CHUNKING (RFC 3030) in the SMTP session state machine:
** where the server's EHLO lists CHUNKING a message goes as "BDAT <n> LAST" and
** its bytes as they are (CRLF-normalised, never dot-stuffed, no final dot),
** with its MAIL and RCPT when PIPELINING allows, each chunk answered; a
** refused chunk settles the message as a refused final dot would; the gate and
** cross-message pipelining hold.  Scripted replies, no socket: every write is
** captured and compared byte for byte.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "smtp-helpers.h"
#include "smtp.h"
#include "error.h"

/* What the session told its owner. */
typedef struct {
  mh_smtp *s;
  mh_buf out;        /* every byte written since the last take() */
  int writes;        /* write calls since the last take() */
  int done, rc;      /* io.done calls and the last rc */
  int more;          /* io.more calls */
  char stage[16];    /* mh_smtp_stage() inside the last io.done */
  int code;          /* mh_smtp_last_reply()->code inside the last io.done */
  int rcode[4], accepted[4];   /* per recipient, inside the last io.done */
} rec;

static void w_cb(void *ud, const char *b, size_t n) { rec *r = ud; mh_buf_add(&r->out, b, n); r->writes++; }
static void t_cb(void *ud, uint64_t ms) { (void)ud; (void)ms; }
static void s_cb(void *ud) { (void)ud; }
static void m_cb(void *ud) { ((rec *)ud)->more++; }
static void d_cb(void *ud, int rc) {
  rec *r = ud;
  size_t n = 0;
  const mh_smtp_rcpt *x = mh_smtp_rcpts(r->s, &n);
  r->done++;
  r->rc = rc;
  snprintf(r->stage, sizeof r->stage, "%s", mh_smtp_stage(r->s));
  r->code = mh_smtp_last_reply(r->s)->code;
  for (size_t i = 0; i < n && i < 4; i++) { r->rcode[i] = x[i].code; r->accepted[i] = x[i].accepted; }
}


static const char *take(rec *r) { return take_out(&r->out, &r->writes); }

#define EHLO_CHUNK_PIPE "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 SIZE 100000\r\n"
#define EHLO_CHUNK_ONLY "250-mx.test\r\n250-8BITMIME\r\n250 CHUNKING\r\n"

static mh_smtp *opened(rec *r, const char *ehlo) {
  mh_smtp_params p = { .helo = "client.test", .host = "mx.test", .port = 25, .starttls = 0,
                       .command_ms = 60000, .data_ms = 600000 };
  mh_smtp_io io = { r, w_cb, t_cb, s_cb, d_cb, m_cb };
  memset(r, 0, sizeof *r);   /* a fresh record (closed() freed the last one's) */
  r->s = mh_smtp_new(&p, &io);
  mh_smtp_connected(r->s, 0);
  feed(r->s, "220 mx.test ESMTP\r\n");
  feed(r->s, ehlo);
  take(r);
  r->done = 0;
  return r->s;
}

static void closed(rec *r) {
  mh_smtp_free(r->s);
  r->s = NULL;
  mh_buf_free(&r->out);
}

/* The message of the tests: a leading '.' line, a bare LF, no final line end. */
static const char MSG[] = "Subject: dots\r\n\r\n.leading dot\n..two\r\n.\r\nend";
/* It on the wire: CRLF everywhere, the dots as they were, a CRLF added. */
static const char WIRE[] = "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n";

static void test_caps(void) {
  rec r;
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  ok(mh_smtp_get_caps(s)->flags & MH_SMTP_CAP_CHUNKING, "CHUNKING in the EHLO reply is learnt");
  closed(&r);
  s = opened(&r, "250-mx.test\r\n250 PIPELINING\r\n");
  ok(!(mh_smtp_get_caps(s)->flags & MH_SMTP_CAP_CHUNKING), "and not without it");
  closed(&r);
}

/* PIPELINING and CHUNKING: MAIL, RCPT and the whole message in one write. */
static void test_pipelined(void) {
  rec r;
  char want[512];
  const char *to[] = { "b@x.test", "c@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  is_int(mh_smtp_send(s, "a@x.test", to, 2, MSG, strlen(MSG)), 0, "send started");
  is_int(r.writes, 1, "commands and data: one write");
  snprintf(want, sizeof want, "MAIL FROM:<a@x.test> SIZE=%zu\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
           "BDAT %zu LAST\r\n%s", strlen(WIRE), strlen(WIRE), WIRE);
  is_str(take(&r), want, "BDAT <n> LAST and the bytes unstuffed, no 354 wait, no final dot");
  feed(s, "250 ok\r\n250 ok\r\n");
  is_int(r.done, 0, "not done before the reply to BDAT");
  feed(s, "550 5.1.1 no such user\r\n");
  is_int(r.done, 0, "nor after a refused recipient");
  feed(s, "250 2.0.0 queued as X\r\n");
  is_int(r.done, 1, "the reply to BDAT LAST ends the message");
  is_int(r.rc, 0, "accepted");
  is_int(r.code, 250, "decided by the BDAT reply");
  ok(r.accepted[0] && r.rcode[0] == 250 && !r.accepted[1] && r.rcode[1] == 550,
     "each recipient settled by its own reply (%d %d)", r.rcode[0], r.rcode[1]);
  /* the next message: no RSET, LAST ended the transaction */
  is_int(mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3), 0, "second message");
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\nx\r\n",
         "no RSET after a BDAT LAST answered");
  feed(s, "250 ok\r\n250 ok\r\n250 ok\r\n");
  is_int(r.done, 2, "second done");
  is_int(r.rc, 0, "accepted");
  closed(&r);
}

/* CHUNKING without PIPELINING: each command waits for its reply, then BDAT. */
static void test_not_pipelined(void) {
  rec r;
  const char *to[] = { "b@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_ONLY);
  mh_smtp_send(s, "a@x.test", to, 1, ".\r\n", 3);
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\n", "MAIL alone");
  feed(s, "250 ok\r\n");
  is_str(take(&r), "RCPT TO:<b@x.test>\r\n", "RCPT alone");
  feed(s, "250 ok\r\n");
  is_str(take(&r), "BDAT 3 LAST\r\n.\r\n", "then BDAT with a lone dot line as it is (no 354 asked)");
  feed(s, "250 ok\r\n");
  is_int(r.done, 1, "done");
  is_int(r.rc, 0, "accepted");
  /* an empty message is BDAT 0 LAST */
  mh_smtp_send(s, "a@x.test", to, 1, "", 0);
  feed(s, "250 ok\r\n");
  feed(s, "250 ok\r\n");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 0 LAST\r\n", "empty: BDAT 0 LAST");
  feed(s, "250 ok\r\n");
  is_int(r.rc, 0, "accepted");
  /* no recipient accepted: no BDAT at all */
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  feed(s, "250 ok\r\n");
  feed(s, "550 no\r\n");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n", "no recipient: no data sent");
  is_int(r.done, 3, "done at the RCPT refusal");
  is_int(r.rc, MH_EREPLY, "refused");
  is_str(r.stage, "rcpt", "by the recipient");
  closed(&r);
}

/* A 5xx or 4xx to BDAT settles the message as one to the final dot would. */
static void test_refused(void) {
  static const char *const replies[] = { "554 5.6.0 content rejected\r\n", "451 4.3.0 try later\r\n" };
  for (int k = 0; k < 2; k++) {
    rec r;
    const char *to[] = { "b@x.test", "c@x.test" };
    mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
    mh_smtp_send(s, "a@x.test", to, 2, "x\r\n", 3);
    take(&r);
    feed(s, "250 ok\r\n250 ok\r\n250 ok\r\n");
    feed(s, replies[k]);
    is_int(r.done, 1, "%c: the refused BDAT ends the message", "54"[k]);
    is_int(r.rc, MH_EREPLY, "  as refused");
    is_str(r.stage, "data", "  at the data stage");
    is_int(r.code, k ? 451 : 554, "  the BDAT reply decides");
    ok(!r.accepted[0] && !r.accepted[1] && r.rcode[0] == (k ? 451 : 554) && r.rcode[1] == r.rcode[0],
       "  every accepted recipient takes its code (%d %d)", r.rcode[0], r.rcode[1]);
    ok(strstr(mh_smtp_errmsg(s), "message refused") != NULL, "  the reason quotes it: %s", mh_smtp_errmsg(s));
    is_int(mh_smtp_get_state(s), MH_SMTP_READY, "  the session goes on");
    closed(&r);
  }
  /* no recipient accepted, the data already out with the commands: the
     refusal of the BDAT is expected, the recipients' replies decide */
  rec r;
  const char *to[] = { "b@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3);
  take(&r);
  feed(s, "250 ok\r\n550 5.1.1 unknown\r\n");
  is_int(r.done, 0, "all refused: the BDAT reply is still owed");
  feed(s, "554 5.5.1 no valid recipients\r\n");
  is_int(r.done, 1, "then done");
  is_str(r.stage, "rcpt", "the refusal is the recipient's");
  is_int(r.code, 550, "with its code");
  /* Exim keeps a transaction whose BDAT LAST it refused: the next one starts with RSET */
  mh_smtp_send(s, "a@x.test", to, 1, "y\r\n", 3);
  is_str(take(&r), "RSET\r\nMAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\ny\r\n",
         "after a refused LAST the next message starts with RSET");
  feed(s, "250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n");
  is_int(r.done, 2, "and goes");
  is_int(r.rc, 0, "accepted");
  /* the same with the next one queued behind the refused LAST: its group
     carries the RSET, so its MAIL is not "503 sender already given" */
  mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3);
  mh_smtp_send(s, "a2@x.test", to, 1, "z\r\n", 3);
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\nx\r\n"
         "RSET\r\nMAIL FROM:<a2@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\n", "queued behind: RSET first");
  feed(s, "250 ok\r\n550 5.1.1 unknown\r\n503 5.5.1 valid RCPT command must precede BDAT\r\n"
       "250 reset\r\n250 ok\r\n250 ok\r\n");
  is_int(r.done, 3, "the first ends");
  is_int(r.rc, MH_EREPLY, "refused, by its recipient");
  mh_smtp_release(s);
  is_str(take(&r), "BDAT 3 LAST\r\nz\r\n", "the second's data after release");
  feed(s, "250 queued\r\n");
  is_int(r.done, 4, "the second ends");
  is_int(r.rc, 0, "accepted");
  /* a reply too many is still a violation */
  feed(s, "250 ok\r\n");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "a reply with no BDAT outstanding closes the session");
  closed(&r);
}

/* The gate: a message sent while the one before is not settled keeps its data
** until mh_smtp_release(), with BDAT as with DATA; a queued message's MAIL
** and RCPT ride behind the BDAT LAST before it. */
static void test_gate_and_queue(void) {
  rec r;
  const char *to[] = { "b@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  mh_smtp_gate(s);
  mh_smtp_send(s, "a@x.test", to, 1, "one\r\n", 5);
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=5\r\nRCPT TO:<b@x.test>\r\n", "gated before the send: no BDAT yet");
  feed(s, "250 ok\r\n250 ok\r\n");
  is_str(take(&r), "", "still held after the RCPT replies");
  mh_smtp_release(s);
  is_str(take(&r), "BDAT 5 LAST\r\none\r\n", "released: the data goes");
  is_int(mh_smtp_send(s, "a@x.test", to, 1, "two\r\n", 5), 0, "a second queued");
  is_str(take(&r), "RSET\r\nMAIL FROM:<a@x.test> SIZE=5\r\nRCPT TO:<b@x.test>\r\n",
         "its commands go at once behind the BDAT LAST, after an RSET, not its data");
  feed(s, "250 q1\r\n250 reset\r\n250 ok\r\n250 ok\r\n");
  is_int(r.done, 1, "first done");
  is_int(r.rc, 0, "accepted");
  is_str(take(&r), "", "second's data held by the gate");
  mh_smtp_release(s);
  is_str(take(&r), "BDAT 5 LAST\r\ntwo\r\n", "released: its data");
  feed(s, "250 q2\r\n");
  is_int(r.done, 2, "second done");
  is_int(r.rc, 0, "accepted");
  /* a gate asked in READY is for one send only */
  mh_smtp_gate(s);
  is_int(mh_smtp_send(s, "", to, 0, "x", 1), MH_EBADADDR, "a refused send");
  mh_smtp_send(s, "a@x.test", to, 1, "x", 1);
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\nx\r\n",
         "the refused send used up the gate");
  closed(&r);
}

/* A streamed message: one BDAT chunk per piece, LAST on the final one; with
** PIPELINING the next piece is asked for as the chunk leaves, without it once
** the chunk is answered; a refused chunk stops the message. */
static void test_streamed(void) {
  rec r;
  const char *to[] = { "b@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  mh_smtp_send_stream(s, "a@x.test", to, 1, 20, MH_SMTP_STREAM_8BIT, NULL);
  is_str(take(&r), "MAIL FROM:<a@x.test> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<b@x.test>\r\n",
         "streamed: the commands first");
  is_int(r.more, 0, "no piece asked before the RCPT replies");
  feed(s, "250 ok\r\n250 ok\r\n");
  is_int(r.more, 1, "then the first piece");
  mh_smtp_more(s, "S: x\r\n\r\n.a\r", 11, 0);
  is_str(take(&r), "BDAT 10\r\nS: x\r\n\r\n.a", "a chunk of what the piece made (the CR held for its LF)");
  mh_smtp_flushed(s);
  is_int(r.more, 2, "pipelined: the next piece as soon as the chunk left");
  mh_smtp_more(s, "\nb", 2, 1);
  is_str(take(&r), "BDAT 5 LAST\r\n\r\nb\r\n", "the last chunk, LAST, the line ended");
  feed(s, "250 2.0.0 10 octets\r\n");
  is_int(r.done, 0, "the first chunk's reply does not end it");
  feed(s, "250 2.0.0 queued\r\n");
  is_int(r.done, 1, "LAST's does");
  is_int(r.rc, 0, "accepted");

  /* refused mid-stream: no further piece, the chunks out are answered, then an RSET */
  mh_smtp_send_stream(s, "a@x.test", to, 1, 30, 0, NULL);
  feed(s, "250 ok\r\n250 ok\r\n");
  take(&r);
  mh_smtp_more(s, "0123456789", 10, 0);
  mh_smtp_flushed(s);
  mh_smtp_more(s, "0123456789", 10, 0);
  is_str(take(&r), "BDAT 10\r\n0123456789BDAT 10\r\n0123456789", "two chunks out");
  is_int(r.more, 4, "a third piece asked for");
  feed(s, "552 5.3.4 message too big\r\n");
  is_int(r.done, 1, "refused: not done while a chunk is unanswered");
  mh_smtp_more(s, "0123456789", 10, 1);
  mh_smtp_flushed(s);
  is_str(take(&r), "", "the piece already asked for is not sent");
  is_int(r.more, 4, "and no other is asked for");
  feed(s, "552 5.3.4 message too big\r\n");
  is_int(r.done, 2, "the last chunk out answered: done");
  is_int(r.rc, MH_EREPLY, "refused");
  is_str(r.stage, "data", "at the data stage");
  ok(r.code == 552 && r.rcode[0] == 552 && !r.accepted[0], "the first refusal decides (%d, %d)", r.code, r.rcode[0]);
  mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3);
  is_str(take(&r), "RSET\r\nMAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\nx\r\n",
         "the transaction never got its LAST: RSET before the next one");
  closed(&r);

  /* no PIPELINING: a chunk waits for the reply to the one before */
  s = opened(&r, EHLO_CHUNK_ONLY);
  mh_smtp_send_stream(s, "a@x.test", to, 1, 8, 0, NULL);
  feed(s, "250 ok\r\n");
  feed(s, "250 ok\r\n");
  take(&r);
  is_int(r.more, 1, "first piece asked");
  mh_smtp_more(s, "abcd", 4, 0);
  is_str(take(&r), "BDAT 4\r\nabcd", "first chunk");
  mh_smtp_flushed(s);
  is_int(r.more, 1, "not pipelined: no piece before its reply");
  feed(s, "250 ok\r\n");
  is_int(r.more, 2, "its reply asks for the next");
  mh_smtp_more(s, "efgh", 4, 1);
  is_str(take(&r), "BDAT 6 LAST\r\nefgh\r\n", "the last chunk");
  feed(s, "250 ok\r\n");
  is_int(r.done, 1, "done");
  is_int(r.rc, 0, "accepted");
  closed(&r);
}

/* The connection lost mid-BDAT: the message ends unsettled (the owner defers
** it), never as delivered. */
static void test_cut(void) {
  rec r;
  const char *to[] = { "b@x.test" };
  mh_smtp *s = opened(&r, EHLO_CHUNK_PIPE);
  mh_smtp_send(s, "a@x.test", to, 1, "x\r\n", 3);
  feed(s, "250 ok\r\n250 ok\r\n");
  mh_smtp_error(s, MH_EEOF, "connection closed by server");
  is_int(r.done, 1, "done");
  is_int(r.rc, MH_EEOF, "with the transport's error, not accepted");
  is_str(r.stage, "data", "at the data stage");
  is_int(mh_smtp_get_state(s), MH_SMTP_CLOSED, "the session is closed");
  closed(&r);
  /* a streamed message cut between two chunks */
  s = opened(&r, EHLO_CHUNK_PIPE);
  mh_smtp_send_stream(s, "a@x.test", to, 1, 20, 0, NULL);
  feed(s, "250 ok\r\n250 ok\r\n");
  mh_smtp_more(s, "0123456789", 10, 0);
  feed(s, "250 ok\r\n");
  mh_smtp_error(s, MH_EEOF, "connection closed by server");
  is_int(r.done, 1, "streamed: done");
  is_int(r.rc, MH_EEOF, "with the error: a chunk's 250 is not the message's");
  closed(&r);
}

int main(void) {
  test_caps();
  test_pipelined();
  test_not_pipelined();
  test_refused();
  test_gate_and_queue();
  test_streamed();
  test_cut();
  return done_testing();
}
