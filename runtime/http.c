/*
** http.c — the console's HTTP/1.1 server, directly on the service's libuv
** loop: the listener, the connections, the limits that keep a hostile or
** broken client from costing more than a bounded share of the loop, the
** answers, and the request objects handed to the caller (see http.h).  The
** bytes of a request are parsed by httpparse.c (strict: see its header).
**
** One request at a time per connection: the next pipelined one is parsed only
** once the previous answer has been handed to the kernel, so answers go out in
** order and a client that pipelines without reading holds one answer's memory.
**
** Why each limit is enforced where it is:
**  - head and body: the parser bounds the head (414 in the request line, 431) and refuses a body over
**    max_body from its Content-Length before reading it (413); a deadline,
**    set when a connection is ready for its next request and not moved by any
**    byte, cuts a client that trickles a request or idles (req_timeout_ms);
**  - connections: counted at accept; over max_conns the one waiting longest
**    for a request is ended (slowloris), and when every one is busy with a
**    request, every new request gets 429; over twice it the socket is closed
**    at once;
**  - rate: token buckets (one for requests carrying a trusted credential,
**    one for the rest), checked before the caller sees the request, so a
**    flood costs a few microseconds of C per request; the caller's open
**    routes (the login page, its assets, the login itself, limited by the
**    caller's count of failures) take no token: a 429 costs what they cost;
**  - readers that stop reading: a sweep (at most each second) closes a
**    connection whose unsent bytes made no progress for stall_ms; a stream
**    with more than max_stream_buffer bytes unsent is dropped at once;
**  - framing: anything two readers could frame differently is refused by the
**    parser; the answer closes the connection, so no byte after it is read as
**    a request.  A connection that ends after an answer is shut down for
**    writing and its input read and dropped for up to LINGER_MS, so a client
**    still sending a refused body reads the answer instead of a reset.
** Nothing here waits: the loop never blocks on a client.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include "http.h"
#include "httpparse.h"

#define IN_CAP 16384             /* bytes read ahead of the parser (pipelined requests) */
#define LINGER_MS 2000           /* input dropped this long after a closing answer */
#define CLOSE_MS 2000            /* close(): connections still open after this are cut */

typedef struct conn conn;

/* Where a connection is in its life. */
enum {
  C_READ,                       /* reading a request (or idle between requests) */
  C_WAIT,                       /* a request is with the caller; its answer not complete */
  C_NEXT,                       /* answered; waiting for the answer's bytes to reach the kernel */
  C_LINGER                      /* the last answer is out: shutting down, dropping input */
};

/* One accepted TCP connection.  The uv handle comes first: the close
** callback gets the handle, which is then the conn. */
struct conn {
  uv_tcp_t tcp;
  uv_shutdown_t shutdown;       /* the write side's end, after the last answer */
  mh_http_server *s;
  conn *prev, *next;            /* the server's list of open connections */
  int phase;                    /* C_READ ... */
  mh_hp hp;                     /* the request being read */
  char in[IN_CAP];              /* bytes read and not yet parsed */
  size_t in_len;
  mh_http_req *cur;             /* the request with the caller (C_WAIT) */
  int keep;                     /* the connection serves another request after this answer */
  int reading;                  /* uv_read_start is in effect */
  int peer_eof;                 /* the client closed its sending side */
  int trusted_body;             /* its head is in, carrying a trusted credential (api trust),
                                   and its body is arriving: never evicted (evict_waiting) */
  int closing;                  /* uv_close was called */
  int writes;                   /* uv_write requests not completed */
  uint64_t deadline;            /* uv_now by which the next request must be whole (C_READ) */
  uint64_t linger_until;        /* C_LINGER: close at this uv_now (0: not yet shut down) */
  uint64_t submitted;           /* bytes handed to uv_write */
  uint64_t last_sent;           /* bytes the kernel had taken at the last sweep */
  uint64_t stuck_since;         /* uv_now since when unsent bytes made no progress; 0 */
  char peer[INET6_ADDRSTRLEN];  /* the client's address, for peer() */
};

struct mh_http_req {
  mh_http_server *s;
  conn *c;                      /* NULL once the answer is out or the connection gone */
  mh_hp_req *hp;                /* the parsed request (owned) */
  int refs;                     /* the connection's (until the answer is out) + the caller's */
  int answered;                 /* respond() or stream() was called */
  int streaming;                /* stream() started a body of pieces */
  int chunked;                  /* the pieces are framed as chunks (HTTP/1.1) */
  int ended;                    /* the stream's end was sent */
  char peer[INET6_ADDRSTRLEN];
};

/* One uv_write with its bytes. */
typedef struct {
  uv_write_t w;
  conn *c;
  char data[];
} wblock;

