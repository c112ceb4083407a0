/*
** http.h — the admin console's HTTP/1.1 server: mailhook's own, on the
** service's libuv loop (runtime/http.c), its requests read by a strict parser
** (runtime/httpparse.c).  Beside the protocol it owns what a console open to
** one administrator needs: a bound on connections, a request rate limit
** (429), deadlines for slow requests and idle connections, a drop of clients
** that stop reading, a clean close of every connection when the service
** stops, and a request object that outlives the read so a Lua handler may
** answer later (after a Test that takes seconds) or stream (server-sent
** events).
**
** It is linked into the binary (it needs nothing but libuv); its functions are
** reached through one table (mh_http_api_v1), the interface runtime/l_http.c
** was written against when the server was a plugin.
**
** Threading: everything runs on the loop thread.  Ownership: a request is held
** by its connection until its answer is handed to the kernel (or the
** connection goes) and by the caller until release(); the last of the two
** frees it.
*/
#ifndef MH_HTTP_H
#define MH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mh_http_server mh_http_server;
typedef struct mh_http_req mh_http_req;

/* A response header (copied at once: the strings may be freed after the call). */
typedef struct {
  const char *name;             /* as written (e.g. "Content-Type") */
  const char *value;
} mh_http_header;

typedef struct {
  const char *host;             /* numeric address to bind: "127.0.0.1", "::1" */
  int port;                     /* 0 = any free port (tests); see address() */
  size_t max_body;              /* request bodies above this get 413 (known from
                                   Content-Length before a byte of the body is read) */
  size_t max_head;              /* request line + headers above this get 431 (414 while
                                   the request line is still arriving): the
                                   memory a request head may take */
  unsigned max_conns;           /* open connections served; above it every request
                                   gets 429, and above twice it new connections are
                                   closed at once (file descriptors stay bounded) */
  double rate;                  /* requests per second, sustained (token bucket) ... */
  double burst;                 /* ... with this many at once; beyond: 429 + Retry-After */
  unsigned req_timeout_ms;      /* a whole request (head and body) must arrive within
                                   this, and an idle keep-alive connection is closed
                                   after it: a client sending a byte at a time holds
                                   one connection for this long, never more */
  unsigned stall_ms;            /* a response write without progress for this long
                                   (a client that stopped reading) drops the connection */
  size_t max_stream_buffer;     /* bytes a stream may have unsent before it is dropped */
  const char *json_prefix;      /* this file's own answers (400, 408, 411, 413, 414, 429, 431,
                                   503...) to a path starting with it ("/api/", copied)
                                   are JSON {"ok":false,"error":"..."}, the shape of the
                                   caller's own errors; other paths, or NULL: text */
  /* A complete request (head and body) passed every limit: the callee owns one
  ** reference to r (release it when done) and answers now or later. */
  void (*on_request)(void *ud, mh_http_req *r);
  void *ud;
  const char *trust_cookie;     /* the cookie whose value trust() may name (copied; NULL: none) */
  const char *const *open;      /* the way in, never rate-limited: NULL-terminated
                                   "METHOD /path" entries (a trailing * makes a prefix; GET
                                   also matches HEAD), at most MH_HTTP_OPEN, each under
                                   MH_HTTP_OPEN_LEN bytes (copied; NULL: none).  For
                                   answers that cost no more than a 429 (a page from
                                   memory, a redirect) and for what the caller limits
                                   itself (a login's failures): a flood without a session
                                   spent the bucket and the administrator could not even
                                   load the login page */
} mh_http_params;

/* What /metrics and the tests want to know about the server itself. */
typedef struct {
  uint64_t connections;         /* open now */
  uint64_t accepted;            /* connections since start */
  uint64_t requests;            /* requests passed to on_request */
  uint64_t limited;             /* answered 429 (rate or connections) */
  uint64_t refused;             /* connections closed at accept (over twice max_conns) */
  uint64_t evicted;             /* connections waiting for a request, ended at the limit
                                   to make room for a new one (slowloris) */
  uint64_t stalled;             /* connections dropped for not reading */
  uint64_t malformed;           /* refused by the parser: 400, 411, 413, 414, 417, 431, 501, 505 */
} mh_http_stats;

