/*
** http.c — the console's HTTP server on the service's loop: h2o (libuv
** flavour) does the protocol; this file owns the listener, the limits that
** keep a hostile or broken client from costing more than a bounded share of
** the loop, and the request objects handed to the caller (see http.h).
**
** Built into the plugin BUILD/mailhook-http.so (never into the binary or
** libmhcore.a): the binary dlopens it only when a console starts.
**
** Why each limit is enforced where it is:
**  - head and body: h2o's req_timeout is a deadline for the whole request (it
**    is not restarted by each byte), so a client that trickles a request is cut
**    after req_timeout_ms; h2o answers 413 for bodies over max_body and 400 for
**    heads over 8 KB;
**  - connections: counted here at accept; over max_conns every request gets
**    429, over twice it the socket is closed at once;
**  - rate: one token bucket for the listener, checked before the caller sees
**    the request, so a flood costs a few microseconds of C per request;
**  - readers that stop reading: h2o has no write timeout, so a sweep each
**    second shuts down a socket whose pending write made no progress for
**    stall_ms; a stream whose unsent bytes exceed max_stream_buffer is dropped;
**  - framing: h2o 2.2 frames a body by the first of two Content-Length
**    headers, lets Transfer-Encoding win over Content-Length silently, and
**    takes the last of two Host headers.  A proxy in front that chose the
**    other one would see a different request boundary (request smuggling), so
**    such a request is answered 400 and its connection closed: the bytes h2o
**    would have read as a next request are never parsed.  The check re-reads
**    the head with h2o's own parser (picohttpparser, see framing_error), and
**    also bounds the head to max_head bytes (431).
** None of these waits: the loop never blocks on a client.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <h2o.h>
#include "http.h"

/* picohttpparser, the HTTP/1 parser inside libh2o (exported by it; its header
** is not installed by libh2o-dev).  Declared as picohttpparser.h does. */
struct phr_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

typedef struct conn conn;

/* One accepted TCP connection.  The uv handle comes first: h2o's close
** callback gets the handle, which is then the conn. */
struct conn {
  uv_tcp_t tcp;                 /* owned by h2o's socket once created */
  mh_http_server *s;
  h2o_socket_t *sock;           /* h2o's socket over tcp; NULL until created */
  conn *prev, *next;            /* the server's list of open connections */
  size_t last_written;          /* bytes_written at the last sweep */
  uint64_t stuck_since;         /* uv_now when a pending write was first seen stuck; 0 */
  int shut;                     /* shutdown(2) already done (stall or close) */
};

/* The handler registered on "/" for every request. */
typedef struct {
  h2o_handler_t super;
  mh_http_server *s;
} handler_t;

/* A streamed response's generator: h2o calls proceed when the previous piece
** has been written, stop when the connection ends abruptly. */
typedef struct {
  h2o_generator_t super;
  mh_http_req *r;
} stream_gen;

struct mh_http_req {
  mh_http_server *s;
  h2o_req_t *req;               /* NULL once h2o disposed of the request (connection done) */
  int refs;                     /* h2o's (until dispose) + the caller's (until release) */
  int answered;                 /* respond() or stream() was called (or close() answered) */
  mh_http_req *prev, *next;     /* the server's requests still held by h2o */
  /* streaming */
  int streaming;                /* stream() started it */
  int sending;                  /* a piece is with h2o (until proceed) */
  int ending;                   /* end() asked: FINAL once the pending bytes left */
  int ended;                    /* FINAL was sent */
  stream_gen gen;
  char *inflight;               /* the bytes h2o is writing (kept until proceed) */
  size_t inflight_len;
  char *pending;                /* bytes written while a piece was in flight */
  size_t pending_len, pending_cap;
};