struct mh_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t sweep;             /* deadlines, lingering and stalled writers */
  int open_handles;             /* listener + sweep not yet closed */
  int sweep_closed;             /* uv_close(sweep) was called */
  mh_http_params p;
  char host[INET6_ADDRSTRLEN];  /* what p.host pointed to (the caller's string may go) */
  char json_prefix[64];         /* what p.json_prefix pointed to ("": none) */
  int port;                     /* the bound port */
  conn *conns;                  /* open connections */
  uint64_t live;                /* of which not closing: what the limits count (a burst
                                   of connections ended for others must not fill them) */
  double tokens;                /* the rate limit's bucket */
  uint64_t tokens_at;           /* uv_now of the last refill */
  double ttokens;               /* the bucket of requests carrying a trusted credential */
  uint64_t ttokens_at;
  char trust_cookie[64];        /* p.trust_cookie ("": none) */
  char open[MH_HTTP_OPEN][MH_HTTP_OPEN_LEN];  /* p.open's entries ("" ends them) */
  char trusted[MH_HTTP_TRUSTED][MH_HTTP_TRUST_LEN];
  size_t trusted_len[MH_HTTP_TRUSTED];   /* 0: a free place */
  mh_http_stats st;
  int closing;                  /* close() was called */
  uint64_t close_by;            /* close(): connections still open then are cut */
  void (*done)(void *ud);       /* close()'s callback, run once when all is closed */
  void *done_ud;
};

static void close_conn(conn *c);
static void process(conn *c);
static void maybe_done(mh_http_server *s);

/* ------------------------------------------------------------- writing */

static const char *reason_of(int status) {
  switch (status) {
  case 100: return "Continue";
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
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

static void on_written(uv_write_t *w, int status) {
  wblock *b = (wblock *)w;
  conn *c = b->c;
  free(b);
  c->writes--;
  if (c->closing) return;
  if (status < 0) { close_conn(c); return; }
  if (c->phase == C_NEXT && c->writes == 0) {
    /* the answer is with the kernel: the next request (from the loop, never
       from inside the caller's respond) */
    c->phase = C_READ;
    c->deadline = uv_now(c->s->loop) + c->s->p.req_timeout_ms;
    process(c);
  }
}

/* Hands len bytes (copied) to the kernel, in order after earlier ones. */
static int put(conn *c, const char *data, size_t len) {
  wblock *b;
  uv_buf_t buf;
  int rc;
  if (c->closing) return MH_HTTP_GONE;
  if (!(b = malloc(sizeof *b + (len ? len : 1)))) { close_conn(c); return UV_ENOMEM; }
  memcpy(b->data, data, len);
  b->c = c;
  buf = uv_buf_init(b->data, (unsigned)len);
  if ((rc = uv_write(&b->w, (uv_stream_t *)&c->tcp, &buf, 1, on_written)) != 0) {
    free(b);
    close_conn(c);
    return MH_HTTP_GONE;
  }
  c->writes++;
  c->submitted += len;
  return 0;
}

/* A growing byte string for a head. */
typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->len + n) cap *= 2;
    if (!(p = realloc(b->p, cap))) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static int name_is(const char *name, const char *lc) {
  size_t i;
  for (i = 0; name[i] && lc[i]; i++) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != lc[i]) return 0;
  }
  return !name[i] && !lc[i];
}

/* A header field the caller gives must not split the answer. */
static int bad_field(const char *s) { return !s || strpbrk(s, "\r\n") != NULL; }

/* The head of an answer: status line, the caller's fields (not the framing
** ones: those are this file's), the framing, the end.  how: 0 = Content-Length
** len, 1 = chunked, 2 = no length (until close), 3 = none at all (204, 304). */
static void build_head(sbuf *b, int status, const mh_http_header *h, size_t nh, int how, size_t len,
                       int keep, int minor) {
  char line[128];
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_of(status));
  sb_str(b, line);
  if (gmtime_r(&now, &tm) && strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm))
    sb_str(b, date);
  for (size_t i = 0; i < nh; i++) {
    if (name_is(h[i].name, "content-length") || name_is(h[i].name, "transfer-encoding") ||
        name_is(h[i].name, "connection"))
      continue;
    sb_str(b, h[i].name);
    sb_add(b, ": ", 2);
    sb_str(b, h[i].value);
    sb_add(b, "\r\n", 2);
  }
  if (how == 0) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", len);
    sb_str(b, line);
  } else if (how == 1) {
    sb_str(b, "Transfer-Encoding: chunked\r\n");
  }
  if (!keep) sb_str(b, "Connection: close\r\n");
  else if (minor == 0) sb_str(b, "Connection: keep-alive\r\n");
  sb_add(b, "\r\n", 2);
}

