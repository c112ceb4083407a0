/*
** l_smtp.c — core.smtp: the SMTP session (smtp.c) and TLS (tls.c) on a libuv
** TCP socket, as a Lua object whose operations wait (l_sched.h).
**
**   local c = core.smtp.new{host=, port=, tls="auto"|"implicit"|"starttls"|"opportunistic"|"none",
**                           tls_required=, greeting_wait=, helo=, verify=, ca_file=, fingerprint=, min_version=,
**                           connect_timeout=, command_timeout=, data_timeout=, session_deadline=}
**   c:open()                      -> true | nil, err, info      (waits: DNS, every address, TLS, EHLO)
**   c:auth(mech, user, secret)    -> true | nil, err, info      (waits)
**   c:send(from, {rcpt...}, data) -> result | nil, err, info    (waits)
**   c:submit(from, {rcpt...}, data) -> true                     (never waits)
**   c:result()                    -> what send returns, for the oldest submission (waits)
**   c:release()                   -> (the collected ones are settled: the next data may go)
**   c:pending()                   -> submissions not collected yet (at most 2)
**   c:check_sender(from)          -> true | nil, err, info      (waits: MAIL FROM + RSET)
**   c:quit()                      -> true                       (waits)
**   c:close()  c:alive()  c:info() -> table
**
** tls = "auto": a plain SMTP server greets first, an implicit-TLS server waits for
** the ClientHello; so after connecting, a greeting within greeting_wait seconds
** means plain SMTP (then STARTTLS: required when tls_required, else when offered),
** and silence means implicit TLS.  A late plain greeting during that handshake
** is reported as info.plain_smtp, and the Lua layer reconnects with STARTTLS.
**
** A failure by timeout names what never came in info.waited: "dns", "connect",
** "greeting" (connected, and the server sent not one byte; info.tls_probe when
** tls = auto also tried a ClientHello that got no answer), "tls" (implicit TLS),
** "the TLS handshake after STARTTLS", or the command
** whose reply was due ("EHLO", "AUTH", "MAIL FROM", "the final dot", ...).
**
** submit/result pipeline across messages (smtp.h): with one message in flight
** a second may be submitted, and its commands leave with the first one's final
** dot.  Outcomes come back in order through result(), which also opens the gate
** for the next message's data: the caller settles each message (removes it
** from the spool) before asking for the next result.
**
** A session event can finish an operation; the waiting task is resumed only
** after the event call into smtp.c has returned (settle()), so Lua never
** re-enters the state machine from inside it.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "l_sched.h"
#include "smtp.h"
#include "mime7.h"
#include "tls.h"
#include "error.h"
#include "log.h"
#include "fsutil.h"

#define CONN_MT "mailhook.SmtpConn"

enum { OP_NONE, OP_OPEN, OP_AUTH, OP_SEND, OP_CHECK, OP_QUIT };
enum { TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS, TLS_OPPORTUNISTIC, TLS_AUTO };

typedef struct conn conn;

/* The outcome of one submitted send, kept until c:result() collects it: the
** session moves on to the next transaction as soon as one ends (pipelining),
** so what Lua gets is copied out in io.done. */
typedef struct {
  int done;                    /* the outcome is in (else the session still runs it) */
  int rc;                      /* 0 or MH_E* */
  int closed;                  /* the connection was gone when it ended */
  int code;                    /* the decisive reply */
  char enhanced[16];
  char text[2048];
  const char *stage;           /* static strings */
  char msg[800];               /* why it failed */
  const char *waited;          /* a timeout: what never came (waiting_for), else NULL */
  mh_smtp_rcpt *rcpts;         /* deep copy (rcpt strings owned) */
  size_t nrcpt;
  int fd;                      /* submit_file: the message's file, read as it is sent; -1 */
  uint64_t off, left;          /* where the next piece starts, bytes still to send */
} sres;

#define MAX_SENDS 2            /* in flight: the running transaction and one queued */

typedef struct {               /* one TCP attempt; freed in its close callback */
  uv_tcp_t tcp;
  uv_connect_t req;
  conn *c;
  int timed_out;               /* the connect timer cancelled it */
} sock;

struct conn {
  mh_wait w;                   /* the task waiting for the current op */
  int waiting;                 /* w is in use */
  int op;                      /* OP_*: what the waiting task asked */
  int op_done, op_rc;          /* the op ended (set by callbacks, acted on in settle) */
  sres sends[MAX_SENDS];       /* submitted sends in order, from `first`, `nsends` of them */
  int first, nsends;
  int want_more;               /* the session asked for a streamed message's next piece */
  int refs;                    /* userdata + open handles + requests in flight */
  int closed;                  /* conn_close ran */
  int ud_alive;                /* the Lua userdata still points here */
  uv_loop_t *loop;             /* the loop of the state that made it (sockets, timers, DNS) */
  uv_timer_t timer;            /* connect timeout, then the session's command timer */
  uv_timer_t deadline;         /* session_deadline: a trickling server cannot escape it */
  uv_getaddrinfo_t gai;
  sock *sk;                    /* the current socket, NULL when none */
  struct addrinfo *ai, *ai_cur;  /* addresses of host, the one being tried */
  mh_smtp *s;
  mh_tls *tls;
  int tls_mode;                /* TLS_* */
  int tls_on;                  /* writes go through TLS */
  int handshaking;             /* the handshake is running */
  int start_tls;               /* the session asked for STARTTLS's handshake */
  int pending_err;             /* a transport error to give the session after the event */
  char pending_msg[200];
  int writes;                  /* uv_write requests in flight */
  int flushed;                 /* everything written left: tell the session in settle() */
  uint64_t sniff_ms;           /* TLS_AUTO: how long to wait for a plain greeting */
  char hs_first[8];            /* first bytes received during a handshake (plain greeting?) */
  size_t hs_n;
  int plain_greeting;          /* an implicit handshake met a plain "220" */
  int connected;               /* the TCP connection to the current address is up */
  int sniffed;                 /* TLS_AUTO heard no greeting in sniff_ms and sent a ClientHello */
  uint64_t received;           /* bytes read on this connection: 0 = the server never spoke */
  const char *waited;          /* what a timeout cut short (static; see waiting_for): info.waited */
  /* settings */
  char host[256], ca_file[1024], fingerprint[128], min_version[8], helo[256];
  int port, verify;
  uint64_t connect_ms, deadline_ms, command_ms;
  /* what happened */
  char address[64];            /* the address connected to */
  char tried[700];             /* every address tried and why it failed */
  int fail_code;               /* failure of the transport itself (dns, connect, tls) */
  const char *fail_stage;
  char fail_msg[800];
  /* buffers of this session's callbacks (each used within one call; a read
     may nest the others: bytes in rbuf, decrypted into pbuf, the session asks
     for the next piece of a streamed message into fbuf) */
  char rbuf[65536];            /* what the socket read */
  char pbuf[16384];            /* TLS plaintext */
  char fbuf[65536];            /* a piece of a message file being sent */
  char sbuf[65536];            /* a message file read whole before it is submitted (8-bit scan) */
};

static void settle(conn *c);
static int push_result(lua_State *L, conn *c);
static int pop_send(lua_State *L, conn *c);

/* ---------------------------------------------------------- lifetime */

