/*
** httpparse.c — the console's HTTP/1.1 request parser (see httpparse.h for
** what it refuses and why).  Written for this project from RFC 9110/9112 and
** RFC 3986; no other parser's code.
**
** The head is read a byte at a time (it is at most max_head bytes): each byte
** is checked as it arrives (a control character or a bare CR/LF is refused at
** once, the size bound is counted before the byte is kept), and each line is
** parsed when its CRLF arrives.  The framing is decided once the head ends,
** from every header line together, before a byte of the body is read.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "httpparse.h"

/* Where in the request the next byte falls. */
enum { S_IDLE, S_LINE, S_CR, S_BODY, S_DONE, S_ERROR };

static int fail(mh_hp *p, int status, const char *why) {
  p->state = S_ERROR;
  p->status = status;
  p->why = why;
  return MH_HP_ERROR;
}

/* fail() with a text naming a value (a length, a limit, what was sent: the
** head holds visible ASCII and tabs only, quoted through SHOWN). */
static int failf(mh_hp *p, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(mh_hp *p, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->why_buf, sizeof p->why_buf, fmt, ap);
  va_end(ap);
  return fail(p, status, p->why_buf);
}

/* A header value in a text: at most 40 bytes of it ("%.*s", SHOWN(v, n)). */
#define SHOWN(v, n) (int)((n) > 40 ? 40 : (n)), (v)

/* RFC 9110 5.6.2: the characters of a token (method, header name). */
static int tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* a (n bytes) equals the lower-case lc, ignoring case. */
static int eq_nocase(const char *a, size_t n, const char *lc) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!lc[i] || lower((unsigned char)a[i]) != lc[i]) return 0;
  return lc[i] == 0;
}

