/*
** test-client.c — the SMTP client (client.c: session + transport) on a real
** libuv loop, against a peer written here: a loopback listener on the same
** loop that answers what the client sends from a script, as OpenSMTPD's
** smtpscript does.  No Lua.  Each test runs on a fresh loop and ends by
** freeing everything and checking that the loop closes with no handle left
** (uv_walk, uv_loop_close), as libuv's own tests do (test/task.h).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "tap.h"
#include "client.h"
#include "error.h"

/* ---------------------------------------------------------------- the peer */

enum {
  SEND,          /* send reply */
  SEND_HALF,     /* send reply in two writes: the second once the client has read the first */
  SEND_CLOSE     /* send reply, then close the connection */
};

/* One step of a script: once the client has sent `expect` (after what the
** earlier steps matched; NULL: at once), the peer does `act` with `reply`. */
typedef struct {
  const char *expect;
  int act;
  const char *reply;
} step;

typedef struct {
  uv_tcp_t listener;
  uv_tcp_t conn;
  int accepted;              /* conn is open */
  int port;
  const step *script;
  size_t next;               /* the next step */
  char got[1 << 20];         /* everything the client sent */
  size_t len, cursor;        /* bytes in got, where the next expect is looked for */
  size_t sent;               /* bytes written to the client */
  uv_idle_t idle;            /* SEND_HALF: waits for the client to read the first half */
  const char *half;          /* the second half waiting, or NULL */
  size_t wait_for;           /* ... once the client has read this many bytes */
  int closed;                /* SEND_CLOSE done */
} peer;

static uv_loop_t *loop;
static mh_client *cli;       /* the client under test (the peer watches what it read) */
static int notified;         /* notify calls */

static void on_notify(void *ud) { (void)ud; notified++; }

static void peer_write(peer *p, const char *s, size_t n) {
  uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
  /* loopback takes a small reply at once */
  int rc = uv_try_write((uv_stream_t *)&p->conn, &b, 1);
  if (rc != (int)n) diag("peer: short write (%d of %zu)", rc, n);
  p->sent += n;
}

static void conn_closed(uv_handle_t *h) { (void)h; }

static void peer_idle(uv_idle_t *h) {
  peer *p = (peer *)h->data;
  if (!p->half || mh_client_received(cli) < p->wait_for) return;
  peer_write(p, p->half, strlen(p->half));
  p->half = NULL;
  uv_idle_stop(&p->idle);
}

/* Runs the script as far as what the client sent allows. */
static void peer_run(peer *p) {
  while (p->script[p->next].reply && !p->closed && !p->half) {
    const step *st = &p->script[p->next];
    if (st->expect) {
      char *at;
      p->got[p->len] = '\0';
      if (!(at = strstr(p->got + p->cursor, st->expect))) return;
      p->cursor = (size_t)(at - p->got) + strlen(st->expect);
    }
    p->next++;
    if (st->act == SEND_HALF) {
      size_t n = strlen(st->reply), h = n / 2;
      peer_write(p, st->reply, h);
      p->half = st->reply + h;
      p->wait_for = p->sent;
      uv_idle_start(&p->idle, peer_idle);
    } else {
      peer_write(p, st->reply, strlen(st->reply));
    }
    if (st->act == SEND_CLOSE) {
      p->closed = 1;
      uv_close((uv_handle_t *)&p->conn, conn_closed);
    }
  }
}

static void peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  peer *p = (peer *)h->data;
  (void)hint;
  *b = uv_buf_init(p->got + p->len, (unsigned)(sizeof p->got - 1 - p->len));
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  peer *p = (peer *)s->data;
  (void)b;
  if (n < 0) {
    if (!p->closed) { p->closed = 1; uv_close((uv_handle_t *)&p->conn, conn_closed); }
    return;
  }
  p->len += (size_t)n;
  peer_run(p);
}

static void peer_accept(uv_stream_t *l, int status) {
  peer *p = (peer *)l->data;
  if (status < 0 || p->accepted) return;
  uv_tcp_init(loop, &p->conn);
  p->conn.data = p;
  if (uv_accept(l, (uv_stream_t *)&p->conn) == 0) {
    p->accepted = 1;
    uv_read_start((uv_stream_t *)&p->conn, peer_alloc, peer_read);
    peer_run(p);   /* the greeting */
  }
}

