/*
** mime7-ref.h — an independent, in-memory MIME decoder for the tests of
** runtime/mime7.c (tests/unit/test-mime7.c, tests/fuzz/fuzz-mime7.c): it turns
** a message into a canonical text of what a reader sees — each header field's
** decoded value (RFC 2047 encoded-words, RFC 2231 parameters, display names)
** and each leaf part's decoded body (quoted-printable, base64, or as is) — so
** that "the converted message decodes to exactly the original" is one string
** comparison.  Written apart from mime7.c's streaming walker (whole buffers,
** recursion, no shared code) so that the two cannot share a mistake.
**
** The input is first put in the form the data writer sends: every line end
** (CRLF, bare CR, bare LF) as CRLF, and a final CRLF.  Structure rules match
** RFC 2046: a delimiter is "--boundary" (or "--boundary--") at the start of a
** line, then only blanks; the CRLF before it belongs to it.
*/
#ifndef MH_MIME7_REF_H
#define MH_MIME7_REF_H

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct { char *p; size_t n, cap; } rbuf;

static void rb_add(rbuf *b, const void *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2 + 64;
    b->p = (char *)realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = '\0';
}
static void rb_adds(rbuf *b, const char *s) { rb_add(b, s, strlen(s)); }

/* Line ends as CRLF, and a final CRLF (what the data writer sends). */
static void ref_normalize(const char *in, size_t n, rbuf *o) {
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '\r' || in[i] == '\n') {
      rb_add(o, "\r\n", 2);
      if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') i++;
    } else {
      rb_add(o, in + i, 1);
    }
  }
  if (o->n < 2 || o->p[o->n - 2] != '\r' || o->p[o->n - 1] != '\n') rb_add(o, "\r\n", 2);
}

static int ref_b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static void ref_b64(const char *p, size_t n, rbuf *o) {
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int d = ref_b64val(p[i]);
    if (d < 0) continue;   /* line ends, padding */
    v = v << 6 | (unsigned)d;
    bits += 6;
    if (bits >= 8) {
      char c = (char)(v >> (bits - 8));
      rb_add(o, &c, 1);
      bits -= 8;
    }
  }
}

static int ref_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static void ref_qp(const char *p, size_t n, rbuf *o) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '=' && i + 2 < n + 1 && i + 1 < n && p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n') {
      i += 2;   /* soft line break */
      continue;
    }
    if (p[i] == '=' && i + 2 < n && ref_hex(p[i + 1]) >= 0 && ref_hex(p[i + 2]) >= 0) {
      char c = (char)(ref_hex(p[i + 1]) * 16 + ref_hex(p[i + 2]));
      rb_add(o, &c, 1);
      i += 2;
      continue;
    }
    rb_add(o, p + i, 1);
  }
}

/* Decodes the RFC 2047 B encoded-words in s (whitespace between two words is
** dropped); anything else is copied. */
/* RFC 2047 §2: an encoded word's charset is a token (no especials), its text
** printable ASCII without '?' or SPACE.  Anything else is plain text a reader
** shows as written ("=?:?B?==<0xfe>..." is not a word). */
static int ref_word_ok(const char *cs, const char *q1, const char *end) {
  if (cs == q1) return 0;
  for (const char *k = cs; k < q1; k++)
    if ((unsigned char)*k <= ' ' || (unsigned char)*k >= 0x7f || strchr("()<>@,;:\"/[]?.=", *k)) return 0;
  for (const char *k = q1 + 3; k < end; k++)
    if ((unsigned char)*k <= ' ' || (unsigned char)*k >= 0x7f || *k == '?') return 0;
  return 1;
}

