/*
** transport.c — TCP and TLS to a mail server on the libuv loop (see
** transport.h): DNS, each address in turn, a write queue that never drops a
** byte, TLS through tls.c's memory BIOs, one timer, and the six events.
**
** Lifetime: the struct lives while anything refers to it — the owner (until
** mh_transport_close), each open handle (the socket of the address being
** tried, the timer), each request in flight (the name lookup, every queued
** write); the last unref frees it, so a libuv callback never finds it gone.
*/
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include "transport.h"
#include "error.h"
#include "log.h"

typedef struct sock {         /* one TCP attempt; freed in its close callback */
  uv_tcp_t tcp;
  uv_connect_t req;
  mh_transport *t;
  int timed_out;               /* the connect timer gave up on it */
} sock;

/* What the one timer does now. */
enum { TIMER_OFF, TIMER_CONNECT, TIMER_USER, TIMER_ERROR, TIMER_LATE };

struct mh_transport {
  uv_loop_t *loop;
  mh_transport_cb cb;
  void *ud;
  char host[256];
  int port;
  uint64_t connect_ms;
  int refs;                    /* owner (until mh_transport_free) + open handles + requests
                                  in flight */
  int closed;                  /* mh_transport_close ran: no more events */
  mh_tr_phase phase;
  uv_timer_t timer;            /* connect timeout, the owner's timer, or the deferred ERROR */
  int timer_kind;              /* TIMER_* */
  uv_getaddrinfo_t gai;
  struct addrinfo *ai, *ai_cur;  /* addresses of host, the one being tried */
  sock *sk;                    /* the current socket, NULL when none */
  int connected;               /* TCP is (was) up for the current address */
  int held;                    /* the owner wants the socket to keep the loop alive */
  char address[64];            /* the address being tried / connected to */
  char tried[700];             /* every address tried and why it failed */
  char causes[256];            /* the same, by errno name (mh_tr_error.causes) */
  int writes;                  /* write requests in flight */
  uv_idle_t low_idle;          /* LOW after a write the kernel took at once: on the next
                                  loop turn, never from inside mh_transport_write */
  int low_due;                 /* such a LOW is owed */
  uint64_t received;           /* bytes read */
  mh_tls *tls;                 /* the TLS engine once start_tls ran */
  int tls_on;                  /* the handshake succeeded: data goes through TLS */
  char hs_first[8];            /* first bytes received during a handshake */
  size_t hs_n;
  int guard_sigpipe;           /* SIGPIPE was not ignored when it was made (a host process
                                  or a foreign Lua): each write is guarded */
  int werr;                    /* a write the kernel refused (UV_EPIPE, UV_ECONNRESET): reported
                                  once what the socket still holds was read (late_cb) */
  mh_tr_error err;      /* why it failed (phase FAILED) */
  char rbuf[65536];            /* what the socket read (one read at a time) */
  char pbuf[16384];            /* TLS plain text taken from rbuf's records */
};

typedef struct {               /* one queued write; its bytes follow */
  uv_write_t req;
  mh_transport *t;
  char data[];
} wreq;

/* ------------------------------------------------------------- lifetime */

static void unref(mh_transport *t) {
  assert(t->refs > 0);
  if (--t->refs > 0) return;
  mh_tls_free(t->tls);
  if (t->ai) uv_freeaddrinfo(t->ai);
  free(t);
}

static void handle_closed(uv_handle_t *h) { unref((mh_transport *)h->data); }

static void sock_closed(uv_handle_t *h) {
  sock *k = (sock *)h->data;
  mh_transport *t = k->t;
  free(k);
  unref(t);
}

static void sock_close(mh_transport *t) {
  if (!t->sk) return;
  uv_close((uv_handle_t *)&t->sk->tcp, sock_closed);
  t->sk = NULL;
}

/* Tells the owner, unless it closed the transport. */
static void emit(mh_transport *t, mh_tr_event ev, const char *buf, size_t len) {
  if (!t->closed) t->cb(t->ud, ev, buf, len);
}