static void peer_start(peer *p, const step *script) {
  struct sockaddr_in a;
  int len = sizeof a;
  memset(p, 0, sizeof *p);
  p->script = script;
  uv_tcp_init(loop, &p->listener);
  p->listener.data = p;
  uv_idle_init(loop, &p->idle);
  p->idle.data = p;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&p->listener, (const struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)&p->listener, 4, peer_accept);
  uv_tcp_getsockname(&p->listener, (struct sockaddr *)&a, &len);
  p->port = ntohs(a.sin_port);
}

static void peer_stop(peer *p) {
  uv_close((uv_handle_t *)&p->listener, NULL);
  uv_close((uv_handle_t *)&p->idle, NULL);
  if (p->accepted && !p->closed) { p->closed = 1; uv_close((uv_handle_t *)&p->conn, conn_closed); }
}

/* What the client sent, from byte `from`. */
static const char *peer_got(peer *p, size_t from) {
  p->got[p->len] = '\0';
  return p->got + (from < p->len ? from : p->len);
}

/* -------------------------------------------------------------- the loop */

static int expired;
static uv_timer_t watchdog;   /* bounds a stuck test; closed by loop_end */
static void watchdog_cb(uv_timer_t *t) { (void)t; expired = 1; }

/* Runs the loop until cond holds (checked after each turn), at most 20 s of
** a stuck test (never a bound on a healthy one). */
#define run_until(cond) do {                                                   \
    expired = 0;                                                              \
    uv_timer_start(&watchdog, watchdog_cb, 20000, 0);                         \
    while (!(cond) && !expired) uv_run(loop, UV_RUN_ONCE);                   \
    if (expired) diag("the loop ran 20 s without: %s", #cond);                \
    uv_timer_stop(&watchdog);                                                 \
  } while (0)

static void count_handle(uv_handle_t *h, void *arg) {
  diag("handle left open: %s", uv_handle_type_name(h->type));
  ++*(int *)arg;
}

static void loop_begin(void) {
  loop = (uv_loop_t *)malloc(sizeof *loop);
  uv_loop_init(loop);
  uv_timer_init(loop, &watchdog);
  notified = 0;
}

/* Frees the client and the peer; the loop must then close clean. */
static void loop_end(peer *p, const char *what) {
  int left = 0;
  mh_client_free(cli);
  cli = NULL;
  peer_stop(p);
  uv_close((uv_handle_t *)&watchdog, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_walk(loop, count_handle, &left);
  is_int(left, 0, "%s: no handle left on the loop", what);
  is_int(uv_loop_close(loop), 0, "%s: the loop closes", what);
  free(loop);
}

/* A client for the peer; greeting_wait (tls = auto) is long unless a test
** wants it to pass: a loaded machine must not turn a greeting into silence. */
static mh_client *client_for(peer *p, int tls, uint64_t deadline_ms, uint64_t greeting_wait_ms) {
  mh_client_params cp = { 0 };
  cp.loop = loop;
  cp.host = "127.0.0.1";
  cp.port = p->port;
  cp.tls = tls;
  cp.helo = "client.test";
  cp.verify = 1;
  cp.connect_ms = 10000;
  cp.command_ms = 20000;
  cp.data_ms = 20000;
  cp.deadline_ms = deadline_ms ? deadline_ms : 30000;
  cp.greeting_wait_ms = greeting_wait_ms ? greeting_wait_ms : 10000;
  cp.notify = on_notify;
  return mh_client_new(&cp);
}

/* Opens the client; its outcome in *r. */
static void open_client(mh_client_result *r) {
  mh_client_open(cli);
  run_until(mh_client_op_done(cli));
  memset(r, 0, sizeof *r);
  if (mh_client_op_done(cli)) mh_client_op_take(cli, r);
  else r->rc = -1;
}

static const char *const TO[] = { "b@x.test" };
static const char MSG[] = "Subject: t\r\n\r\nhello\r\n";

/* ------------------------------------------------------------------ tests */

static const step greet_ehlo[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n" },
  { "QUIT\r\n", SEND_CLOSE, "221 bye\r\n" },
  { NULL, SEND, NULL } };

static void test_greeting_ehlo_quit(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, greet_ehlo);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, 0, "open: greeting and EHLO");
  ok(mh_client_alive(cli), "alive");
  is_str(mh_client_address(cli), "127.0.0.1", "the address connected to");
  is_str(mh_client_security(cli), "none", "plain text");
  const mh_smtp_caps *caps = mh_smtp_get_caps(mh_client_session(cli));
  ok((caps->flags & MH_SMTP_CAP_PIPELINING) && caps->size == 1000000, "capabilities learned");
  ok(notified > 0, "the owner was notified from the loop");
  mh_client_result_free(&r);
  mh_client_quit(cli);
  run_until(mh_client_op_done(cli));
  mh_client_op_take(cli, &r);
  is_int(r.rc, 0, "QUIT answered");
  is_int(r.code, 221, "with 221");
  ok(!mh_client_alive(cli), "closed after QUIT");
  is_str(peer_got(&p, 0), "EHLO client.test\r\nQUIT\r\n", "the client sent EHLO and QUIT, nothing else");
  mh_client_result_free(&r);
  loop_end(&p, "greeting");
}