static void ref_words(const char *s, size_t n, rbuf *o) {
  size_t i = 0;
  int last_word = 0;
  size_t ws_start = 0, ws_len = 0;
  while (i < n) {
    if (s[i] == '=' && i + 1 < n && s[i + 1] == '?') {
      const char *q1 = memchr(s + i + 2, '?', n - i - 2);
      if (q1 && q1 + 2 < s + n && (q1[1] == 'B' || q1[1] == 'b') && q1[2] == '?') {
        const char *end = NULL;
        for (const char *k = q1 + 3; k + 1 < s + n; k++)
          if (k[0] == '?' && k[1] == '=') { end = k; break; }
        if (end && ref_word_ok(s + i + 2, q1, end)) {
          if (!last_word && ws_len) rb_add(o, s + ws_start, ws_len);
          ws_len = 0;
          ref_b64(q1 + 3, (size_t)(end - q1 - 3), o);
          i = (size_t)(end - s) + 2;
          last_word = 1;
          continue;
        }
      }
    }
    if (s[i] == ' ' || s[i] == '\t') {
      if (!ws_len) ws_start = i;
      ws_len++;
      i++;
      continue;
    }
    if (ws_len) { rb_add(o, s + ws_start, ws_len); ws_len = 0; }
    last_word = 0;
    rb_add(o, s + i, 1);
    i++;
  }
  if (ws_len) rb_add(o, s + ws_start, ws_len);
}

/* value unfolded (CRLF dropped) and trimmed of leading blanks */
static void ref_unfold(const char *v, size_t n, rbuf *o) {
  size_t i = 0;
  while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
  for (; i < n; i++) {
    if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') { i++; continue; }
    rb_add(o, v + i, 1);
  }
  while (o->n && (o->p[o->n - 1] == ' ' || o->p[o->n - 1] == '\t')) o->p[--o->n] = '\0';
  while (o->n && (o->p[0] == ' ' || o->p[0] == '\t')) { memmove(o->p, o->p + 1, o->n); o->n--; }
}

static void ref_pct(const char *p, size_t n, rbuf *o) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '%' && i + 2 < n && ref_hex(p[i + 1]) >= 0 && ref_hex(p[i + 2]) >= 0) {
      char c = (char)(ref_hex(p[i + 1]) * 16 + ref_hex(p[i + 2]));
      rb_add(o, &c, 1);
      i += 2;
    } else {
      rb_add(o, p + i, 1);
    }
  }
}