static void sres_close_file(sres *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

static void sres_clear(sres *r) {
  for (size_t i = 0; i < r->nrcpt; i++) free(r->rcpts[i].rcpt);
  free(r->rcpts);
  r->rcpts = NULL;
  r->nrcpt = 0;
}

static void unref(conn *c) {
  if (--c->refs > 0) return;
  for (int i = 0; i < MAX_SENDS; i++) { sres_clear(&c->sends[i]); sres_close_file(&c->sends[i]); }
  mh_smtp_free(c->s);
  mh_tls_free(c->tls);
  if (c->ai) uv_freeaddrinfo(c->ai);
  free(c);
}

static void handle_closed(uv_handle_t *h) { unref((conn *)h->data); }

static void sock_closed(uv_handle_t *h) {
  sock *k = (sock *)h->data;
  conn *c = k->c;
  free(k);
  unref(c);
}

static void sock_close(conn *c) {
  if (!c->sk) return;
  uv_close((uv_handle_t *)&c->sk->tcp, sock_closed);
  c->sk = NULL;
}

static void conn_close(conn *c) {
  if (c->closed) return;
  c->closed = 1;
  sock_close(c);
  uv_close((uv_handle_t *)&c->timer, handle_closed);
  uv_close((uv_handle_t *)&c->deadline, handle_closed);
}

/* A transport failure.  While the session runs it goes through the session (which
** ends its op); before, it ends the open op directly. */
static void fail(conn *c, int code, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(conn *c, int code, const char *stage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
  va_end(ap);
  c->fail_code = code;
  c->fail_stage = stage;
  if (c->s && mh_smtp_get_state(c->s) != MH_SMTP_INIT && mh_smtp_get_state(c->s) != MH_SMTP_CLOSED) {
    mh_smtp_error(c->s, code, c->fail_msg);
  } else if (c->op != OP_NONE) {
    c->op_done = 1;
    c->op_rc = code;
  }
  sock_close(c);
  uv_timer_stop(&c->timer);
}

/* ----------------------------------------------------------- writing */

typedef struct {
  uv_write_t req;
  conn *c;
  char data[];
} wreq;

static void write_cb(uv_write_t *req, int status) {
  wreq *r = (wreq *)req->data;
  conn *c = r->c;
  free(r);
  c->writes--;
  if (!c->closed && c->s) {
    if (status < 0 && status != UV_ECANCELED) {
      fail(c, MH_ECONNECT, "connect", "write failed: %s", uv_strerror(status));
    } else if (status == 0 && c->writes == 0) {
      mh_smtp_flushed(c->s);
    }
    settle(c);
  }
  unref(c);
}

/* Bytes to the socket: written at once when the kernel takes them, else queued.
** A write to a connection the server reset raises SIGPIPE: the guard makes it
** an EPIPE for a process that does not ignore the signal (a foreign Lua). */
static void sock_write_unguarded(conn *c, const char *buf, size_t len);
static void sock_write(conn *c, const char *buf, size_t len) {
  mh_l_sigpipe g;
  mh_l_sigpipe_begin(c->loop, &g);
  sock_write_unguarded(c, buf, len);
  mh_l_sigpipe_end(&g);
}

static void sock_write_unguarded(conn *c, const char *buf, size_t len) {
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  int n;
  wreq *r;
  if (!c->sk || c->pending_err) return;
  if (c->writes == 0) {
    n = uv_try_write((uv_stream_t *)&c->sk->tcp, &b, 1);
    if (n == (int)len) {
      c->flushed = 1;   /* told to the session in settle(), never from inside its callback */
      return;
    }
    if (n < 0 && n != UV_EAGAIN) {
      c->pending_err = MH_ECONNECT;
      snprintf(c->pending_msg, sizeof c->pending_msg, "write failed: %s", uv_strerror(n));
      return;
    }
    if (n > 0) { buf += n; len -= (size_t)n; }
  }
  r = (wreq *)malloc(sizeof *r + len);
  if (!r) { c->pending_err = MH_ENOMEM; snprintf(c->pending_msg, sizeof c->pending_msg, "out of memory"); return; }
  r->c = c;
  r->req.data = r;
  memcpy(r->data, buf, len);
  b = uv_buf_init(r->data, (unsigned)len);
  c->refs++;
  c->writes++;
  if ((n = uv_write(&r->req, (uv_stream_t *)&c->sk->tcp, &b, 1, write_cb)) < 0) {
    c->refs--;
    c->writes--;
    free(r);
    c->pending_err = MH_ECONNECT;
    snprintf(c->pending_msg, sizeof c->pending_msg, "write failed: %s", uv_strerror(n));
  }
}

/* Everything TLS has for the network, in one write. */
static void tls_flush(conn *c) {
  size_t n = mh_tls_pending(c->tls);
  if (n == 0) return;
  char *b = (char *)malloc(n);
  if (!b) return;
  n = mh_tls_take(c->tls, b, n);
  sock_write(c, b, n);
  free(b);
}

/* ----------------------------------------------------- session callbacks */

static void io_write(void *ud, const char *buf, size_t len) {
  conn *c = (conn *)ud;
  if (c->tls_on) {
    if (mh_tls_write(c->tls, buf, len) < 0) {
      c->pending_err = MH_ETLS;
      snprintf(c->pending_msg, sizeof c->pending_msg, "%s", mh_tls_error(c->tls));
      return;
    }
    tls_flush(c);
  } else {
    sock_write(c, buf, len);
  }
}

/* What the connection waits for now, named for an administrator: "dns",
** "connect", "greeting" (connected, and not one byte from the server: with
** tls = auto, not even an answer to the ClientHello sent after greeting_wait),
** "tls" (an implicit-TLS handshake), "the TLS handshake after STARTTLS", or the
** command whose reply is due ("EHLO", "AUTH",
** "MAIL FROM", ...).  Recorded when a timeout fires, so `mailhook test` can say
** what never came instead of only "timed out". */
static const char *waiting_for(const conn *c) {
  mh_smtp_state st = c->s ? mh_smtp_get_state(c->s) : MH_SMTP_INIT;
  if (!c->ai) return "dns";
  if (!c->connected) return "connect";
  if (c->received == 0 && (c->tls_mode == TLS_AUTO || c->sniffed || st == MH_SMTP_BANNER)) return "greeting";
  if (c->handshaking || st == MH_SMTP_TLS)
    return c->tls_mode == TLS_IMPLICIT ? "tls" : "the TLS handshake after STARTTLS";
  switch (st) {
    case MH_SMTP_BANNER: return "greeting";
    case MH_SMTP_EHLO: return "EHLO";
    case MH_SMTP_HELO: return "HELO";
    case MH_SMTP_STARTTLS: return "STARTTLS";
    case MH_SMTP_AUTH: return "AUTH";
    case MH_SMTP_RSET: return "RSET";
    case MH_SMTP_MAIL: return "MAIL FROM";
    case MH_SMTP_RCPT: return "RCPT TO";
    case MH_SMTP_DATA: return "DATA";
    case MH_SMTP_BODY: return "the final dot";
    case MH_SMTP_QUIT: return "QUIT";
    default: return NULL;
  }
}

static void timer_cb(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  if (c->s && mh_smtp_get_state(c->s) != MH_SMTP_INIT) {
    c->waited = waiting_for(c);
    mh_smtp_timeout(c->s);
  }
  settle(c);
}

static void io_timer(void *ud, uint64_t ms) {
  conn *c = (conn *)ud;
  if (c->closed) return;
  if (ms) uv_timer_start(&c->timer, timer_cb, ms, 0);
  else uv_timer_stop(&c->timer);
}

static void io_starttls(void *ud) { ((conn *)ud)->start_tls = 1; }

static void snap_send(conn *c, sres *r, int rc);

static void deadline_cb(uv_timer_t *t);
static void restart_deadline(conn *c) { uv_timer_start(&c->deadline, deadline_cb, c->deadline_ms, 0); }

static void io_more(void *ud) { ((conn *)ud)->want_more = 1; }

/* The next piece of the streamed message the session is sending (the oldest
** send not ended), read from its file. */
static void feed_more(conn *c) {
  char *fbuf = c->fbuf;
  sres *r = NULL;
  for (int i = 0; i < c->nsends; i++) {
    sres *x = &c->sends[(c->first + i) % MAX_SENDS];
    if (!x->done) { r = x; break; }
  }
  if (!r || r->fd < 0) { mh_smtp_more_error(c->s, MH_EINVAL, "no message file"); return; }
  size_t want = r->left < sizeof c->fbuf ? (size_t)r->left : sizeof c->fbuf;
  ssize_t n;
  do n = pread(r->fd, fbuf, want, (off_t)r->off); while (n < 0 && errno == EINTR);
  if (n < 0 || (n == 0 && want > 0)) {
    mh_smtp_more_error(c->s, n < 0 ? -errno : MH_EEOF, n < 0 ? strerror(errno) : "the file got shorter");
    return;
  }
  r->off += (uint64_t)n;
  r->left -= (uint64_t)n;
  /* the previous piece left: progress, so a big message on a slow link is not
  ** cut by the session deadline (the data timer still bounds a stall) */
  restart_deadline(c);
  mh_smtp_more(c->s, fbuf, (size_t)n, r->left == 0);
}

static void io_done(void *ud, int rc) {
  conn *c = (conn *)ud;
  for (int i = 0; i < c->nsends; i++) {   /* a submitted send ended (they end in order) */
    sres *r = &c->sends[(c->first + i) % MAX_SENDS];
    if (!r->done) { snap_send(c, r, rc); return; }
  }
  c->op_done = 1;
  c->op_rc = rc;
}

/* -------------------------------------------------------------- TLS */

static void hs_timeout_cb(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  if (!c->handshaking) return;
  c->waited = waiting_for(c);
  c->handshaking = 0;
  fail(c, MH_ETIMEDOUT, "tls", "%s:%d: TLS handshake timed out after %llu s", c->host, c->port,
       (unsigned long long)(c->command_ms / 1000));
  settle(c);
}

/* Starts a TLS client (implicit: the handshake is timed here; after STARTTLS the
** session's timer for the TLS state runs). */
static int tls_begin(conn *c) {
  mh_tls_params p = { c->host, c->verify, c->ca_file, c->fingerprint, c->min_version };
  char err[300];
  c->tls = mh_tls_new(&p, err, sizeof err);
  if (!c->tls) return fail(c, MH_ETLS, "tls", "%s", err), -1;
  c->handshaking = 1;
  if (c->tls_mode == TLS_IMPLICIT) uv_timer_start(&c->timer, hs_timeout_cb, c->command_ms, 0);
  return 0;
}

/* Drives the handshake after new input; when done, verifies and hands over. */
static void tls_step(conn *c) {
  int rc = mh_tls_handshake(c->tls);
  tls_flush(c);
  if (rc == MH_TLS_WANT_READ) return;
  c->handshaking = 0;
  if (rc < 0) {
    if (c->tls_mode == TLS_IMPLICIT && c->hs_n >= 4 && c->hs_first[0] >= '2' && c->hs_first[0] <= '5' &&
        c->hs_first[1] >= '0' && c->hs_first[1] <= '9' && c->hs_first[2] >= '0' && c->hs_first[2] <= '9') {
      c->plain_greeting = 1;
      fail(c, MH_ETLS, "tls", "%s:%d greets in plain text (\"%.3s ...\"): it does not speak implicit TLS "
           "on this port (use tls = starttls or auto)", c->host, c->port, c->hs_first);
      return;
    }
    fail(c, MH_ETLS, "tls", "%s:%d: %s", c->host, c->port, mh_tls_error(c->tls));
    return;
  }
  if ((rc = mh_tls_check(c->tls)) < 0) {
    fail(c, rc, "tls", "%s:%d: %s", c->host, c->port, mh_tls_error(c->tls));
    return;
  }
  c->tls_on = 1;
  if (c->tls_mode == TLS_IMPLICIT) mh_smtp_connected(c->s, 1);
  else mh_smtp_tls_ready(c->s);
}

/* ---------------------------------------------------------- reading */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  conn *c = ((sock *)h->data)->c;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  sock *k = (sock *)st->data;
  conn *c = k->c;
  if (n == 0) return;
  if (n > 0) c->received += (uint64_t)n;
  if (n < 0) {
    if (c->handshaking)
      fail(c, MH_ETLS, "tls", "%s:%d: connection closed during the TLS handshake", c->host, c->port);
    else
      fail(c, n == UV_EOF ? MH_EEOF : MH_ECONNECT, NULL, "connection closed by the server%s%s",
           n == UV_EOF ? "" : ": ", n == UV_EOF ? "" : uv_strerror((int)n));
    settle(c);
    return;
  }
  if (c->tls_mode == TLS_AUTO && !c->tls) {
    /* the server spoke first: plain SMTP (an implicit-TLS server waits for us) */
    uv_timer_stop(&c->timer);
    c->tls_mode = TLS_STARTTLS;   /* the session's starttls param says required or not */
    mh_smtp_connected(c->s, 0);
  }
  if (!c->tls) {
    mh_smtp_data(c->s, b->base, (size_t)n);
  } else {
    if (c->handshaking && c->hs_n < sizeof c->hs_first) {
      size_t room = sizeof c->hs_first - c->hs_n, m = room < (size_t)n ? room : (size_t)n;
      memcpy(c->hs_first + c->hs_n, b->base, m);
      c->hs_n += m;
    }
    mh_tls_feed(c->tls, b->base, (size_t)n);
    if (c->handshaking) tls_step(c);
    while (!c->handshaking && c->tls_on && c->sk && mh_smtp_get_state(c->s) != MH_SMTP_CLOSED) {
      char *pbuf = c->pbuf;
      int m = mh_tls_read(c->tls, pbuf, sizeof c->pbuf);
      tls_flush(c);
      if (m == 0) break;
      if (m < 0) {
        fail(c, m == MH_EEOF ? MH_EEOF : MH_ETLS, NULL, "%s", mh_tls_error(c->tls));
        break;
      }
      mh_smtp_data(c->s, pbuf, (size_t)m);
    }
  }
  settle(c);
}

/* Between operations nothing waits on the session: its deadline stops, and its
** socket no longer keeps the loop (the process) alive — a script that forgets
** s:quit() still ends. */
static void go_idle(conn *c) {
  uv_timer_stop(&c->deadline);
  if (c->sk) uv_unref((uv_handle_t *)&c->sk->tcp);
}

/* After every event: transport work the session asked for, then resume the task. */
static void settle(conn *c) {
  lua_State *co;
  int n;
  for (;;) {
    if (c->pending_err && c->s) {
      int e = c->pending_err;
      c->pending_err = 0;
      fail(c, e, NULL, "%s", c->pending_msg);
      continue;
    }
    if (c->start_tls) {
      c->start_tls = 0;
      if (tls_begin(c) == 0) tls_step(c);
      continue;
    }
    if (c->flushed) {
      c->flushed = 0;
      if (c->s && c->writes == 0) mh_smtp_flushed(c->s);
      continue;
    }
    if (c->want_more) {
      c->want_more = 0;
      if (c->s && !c->closed) feed_more(c);
      continue;
    }
    break;
  }
  if (c->s && mh_smtp_get_state(c->s) == MH_SMTP_CLOSED) {
    sock_close(c);
    if (!c->closed) uv_timer_stop(&c->timer);
    uv_timer_stop(&c->deadline);
  }
  if (!c->waiting) return;
  if (c->op == OP_SEND ? !c->sends[c->first].done : !c->op_done) return;
  c->waiting = 0;
  if (c->op != OP_SEND || c->nsends == 1) go_idle(c);
  co = mh_wait_co(&c->w);
  if (!co) return;
  n = c->op == OP_SEND ? pop_send(co, c) : push_result(co, c);
  mh_wait_resume(&c->w, n);
}

/* ----------------------------------------------------------- connect */

static void try_next(conn *c);
static void sniff_cb(uv_timer_t *t);

static void connect_cb(uv_connect_t *req, int status) {
  sock *k = (sock *)req->data;
  conn *c = k->c;
  if (c->closed || c->sk != k) { settle(c); return; }
  uv_timer_stop(&c->timer);
  if (status < 0) {
    size_t l = strlen(c->tried);
    snprintf(c->tried + l, sizeof c->tried - l, "%s%s: %s", l ? "; " : "", c->address,
             k->timed_out ? "connect timed out" : uv_strerror(status));
    sock_close(c);
    c->ai_cur = c->ai_cur->ai_next;
    try_next(c);
    settle(c);
    return;
  }
  c->connected = 1;
  uv_tcp_nodelay(&k->tcp, 1);   /* commands and the final dot must not wait for Nagle */
  uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, read_cb);
  if (c->tls_mode == TLS_IMPLICIT) {
    if (tls_begin(c) == 0) tls_step(c);
  } else if (c->tls_mode == TLS_AUTO) {
    uv_timer_start(&c->timer, sniff_cb, c->sniff_ms, 0);
  } else {
    mh_smtp_connected(c->s, 0);
  }
  settle(c);
}

