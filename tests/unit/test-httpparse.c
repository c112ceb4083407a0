/*
** test-httpparse.c — the console's request parser (runtime/httpparse.c)
** driven with bytes, no socket: requests are read whole, a byte at a time as
** well as at once, pipelined ones one after the other; every framing a proxy
** could read differently is refused with its status (a lax parser passes
** none of those cases); the path is decoded and cleared of dot segments so
** that no escape leaves a folder, checked on a table and on random paths.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tap.h"
#include "httpparse.h"

#define HEAD_MAX 8192
#define BODY_MAX 65536

/* Feeds s (n bytes) at once, or step bytes at a time: the last result, with
** *used the bytes consumed in all. */
static int feed(mh_hp *p, const char *s, size_t n, size_t step, size_t *used) {
  size_t at = 0;
  int rc = MH_HP_MORE;
  while (at < n) {
    size_t u, k = step && step < n - at ? step : n - at;
    rc = mh_hp_feed(p, s + at, k, &u);
    at += u;
    if (rc == MH_HP_DONE || rc == MH_HP_ERROR) break;
    if (u < k && rc != MH_HP_HEAD) break;
  }
  *used = at;
  return rc;
}

/* One request -> its status: 0 when read whole, else the refusal's. */
static int status_of(const char *s, size_t n) {
  mh_hp p;
  size_t used;
  int rc, st;
  mh_hp_init(&p, HEAD_MAX, BODY_MAX);
  rc = feed(&p, s, n, 0, &used);
  st = rc == MH_HP_DONE ? 0 : rc == MH_HP_ERROR ? p.status : -1;
  mh_hp_free(&p);
  return st;
}

#define S(lit) lit, sizeof lit - 1

static void test_simple(void) {
  static const char req[] = "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: 127.0.0.1:8025\r\nCookie: a=b\r\n"
                            "X-Spaced:   v  w \t\r\n\r\n";
  for (size_t step = 0; step <= 1; step++) {
    mh_hp p;
    mh_hp_req *r;
    size_t used, len;
    const char *v;
    int rc;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    rc = feed(&p, req, sizeof req - 1, step, &used);
    is_int(rc, MH_HP_DONE, "a GET is read whole (%s)", step ? "a byte at a time" : "at once");
    is_int((int)used, (int)sizeof req - 1, "every byte used");
    r = mh_hp_take(&p);
    ok(r && r->method_len == 3 && !memcmp(r->method, "GET", 3), "method");
    ok(r && !strcmp(r->path, "/a/b") && r->path_len == 4, "path without the query");
    ok(r && r->query && r->query_len == 9 && !memcmp(r->query, "x=1&y=%20", 9), "query as sent");
    v = mh_hp_header(r, "host", &len);
    ok(v && len == 14 && !memcmp(v, "127.0.0.1:8025", 14), "Host");
    v = mh_hp_header(r, "x-spaced", &len);
    ok(v && len == 4 && !memcmp(v, "v  w", 4), "a value without the whitespace around it: '%.*s'", (int)len, v ? v : "");
    ok(mh_hp_header(r, "cookie", &len) && len == 3, "a header by its lower-case name");
    ok(!mh_hp_header(r, "content-length", &len), "an absent header: NULL");
    ok(r->minor == 1 && r->keep_alive && !r->body && !r->is_head, "HTTP/1.1: kept alive, no body");
    ok(!mh_hp_started(&p), "the parser is ready for the next request");
    mh_hp_req_free(r);
    mh_hp_free(&p);
  }
}