/* ---------------------------------------------------------------- failure */

static void error_cb(uv_timer_t *h) {
  mh_transport *t = (mh_transport *)h->data;
  t->timer_kind = TIMER_OFF;
  emit(t, MH_TR_ERROR, NULL, 0);
}

/* The transport failed: the socket closes now, ERROR follows on the next loop
** turn (never from inside the call that found the failure).  The first
** failure is the one reported. */
static void fail(mh_transport *t, int code, int tls_why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(mh_transport *t, int code, int tls_why, const char *fmt, ...) {
  va_list ap;
  if (t->phase == MH_TR_FAILED || t->closed) return;
  t->err.code = code;
  t->err.phase = t->phase;
  t->err.tls_why = tls_why;
  t->err.tls_reason = "";
  if (tls_why != MH_TLS_WHY_NONE && t->tls) {
    mh_tls_info ti;
    mh_tls_get_info(t->tls, &ti);
    t->err.tls_reason = ti.reason_name;
  }
  va_start(ap, fmt);
  vsnprintf(t->err.msg, sizeof t->err.msg, fmt, ap);
  va_end(ap);
  t->phase = MH_TR_FAILED;
  mh_debug("transport %s:%d: %s", t->host, t->port, t->err.msg);
  sock_close(t);
  t->timer_kind = TIMER_ERROR;
  uv_timer_start(&t->timer, error_cb, 0, 0);
}

/* --------------------------------------------------------------- writing */

static void late_cb(uv_timer_t *h);

/* A write the kernel refused because the server closed or reset the
** connection.  A server that refuses a message while its data still flows
** (a 421 mid-DATA, a 552 as it grows past the server's limit) says so first,
** then closes: its reply sits in the socket, unread behind the write, and it
** is the reason an administrator must see, not "broken pipe" or "connection
** reset".  So the failure waits for the next loop turn (as every failure
** does), the socket still open; late_cb reads what it holds and hands it to
** the owner first.  Nothing more is written meanwhile. */
static void write_failed(mh_transport *t, int rc) {
  if ((rc == UV_EPIPE || rc == UV_ECONNRESET) && t->sk && !t->werr && !t->closed &&
      (t->phase == MH_TR_OPEN || t->phase == MH_TR_SECURE)) {
    t->werr = rc;
    t->timer_kind = TIMER_LATE;
    uv_timer_start(&t->timer, late_cb, 0, 0);
    return;
  }
  fail(t, MH_ECONNECT, MH_TLS_WHY_NONE, "write failed: %s", uv_strerror(rc));
}

/* SIGPIPE around a write, for a process that does not ignore it: the signal a
** write to a reset connection raises is consumed, and the write fails with
** EPIPE instead of killing the host.  req NULL: uv_try_write (what the kernel
** takes now, or UV_EAGAIN).  Returns what the write returned. */
static int guarded_write(mh_transport *t, uv_write_t *req, uv_buf_t *b, uv_write_cb cb) {
  sigset_t set, old, pend;
  int rc, active = 0, was_pending = 0;
  if (t->guard_sigpipe) {
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &set, &old) == 0 && !sigismember(&old, SIGPIPE)) {
      active = 1;
      was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
    }
  }
  rc = req ? uv_write(req, (uv_stream_t *)&t->sk->tcp, b, 1, cb)
           : uv_try_write((uv_stream_t *)&t->sk->tcp, b, 1);
  if (active) {
    if (!was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
      static const struct timespec zero = { 0, 0 };
      while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  return rc;
}

static void write_cb(uv_write_t *req, int status) {
  wreq *r = (wreq *)req->data;
  mh_transport *t = r->t;
  free(r);
  assert(t->writes > 0);
  t->writes--;
  if (status < 0 && status != UV_ECANCELED)
    write_failed(t, status);
  else if (status == 0 && t->writes == 0 && t->phase != MH_TR_FAILED)
    emit(t, MH_TR_LOW, NULL, 0);
  unref(t);
}

static void low_cb(uv_idle_t *h) {
  mh_transport *t = (mh_transport *)h->data;
  uv_idle_stop(h);
  if (!t->low_due) return;
  t->low_due = 0;
  /* a write queued since then reports LOW itself (write_cb) */
  if (t->writes == 0 && t->phase != MH_TR_FAILED) emit(t, MH_TR_LOW, NULL, 0);
}

/* Bytes for the socket: written at once when nothing is queued and the kernel
** takes them (LOW then follows on the next loop turn), else copied into the
** queue (LOW from write_cb once it has emptied).  A command or a reply-sized
** write takes the first way: no copy, no allocation. */
static void queue_raw(mh_transport *t, const char *buf, size_t len) {
  wreq *r;
  uv_buf_t b;
  int rc;
  if (!t->sk || t->phase == MH_TR_FAILED || t->werr || len == 0) return;
  if (t->writes == 0) {
    b = uv_buf_init((char *)buf, (unsigned)len);
    rc = guarded_write(t, NULL, &b, NULL);
    if (rc < 0 && rc != UV_EAGAIN) {
      write_failed(t, rc);
      return;
    }
    if (rc == (int)len) {
      t->low_due = 1;
      uv_idle_start(&t->low_idle, low_cb);
      return;
    }
    if (rc > 0) { buf += rc; len -= (size_t)rc; }
  }
  if (!(r = (wreq *)malloc(sizeof *r + len))) {
    fail(t, MH_ENOMEM, MH_TLS_WHY_NONE, "out of memory (%zu bytes to write)", len);
    return;
  }
  r->t = t;
  r->req.data = r;
  memcpy(r->data, buf, len);
  b = uv_buf_init(r->data, (unsigned)len);
  t->refs++;
  t->writes++;
  if ((rc = guarded_write(t, &r->req, &b, write_cb)) < 0) {
    t->refs--;
    t->writes--;
    free(r);
    write_failed(t, rc);
  }
}

/* Everything TLS has for the network, in one write. */
static void tls_flush(mh_transport *t) {
  size_t n = mh_tls_pending(t->tls);
  char *b;
  if (n == 0 || t->phase == MH_TR_FAILED) return;
  if (!(b = (char *)malloc(n))) {
    fail(t, MH_ENOMEM, MH_TLS_WHY_NONE, "out of memory (%zu bytes of TLS to write)", n);
    return;
  }
  n = mh_tls_take(t->tls, b, n);
  queue_raw(t, b, n);
  free(b);
}

void mh_transport_write(mh_transport *t, const char *buf, size_t len) {
  if (t->closed || t->phase == MH_TR_FAILED || t->werr) return;   /* ERROR is on its way */
  /* only on a connection, and nothing in plain text while TLS is being set up */
  assert(t->sk && (t->phase == MH_TR_OPEN || t->phase == MH_TR_SECURE));
  if (t->tls_on) {
    if (mh_tls_write(t->tls, buf, len) < 0) {
      fail(t, MH_ETLS, MH_TLS_WHY_OTHER, "%s", mh_tls_error(t->tls));
      return;
    }
    tls_flush(t);
  } else {
    queue_raw(t, buf, len);
  }
}

/* ------------------------------------------------------------------- TLS */

/* Drives the handshake after new input; when done, checks the certificate. */
static void tls_step(mh_transport *t) {
  int rc = mh_tls_handshake(t->tls);
  tls_flush(t);
  if (rc == MH_TLS_WANT_READ || t->phase == MH_TR_FAILED) return;
  if (rc < 0) {
    mh_tls_info ti;
    mh_tls_get_info(t->tls, &ti);
    fail(t, MH_ETLS, ti.why ? ti.why : MH_TLS_WHY_OTHER, "%s:%d: %s", t->host, t->port,
         mh_tls_error(t->tls));
    return;
  }
  if ((rc = mh_tls_check(t->tls)) < 0) {
    fail(t, rc, MH_TLS_WHY_CERT, "%s:%d: %s", t->host, t->port, mh_tls_error(t->tls));
    return;
  }
  t->tls_on = 1;
  t->phase = MH_TR_SECURE;
  emit(t, MH_TR_TLS_READY, NULL, 0);
}

void mh_transport_start_tls(mh_transport *t, const mh_tls_params *p) {
  char err[300];
  if (t->closed || t->phase == MH_TR_FAILED) return;
  /* once per connection, on a plain one */
  assert(t->phase == MH_TR_OPEN && !t->tls);
  t->phase = MH_TR_HANDSHAKE;
  t->hs_n = 0;
  if (!(t->tls = mh_tls_new(p, err, sizeof err))) {
    fail(t, MH_ETLS, MH_TLS_WHY_NONE, "%s", err);
    return;
  }
  tls_step(t);   /* the ClientHello: it needs the server's answer, never ends here */
}

/* --------------------------------------------------------------- reading */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  mh_transport *t = ((sock *)h->data)->t;
  *b = uv_buf_init(t->rbuf, sizeof t->rbuf);
}