/* Two messages in flight: the second one's commands leave with the first
** one's final dot, its data only after release (the gate). */
static const step two_messages[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250 PIPELINING\r\n" },
  { "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n", SEND, "250 ok\r\n250 ok\r\n354 go\r\n" },
  { "hello\r\n.\r\n", SEND, "" },
  { "MAIL FROM:<a2@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n", SEND,
    "250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n" },
  { "hello\r\n.\r\n", SEND, "250 queued 2\r\n" },
  { NULL, SEND, NULL } };

static void test_pipelined_messages(void) {
  peer p;
  mh_client_result r, r1, r2;
  loop_begin();
  peer_start(&p, two_messages);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, 0, "open");
  mh_client_result_free(&r);
  ok(mh_client_can_submit(cli), "a message may be submitted");
  mh_client_submit(cli, "a@x.test", TO, 1, MSG, sizeof MSG - 1);
  mh_client_submit(cli, "a2@x.test", TO, 1, MSG, sizeof MSG - 1);
  is_int(mh_client_pending(cli), 2, "two in flight");
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r1);
  is_int(r1.rc, 0, "message 1 sent");
  is_str(r1.text, "queued 1", "its reply");
  ok(r1.nrcpt == 1 && r1.rcpts[0].accepted, "its recipient accepted");
  /* message 2's 354 came, but its data waits for the gate */
  run_until(mh_smtp_get_state(mh_client_session(cli)) == MH_SMTP_BODY || p.next == 5);
  const char *after_dot1 = strstr(peer_got(&p, 0), "hello\r\n.\r\n");
  ok(after_dot1 && !strstr(after_dot1 + 10, "hello"), "message 2's data not sent before release");
  mh_client_release(cli);
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r2);
  is_int(r2.rc, 0, "message 2 sent after release");
  is_str(r2.text, "queued 2", "its reply");
  is_int(mh_client_pending(cli), 0, "nothing outstanding");
  ok(mh_client_alive(cli), "the session is ready for more");
  mh_client_result_free(&r1);
  mh_client_result_free(&r2);
  loop_end(&p, "pipelined");
}

/* A reply that arrives in two reads (cut in the middle of a line). */
static const step cut_reply[] = {
  { NULL, SEND_HALF, "220 mx.test ESMTP greets you\r\n" },
  { "EHLO client.test\r\n", SEND_HALF, "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 4242\r\n" },
  { NULL, SEND, NULL } };

static void test_reply_cut_in_half(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, cut_reply);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, 0, "open with replies cut in two");
  is_int(mh_smtp_get_caps(mh_client_session(cli))->size, 4242, "the last line, cut, parsed whole");
  ok(p.next == 2 && !p.half, "both halves of both replies were read apart");
  mh_client_result_free(&r);
  loop_end(&p, "cut reply");
}

