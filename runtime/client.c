/*
** client.c — the SMTP client: session (smtp.c) + transport (transport.c)
** on the loop, with the TLS mode, the deadline, streamed files, pipelining
** across messages and C results (see client.h).
**
** Events go one way: the transport reports to on_transport(), which feeds
** the session; the session's callbacks write to the transport (it never
** calls back from inside a call), arm its timer, start TLS, and record what
** ended.  The two things the session cannot be asked from inside its own
** callbacks — the next piece of a streamed message, and telling the owner —
** wait in after_session(), which runs after every call into the session.
*/
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "client.h"
#include "transport.h"
#include "mime7.h"
#include "error.h"
#include "log.h"

enum { OP_NONE, OP_OPEN, OP_AUTH, OP_CHECK, OP_QUIT };

/* What the transport's timer stands for now. */
enum { T_NONE, T_SESSION, T_SNIFF, T_HANDSHAKE };

/* One submitted send: its file while it is sent, then its outcome. */
typedef struct {
  int done;                    /* the outcome is in */
  mh_client_result res;
  int fd;                      /* submit_file: the message's file, -1 otherwise or once done */
  uint64_t off, left;          /* where the next piece starts, bytes still to send */
  char *held;                  /* its first piece (held_len bytes from off), read by the
                                  pre-scan at submit and sent by the first feed: not read
                                  twice (a 100 KB message was read three times); or NULL */
  size_t held_len;
} send_slot;

struct mh_client {
  uv_loop_t *loop;
  void (*notify)(void *ud);
  void *ud;
  int refs;                    /* owner + the deadline timer (open) */
  int closed;                  /* mh_client_close ran */
  int changed;                 /* something ended since the owner was last told */
  mh_smtp *s;
  mh_transport *tr;            /* NULL until open */
  uv_timer_t deadline;         /* session_deadline */
  int timer_for;               /* T_*: what the transport's timer means */
  /* settings */
  char host[MH_CLIENT_HOST_MAX + 1], helo[MH_CLIENT_HELO_MAX + 1], ca_file[MH_CLIENT_CA_FILE_MAX + 1];
  char fingerprint[MH_CLIENT_FINGERPRINT_MAX + 1], min_version[MH_CLIENT_MIN_VERSION_MAX + 1];
  int port, verify, tls_mode;
  uint64_t connect_ms, command_ms, deadline_ms, sniff_ms;
  /* the connection */
  int sniffed;                 /* tls = auto heard no greeting and sent a ClientHello */
  uint64_t connected_at;       /* uv_now when TCP came up (0: not yet) */
  uint64_t greeting_ms;        /* ms from then to the first plain-text byte (the greeting);
                                  0: none came (yet), or the session began with TLS */
  int plain_greeting;          /* implicit TLS met a plain greeting */
  int want_more;               /* the session asked for a streamed message's next piece */
  /* the running operation */
  int op;                      /* OP_* */
  int op_done;
  mh_client_result op_res;
  /* a failure of the connection itself (dns, connect, tls, a timeout of ours) */
  int fail_code;
  const char *fail_stage;      /* NULL: the session's stage and message tell */
  char fail_msg[800];
  int fail_why;                /* MH_CLIENT_WHY_* */
  const char *fail_reason;
  char fail_causes[256];       /* the transport's causes of a failed connect (transport.h) */
  const char *waited;          /* what a timeout cut short (waiting_for) */
  /* sends, oldest first */
  send_slot sends[MH_CLIENT_MAX_SENDS];
  int first, nsends;
  char fbuf[262144];           /* a piece of a message file being sent (256 KiB: a 5 MB
                                  message in 20 reads and writes, not 80) */
};

static void after_session(mh_client *c);

/* ------------------------------------------------------------- results */

void mh_client_result_free(mh_client_result *r) {
  for (size_t i = 0; i < r->nrcpt; i++) free(r->rcpts[i].rcpt);
  free(r->rcpts);
  r->rcpts = NULL;
  r->nrcpt = 0;
}

/* An empty result (rc 0, no reply, no recipients).  Field by field, the
** strings by their first byte: a result is ~3 KB, cleared and moved once or
** twice per message, and whole-struct memsets and copies were most of what the
** split added to a send (callgrind, bench/40-smtp.sh's loop). */
static void result_clear(mh_client_result *r) {
  mh_client_result_free(r);
  r->rc = 0;
  r->stage = NULL;
  r->msg[0] = '\0';
  r->code = 0;
  r->enhanced[0] = '\0';
  r->text[0] = '\0';
  r->closed = 0;
  r->waited = NULL;
  r->tls_probe = 0;
  r->plain_smtp = 0;
  r->why = MH_CLIENT_WHY_NONE;
  r->tls_reason = "";
  r->causes[0] = '\0';
  r->refused_early = 0;
}

