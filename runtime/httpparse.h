/*
** httpparse.h — the console's HTTP/1.1 request parser: a state machine fed
** bytes (no socket, no loop), so that runtime/http.c drives it from libuv and
** tests/unit/test-httpparse.c drives it from strings.
**
** It is strict on purpose: a request whose framing two readers could see
** differently (a proxy in front and this server) is refused, never guessed at,
** so no byte after it is ever read as a request of its own (request smuggling).
** Refused: a bare CR or LF, a NUL or other control character in the head, an
** obsolete folded line, whitespace before a header's colon, two Content-Length
** (even equal), a Content-Length that is not plain digits, any
** Transfer-Encoding (411 for chunked, 501 for another coding, 400 beside a
** Content-Length or twice), two Host, two of any other field that has one
** value only and that a decision rests on (Origin, Referer, Content-Type,
** Authorization, Sec-Fetch-*, X-CSRF-Token: SINGLETONS in httpparse.c), a request
** target that is not visible ASCII or has a bad %-escape or a fragment, a
** version other than HTTP/1.0 and HTTP/1.1.  Bounds: the head (request line
** and header lines) to max_head bytes (414 while the request line is still
** arriving, 431 after it), header lines to MH_HP_MAX_FIELDS (400), the body to
** max_body bytes (413, known from Content-Length before any of it is read).
**
** A field sent twice is never answered by its first copy alone (a proxy in
** front may read the last one): a singleton is refused (above); Cookie lines
** are joined with "; " (RFC 6265 5.4, as an HTTP/2 hop splits them, RFC 9113
** 8.2.3); any other field's lines are joined with ", " (RFC 9110 5.3: a list).
**
** The path handed on is percent-decoded and then cleared of "." and ".."
** segments (RFC 3986 5.2.4 on the decoded bytes), so no segment of it is "."
** or "..", however the dots were escaped: a handler serving files under a
** prefix cannot be walked out of it.  The query is left as sent.
*/
#ifndef MH_HTTPPARSE_H
#define MH_HTTPPARSE_H

#include <stddef.h>

#define MH_HP_MAX_FIELDS 100

/* One header line of the request (pointers into the request's head). */
typedef struct {
  const char *name;             /* as sent (compare without case) */
  size_t name_len;
  const char *value;            /* without the whitespace around it; for the first of
                                   several lines of one name, all their values joined */
  size_t value_len;
  int dup;                      /* a later line of a name seen before: its value is in
                                   the first one's (look at that one, not this) */
} mh_hp_field;

/* A request read to its end.  Owned by whoever took it (mh_hp_take);
** mh_hp_req_free frees it and everything it points to. */
typedef struct {
  char *head;                   /* the raw head as received (max_head bytes allocated) */
  size_t head_len;
  const char *method;           /* in head */
  size_t method_len;
  const char *target;           /* the request target as sent, in head */
  size_t target_len;
  char *path;                   /* decoded, dot segments removed, NUL-terminated (owned);
                                   may hold any byte, NUL included: use path_len */
  size_t path_len;
  const char *query;            /* after the first '?', as sent; NULL when there is no '?' */
  size_t query_len;
  const char *authority;        /* the absolute-form target's host[:port], else the Host
                                   header's value; NULL when neither */
  size_t authority_len;
  int minor;                    /* HTTP/1.minor: 0 or 1 */
  int keep_alive;               /* the client lets the connection serve another request */
  int expect_continue;          /* "Expect: 100-continue" with a body still to come */
  int is_head;                  /* the method is HEAD: the answer has no body */
  size_t content_length;        /* the body's length (0: none) */
  char *body;                   /* content_length bytes (owned), NULL when none */
  char *joined;                 /* the joined values of fields sent twice (owned), or NULL */
  size_t nfields;
  mh_hp_field fields[MH_HP_MAX_FIELDS];
} mh_hp_req;

/* The parser of one connection; reused request after request. */
typedef struct {
  size_t max_head;              /* head bytes allowed (431 beyond) */
  size_t max_body;              /* body bytes allowed (413 beyond) */
  int state;                    /* private: where in the request the next byte falls */
  mh_hp_req *req;               /* the request being read; NULL before its first byte */
  size_t line_at;               /* private: where the current line starts in req->head */
  size_t got;                   /* private: body bytes read so far */
  int status;                   /* after MH_HP_ERROR: the status to answer with */
  const char *why;              /* after MH_HP_ERROR: what was wrong, for the answer's text
                                   (its own words for each status: only a 400's is
                                   given a "bad request: " prefix by the server) */
  char why_buf[160];            /* private: a why that names a value (a length, a limit) */
} mh_hp;

/* mh_hp_feed's results. */
#define MH_HP_MORE 0            /* every byte was used; the request needs more */
#define MH_HP_HEAD 1            /* the head is complete and a body follows (time for
                                   "100 Continue"); feed the rest */
#define MH_HP_DONE 2            /* the request is complete: mh_hp_take it */
#define MH_HP_ERROR (-1)        /* refused: status and why say so; the connection must
                                   close after the answer (its framing is lost) */

void mh_hp_init(mh_hp *p, size_t max_head, size_t max_body);

/* Reads from data; *used says how many bytes were consumed (with MH_HP_DONE
** the rest belongs to the next request: pipelining).  After MH_HP_ERROR every
** call returns MH_HP_ERROR again until mh_hp_reset. */
int mh_hp_feed(mh_hp *p, const char *data, size_t len, size_t *used);

/* The completed request (after MH_HP_DONE), now the caller's; the parser is
** ready for the next one.  NULL when none is complete. */
mh_hp_req *mh_hp_take(mh_hp *p);

/* 1 when a request has begun (some byte of it was read) and is not complete. */
int mh_hp_started(const mh_hp *p);

/* Drops a request being read (and an error), ready for a new one. */
void mh_hp_reset(mh_hp *p);
void mh_hp_free(mh_hp *p);
void mh_hp_req_free(mh_hp_req *r);

/* The header named lc_name (lower case; "host" gives the authority): its
** value, all its lines' values joined when it came several times (Cookie with
** "; ", others with ", "; a singleton never comes twice), or NULL. */
const char *mh_hp_header(const mh_hp_req *r, const char *lc_name, size_t *len);

/* Percent-decodes in (n bytes, starting with '/') into out (n + 1 bytes) and
** removes its dot segments: the length, or -1 for a bad %-escape. */
long mh_hp_normalize_path(const char *in, size_t n, char *out);

#endif