/* 421 while the message data is on its way: the session closes, the message
** and the one queued behind it end with the server's 421. */
static const step closing_421[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250 PIPELINING\r\n" },
  { "DATA\r\n", SEND, "250 ok\r\n250 ok\r\n354 go\r\n" },
  { "hello", SEND_CLOSE, "421 4.3.2 shutting down\r\n" },
  { NULL, SEND, NULL } };

static void test_421_mid_data(void) {
  peer p;
  mh_client_result r, r1, r2;
  loop_begin();
  peer_start(&p, closing_421);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  mh_client_result_free(&r);
  mh_client_submit(cli, "a@x.test", TO, 1, MSG, sizeof MSG - 1);
  mh_client_submit(cli, "a2@x.test", TO, 1, MSG, sizeof MSG - 1);
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r1);
  is_int(r1.rc, MH_EREPLY, "message 1: the server's refusal");
  is_int(r1.code, 421, "421");
  is_str(r1.enhanced, "4.3.2", "with its enhanced code");
  ok(r1.closed, "the connection is gone");
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r2);
  is_int(r2.code, 421, "message 2 ends with the same 421");
  ok(r2.nrcpt == 1 && r2.rcpts[0].code == 0, "its recipient never answered");
  ok(!mh_client_alive(cli), "not alive");
  ok(!mh_client_can_submit(cli), "and takes no more messages");
  mh_client_result_free(&r1);
  mh_client_result_free(&r2);
  loop_end(&p, "421");
}

/* A server that greets, then never answers EHLO: the session deadline ends it,
** naming what never came. */
static const step stall[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { NULL, SEND, NULL } };

static void test_stall_deadline(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, stall);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 400, 0);
  open_client(&r);
  is_int(r.rc, MH_ETIMEDOUT, "open: timed out");
  is_str(r.waited, "EHLO", "waiting for EHLO's reply");
  ok(strstr(r.msg, "session deadline") != NULL, "the deadline said so: %s", r.msg);
  ok(r.closed, "the connection is closed");
  ok(!mh_client_alive(cli), "not alive");
  mh_client_result_free(&r);
  loop_end(&p, "stall");
}

/* Nobody listens: every address tried is named. */
static void test_connect_refused(void) {
  peer p;
  mh_client_result r;
  int port;
  loop_begin();
  peer_start(&p, stall);
  port = p.port;
  peer_stop(&p);
  uv_run(loop, UV_RUN_NOWAIT);
  memset(&p, 0, sizeof p);
  p.port = port;
  uv_idle_init(loop, &p.idle);   /* peer_stop in loop_end closes these two */
  uv_tcp_init(loop, &p.listener);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, MH_ECONNECT, "connect refused");
  is_str(r.stage, "connect", "stage connect");
  ok(strstr(r.msg, "could not connect to 127.0.0.1") && strstr(r.msg, "127.0.0.1: connection refused"),
     "every address and why: %s", r.msg);
  mh_client_result_free(&r);
  loop_end(&p, "refused");
}

/* A message sent from its file, piece by piece (200 KB: several pieces). */
static const step streamed[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n" },
  { "DATA\r\n", SEND, "250 ok\r\n250 ok\r\n354 go\r\n" },
  { "\r\nend\r\n.\r\n", SEND, "250 streamed\r\n" },
  { NULL, SEND, NULL } };