/* Moves src into dst (dst's old recipients are not freed: dst is the owner's
** fresh variable), leaving src empty; the strings are copied by their length. */
static void result_move(mh_client_result *dst, mh_client_result *src) {
  dst->rc = src->rc;
  dst->stage = src->stage;
  memcpy(dst->msg, src->msg, strnlen(src->msg, sizeof src->msg - 1) + 1);
  dst->msg[sizeof dst->msg - 1] = '\0';
  dst->code = src->code;
  memcpy(dst->enhanced, src->enhanced, sizeof dst->enhanced);
  memcpy(dst->text, src->text, strnlen(src->text, sizeof src->text - 1) + 1);
  dst->text[sizeof dst->text - 1] = '\0';
  dst->closed = src->closed;
  dst->waited = src->waited;
  dst->tls_probe = src->tls_probe;
  dst->plain_smtp = src->plain_smtp;
  dst->why = src->why;
  dst->tls_reason = src->tls_reason;
  memcpy(dst->causes, src->causes, strnlen(src->causes, sizeof src->causes - 1) + 1);
  dst->causes[sizeof dst->causes - 1] = '\0';
  dst->refused_early = src->refused_early;
  dst->rcpts = src->rcpts;
  dst->nrcpt = src->nrcpt;
  src->rcpts = NULL;
  src->nrcpt = 0;
  result_clear(src);
}

static int transport_up(const mh_client *c) {
  mh_tr_phase ph = c->tr ? mh_transport_phase(c->tr) : MH_TR_FAILED;
  return ph == MH_TR_OPEN || ph == MH_TR_HANDSHAKE || ph == MH_TR_SECURE;
}

/* What the session (or the connection) says about the operation that just
** ended with rc, copied into r: the session moves on at once (pipelining). */
static void snapshot(mh_client *c, mh_client_result *r, int rc, int send) {
  const mh_smtp_reply *rp = mh_smtp_last_reply(c->s);
  int ours = c->fail_code && c->fail_stage;   /* a failure of the connection decides */
  result_clear(r);
  r->rc = rc;
  r->closed = c->closed || !transport_up(c) || mh_smtp_get_state(c->s) == MH_SMTP_CLOSED;
  if (mh_smtp_decided_then_closed(c->s)) r->closed = 0;   /* the replies are the outcome */
  r->code = rp->code;
  mh_smtp_strcopy(r->enhanced, sizeof r->enhanced, rp->enhanced);
  mh_smtp_strcopy(r->text, sizeof r->text, rp->text);
  r->tls_reason = "";
  if (rc < 0) {
    const char *msg = *mh_smtp_errmsg(c->s) && !ours ? mh_smtp_errmsg(c->s) : c->fail_msg;
    r->stage = ours ? c->fail_stage : *mh_smtp_stage(c->s) ? mh_smtp_stage(c->s) : "connect";
    snprintf(r->msg, sizeof r->msg, "%s", *msg ? msg : mh_strerror(rc));
    if (rc == MH_ETIMEDOUT) {
      r->waited = c->waited;
      r->tls_probe = c->waited && c->sniffed;
    }
    r->plain_smtp = c->plain_greeting;
    if (ours) {
      r->why = c->fail_why;
      r->tls_reason = c->fail_reason ? c->fail_reason : "";
      snprintf(r->causes, sizeof r->causes, "%s", c->fail_causes);
    }
  }
  if (send) {
    size_t n;
    const mh_smtp_rcpt *rr = mh_smtp_rcpts(c->s, &n);
    if (n && (r->rcpts = (mh_smtp_rcpt *)calloc(n, sizeof *r->rcpts)) != NULL) {
      for (size_t i = 0; i < n; i++) {
        r->rcpts[i] = rr[i];
        r->rcpts[i].rcpt = strdup(rr[i].rcpt ? rr[i].rcpt : "");
        if (!r->rcpts[i].rcpt) { r->nrcpt = i; return; }
      }
      r->nrcpt = n;
    }
  }
}

static send_slot *slot(mh_client *c, int i) { return &c->sends[(c->first + i) % MH_CLIENT_MAX_SENDS]; }

/* The oldest send whose outcome is not in: the one the session runs. */
static send_slot *running_send(mh_client *c) {
  for (int i = 0; i < c->nsends; i++)
    if (!slot(c, i)->done) return slot(c, i);
  return NULL;
}

static void slot_close_file(send_slot *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  free(r->held);
  r->held = NULL;
}

/* The running operation ended with rc. */
static void op_end(mh_client *c, int rc) {
  assert(c->op != OP_NONE && !c->op_done);
  snapshot(c, &c->op_res, rc, 0);
  c->op_done = 1;
  c->changed = 1;
}

/* --------------------------------------------------------- idle, active */

static void deadline_cb(uv_timer_t *t);

static void restart_deadline(mh_client *c) {
  if (!c->closed) uv_timer_start(&c->deadline, deadline_cb, c->deadline_ms, 0);
}

/* Something is asked of the connection: it keeps the process alive, and the
** deadline runs. */
static void active(mh_client *c) {
  if (c->tr) mh_transport_hold(c->tr, 1);
}

/* Between operations nothing waits on the session: its deadline stops, and
** its socket no longer keeps the loop (the process) alive — a script that
** forgets to quit still ends. */
static void go_idle(mh_client *c) {
  if (!c->closed) uv_timer_stop(&c->deadline);
  if (c->tr) mh_transport_hold(c->tr, 0);
}