/* Content-Type-like: "type/sub" then name=value for each parameter, decoded
** (quoted strings unquoted, RFC 2231 extended values and continuations
** joined), each on its own "; " segment, in order of first appearance. */
static void ref_params(const char *u, size_t n, rbuf *o, char *boundary, size_t bcap, char *type, size_t tcap) {
  size_t i = 0, a = 0;
  int q = 0, first = 1;
  char *lastname = NULL;   /* (names of any length, NULs included: compared by length) */
  size_t lastn = 0;
  for (i = 0; i <= n; i++) {
    if (i < n) {
      if (q) { if (u[i] == '\\' && i + 1 < n) i++; else if (u[i] == '"') q = 0; continue; }   /* (a final backslash escapes nothing: the segment still ends at n) */
      if (u[i] == '"') { q = 1; continue; }
      if (u[i] != ';') continue;
    }
    const char *seg = u + a;
    size_t sn = (i < n ? i : n) - a;
    a = i + 1;
    while (sn && (*seg == ' ' || *seg == '\t')) { seg++; sn--; }
    while (sn && (seg[sn - 1] == ' ' || seg[sn - 1] == '\t')) sn--;
    if (first) {
      first = 0;
      rb_add(o, seg, sn);
      if (type) {
        size_t k;
        for (k = 0; k < sn && k + 1 < tcap; k++) type[k] = (char)(seg[k] | 0x20);
        type[k] = '\0';
      }
      continue;
    }
    const char *eq = memchr(seg, '=', sn);
    if (!eq) continue;
    size_t nl = (size_t)(eq - seg);
    while (nl && (seg[nl - 1] == ' ' || seg[nl - 1] == '\t')) nl--;
    char *name = malloc(nl + 1);
    assert(name);
    for (size_t k = 0; k < nl; k++) name[k] = (char)(seg[k] | 0x20);
    name[nl] = '\0';
    size_t bl = nl;   /* the name without its "*N*" */
    const char *val = eq + 1;
    size_t vn = (size_t)(seg + sn - val);
    while (vn && (*val == ' ' || *val == '\t')) { val++; vn--; }
    rbuf dv = { 0 };
    char *star = memchr(name, '*', nl);
    if (star) {
      /* name*=cs''pct, name*N*=..., name*N=... */
      int extended = name[nl - 1] == '*';
      *star = '\0';
      bl = (size_t)(star - name);
      const char *v = val;
      size_t vl = vn;
      if (extended && (!strstr(name, "") || 1)) {
        const char *ap = memchr(v, '\'', vl);
        if (ap && (star[1] == '*' || star[1] == '0' || star[1] == '\0')) {
          const char *ap2 = memchr(ap + 1, '\'', vl - (size_t)(ap + 1 - v));
          if (ap2) { vl -= (size_t)(ap2 + 1 - v); v = ap2 + 1; }
        }
        ref_pct(v, vl, &dv);
      } else {
        rb_add(&dv, v, vl);
      }
    } else if (vn && val[0] == '"') {
      for (size_t k = 1; k < vn && val[k] != '"'; k++) {
        if (val[k] == '\\' && k + 1 < vn) k++;
        rb_add(&dv, val + k, 1);
      }
    } else {
      rb_add(&dv, val, vn);
    }
    if (lastname && bl == lastn && !memcmp(name, lastname, bl)) {
      rb_add(o, dv.p ? dv.p : "", dv.n);   /* a continuation */
      free(name);
    } else {
      rb_adds(o, "; ");
      rb_add(o, name, bl);
      rb_adds(o, "=");
      rb_add(o, dv.p ? dv.p : "", dv.n);
      free(lastname);
      lastname = name, lastn = bl;
    }
    if (boundary && lastn == 8 && !memcmp(lastname, "boundary", 8) && dv.n < bcap) {
      memcpy(boundary, dv.p ? dv.p : "", dv.n);
      boundary[dv.n] = '\0';
    }
    free(dv.p);
  }
  free(lastname);
}

/* An address list: "display|addr" per mailbox (display: quotes removed,
** encoded-words decoded). */
static void ref_addrs(const char *u, size_t n, rbuf *o) {
  size_t a = 0;
  int q = 0, angle = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n) {
      if (q) { if (u[i] == '\\' && i + 1 < n) i++; else if (u[i] == '"') q = 0; continue; }   /* (a final backslash escapes nothing: the segment still ends at n) */
      if (u[i] == '"') { q = 1; continue; }
      if (u[i] == '<') angle = 1;
      if (u[i] == '>') angle = 0;
      if (u[i] != ',' || angle) continue;
    }
    const char *it = u + a, *lt = NULL;
    size_t in = (i < n ? i : n) - a;
    a = i + 1;
    /* blanks around an element mean nothing (a fold after the comma adds one) */
    while (in && (*it == ' ' || *it == '\t')) { it++; in--; }
    while (in && (it[in - 1] == ' ' || it[in - 1] == '\t')) in--;
    if (!in) continue;   /* an empty element (",,", obs-addr-list) is no address */
    int iq = 0;
    for (size_t k = 0; k < in; k++) {
      if (it[k] == '"') iq = !iq;
      else if (!iq && it[k] == '<') lt = it + k;
    }
    rbuf ph = { 0 }, un = { 0 };
    if (lt) {
      size_t pn = (size_t)(lt - it);
      int qq = 0;
      for (size_t k = 0; k < pn; k++) {
        if (it[k] == '"') { qq = !qq; continue; }
        if (qq && it[k] == '\\' && k + 1 < pn) k++;
        rb_add(&un, it + k, 1);
      }
      ref_words(un.p ? un.p : "", un.n, &ph);
      while (ph.n && (ph.p[ph.n - 1] == ' ' || ph.p[ph.n - 1] == '\t')) ph.p[--ph.n] = '\0';
      size_t s0 = 0;
      while (s0 < ph.n && (ph.p[s0] == ' ' || ph.p[s0] == '\t')) s0++;
      rb_add(o, ph.p ? ph.p + s0 : "", ph.n - s0);
      rb_adds(o, "|");
      rb_add(o, lt, (size_t)(it + in - lt));
    } else {
      rb_add(o, it, in);
    }
    rb_adds(o, ";");
    free(ph.p);
    free(un.p);
  }
}