static void test_stream_file(void) {
  peer p;
  mh_client_result r;
  char path[] = "/tmp/mh-client-msg.XXXXXX";
  int fd = mkstemp(path);
  static char line[100];
  size_t total = 0;
  memset(line, 'x', 98);
  line[98] = '\r';
  line[99] = '\n';
  if (write(fd, "X-Skip: y\r\nSubject: big\r\n\r\n", 27) != 27) diag("write failed");
  for (int i = 0; i < 2000; i++) total += (size_t)write(fd, line, sizeof line);
  if (write(fd, "end\r\n", 5) != 5) diag("write failed");
  unlink(path);
  loop_begin();
  peer_start(&p, streamed);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  mh_client_result_free(&r);
  /* from offset 11: the first line is not part of the message */
  mh_client_submit_file(cli, "a@x.test", TO, 1, fd, 11, 16 + total + 5);
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r);
  is_int(r.rc, 0, "streamed message sent");
  is_str(r.text, "streamed", "its reply");
  const char *body = strstr(peer_got(&p, 0), "354") ? NULL : strstr(peer_got(&p, 0), "DATA\r\n");
  ok(body && strncmp(body + 6, "Subject: big\r\n\r\nxxx", 19) == 0, "the data starts at the offset");
  ok(strstr(peer_got(&p, 0), "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n") != NULL, "8BITMIME asked for");
  is_int(p.len - (size_t)(body ? body + 6 - p.got : 0), 16 + total + 5 + 3, "every byte and the dot");
  mh_client_result_free(&r);
  loop_end(&p, "stream");
}

/* CHUNKING: a message settled by the owner but not yet collected gates the
** next one from its start (its BDAT would otherwise leave with its MAIL and
** RCPT); the data leaves at release, as BDAT <n> LAST with the bytes as they
** are (a leading dot not stuffed). */
static const char DOTMSG[] = "Subject: t\r\n\r\n.hello\r\n";
static const step chunking_gate[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n" },
  { "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 22 LAST\r\nSubject: t\r\n\r\n.hello\r\n", SEND,
    "250 ok\r\n250 ok\r\n250 queued 1\r\n" },
  { "MAIL FROM:<a2@x.test>\r\nRCPT TO:<b@x.test>\r\n", SEND, "250 ok\r\n250 ok\r\n" },
  { "BDAT 22 LAST\r\nSubject: t\r\n\r\n.hello\r\n", SEND, "250 queued 2\r\n" },
  { NULL, SEND, NULL } };

static void test_chunking_gate(void) {
  peer p;
  mh_client_result r, r1, r2;
  loop_begin();
  peer_start(&p, chunking_gate);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, 0, "chunking: open");
  mh_client_result_free(&r);
  mh_client_submit(cli, "a@x.test", TO, 1, DOTMSG, sizeof DOTMSG - 1);
  run_until(mh_client_result_ready(cli));
  /* message 1 answered, not collected: message 2 starts gated */
  mh_client_submit(cli, "a2@x.test", TO, 1, DOTMSG, sizeof DOTMSG - 1);
  run_until(p.next == 4);
  is_int(p.next, 4, "message 2's MAIL and RCPT were sent and answered");
  run_until(mh_smtp_get_state(mh_client_session(cli)) == MH_SMTP_BODY);
  const char *m2 = strstr(peer_got(&p, 0), "MAIL FROM:<a2@x.test>");
  ok(m2 && !strstr(m2, "BDAT"), "but not its data: message 1 is not settled");
  mh_client_result_take(cli, &r1);
  is_int(r1.rc, 0, "message 1 sent");
  is_str(r1.text, "queued 1", "by its BDAT reply");
  mh_client_release(cli);
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r2);
  is_int(r2.rc, 0, "message 2 sent after release");
  is_str(r2.text, "queued 2", "its reply");
  mh_client_result_free(&r1);
  mh_client_result_free(&r2);
  loop_end(&p, "chunking gate");
}

/* CHUNKING, a message streamed from its file (600 KB): a BDAT chunk per
** 256 KiB piece, each answered, the bytes as the file has them. */
static const step streamed_bdat[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250-mx.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 PIPELINING\r\n" },
  { "RCPT TO:<b@x.test>\r\n", SEND, "250 ok\r\n250 ok\r\n" },
  { "BDAT 262144\r\n", SEND, "250 2.0.0 262144 octets\r\n" },
  { "BDAT 262144\r\n", SEND, "250 2.0.0 262144 octets\r\n" },
  { "BDAT 75734 LAST\r\n", SEND, "" },
  { "\r\n.end\r\n", SEND, "250 streamed\r\n" },
  { NULL, SEND, NULL } };