typedef struct {
  int version;                  /* MH_HTTP_API_VERSION */
  /* Binds and listens on loop.  0 and *out, or a negative libuv error with a
  ** message in err. */
  int (*listen)(uv_loop_t *loop, const mh_http_params *p, mh_http_server **out,
                char *err, size_t errlen);
  /* The bound address ("127.0.0.1") and port (the one chosen when port was 0). */
  int (*address)(mh_http_server *s, char *host, size_t hostlen, int *port);
  void (*stats)(mh_http_server *s, mh_http_stats *st);
  /* Stops listening and ends every connection: a request not answered yet gets
  ** 503, a stream ends, idle and stalled sockets are shut down.  done(ud) runs
  ** once the last connection is closed (maybe before close returns).  After it,
  ** no handle of the server keeps the loop alive. */
  void (*close)(mh_http_server *s, void (*done)(void *ud), void *ud);
  /* Frees the server once close() is done (at exit, the loop not running);
  ** a server still closing is left to the OS. */
  void (*destroy)(mh_http_server *s);

  /* The request, valid until release, also after its connection is gone
  ** (strings are not NUL-terminated unless said). */
  const char *(*method)(mh_http_req *r, size_t *len);
  const char *(*path)(mh_http_req *r, size_t *len);       /* without the query, %-decoded, no
                                                             "." or ".." segment (httpparse.h) */
  const char *(*query)(mh_http_req *r, size_t *len);      /* after '?', or NULL */
  const char *(*header)(mh_http_req *r, const char *lc_name, size_t *len); /* NULL when absent;
                                                             "host": an http:// target's authority; a field sent
                                                             twice: all its lines joined (httpparse.h) */
  const char *(*body)(mh_http_req *r, size_t *len);       /* NULL when none */
  int (*peer)(mh_http_req *r, char *buf, size_t len);     /* "127.0.0.1"; 0 or -1 */

  /* Answers with a whole body.  0; MH_HTTP_GONE when the connection went away
  ** (nothing sent); MH_HTTP_BUSY when already answered. */
  int (*respond)(mh_http_req *r, int status, const mh_http_header *h, size_t nh,
                 const char *body, size_t len);
  /* Starts a streamed response (chunked), then write() pieces and end() it.
  ** write: 0; MH_HTTP_GONE; MH_HTTP_FULL when more than max_stream_buffer bytes
  ** wait (the connection is then dropped: a client that does not read). */
  int (*stream)(mh_http_req *r, int status, const mh_http_header *h, size_t nh);
  int (*write)(mh_http_req *r, const char *data, size_t len);
  int (*end)(mh_http_req *r);
  /* 1 while the connection can still take an answer. */
  int (*alive)(mh_http_req *r);
  /* Drops the caller's reference (the request is freed once its connection is
  ** done with it too); a stream not ended yet is ended. */
  void (*release)(mh_http_req *r);

  /* A credential the caller holds live (a session id, a bearer token): a
  ** request carrying it (params.trust_cookie's value, or Authorization:
  ** Bearer) takes from a bucket of its own, of the same rate and burst, so
  ** a flood without it cannot starve the administrator with 429s (a request
  ** for an open route, params.open, takes from neither).  on: 1 to
  ** add, 0 to remove.  0; -1 when the table is full or the key is over
  ** MH_HTTP_TRUST_LEN bytes (the request then shares the common bucket). */
  int (*trust)(mh_http_server *s, const char *key, size_t len, int on);
} mh_http_api;

#define MH_HTTP_OPEN 16
#define MH_HTTP_OPEN_LEN 64
#define MH_HTTP_TRUSTED 32
#define MH_HTTP_TRUST_LEN 128

#define MH_HTTP_API_VERSION 1
#define MH_HTTP_API_SYMBOL "mh_http_api_v1"
#define MH_HTTP_GONE (-1001)
#define MH_HTTP_BUSY (-1002)
#define MH_HTTP_FULL (-1003)

/* The table above. */
const mh_http_api *mh_http_api_v1(void);

#endif