/* The connection's last answer is queued: shut down the write side once it is
** out, then drop the client's input for LINGER_MS (see the file's comment). */
static void on_shutdown(uv_shutdown_t *sr, int status) {
  conn *c = (conn *)sr->handle;
  if (c->closing) return;
  if (status < 0 || c->peer_eof || c->s->closing) { close_conn(c); return; }
  c->linger_until = uv_now(c->s->loop) + LINGER_MS;
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void start_reading(conn *c) {
  if (c->reading || c->closing || c->peer_eof) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc_in, on_read) == 0) c->reading = 1;
}

static void stop_reading(conn *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

static void linger(conn *c) {
  if (c->closing || c->phase == C_LINGER) return;
  c->phase = C_LINGER;
  c->deadline = 0;
  c->in_len = 0;
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) { close_conn(c); return; }
  start_reading(c);
}

/* The current answer is queued: the connection goes on to its next request
** (once the bytes are out, on_written) or ends. */
static void answer_queued(conn *c) {
  mh_http_req *r = c->cur;
  if (r) {
    c->cur = NULL;
    r->c = NULL;
    if (--r->refs == 0) { mh_hp_req_free(r->hp); free(r); }
  }
  if (c->closing) return;
  if (!c->keep || c->peer_eof || c->s->closing) { linger(c); return; }
  c->phase = C_NEXT;
  if (c->writes == 0) {            /* nothing was written (cannot happen): go on now */
    c->phase = C_READ;
    c->deadline = uv_now(c->s->loop) + c->s->p.req_timeout_ms;
  }
}

/* Whether req (whole, or the part read before it was refused: maybe no path
** yet) is for a path under the server's json_prefix.  The decoded path when
** the parser got that far, else the target as sent in the request line (a
** head too large, a malformed line after the target). */
static int wants_json(const mh_http_server *s, const mh_hp_req *req) {
  size_t n = strlen(s->json_prefix), i = 0, end;
  const char *t;
  if (!n || !req) return 0;
  if (req->path) return req->path_len >= n && memcmp(req->path, s->json_prefix, n) == 0;
  if (!req->head) return 0;
  while (i < req->head_len && req->head[i] != ' ' && req->head[i] != '\r') i++;
  if (i >= req->head_len || req->head[i] != ' ') return 0;
  t = req->head + ++i;
  for (end = i; end < req->head_len && req->head[end] != ' ' && req->head[end] != '\r'; end++) {}
  if (end - i > 7 && strncasecmp(t, "http://", 7) == 0) {     /* absolute form: skip the authority */
    const char *slash = memchr(t + 7, '/', end - i - 7);
    if (!slash) return 0;
    i += (size_t)(slash - t);
    t = slash;
  }
  return end - i >= n && memcmp(t, s->json_prefix, n) == 0;
}

/* The body of this file's own answers to a JSON path: {"ok":false,"error":
** TEXT} and a newline, as the console's own errors (one shape for curl | jq
** and the page); text without its final newline, escaped. */
static void json_error(sbuf *b, const char *text) {
  static const char hex[] = "0123456789abcdef";
  size_t len = strlen(text);
  if (len && text[len - 1] == '\n') len--;
  sb_str(b, "{\"ok\":false,\"error\":\"");
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '"' || ch == '\\') {
      char esc[2] = { '\\', (char)ch };
      sb_add(b, esc, 2);
    } else if (ch < 0x20 || ch == 0x7f) {
      char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
      sb_add(b, esc, 6);
    } else {
      sb_add(b, (const char *)&ch, 1);
    }
  }
  sb_str(b, "\"}\n");
}

/* This file's own answers (limits, refusals, shutdown) to req (NULL when
** none was read): with the console's security headers (a browser renders
** nothing active from them), JSON to a path under json_prefix (wants_json),
** else text; the connection ends after it. */
static void answer_own(conn *c, const mh_hp_req *req, int head_only, int status, const char *retry_after,
                         const char *text) {
  int json = wants_json(c->s, req);
  mh_http_header h[7] = { { "Content-Type", json ? "application/json" : "text/plain; charset=utf-8" },
                          { "Cache-Control", "no-store" },
                          { "X-Content-Type-Options", "nosniff" },
                          { "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'" },
                          { "X-Frame-Options", "DENY" },
                          { "Referrer-Policy", "no-referrer" },
                          { "Retry-After", retry_after } };
  sbuf body = { 0 }, b = { 0 };
  if (json) json_error(&body, text); else sb_str(&body, text);
  c->keep = 0;
  build_head(&b, status, h, retry_after ? 7 : 6, 0, body.len, 0, 1);
  if (!head_only) sb_add(&b, body.p, body.len);
  if (b.oom || body.oom) { free(b.p); free(body.p); close_conn(c); return; }
  put(c, b.p, b.len);
  free(b.p);
  free(body.p);
}