/* TLS_AUTO: no greeting in sniff_ms, so the server waits for a ClientHello. */
static void sniff_cb(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  if (c->tls_mode != TLS_AUTO || c->tls || !c->sk) return;
  c->tls_mode = TLS_IMPLICIT;
  c->sniffed = 1;
  if (tls_begin(c) == 0) tls_step(c);
  settle(c);
}

static void connect_timeout_cb(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  if (c->sk) {
    c->sk->timed_out = 1;
    uv_close((uv_handle_t *)&c->sk->tcp, sock_closed);   /* connect_cb runs with ECANCELED */
    c->sk = NULL;
    /* try_next follows from connect_cb (it sees sk != k): do it here instead */
    {
      size_t l = strlen(c->tried);
      snprintf(c->tried + l, sizeof c->tried - l, "%s%s: connect timed out", l ? "; " : "", c->address);
    }
    c->ai_cur = c->ai_cur->ai_next;
    try_next(c);
    settle(c);
  }
}

/* Connect to the next address of the name, or fail with every reason. */
static void try_next(conn *c) {
  int rc;
  for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
    struct addrinfo *a = c->ai_cur;
    sock *k;
    if (a->ai_family == AF_INET) uv_ip4_name((struct sockaddr_in *)a->ai_addr, c->address, sizeof c->address);
    else if (a->ai_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, c->address, sizeof c->address);
    else continue;
    k = (sock *)calloc(1, sizeof *k);
    if (!k) break;
    k->c = c;
    uv_tcp_init(c->loop, &k->tcp);
    k->tcp.data = k;
    k->req.data = k;
    c->refs++;
    c->sk = k;
    c->connected = 0;
    c->received = 0;
    mh_debug("smtp: connecting to %s port %d (%s)", c->address, c->port, c->host);
    rc = uv_tcp_connect(&k->req, &k->tcp, a->ai_addr, connect_cb);
    if (rc < 0) {
      size_t l = strlen(c->tried);
      snprintf(c->tried + l, sizeof c->tried - l, "%s%s: %s", l ? "; " : "", c->address, uv_strerror(rc));
      sock_close(c);
      continue;
    }
    uv_timer_start(&c->timer, connect_timeout_cb, c->connect_ms, 0);
    return;
  }
  c->address[0] = '\0';
  fail(c, MH_ECONNECT, "connect", "could not connect to %s port %d: %s", c->host, c->port,
       *c->tried ? c->tried : "no usable address");
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  conn *c = (conn *)req->data;
  if (c->closed) {
    if (res) uv_freeaddrinfo(res);
    unref(c);
    return;
  }
  if (status < 0) {
    fail(c, MH_EDNS, "dns", "cannot resolve %s: %s", c->host, uv_strerror(status));
  } else {
    c->ai = c->ai_cur = res;
    try_next(c);
  }
  settle(c);
  unref(c);
}