struct mh_http_server {
  h2o_globalconf_t config;      /* h2o's configuration: one host, one path "/" */
  h2o_context_t ctx;            /* h2o's per-loop state (holds uv timers: never moves) */
  h2o_accept_ctx_t accept_ctx;
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t sweep;             /* stalled writers, once a second */
  int open_handles;             /* listener + sweep not yet closed */
  mh_http_params p;
  char host[INET6_ADDRSTRLEN];  /* what p.host pointed to (the caller's string may go) */
  int port;                     /* the bound port */
  conn *conns;                  /* open connections */
  mh_http_req *reqs;            /* requests h2o still holds */
  double tokens;                /* the rate limit's bucket */
  uint64_t tokens_at;           /* uv_now of the last refill */
  mh_http_stats st;
  int closing;                  /* close() was called */
  void (*done)(void *ud);       /* close()'s callback, run once when all is closed */
  void *done_ud;
  int context_ready;            /* h2o_context_init ran (destroy must dispose it) */
};

/* ------------------------------------------------------------- requests */

static void req_unref(mh_http_req *r) {
  if (--r->refs > 0) return;
  free(r->inflight);
  free(r->pending);
  free(r);
}

static void unlink_req(mh_http_req *r) {
  if (r->prev) r->prev->next = r->next; else if (r->s->reqs == r) r->s->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* h2o cleared the request's pool: the connection is done with it. */
static void on_req_dispose(void *p) {
  mh_http_req *r = *(mh_http_req **)p;
  r->req = NULL;
  unlink_req(r);
  req_unref(r);
}

static void maybe_done(mh_http_server *s);

/* Lower-cased copy of name in the request's pool (h2o matches header names
** in lower case). */
static h2o_iovec_t lc_dup(h2o_mem_pool_t *pool, const char *name) {
  h2o_iovec_t v = h2o_strdup(pool, name, strlen(name));
  for (size_t i = 0; i < v.len; i++)
    if (v.base[i] >= 'A' && v.base[i] <= 'Z') v.base[i] = (char)(v.base[i] + 32);
  return v;
}

static void set_headers(h2o_req_t *req, const mh_http_header *h, size_t nh) {
  for (size_t i = 0; i < nh; i++) {
    h2o_iovec_t name = lc_dup(&req->pool, h[i].name);
    h2o_iovec_t value = h2o_strdup(&req->pool, h[i].value, strlen(h[i].value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
  }
}

static const char *reason_of(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

static void send_whole(h2o_req_t *req, int status, const mh_http_header *h, size_t nh,
                       const char *body, size_t len) {
  req->res.status = status;
  req->res.reason = reason_of(status);
  set_headers(req, h, nh);
  req->res.content_length = len;
  h2o_send_inline(req, body, len);
}

/* The answers of this file itself (limits, framing, shutdown): text with the
** console's security headers (a browser renders nothing active from them),
** never kept alive. */
static void send_plain(h2o_req_t *req, int status, const char *retry_after, const char *text) {
  mh_http_header h[7] = { { "Content-Type", "text/plain; charset=utf-8" },
                          { "Cache-Control", "no-store" },
                          { "X-Content-Type-Options", "nosniff" },
                          { "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'" },
                          { "X-Frame-Options", "DENY" },
                          { "Referrer-Policy", "no-referrer" },
                          { "Retry-After", retry_after } };
  req->http1_is_persistent = 0;
  send_whole(req, status, h, retry_after ? 7 : 6, text, strlen(text));
}

static int h_respond(mh_http_req *r, int status, const mh_http_header *h, size_t nh,
                     const char *body, size_t len) {
  if (!r->req) return MH_HTTP_GONE;
  if (r->answered) return MH_HTTP_BUSY;
  r->answered = 1;
  if (r->s->closing) r->req->http1_is_persistent = 0;
  send_whole(r->req, status, h, nh, body ? body : "", body ? len : 0);
  return 0;
}

/* Hands the next piece to h2o, when none is in flight.  Called by write, end
** and proceed. */
static void pump(mh_http_req *r) {
  if (!r->req || r->sending || r->ended) return;
  free(r->inflight);
  r->inflight = NULL;
  r->inflight_len = 0;
  if (r->pending_len) {
    r->inflight = r->pending;
    r->inflight_len = r->pending_len;
    r->pending = NULL;
    r->pending_len = r->pending_cap = 0;
    h2o_iovec_t buf = h2o_iovec_init(r->inflight, r->inflight_len);
    r->sending = 1;
    h2o_send(r->req, &buf, 1, r->ending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    if (r->ending) r->ended = 1;
  } else if (r->ending) {
    r->ended = 1;
    r->sending = 1;
    h2o_send(r->req, NULL, 0, H2O_SEND_STATE_FINAL);
  }
}

static void gen_proceed(h2o_generator_t *g, h2o_req_t *req) {
  mh_http_req *r = ((stream_gen *)g)->r;
  r->sending = 0;
  pump(r);
}

static void gen_stop(h2o_generator_t *g, h2o_req_t *req) {
  mh_http_req *r = ((stream_gen *)g)->r;
  r->sending = 0;
  r->ended = 1;          /* the connection ends: nothing more may be sent */
}

static int h_stream(mh_http_req *r, int status, const mh_http_header *h, size_t nh) {
  if (!r->req) return MH_HTTP_GONE;
  if (r->answered) return MH_HTTP_BUSY;
  r->answered = r->streaming = 1;
  r->gen.super.proceed = gen_proceed;
  r->gen.super.stop = gen_stop;
  r->gen.r = r;
  r->req->res.status = status;
  r->req->res.reason = reason_of(status);
  set_headers(r->req, h, nh);
  if (r->s->closing) r->req->http1_is_persistent = 0;
  h2o_start_response(r->req, &r->gen.super);
  /* the head leaves now (an EventSource opens on it), with no body yet */
  r->sending = 1;
  h2o_send(r->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
  return 0;
}

static int h_write(mh_http_req *r, const char *data, size_t len) {
  if (!r->req || r->ended) return MH_HTTP_GONE;
  if (!r->streaming || r->ending) return MH_HTTP_BUSY;
  if (!len) return 0;
  if (r->pending_len + r->inflight_len + len > r->s->p.max_stream_buffer) {
    /* the client does not read: drop it rather than grow without bound */
    h2o_socket_t *sock = r->req->conn->callbacks->get_socket ? r->req->conn->callbacks->get_socket(r->req->conn) : NULL;
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
    r->s->st.stalled++;
    return MH_HTTP_FULL;
  }
  if (r->pending_len + len > r->pending_cap) {
    size_t cap = r->pending_cap ? r->pending_cap : 4096;
    while (cap < r->pending_len + len) cap *= 2;
    char *p = realloc(r->pending, cap);
    if (!p) return UV_ENOMEM;
    r->pending = p;
    r->pending_cap = cap;
  }
  memcpy(r->pending + r->pending_len, data, len);
  r->pending_len += len;
  pump(r);
  return 0;
}

static int h_end(mh_http_req *r) {
  if (!r->req || r->ended) return MH_HTTP_GONE;
  if (!r->streaming) return MH_HTTP_BUSY;
  if (r->ending) return 0;
  r->ending = 1;
  pump(r);
  return 0;
}

static int h_alive(mh_http_req *r) { return r->req != NULL && !r->ended; }

static void h_release(mh_http_req *r) { req_unref(r); }

static const char *h_method(mh_http_req *r, size_t *len) {
  if (!r->req) { *len = 0; return ""; }
  *len = r->req->method.len;
  return r->req->method.base;
}

static const char *h_path(mh_http_req *r, size_t *len) {
  if (!r->req) { *len = 0; return ""; }
  *len = r->req->path_normalized.len;
  return r->req->path_normalized.base;
}

static const char *h_query(mh_http_req *r, size_t *len) {
  if (!r->req || r->req->query_at == SIZE_MAX) { *len = 0; return NULL; }
  *len = r->req->path.len - r->req->query_at - 1;
  return r->req->path.base + r->req->query_at + 1;
}

static const char *h_header(mh_http_req *r, const char *lc_name, size_t *len) {
  ssize_t i;
  *len = 0;
  if (!r->req) return NULL;
  if (!strcmp(lc_name, "host")) {     /* h2o moves Host into the authority */
    *len = r->req->authority.len;
    return r->req->authority.base;
  }
  i = h2o_find_header_by_str(&r->req->headers, lc_name, strlen(lc_name), -1);
  if (i < 0) return NULL;
  *len = r->req->headers.entries[i].value.len;
  return r->req->headers.entries[i].value.base;
}

static const char *h_body(mh_http_req *r, size_t *len) {
  if (!r->req || !r->req->entity.base) { *len = 0; return NULL; }
  *len = r->req->entity.len;
  return r->req->entity.base;
}

static int h_peer(mh_http_req *r, char *buf, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!r->req || !r->req->conn->callbacks->get_peername) return -1;
  sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
  if (sl == 0) return -1;
  if (ss.ss_family == AF_INET) return uv_ip4_name((struct sockaddr_in *)&ss, buf, len) ? -1 : 0;
  if (ss.ss_family == AF_INET6) return uv_ip6_name((struct sockaddr_in6 *)&ss, buf, len) ? -1 : 0;
  return -1;
}

/* ---------------------------------------------------------------- limits */

/* Case-insensitive name match of a parsed header. */
static int name_is(const struct phr_header *h, const char *lc) {
  size_t n = strlen(lc);
  if (!h->name || h->name_len != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = h->name[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != lc[i]) return 0;
  }
  return 1;
}

/* Why the request's framing is ambiguous (see the file's comment), or NULL.
** h2o hands the request over with its raw head still at the start of the
** socket's input buffer (it consumes the bytes once the response is done), so
** the head is parsed again here by the same parser h2o used: what is counted
** is exactly what h2o saw.  *status is 400, or 431 for a head over max_head. */
static const char *framing_error(mh_http_server *s, h2o_req_t *req, int *status) {
  struct phr_header hs[H2O_MAX_HEADERS];
  size_t nh = H2O_MAX_HEADERS, ml, pl;
  const char *m, *p;
  int minor, len, cl = 0, te = 0, host = 0;
  h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
  *status = 400;
  if (!sock || !sock->input || !sock->input->size) return "the request's head cannot be read again";
  len = phr_parse_request(sock->input->bytes, sock->input->size, &m, &ml, &p, &pl, &minor, hs, &nh, 0);
  if (len < 0) return "the request's head cannot be parsed again";
  /* the head found must be this request's (never a later pipelined one) */
  if (ml != req->method.len || memcmp(m, req->method.base, ml) != 0 ||
      pl != req->path.len || memcmp(p, req->path.base, pl) != 0)
    return "the request's head cannot be found again";
  if ((size_t)len > s->p.max_head) { *status = 431; return "request head too large"; }
  for (size_t i = 0; i < nh; i++) {
    if (!hs[i].name) return "obsolete header line folding";
    if (name_is(&hs[i], "content-length")) cl++;
    else if (name_is(&hs[i], "transfer-encoding")) te++;
    else if (name_is(&hs[i], "host")) host++;
  }
  if (cl > 1) return "more than one Content-Length";
  if (te > 1) return "more than one Transfer-Encoding";
  if (cl && te) return "both Content-Length and Transfer-Encoding";
  if (host > 1) return "more than one Host";
  return NULL;
}

/* One token for this request, or 0 when the bucket is empty. */
static int take_token(mh_http_server *s) {
  uint64_t now = uv_now(s->loop);
  s->tokens += (double)(now - s->tokens_at) / 1000.0 * s->p.rate;
  s->tokens_at = now;
  if (s->tokens > s->p.burst) s->tokens = s->p.burst;
  if (s->tokens < 1.0) return 0;
  s->tokens -= 1.0;
  return 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  mh_http_server *s = ((handler_t *)self)->s;
  mh_http_req *r;
  mh_http_req **slot;
  if (s->closing) {
    send_plain(req, 503, NULL, "the service is stopping\n");
    return 0;
  }
  if (s->st.connections > s->p.max_conns || !take_token(s)) {
    s->st.limited++;
    send_plain(req, 429, "1", "too many requests: try again in a second\n");
    return 0;
  }
  {
    int status;
    const char *why = framing_error(s, req, &status);
    if (why) {
      char text[128];
      s->st.malformed++;
      snprintf(text, sizeof text, "bad request: %s\n", why);
      send_plain(req, status, NULL, text);     /* and the connection closes */
      return 0;
    }
  }
  r = calloc(1, sizeof *r);
  if (!r) {
    send_plain(req, 503, "1", "out of memory\n");
    return 0;
  }
  slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_req_dispose);
  *slot = r;
  r->s = s;
  r->req = req;
  r->refs = 2;                   /* h2o's (dropped by on_req_dispose) and the caller's */
  r->next = s->reqs;
  if (s->reqs) s->reqs->prev = r;
  s->reqs = r;
  s->st.requests++;
  s->p.on_request(s->p.ud, r);
  return 0;
}

/* ----------------------------------------------------------- connections */

static void unlink_conn(conn *c) {
  mh_http_server *s = c->s;
  if (c->prev) c->prev->next = c->next; else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
}

/* The uv handle of a connection is closed (by h2o, or here before h2o had it). */
static void conn_closed(uv_handle_t *h) {
  conn *c = (conn *)h;
  mh_http_server *s = c->s;
  unlink_conn(c);
  s->st.connections--;
  free(c);
  maybe_done(s);
}

static void shut(conn *c, int how) {
  int fd = c->sock ? h2o_socket_get_fd(c->sock) : -1;
  if (fd >= 0) shutdown(fd, how);
}

static void on_accept(uv_stream_t *listener, int status) {
  mh_http_server *s = (mh_http_server *)listener->data;
  conn *c;
  if (status < 0 || s->closing) return;
  c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->st.connections++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    return;
  }
  s->st.accepted++;
  if (s->st.connections > 2 * (uint64_t)s->p.max_conns) {
    s->st.refused++;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed);
  h2o_accept(&s->accept_ctx, c->sock);
}

/* Once a second: a socket whose pending write made no progress for stall_ms
** belongs to a client that stopped reading; shutting it down fails the write,
** and h2o closes the connection through its usual path. */
static void on_sweep(uv_timer_t *t) {
  mh_http_server *s = (mh_http_server *)t->data;
  uint64_t now = uv_now(s->loop);
  for (conn *c = s->conns; c; c = c->next) {
    if (!c->sock || c->shut) continue;
    if (h2o_socket_is_writing(c->sock) && c->sock->bytes_written == c->last_written) {
      if (!c->stuck_since) c->stuck_since = now;
      else if (now - c->stuck_since >= s->p.stall_ms) {
        c->shut = 1;
        s->st.stalled++;
        shut(c, SHUT_RDWR);
      }
    } else {
      c->stuck_since = 0;
    }
    c->last_written = c->sock->bytes_written;
  }
}

/* --------------------------------------------------------------- server */

/* uv_walk: every handle that exists right after h2o_context_init and did not
** before is h2o's (its timers, its inter-thread queue): unref'd, so they do
** not keep a service's loop running once its work is done. */
typedef struct { uv_handle_t **list; size_t n, cap; int collect; } walk_t;

static void walk_cb(uv_handle_t *h, void *arg) {
  walk_t *w = (walk_t *)arg;
  if (w->collect) {
    if (w->n == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 64;
      uv_handle_t **l = realloc(w->list, cap * sizeof *l);
      if (!l) return;
      w->list = l;
      w->cap = cap;
    }
    w->list[w->n++] = h;
    return;
  }
  for (size_t i = 0; i < w->n; i++)
    if (w->list[i] == h) return;
  uv_unref(h);
}

static void handle_closed(uv_handle_t *h) {
  mh_http_server *s = (mh_http_server *)h->data;
  s->open_handles--;
  maybe_done(s);
}

static void maybe_done(mh_http_server *s) {
  if (!s->closing || s->open_handles > 0 || s->conns) return;
  if (s->done) {
    void (*done)(void *) = s->done;
    s->done = NULL;
    done(s->done_ud);
  }
}

static void free_on_close(uv_handle_t *h) { free(h->data); }

static int h_listen(uv_loop_t *loop, const mh_http_params *p, mh_http_server **out,
                    char *err, size_t errlen) {
  mh_http_server *s;
  h2o_hostconf_t *host;
  h2o_pathconf_t *path;
  handler_t *handler;
  struct sockaddr_storage addr;
  walk_t w = { NULL, 0, 0, 1 };
  int rc, namelen;

  *out = NULL;
  if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&addr) != 0) {
    snprintf(err, errlen, "'%s' is not a numeric IPv4 or IPv6 address", p->host);
    return UV_EINVAL;
  }
  if (!(s = calloc(1, sizeof *s))) return snprintf(err, errlen, "out of memory"), UV_ENOMEM;
  s->loop = loop;
  s->p = *p;
  snprintf(s->host, sizeof s->host, "%s", p->host);
  s->p.host = s->host;
  s->tokens = p->burst;
  s->tokens_at = uv_now(loop);

  /* the socket first: nothing of h2o exists yet if it fails */
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) == 0)
    rc = uv_listen((uv_stream_t *)&s->listener, 128, on_accept);
  if (rc == 0) {
    namelen = sizeof addr;
    rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &namelen);
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on %s port %d: %s", p->host, p->port, uv_strerror(rc));
    uv_close((uv_handle_t *)&s->listener, free_on_close);   /* frees s */
    return rc;
  }
  s->port = addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&addr)->sin_port);
  s->open_handles++;
  uv_unref((uv_handle_t *)&s->listener);

  h2o_config_init(&s->config);
  s->config.server_name = h2o_iovec_init(H2O_STRLIT("mailhook"));
  s->config.max_request_entity_size = p->max_body;
  s->config.http1.req_timeout = p->req_timeout_ms;
  s->config.http1.upgrade_to_http2 = 0;      /* HTTP/1.1 only: the limits here are per request */
  host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  path = h2o_config_register_path(host, "/", 0);
  handler = (handler_t *)h2o_create_handler(path, sizeof *handler);
  handler->super.on_req = on_req;
  handler->s = s;

  uv_walk(loop, walk_cb, &w);
  h2o_context_init(&s->ctx, loop, &s->config);
  s->context_ready = 1;
  w.collect = 0;
  uv_walk(loop, walk_cb, &w);
  free(w.list);
  s->accept_ctx.ctx = &s->ctx;
  s->accept_ctx.hosts = s->config.hosts;

  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  s->open_handles++;
  uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
  uv_unref((uv_handle_t *)&s->sweep);
  *out = s;
  return 0;
}