/* ------------------------------------------------------------- requests */

static void req_unref(mh_http_req *r) {
  if (--r->refs > 0) return;
  mh_hp_req_free(r->hp);
  free(r);
}

static int h_respond(mh_http_req *r, int status, const mh_http_header *h, size_t nh,
                     const char *body, size_t len) {
  conn *c = r->c;
  sbuf b = { 0 };
  int none, rc;
  if (!c || c->closing) return MH_HTTP_GONE;
  if (r->answered) return MH_HTTP_BUSY;
  for (size_t i = 0; i < nh; i++)
    if (bad_field(h[i].name) || bad_field(h[i].value)) return UV_EINVAL;
  r->answered = 1;
  if (r->s->closing || c->peer_eof) c->keep = 0;
  none = (status >= 100 && status < 200) || status == 204 || status == 304;
  build_head(&b, status, h, nh, none ? 3 : 0, body ? len : 0, c->keep, r->hp->minor);
  if (!none && !r->hp->is_head && body) sb_add(&b, body, len);
  if (b.oom) { free(b.p); close_conn(c); return UV_ENOMEM; }
  rc = put(c, b.p, b.len);
  free(b.p);
  if (rc == 0) answer_queued(c);
  return rc;
}

static int h_stream(mh_http_req *r, int status, const mh_http_header *h, size_t nh) {
  conn *c = r->c;
  sbuf b = { 0 };
  int rc;
  if (!c || c->closing) return MH_HTTP_GONE;
  if (r->answered) return MH_HTTP_BUSY;
  for (size_t i = 0; i < nh; i++)
    if (bad_field(h[i].name) || bad_field(h[i].value)) return UV_EINVAL;
  r->answered = r->streaming = 1;
  if (r->s->closing || c->peer_eof) c->keep = 0;
  if (r->hp->is_head) {            /* the head alone: the answer is complete */
    build_head(&b, status, h, nh, 1, 0, c->keep, r->hp->minor);
    r->ended = 1;
  } else if (r->hp->minor == 1) {
    r->chunked = 1;
    build_head(&b, status, h, nh, 1, 0, c->keep, 1);
  } else {                          /* HTTP/1.0: no chunks; the body ends with the connection */
    c->keep = 0;
    build_head(&b, status, h, nh, 2, 0, 0, 0);
  }
  if (b.oom) { free(b.p); close_conn(c); return UV_ENOMEM; }
  rc = put(c, b.p, b.len);         /* the head leaves now (an EventSource opens on it) */
  free(b.p);
  if (rc == 0 && r->ended) answer_queued(c);
  return rc;
}

static int h_write(mh_http_req *r, const char *data, size_t len) {
  conn *c = r->c;
  char size[24];
  sbuf b = { 0 };
  int rc;
  if (!c || c->closing || r->ended) return MH_HTTP_GONE;
  if (!r->streaming) return MH_HTTP_BUSY;
  if (!len) return 0;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + len > r->s->p.max_stream_buffer) {
    /* the client does not read: drop it rather than grow without bound */
    r->s->st.stalled++;
    close_conn(c);
    return MH_HTTP_FULL;
  }
  if (r->chunked) {
    snprintf(size, sizeof size, "%zx\r\n", len);
    sb_str(&b, size);
    sb_add(&b, data, len);
    sb_add(&b, "\r\n", 2);
    if (b.oom) { free(b.p); close_conn(c); return UV_ENOMEM; }
    rc = put(c, b.p, b.len);
    free(b.p);
    return rc;
  }
  return put(c, data, len);
}

static int h_end(mh_http_req *r) {
  conn *c = r->c;
  int rc = 0;
  if (!c || c->closing || r->ended) return MH_HTTP_GONE;
  if (!r->streaming) return MH_HTTP_BUSY;
  r->ended = 1;
  if (r->chunked) rc = put(c, "0\r\n\r\n", 5);
  if (rc == 0) answer_queued(c);
  return rc;
}

static int h_alive(mh_http_req *r) { return r->c != NULL && !r->c->closing; }

/* The caller is done: a stream it did not end is ended now (nobody will
** write to it again; left open it would hold the connection until the
** client leaves). */
static void h_release(mh_http_req *r) {
  if (r->c && r->streaming && !r->ended) h_end(r);
  req_unref(r);
}

static const char *h_method(mh_http_req *r, size_t *len) {
  *len = r->hp->method_len;
  return r->hp->method;
}

static const char *h_path(mh_http_req *r, size_t *len) {
  *len = r->hp->path_len;
  return r->hp->path;
}