static void deadline_cb(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  c->waited = waiting_for(c);
  fail(c, MH_ETIMEDOUT, NULL, "session deadline of %llu s exceeded (server too slow)",
       (unsigned long long)(c->deadline_ms / 1000));
  settle(c);
}

/* ------------------------------------------------------------- results */

static const char *tls_mode_name(const conn *c) {
  if (!c->tls_on) return "none";
  return c->tls_mode == TLS_IMPLICIT ? "implicit" : "starttls";
}

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes nil, message, info for the failed op. */
static int push_fail(lua_State *L, conn *c, int rc) {
  const mh_smtp_reply *r = c->s ? mh_smtp_last_reply(c->s) : NULL;
  const char *stage = c->fail_code && c->fail_stage ? c->fail_stage
                      : (c->s && *mh_smtp_stage(c->s) ? mh_smtp_stage(c->s) : "connect");
  const char *msg = c->s && *mh_smtp_errmsg(c->s) && !(c->fail_code && c->fail_stage) ? mh_smtp_errmsg(c->s)
                    : c->fail_msg;
  if (!*msg) msg = mh_strerror(rc);
  mh_l_fail(L, rc, stage, "%s", msg);
  if (r && r->code) {
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "smtp");
    if (r->enhanced[0]) set_str(L, "enhanced", r->enhanced);
    set_str(L, "text", r->text);
    set_str(L, "class", r->code >= 500 ? "permanent" : "transient");
  }
  if (rc == MH_ETOOBIG || rc == MH_EBADADDR || rc == MH_E8BIT) set_str(L, "class", "permanent");
  lua_pushboolean(L, !c->s || c->closed || mh_smtp_get_state(c->s) == MH_SMTP_CLOSED || !c->sk);
  lua_setfield(L, -2, "connection");
  if (c->plain_greeting) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "plain_smtp");
  }
  if (rc == MH_ETIMEDOUT && c->waited) {
    set_str(L, "waited", c->waited);
    if (c->sniffed) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "tls_probe");
    }
  }
  return 3;
}

/* The per-recipient lists of a send: accepted = {rcpt...}, rejected = {{rcpt=,...}}. */
static void push_rcpts(lua_State *L, const mh_smtp_rcpt *r, size_t n) {
  size_t a = 0, j = 0;
  lua_newtable(L);
  for (size_t i = 0; i < n; i++)
    if (r[i].accepted) { lua_pushstring(L, r[i].rcpt); lua_rawseti(L, -2, (lua_Integer)++a); }
  lua_setfield(L, -2, "accepted");
  lua_newtable(L);
  for (size_t i = 0; i < n; i++) {
    if (r[i].accepted) continue;
    lua_createtable(L, 0, 5);
    set_str(L, "rcpt", r[i].rcpt);
    if (r[i].code) {
      lua_pushinteger(L, r[i].code);
      lua_setfield(L, -2, "smtp");
      set_str(L, "enhanced", r[i].enhanced);
      set_str(L, "text", r[i].text);
      set_str(L, "class", r[i].code >= 500 ? "permanent" : "transient");
    } else {
      set_str(L, "class", "transient");   /* never answered (connection lost) */
    }
    lua_rawseti(L, -2, (lua_Integer)++j);
  }
  lua_setfield(L, -2, "rejected");
}