static void received(mh_transport *t, const char *buf, size_t n);

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  sock *k = (sock *)st->data;
  mh_transport *t = k->t;
  if (n == 0 || t->sk != k || t->phase == MH_TR_FAILED) return;
  if (n < 0) {
    if (t->phase == MH_TR_HANDSHAKE)
      fail(t, MH_ETLS, MH_TLS_WHY_CLOSED, "%s:%d: connection closed during the TLS handshake",
           t->host, t->port);
    else
      fail(t, n == UV_EOF ? MH_EEOF : MH_ECONNECT, MH_TLS_WHY_NONE, "connection closed by the server%s%s",
           n == UV_EOF ? "" : ": ", n == UV_EOF ? "" : uv_strerror((int)n));
    return;
  }
  received(t, b->base, (size_t)n);
}

/* The write failed (write_failed): what the socket still holds, read now
** without waiting (the kernel keeps what arrived before the reset), goes to
** the owner as any data; then, unless the owner closed the transport or it
** failed otherwise, the write's failure. */
static void late_cb(uv_timer_t *h) {
  mh_transport *t = (mh_transport *)h->data;
  uv_os_fd_t fd;
  t->timer_kind = TIMER_OFF;
  if (t->closed || t->phase == MH_TR_FAILED) return;
  while (t->sk && !t->closed && t->phase != MH_TR_FAILED &&
         uv_fileno((uv_handle_t *)&t->sk->tcp, &fd) == 0) {
    ssize_t n = recv(fd, t->rbuf, sizeof t->rbuf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    received(t, t->rbuf, (size_t)n);
  }
  if (!t->closed && t->phase != MH_TR_FAILED)
    fail(t, MH_ECONNECT, MH_TLS_WHY_NONE, "write failed: %s", uv_strerror(t->werr));
}

/* n bytes from the socket (in rbuf): to the owner, through TLS once it is on. */
static void received(mh_transport *t, const char *buf, size_t n) {
  t->received += (uint64_t)n;
  if (!t->tls) {
    emit(t, MH_TR_DATA, buf, n);
    return;
  }
  t->refs++;   /* the owner may close it from any callback below */
  if (t->phase == MH_TR_HANDSHAKE && t->hs_n < sizeof t->hs_first) {
    size_t room = sizeof t->hs_first - t->hs_n, m = room < n ? room : n;
    memcpy(t->hs_first + t->hs_n, buf, m);
    t->hs_n += m;
  }
  if (mh_tls_feed(t->tls, buf, n) < 0)
    fail(t, MH_ENOMEM, MH_TLS_WHY_NONE, "out of memory (%zu bytes read)", n);
  else if (t->phase == MH_TR_HANDSHAKE)
    tls_step(t);
  while (t->tls_on && t->sk && !t->closed && t->phase == MH_TR_SECURE) {
    int m = mh_tls_read(t->tls, t->pbuf, sizeof t->pbuf);
    tls_flush(t);
    if (m == 0) break;
    if (m < 0) {
      mh_tls_info ti;
      mh_tls_get_info(t->tls, &ti);
      fail(t, m == MH_EEOF ? MH_EEOF : MH_ETLS, ti.why, "%s", mh_tls_error(t->tls));
      break;
    }
    emit(t, MH_TR_DATA, t->pbuf, (size_t)m);
  }
  unref(t);
}

/* ---------------------------------------------------------------- connect */

static void try_next(mh_transport *t);

static void tried(mh_transport *t, const char *why, const char *cause) {
  size_t l = strlen(t->tried);
  snprintf(t->tried + l, sizeof t->tried - l, "%s%s: %s", l ? "; " : "", t->address, why);
  l = strlen(t->causes);
  snprintf(t->causes + l, sizeof t->causes - l, "%s %s\n", t->address, cause);
}

static void connect_cb(uv_connect_t *req, int status) {
  sock *k = (sock *)req->data;
  mh_transport *t = k->t;
  if (t->closed || t->sk != k) return;   /* given up (closed, or timed out: try_next ran) */
  if (t->timer_kind == TIMER_CONNECT) { uv_timer_stop(&t->timer); t->timer_kind = TIMER_OFF; }
  if (status < 0) {
    tried(t, uv_strerror(status), uv_err_name(status));
    sock_close(t);
    t->ai_cur = t->ai_cur->ai_next;
    try_next(t);
    return;
  }
  t->connected = 1;
  t->phase = MH_TR_OPEN;
  uv_tcp_nodelay(&k->tcp, 1);   /* commands and the final dot must not wait for Nagle */
  if (!t->held) uv_unref((uv_handle_t *)&k->tcp);
  uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, read_cb);
  emit(t, MH_TR_CONNECTED, NULL, 0);
}

