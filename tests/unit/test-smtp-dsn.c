/*
** test-smtp-dsn.c — RFC 3461 parameters (sendmail -N -R -V, -bs's MAIL/RCPT
** parameters) leave with MAIL FROM and RCPT TO only when the server announced
** DSN, only the keywords RFC 3461 defines, and are forgotten after one send.
** The session is driven with scripted replies, no socket, as in test-smtp.c.
*/
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "smtp-helpers.h"
#include "smtp.h"
#include "error.h"

typedef struct {
  mh_buf out;
  int done, rc;
} rec;

static void w_cb(void *ud, const char *b, size_t n) { mh_buf_add(&((rec *)ud)->out, b, n); }
static void t_cb(void *ud, uint64_t ms) { (void)ud; (void)ms; }
static void s_cb(void *ud) { (void)ud; }
static void d_cb(void *ud, int rc) { rec *r = ud; r->done++; r->rc = rc; }
static void m_cb(void *ud) { (void)ud; }


static const char *take(rec *r) { return take_out(&r->out, NULL); }

static mh_smtp *opened(rec *r, const char *ehlo) {
  mh_smtp_params p = { .helo = "client.test", .port = 25, .command_ms = 60000, .data_ms = 600000 };
  mh_smtp_io io = { r, w_cb, t_cb, s_cb, d_cb, m_cb };
  memset(r, 0, sizeof *r);
  mh_smtp *s = mh_smtp_new(&p, &io);
  mh_smtp_connected(s, 0);
  feed(s, "220 mx.test ESMTP\r\n");
  feed(s, ehlo);
  take(r);
  r->done = 0;
  return s;
}

static const char *EHLO_DSN = "250-mx.test\r\n250-PIPELINING\r\n250 DSN\r\n";
static const char *EHLO_NODSN = "250-mx.test\r\n250 PIPELINING\r\n";
static const char *MSG = "Subject: x\r\n\r\nbody\r\n";

/* One whole transaction: accepted by the server. */
static void finish(mh_smtp *s, rec *r, int nrcpt) {
  feed(s, "250 2.1.0 ok\r\n");
  for (int i = 0; i < nrcpt; i++) feed(s, "250 2.1.5 ok\r\n");
  feed(s, "354 go\r\n");
  take(r);
  feed(s, "250 2.0.0 queued\r\n");
}

static void test_offered(void) {
  rec r;
  mh_smtp *s = opened(&r, EHLO_DSN);
  const char *to[] = { "b@x.test", "c@x.test" };
  const char *rp[] = { "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x.test", NULL };
  ok(mh_smtp_get_caps(s)->flags & MH_SMTP_CAP_DSN, "DSN in the EHLO reply is seen");
  is_int(mh_smtp_set_dsn(s, "RET=HDRS ENVID=QQ314159", rp, 2), 0, "set_dsn");
  is_int(mh_smtp_send(s, "a@x.test", to, 2, MSG, strlen(MSG)), 0, "send started");
  is_str(take(&r),
         "MAIL FROM:<a@x.test> RET=HDRS ENVID=QQ314159\r\n"
         "RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x.test\r\n"
         "RCPT TO:<c@x.test>\r\nDATA\r\n",
         "RET and ENVID with MAIL, NOTIFY and ORCPT with the first RCPT only");
  finish(s, &r, 2);
  is_int(r.rc, 0, "accepted");
  is_int(mh_smtp_send(s, "a@x.test", to, 1, MSG, strlen(MSG)), 0, "a second send");
  ok(!strstr(take(&r), "NOTIFY"), "the parameters were for one send only");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_not_offered(void) {
  rec r;
  mh_smtp *s = opened(&r, EHLO_NODSN);
  const char *to[] = { "b@x.test" };
  const char *rp[] = { "NOTIFY=NEVER" };
  mh_smtp_set_dsn(s, "RET=FULL ENVID=abc", rp, 1);
  is_int(mh_smtp_send(s, "a@x.test", to, 1, MSG, strlen(MSG)), 0, "send started");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "no DSN announced: no parameter at all (the server would refuse an unknown one)");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_filtered(void) {
  rec r;
  mh_smtp *s = opened(&r, EHLO_DSN);
  const char *to[] = { "b@x.test" };
  /* what the envelope could never carry here, but the engine refuses anyway */
  const char *rp[] = { "NOTIFY=SUCCESS\r\nRCPT TO:<evil@y.test> RET=FULL AUTH=<> ORCPT=rfc822;<x>" };
  mh_smtp_set_dsn(s, "ENVID=a\rb SIZE=1 RET=FULL X=1 BODY=7BIT ENVID= =x", rp, 1);
  is_int(mh_smtp_send(s, "", to, 1, MSG, strlen(MSG)), 0, "send started (null sender)");
  is_str(take(&r), "MAIL FROM:<> RET=FULL\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "only RET/ENVID for MAIL and NOTIFY/ORCPT for RCPT, printable, without '<' '>' or a line break");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

static void test_forgotten_on_refusal(void) {
  rec r;
  mh_smtp *s = opened(&r, EHLO_DSN);
  const char *to[] = { "b@x.test" };
  const char *bad[] = { "b@x\r\n.test" };
  const char *rp[] = { "NOTIFY=DELAY" };
  mh_smtp_set_dsn(s, "RET=HDRS", rp, 1);
  ok(mh_smtp_send(s, "a@x.test", bad, 1, MSG, strlen(MSG)) < 0, "a send refused before anything is written");
  is_int(mh_smtp_send(s, "a@x.test", to, 1, MSG, strlen(MSG)), 0, "the next send");
  is_str(take(&r), "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
         "does not inherit the refused one's parameters");
  mh_smtp_free(s);
  mh_buf_free(&r.out);
}

int main(void) {
  test_offered();
  test_not_offered();
  test_filtered();
  test_forgotten_on_refusal();
  return done_testing();
}