/* Pushes what the finished op returns to Lua. */
static int push_result(lua_State *L, conn *c) {
  int rc = c->op_rc, op = c->op;
  c->op_done = 0;
  c->op = OP_NONE;
  (void)op;
  if (rc < 0) return push_fail(L, c, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* Copies out what a send's io.done describes (see sres). */
static void snap_send(conn *c, sres *r, int rc) {
  const mh_smtp_reply *rp = mh_smtp_last_reply(c->s);
  size_t n;
  const mh_smtp_rcpt *rr = mh_smtp_rcpts(c->s, &n);
  r->done = 1;
  r->rc = rc;
  r->closed = c->closed || !c->sk || mh_smtp_get_state(c->s) == MH_SMTP_CLOSED;
  sres_close_file(r);
  r->code = rp->code;
  snprintf(r->enhanced, sizeof r->enhanced, "%s", rp->enhanced);
  snprintf(r->text, sizeof r->text, "%.2047s", rp->text);
  if (rc < 0) {
    const char *msg = *mh_smtp_errmsg(c->s) && !(c->fail_code && c->fail_stage) ? mh_smtp_errmsg(c->s)
                      : c->fail_msg;
    r->stage = c->fail_code && c->fail_stage ? c->fail_stage
               : *mh_smtp_stage(c->s) ? mh_smtp_stage(c->s) : "connect";
    snprintf(r->msg, sizeof r->msg, "%s", *msg ? msg : mh_strerror(rc));
    r->waited = rc == MH_ETIMEDOUT ? c->waited : NULL;
  }
  sres_clear(r);
  if (n && (r->rcpts = (mh_smtp_rcpt *)calloc(n, sizeof *r->rcpts)) != NULL) {
    for (size_t i = 0; i < n; i++) {
      r->rcpts[i] = rr[i];
      r->rcpts[i].rcpt = strdup(rr[i].rcpt ? rr[i].rcpt : "");
      if (!r->rcpts[i].rcpt) { r->nrcpt = i; return; }
    }
    r->nrcpt = n;
  }
}

/* A send that ended before reaching the session (refused at once). */
static void snap_refused(sres *r, int rc, const char *stage, const char *msg, int closed) {
  sres_clear(r);
  r->done = 1;
  r->rc = rc;
  r->closed = closed;
  r->code = 0;
  r->enhanced[0] = r->text[0] = '\0';
  r->stage = stage;
  r->waited = NULL;
  snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* Pushes the oldest send's outcome (what c:send returns) and forgets it. */
static int pop_send(lua_State *L, conn *c) {
  sres *r = &c->sends[c->first];
  int nret = 1;
  c->first = (c->first + 1) % MAX_SENDS;
  c->nsends--;
  c->op = OP_NONE;
  if (r->rc < 0) {
    mh_l_fail(L, r->rc, r->stage, "%s", r->msg);
    if (r->code) {
      lua_pushinteger(L, r->code);
      lua_setfield(L, -2, "smtp");
      if (r->enhanced[0]) set_str(L, "enhanced", r->enhanced);
      set_str(L, "text", r->text);
      set_str(L, "class", r->code >= 500 ? "permanent" : "transient");
    }
    if (r->rc == MH_ETOOBIG || r->rc == MH_EBADADDR || r->rc == MH_E8BIT) set_str(L, "class", "permanent");
    lua_pushboolean(L, r->closed);
    lua_setfield(L, -2, "connection");
    if (r->waited) set_str(L, "waited", r->waited);
    push_rcpts(L, r->rcpts, r->nrcpt);
    nret = 3;
  } else {
    lua_newtable(L);
    push_rcpts(L, r->rcpts, r->nrcpt);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "smtp");
    set_str(L, "enhanced", r->enhanced);
    set_str(L, "text", r->text);
    lua_setfield(L, -2, "reply");
  }
  sres_clear(r);
  return nret;
}

/* ---------------------------------------------------------- Lua side */

typedef struct { conn *c; } conn_ud;

static conn *check_conn(lua_State *L) {
  conn_ud *u = (conn_ud *)luaL_checkudata(L, 1, CONN_MT);
  if (!u->c) luaL_error(L, "SMTP session is closed");
  return u->c;
}

static void cancel_cb(mh_wait *w) {
  conn *c = (conn *)w;   /* w is the first member */
  c->waiting = 0;
  c->op = OP_NONE;
  conn_close(c);
}

static uint64_t opt_ms(lua_State *L, const char *k, double def) {
  double v;
  lua_getfield(L, 1, k);
  v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  if (v <= 0) v = def;
  return (uint64_t)(v * 1000.0);
}

static void opt_str(lua_State *L, const char *k, char *dst, size_t cap, const char *def) {
  const char *v;
  lua_getfield(L, 1, k);
  v = luaL_optstring(L, -1, def);
  snprintf(dst, cap, "%s", v ? v : "");
  lua_pop(L, 1);
}

/* new(opts) -> connection object (nothing happens until :open()) */
static int l_new(lua_State *L) {
  conn_ud *u;
  conn *c;
  char tlsm[16];
  mh_smtp_params p;
  mh_smtp_io io;
  luaL_checktype(L, 1, LUA_TTABLE);
  u = (conn_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, CONN_MT);
  c = (conn *)calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "out of memory");
  opt_str(L, "host", c->host, sizeof c->host, NULL);
  if (!*c->host) { free(c); return luaL_argerror(L, 1, "host missing"); }
  lua_getfield(L, 1, "port");
  c->port = (int)luaL_optinteger(L, -1, 25);
  lua_pop(L, 1);
  if (c->port < 1 || c->port > 65535) { free(c); return luaL_argerror(L, 1, "port out of range"); }
  opt_str(L, "tls", tlsm, sizeof tlsm, "starttls");
  if (!strcmp(tlsm, "implicit")) c->tls_mode = TLS_IMPLICIT;
  else if (!strcmp(tlsm, "starttls")) c->tls_mode = TLS_STARTTLS;
  else if (!strcmp(tlsm, "opportunistic")) c->tls_mode = TLS_OPPORTUNISTIC;
  else if (!strcmp(tlsm, "none")) c->tls_mode = TLS_NONE;
  else if (!strcmp(tlsm, "auto")) c->tls_mode = TLS_AUTO;
  else { free(c); return luaL_argerror(L, 1, "tls must be auto, implicit, starttls, opportunistic or none"); }
  opt_str(L, "helo", c->helo, sizeof c->helo, "localhost");
  opt_str(L, "ca_file", c->ca_file, sizeof c->ca_file, NULL);
  opt_str(L, "fingerprint", c->fingerprint, sizeof c->fingerprint, NULL);
  opt_str(L, "min_version", c->min_version, sizeof c->min_version, "1.2");
  lua_getfield(L, 1, "verify");
  c->verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  c->connect_ms = opt_ms(L, "connect_timeout", 30);
  c->deadline_ms = opt_ms(L, "session_deadline", 900);
  c->sniff_ms = opt_ms(L, "greeting_wait", 1.5);
  memset(&p, 0, sizeof p);
  p.helo = c->helo;
  p.host = c->host;
  p.port = c->port;
  lua_getfield(L, 1, "tls_required");
  p.starttls = c->tls_mode == TLS_STARTTLS ? 2 : c->tls_mode == TLS_OPPORTUNISTIC ? 1
             : c->tls_mode == TLS_AUTO ? (lua_toboolean(L, -1) ? 2 : 1) : 0;
  lua_pop(L, 1);
  p.command_ms = c->command_ms = opt_ms(L, "command_timeout", 300);
  p.data_ms = opt_ms(L, "data_timeout", 600);
  io.ud = c;
  io.write = io_write;
  io.timer = io_timer;
  io.starttls = io_starttls;
  io.done = io_done;
  io.more = io_more;
  c->s = mh_smtp_new(&p, &io);
  if (!c->s) { free(c); return luaL_error(L, "out of memory"); }
  c->refs = 3;           /* userdata + two timers */
  c->ud_alive = 1;
  c->loop = mh_l_loop(L);
  uv_timer_init(c->loop, &c->timer);
  uv_timer_init(c->loop, &c->deadline);
  c->timer.data = c->deadline.data = c;
  for (int i = 0; i < MAX_SENDS; i++) c->sends[i].fd = -1;
  u->c = c;
  return 1;
}

/* Common start of an op: the task may wait (raises otherwise), one op at a time. */
static void begin(lua_State *L, conn *c, int op, const char *what) {
  if (c->waiting) luaL_error(L, "%s: another operation is in progress on this session", what);
  mh_wait_init(L, &c->w, what);
  c->w.cancel = cancel_cb;
  if (c->sk) uv_ref((uv_handle_t *)&c->sk->tcp);
  c->op = op;
  c->op_done = 0;
  c->fail_code = 0;
  c->fail_stage = NULL;
  c->fail_msg[0] = '\0';
  c->waited = NULL;
}

/* Ends the op start: the result at once when it already finished, else wait. */
static int wait_op(lua_State *L, conn *c) {
  settle(c);
  if (c->op_done) { go_idle(c); return push_result(L, c); }
  c->waiting = 1;
  return mh_wait_yield(L, &c->w);
}

static int l_open(lua_State *L) {
  conn *c = check_conn(L);
  char port[8];
  int rc;
  struct addrinfo hints;
  if (c->closed || mh_smtp_get_state(c->s) != MH_SMTP_INIT)
    return luaL_error(L, "smtp open: the session was already opened");
  begin(L, c, OP_OPEN, "smtp open");
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", c->port);
  c->gai.data = c;
  uv_timer_start(&c->deadline, deadline_cb, c->deadline_ms, 0);
  c->refs++;
  rc = uv_getaddrinfo(c->loop, &c->gai, gai_cb, c->host, port, &hints);
  if (rc < 0) {
    c->refs--;
    fail(c, MH_EDNS, "dns", "cannot resolve %s: %s", c->host, uv_strerror(rc));
  }
  return wait_op(L, c);
}

/* Every op but open needs a usable session. */
static int not_ready(lua_State *L, conn *c, const char *what) {
  if (!c->closed && c->sk && mh_smtp_get_state(c->s) == MH_SMTP_READY) return 0;
  lua_pushnil(L);
  lua_pushfstring(L, "%s: the SMTP session is not usable (%s)", what,
                  *mh_smtp_errmsg(c->s) ? mh_smtp_errmsg(c->s) : "closed");
  lua_createtable(L, 0, 4);
  set_str(L, "code", "ECONNECT");
  set_str(L, "class", "transient");
  set_str(L, "stage", "connect");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "connection");
  return 1;
}