static void connect_timeout_cb(uv_timer_t *h) {
  mh_transport *t = (mh_transport *)h->data;
  t->timer_kind = TIMER_OFF;
  if (!t->sk || t->phase != MH_TR_CONNECTING) return;
  t->sk->timed_out = 1;
  sock_close(t);   /* its connect_cb runs with ECANCELED and finds sk changed */
  tried(t, "connect timed out", "ETIMEDOUT");
  t->ai_cur = t->ai_cur->ai_next;
  try_next(t);
}

/* Connects to the next address of the name, or fails with every reason. */
static void try_next(mh_transport *t) {
  int rc;
  for (; t->ai_cur; t->ai_cur = t->ai_cur->ai_next) {
    struct addrinfo *a = t->ai_cur;
    sock *k;
    if (a->ai_family == AF_INET) uv_ip4_name((struct sockaddr_in *)a->ai_addr, t->address, sizeof t->address);
    else if (a->ai_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, t->address, sizeof t->address);
    else continue;
    if (!(k = (sock *)calloc(1, sizeof *k))) break;
    k->t = t;
    uv_tcp_init(t->loop, &k->tcp);
    k->tcp.data = k;
    k->req.data = k;
    t->refs++;
    t->sk = k;
    t->connected = 0;
    t->received = 0;
    mh_debug("smtp: connecting to %s port %d (%s)", t->address, t->port, t->host);
    if ((rc = uv_tcp_connect(&k->req, &k->tcp, a->ai_addr, connect_cb)) < 0) {
      tried(t, uv_strerror(rc), uv_err_name(rc));
      sock_close(t);
      continue;
    }
    t->timer_kind = TIMER_CONNECT;
    uv_timer_start(&t->timer, connect_timeout_cb, t->connect_ms, 0);
    return;
  }
  t->address[0] = '\0';
  snprintf(t->err.causes, sizeof t->err.causes, "%s", t->causes);
  fail(t, MH_ECONNECT, MH_TLS_WHY_NONE, "could not connect to %s port %d: %s", t->host, t->port,
       *t->tried ? t->tried : "no usable address");
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  mh_transport *t = (mh_transport *)req->data;
  if (t->closed) {
    if (res) uv_freeaddrinfo(res);
  } else if (status < 0) {
    fail(t, MH_EDNS, MH_TLS_WHY_NONE, "cannot resolve %s: %s", t->host, uv_strerror(status));
  } else {
    t->ai = t->ai_cur = res;
    t->phase = MH_TR_CONNECTING;
    try_next(t);
  }
  unref(t);
}