static int ref_is(const char *name, size_t nl, const char *want) {
  return strlen(want) == nl && !strncasecmp(name, want, nl);
}

/* One entity: its canonical text appended to o. */
/* The whole value is the literal (a value may hold a NUL: strcmp would stop
** there, and take "text/plain; charset=utf-8<NUL>x" for the one a conversion adds). */
static int ref_same(const rbuf *u, const char *lit) { return u->n == strlen(lit) && !memcmp(u->p, lit, u->n); }

static void ref_entity(const char *p, size_t n, int digest_part, rbuf *o, int depth) {
  size_t he = n, bs = n;
  char boundary[80] = "", type[80] = "", cte[40] = "";
  if (depth > 40) return;
  /* the header block ends at the first empty line */
  if (n >= 2 && p[0] == '\r' && p[1] == '\n') { he = 0; bs = 2; }
  else {
    const char *e = NULL;
    for (size_t i = 0; i + 3 < n; i++)
      if (!memcmp(p + i, "\r\n\r\n", 4)) { e = p + i; break; }
    if (e) { he = (size_t)(e - p) + 2; bs = he + 2; }
  }
  /* fields */
  for (size_t i = 0; i < he;) {
    size_t j = i;
    while (j < he) {
      const char *nl = memchr(p + j, '\n', he - j);
      j = nl ? (size_t)(nl - p) + 1 : he;
      if (j < he && (p[j] == ' ' || p[j] == '\t')) continue;
      break;
    }
    const char *f = p + i, *colon = memchr(f, ':', j - i);
    size_t fl = j - i;
    if (fl >= 2 && f[fl - 2] == '\r') fl -= 2;
    if (colon) {
      size_t nl = (size_t)(colon - f);
      rbuf u = { 0 };
      while (nl && (f[nl - 1] == ' ' || f[nl - 1] == '\t')) nl--;   /* "Name :" (obsolete) */
      ref_unfold(colon + 1, (size_t)(f + fl - colon - 1), &u);
      if (ref_is(f, nl, "content-transfer-encoding")) {
        /* relabelled by a conversion: read, not compared */
        size_t k;
        for (k = 0; k < u.n && k + 1 < sizeof cte; k++) cte[k] = (char)(u.p[k] | 0x20);
        cte[k] = '\0';
      } else if (ref_is(f, nl, "mime-version")) {
        /* added by a conversion: not compared */
      } else if (ref_is(f, nl, "content-type") && u.n && (ref_same(&u, "text/plain; charset=utf-8") ||
                                                          ref_same(&u, "text/plain; charset=unknown-8bit") ||
                                                          ref_same(&u, "text/plain; charset=us-ascii"))) {
        snprintf(type, sizeof type, "text/plain");   /* added by a conversion: not compared */
      } else {
        rb_adds(o, "H:");
        for (size_t k = 0; k < nl; k++) { char c = (char)(f[k] | 0x20); rb_add(o, &c, 1); }
        rb_adds(o, ":");
        if (ref_is(f, nl, "content-type") || ref_is(f, nl, "content-disposition")) {
          ref_params(u.p ? u.p : "", u.n, o, ref_is(f, nl, "content-type") ? boundary : NULL, sizeof boundary,
                     ref_is(f, nl, "content-type") ? type : NULL, sizeof type);
        } else if (ref_is(f, nl, "from") || ref_is(f, nl, "to") || ref_is(f, nl, "cc") ||
                   ref_is(f, nl, "reply-to")) {
          ref_addrs(u.p ? u.p : "", u.n, o);
        } else {
          size_t before = o->n;
          ref_words(u.p ? u.p : "", u.n, o);   /* decoded, then trimmed as the original was */
          while (o->n > before && (o->p[o->n - 1] == ' ' || o->p[o->n - 1] == '\t')) o->p[--o->n] = '\0';
        }
        rb_adds(o, "\n");
      }
      free(u.p);
    }
    i = j;
  }
  /* drop the fields conversion may add; their canonical lines are kept above */
  const char *b = p + bs;
  size_t bn = bs <= n ? n - bs : 0;
  if (he == n) return;   /* no body */
  if (!strncmp(type, "multipart/", 10) && boundary[0] && depth < 30) {
    size_t bl = strlen(boundary);
    size_t start = 0, part = (size_t)-1;
    int closed = 0;
    for (size_t i = 0; i <= bn && !closed;) {
      /* a line start at i (0, or after CRLF) */
      int at_line = i == 0 || (i >= 2 && b[i - 2] == '\r' && b[i - 1] == '\n');
      if (at_line && i + 2 + bl <= bn && b[i] == '-' && b[i + 1] == '-' && !memcmp(b + i + 2, boundary, bl)) {
        size_t k = i + 2 + bl;
        int close = k + 1 < bn && b[k] == '-' && b[k + 1] == '-';
        if (close) k += 2;
        while (k < bn && (b[k] == ' ' || b[k] == '\t')) k++;
        if (k == bn || (b[k] == '\r' && k + 1 < bn && b[k + 1] == '\n')) {
          size_t end = i >= 2 ? i - 2 : 0;   /* the CRLF before it is the delimiter's */
          if (part != (size_t)-1) {
            rb_adds(o, "PART{\n");
            ref_entity(b + part, end - part, !strcmp(type, "multipart/digest"), o, depth + 1);
            rb_adds(o, "}\n");
          } else {
            rb_adds(o, "PRE:");
            rb_add(o, b, end);
            rb_adds(o, "\n");
          }
          start = k + 2 <= bn ? k + 2 : bn;
          part = start;
          if (close) { closed = 1; rb_adds(o, "EPI:"); rb_add(o, b + start, bn - start); rb_adds(o, "\n"); }
          i = start;
          continue;
        }
      }
      const char *nl = i < bn ? memchr(b + i, '\n', bn - i) : NULL;
      if (!nl) break;
      i = (size_t)(nl - b) + 1;
    }
    if (!closed && part != (size_t)-1) {
      rb_adds(o, "PART{\n");
      ref_entity(b + part, bn - part, 0, o, depth + 1);
      rb_adds(o, "}\n");
    }
    (void)start;
    return;
  }
  if (!strcmp(type, "message/rfc822") || (!type[0] && digest_part)) {
    rb_adds(o, "MSG{\n");
    ref_entity(b, bn, 0, o, depth + 1);
    rb_adds(o, "}\n");
    return;
  }
  rb_adds(o, "BODY:");
  if (!strcmp(cte, "quoted-printable")) ref_qp(b, bn, o);
  else if (!strcmp(cte, "base64")) ref_b64(b, bn, o);
  else rb_add(o, b, bn);
  rb_adds(o, "\n");
}

/* The canonical text of a whole message (free() the result). */
static char *ref_decode(const char *msg, size_t n, size_t *outlen) {
  rbuf norm = { 0 }, o = { 0 };
  ref_normalize(msg, n, &norm);
  ref_entity(norm.p ? norm.p : "", norm.n, 0, &o, 0);
  free(norm.p);
  if (!o.p) rb_add(&o, "", 0);
  *outlen = o.n;
  return o.p;
}

#endif