/* ------------------------------------------------------------- failure */

/* A failure of the connection itself (stage NULL: the session's stage and
** message say where it was).  While the session runs it goes through the
** session, which ends what it was doing; before, it ends the operation. */
static void fail(mh_client *c, int code, const char *stage, int why, const char *reason,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail(mh_client *c, int code, const char *stage, int why, const char *reason,
                 const char *fmt, ...) {
  mh_smtp_state st = mh_smtp_get_state(c->s);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
  va_end(ap);
  c->fail_code = code;
  c->fail_stage = stage;
  c->fail_why = why;
  c->fail_reason = reason;
  if (c->tr) mh_transport_close(c->tr);
  c->timer_for = T_NONE;
  if (st != MH_SMTP_INIT && st != MH_SMTP_CLOSED) mh_smtp_error(c->s, code, c->fail_msg);
  else if (c->op != OP_NONE && !c->op_done) op_end(c, code);
}

/* What the connection waits for now, named for an administrator: "dns",
** "connect", "greeting" (connected, and not one byte from the server: with
** tls = auto, not even an answer to the ClientHello sent after greeting_wait),
** "tls" (an implicit-TLS handshake), "the TLS handshake after STARTTLS", or the
** command whose reply is due ("EHLO", "AUTH", "MAIL FROM", ...).  Recorded when
** a timeout fires, so `mailhook test` can say what never came. */
static const char *waiting_for(const mh_client *c) {
  mh_smtp_state st = mh_smtp_get_state(c->s);
  if (!c->tr || !mh_transport_resolved(c->tr)) return "dns";
  if (!mh_transport_connected(c->tr)) return "connect";
  if (mh_transport_received(c->tr) == 0 && (c->tls_mode == MH_CLIENT_TLS_AUTO || c->sniffed || st == MH_SMTP_BANNER))
    return "greeting";
  if (mh_transport_phase(c->tr) == MH_TR_HANDSHAKE || st == MH_SMTP_TLS)
    return c->tls_mode == MH_CLIENT_TLS_IMPLICIT ? "tls" : "the TLS handshake after STARTTLS";
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

/* -------------------------------------------------- session callbacks */

static void io_write(void *ud, const char *buf, size_t len) {
  mh_client *c = (mh_client *)ud;
  if (c->tr) mh_transport_write(c->tr, buf, len);
}

static void io_timer(void *ud, uint64_t ms) {
  mh_client *c = (mh_client *)ud;
  if (!c->tr) return;
  c->timer_for = ms ? T_SESSION : T_NONE;
  mh_transport_timer(c->tr, ms);
}

static void start_tls(mh_client *c) {
  mh_tls_params p = { c->host, c->verify, c->ca_file, c->fingerprint, c->min_version };
  mh_transport_start_tls(c->tr, &p);
}

/* STARTTLS was answered 220: the handshake starts now (its timer is the
** session's, for its TLS state). */
static void io_starttls(void *ud) { start_tls((mh_client *)ud); }

static void io_more(void *ud) { ((mh_client *)ud)->want_more = 1; }

static void io_done(void *ud, int rc) {
  mh_client *c = (mh_client *)ud;
  send_slot *r = running_send(c);
  if (r) {   /* a submitted send ended (they end in order) */
    snapshot(c, &r->res, rc, 1);
    r->done = 1;
    slot_close_file(r);
    c->changed = 1;
    return;
  }
  if (c->op != OP_NONE && !c->op_done) op_end(c, rc);
}

/* The next piece of the streamed message the session is sending, read from
** its file. */
static void feed_more(mh_client *c) {
  send_slot *r = running_send(c);
  char *buf = c->fbuf, *held;
  size_t want;
  ssize_t n;
  if (!r || r->fd < 0) { mh_smtp_more_error(c->s, MH_EINVAL, "no message file"); return; }
  /* the first piece: the one the pre-scan read (detached: the call below may
  ** end the send, and the slot's close would free it under the session) */
  if ((held = r->held) != NULL) {
    r->held = NULL;
    buf = held;
    n = (ssize_t)r->held_len;
  } else {
    want = r->left < sizeof c->fbuf ? (size_t)r->left : sizeof c->fbuf;
    do n = pread(r->fd, c->fbuf, want, (off_t)r->off); while (n < 0 && errno == EINTR);
    if (n < 0 || (n == 0 && want > 0)) {
      mh_smtp_more_error(c->s, n < 0 ? -errno : MH_EEOF, n < 0 ? strerror(errno) : "the file got shorter");
      return;
    }
  }
  r->off += (uint64_t)n;
  r->left -= (uint64_t)n;
  /* the previous piece left: progress, so a big message on a slow link is not
  ** cut by the session deadline (the data timer still bounds a stall) */
  restart_deadline(c);
  /* the session keeps nothing of buf (what the socket does not take at once
  ** is copied into the transport's queue) */
  mh_smtp_more(c->s, buf, (size_t)n, r->left == 0);
  free(held);
}

/* After every call into the session: what it asked for that could not be
** done from inside it. */
static void after_session(mh_client *c) {
  while (c->want_more && !c->closed) {
    c->want_more = 0;
    feed_more(c);
  }
  if (mh_smtp_get_state(c->s) == MH_SMTP_CLOSED) {
    if (c->tr) mh_transport_close(c->tr);
    if (!c->closed) uv_timer_stop(&c->deadline);
  }
}

/* At the end of a loop callback: tell the owner when something ended. */
static void tell(mh_client *c) {
  if (c->changed && !c->closed && c->notify) {
    c->changed = 0;
    c->notify(c->ud);
  }
}

/* ------------------------------------------------------ transport events */

/* implicit TLS or tls = auto's probe: the handshake, bounded by command_ms */
static void start_implicit(mh_client *c) {
  start_tls(c);
  c->timer_for = T_HANDSHAKE;
  mh_transport_timer(c->tr, c->command_ms);
}

/* The transport failed: as a failure of ours, its stage named by what it interrupted. */
static void transport_failed(mh_client *c) {
  const mh_tr_error *e = mh_transport_error(c->tr);
  const char *stage = e->phase == MH_TR_RESOLVING ? "dns" : e->phase == MH_TR_CONNECTING ? "connect"
                    : e->phase == MH_TR_HANDSHAKE ? "tls" : NULL;
  int why = MH_CLIENT_WHY_NONE;
  size_t n;
  const char *hs = mh_transport_handshake_bytes(c->tr, &n);
  if (e->phase == MH_TR_HANDSHAKE && c->tls_mode == MH_CLIENT_TLS_IMPLICIT && e->tls_why != MH_TLS_WHY_CLOSED &&
      n >= 4 && hs[0] >= '2' && hs[0] <= '5' && hs[1] >= '0' && hs[1] <= '9' && hs[2] >= '0' && hs[2] <= '9') {
    c->plain_greeting = 1;
    fail(c, MH_ETLS, "tls", MH_CLIENT_WHY_NONE, NULL, "%s:%d greets in plain text (\"%.3s ...\"): it does not "
         "speak implicit TLS on this port (use tls = starttls or auto)", c->host, c->port, hs);
    return;
  }
  /* After the 220 to STARTTLS, SMTP in plain text where the ServerHello belongs: a broken
  ** server, or a box in between that strips TLS.  A protocol violation (the session is never
  ** carried on in plain text), said in words rather than OpenSSL's "wrong version number". */
  if (e->phase == MH_TR_HANDSHAKE && mh_smtp_get_state(c->s) == MH_SMTP_TLS && e->tls_why != MH_TLS_WHY_CLOSED &&
      n >= 4 && hs[0] >= '2' && hs[0] <= '5' && hs[1] >= '0' && hs[1] <= '9' && hs[2] >= '0' && hs[2] <= '9') {
    fail(c, MH_EPROTO, "tls", MH_CLIENT_WHY_NONE, NULL, "protocol violation: after its 220 to STARTTLS, "
         "%s:%d answered the TLS handshake in plain text (\"%.3s ...\"): a broken server, or something "
         "in between that strips TLS; nothing more was sent", c->host, c->port, hs);
    return;
  }
  if (e->phase == MH_TR_HANDSHAKE && e->tls_why == MH_TLS_WHY_VERSION) why = MH_CLIENT_WHY_TLS_VERSION;
  if (e->phase == MH_TR_HANDSHAKE && e->tls_why == MH_TLS_WHY_CLOSED) why = MH_CLIENT_WHY_TLS_CLOSED;
  snprintf(c->fail_causes, sizeof c->fail_causes, "%s", e->causes);
  fail(c, e->code, stage, why, e->tls_reason, "%s", e->msg);
}

static void on_transport(void *ud, mh_tr_event ev, const char *buf, size_t len) {
  mh_client *c = (mh_client *)ud;
  c->refs++;
  switch (ev) {
    case MH_TR_CONNECTED:
      c->connected_at = uv_now(c->loop);
      if (c->tls_mode == MH_CLIENT_TLS_IMPLICIT) start_implicit(c);
      else if (c->tls_mode == MH_CLIENT_TLS_AUTO) {
        c->timer_for = T_SNIFF;
        mh_transport_timer(c->tr, c->sniff_ms);
      } else {
        mh_smtp_connected(c->s, 0);
      }
      break;
    case MH_TR_DATA:
      if (!c->greeting_ms && c->connected_at && !mh_transport_tls(c->tr)) {
        uint64_t ms = uv_now(c->loop) - c->connected_at;
        c->greeting_ms = ms ? ms : 1;
      }
      if (c->tls_mode == MH_CLIENT_TLS_AUTO && !mh_transport_tls(c->tr)) {
        /* the server spoke first: plain SMTP (an implicit-TLS server waits for us) */
        mh_transport_timer(c->tr, 0);
        c->timer_for = T_NONE;
        c->tls_mode = MH_CLIENT_TLS_STARTTLS;   /* the session's starttls param says required or not */
        mh_smtp_connected(c->s, 0);
      }
      mh_smtp_data(c->s, buf, len);
      break;
    case MH_TR_TLS_READY:
      if (c->timer_for == T_HANDSHAKE) { mh_transport_timer(c->tr, 0); c->timer_for = T_NONE; }
      if (c->tls_mode == MH_CLIENT_TLS_IMPLICIT) mh_smtp_connected(c->s, 1);
      else mh_smtp_tls_ready(c->s);
      break;
    case MH_TR_LOW:
      mh_smtp_flushed(c->s);
      break;
    case MH_TR_TIMEOUT: {
      int what = c->timer_for;
      c->timer_for = T_NONE;
      if (what == T_SNIFF) {
        /* no greeting in greeting_wait: the server waits for a ClientHello */
        c->tls_mode = MH_CLIENT_TLS_IMPLICIT;
        c->sniffed = 1;
        start_implicit(c);
      } else if (what == T_HANDSHAKE) {
        c->waited = waiting_for(c);
        if (c->sniffed && c->tr && mh_transport_received(c->tr) == 0)
          /* tls = auto heard no greeting, and its ClientHello got nothing either: said
             so (a "TLS handshake timed out" sent the administrator to certificates) */
          fail(c, MH_ETIMEDOUT, "connect", MH_CLIENT_WHY_NONE, NULL,
               "%s:%d: connected, but the server sent no greeting, nor answered a TLS handshake "
               "(timed out after %llu s): not an SMTP server, or a stuck one",
               c->host, c->port, (unsigned long long)(c->command_ms / 1000));
        else
          fail(c, MH_ETIMEDOUT, "tls", MH_CLIENT_WHY_NONE, NULL, "%s:%d: TLS handshake timed out after %llu s",
               c->host, c->port, (unsigned long long)(c->command_ms / 1000));
      } else if (what == T_SESSION && mh_smtp_get_state(c->s) != MH_SMTP_INIT) {
        c->waited = waiting_for(c);
        mh_smtp_timeout(c->s);
      }
      break;
    }
    case MH_TR_ERROR:
      transport_failed(c);
      break;
  }
  after_session(c);
  tell(c);
  c->refs--;
  if (c->refs == 0) free(c);
}

static void deadline_cb(uv_timer_t *t) {
  mh_client *c = (mh_client *)t->data;
  c->refs++;
  c->waited = waiting_for(c);
  fail(c, MH_ETIMEDOUT, NULL, MH_CLIENT_WHY_NONE, NULL, "session deadline of %llu s exceeded (server too slow)",
       (unsigned long long)(c->deadline_ms / 1000));
  after_session(c);
  tell(c);
  if (--c->refs == 0) free(c);
}

/* --------------------------------------------------------------- lifetime */

static void copy(char *dst, size_t cap, const char *src, const char *def) {
  snprintf(dst, cap, "%s", src ? src : def);
}

/* Whether src (NULL: the default) fits a buffer of cap bytes whole. */
static int fits(const char *src, size_t cap) {
  return !src || strlen(src) < cap;
}

mh_client *mh_client_new(const mh_client_params *p) {
  mh_client *c;
  mh_smtp_params sp;
  mh_smtp_io io;
  /* a cut string would be another host or another file: refused, never cut */
  if (!fits(p->host, sizeof c->host) || !fits(p->helo, sizeof c->helo) || !fits(p->ca_file, sizeof c->ca_file) ||
      !fits(p->fingerprint, sizeof c->fingerprint) || !fits(p->min_version, sizeof c->min_version)) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  if (!(c = (mh_client *)calloc(1, sizeof *c))) return NULL;
  c->loop = p->loop;
  c->notify = p->notify;
  c->ud = p->ud;
  copy(c->host, sizeof c->host, p->host, "");
  copy(c->helo, sizeof c->helo, p->helo, "localhost");
  copy(c->ca_file, sizeof c->ca_file, p->ca_file, "");
  copy(c->fingerprint, sizeof c->fingerprint, p->fingerprint, "");
  copy(c->min_version, sizeof c->min_version, p->min_version, "1.2");
  c->port = p->port;
  c->verify = p->verify;
  c->tls_mode = p->tls;
  c->connect_ms = p->connect_ms;
  c->command_ms = p->command_ms ? p->command_ms : 300000;
  c->deadline_ms = p->deadline_ms ? p->deadline_ms : 900000;
  c->sniff_ms = p->greeting_wait_ms ? p->greeting_wait_ms : 1500;
  memset(&sp, 0, sizeof sp);
  sp.helo = c->helo;
  sp.host = c->host;
  sp.port = c->port;
  sp.starttls = c->tls_mode == MH_CLIENT_TLS_STARTTLS ? 2 : c->tls_mode == MH_CLIENT_TLS_OPPORTUNISTIC ? 1
              : c->tls_mode == MH_CLIENT_TLS_AUTO ? (p->tls_required ? 2 : 1) : 0;
  sp.command_ms = c->command_ms;
  sp.data_ms = p->data_ms;
  io.ud = c;
  io.write = io_write;
  io.timer = io_timer;
  io.starttls = io_starttls;
  io.done = io_done;
  io.more = io_more;
  if (!(c->s = mh_smtp_new(&sp, &io))) { free(c); return NULL; }
  for (int i = 0; i < MH_CLIENT_MAX_SENDS; i++) c->sends[i].fd = -1;
  uv_timer_init(c->loop, &c->deadline);
  c->deadline.data = c;
  c->refs = 2;   /* the owner and the deadline timer */
  return c;
}

static void deadline_closed(uv_handle_t *h) {
  mh_client *c = (mh_client *)h->data;
  if (--c->refs == 0) free(c);
}

void mh_client_close(mh_client *c) {
  if (c->closed) return;
  c->closed = 1;
  c->op = OP_NONE;   /* an operation in progress ends unanswered: nobody waits any more */
  c->op_done = 0;
  if (c->tr) mh_transport_close(c->tr);
  uv_close((uv_handle_t *)&c->deadline, deadline_closed);
}

void mh_client_free(mh_client *c) {
  if (!c) return;
  mh_client_close(c);
  for (int i = 0; i < MH_CLIENT_MAX_SENDS; i++) {
    mh_client_result_free(&c->sends[i].res);
    slot_close_file(&c->sends[i]);
  }
  mh_client_result_free(&c->op_res);
  mh_smtp_free(c->s);
  c->s = NULL;
  mh_transport_free(c->tr);
  c->tr = NULL;
  if (--c->refs == 0) free(c);
}

/* ------------------------------------------------------------ operations */

/* A fresh record of failure (an operation, or the first send of a batch). */
static void fail_reset(mh_client *c) {
  c->fail_code = 0;
  c->fail_stage = NULL;
  c->fail_msg[0] = '\0';
  c->fail_causes[0] = '\0';
  c->fail_why = MH_CLIENT_WHY_NONE;
  c->fail_reason = NULL;
  c->waited = NULL;
}

/* An operation starts: a fresh record of failure, the connection active. */
static void begin(mh_client *c, int op) {
  assert(c->op == OP_NONE);   /* one at a time (mh_client_busy) */
  c->op = op;
  c->op_done = 0;
  fail_reset(c);
  active(c);
}

int mh_client_busy(const mh_client *c) { return c->op != OP_NONE; }
int mh_client_op_done(const mh_client *c) { return c->op != OP_NONE && c->op_done; }

void mh_client_op_take(mh_client *c, mh_client_result *out) {
  assert(mh_client_op_done(c));
  result_move(out, &c->op_res);
  c->op = OP_NONE;
  c->op_done = 0;
  if (!c->nsends) go_idle(c);
}

int mh_client_can_open(const mh_client *c) {
  return !c->tr && !c->closed && mh_smtp_get_state(c->s) == MH_SMTP_INIT;
}

void mh_client_open(mh_client *c) {
  mh_transport_params tp;
  assert(mh_client_can_open(c));   /* once */
  begin(c, OP_OPEN);
  memset(&tp, 0, sizeof tp);
  tp.loop = c->loop;
  tp.host = c->host;
  tp.port = c->port;
  tp.connect_ms = c->connect_ms;
  tp.cb = on_transport;
  tp.ud = c;
  if (!(c->tr = mh_transport_new(&tp))) {
    fail(c, MH_ENOMEM, "connect", MH_CLIENT_WHY_NONE, NULL, "out of memory");
    return;
  }
  restart_deadline(c);
  mh_transport_connect(c->tr);
}

void mh_client_auth(mh_client *c, unsigned mech, const char *user, const char *secret) {
  int rc;
  begin(c, OP_AUTH);
  restart_deadline(c);
  if ((rc = mh_smtp_auth(c->s, mech, user, secret)) < 0) op_end(c, rc);
  after_session(c);
}

int mh_client_mask(mh_client *c, const char *user, const char *secret) {
  return mh_smtp_mask(c->s, user, secret);
}

void mh_client_check_sender(mh_client *c, const char *from, const char *rcpt) {
  int rc;
  begin(c, OP_CHECK);
  restart_deadline(c);
  if ((rc = mh_smtp_check_sender(c->s, from, rcpt)) < 0) op_end(c, rc);
  after_session(c);
}

void mh_client_quit(mh_client *c) {
  int rc;
  begin(c, OP_QUIT);
  if ((rc = mh_smtp_quit(c->s)) < 0) op_end(c, rc);
  after_session(c);
}

/* ------------------------------------------------------------------ sends */

/* Does buf hold any 8-bit or NUL byte?  A plain pass (a word at a time)
** before the MIME scan: a 7-bit file, most big ones (base64 attachments),
** needs no scan at all. */
static int has8(const char *buf, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, buf + i, 8);
    /* a byte >= 0x80, or a zero byte (the classic has-zero test) */
    if ((w & 0x8080808080808080ull) || ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull)) break;
  }
  for (; i < n; i++)
    if ((unsigned char)buf[i] >= 0x80 || buf[i] == 0) return 1;
  return 0;
}