static const char *h_query(mh_http_req *r, size_t *len) {
  *len = r->hp->query_len;
  return r->hp->query;
}

static const char *h_header(mh_http_req *r, const char *lc_name, size_t *len) {
  return mh_hp_header(r->hp, lc_name, len);
}

static const char *h_body(mh_http_req *r, size_t *len) {
  *len = r->hp->body ? r->hp->content_length : 0;
  return r->hp->body;
}

static int h_peer(mh_http_req *r, char *buf, size_t len) {
  if (!r->peer[0] || strlen(r->peer) >= len) return -1;
  memcpy(buf, r->peer, strlen(r->peer) + 1);
  return 0;
}

/* ----------------------------------------------------------- reading */

/* One token of a bucket for this request, or 0 when it is empty. */
static int take_token(mh_http_server *s, double *tokens, uint64_t *at) {
  uint64_t now = uv_now(s->loop);
  *tokens += (double)(now - *at) / 1000.0 * s->p.rate;
  *at = now;
  if (*tokens > s->p.burst) *tokens = s->p.burst;
  if (*tokens < 1.0) return 0;
  *tokens -= 1.0;
  return 1;
}

/* v (n bytes) is one of the trusted keys; every key is compared whole, so
** the time says nothing about where a guess differs. */
static int is_trusted(const mh_http_server *s, const char *v, size_t n) {
  int hit = 0;
  if (n == 0 || n > MH_HTTP_TRUST_LEN) return 0;
  for (int k = 0; k < MH_HTTP_TRUSTED; k++) {
    unsigned char d = 0;
    if (s->trusted_len[k] != n) continue;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(s->trusted[k][i] ^ v[i]);
    hit |= d == 0;
  }
  return hit;
}

/* Whether req carries a credential the caller holds live (api trust): the
** trust cookie's value in any Cookie line, or a bearer token.  A flood of
** requests without one (nobody logged in needed) used to empty the one
** bucket, and every request of the administrator's page got 429 for as long
** as it lasted. */
static int carries_trusted(const mh_http_server *s, const mh_hp_req *req) {
  size_t cn = strlen(s->trust_cookie);
  int looked = 0;                        /* trust cookie values compared: at most 4 (a head
                                            of 600 of them must not cost each request more) */
  for (size_t i = 0; i < req->nfields; i++) {
    const mh_hp_field *f = &req->fields[i];
    const char *v = f->value, *end = f->value + f->value_len;
    if (f->dup) continue;                /* its value is in the first line's (httpparse.h) */
    if (f->name_len == 13 && strncasecmp(f->name, "authorization", 13) == 0) {
      if (f->value_len > 7 && strncasecmp(v, "bearer ", 7) == 0) {
        v += 7;
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        if (is_trusted(s, v, (size_t)(end - v))) return 1;
      }
    } else if (cn && f->name_len == 6 && strncasecmp(f->name, "cookie", 6) == 0) {
      while (v < end) {                  /* name=value; name=value */
        const char *semi = memchr(v, ';', (size_t)(end - v)), *eq, *e;
        if (!semi) semi = end;
        while (v < semi && (*v == ' ' || *v == '\t')) v++;
        e = semi;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
        eq = memchr(v, '=', (size_t)(e - v));
        if (eq && (size_t)(eq - v) == cn && memcmp(v, s->trust_cookie, cn) == 0) {
          if (is_trusted(s, eq + 1, (size_t)(e - eq - 1))) return 1;
          if (++looked == 4) return 0;
        }
        v = semi + 1;
      }
    }
  }
  return 0;
}

static int h_trust(mh_http_server *s, const char *key, size_t len, int on) {
  int k, free_at = -1;
  if (len == 0 || len > MH_HTTP_TRUST_LEN) return -1;
  for (k = 0; k < MH_HTTP_TRUSTED; k++) {
    if (s->trusted_len[k] == len && memcmp(s->trusted[k], key, len) == 0) {
      if (!on) s->trusted_len[k] = 0;
      return 0;
    }
    if (!s->trusted_len[k] && free_at < 0) free_at = k;
  }
  if (!on) return 0;
  if (free_at < 0) return -1;
  memcpy(s->trusted[free_at], key, len);
  s->trusted_len[free_at] = len;
  return 0;
}