/* a and b (n bytes each) are equal, ignoring case. */
static int eq_nocase_n(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long mh_hp_normalize_path(const char *in, size_t n, char *out) {
  size_t dn = 0, o = 0, i;
  /* 1: decode into out */
  for (i = 0; i < n; i++) {
    if (in[i] == '%') {
      int hi, lo;
      if (i + 2 >= n) return -1;
      hi = hexval((unsigned char)in[i + 1]);
      lo = hexval((unsigned char)in[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      out[dn++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[dn++] = in[i];
    }
  }
  /* 2: the segments of the decoded path, each "/seg", rewritten in place:
     "." is dropped, ".." drops the last kept one; when either is the last
     segment the path keeps its trailing '/' (RFC 3986 5.2.4).  The write
     position never passes the read position, so one buffer serves. */
  i = 0;
  while (i < dn) {
    size_t start, len;
    if (out[i] == '/') i++;                 /* every segment but a leading one follows '/' */
    start = i;
    while (i < dn && out[i] != '/') i++;
    len = i - start;
    if ((len == 1 && out[start] == '.') || (len == 2 && out[start] == '.' && out[start + 1] == '.')) {
      if (len == 2)
        while (o > 0 && out[--o] != '/') {}  /* back to the '/' before the last kept segment */
      if (i >= dn) out[o++] = '/';          /* "/a/.." and "/a/." end in '/' */
      continue;
    }
    out[o++] = '/';
    memmove(out + o, out + start, len);
    o += len;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return (long)o;
}

/* The request line: method SP target SP version, each strictly formed. */
static int request_line(mh_hp *p, char *line, size_t n) {
  mh_hp_req *r = p->req;
  size_t i = 0, t0, pend;
  const char *path;
  size_t path_n;
  long len;
  while (i < n && tchar((unsigned char)line[i])) i++;
  if (i == 0 || i >= n || line[i] != ' ') return fail(p, 400, "malformed request line (method)");
  r->method = line;
  r->method_len = i;
  t0 = ++i;
  while (i < n && line[i] != ' ') {
    unsigned char c = (unsigned char)line[i];
    if (c <= 0x20 || c >= 0x7f) return fail(p, 400, "the request target holds a byte that is not visible ASCII");
    if (c == '#') return fail(p, 400, "the request target holds a fragment ('#')");
    i++;
  }
  if (i == t0 || i >= n) return fail(p, 400, "malformed request line (target)");
  r->target = line + t0;
  r->target_len = i - t0;
  i++;
  if (n - i != 8 || memcmp(line + i, "HTTP/", 5) != 0 || line[i + 5] < '0' || line[i + 5] > '9' ||
      line[i + 6] != '.' || line[i + 7] < '0' || line[i + 7] > '9')
    return fail(p, 400, "malformed request line (version)");
  /* the target's form: origin ("/path?query") or absolute ("http://host/path?query") */
  path = r->target;
  path_n = r->target_len;
  if (path_n > 7 && eq_nocase(path, 7, "http://")) {
    size_t a = 7;
    while (a < path_n && path[a] != '/' && path[a] != '?') a++;
    if (a == 7 || memchr(path + 7, '@', a - 7)) return fail(p, 400, "the request target's authority is malformed");
    r->authority = path + 7;
    r->authority_len = a - 7;
    path += a;
    path_n -= a;
  } else if (path_n == 0 || path[0] != '/') {
    return fail(p, 400, "the request target must be a path (or an http:// URL)");
  }
  pend = 0;
  while (pend < path_n && path[pend] != '?') pend++;
  if (pend < path_n) {
    r->query = path + pend + 1;
    r->query_len = path_n - pend - 1;
  }
  if (!(r->path = malloc(pend + 2))) return fail(p, 503, "service unavailable: out of memory");
  if (pend == 0) {                           /* "http://host" or "http://host?q" */
    r->path[0] = '/';
    r->path[1] = 0;
    r->path_len = 1;
  } else if (path[0] != '/') {
    return fail(p, 400, "the request target must be a path (or an http:// URL)");
  } else if ((len = mh_hp_normalize_path(path, pend, r->path)) < 0) {
    return fail(p, 400, "the request path holds a malformed %-escape");
  } else {
    r->path_len = (size_t)len;
  }
  if (line[i + 5] != '1' || (line[i + 7] != '0' && line[i + 7] != '1'))
    return failf(p, 505, "HTTP version not supported: %.8s (HTTP/1.0 and HTTP/1.1 only)", line + i);
  r->minor = line[i + 7] - '0';
  r->is_head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
  return MH_HP_MORE;
}

/* A header line: name ":" OWS value OWS. */
static int field_line(mh_hp *p, char *line, size_t n) {
  mh_hp_req *r = p->req;
  mh_hp_field *f;
  size_t i = 0, v, e;
  if (line[0] == ' ' || line[0] == '\t') return fail(p, 400, "obsolete header line folding");
  while (i < n && tchar((unsigned char)line[i])) i++;
  if (i < n && (line[i] == ' ' || line[i] == '\t')) return fail(p, 400, "whitespace before a header's colon");
  if (i == 0 || i >= n || line[i] != ':') return fail(p, 400, "malformed header line");
  if (r->nfields == MH_HP_MAX_FIELDS) return fail(p, 400, "more than 100 header lines");
  v = i + 1;
  while (v < n && (line[v] == ' ' || line[v] == '\t')) v++;
  e = n;
  while (e > v && (line[e - 1] == ' ' || line[e - 1] == '\t')) e--;
  f = &r->fields[r->nfields++];
  f->name = line;
  f->name_len = i;
  f->value = line + v;
  f->value_len = e - v;
  return MH_HP_MORE;
}

/* Fields with one value only that a decision of the server or the console
** rests on: sent twice, they are refused (400), never read by one copy while
** a proxy in front may have read the other (Host, Content-Length and
** Transfer-Encoding are judged with the framing, in head_done).  Shown: the
** name as the refusal says it (never as the request spelt it). */
static const struct { const char *lc, *shown; } SINGLETONS[] = {
  { "origin", "Origin" }, { "referer", "Referer" }, { "content-type", "Content-Type" },
  { "authorization", "Authorization" }, { "sec-fetch-site", "Sec-Fetch-Site" },
  { "sec-fetch-mode", "Sec-Fetch-Mode" }, { "sec-fetch-dest", "Sec-Fetch-Dest" },
  { "sec-fetch-user", "Sec-Fetch-User" }, { "x-csrf-token", "X-CSRF-Token" },
  { "x-mailhook-poll", "X-Mailhook-Poll" },
};

/* Several lines of one name: a singleton is refused; the others' values are
** joined into r->joined, the first line's value pointing there and the later
** lines marked dup (mh_hp_header, and the server's own look at Cookie, then
** see every value: a first-copy reader and a last-copy proxy cannot disagree).
** MH_HP_MORE, or MH_HP_ERROR. */
static int join_repeats(mh_hp *p) {
  mh_hp_req *r = p->req;
  size_t cap = 0, at = 0;
  for (size_t i = 0; i < r->nfields; i++) cap += r->fields[i].value_len + 2;
  for (size_t i = 0; i < r->nfields; i++) {
    mh_hp_field *f = &r->fields[i];
    int cookie, n = 0;
    const char *sep;
    if (f->dup) continue;
    for (size_t j = i + 1; j < r->nfields; j++)
      if (r->fields[j].name_len == f->name_len && eq_nocase_n(r->fields[j].name, f->name, f->name_len)) n++;
    if (!n) continue;
    for (size_t k = 0; k < sizeof SINGLETONS / sizeof SINGLETONS[0]; k++)
      if (eq_nocase(f->name, f->name_len, SINGLETONS[k].lc))
        return failf(p, 400, "more than one %s", SINGLETONS[k].shown);
    if (!r->joined && !(r->joined = malloc(cap ? cap : 1))) return fail(p, 503, "service unavailable: out of memory");
    cookie = eq_nocase(f->name, f->name_len, "cookie");
    sep = cookie ? "; " : ", ";
    {
      size_t start = at;
      for (size_t j = i; j < r->nfields; j++) {
        mh_hp_field *g = &r->fields[j];
        if (g->name_len != f->name_len || !eq_nocase_n(g->name, f->name, f->name_len)) continue;
        if (g->value_len == 0) { if (j != i) g->dup = 1; continue; }   /* an empty line adds nothing */
        if (at > start) { memcpy(r->joined + at, sep, 2); at += 2; }
        memcpy(r->joined + at, g->value, g->value_len);
        at += g->value_len;
        if (j != i) g->dup = 1;
      }
      f->value = r->joined + start;
      f->value_len = at - start;
    }
  }
  return MH_HP_MORE;
}

/* Does the comma-separated list (a Connection header) hold token lc? */
static int list_has(const char *s, size_t n, const char *lc) {
  size_t i = 0;
  while (i < n) {
    size_t a, b;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    a = i;
    while (i < n && s[i] != ',') i++;
    b = i;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
    if (b > a && eq_nocase(s + a, b - a, lc)) return 1;
  }
  return 0;
}

/* The head ended: the framing, from all header lines together. */
static int head_done(mh_hp *p) {
  mh_hp_req *r = p->req;
  const mh_hp_field *cl = NULL, *host = NULL, *te = NULL, *ex = NULL;
  int ncl = 0, nte = 0, nhost = 0, te_chunked = 0, close = 0, keep = 0, expect = 0, expect_other = 0;
  for (size_t i = 0; i < r->nfields; i++) {
    const mh_hp_field *f = &r->fields[i];
    if (eq_nocase(f->name, f->name_len, "content-length")) { ncl++; cl = f; }
    else if (eq_nocase(f->name, f->name_len, "transfer-encoding")) {
      nte++;
      te = f;
      te_chunked = eq_nocase(f->value, f->value_len, "chunked");
    } else if (eq_nocase(f->name, f->name_len, "host")) { nhost++; host = f; }
    else if (eq_nocase(f->name, f->name_len, "connection")) {
      close |= list_has(f->value, f->value_len, "close");
      keep |= list_has(f->value, f->value_len, "keep-alive");
    } else if (eq_nocase(f->name, f->name_len, "expect")) {
      if (eq_nocase(f->value, f->value_len, "100-continue")) expect = 1; else { expect_other = 1; ex = f; }
    }
  }
  if (nte && ncl) return fail(p, 400, "both Content-Length and Transfer-Encoding");
  if (ncl > 1) return fail(p, 400, "more than one Content-Length");
  if (nte > 1) return fail(p, 400, "more than one Transfer-Encoding");
  if (nte && te_chunked) return fail(p, 411, "length required: a chunked request body is not taken, send Content-Length");
  if (nte) return failf(p, 501, "not implemented: Transfer-Encoding '%.*s' (a request body is taken "
                         "with Content-Length only)", SHOWN(te->value, te->value_len));
  if (nhost > 1) return fail(p, 400, "more than one Host");
  if (join_repeats(p) != MH_HP_MORE) return MH_HP_ERROR;
  if (host && !r->authority) {
    r->authority = host->value;
    r->authority_len = host->value_len;
  }
  if (cl) {
    size_t v = 0;
    if (cl->value_len == 0) return fail(p, 400, "malformed Content-Length");
    for (size_t i = 0; i < cl->value_len; i++) {
      unsigned char c = (unsigned char)cl->value[i];
      if (c < '0' || c > '9') return fail(p, 400, "malformed Content-Length");
      if (v > p->max_body) continue;         /* already too large: no overflow */
      v = v * 10 + (size_t)(c - '0');
    }
    if (v > p->max_body)
      return failf(p, 413, "request body too large: %.*s%s bytes, the limit is %zu", SHOWN(cl->value, cl->value_len),
                   cl->value_len > 40 ? "..." : "", p->max_body);
    r->content_length = v;
  }
  if (expect_other) return failf(p, 417, "expectation failed: Expect '%.*s' (only 100-continue is understood)",
                                  SHOWN(ex->value, ex->value_len));
  r->keep_alive = r->minor == 1 ? !close : (keep && !close);
  if (r->content_length == 0) {
    p->state = S_DONE;
    return MH_HP_DONE;
  }
  r->expect_continue = expect && r->minor == 1;
  if (!(r->body = malloc(r->content_length))) return fail(p, 503, "service unavailable: out of memory");
  p->got = 0;
  p->state = S_BODY;
  return MH_HP_HEAD;
}

/* A line ended (its CRLF is in head): the request line, a header line, or the
** empty line that ends the head. */
static int line_done(mh_hp *p) {
  mh_hp_req *r = p->req;
  char *line = r->head + p->line_at;
  size_t n = r->head_len - 2 - p->line_at;
  int rc;
  if (!r->method) {
    if (n == 0) {                            /* empty lines before a request are ignored (RFC 9112 2.2) */
      p->line_at = r->head_len;
      return MH_HP_MORE;
    }
    rc = request_line(p, line, n);
  } else if (n == 0) {
    return head_done(p);
  } else {
    rc = field_line(p, line, n);
  }
  p->line_at = r->head_len;
  return rc;
}

void mh_hp_init(mh_hp *p, size_t max_head, size_t max_body) {
  memset(p, 0, sizeof *p);
  p->max_head = max_head;
  p->max_body = max_body;
}

int mh_hp_feed(mh_hp *p, const char *data, size_t len, size_t *used) {
  size_t i = 0;
  int rc = MH_HP_MORE;
  *used = 0;
  if (p->state == S_ERROR) return MH_HP_ERROR;
  if (p->state == S_DONE) return MH_HP_DONE;
  while (i < len) {
    unsigned char c = (unsigned char)data[i];
    mh_hp_req *r = p->req;
    if (p->state == S_BODY) {
      size_t take = r->content_length - p->got;
      if (take > len - i) take = len - i;
      memcpy(r->body + p->got, data + i, take);
      p->got += take;
      i += take;
      if (p->got == r->content_length) {
        p->state = S_DONE;
        rc = MH_HP_DONE;
        break;
      }
      continue;
    }
    if (p->state == S_IDLE) {
      if (!(r = p->req = calloc(1, sizeof *r)) || !(r->head = malloc(p->max_head ? p->max_head : 1))) {
        *used = i;
        return fail(p, 503, "service unavailable: out of memory");
      }
      p->line_at = 0;
      p->state = S_LINE;
    }
    if (r->head_len >= p->max_head) {
      i++;
      *used = i;
      if (!r->method)                       /* still in the request line: its target is too long */
        return failf(p, 414, "URI too long: the request line is over %zu bytes", p->max_head);
      return failf(p, 431, "request head too large: over %zu bytes (the request line and headers)", p->max_head);
    }
    if (p->state == S_CR) {
      if (c != '\n') { *used = i + 1; return fail(p, 400, "a bare CR in the request head"); }
      r->head[r->head_len++] = (char)c;
      i++;
      p->state = S_LINE;
      rc = line_done(p);
      if (rc != MH_HP_MORE) break;
      continue;
    }
    /* S_LINE */
    if (c == '\r') {
      p->state = S_CR;
    } else if (c == '\n') {
      *used = i + 1;
      return fail(p, 400, "a bare LF in the request head (lines end with CRLF)");
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      *used = i + 1;
      return fail(p, 400, c ? "a control character in the request head" : "a NUL in the request head");
    }
    r->head[r->head_len++] = (char)c;
    i++;
  }
  *used = i;
  return rc;
}

mh_hp_req *mh_hp_take(mh_hp *p) {
  mh_hp_req *r;
  if (p->state != S_DONE) return NULL;
  r = p->req;
  p->req = NULL;
  p->state = S_IDLE;
  p->got = 0;
  return r;
}

int mh_hp_started(const mh_hp *p) { return p->state != S_IDLE && p->state != S_DONE; }

void mh_hp_req_free(mh_hp_req *r) {
  if (!r) return;
  free(r->head);
  free(r->path);
  free(r->body);
  free(r->joined);
  free(r);
}

void mh_hp_reset(mh_hp *p) {
  mh_hp_req_free(p->req);
  p->req = NULL;
  p->state = S_IDLE;
  p->got = 0;
  p->status = 0;
  p->why = NULL;
}

void mh_hp_free(mh_hp *p) { mh_hp_reset(p); }

const char *mh_hp_header(const mh_hp_req *r, const char *lc_name, size_t *len) {
  *len = 0;
  if (!strcmp(lc_name, "host")) {
    if (!r->authority) return NULL;
    *len = r->authority_len;
    return r->authority;
  }
  for (size_t i = 0; i < r->nfields; i++)
    if (!r->fields[i].dup && eq_nocase(r->fields[i].name, r->fields[i].name_len, lc_name)) {
      *len = r->fields[i].value_len;
      return r->fields[i].value;
    }
  return NULL;
}