/* The message at off (size bytes) read once before it is sent, a piece at a
** time: does it need the MIME scan (mime7.h pass 1), its parts converted as
** they go?  1 when it holds a line over 998 octets (mh_mime7_longline) or a
** NUL byte (SMTP carries neither, 8BITMIME or not), or, for a server that
** would need it converted (mh_smtp_stream_scan_needed: no 8BITMIME, or no
** SMTPUTF8 for an 8-bit header), any 8-bit byte; else 0.  *head8: whether
** the header (in its first 64 KiB) holds 8-bit bytes.  The three questions
** were three reads (the header's 64 KiB, then the whole file once or twice)
** and the first piece a fourth when it was sent: the first piece read here is
** kept in r->held for the first feed (left NULL when there is no memory for
** it: that piece is read again).  A file that cannot be read whole: 1 where
** an 8-bit check was due (the scan that follows says why), else 0 (the send
** does). */
static int prescan_file(mh_client *c, send_slot *r, int fd, uint64_t off, uint64_t size, int *head8) {
  uint64_t run = 0;
  int need8 = -1;   /* unknown until the first piece is in */
  size_t first = size < sizeof c->fbuf ? (size_t)size : sizeof c->fbuf;
  char *held = first ? (char *)malloc(first) : NULL;
  *head8 = 0;
  while (size > 0) {
    size_t want = size < sizeof c->fbuf ? (size_t)size : sizeof c->fbuf;
    char *buf = need8 < 0 && held ? held : c->fbuf;
    ssize_t n;
    do n = pread(fd, buf, want, (off_t)off); while (n < 0 && errno == EINTR);
    if (n <= 0) break;
    if (need8 < 0) {
      *head8 = mh_mime7_head8(buf, (size_t)n < 65536 ? (size_t)n : 65536);
      need8 = mh_smtp_stream_scan_needed(c->s, *head8);
      if (buf == held) {
        r->held = held;
        r->held_len = (size_t)n;
        held = NULL;
      }
    }
    if (need8 ? has8(buf, (size_t)n) : memchr(buf, '\0', (size_t)n) != NULL) return 1;
    if (mh_mime7_longline(buf, (size_t)n, &run)) return 1;
    off += (uint64_t)n;
    size -= (uint64_t)n;
  }
  free(held);   /* the first read failed: nothing kept */
  if (need8 < 0) need8 = mh_smtp_stream_scan_needed(c->s, 0);
  return size > 0 && need8;
}