void mh_transport_connect(mh_transport *t) {
  char port[8];
  struct addrinfo hints;
  int rc;
  assert(t->phase == MH_TR_RESOLVING && !t->ai);   /* once */
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", t->port);
  t->gai.data = t;
  t->refs++;
  if ((rc = uv_getaddrinfo(t->loop, &t->gai, gai_cb, t->host, port, &hints)) < 0) {
    t->refs--;
    fail(t, MH_EDNS, MH_TLS_WHY_NONE, "cannot resolve %s: %s", t->host, uv_strerror(rc));
  }
}

/* ------------------------------------------------------------ the owner's */

mh_transport *mh_transport_new(const mh_transport_params *p) {
  mh_transport *t = (mh_transport *)calloc(1, sizeof *t);
  struct sigaction sa;
  if (!t) return NULL;
  t->loop = p->loop;
  t->cb = p->cb;
  t->ud = p->ud;
  snprintf(t->host, sizeof t->host, "%s", p->host ? p->host : "");
  t->port = p->port;
  t->connect_ms = p->connect_ms ? p->connect_ms : 30000;
  t->phase = MH_TR_RESOLVING;
  t->held = 1;
  t->guard_sigpipe = !(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
  uv_timer_init(t->loop, &t->timer);
  t->timer.data = t;
  uv_idle_init(t->loop, &t->low_idle);
  t->low_idle.data = t;
  t->refs = 3;   /* the owner, the timer and the idle handle */
  return t;
}

static void user_timer_cb(uv_timer_t *h) {
  mh_transport *t = (mh_transport *)h->data;
  t->timer_kind = TIMER_OFF;
  emit(t, MH_TR_TIMEOUT, NULL, 0);
}

void mh_transport_timer(mh_transport *t, uint64_t ms) {
  /* the timer is the owner's once connected; a failure's report is never displaced */
  if (t->closed || t->phase == MH_TR_FAILED || t->werr || t->timer_kind == TIMER_CONNECT) return;
  if (ms) {
    t->timer_kind = TIMER_USER;
    uv_timer_start(&t->timer, user_timer_cb, ms, 0);
  } else if (t->timer_kind == TIMER_USER) {
    t->timer_kind = TIMER_OFF;
    uv_timer_stop(&t->timer);
  }
}

void mh_transport_hold(mh_transport *t, int hold) {
  t->held = hold;
  if (!t->sk) return;
  if (hold) uv_ref((uv_handle_t *)&t->sk->tcp);
  else uv_unref((uv_handle_t *)&t->sk->tcp);
}

void mh_transport_close(mh_transport *t) {
  if (!t || t->closed) return;
  t->closed = 1;
  if (t->phase != MH_TR_FAILED) t->phase = MH_TR_CLOSED;
  sock_close(t);
  uv_close((uv_handle_t *)&t->timer, handle_closed);
  uv_close((uv_handle_t *)&t->low_idle, handle_closed);
}

void mh_transport_free(mh_transport *t) {
  if (!t) return;
  mh_transport_close(t);
  unref(t);   /* the owner's */
}

mh_tr_phase mh_transport_phase(const mh_transport *t) { return t->phase; }
const mh_tr_error *mh_transport_error(const mh_transport *t) { return &t->err; }
const char *mh_transport_address(const mh_transport *t) { return t->address; }
int mh_transport_resolved(const mh_transport *t) { return t->ai != NULL; }
int mh_transport_connected(const mh_transport *t) { return t->connected; }
uint64_t mh_transport_received(const mh_transport *t) { return t->received; }
int mh_transport_tls_on(const mh_transport *t) { return t->tls_on; }
mh_tls *mh_transport_tls(const mh_transport *t) { return t->tls; }

const char *mh_transport_handshake_bytes(const mh_transport *t, size_t *n) {
  *n = t->hs_n;
  return t->hs_first;
}