static int h_address(mh_http_server *s, char *host, size_t hostlen, int *port) {
  snprintf(host, hostlen, "%s", s->host);
  *port = s->port;
  return 0;
}

static void h_stats(mh_http_server *s, mh_http_stats *st) { *st = s->st; }

static void h_close(mh_http_server *s, void (*done)(void *ud), void *ud) {
  if (s->closing) {                 /* already closing (or failed to listen) */
    if (!s->done) { s->done = done; s->done_ud = ud; }
    maybe_done(s);
    return;
  }
  s->closing = 1;
  s->done = done;
  s->done_ud = ud;
  uv_close((uv_handle_t *)&s->listener, handle_closed);
  uv_timer_stop(&s->sweep);
  uv_close((uv_handle_t *)&s->sweep, handle_closed);
  /* requests the caller still owes an answer: 503, or the end of their stream */
  for (mh_http_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    if (!r->req) continue;
    r->req->http1_is_persistent = 0;
    if (!r->answered) {
      r->answered = 1;
      send_plain(r->req, 503, NULL, "the service is stopping\n");
    } else if (r->streaming && !r->ending) {
      r->ending = 1;
      pump(r);
    }
  }
  /* every socket is shut down: an idle connection or a request still
     arriving ends at once (EOF); bytes already handed to the kernel (the
     answers above) still reach the client before the FIN; a write the
     client never reads fails.  h2o then closes each through its own path. */
  for (conn *c = s->conns; c; c = c->next) { c->shut = 1; shut(c, SHUT_RDWR); }
  maybe_done(s);
}

static void h_destroy(mh_http_server *s) {
  if (!s) return;
  if (!s->closing) h_close(s, NULL, NULL);
  if (s->conns || s->open_handles) return;   /* still closing at exit: left to the OS (h2o
                                                asserts its timers are idle when disposed) */
  if (s->context_ready) h2o_context_dispose(&s->ctx);   /* runs the loop once (not running now) */
  h2o_config_dispose(&s->config);
  free(s);
}

static const mh_http_api api = {
  MH_HTTP_API_VERSION, h_listen, h_address, h_stats, h_close, h_destroy,
  h_method, h_path, h_query, h_header, h_body, h_peer,
  h_respond, h_stream, h_write, h_end, h_alive, h_release,
};

const mh_http_api *mh_http_api_v1(void) { return &api; }