static int l_auth(lua_State *L) {
  conn *c = check_conn(L);
  const char *mech = luaL_checkstring(L, 2);
  const char *user = luaL_checkstring(L, 3);
  const char *secret = luaL_checkstring(L, 4);
  unsigned m = !strcasecmp(mech, "plain") ? MH_SMTP_AUTH_PLAIN : !strcasecmp(mech, "login") ? MH_SMTP_AUTH_LOGIN
             : !strcasecmp(mech, "xoauth2") ? MH_SMTP_AUTH_XOAUTH2
             : !strcasecmp(mech, "oauthbearer") ? MH_SMTP_AUTH_OAUTHBEARER : 0;
  int rc;
  luaL_argcheck(L, m != 0, 2, "mechanism must be plain, login, xoauth2 or oauthbearer");
  if (not_ready(L, c, "smtp auth")) return 3;
  begin(L, c, OP_AUTH, "smtp auth");
  restart_deadline(c);
  if ((rc = mh_smtp_auth(c->s, m, user, secret)) < 0) { c->op_done = 1; c->op_rc = rc; }
  return wait_op(L, c);
}

/* A spool file's message (from off, size bytes) scanned whole (mime7.h pass 1),
** 64 KiB at a time: for a server without 8BITMIME (or without SMTPUTF8, for a
** message whose header holds 8-bit bytes), whose pieces are then converted as
** they are sent.  One more read of the file, on the loop thread, only then.
** 0, or a negative code with err set. */
static int scan_file(char *buf, size_t bufsize, int fd, uint64_t off, uint64_t size, mh_mime7 **out,
                     char *err, size_t errlen) {
  mh_mime7 *m = mh_mime7_new();
  int rc = 0;
  *out = NULL;
  if (!m) { snprintf(err, errlen, "out of memory"); return MH_ENOMEM; }
  while (size > 0 && rc == 0) {
    size_t want = size < bufsize ? (size_t)size : bufsize;
    ssize_t n;
    do n = pread(fd, buf, want, (off_t)off); while (n < 0 && errno == EINTR);
    if (n <= 0) {
      rc = n < 0 ? -errno : MH_EEOF;
      snprintf(err, errlen, "reading the message: %s", n < 0 ? strerror(errno) : "the file got shorter");
      break;
    }
    rc = mh_mime7_scan(m, buf, (size_t)n);
    off += (uint64_t)n;
    size -= (uint64_t)n;
  }
  if (rc == 0) rc = mh_mime7_scan_end(m);
  if (rc < 0) {
    if (!*err) snprintf(err, errlen, "scanning the message: %s", mh_strerror(rc));
    mh_mime7_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

/* Does the message at off hold any 8-bit or NUL byte?  A plain pass (a word at
** a time) before the MIME scan: a 7-bit file, most big ones (base64
** attachments), needs no scan at all.  1 yes, 0 no, -1 the file could not be
** read (the scan that follows says why). */
static int has8_file(char *buf, size_t bufsize, int fd, uint64_t off, uint64_t size) {
  while (size > 0) {
    size_t want = size < bufsize ? (size_t)size : bufsize, i = 0;
    ssize_t n;
    do n = pread(fd, buf, want, (off_t)off); while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    for (; i + 8 <= (size_t)n; i += 8) {
      uint64_t w;
      memcpy(&w, buf + i, 8);
      /* a byte >= 0x80, or a zero byte (the classic has-zero test) */
      if ((w & 0x8080808080808080ull) || ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull)) break;
    }
    for (; i < (size_t)n; i++)
      if ((unsigned char)buf[i] >= 0x80 || buf[i] == 0) return 1;
    off += (uint64_t)n;
    size -= (uint64_t)n;
  }
  return 0;
}

/* Does the top-level header of the message at off hold 8-bit bytes?  (Its first
** 64 KiB are read: the SMTPUTF8 question for a server that takes 8-bit whole.) */
static int head8_file(char *buf, size_t bufsize, int fd, uint64_t off, uint64_t size) {
  size_t want = size < bufsize ? (size_t)size : bufsize;
  ssize_t n;
  do n = pread(fd, buf, want, (off_t)off); while (n < 0 && errno == EINTR);
  return n > 0 && mh_mime7_head8(buf, (size_t)n);
}

/* Submits one send (arguments 2..4: from, {rcpt...}, data); its outcome joins
** the queue that c:result() reads.  Never waits. */
static void submit(lua_State *L, conn *c, const char *what, int fd, uint64_t off, uint64_t size) {
  size_t fromlen;
  const char *from = luaL_checklstring(L, 2, &fromlen);
  size_t len = 0, n;
  const char *data = NULL;
  const char **rcpt;
  const char *nul = fromlen != strlen(from) ? from : NULL;   /* an address cut short by a NUL */
  sres *r;
  int rc, gate;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (fd < 0) data = luaL_checklstring(L, 4, &len);
  n = (size_t)luaL_len(L, 3);
  if ((c->waiting && c->op != OP_SEND) || (!c->nsends && c->op != OP_NONE)) {
    if (fd >= 0) close(fd);
    luaL_error(L, "%s: another operation is in progress on this session", what);
  }
  if (c->nsends >= MAX_SENDS) {
    if (fd >= 0) close(fd);
    luaL_error(L, "%s: %d sends are outstanding already (collect one with result())", what, MAX_SENDS);
  }
  rcpt = (const char **)lua_newuserdatauv(L, (n ? n : 1) * sizeof *rcpt, 0);  /* freed by the GC */
  for (size_t i = 0; i < n; i++) {
    size_t rl;
    lua_rawgeti(L, 3, (lua_Integer)i + 1);
    rcpt[i] = lua_tolstring(L, -1, &rl);
    if (!rcpt[i]) luaL_argerror(L, 3, "recipients must be strings");
    if (!nul && rl != strlen(rcpt[i])) nul = rcpt[i];
    lua_pop(L, 1);   /* the string stays alive in the table */
  }
  r = &c->sends[(c->first + c->nsends) % MAX_SENDS];
  /* the ones before it have all ended but are not collected (not settled):
  ** this one starts afresh in the session, and must be gated by hand */
  gate = c->nsends > 0;
  for (int i = 0; i < c->nsends; i++) if (!c->sends[(c->first + i) % MAX_SENDS].done) gate = 0;
  if (c->nsends == 0) {
    c->fail_code = 0;
    c->fail_stage = NULL;
    c->fail_msg[0] = '\0';
    c->waited = NULL;
  }
  c->nsends++;
  if (c->closed || !c->sk || mh_smtp_get_state(c->s) == MH_SMTP_CLOSED ||
      (c->nsends == 1 && mh_smtp_get_state(c->s) != MH_SMTP_READY)) {
    char msg[700];
    snprintf(msg, sizeof msg, "%s: the SMTP session is not usable (%s)", what,
             *mh_smtp_errmsg(c->s) ? mh_smtp_errmsg(c->s) : "closed");
    snap_refused(r, MH_ECONNECT, "connect", msg, 1);
    if (fd >= 0) close(fd);
    return;
  }
  if (nul) {
    /* the engine sees C strings: "a@x\0RCPT TO:<y>" would reach it as "a@x" */
    char msg[300];
    snprintf(msg, sizeof msg, "invalid %s address: a NUL byte in '%.100s...'",
             nul == from ? "sender" : "recipient", nul);
    snap_refused(r, MH_EBADADDR, nul == from ? "mail" : "rcpt", msg, 0);
    if (fd >= 0) close(fd);
    return;
  }
  uv_ref((uv_handle_t *)&c->sk->tcp);
  restart_deadline(c);   /* per message: a long stream of them is not one slow session */
  r->done = 0;
  r->fd = fd;
  r->off = off;
  r->left = size;
  if (fd >= 0) {
    mh_mime7 *scan = NULL;
    unsigned flags = MH_SMTP_STREAM_8BIT;
    char err[300] = "";
    int head8 = head8_file(c->sbuf, sizeof c->sbuf, fd, off, size);
    if (mh_smtp_stream_scan_needed(c->s, head8) && has8_file(c->sbuf, sizeof c->sbuf, fd, off, size) != 0) {
      if ((rc = scan_file(c->sbuf, sizeof c->sbuf, fd, off, size, &scan, err, sizeof err)) < 0) {
        snap_refused(r, rc, "data", err, 0);
        sres_close_file(r);
        return;
      }
      /* the reads took their time on this thread: the timers about to be
      ** armed (the session's, the command's) count from now */
      uv_update_time(c->loop);
      restart_deadline(c);
    } else if (head8) {
      flags |= MH_SMTP_STREAM_HEAD8;
    }
    rc = mh_smtp_send_stream(c->s, from, rcpt, n, size, flags, scan);
  } else {
    rc = mh_smtp_send(c->s, from, rcpt, n, data, len);
  }
  if (rc < 0) {
    const char *stage;
    const char *msg = mh_smtp_send_error(c->s, &stage);
    /* its outcome is in at once; result() still gives the ones before it first */
    snap_refused(r, rc, *stage ? stage : "mail", *msg ? msg : mh_strerror(rc), 0);
    sres_close_file(r);
  } else if (gate) {
    mh_smtp_gate(c->s);
  }
}

/* The oldest outcome; waits for it.  Releases the gate first: the caller has
** settled the previous message, so the next one's data may leave. */
static int collect(lua_State *L, conn *c, const char *what) {
  if (!c->nsends) luaL_error(L, "%s: no send is outstanding on this session", what);
  if (c->waiting) luaL_error(L, "%s: another task is waiting on this session", what);
  /* asking for a result not in yet means the ones before were settled */
  if (!c->sends[c->first].done && c->s && !c->closed) mh_smtp_release(c->s);
  settle(c);
  if (c->sends[c->first].done) {
    int n = pop_send(L, c);
    if (!c->nsends) go_idle(c);
    return n;
  }
  mh_wait_init(L, &c->w, what);
  c->w.cancel = cancel_cb;
  c->op = OP_SEND;
  c->waiting = 1;
  return mh_wait_yield(L, &c->w);
}

/* c:send(from, {rcpt...}, data) -> result | nil, err, info   (waits) */
static int l_send(lua_State *L) {
  conn *c = check_conn(L);
  if (c->nsends) luaL_error(L, "smtp send: %d submitted send(s) not collected (use result())", c->nsends);
  submit(L, c, "smtp send", -1, 0, 0);
  return collect(L, c, "smtp send");
}

/* c:set_dsn([mail [, {rcpt params...}]]): the RFC 3461 parameters of the next
** send or submit (mh_smtp_set_dsn: sent only where the server offers DSN);
** the list is parallel to that send's recipients.  Without arguments: none.
** Never waits. */
static int l_set_dsn(lua_State *L) {
  conn *c = check_conn(L);
  const char *mail = luaL_optstring(L, 2, NULL);
  const char **rp = NULL;
  size_t n = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    n = (size_t)luaL_len(L, 3);
    rp = (const char **)lua_newuserdatauv(L, (n ? n : 1) * sizeof *rp, 0);   /* freed by the GC */
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 3, (lua_Integer)i + 1);
      rp[i] = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;   /* false: none */
      lua_pop(L, 1);   /* the string stays alive in the table */
    }
  }
  if (mh_smtp_set_dsn(c->s, mail, rp, n) < 0) return luaL_error(L, "out of memory");
  return 0;
}