static void test_stream_file_bdat(void) {
  peer p;
  mh_client_result r;
  char path[] = "/tmp/mh-client-msg.XXXXXX";
  int fd = mkstemp(path);
  static char line[100], want[700000];
  size_t total = 0, wn = 0;
  memset(line, 'x', 98);
  line[0] = '.';
  line[98] = '\r';
  line[99] = '\n';
  if (write(fd, "Subject: big\r\n\r\n", 16) != 16) diag("write failed");
  for (int i = 0; i < 6000; i++) total += (size_t)write(fd, line, sizeof line);
  if (write(fd, ".end\r\n", 6) != 6) diag("write failed");
  if (pread(fd, want, 16 + total + 6, 0) != (ssize_t)(16 + total + 6)) diag("read failed");
  unlink(path);
  loop_begin();
  peer_start(&p, streamed_bdat);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  mh_client_result_free(&r);
  mh_client_submit_file(cli, "a@x.test", TO, 1, fd, 0, 16 + total + 6);
  run_until(mh_client_result_ready(cli));
  mh_client_result_take(cli, &r);
  is_int(r.rc, 0, "streamed with BDAT");
  is_str(r.text, "streamed", "its reply: the LAST one's");
  is_int(p.next, 7, "every chunk answered");
  /* the data as the server reads it: the chunks' bytes, the headers taken out */
  const char *g = strstr(peer_got(&p, 0), "BDAT ");
  static char data[700000];
  while (g && g < p.got + p.len) {
    char *e;
    size_t n = strtoul(g + 5, &e, 10);
    const char *b = strstr(e, "\r\n") + 2;
    if (b + n > p.got + p.len || wn + n > sizeof data) break;
    memcpy(data + wn, b, n);
    wn += n;
    g = b + n;
  }
  ok(wn == 16 + total + 6 && memcmp(data, want, wn) == 0, "the bytes delivered are the file's, dots unstuffed (%zu)", wn);
  ok(!strstr(peer_got(&p, 0), "DATA\r\n") && !strstr(peer_got(&p, 0), "\r\n.\r\n"), "no DATA, no final dot");
  mh_client_result_free(&r);
  loop_end(&p, "stream bdat");
}

/* tls = auto with a server that greets at once: plain SMTP, no ClientHello. */
static const step auto_plain[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, "250 mx.test\r\n" },
  { NULL, SEND, NULL } };

static void test_auto_plain(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, auto_plain);
  cli = client_for(&p, MH_CLIENT_TLS_AUTO, 0, 0);   /* tls_required = 0: STARTTLS when offered */
  open_client(&r);
  is_int(r.rc, 0, "auto: a greeting means plain SMTP");
  is_str(mh_client_security(cli), "none", "no TLS (none offered, none required)");
  is_str(peer_got(&p, 0), "EHLO client.test\r\n", "no ClientHello was sent");
  mh_client_result_free(&r);
  loop_end(&p, "auto plain");
}

/* Implicit TLS to a server that greets in plain text: said as such, with the
** flag the Lua layer retries with STARTTLS on. */
static void test_implicit_meets_plain(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, auto_plain);
  cli = client_for(&p, MH_CLIENT_TLS_IMPLICIT, 0, 0);
  open_client(&r);
  is_int(r.rc, MH_ETLS, "implicit TLS fails");
  is_str(r.stage, "tls", "at the tls stage");
  ok(r.plain_smtp, "a plain greeting was recognised");
  ok(strstr(r.msg, "greets in plain text (\"220 ...\")") != NULL, "and named: %s", r.msg);
  is_int(r.why, MH_CLIENT_WHY_NONE, "not a version failure");
  mh_client_result_free(&r);
  loop_end(&p, "implicit/plain");
}

/* tls = auto with a silent server that hangs up on the ClientHello: a code
** says so (why = TLS_CLOSED), not the message's words. */
static const step hang_up[] = {
  { "\x16\x03", SEND_CLOSE, "" },
  { NULL, SEND, NULL } };

static void test_auto_hangup(void) {
  peer p;
  mh_client_result r;
  loop_begin();
  peer_start(&p, hang_up);
  cli = client_for(&p, MH_CLIENT_TLS_AUTO, 0, 200);   /* silence: a ClientHello after 0.2 s */
  open_client(&r);
  is_int(r.rc, MH_ETLS, "the handshake failed");
  is_str(r.stage, "tls", "stage tls");
  is_int(r.why, MH_CLIENT_WHY_TLS_CLOSED, "why: the server hung up during the handshake");
  is_str(mh_client_security(cli), "none", "no TLS");
  mh_client_result_free(&r);
  loop_end(&p, "auto hang-up");
}