/* Whether req is for one of the open routes (params.open): never limited. */
static int is_open(const mh_http_server *s, const mh_hp_req *req) {
  for (int k = 0; k < MH_HTTP_OPEN && s->open[k][0]; k++) {
    const char *e = s->open[k], *sp = strchr(e, ' '), *path;
    size_t ml = (size_t)(sp - e), pl;
    int prefix;
    if (!(req->method_len == ml && memcmp(req->method, e, ml) == 0) &&
        !(req->is_head && ml == 3 && memcmp(e, "GET", 3) == 0))
      continue;
    path = sp + 1;
    pl = strlen(path);
    prefix = pl && path[pl - 1] == '*';
    if (prefix) pl--;
    if (prefix ? req->path_len >= pl && memcmp(req->path, path, pl) == 0
               : req->path_len == pl && memcmp(req->path, path, pl) == 0)
      return 1;
  }
  return 0;
}

/* A whole request: past the limits, to the caller. */
static void dispatch(conn *c, mh_hp_req *hp) {
  mh_http_server *s = c->s;
  mh_http_req *r;
  c->deadline = 0;
  c->keep = hp->keep_alive;
  if (s->live > s->p.max_conns ||
      !(is_open(s, hp) || (carries_trusted(s, hp) ? take_token(s, &s->ttokens, &s->ttokens_at)
                                                  : take_token(s, &s->tokens, &s->tokens_at)))) {
    char text[120];
    /* which limit: a client told "too many requests" while it sent one
       cannot tell a busy console from its own rate */
    if (s->live > s->p.max_conns)
      snprintf(text, sizeof text, "too many requests: over %u connections open, try again in a second\n",
               s->p.max_conns);
    else
      snprintf(text, sizeof text, "too many requests: over %g a second, try again in a second\n", s->p.rate);
    s->st.limited++;
    answer_own(c, hp, hp->is_head, 429, "1", text);
    mh_hp_req_free(hp);
    linger(c);
    return;
  }
  if (!(r = calloc(1, sizeof *r))) {
    answer_own(c, hp, hp->is_head, 503, "1", "service unavailable: out of memory\n");
    mh_hp_req_free(hp);
    linger(c);
    return;
  }
  r->s = s;
  r->c = c;
  r->hp = hp;
  r->refs = 2;
  memcpy(r->peer, c->peer, sizeof r->peer);
  c->cur = r;
  c->phase = C_WAIT;
  s->st.requests++;
  s->p.on_request(s->p.ud, r);
}

/* Parses what was read, while the connection is reading a request; then
** reads on only as far as the buffer allows (a request with the caller keeps
** reading, to see the client leave, until IN_CAP bytes wait). */
static void process(conn *c) {
  while (!c->closing && c->phase == C_READ && c->in_len > 0) {
    size_t used;
    int rc = mh_hp_feed(&c->hp, c->in, c->in_len, &used);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (rc != MH_HP_MORE) c->trusted_body = 0;
    if (rc == MH_HP_HEAD) {
      c->trusted_body = carries_trusted(c->s, c->hp.req);
      if (c->hp.req->expect_continue && c->in_len == 0) put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    } else if (rc == MH_HP_DONE) {
      dispatch(c, mh_hp_take(&c->hp));
    } else if (rc == MH_HP_ERROR) {
      char text[200];
      c->s->st.malformed++;
      /* the parser's words say what was wrong; "bad request" only for a 400
         (a 413 is not a malformed request: its reason is its own) */
      snprintf(text, sizeof text, "%s%s\n", c->hp.status == 400 ? "bad request: " : "", c->hp.why);
      /* a HEAD refused after its request line was read gets the head alone (RFC
         9110 9.3.2: an answer to HEAD has no body; it had the text) */
      answer_own(c, c->hp.req, c->hp.req && c->hp.req->is_head, c->hp.status, NULL, text);
      mh_hp_reset(&c->hp);
      linger(c);
    }
  }
  if (c->closing) return;
  if (c->phase == C_READ && c->peer_eof) { close_conn(c); return; }
  if (c->in_len < IN_CAP) start_reading(c); else stop_reading(c);
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = (conn *)h;
  (void)suggested;
  buf->base = c->in + c->in_len;
  buf->len = IN_CAP - c->in_len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn *c = (conn *)st;
  (void)buf;
  if (c->closing) return;
  if (n < 0) {
    c->reading = 0;
    if (n != UV_EOF) { close_conn(c); return; }
    c->peer_eof = 1;
    /* the client is gone for a stream, done for everything else; a whole
       answer still owed is sent, then the connection ends */
    if (c->phase == C_LINGER && c->linger_until) close_conn(c);
    else if (c->phase == C_READ) process(c);
    else if (c->phase == C_WAIT && c->cur && c->cur->streaming) close_conn(c);
    else if (c->phase == C_NEXT) c->keep = 0;
    return;
  }
  if (n == 0) return;
  if (c->phase == C_LINGER) { c->in_len = 0; return; }   /* dropped */
  c->in_len += (size_t)n;
  if (c->phase == C_READ) process(c);
  else if (c->in_len >= IN_CAP) stop_reading(c);
}