static void test_versions_and_connection(void) {
  struct { const char *req; int keep; const char *what; } cases[] = {
    { "GET / HTTP/1.0\r\n\r\n", 0, "HTTP/1.0" },
    { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, "HTTP/1.0 with keep-alive" },
    { "GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", 0, "HTTP/1.0 with keep-alive and close" },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, "HTTP/1.1 with close" },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, CLOSE\r\n\r\n", 0, "HTTP/1.1 with CLOSE in a list" },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 1, "HTTP/1.1 with keep-alive" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mh_hp p;
    mh_hp_req *r;
    size_t used;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    feed(&p, cases[i].req, strlen(cases[i].req), 0, &used);
    r = mh_hp_take(&p);
    ok(r && r->keep_alive == cases[i].keep, "%s: keep-alive %d", cases[i].what, cases[i].keep);
    mh_hp_req_free(r);
    mh_hp_free(&p);
  }
  {
    mh_hp p;
    mh_hp_req *r;
    size_t used;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    feed(&p, S("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, &used);
    r = mh_hp_take(&p);
    ok(r && r->is_head, "HEAD is known (its answer has no body)");
    mh_hp_req_free(r);
    feed(&p, S("head /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, &used);
    r = mh_hp_take(&p);
    ok(r && !r->is_head, "methods are case-sensitive: 'head' is not HEAD");
    mh_hp_req_free(r);
    feed(&p, S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, &used);
    r = mh_hp_take(&p);
    ok(r && r->path_len == 1, "empty lines before a request are skipped (RFC 9112 2.2)");
    mh_hp_req_free(r);
    mh_hp_free(&p);
  }
}

static void test_body_and_pipeline(void) {
#define R1 "POST /api/login HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
#define R2 "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
  static const char two[] = R1 R2;
  for (size_t step = 0; step <= 1; step++) {
    mh_hp p;
    mh_hp_req *r;
    size_t used, at = 0, first = sizeof R1 - 1;
    int rc;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    /* a byte at a time: the head ends with MH_HP_HEAD, then the body */
    if (step) {
      int saw_head = 0;
      rc = MH_HP_MORE;
      while (at < sizeof two - 1) {
        rc = mh_hp_feed(&p, two + at, 1, &used);
        at += used;
        if (rc == MH_HP_HEAD) saw_head = 1;
        if (rc == MH_HP_DONE) break;
      }
      ok(saw_head, "the head's end is told before the body (time for 100 Continue)");
    } else {
      rc = mh_hp_feed(&p, two, sizeof two - 1, &used);
      if (rc == MH_HP_HEAD) { at = used; rc = mh_hp_feed(&p, two + at, sizeof two - 1 - at, &used); }
      at += used;
    }
    is_int(rc, MH_HP_DONE, "a POST with a body is read (%s)", step ? "a byte at a time" : "at once");
    is_int((int)at, (int)first, "exactly its Content-Length bytes of body are taken, no more");
    r = mh_hp_take(&p);
    ok(r && r->content_length == 5 && r->body && !memcmp(r->body, "hello", 5), "the body");
    mh_hp_req_free(r);
    rc = feed(&p, two + at, sizeof two - 1 - at, step, &used);
    r = mh_hp_take(&p);
    ok(rc == MH_HP_DONE && r && !strcmp(r->path, "/admin"), "the next pipelined request is read on its own");
    mh_hp_req_free(r);
    mh_hp_free(&p);
  }
  {
    mh_hp p;
    size_t used;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    is_int(mh_hp_feed(&p, S("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), &used),
           MH_HP_HEAD, "Expect: 100-continue: the head is told first");
    ok(p.req && p.req->expect_continue, "with expect_continue");
    ok(mh_hp_started(&p), "a request under way");
    mh_hp_reset(&p);
    ok(!mh_hp_started(&p), "reset: none");
    mh_hp_free(&p);
  }
}

/* Every request here is refused, with this status; a lax parser reads some
** of them as one request (or two). */
static void test_refused(void) {
  static char big[HEAD_MAX + 100], many[6000], nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
  struct { const char *req; size_t len; int status; const char *what; } cases[] = {
    { S("GET / HTTP/1.1\nHost: a\n\n"), 400, "bare LF line ends" },
    { S("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400, "one bare LF" },
    { S("GET / HTTP/1.1\r\nX: a\rb\r\nHost: a\r\n\r\n"), 400, "a bare CR in a value" },
    { S("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), 400, "CR CR LF" },
    { S("GET / HTTP/1.1\r\nX: a\0b\r\nHost: a\r\n\r\n"), 400, "a NUL in a value" },
    { nul_target, sizeof nul_target - 1, 400, "a NUL in the target" },
    { S("GET / HTTP/1.1\r\nX: a\x01\r\nHost: a\r\n\r\n"), 400, "a control character in a value" },
    { S("GET / HTTP/1.1\r\nX: a\x7f\r\nHost: a\r\n\r\n"), 400, "DEL in a value" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n"), 400, "an obsolete folded line" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n\tb\r\n\r\n"), 400, "folded with a tab" },
    { S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400, "whitespace before the colon" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"), 400, "whitespace before Content-Length's colon" },
    { S("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"), 400, "an empty header name" },
    { S("GET / HTTP/1.1\r\nX(y): a\r\nHost: a\r\n\r\n"), 400, "a header name that is not a token" },
    { S("GET / HTTP/1.1\r\nno colon\r\nHost: a\r\n\r\n"), 400, "a header line without a colon" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 400, "two equal Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello"), 400, "two Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"), 400, "a Content-Length list" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"), 400, "a signed Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"), 400, "a hex Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello"), 400, "digits with a space" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400, "an empty Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"), 413, "a Content-Length past 2^64" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n"), 413, "a body over max_body" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "Content-Length and Transfer-Encoding" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"), 400, "Transfer-Encoding and Content-Length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "two Transfer-Encoding" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 411, "a chunked body" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"), 411, "CHUNKED" },
    { S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 411, "chunked in HTTP/1.0" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501, "another coding" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 501, "chunked not alone" },
    { S("GET / HTTP/1.1\r\nTransfer-Encoding:\r\nHost: a\r\n\r\n"), 501, "an empty Transfer-Encoding" },
    { S("GET / HTTP/1.1\r\nHost: evil.example\r\nHost: a\r\n\r\n"), 400, "two Host" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nOrigin: http://a\r\nOrigin: http://evil.example\r\n\r\n"), 400, "two Origin" },
    { S("POST / HTTP/1.1\r\nHost: a\r\norigin: http://a\r\nORIGIN: http://a\r\n\r\n"), 400, "two Origin, equal, in other cases" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nOrigin:\r\nOrigin: http://a\r\n\r\n"), 400, "two Origin, one empty" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nReferer: http://a/\r\nReferer: http://b/\r\n\r\n"), 400, "two Referer" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n\r\n"), 400, "two Content-Type" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\n\r\n"), 400, "two Authorization" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Site: cross-site\r\n\r\n"), 400, "two Sec-Fetch-Site" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nX-CSRF-Token: a\r\nX-Csrf-Token: b\r\n\r\n"), 400, "two X-CSRF-Token" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"), 417, "an Expect other than 100-continue" },
    { S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505, "HTTP/1.2" },
    { S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505, "HTTP/2.0" },
    { S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400, "the HTTP/2 preface" },
    { S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400, "a lower-case version" },
    { S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400, "a space after the version" },
    { S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "two spaces" },
    { S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a tab for a space" },
    { S("GET /\r\n\r\n"), 400, "HTTP/0.9" },
    { S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a method that is not a token" },
    { S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "the asterisk form" },
    { S("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "the authority form" },
    { S("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a relative target" },
    { S("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a fragment" },
    { S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a raw byte over 0x7f in the target" },
    { S("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a bad %-escape" },
    { S("GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a cut %-escape" },
    { S("GET /a% HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "a lone %" },
    { S("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "userinfo in an absolute target" },
    { S("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "an absolute target without a host" },
    { S("GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "https:// on a plain connection" },
    { big, 0, 431, "a head over max_head" },
    { many, 0, 400, "101 header lines" },
  };
  size_t n;
  memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
  memset(big + 23, 'a', sizeof big - 23 - 4);
  memcpy(big + sizeof big - 4, "\r\n\r\n", 4);
  cases[sizeof cases / sizeof cases[0] - 2].len = sizeof big;
  n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 101; i++) n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: v\r\n", i);
  n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
  cases[sizeof cases / sizeof cases[0] - 1].len = n;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    is_int(status_of(cases[i].req, cases[i].len), cases[i].status, "refused: %s", cases[i].what);
  /* the 100th header line is still fine */
  n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 100; i++) n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: v\r\n", i);
  n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
  is_int(status_of(many, n), 0, "100 header lines are read");
  is_int(status_of(S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: Andr\xc3\xa9\r\n\r\n")), 0, "UTF-8 bytes in a value are read");
  is_int(status_of(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567")), 0, "leading zeros: digits all the same");
  is_int(status_of(S("GET / HTTP/1.1\r\n\r\n")), 0, "no Host: the caller decides (the console says 421)");
  {
    /* the 431 comes at the first byte past the bound, not after the whole line */
    mh_hp p;
    size_t used;
    static char url[20000];
    memcpy(url, "GET /", 5);
    memset(url + 5, 'a', sizeof url - 5);
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    is_int(mh_hp_feed(&p, url, sizeof url, &used), MH_HP_ERROR, "a 20 KB URL");
    ok(p.status == 414 && used == HEAD_MAX + 1, "414 as the bound is passed in the request line (%zu bytes read)", used);
    /* after a refusal nothing more is read: no resynchronisation on later bytes */
    is_int(mh_hp_feed(&p, S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &used), MH_HP_ERROR, "a refused parser stays refused");
    is_int((int)used, 0, "and reads nothing");
    ok(p.why && strcmp(p.why, "URI too long: the request line is over 8192 bytes") == 0,
       "its text names the limit: %s", p.why ? p.why : "(none)");
    mh_hp_free(&p);
    /* a head whose request line fits and whose headers do not: 431 */
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    mh_hp_feed(&p, big, sizeof big, &used);
    ok(p.status == 431 && p.why && strcmp(p.why, "request head too large: over 8192 bytes (the request line and headers)") == 0,
       "headers over the bound: 431, %s", p.why ? p.why : "(none)");
    mh_hp_free(&p);
  }
  {
    /* each singleton's refusal names it (as the server spells it, not the request) */
    mh_hp p;
    size_t used;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    mh_hp_feed(&p, S("POST / HTTP/1.1\r\nHost: a\r\norigin: http://a\r\nOrigin: http://b\r\n\r\n"), &used);
    ok(p.status == 400 && p.why && !strcmp(p.why, "more than one Origin"), "two Origin: %s", p.why ? p.why : "(none)");
    mh_hp_free(&p);
  }
  {
    /* each refusal says what was wrong in its own words, with the value and the limit it met */
    static const struct { const char *in; size_t len; const char *why; } texts[] = {
      { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n"),
        "request body too large: 70000 bytes, the limit is 65536" },
      { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999999999999999999999999\r\n\r\n"),
        "request body too large: 9999999999999999999999999999999999999999... bytes, the limit is 65536" },
      { S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), "HTTP version not supported: HTTP/2.0 (HTTP/1.0 and HTTP/1.1 only)" },
      { S("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"),
        "expectation failed: Expect '200-ok' (only 100-continue is understood)" },
      { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        "not implemented: Transfer-Encoding 'gzip' (a request body is taken with Content-Length only)" },
      { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        "length required: a chunked request body is not taken, send Content-Length" },
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
      mh_hp p;
      size_t used;
      mh_hp_init(&p, HEAD_MAX, BODY_MAX);
      mh_hp_feed(&p, texts[i].in, texts[i].len, &used);
      int same = p.why && strcmp(p.why, texts[i].why) == 0;
      ok(same, "says: %s", texts[i].why);
      if (!same) printf("#   got: %s\n", p.why ? p.why : "(none)");
      mh_hp_free(&p);
    }
  }
}

/* A field of several lines is read with all of them, never the first alone (a
** proxy in front may take the last): Cookie joined with "; ", a list with ", ". */
static void test_repeated(void) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nCookie: mh_session=old\r\nAccept: text/html\r\n"
                            "cookie: mh_session=live; x=1\r\nCookie:\r\nACCEPT: */*\r\nX-One: v\r\n\r\n";
  for (size_t step = 0; step <= 1; step++) {
    mh_hp p;
    mh_hp_req *r;
    size_t used, len;
    const char *v;
    int lines = 0;
    mh_hp_init(&p, HEAD_MAX, BODY_MAX);
    is_int(feed(&p, req, sizeof req - 1, step, &used), MH_HP_DONE, "three Cookie lines, two Accept: read (%s)",
           step ? "a byte at a time" : "at once");
    r = mh_hp_take(&p);
    v = r ? mh_hp_header(r, "cookie", &len) : NULL;
    ok(v && len == 36 && !memcmp(v, "mh_session=old; mh_session=live; x=1", 36),
       "Cookie: every line's cookies, joined with '; ': '%.*s'", (int)len, v ? v : "");
    v = r ? mh_hp_header(r, "accept", &len) : NULL;
    ok(v && len == 14 && !memcmp(v, "text/html, */*", 14), "Accept: a list, joined with ', ': '%.*s'", (int)len, v ? v : "");
    v = r ? mh_hp_header(r, "x-one", &len) : NULL;
    ok(v && len == 1 && *v == 'v', "a field sent once: as it was");
    for (size_t i = 0; r && i < r->nfields; i++)
      if (!r->fields[i].dup && r->fields[i].name_len == 6 && !strncasecmp(r->fields[i].name, "cookie", 6)) lines++;
    is_int(lines, 1, "the later Cookie lines are marked dup (the server's look at Cookie sees one)");
    mh_hp_req_free(r);
    mh_hp_free(&p);
  }
}

static void test_absolute_form(void) {
  mh_hp p;
  mh_hp_req *r;
  size_t used, len;
  const char *v;
  mh_hp_init(&p, HEAD_MAX, BODY_MAX);
  feed(&p, S("GET HTTP://127.0.0.1:8025/a/../b?q=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n"), 0, &used);
  r = mh_hp_take(&p);
  ok(r && !strcmp(r->path, "/b") && r->query_len == 3, "an absolute target: its path and query");
  v = r ? mh_hp_header(r, "host", &len) : NULL;
  ok(v && len == 14 && !memcmp(v, "127.0.0.1:8025", 14), "its authority is the host, not the Host header (RFC 9112 3.2.2)");
  mh_hp_req_free(r);
  feed(&p, S("GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, &used);
  r = mh_hp_take(&p);
  ok(r && !strcmp(r->path, "/") && r->query_len == 1, "no path: /");
  mh_hp_req_free(r);
  mh_hp_free(&p);
}

static void test_paths(void) {
  struct { const char *in; const char *out; size_t outlen; } cases[] = {
    { "/", "/", 1 },
    { "/a/b", "/a/b", 4 },
    { "/a/../b", "/b", 2 },
    { "/..", "/", 1 },
    { "/../../etc/passwd", "/etc/passwd", 11 },
    { "/a/b/..", "/a/", 3 },
    { "/a/b/.", "/a/b/", 5 },
    { "/a/./b", "/a/b", 4 },
    { "/a//b", "/a//b", 5 },
    { "/assets/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", 11 },
    { "/assets/..%2f..%2fetc%2fpasswd", "/etc/passwd", 11 },
    { "/assets/.%2e/.%2E/etc/passwd", "/etc/passwd", 11 },
    { "/%2E%2E", "/", 1 },
    { "/assets/console.js/..", "/assets/", 8 },
    { "/a%2Fb", "/a/b", 4 },
    { "/%41%62", "/Ab", 3 },
    { "/...", "/...", 4 },
    { "/..a/.b", "/..a/.b", 7 },
    { "/a/%00", "/a/\0", 4 },
    { "/assets/%c0%ae%c0%ae/x", "/assets/\xc0\xae\xc0\xae/x", 14 },
  };
  char out[256];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long n = mh_hp_normalize_path(cases[i].in, strlen(cases[i].in), out);
    ok(n == (long)cases[i].outlen && !memcmp(out, cases[i].out, cases[i].outlen), "path %s -> %s", cases[i].in, cases[i].out);
  }
  /* random paths of slashes, dots and their escapes: never a "." or ".."
     segment in what comes out, and it always starts with '/' */
  {
    static const char *bits[] = { "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "a", "%", "%5c", "\\" };
    int bad = 0, refused = 0;
    unsigned seed = 12345;
    for (int t = 0; t < 20000; t++) {
      char in[128] = "/";
      size_t n = 1;
      int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
      long len;
      for (int k = 0; k < parts; k++) {
        const char *b = bits[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof bits / sizeof bits[0])];
        memcpy(in + n, b, strlen(b));
        n += strlen(b);
      }
      len = mh_hp_normalize_path(in, n, out);
      if (len < 0) { refused++; continue; }
      if (out[0] != '/') bad++;
      for (long i = 0; i < len; i++) {
        if (out[i] != '/') continue;
        long e = i + 1;
        while (e < len && out[e] != '/') e++;
        if ((e - i - 1 == 1 && out[i + 1] == '.') || (e - i - 1 == 2 && out[i + 1] == '.' && out[i + 2] == '.')) {
          if (bad++ < 3) diag("dot segment left: %.*s -> %.*s", (int)n, in, (int)len, out);
        }
      }
    }
    is_int(bad, 0, "20,000 random paths: no '.' or '..' segment is left, each starts with '/' (%d bad escapes refused)", refused);
  }
}

int main(void) {
  test_simple();
  test_versions_and_connection();
  test_body_and_pipeline();
  test_refused();
  test_repeated();
  test_absolute_form();
  test_paths();
  return done_testing();
}