/* A spool file's message (from off, size bytes) scanned whole (mime7.h pass 1),
** 64 KiB at a time: for a server without 8BITMIME (or without SMTPUTF8, for a
** message whose header holds 8-bit bytes), whose pieces are then converted as
** they are sent.  One more read of the file, on the loop thread, only then.
** 0, or a negative code with err set. */
static int scan_file(mh_client *c, int fd, uint64_t off, uint64_t size, mh_mime7 **out, char *err,
                     size_t errlen) {
  mh_mime7 *m = mh_mime7_new();
  int rc = 0;
  *out = NULL;
  if (!m) { snprintf(err, errlen, "out of memory"); return MH_ENOMEM; }
  while (size > 0 && rc == 0) {
    size_t want = size < sizeof c->fbuf ? (size_t)size : sizeof c->fbuf;
    ssize_t n;
    do n = pread(fd, c->fbuf, want, (off_t)off); while (n < 0 && errno == EINTR);
    if (n <= 0) {
      rc = n < 0 ? -errno : MH_EEOF;
      snprintf(err, errlen, "reading the message: %s", n < 0 ? strerror(errno) : "the file got shorter");
      break;
    }
    rc = mh_mime7_scan(m, c->fbuf, (size_t)n);
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

int mh_client_can_submit(const mh_client *c) {
  mh_smtp_state st = mh_smtp_get_state(c->s);
  if (c->closed || !transport_up(c) || st == MH_SMTP_CLOSED) return 0;
  return c->nsends > 0 || st == MH_SMTP_READY;
}

/* The next slot, counted in; a first one starts a fresh record of failure. */
static send_slot *new_slot(mh_client *c) {
  send_slot *r;
  assert(c->nsends < MH_CLIENT_MAX_SENDS);
  r = slot(c, c->nsends);
  if (c->nsends == 0) fail_reset(c);
  c->nsends++;
  result_clear(&r->res);
  r->done = 0;
  r->fd = -1;
  free(r->held);   /* (freed when its send ended: NULL here) */
  r->held = NULL;
  return r;
}

/* A send that ended before reaching the session (refused at once). */
static void refused(send_slot *r, int rc, const char *stage, const char *msg, int closed) {
  result_clear(&r->res);
  r->done = 1;
  r->res.rc = rc;
  r->res.closed = closed;
  r->res.stage = stage;
  r->res.tls_reason = "";
  r->res.refused_early = 1;
  snprintf(r->res.msg, sizeof r->res.msg, "%s", msg);
  slot_close_file(r);
}

int mh_client_set_dsn(mh_client *c, const char *mail, const char *const *rcpt, size_t n) {
  return mh_smtp_set_dsn(c->s, mail, rcpt, n);
}

void mh_client_refuse(mh_client *c, int rc, const char *stage, const char *msg, int closed) {
  refused(new_slot(c), rc, stage, msg, closed);
}

static void submit(mh_client *c, const char *from, const char *const *rcpt, size_t n, const char *data,
                   size_t len, int fd, uint64_t off, uint64_t size) {
  send_slot *r;
  int rc, gate;
  /* the ones before it have all ended but are not collected (not settled):
  ** this one starts afresh in the session, and must be gated by hand */
  gate = c->nsends > 0;
  for (int i = 0; i < c->nsends; i++) if (!slot(c, i)->done) gate = 0;
  r = new_slot(c);
  assert(mh_client_can_submit(c));
  active(c);
  restart_deadline(c);   /* per message: a long stream of them is not one slow session */
  r->fd = fd;
  r->off = off;
  r->left = size;
  if (fd >= 0) {
    mh_mime7 *scan = NULL;
    unsigned flags = MH_SMTP_STREAM_8BIT;
    char err[300] = "";
    int head8;
    if (prescan_file(c, r, fd, off, size, &head8)) {
      if ((rc = scan_file(c, fd, off, size, &scan, err, sizeof err)) < 0) {
        /* "file": the message's spool file, not the server (session kept) */
        refused(r, rc, rc == MH_ENOMEM ? "data" : "file", err, 0);
        return;
      }
      /* the reads took their time on this thread: the timers about to be
      ** armed (the session's, the command's) count from now */
      uv_update_time(c->loop);
      restart_deadline(c);
    } else if (head8) {
      flags |= MH_SMTP_STREAM_HEAD8;
    }
    /* gated before it starts (with BDAT its data would leave with its
    ** commands); mh_smtp_send* forget the gate whatever they return */
    if (gate) mh_smtp_gate(c->s);
    rc = mh_smtp_send_stream(c->s, from, rcpt, n, size, flags, scan);
  } else {
    if (gate) mh_smtp_gate(c->s);
    rc = mh_smtp_send(c->s, from, rcpt, n, data, len);
  }
  if (rc < 0) {
    const char *stage;
    const char *msg = mh_smtp_send_error(c->s, &stage);
    /* its outcome is in at once; the ones before it are still taken first */
    refused(r, rc, *stage ? stage : "mail", *msg ? msg : mh_strerror(rc), 0);
  }
  after_session(c);
}

void mh_client_submit(mh_client *c, const char *from, const char *const *rcpt, size_t nrcpt,
                      const char *data, size_t len) {
  submit(c, from, rcpt, nrcpt, data, len, -1, 0, 0);
}

void mh_client_submit_file(mh_client *c, const char *from, const char *const *rcpt, size_t nrcpt,
                           int fd, uint64_t off, uint64_t size) {
  submit(c, from, rcpt, nrcpt, NULL, 0, fd, off, size);
}

size_t mh_client_pending(const mh_client *c) { return (size_t)c->nsends; }
int mh_client_result_ready(const mh_client *c) { return c->nsends > 0 && c->sends[c->first].done; }

void mh_client_result_take(mh_client *c, mh_client_result *out) {
  send_slot *r = &c->sends[c->first];
  assert(mh_client_result_ready(c));
  result_move(out, &r->res);
  r->done = 0;
  c->first = (c->first + 1) % MH_CLIENT_MAX_SENDS;
  c->nsends--;
  if (!c->nsends && c->op == OP_NONE) go_idle(c);
}

void mh_client_release(mh_client *c) {
  if (!c->nsends || c->sends[c->first].done || c->closed) return;
  mh_smtp_release(c->s);
  after_session(c);
}

/* ------------------------------------------------------------ what it knows */

int mh_client_alive(const mh_client *c) {
  return !c->closed && transport_up(c) && mh_smtp_get_state(c->s) == MH_SMTP_READY;
}

const mh_smtp *mh_client_session(const mh_client *c) { return c->s; }
const char *mh_client_errmsg(const mh_client *c) { return mh_smtp_errmsg(c->s); }
const char *mh_client_host(const mh_client *c) { return c->host; }
int mh_client_port(const mh_client *c) { return c->port; }
const char *mh_client_helo(const mh_client *c) { return c->helo; }
const char *mh_client_address(const mh_client *c) { return c->tr ? mh_transport_address(c->tr) : ""; }
uint64_t mh_client_received(const mh_client *c) { return c->tr ? mh_transport_received(c->tr) : 0; }
uint64_t mh_client_greeting_ms(const mh_client *c) { return c->greeting_ms; }

const char *mh_client_security(const mh_client *c) {
  if (!c->tr || !mh_transport_tls_on(c->tr)) return "none";
  return c->tls_mode == MH_CLIENT_TLS_IMPLICIT ? "implicit" : "starttls";
}

int mh_client_starttls_offered(const mh_client *c) {
  return (mh_smtp_get_caps(c->s)->flags & MH_SMTP_CAP_STARTTLS) != 0 ||
         (c->tr && mh_transport_tls_on(c->tr) && c->tls_mode != MH_CLIENT_TLS_IMPLICIT);
}

int mh_client_tls_info(const mh_client *c, mh_tls_info *out, const char **err) {
  mh_tls *t = c->tr ? mh_transport_tls(c->tr) : NULL;
  if (err) *err = "";
  if (!t) return 0;
  mh_tls_get_info(t, out);
  if (err) *err = mh_tls_error(t);
  return 1;
}