/* ----------------------------------------------------------- connections */

static void conn_closed(uv_handle_t *h) {
  conn *c = (conn *)h;
  mh_http_server *s = c->s;
  if (c->prev) c->prev->next = c->next; else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->st.connections--;
  mh_hp_free(&c->hp);
  free(c);
  maybe_done(s);
}

/* Ends the connection now; a request with the caller sees it gone. */
static void close_conn(conn *c) {
  mh_http_req *r = c->cur;
  if (c->closing) return;
  c->closing = 1;
  c->s->live--;
  c->reading = 0;
  if (r) {
    c->cur = NULL;
    r->c = NULL;
    req_unref(r);
  }
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* At the limit, a new connection ends the one that has waited longest for a
** request (an idle keep-alive connection, or one trickling a head in) rather
** than being refused.  Half-open connections cost a client nothing: 64 of them
** (slowloris, the request deadline renewed by reconnecting) used to hold every
** place, and the administrator's own request, which arrives whole at once, was
** closed at accept.  First, though, a connection lingering after its last
** answer (its answer is out, its shutdown done: only the client's leftover
** input is being dropped), the one that has lingered longest: a flood of
** malformed requests (no login, no rate token: the parser refuses them) left
** each connection lingering 2 s, never ended for another, and a hundred a
** second held every place: the administrator got 429 or a closed socket.
** A connection with a request under way (with the caller, streaming, being
** answered) is never ended for another; nor one whose head is in, carrying a
** credential the caller trusts, while its body arrives: the administrator's
** Save (or its body after 100 Continue) was ended by anyone opening
** connections, no login needed.  A client without one trickling a body is
** ended like any half-open connection. */
static void evict_waiting(mh_http_server *s, const conn *newc) {
  conn *victim = NULL;
  if (s->live <= s->p.max_conns) return;
  for (conn *c = s->conns; c; c = c->next)
    if (c != newc && !c->closing && c->phase == C_LINGER && c->linger_until &&
        (!victim || c->linger_until <= victim->linger_until))
      victim = c;
  if (!victim)
    for (conn *c = s->conns; c; c = c->next)
      /* <=: the list is newest first, and connections accepted in one loop turn share a deadline */
      if (c != newc && !c->closing && c->phase == C_READ && !c->trusted_body &&
          (!victim || c->deadline <= victim->deadline))
        victim = c;
  if (!victim) return;
  s->st.evicted++;
  close_conn(victim);
}

static void on_accept(uv_stream_t *listener, int status) {
  mh_http_server *s = (mh_http_server *)listener->data;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  conn *c;
  if (status < 0 || s->closing) return;
  if (!(c = calloc(1, sizeof *c))) return;
  c->s = s;
  mh_hp_init(&c->hp, s->p.max_head, s->p.max_body);
  uv_tcp_init(s->loop, &c->tcp);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->st.connections++;
  s->live++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) { close_conn(c); return; }
  s->st.accepted++;
  evict_waiting(s, c);
  if (s->live > 2 * (uint64_t)s->p.max_conns) {
    s->st.refused++;
    close_conn(c);
    return;
  }
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->phase = C_READ;
  c->deadline = uv_now(s->loop) + s->p.req_timeout_ms;
  start_reading(c);
}

/* Each period: requests past their deadline, lingering connections done
** lingering, writers that stopped reading, and (closing) whatever is left. */
static void on_sweep(uv_timer_t *t) {
  mh_http_server *s = (mh_http_server *)t->data;
  uint64_t now = uv_now(s->loop);
  for (conn *c = s->conns, *next; c; c = next) {
    size_t unsent;
    uint64_t sent;
    next = c->next;
    if (c->closing) continue;
    if (s->closing && now >= s->close_by) { close_conn(c); continue; }
    if (c->phase == C_READ && c->deadline && now >= c->deadline) {
      if (mh_hp_started(&c->hp) || c->in_len) {   /* a request under way: say why it ends */
        char text[120];
        snprintf(text, sizeof text, "request timeout: the request did not arrive in time (the limit is %.3g s)\n",
                 s->p.req_timeout_ms / 1000.0);
        answer_own(c, c->hp.req, 0, 408, NULL, text);
        mh_hp_reset(&c->hp);
        linger(c);
      } else {
        close_conn(c);                             /* an idle keep-alive connection */
      }
      continue;
    }
    if (c->phase == C_LINGER && c->linger_until && now >= c->linger_until) { close_conn(c); continue; }
    unsent = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    sent = c->submitted - unsent;
    if (unsent > 0 && sent == c->last_sent) {
      if (!c->stuck_since) c->stuck_since = now;
      else if (now - c->stuck_since >= s->p.stall_ms) {
        s->st.stalled++;
        close_conn(c);
        continue;
      }
    } else {
      c->stuck_since = 0;
    }
    c->last_sent = sent;
  }
}