/* c:submit(from, {rcpt...}, data) -> true   (never waits; c:result() tells) */
static int l_submit(lua_State *L) {
  conn *c = check_conn(L);
  submit(L, c, "smtp submit", -1, 0, 0);
  settle(c);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:submit_file(from, {rcpt...}, path [, offset]) -> true | nil, err, info
** (never waits).  As submit, for a message read from its file while it is sent,
** one piece at a time (memory stays at 64 KiB whatever its size).  nil when
** the file cannot be opened: nothing was submitted. */
static int l_submit_file(lua_State *L) {
  conn *c = check_conn(L);
  const char *path = luaL_checkstring(L, 4);
  lua_Integer off = luaL_optinteger(L, 5, 0);
  struct stat st;
  int fd;
  luaL_argcheck(L, off >= 0, 5, "offset must be >= 0");
  /* a spool file: opened by fsutil's rule (regular, never a FIFO or a link) */
  fd = mh_fsutil_open(AT_FDCWD, path, O_RDONLY, 0, 0, &st);
  if (fd < 0)
    return mh_l_fail(L, fd == -ENOENT ? MH_ENOTFOUND : fd, "data", "%s: %s", path, mh_strerror(fd));
  if ((uint64_t)st.st_size < (uint64_t)off) {
    close(fd);
    return mh_l_fail(L, MH_EINVAL, "data", "%s: offset %lld past its end", path, (long long)off);
  }
  submit(L, c, "smtp submit", fd, (uint64_t)off, (uint64_t)st.st_size - (uint64_t)off);
  settle(c);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:result() -> what c:send returns, for the oldest submitted send   (waits) */
static int l_result(lua_State *L) { return collect(L, check_conn(L), "smtp result"); }

/* c:release(): every outcome collected so far is settled: the oldest send
** outstanding may send its data now (result() does this too).  Called after
** submitting the next message, the data leaves with that one's commands. */
static int l_release(lua_State *L) {
  conn *c = check_conn(L);
  if (c->nsends && !c->sends[c->first].done && c->s && !c->closed) {
    mh_smtp_release(c->s);
    settle(c);
  }
  return 0;
}

/* c:pending() -> number of submitted sends whose outcome was not collected */
static int l_pending(lua_State *L) {
  conn *c = check_conn(L);
  lua_pushinteger(L, c->nsends);
  return 1;
}

static int l_check_sender(lua_State *L) {
  conn *c = check_conn(L);
  const char *from = luaL_checkstring(L, 2);
  int rc;
  if (not_ready(L, c, "smtp check_sender")) return 3;
  begin(L, c, OP_CHECK, "smtp check_sender");
  restart_deadline(c);
  if ((rc = mh_smtp_check_sender(c->s, from)) < 0) { c->op_done = 1; c->op_rc = rc; }
  return wait_op(L, c);
}

static int l_quit(lua_State *L) {
  conn *c = check_conn(L);
  if (c->closed || !c->sk || mh_smtp_get_state(c->s) != MH_SMTP_READY) {
    conn_close(c);
    lua_pushboolean(L, 1);
    return 1;
  }
  begin(L, c, OP_QUIT, "smtp quit");
  mh_smtp_quit(c->s);
  return wait_op(L, c);
}

static int l_alive(lua_State *L) {
  conn *c = check_conn(L);
  lua_pushboolean(L, !c->closed && c->sk && mh_smtp_get_state(c->s) == MH_SMTP_READY);
  return 1;
}

/* Idempotent: __gc, __close and :close(). */
static int l_close(lua_State *L) {
  conn_ud *u = (conn_ud *)luaL_checkudata(L, 1, CONN_MT);
  conn *c = u->c;
  if (!c) return 0;
  u->c = NULL;
  /* another task waiting on this session: its wait is cancelled and it gets an error */
  if (c->waiting && c->w.task) mh_task_interrupt(c->w.task);
  c->waiting = 0;
  conn_close(c);
  unref(c);
  return 0;
}

static int l_info(lua_State *L) {
  conn *c = check_conn(L);
  const mh_smtp_caps *caps = mh_smtp_get_caps(c->s);
  lua_newtable(L);
  set_str(L, "server", c->host);
  set_str(L, "address", c->address);
  lua_pushinteger(L, c->port);
  lua_setfield(L, -2, "port");
  set_str(L, "security", tls_mode_name(c));
  set_str(L, "helo", c->helo);
  lua_pushboolean(L, mh_smtp_used_ehlo(c->s));
  lua_setfield(L, -2, "esmtp");
  if (c->tls) {
    mh_tls_info ti;
    mh_tls_get_info(c->tls, &ti);
    if (c->tls_on) { set_str(L, "tls_version", ti.version); set_str(L, "cipher", ti.cipher); }
    lua_createtable(L, 0, 6);
    set_str(L, "subject", ti.subject);
    set_str(L, "issuer", ti.issuer);
    set_str(L, "not_after", ti.not_after);
    set_str(L, "fingerprint", ti.fingerprint);
    lua_pushboolean(L, ti.verified);
    lua_setfield(L, -2, "verified");
    set_str(L, "result", ti.verify_result);
    if (!ti.verified && *mh_tls_error(c->tls)) set_str(L, "error", mh_tls_error(c->tls));
    lua_setfield(L, -2, "cert");
  }
  /* capabilities: keywords as the server sent them */
  lua_newtable(L);
  {
    const char *p = caps->list;
    int i = 0;
    while (*p) {
      const char *e = strchr(p, ' ');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      lua_pushlstring(L, p, n);
      lua_rawseti(L, -2, ++i);
      p += n;
      while (*p == ' ') p++;
    }
  }
  lua_setfield(L, -2, "capabilities");
  lua_newtable(L);
  {
    static const struct { unsigned bit; const char *name; } mechs[] = {
      { MH_SMTP_AUTH_OAUTHBEARER, "oauthbearer" }, { MH_SMTP_AUTH_XOAUTH2, "xoauth2" },
      { MH_SMTP_AUTH_PLAIN, "plain" }, { MH_SMTP_AUTH_LOGIN, "login" } };
    int i = 0;
    for (size_t k = 0; k < sizeof mechs / sizeof mechs[0]; k++)
      if (caps->auth & mechs[k].bit) { lua_pushstring(L, mechs[k].name); lua_rawseti(L, -2, ++i); }
  }
  lua_setfield(L, -2, "auth_offered");
  lua_pushboolean(L, (caps->flags & MH_SMTP_CAP_PIPELINING) != 0);
  lua_setfield(L, -2, "pipelining");
  /* after STARTTLS the second EHLO no longer lists it: it was offered all the same */
  lua_pushboolean(L, (caps->flags & MH_SMTP_CAP_STARTTLS) != 0 ||
                     (c->tls_on && c->tls_mode != TLS_IMPLICIT));
  lua_setfield(L, -2, "starttls_offered");
  lua_pushboolean(L, (caps->flags & MH_SMTP_CAP_8BITMIME) != 0);
  lua_setfield(L, -2, "eightbitmime");
  lua_pushboolean(L, (caps->flags & MH_SMTP_CAP_SMTPUTF8) != 0);
  lua_setfield(L, -2, "smtputf8");
  if (caps->size) { lua_pushinteger(L, (lua_Integer)caps->size); lua_setfield(L, -2, "size"); }
  set_str(L, "state", mh_smtp_state_name(mh_smtp_get_state(c->s)));
  return 1;
}

static int l_tostring(lua_State *L) {
  conn_ud *u = (conn_ud *)luaL_checkudata(L, 1, CONN_MT);
  if (!u->c) lua_pushstring(L, "mailhook.SmtpConn (closed)");
  else lua_pushfstring(L, "mailhook.SmtpConn(%s:%d, %s)", u->c->host, u->c->port,
                       mh_smtp_state_name(mh_smtp_get_state(u->c->s)));
  return 1;
}

void l_smtp_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "open", l_open }, { "auth", l_auth }, { "send", l_send }, { "submit", l_submit }, { "set_dsn", l_set_dsn },
    { "submit_file", l_submit_file }, { "result", l_result }, { "release", l_release },
    { "pending", l_pending }, { "check_sender", l_check_sender },
    { "quit", l_quit }, { "alive", l_alive }, { "close", l_close }, { "info", l_info }, { NULL, NULL } };
  mh_l_newclass(L, CONN_MT, methods, l_close, l_tostring);
  lua_newtable(L);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "smtp");
}