/* A reply line longer than the protocol allows (smtp.h MH_SMTP_LINE_MAX),
** within a multiline EHLO reply: the session ends with MH_ETOOLONG and the
** connection closed, whatever the rest of the reply would have said. */
static char long_ehlo[MH_SMTP_LINE_MAX + 200];
static const step oversized[] = {
  { NULL, SEND, "220 mx.test ESMTP\r\n" },
  { "EHLO client.test\r\n", SEND, long_ehlo },
  { NULL, SEND, NULL } };

static void test_oversized_line(void) {
  peer p;
  mh_client_result r;
  size_t n = 0;
  n += (size_t)snprintf(long_ehlo, sizeof long_ehlo, "250-mx.test\r\n250-");
  memset(long_ehlo + n, 'X', MH_SMTP_LINE_MAX + 50);
  n += MH_SMTP_LINE_MAX + 50;
  snprintf(long_ehlo + n, sizeof long_ehlo - n, "\r\n250 8BITMIME\r\n");
  loop_begin();
  peer_start(&p, oversized);
  cli = client_for(&p, MH_CLIENT_TLS_NONE, 0, 0);
  open_client(&r);
  is_int(r.rc, MH_ETOOLONG, "a reply line over %d bytes fails the open", MH_SMTP_LINE_MAX);
  ok(strstr(r.msg, "longer than") != NULL, "and says so: %s", r.msg);
  ok(r.closed, "the connection is closed");
  ok(!mh_client_alive(cli), "not alive");
  ok(!mh_client_can_submit(cli), "and takes no message");
  mh_client_result_free(&r);
  loop_end(&p, "oversized line");
}

/* A string longer than the client's buffer is refused, never cut: a host cut
** to 255 bytes is another host, a ca_file cut another file. */
static void test_too_long_refused(void) {
  char host[300], ca[1100];
  mh_client_params cp = { 0 };
  mh_client *c;
  memset(host, 'a', sizeof host - 1);
  host[sizeof host - 1] = '\0';
  memset(ca, 'd', sizeof ca - 1);
  ca[0] = '/';
  ca[sizeof ca - 1] = '\0';
  loop_begin();
  cp.loop = loop;
  cp.host = host;
  errno = 0;
  ok(mh_client_new(&cp) == NULL && errno == ENAMETOOLONG, "a 299-byte host is refused (ENAMETOOLONG)");
  host[MH_CLIENT_HOST_MAX] = '\0';
  ok((c = mh_client_new(&cp)) != NULL, "a host of MH_CLIENT_HOST_MAX bytes is taken");
  if (c) is_int(mh_client_host(c)[MH_CLIENT_HOST_MAX - 1], 'a', "whole");
  mh_client_free(c);
  cp.host = "127.0.0.1";
  cp.ca_file = ca;
  errno = 0;
  ok(mh_client_new(&cp) == NULL && errno == ENAMETOOLONG, "a 1099-byte ca_file is refused");
  cp.ca_file = NULL;
  cp.helo = host;
  host[MH_CLIENT_HELO_MAX] = 'a';
  errno = 0;
  ok(mh_client_new(&cp) == NULL && errno == ENAMETOOLONG, "a 299-byte helo is refused");
  uv_close((uv_handle_t *)&watchdog, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  is_int(uv_loop_close(loop), 0, "too long: the loop closes");
  free(loop);
}

int main(void) {
  test_too_long_refused();
  test_greeting_ehlo_quit();
  test_pipelined_messages();
  test_reply_cut_in_half();
  test_421_mid_data();
  test_oversized_line();
  test_stall_deadline();
  test_connect_refused();
  test_stream_file();
  test_chunking_gate();
  test_stream_file_bdat();
  test_auto_plain();
  test_implicit_meets_plain();
  test_auto_hangup();
  return done_testing();
}