/* --------------------------------------------------------------- server */

static void handle_closed(uv_handle_t *h) {
  mh_http_server *s = (mh_http_server *)h->data;
  s->open_handles--;
  maybe_done(s);
}

static void maybe_done(mh_http_server *s) {
  if (!s->closing || s->conns) return;
  if (!s->sweep_closed) {
    s->sweep_closed = 1;
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, handle_closed);
  }
  if (s->open_handles > 0) return;
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
  struct sockaddr_storage addr;
  int rc, namelen;
  uint64_t period;

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
  if (p->json_prefix && strlen(p->json_prefix) >= sizeof s->json_prefix) {
    free(s);
    snprintf(err, errlen, "json_prefix '%.40s...' is over %zu bytes", p->json_prefix, sizeof s->json_prefix - 1);
    return UV_EINVAL;
  }
  snprintf(s->json_prefix, sizeof s->json_prefix, "%s", p->json_prefix ? p->json_prefix : "");
  s->p.json_prefix = s->json_prefix;
  s->tokens = s->ttokens = p->burst;
  s->tokens_at = s->ttokens_at = uv_now(loop);
  if (p->trust_cookie && strlen(p->trust_cookie) >= sizeof s->trust_cookie) {
    free(s);
    snprintf(err, errlen, "trust_cookie is over %zu bytes", sizeof s->trust_cookie - 1);
    return UV_EINVAL;
  }
  snprintf(s->trust_cookie, sizeof s->trust_cookie, "%s", p->trust_cookie ? p->trust_cookie : "");
  s->p.trust_cookie = s->trust_cookie;
  for (int k = 0; p->open && p->open[k]; k++) {
    const char *sp = strchr(p->open[k], ' ');
    if (k == MH_HTTP_OPEN || strlen(p->open[k]) >= MH_HTTP_OPEN_LEN || !sp || sp == p->open[k] || sp[1] != '/') {
      free(s);
      snprintf(err, errlen, "open: more than %d entries, or one over %d bytes or not 'METHOD /path'",
               MH_HTTP_OPEN, MH_HTTP_OPEN_LEN - 1);
      return UV_EINVAL;
    }
    snprintf(s->open[k], sizeof s->open[k], "%s", p->open[k]);
  }
  s->p.open = NULL;

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

  /* the sweep's period: a second, shorter when a limit is (tests) */
  period = 1000;
  if (p->req_timeout_ms / 4 < period) period = p->req_timeout_ms / 4;
  if (p->stall_ms / 4 < period) period = p->stall_ms / 4;
  if (period < 50) period = 50;
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  s->open_handles++;
  uv_timer_start(&s->sweep, on_sweep, period, period);
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
  if (s->closing) {                 /* already closing */
    if (!s->done) { s->done = done; s->done_ud = ud; }
    maybe_done(s);
    return;
  }
  s->closing = 1;
  s->close_by = uv_now(s->loop) + CLOSE_MS;
  s->done = done;
  s->done_ud = ud;
  uv_close((uv_handle_t *)&s->listener, handle_closed);
  /* a request the caller still owes an answer: 503; a stream: its end; an
     idle connection or a request still arriving: closed now; an answer on
     its way: sent, then the connection ends (answer_queued, on_shutdown) */
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->closing) continue;
    if (c->phase == C_WAIT && c->cur) {
      mh_http_req *r = c->cur;
      c->keep = 0;
      if (!r->answered) {
        r->answered = 1;
        answer_own(c, r->hp, r->hp->is_head, 503, NULL, "the service is stopping\n");
        if (!c->closing) answer_queued(c);
      } else if (r->streaming && !r->ended) {
        h_end(r);
      }
    } else if (c->phase == C_READ) {
      close_conn(c);
    } else if (c->phase == C_NEXT) {
      c->keep = 0;
      linger(c);
    } else if (c->phase == C_LINGER && c->linger_until) {
      close_conn(c);
    }
  }
  maybe_done(s);
}

static void h_destroy(mh_http_server *s) {
  if (!s) return;
  if (!s->closing) h_close(s, NULL, NULL);
  if (s->conns || s->open_handles) return;   /* still closing at exit: left to the OS */
  free(s);
}

static const mh_http_api api = {
  MH_HTTP_API_VERSION, h_listen, h_address, h_stats, h_close, h_destroy,
  h_method, h_path, h_query, h_header, h_body, h_peer,
  h_respond, h_stream, h_write, h_end, h_alive, h_release, h_trust,
};

const mh_http_api *mh_http_api_v1(void) { return &api; }
