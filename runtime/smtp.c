/*
** smtp.c — the SMTP client protocol: reply parser, EHLO capabilities, the
** dot-stuffing data writer and the session state machine (see smtp.h).
**
** One enter_state() sends the command that belongs to a state (and arms its
** timer); one on_reply() decides, per state, where a complete reply leads.
** With PIPELINING, [RSET,] MAIL, every RCPT and DATA leave as one group and
** the replies are then walked through the same states without sending again.
*/
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "smtp.h"
#include "mime7.h"
#include "error.h"
#include "log.h"
#include "eol.h"
#include "text.h"
#include "b64.h"
#include "pwhash.h"

/* --------------------------------------------------------------- names */

enum { K_NONE, K_GREET, K_CMD, K_MAIL, K_DATA, K_DOT };

static const char *const state_names[] = {
#define MH__X(name, kind) #name,
  MH_SMTP_STATE_MAP(MH__X)
#undef MH__X
};

static const int state_kind[] = {
#define MH__X(name, kind) K_##kind,
  MH_SMTP_STATE_MAP(MH__X)
#undef MH__X
};

const char *mh_smtp_state_name(mh_smtp_state st) {
  return (unsigned)st < MH_SMTP_NSTATES ? state_names[st] : "?";
}

/* -------------------------------------------------------- reply parser */

/* *dst = *src, the used bytes only: a reply is 10 KB of buffers for the few
** dozen bytes a 250 holds, and the decisive reply is kept once or twice per
** message (a struct assignment copied it all: a fifth of the engine's
** instructions per message). */
static void reply_copy(mh_smtp_reply *dst, const mh_smtp_reply *src) {
  size_t t = strnlen(src->text, sizeof src->text - 1);   /* (not len: send_done rewrites text) */
  size_t f = strnlen(src->first, sizeof src->first - 1);
  dst->code = src->code;
  dst->nlines = src->nlines;
  dst->done = src->done;
  memcpy(dst->enhanced, src->enhanced, sizeof dst->enhanced);
  dst->len = src->len;
  memcpy(dst->text, src->text, t);
  dst->text[t] = '\0';
  memcpy(dst->first, src->first, f);
  dst->first[f] = '\0';
}

void mh_smtp_reply_reset(mh_smtp_reply *r) {
  r->code = 0;
  r->nlines = 0;
  r->done = 0;
  r->enhanced[0] = '\0';
  r->len = 0;
  r->text[0] = '\0';
  r->first[0] = '\0';
}

/* "X.Y.Z" at the start of text, X the class of code: its length, else 0. */
static size_t enhanced_len(const char *t, size_t n, int code) {
  size_t i = 0, parts = 0;
  if (n < 5 || t[0] != '0' + code / 100) return 0;
  while (parts < 3) {
    size_t d = 0;
    while (i < n && t[i] >= '0' && t[i] <= '9' && d < 3) { i++; d++; }
    if (d == 0) return 0;
    parts++;
    if (parts < 3) {
      if (i >= n || t[i] != '.') return 0;
      i++;
    }
  }
  if (i < n && t[i] != ' ') return 0;
  return i;
}

int mh_smtp_reply_line(mh_smtp_reply *r, const char *line, size_t len) {
  int code;
  const char *t;
  size_t tn, room;
  if (r->done) mh_smtp_reply_reset(r);
  if (len > MH_SMTP_LINE_MAX) return MH_ETOOLONG;
  if (r->nlines >= MH_SMTP_LINES_MAX) return MH_ETOOLONG;
  if (len < 3) return MH_EPROTO;
  for (int i = 0; i < 3; i++)
    if (line[i] < '0' || line[i] > '9') return MH_EPROTO;
  code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (line[0] < '2' || line[0] > '5') return MH_EPROTO;
  if (len > 3 && line[3] != ' ' && line[3] != '-') return MH_EPROTO;
  if (r->nlines > 0 && code != r->code) return MH_EPROTO;  /* continuation must keep the code */
  r->code = code;
  r->nlines++;
  t = len > 4 ? line + 4 : "";
  tn = len > 4 ? len - 4 : 0;
  /* the text as it may be shown (text.h: a server's ESC, C1 CSI, bidi override,
     bytes that are no UTF-8 each a '?'): what reaches the report, the log, the
     sidecar and the console is this, never the raw bytes */
  memcpy(r->first, t, tn);
  tn = mh_text_shown(r->first, tn, 0);
  r->first[tn] = '\0';
  t = r->first;
  if (r->nlines == 1) {
    size_t e = enhanced_len(t, tn, code);
    if (e && e < sizeof r->enhanced) {
      memcpy(r->enhanced, t, e);
      r->enhanced[e] = '\0';
    }
  }
  /* joined text, truncated at the buffer's end on a character boundary */
  room = sizeof r->text - 1 - r->len;
  if (r->nlines > 1 && room > 0) { r->text[r->len++] = '\n'; room--; }
  if (tn > room) tn = mh_text_cut(t, room);
  memcpy(r->text + r->len, t, tn);
  r->len += tn;
  r->text[r->len] = '\0';
  if (len == 3 || line[3] == ' ') r->done = 1;
  return r->done;
}

/* ---------------------------------------------------------- EHLO caps */

static int kw_eq(const char *t, size_t n, const char *kw) {
  return strlen(kw) == n && strncasecmp(t, kw, n) == 0;
}

void mh_smtp_caps_line(mh_smtp_caps *c, const char *text) {
  const char *p = text, *e;
  size_t n, have;
  while (*p == ' ') p++;
  e = p;
  while (*e && *e != ' ' && *e != '=') e++;
  n = (size_t)(e - p);
  if (n == 0) return;
  /* the report list: keyword and parameters, as sent, bounded */
  have = strlen(c->list);
  if (have + strlen(p) + 2 < sizeof c->list) {
    if (have) strcat(c->list, " ");
    for (const char *q = p; *q; q++) {
      size_t l = strlen(c->list);
      c->list[l] = (*q == ' ') ? ',' : ((unsigned char)*q < 0x20 ? '?' : *q);
      c->list[l + 1] = '\0';
    }
  }
  if (kw_eq(p, n, "PIPELINING")) c->flags |= MH_SMTP_CAP_PIPELINING;
  else if (kw_eq(p, n, "8BITMIME")) c->flags |= MH_SMTP_CAP_8BITMIME;
  else if (kw_eq(p, n, "SMTPUTF8")) c->flags |= MH_SMTP_CAP_SMTPUTF8;
  else if (kw_eq(p, n, "STARTTLS")) c->flags |= MH_SMTP_CAP_STARTTLS;
  else if (kw_eq(p, n, "ENHANCEDSTATUSCODES")) c->flags |= MH_SMTP_CAP_ENHANCED;
  else if (kw_eq(p, n, "DSN")) c->flags |= MH_SMTP_CAP_DSN;
  else if (kw_eq(p, n, "CHUNKING")) c->flags |= MH_SMTP_CAP_CHUNKING;
  else if (kw_eq(p, n, "SIZE")) {
    c->flags |= MH_SMTP_CAP_SIZE;
    if (*e == ' ' || *e == '=') {
      uint64_t v = 0;
      const char *q = e + 1;
      int digits = 0;
      while (*q >= '0' && *q <= '9' && digits < 19) { v = v * 10 + (uint64_t)(*q - '0'); q++; digits++; }
      if (digits) c->size = v;
    }
  } else if (kw_eq(p, n, "AUTH")) {
    /* "AUTH PLAIN LOGIN" or the old "AUTH=PLAIN LOGIN" */
    const char *q = e;
    c->flags |= MH_SMTP_CAP_AUTH;
    while (*q) {
      const char *m;
      while (*q == ' ' || *q == '=') q++;
      m = q;
      while (*q && *q != ' ') q++;
      if (kw_eq(m, (size_t)(q - m), "PLAIN")) c->auth |= MH_SMTP_AUTH_PLAIN;
      else if (kw_eq(m, (size_t)(q - m), "LOGIN")) c->auth |= MH_SMTP_AUTH_LOGIN;
      else if (kw_eq(m, (size_t)(q - m), "XOAUTH2")) c->auth |= MH_SMTP_AUTH_XOAUTH2;
      else if (kw_eq(m, (size_t)(q - m), "OAUTHBEARER")) c->auth |= MH_SMTP_AUTH_OAUTHBEARER;
      else if (kw_eq(m, (size_t)(q - m), "CRAM-MD5")) c->auth |= MH_SMTP_AUTH_CRAM_MD5;
    }
  }
}

/* --------------------------------------------------------- data writer */

void mh_smtp_dot_init(mh_smtp_dotw *w) {
  memset(w, 0, sizeof *w);
  w->bol = 1;
  w->empty_line = 1;
}

/* A line ends: CRLF out; an empty line in the header starts the body. */
static int dot_eol(mh_smtp_dotw *w, mh_buf *out) {
  if (!w->body && w->empty_line) w->body = 1;
  w->bol = 1;
  w->empty_line = 1;
  w->col = 0;
  w->prev_ws = 0;
  return mh_buf_add(out, "\r\n", 2);
}

static int dot_byte(mh_smtp_dotw *w, mh_buf *out, char c) {
  int rc;
  int ws = c == ' ' || c == '\t';
  if (!w->body && ws && !w->prev_ws && w->col >= MH_SMTP_FOLD_AT && w->col < MH_SMTP_TEXT_LINE) {
    /* a long header line: folded before this blank, which starts the next line */
    if ((rc = mh_buf_add(out, "\r\n", 2)) < 0) return rc;
    w->col = 0;
  }
  w->prev_ws = ws;
  if (w->col >= MH_SMTP_TEXT_LINE) {
    /* too long: break it; in the header as a fold, so no new field can start */
    if ((rc = mh_buf_add(out, w->body ? "\r\n" : "\r\n ", w->body ? 2 : 3)) < 0) return rc;
    w->col = w->body ? 0 : 1;
    w->bol = w->body;
  }
  if (w->bol && c == '.' && !w->nostuff) {
    if ((rc = mh_buf_add(out, ".", 1)) < 0) return rc;
    w->col++;
    w->dots++;
  }
  w->bol = 0;
  w->empty_line = 0;
  w->col++;
  return mh_buf_add(out, &c, 1);
}

/* Complete lines that leave as they are, from in[p] on: each ends with CRLF,
** holds no other CR or LF (nor a NUL: the callers do not call it on a piece
** that holds one), fits the 998-octet rule from w's column, and does
** not start with a '.' to stuff.  Returns where the run ends (p when the line
** at p needs the byte-wise writer), with w's state updated past it; a last
** line without its line end is taken too when it holds no CR.  mh_eol_find
** (eol.h: CR and LF looked for in one pass) finds the line ends, so an
** ordinary message costs a few instructions a line: the line is clean when
** the first CR or LF is a CR with its LF. */
#if defined(__SSE2__)
/* The CR and LF octets of in[q..q+32), one bit each (bit i: in[q + i]). */
static inline uint32_t eol_mask32(const char *in) {
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  __m128i a = _mm_loadu_si128((const __m128i *)(const void *)in);
  __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(in + 16));
  uint32_t ma = (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(a, lf)));
  uint32_t mb = (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(b, cr), _mm_cmpeq_epi8(b, lf)));
  return ma | mb << 16;
}

/* clean_run's loop for the body, where most of a big message's octets are:
** the line ends of 32 octets found at once, then walked a bit at a time, so
** a line costs a few instructions besides the scan (clean_run asked
** mh_eol_find per line, a call and its setup each: 1.2 instructions an
** octet for lines of 80, callgrind).  The rules are clean_run's: a line is
** taken when it ends with CRLF in the piece, holds no other CR or LF, fits
** MH_SMTP_TEXT_LINE from w's column, and does not start with a '.' to stuff.
** Returns where the clean lines end (p when the first is not one), w's state
** after them; the last line of a piece (fewer than 32 octets left, or its end
** in the next piece) is clean_run's. */
static size_t clean_body(mh_smtp_dotw *w, const char *in, size_t p, size_t len) {
  /* base: where the current line would start at column 0 (its length is then
  ** e - base, modulo 2^64 exact); dot: the octet that is stuffed at a line's
  ** start, none with nostuff (an int no char equals) */
  size_t q = p, start = p, base = p - w->col;
  int dot = w->nostuff ? 256 : '.';
  if (w->bol && in[p] == dot) return p;
  /* 34: a CRLF found in the 32 has its LF and the octet after it in the piece */
  while (len - q >= 34) {
    uint32_t m = eol_mask32(in + q);
    size_t next = q + 32;
    while (m) {
      unsigned b = (unsigned)__builtin_ctz(m);
      size_t e = q + b;   /* the first CR or LF left */
      if (in[e] != '\r' || in[e + 1] != '\n') goto out;   /* a bare one */
      if (e - base > MH_SMTP_TEXT_LINE) goto out;         /* too long: to be broken */
      base = start = e + 2;
      if (in[start] == dot) goto out;                     /* to be stuffed */
      if (b >= 30) { next = start; break; }   /* its LF (or the line after it) opens the next 32 */
      m &= m - 1;   /* the CR, */
      m &= m - 1;   /* and its LF */
    }
    q = next;
  }
out:
  if (start != p) {
    w->bol = w->empty_line = 1;
    w->col = 0;
    w->prev_ws = 0;
  }
  return start;
}
#endif

static size_t clean_run(mh_smtp_dotw *w, const char *in, size_t p, size_t len) {
#if defined(__SSE2__)
  if (w->body && len - p >= 34) p = clean_body(w, in, p, len);
#endif
  while (p < len) {
    const char *e;
    size_t n;
    if (w->bol && in[p] == '.' && !w->nostuff) break;
    e = mh_eol_find(in + p, len - p);
    if (!e) {   /* the last line, not ended yet: its end may come with the next piece */
      n = len - p;
      if (w->col + n > (w->body ? MH_SMTP_TEXT_LINE : MH_SMTP_FOLD_AT)) break;
      w->col += n;
      w->prev_ws = n && (in[len - 1] == ' ' || in[len - 1] == '\t');
      w->bol = w->empty_line = 0;
      return len;
    }
    /* a bare LF, a bare CR, or a CR whose LF (if any) is in the next piece */
    if (*e != '\r' || e + 1 == in + len || e[1] != '\n') break;
    n = (size_t)(e - (in + p));   /* the line without its CRLF */
    if (w->col + n > (w->body ? MH_SMTP_TEXT_LINE : MH_SMTP_FOLD_AT)) break;   /* too long */
    if (!w->body && w->empty_line && n == 0) w->body = 1;
    w->bol = w->empty_line = 1;
    w->col = 0;
    w->prev_ws = 0;
    p += n + 2;
#if defined(__SSE2__)
    if (w->body && len - p >= 34) p = clean_body(w, in, p, len);   /* (past the header's end) */
#endif
  }
  return p;
}

/* mh_smtp_dot_write, for a caller that has scanned in for NUL bytes already
** (nul: whether it holds one): a 1 KB message was else scanned twice. */
static int dot_write(mh_smtp_dotw *w, mh_buf *out, const char *in, size_t len, int nul) {
  int rc = 0;
  size_t i = 0;
  while (i < len && rc == 0) {
    if (!w->cr && !nul) {
      /* the common case: whole lines as they are, one append for all of them */
      size_t e = clean_run(w, in, i, len);
      if (e > i) {
        rc = mh_buf_add(out, in + i, e - i);
        i = e;
        continue;
      }
    }
    /* the byte-wise writer, to the end of the line that needs it (a dot to
    ** stuff, a bare CR or LF, a line to break), then the fast path again */
    do {
      char c = in[i];
      size_t lim = w->body ? MH_SMTP_TEXT_LINE : MH_SMTP_FOLD_AT;
      if (!w->cr && c != '\r' && c != '\n' && c != '\0' && !(w->bol && c == '.' && !w->nostuff) &&
          w->col < lim) {
        /* a run of ordinary bytes on the line: copied at once (a header line
        ** past FOLD_AT goes byte by byte: dot_byte folds it at a blank) */
        size_t n = 1, room = lim - w->col;
        while (n < room && i + n < len && in[i + n] != '\r' && in[i + n] != '\n' && in[i + n] != '\0') n++;
        if ((rc = mh_buf_add(out, in + i, n)) < 0) break;
        w->prev_ws = in[i + n - 1] == ' ' || in[i + n - 1] == '\t';
        w->col += n;
        w->bol = w->empty_line = 0;
        i += n;
        continue;
      }
      i++;
      if (w->cr) {
        w->cr = 0;
        /* CR LF, or a bare CR: either way one line end */
        if ((rc = dot_eol(w, out)) < 0) break;
        if (c == '\n') continue;
      }
      if (c == '\r') w->cr = 1;
      else if (c == '\n') rc = dot_eol(w, out);
      else if (c != '\0') rc = dot_byte(w, out, c);   /* after the CR's line end: no line end is merged */
    } while (i < len && rc == 0 && !(w->bol && !w->cr));
  }
  return rc;
}

int mh_smtp_dot_write(mh_smtp_dotw *w, mh_buf *out, const char *in, size_t len) {
  /* a NUL is never sent (RFC 5321 §4.5.2 and RFC 6152: no SMTP data holds
  ** one; servers refuse the message or cut it there): dropped by the writer,
  ** byte by byte, as Postfix's message_strip_characters = \0.  A part that can
  ** be encoded was encoded before (mime7.h, bodynul): this is the last guard,
  ** for a NUL in a header field or a part that says it is encoded already */
  return dot_write(w, out, in, len, memchr(in, '\0', len) != NULL);
}

int mh_smtp_dot_end(mh_smtp_dotw *w, mh_buf *out) {
  int rc = 0;
  if (w->cr) { w->cr = 0; rc = dot_eol(w, out); }
  if (rc == 0 && !w->bol) rc = dot_eol(w, out);
  return rc;
}

int mh_smtp_dot_finish(mh_smtp_dotw *w, mh_buf *out) {
  int rc = mh_smtp_dot_end(w, out);
  if (rc == 0) rc = mh_buf_add(out, ".\r\n", 3);
  return rc;
}

/* The converter's output, stuffed as it comes (into the buffer of an
** in-memory message, or the session's write buffer for a streamed one). */
typedef struct { mh_smtp_dotw *w; mh_buf *out; } conv_sink;
static int conv_out(void *ud, const char *p, size_t n) {
  conv_sink *k = (conv_sink *)ud;
  return mh_smtp_dot_write(k->w, k->out, p, n);
}

/* -------------------------------------------------------------- session */

enum { OP_NONE, OP_OPEN, OP_AUTH, OP_SEND, OP_CHECK, OP_QUIT };
enum { CHECK_CLEARING = 1 };   /* check_rc: not an outcome, see the field */

/* One message transaction: what a send asked and what the server answered. */
typedef struct {
  char from[512];
  mh_smtp_rcpt *rcpts;          /* per recipient results */
  size_t nrcpt, rcpt_i;         /* count, next reply to expect */
  int accepted;                 /* recipients accepted so far */
  int first_rejected;           /* index of the first rejected rcpt, -1 none */
  mh_buf body;                  /* stuffed message and ".\r\n", ready to send (BDAT: the
                                   message as it goes, no dot; streamed: one chunk's bytes) */
  char mail_params[512];        /* " SIZE=n BODY=8BITMIME SMTPUTF8 RET=.. ENVID=.." */
  char **rcpt_dsn;              /* per recipient " NOTIFY=.. ORCPT=.." (nrcpt entries, NULL
                                   for none), only when the server offers DSN */
  int ahead;                    /* its command group was already written */
  int rset_ahead;               /* ... and opens with RSET (behind a BDAT LAST: the server
                                   may keep a transaction whose LAST it refused) */
  int mail_failed;              /* MAIL refused (pipelined replies still to eat) */
  int data_refused;             /* DATA not 354 */
  int empty_data;               /* 354 with no recipient: ".\r\n" sent to close */
  int body_held;                /* its 354 came while gated: the data waits for release */
  /* streamed data (mh_smtp_send_stream): given in pieces by the owner */
  int streamed;
  mh_smtp_dotw dotw;            /* the stuffer's state across the pieces */
  int wanting;                  /* io.more was called: a piece is awaited */
  int dot_out;                  /* its data and final dot are written */
  mh_mime7 *conv;               /* streamed to a server without 8BITMIME/SMTPUTF8: each piece
                                   is converted to 7-bit as it passes (owned), else NULL */
  /* CHUNKING (RFC 3030): the data goes as BDAT chunks, each answered */
  int bdat;                     /* this message goes with BDAT (the server offers CHUNKING) */
  int chunks_out;               /* BDAT commands written (the LAST one included) */
  int chunks_answered;          /* replies to them read */
  int bdat_failed;              /* a chunk was refused: no further chunk is sent (§2) */
} txn;

struct mh_smtp {
  mh_smtp_io io;                /* the owner's callbacks */
  char helo[256];               /* EHLO argument */
  char host[256];               /* for OAUTHBEARER's host= */
  int port;
  int starttls;                 /* params.starttls */
  uint64_t command_ms, data_ms; /* timeout caps */
  mh_smtp_state state;
  int op;                       /* OP_*: the operation io.done will end */
  int tls;                      /* the connection is encrypted */
  int after_starttls_reply;     /* the 220 to STARTTLS was just parsed: no byte may follow */
  mh_smtp_caps caps;            /* forgotten when TLS starts */
  char ehlo_refused[128];       /* the 5xx to EHLO that made us say HELO ("502 5.5.2 ..."),
                                   else "": a report says why there are no extensions
                                   (no STARTTLS, AUTH, SIZE) on an old server */
  mh_smtp_reply reply;          /* the reply being parsed / last parsed */
  mh_smtp_reply decisive;       /* the reply that ended the last op (copy) */
  char line[MH_SMTP_LINE_MAX + 2];  /* input line being assembled */
  size_t linelen;
  mh_buf wbuf;                  /* output of the current event, written once at its end */
  const char *stage;            /* stage of the last failure */
  char errmsg[600];             /* message of the last failure */
  /* transactions: the current one (replies are walked through it) and the next
     one queued behind it (cross-message pipelining), in two slots */
  txn tx[2];
  txn *t;                       /* the current transaction (tx[0] or tx[1]) */
  txn *q;                       /* the queued one, NULL when none */
  int gated;                    /* the current one became current by rotation: its data
                                   waits for mh_smtp_release() */
  int gate_next;                /* mh_smtp_gate() in READY: the next send starts gated
                                   (with BDAT its data would leave with its commands) */
  int need_rset;                /* a transaction was started since the last RSET or final dot */
  char verr[600];               /* why the last mh_smtp_send returned an error (also in
                                   errmsg unless it was queuing behind a running one) */
  const char *vstage;
  int decided_then_closed;      /* while the op that ends now reports: its replies decided
                                   it, then the server hung up (die): not a broken session */
  int check_rc;                 /* CHECK: outcome of MAIL, reported after the RSET; or
                                   CHECK_CLEARING while the RSET that clears an earlier
                                   transaction is out, before MAIL (sent alone) */
  /* DSN parameters asked for the next send (mh_smtp_set_dsn), already filtered */
  char *dsn_mail;
  char **dsn_rcpt;
  size_t dsn_n;
  /* replies owed: a reply is only ever the answer to something written */
  int wcmds;                    /* commands (and final dots) in wbuf, not yet written */
  int expect;                   /* replies the server owes for what was written (the
                                   greeting counts as one); a reply beyond them is a
                                   protocol violation, never a result */
  /* auth */
  unsigned mech;
  int auth_step;
  mh_buf auth_user, auth_secret;  /* wiped with the session */
  mh_buf auth_sent;             /* the base64 strings sent in the AUTH exchanges, '\n'
                                   separated: masked in any reply that echoes them.
                                   Kept with the secret until the session ends: a
                                   server may quote the AUTH line in a later reply
                                   (a MAIL refusal), after 235 as after 535 */
  mh_buf auth_ir;               /* an initial response too long for the AUTH line
                                   (RFC 4954 4: a 2 KB OAuth token): sent after the
                                   server's empty 334 instead; wiped after use */
  char auth_cancel[400];        /* CRAM-MD5 answered its challenge with "*" (RFC 4954 4:
                                   the client cancels): why, for the failure that ends
                                   the exchange at the server's reply to it; "" none */
  int auth_cancel_rc;           /* and the code that failure carries: MH_EPROTO (the
                                   challenge), MH_EAUTH (no HMAC here) */
  char oauth_err[300];          /* XOAUTH2/OAUTHBEARER: the server's error challenge
                                   (a 334 with base64 JSON, RFC 7628 3.2.2), decoded,
                                   for the failure that follows; "" none */
};

static void enter_state(mh_smtp *s, mh_smtp_state st);
static void put_body(mh_smtp *s);
static void die(mh_smtp *s, int code, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

mh_smtp_state mh_smtp_get_state(const mh_smtp *s) { return s->state; }
const mh_smtp_caps *mh_smtp_get_caps(const mh_smtp *s) { return &s->caps; }
const mh_smtp_reply *mh_smtp_last_reply(const mh_smtp *s) { return &s->decisive; }
int mh_smtp_decided_then_closed(const mh_smtp *s) { return s->decided_then_closed; }
const char *mh_smtp_stage(const mh_smtp *s) { return s->stage ? s->stage : ""; }
const char *mh_smtp_errmsg(const mh_smtp *s) { return s->errmsg; }
int mh_smtp_is_tls(const mh_smtp *s) { return s->tls; }
int mh_smtp_used_ehlo(const mh_smtp *s) { return (s->caps.flags & MH_SMTP_CAP_EHLO) != 0; }
const char *mh_smtp_ehlo_refused(const mh_smtp *s) { return s->ehlo_refused[0] ? s->ehlo_refused : NULL; }
const mh_smtp_rcpt *mh_smtp_rcpts(const mh_smtp *s, size_t *n) { *n = s->t->nrcpt; return s->t->rcpts; }

mh_smtp *mh_smtp_new(const mh_smtp_params *p, const mh_smtp_io *io) {
  mh_smtp *s = (mh_smtp *)calloc(1, sizeof *s);
  if (!s) return NULL;
  s->io = *io;
  snprintf(s->helo, sizeof s->helo, "%s", p->helo && *p->helo ? p->helo : "localhost");
  snprintf(s->host, sizeof s->host, "%s", p->host ? p->host : "");
  s->port = p->port;
  s->starttls = p->starttls;
  s->command_ms = p->command_ms ? p->command_ms : 300000;
  s->data_ms = p->data_ms ? p->data_ms : 600000;
  s->state = MH_SMTP_INIT;
  s->t = &s->tx[0];
  s->tx[0].first_rejected = s->tx[1].first_rejected = -1;
  return s;
}

static void clear_rcpts(txn *x) {
  for (size_t i = 0; i < x->nrcpt; i++) {
    free(x->rcpts[i].rcpt);
    if (x->rcpt_dsn) free(x->rcpt_dsn[i]);
  }
  free(x->rcpts);
  free(x->rcpt_dsn);
  x->rcpts = NULL;
  x->rcpt_dsn = NULL;
  x->nrcpt = x->rcpt_i = 0;
}

static void clear_dsn(mh_smtp *s) {
  for (size_t i = 0; i < s->dsn_n; i++) free(s->dsn_rcpt[i]);
  free(s->dsn_rcpt);
  free(s->dsn_mail);
  s->dsn_rcpt = NULL;
  s->dsn_mail = NULL;
  s->dsn_n = 0;
}

/* The RFC 3461 parameters of in whose keyword is one of allowed (a
** NULL-terminated list, case-insensitive) and whose value is printable ASCII
** other than '<' and '>' (xtext is a subset), each preceded by a space: a
** malloc'd string, "" when none is left, NULL when out of memory. */
static char *dsn_filter(const char *in, const char *const *allowed) {
  size_t cap = strlen(in) + 2, len = 0;
  char *out = (char *)malloc(cap);
  if (!out) return NULL;
  out[0] = '\0';
  for (const char *p = in; *p;) {
    const char *e, *eq;
    int good = 0;
    while (*p == ' ') p++;
    for (e = p; *e && *e != ' '; e++) {}
    if (e == p) break;
    eq = memchr(p, '=', (size_t)(e - p));
    if (eq && eq > p && eq + 1 < e) {
      for (int k = 0; allowed[k]; k++)
        if (strlen(allowed[k]) == (size_t)(eq - p) && !strncasecmp(p, allowed[k], (size_t)(eq - p))) good = 1;
      for (const char *q = eq + 1; good && q < e; q++)
        if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e || *q == '<' || *q == '>') good = 0;
    }
    if (good) {
      out[len++] = ' ';
      memcpy(out + len, p, (size_t)(e - p));
      len += (size_t)(e - p);
      out[len] = '\0';
    }
    p = e;
  }
  return out;
}

int mh_smtp_set_dsn(mh_smtp *s, const char *mail, const char *const *rcpt, size_t n) {
  static const char *const for_mail[] = { "RET", "ENVID", NULL };
  static const char *const for_rcpt[] = { "NOTIFY", "ORCPT", NULL };
  clear_dsn(s);
  if (mail && !(s->dsn_mail = dsn_filter(mail, for_mail))) return MH_ENOMEM;
  if (rcpt && n) {
    if (!(s->dsn_rcpt = (char **)calloc(n, sizeof *s->dsn_rcpt))) { clear_dsn(s); return MH_ENOMEM; }
    s->dsn_n = n;
    for (size_t i = 0; i < n; i++)
      if (rcpt[i] && !(s->dsn_rcpt[i] = dsn_filter(rcpt[i], for_rcpt))) { clear_dsn(s); return MH_ENOMEM; }
  }
  return 0;
}

void mh_smtp_free(mh_smtp *s) {
  if (!s) return;
  for (int i = 0; i < 2; i++) {
    clear_rcpts(&s->tx[i]);
    mh_buf_free(&s->tx[i].body);
    mh_mime7_free(s->tx[i].conv);
  }
  mh_buf_free(&s->wbuf);
  clear_dsn(s);
  mh_buf_wipe(&s->auth_user);
  mh_buf_wipe(&s->auth_secret);
  mh_buf_wipe(&s->auth_sent);
  mh_buf_wipe(&s->auth_ir);
  free(s);
}

uint64_t mh_smtp_state_timeout(const mh_smtp *s) {
  uint64_t rfc;
  switch (state_kind[s->state]) {
    case K_GREET: rfc = 300000; break;   /* §4.5.3.2.1: initial 220, 5 min */
    case K_MAIL:  rfc = 300000; break;   /* §4.5.3.2.2-3: MAIL, RCPT, 5 min */
    case K_DATA:  rfc = 120000; break;   /* §4.5.3.2.4: DATA initiation, 2 min */
    case K_DOT:   return s->data_ms;     /* §4.5.3.2.6: data termination, 10 min */
    case K_CMD:   rfc = 300000; break;
    default:      return 0;
  }
  return rfc < s->command_ms ? rfc : s->command_ms;
}

/* The stage a failure in state st is named by (info.stage, the log, the
** queue): the step the session was at, so a 421 or a drop right after the
** greeting reads "ehlo", not "connect" (the connection had worked). */
static const char *stage_of(mh_smtp_state st) {
  switch (st) {
    case MH_SMTP_BANNER: return "greeting";
    case MH_SMTP_EHLO: return "ehlo";
    case MH_SMTP_HELO: return "helo";
    case MH_SMTP_STARTTLS: case MH_SMTP_TLS: return "tls";
    case MH_SMTP_AUTH: return "auth";
    case MH_SMTP_RSET: case MH_SMTP_MAIL: return "mail";
    case MH_SMTP_RCPT: return "rcpt";
    case MH_SMTP_DATA: case MH_SMTP_BODY: return "data";
    case MH_SMTP_QUIT: return "quit";
    default: return "connect";
  }
}

/* Writes what the event produced, in one buffer.  From now on the server owes
** a reply to each command in it (and not before: a reply that arrives in the
** same read as the one that made us write a command cannot be its answer). */
static void flush(mh_smtp *s) {
  if (s->wbuf.oom) {
    /* a command or the data could not be buffered whole: none of it may leave */
    mh_buf_free(&s->wbuf);
    die(s, MH_ENOMEM, stage_of(s->state), "out of memory while writing to the server");
    return;
  }
  /* a closed session writes nothing (die() dropped what the event had made) */
  assert(s->state != MH_SMTP_CLOSED || s->wbuf.len == 0);
  s->expect += s->wcmds;
  s->wcmds = 0;
  if (s->wbuf.len) {
    size_t n = s->wbuf.len;
    s->wbuf.len = 0;      /* the callback must not see a half-reset buffer */
    s->io.write(s->io.ud, s->wbuf.data, n);
  }
}

/* The queued transaction becomes the current one, with a clean record of
** failure (the getters now describe it). */
static void rotate(mh_smtp *s) {
  /* the queued transaction is the other slot, never the current one */
  assert(s->q && s->q != s->t && (s->q == &s->tx[0] || s->q == &s->tx[1]));
  s->t = s->q;
  s->q = NULL;
  s->op = OP_SEND;
  s->gated = 1;
  s->errmsg[0] = '\0';
  s->stage = NULL;
  mh_smtp_reply_reset(&s->decisive);
}

/* The session closed with a send queued behind the one that just ended: that
** one ends too (io.done), with rc, msg and stage, and keep as its reply when
** given (the 421 that closed the session). */
static void end_queued(mh_smtp *s, int rc, const char *msg, const char *stage, const mh_smtp_reply *keep) {
  char m[sizeof s->errmsg];
  mh_smtp_reply k;
  snprintf(m, sizeof m, "%s", msg);   /* (msg may be s->errmsg, keep s->decisive: rotate clears both) */
  if (keep) reply_copy(&k, keep);
  rotate(s);
  memcpy(s->errmsg, m, sizeof m);
  s->stage = stage;
  if (keep) reply_copy(&s->decisive, &k);
  s->op = OP_NONE;
  s->io.done(s->io.ud, rc);
}

/* Ends the operation in progress with rc (io.done), the session going to st.
** A transaction queued behind a send then starts (its commands may be out
** already), or, when the session closed, ends too with the same rc. */
static void finish(mh_smtp *s, int rc, mh_smtp_state st) {
  int op = s->op;
  assert(!s->q || op == OP_SEND);   /* only a send has another queued behind it */
  if (st != s->state) enter_state(s, st);
  s->op = OP_NONE;
  if (op != OP_NONE) s->io.done(s->io.ud, rc);
  if (op != OP_SEND || !s->q) return;
  if (s->state == MH_SMTP_CLOSED) {
    /* the same failure ends it: same reason, same reply (a 421), if any */
    end_queued(s, rc, s->errmsg, s->stage, s->decisive.code == 421 ? &s->decisive : NULL);
  } else {
    rotate(s);
    /* its group (written ahead, perhaps with an RSET) is walked from its start */
    enter_state(s, (s->t->ahead ? s->t->rset_ahead : s->need_rset) ? MH_SMTP_RSET : MH_SMTP_MAIL);
  }
}

static void set_err(mh_smtp *s, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(mh_smtp *s, const char *stage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
  va_end(ap);
  s->stage = stage;
}

/* The session is unusable: record why, close, end the op. */
static void die(mh_smtp *s, int code, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_done_in(mh_smtp *s, mh_smtp_state st);
static void die(mh_smtp *s, int code, const char *stage, const char *fmt, ...) {
  va_list ap;
  char why[sizeof s->errmsg];
  if (s->state == MH_SMTP_CLOSED) return;
  if (s->op == OP_CHECK && s->check_rc == MH_EREPLY) {
    /* the check's refusal came first (MAIL's, or the RCPT's), and the server
    ** then hung up or went silent before answering what was pipelined after
    ** it: the refusal stays the outcome, its stage and reply (the session
    ** breaking in state RCPT read as "takes the From address, then refuses
    ** mail after it", quoting MAIL's refusal) */
    s->wbuf.len = 0;
    s->wcmds = 0;
    mh_debug("smtp: after \"%s\" the session ended (code %d)", s->errmsg, code);
    finish(s, MH_EREPLY, MH_SMTP_CLOSED);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  s->wbuf.len = 0;
  s->wcmds = 0;
  mh_debug("smtp: %s", why);
  if (s->op == OP_SEND && (s->t->mail_failed ||
                           (s->t->rcpt_i == s->t->nrcpt && s->t->accepted == 0))) {
    /* The replies in already decided this message: MAIL refused, or every
    ** recipient refused, and the server then hung up (Exim's `drop`, a server
    ** counting bad recipients) before answering what was pipelined after.
    ** Those replies are its outcome, as without the hang-up: the break read
    ** as an outage, the refusal lost (a 550 to MAIL retried as "connection
    ** closed by the server (in state RCPT)" for as long as the outage lasted).
    ** A send queued behind it ends with the break itself. */
    txn *q = s->q;
    s->q = NULL;
    s->decided_then_closed = 1;
    send_done_in(s, MH_SMTP_CLOSED);
    s->decided_then_closed = 0;
    if (q) {
      s->q = q;
      end_queued(s, code, why, stage, NULL);
    }
    return;
  }
  memcpy(s->errmsg, why, sizeof why);
  s->stage = stage;
  finish(s, code, MH_SMTP_CLOSED);
}

/* A refused command: the failure message quotes the server. */
static void refused(mh_smtp *s, const char *what, const char *stage) {
  reply_copy(&s->decisive, &s->reply);
  set_err(s, stage, "%s: %d %s", what, s->reply.code, s->reply.text);
  for (char *p = s->errmsg; *p; p++) if (*p == '\n') *p = ' ';
}

static void mask_creds(const mh_smtp *s, char *text, size_t cap);
/* An OAuth error challenge (XOAUTH2, OAUTHBEARER: a 334 after the token), kept
** decoded for the failure that ends the exchange: printable bytes only,
** bounded; text that is not base64 is kept as it came. */
static void oauth_error(mh_smtp *s, const mh_smtp_reply *r) {
  char raw[sizeof s->oauth_err];
  size_t len = strlen(r->text);
  long n = -1;
  if (len / 4 * 3 + 2 < sizeof raw) n = mh_b64_decode(raw, r->text, len);
  if (n < 0) {
    mh_smtp_strcopy(raw, sizeof raw, r->text);
    n = (long)strlen(raw);
  }
  size_t o = 0;
  for (long i = 0; i < n && o + 1 < sizeof s->oauth_err; i++) {
    unsigned char c = (unsigned char)raw[i];
    s->oauth_err[o++] = (c < 32 || c >= 127) ? '?' : (char)c;   /* (for a terminal, a log) */
  }
  s->oauth_err[o] = '\0';
  mask_creds(s, s->oauth_err, sizeof s->oauth_err);   /* (a server echoing the token) */
}

/* One command into the event's output, whole (an AUTH line with an OAuth
** token may run to kilobytes: RFC 4954 §4 allows 12288 octets). */
static void put_end(mh_smtp *s, size_t start);
static void put_cmd(mh_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_cmd(mh_smtp *s, const char *fmt, ...) {
  size_t start = s->wbuf.len;
  va_list ap;
  va_start(ap, fmt);
  mh_buf_vprintf(&s->wbuf, fmt, ap);
  va_end(ap);
  put_end(s, start);
}

/* The same for a command made of up to four strings (NULL: none), joined
** without a format: MAIL, RCPT and DATA go once per message, and a vsnprintf
** each cost some 700 instructions. */
static void put_str(mh_smtp *s, const char *a, const char *b, const char *c, const char *d) {
  const char *v[4] = { a, b, c, d };
  size_t start = s->wbuf.len;
  for (int i = 0; i < 4; i++) if (v[i] && *v[i]) mh_buf_add(&s->wbuf, v[i], strlen(v[i]));
  put_end(s, start);
}

/* After a command's text (from start in wbuf): its debug line, CRLF. */
static void put_end(mh_smtp *s, size_t start) {
  if (!s->wbuf.oom && mh_log_get_level() <= MH_LOG_DEBUG) {
    const char *cmd = s->wbuf.data + start;
    if (strncmp(cmd, "AUTH ", 5) == 0) mh_debug("smtp > AUTH (credentials not logged)");
    else mh_debug("smtp > %.*s", (int)(s->wbuf.len - start), cmd);
  }
  mh_buf_add(&s->wbuf, "\r\n", 2);
  s->wcmds++;
}

static void put_rcpt(mh_smtp *s, txn *x, size_t i) {
  put_str(s, "RCPT TO:<", x->rcpts[i].rcpt, ">", x->rcpt_dsn ? x->rcpt_dsn[i] : NULL);
}

/* The pipelined group of x: [RSET] MAIL RCPT... DATA. */
static void put_group(mh_smtp *s, txn *x, int rset) {
  x->ahead = 1;
  x->rset_ahead = rset;
  if (rset) put_str(s, "RSET", NULL, NULL, NULL);
  put_str(s, "MAIL FROM:<", x->from, ">", x->mail_params);
  if (s->op == OP_CHECK) {
    for (size_t i = 0; i < x->nrcpt; i++) put_rcpt(s, x, i);
    put_str(s, "RSET", NULL, NULL, NULL);
    return;
  }
  for (size_t i = 0; i < x->nrcpt; i++) put_rcpt(s, x, i);
  if (!x->bdat) put_str(s, "DATA", NULL, NULL, NULL);
  /* BDAT: an in-memory message that may go now leaves with its commands (RFC
  ** 3030 §4.2 with PIPELINING: no round trip before the data); a queued or
  ** gated one, and a streamed one, after the RCPT replies (enter BODY) */
  else if (x == s->t && !s->gated && !x->streamed) put_body(s);
}

/* The current message's final dot is written: then (PIPELINING) the queued
** transaction's commands go right behind it, in the same write: RFC 2920 §3.1
** allows the message content to open a group, so the next MAIL, RCPT and DATA
** need not wait for the reply to the dot.  No RSET: the dot ends the
** transaction, whatever its reply.  A BDAT LAST does not always (Exim keeps
** the transaction whose LAST it refused for want of a recipient, and answers
** the next MAIL "503 sender already given"): behind it the group opens with
** RSET, answered 250 either way. */
static void dot_written(mh_smtp *s) {
  /* one final dot (or BDAT LAST) per message; BDAT's may leave in the group */
  assert((s->state == MH_SMTP_BODY || s->t->bdat) && !s->t->dot_out);
  s->t->dot_out = 1;
  if (!s->t->bdat) s->wcmds++;   /* the final dot: the server owes its reply once it is
                                    written (a BDAT command was counted by put_cmd) */
  if (s->q && !s->q->ahead && (s->caps.flags & MH_SMTP_CAP_PIPELINING)) put_group(s, s->q, s->t->bdat);
}

/* One BDAT chunk of the current message: the command, its size, the bytes as
** they are (RFC 3030: counted, not stuffed), LAST on the final one. */
static void put_chunk(mh_smtp *s, const char *data, size_t len, int last) {
  put_cmd(s, "BDAT %zu%s", len, last ? " LAST" : "");
  mh_buf_add(&s->wbuf, data, len);
  s->t->chunks_out++;
  if (last) dot_written(s);
}

/* The current message's data and final dot (a streamed one: its first piece is
** asked for).  BDAT: the whole message as one chunk, LAST. */
static void put_body(mh_smtp *s) {
  txn *t = s->t;
  /* the data leaves once, after the 354 (BDAT: in the group or after the RCPT
  ** replies), and never while the gate holds it */
  assert((s->state == MH_SMTP_BODY || t->bdat) && !t->dot_out && !t->body_held && !s->gated);
  if (t->streamed && !t->empty_data) {
    t->wanting = 1;
    if (s->io.more) s->io.more(s->io.ud);
    return;
  }
  if (t->bdat) { put_chunk(s, t->body.data ? t->body.data : "", t->body.len, 1); return; }
  if (t->empty_data) {
    mh_buf_add(&s->wbuf, ".\r\n", 3);
  } else if (s->wbuf.len == 0 && !s->wbuf.oom) {
    /* nothing else in this event's output (the usual case, after the 354):
    ** the stuffed message becomes the output, not copied into it (the two
    ** buffers trade places; the next message is stuffed into the other) */
    mh_buf spare = s->wbuf;
    s->wbuf = t->body;
    t->body = spare;
    t->body.len = 0;
  } else {
    mh_buf_add(&s->wbuf, t->body.data, t->body.len);
  }
  dot_written(s);
}

/* Remembers a base64 string about to be sent in the AUTH exchange, so that a
** server echoing it in a reply never gets it into a message or a log. */
static void auth_remember(mh_smtp *s, const mh_buf *b64s) {
  if (!b64s->len) return;
  mh_buf_add(&s->auth_sent, b64s->data, b64s->len);
  mh_buf_add(&s->auth_sent, "\n", 1);
  if (s->auth_sent.oom) s->wbuf.oom = 1;   /* an echo could not be masked: do not send it */
}

/* "AUTH MECH IR": the initial response on the command line when the line
** fits SMTP's 512 octets (RFC 5321 4.5.3.1.4); else RFC 4954 4's MUST: the
** command alone, the response after the server's empty 334 (a 3 KB OAuth
** token on the AUTH line got "500 Command line too long", and Postfix cuts
** lines past 2048). */
static void auth_with_ir(mh_smtp *s, const char *mech, mh_buf *ir) {
  if (strlen("AUTH  \r\n") + strlen(mech) + ir->len <= 512) {
    put_cmd(s, "AUTH %s %s", mech, ir->data ? ir->data : "=");
    return;
  }
  put_cmd(s, "AUTH %s", mech);
  mh_buf_wipe(&s->auth_ir);
  mh_buf_add(&s->auth_ir, ir->data, ir->len);
  if (s->auth_ir.oom) s->wbuf.oom = 1;
}

static void auth_start(mh_smtp *s) {
  mh_buf ir = { 0 };
  mh_buf_wipe(&s->auth_ir);   /* (auth_sent keeps an earlier exchange's strings) */
  switch (s->mech) {
    case MH_SMTP_AUTH_PLAIN: {
      mh_buf raw = { 0 };
      mh_buf_add(&raw, "\0", 1);
      mh_buf_add(&raw, s->auth_user.data, s->auth_user.len);
      mh_buf_add(&raw, "\0", 1);
      mh_buf_add(&raw, s->auth_secret.data, s->auth_secret.len);
      if (raw.oom) ir.oom = 1;
      else mh_buf_b64(&ir, raw.data, raw.len);
      mh_buf_wipe(&raw);
      auth_with_ir(s, "PLAIN", &ir);
      break;
    }
    case MH_SMTP_AUTH_LOGIN:
      put_cmd(s, "AUTH LOGIN");
      break;
    case MH_SMTP_AUTH_CRAM_MD5:
      put_cmd(s, "AUTH CRAM-MD5");   /* no initial response: the server speaks first */
      break;
    case MH_SMTP_AUTH_XOAUTH2: {
      mh_buf raw = { 0 };
      mh_buf_add(&raw, "user=", 5);
      mh_buf_add(&raw, s->auth_user.data, s->auth_user.len);
      mh_buf_add(&raw, "\001auth=Bearer ", 13);
      mh_buf_add(&raw, s->auth_secret.data, s->auth_secret.len);
      mh_buf_add(&raw, "\001\001", 2);
      if (raw.oom) ir.oom = 1;
      else mh_buf_b64(&ir, raw.data, raw.len);
      mh_buf_wipe(&raw);
      auth_with_ir(s, "XOAUTH2", &ir);
      break;
    }
    case MH_SMTP_AUTH_OAUTHBEARER: {
      mh_buf raw = { 0 };
      mh_buf_printf(&raw, "n,a=%s,\001host=%s\001port=%d\001auth=Bearer ", s->auth_user.data,
                 s->host, s->port);
      mh_buf_add(&raw, s->auth_secret.data, s->auth_secret.len);
      mh_buf_add(&raw, "\001\001", 2);
      if (raw.oom) ir.oom = 1;
      else mh_buf_b64(&ir, raw.data, raw.len);
      mh_buf_wipe(&raw);
      auth_with_ir(s, "OAUTHBEARER", &ir);
      break;
    }
  }
  if (ir.oom) s->wbuf.oom = 1;   /* credentials not encoded whole: flush() ends the session */
  auth_remember(s, &ir);
  mh_buf_wipe(&ir);
}

/* CRAM-MD5's one step (RFC 2195 2): the 334's text is the base64 challenge;
** the answer is base64("USER " + the lower-case hex of HMAC-MD5(password,
** challenge)), remembered for mask_creds like every string sent.  A challenge
** that is not base64 (or empty), or an HMAC that cannot be computed, is
** answered "*": the exchange is cancelled (RFC 4954 4) with nothing derived
** from the password sent, and the reply to that ends the operation. */
static void cram_answer(mh_smtp *s) {
  const char *ch = s->reply.text;
  size_t n = strnlen(ch, sizeof s->reply.text), hl = 0;
  unsigned char mac[16], *raw = NULL;
  long got = -1;
  mh_buf line = { 0 }, e = { 0 };
  s->auth_cancel[0] = '\0';
  if (s->reply.nlines == 1 && n > 0 && (raw = (unsigned char *)malloc(n / 4 * 3 + 3)) != NULL)
    got = mh_b64_decode(raw, ch, n);
  if (!raw && s->reply.nlines == 1 && n > 0) {
    s->wbuf.oom = 1;
    return;
  }
  s->auth_cancel_rc = MH_EPROTO;
  if (got <= 0) {
    snprintf(s->auth_cancel, sizeof s->auth_cancel, "the server's CRAM-MD5 challenge is not %s "
             "(334 %.40s%s); the exchange was cancelled, nothing derived from the password was sent",
             got == 0 || n == 0 ? "a challenge (empty)" : "valid base64", ch, n > 40 ? "..." : "");
  } else if (mh_hmac_md5(s->auth_secret.data ? s->auth_secret.data : "", s->auth_secret.len, raw,
                         (size_t)got, mac) < 0) {
    const char *why = mh_pwhash_unavailable();
    s->auth_cancel_rc = MH_EAUTH;
    snprintf(s->auth_cancel, sizeof s->auth_cancel, "CRAM-MD5 cancelled, its HMAC-MD5 cannot be "
             "computed here: %s", why ? why : "OpenSSL refuses MD5");
  }
  free(raw);
  if (s->auth_cancel[0]) {
    mh_buf_add(&s->wbuf, "*\r\n", 3);
    return;
  }
  mh_buf_add(&line, s->auth_user.data ? s->auth_user.data : "", s->auth_user.len);
  mh_buf_add(&line, " ", 1);
  for (hl = 0; hl < 16; hl++) mh_buf_printf(&line, "%02x", mac[hl]);
  memset(mac, 0, sizeof mac);
  if (line.oom || mh_buf_b64(&e, line.data, line.len) < 0) s->wbuf.oom = 1;
  auth_remember(s, &e);
  mh_buf_add(&s->wbuf, e.data ? e.data : "", e.len);
  mh_buf_add(&s->wbuf, "\r\n", 2);
  mh_buf_wipe(&line);
  mh_buf_wipe(&e);
}

/* Whether entering st sends its commands as one PIPELINING group ([RSET,] MAIL,
** RCPT..., DATA; a sender check's MAIL and RSET).  The one exception to
** "whenever the server offers PIPELINING": the RSET that clears an earlier
** transaction before a sender check leaves alone, and the check's own MAIL
** and RSET follow as a group once it is answered. */
static int grouped(const mh_smtp *s, mh_smtp_state st) {
  if (!(s->caps.flags & MH_SMTP_CAP_PIPELINING)) return 0;
  return !(s->op == OP_CHECK && st == MH_SMTP_RSET && s->check_rc == CHECK_CLEARING);
}

/* The one place a state's command is sent and its timer armed. */
static void enter_state(mh_smtp *s, mh_smtp_state st) {
  mh_smtp_state old = s->state;
  assert(st > MH_SMTP_INIT && st < MH_SMTP_NSTATES);
  assert(old != MH_SMTP_CLOSED);   /* a closed session is never reopened */
  s->state = st;
  mh_debug("smtp: %s -> %s", state_names[old], state_names[st]);
  switch (st) {
    case MH_SMTP_EHLO: put_cmd(s, "EHLO %s", s->helo); break;
    case MH_SMTP_HELO: put_cmd(s, "HELO %s", s->helo); break;
    case MH_SMTP_STARTTLS: put_cmd(s, "STARTTLS"); break;
    case MH_SMTP_AUTH: s->auth_step = 0; s->auth_cancel[0] = s->oauth_err[0] = '\0'; auth_start(s); break;
    case MH_SMTP_RSET:
    case MH_SMTP_MAIL:
      if (st == MH_SMTP_MAIL) s->need_rset = 1;
      if (s->t->ahead) break;
      if (grouped(s, st)) put_group(s, s->t, st == MH_SMTP_RSET);
      else if (st == MH_SMTP_RSET) put_cmd(s, "RSET");
      else put_cmd(s, "MAIL FROM:<%s>%s", s->t->from, s->t->mail_params);
      break;
    case MH_SMTP_RCPT: if (!s->t->ahead) put_rcpt(s, s->t, s->t->rcpt_i); break;
    case MH_SMTP_DATA: if (!s->t->ahead) put_cmd(s, "DATA"); break;
    case MH_SMTP_BODY:
      s->t->ahead = 0;
      if (s->t->dot_out) break;   /* BDAT: the data left with the commands */
      /* gated: the owner has not settled the previous message yet */
      if (s->gated) { s->t->body_held = 1; s->io.timer(s->io.ud, 0); return; }
      put_body(s);   /* body and dot together */
      break;
    case MH_SMTP_QUIT: put_cmd(s, "QUIT"); break;
    case MH_SMTP_READY: s->t->ahead = 0; break;
    case MH_SMTP_CLOSED:
      /* nothing this event made leaves: a 421 read with the greeting closes the
         session before the EHLO that greeting produced is written (die() did the
         same for its own failures; finish() on a 421 did not) */
      s->wbuf.len = 0;
      s->wcmds = 0;
      s->t->ahead = 0;
      break;
    default: break;
  }
  if (st == MH_SMTP_TLS) s->io.starttls(s->io.ud);
  s->io.timer(s->io.ud, mh_smtp_state_timeout(s));
}

static int is2(int code) { return code >= 200 && code < 300; }

/* The final reply (to DATA or the dot) refused the message: it applies to
** every recipient accepted so far. */
static void reject_accepted(mh_smtp *s) {
  mh_smtp_reply *r = &s->reply;
  for (size_t i = 0; i < s->t->nrcpt; i++) {
    mh_smtp_rcpt *rc = &s->t->rcpts[i];
    if (!rc->accepted) continue;
    rc->accepted = 0;
    rc->code = r->code;
    mh_smtp_strcopy(rc->enhanced, sizeof rc->enhanced, r->enhanced);
    mh_smtp_strcopy(rc->text, sizeof rc->text, r->text);
  }
}

/* The message transaction ended (after the final reply, or early). */
static void send_done(mh_smtp *s) { send_done_in(s, MH_SMTP_READY); }
/* The send's outcome from the replies it got, the session going to st: READY,
** or CLOSED when the server hung up after those replies decided it (die). */
static void send_done_in(mh_smtp *s, mh_smtp_state st) {
  if (s->t->mail_failed) finish(s, MH_EREPLY, st);
  else if (s->t->accepted == 0) {
    reply_copy(&s->decisive, &s->reply);
    if (s->t->first_rejected >= 0) {
      mh_smtp_rcpt *r = &s->t->rcpts[s->t->first_rejected];
      s->decisive.code = r->code;
      mh_smtp_strcopy(s->decisive.enhanced, sizeof s->decisive.enhanced, r->enhanced);
      mh_smtp_strcopy(s->decisive.text, sizeof s->decisive.text, r->text);
      set_err(s, "rcpt", "no recipient accepted: %s: %d %s", r->rcpt, r->code, r->text);
    }
    finish(s, MH_EREPLY, st);
  } else if (s->t->data_refused) finish(s, MH_EREPLY, st);
  else finish(s, 0, st);
}

/* A reply to a BDAT chunk (RFC 3030).  The first refusal decides the message,
** as a refused final dot would (every accepted recipient takes it), and no
** further chunk is sent; replies to the chunks already out are still read.
** The transaction ends when the reply to the LAST chunk is in, or, refused
** before LAST left, when every chunk sent is answered (then an RSET starts the
** next one).  No recipient accepted (the data went with the commands): its
** refusal is the expected answer, the recipients' replies decide. */
static void on_chunk_reply(mh_smtp *s) {
  txn *t = s->t;
  mh_smtp_reply *r = &s->reply;
  int none = t->accepted == 0 || t->mail_failed;
  assert(t->chunks_answered < t->chunks_out);   /* expect: a reply per chunk written */
  t->chunks_answered++;
  if (!none && !t->bdat_failed) {
    if (!is2(r->code)) {
      refused(s, "message refused", "data");
      t->data_refused = 1;
      t->bdat_failed = 1;
      t->wanting = 0;      /* a piece asked for is not sent */
      reject_accepted(s);
    } else if (t->dot_out && t->chunks_answered == t->chunks_out) {
      reply_copy(&s->decisive, r);
    }
  }
  if (t->dot_out && t->chunks_answered == t->chunks_out) {
    /* LAST accepted ended the transaction; refused (or with no recipient) it
    ** may not have: the next one starts with RSET */
    if (!none && !t->bdat_failed) s->need_rset = 0;
    send_done(s);
  } else if (t->bdat_failed && t->chunks_answered == t->chunks_out) {
    send_done(s);
  } else if (!t->bdat_failed && t->streamed && !t->dot_out && !t->wanting &&
             !(s->caps.flags & MH_SMTP_CAP_PIPELINING) && t->chunks_answered == t->chunks_out) {
    /* no PIPELINING: the next chunk goes only when this one is answered */
    t->wanting = 1;
    if (s->io.more) s->io.more(s->io.ud);
  }
}

/* A complete reply arrived: where it leads depends on the state. */
static void on_reply(mh_smtp *s) {
  mh_smtp_reply *r = &s->reply;
  int code = r->code;
  mh_debug("smtp < %d %s", code, r->first);
  if (code == 421 && s->state != MH_SMTP_QUIT) {
    /* the server is closing the channel, whatever we asked */
    refused(s, "server closing the connection", stage_of(s->state));
    finish(s, MH_EREPLY, MH_SMTP_CLOSED);
    return;
  }
  if (s->state == MH_SMTP_BODY && s->t->body_held) {
    die(s, MH_EPROTO, "data", "protocol violation: a reply (%d) before the message data was sent", code);
    return;
  }
  switch (s->state) {
    case MH_SMTP_BANNER:
      if (is2(code)) { s->ehlo_refused[0] = '\0'; enter_state(s, MH_SMTP_EHLO); }
      else { refused(s, "greeting", "greeting"); finish(s, MH_EREPLY, MH_SMTP_CLOSED); }
      break;
    case MH_SMTP_EHLO:
    case MH_SMTP_HELO:
      if (!is2(code)) {
        if (s->state == MH_SMTP_EHLO && code >= 500) {
          snprintf(s->ehlo_refused, sizeof s->ehlo_refused, "%d %.100s", code, r->text);
          for (char *c = s->ehlo_refused; *c; c++)   /* (the server's bytes, for a terminal) */
            if (*c == '\n') *c = ' ';
            else if ((unsigned char)*c < 32 || *c == 127) *c = '?';
          enter_state(s, MH_SMTP_HELO);
          break;
        }
        /* HELO refused as well: no session took HELO, so no refusal of EHLO
           explains one without extensions (the report said "and took HELO";
           the error names both refusals) */
        s->ehlo_refused[0] = '\0';
        refused(s, s->state == MH_SMTP_EHLO ? "EHLO refused" : "HELO refused", stage_of(s->state));
        finish(s, MH_EREPLY, MH_SMTP_CLOSED);
        break;
      }
      if (s->state == MH_SMTP_EHLO) s->caps.flags |= MH_SMTP_CAP_EHLO;
      if (!s->tls && s->starttls && (s->caps.flags & MH_SMTP_CAP_STARTTLS))
        enter_state(s, MH_SMTP_STARTTLS);
      else if (!s->tls && s->starttls == 2) {
        reply_copy(&s->decisive, r);
        set_err(s, "tls", "the server does not offer STARTTLS and TLS is required; "
                "nothing was sent (no credentials, no mail)");
        finish(s, MH_ENOTLS, MH_SMTP_CLOSED);
      } else finish(s, 0, MH_SMTP_READY);
      break;
    case MH_SMTP_STARTTLS:
      if (code == 220) {
        memset(&s->caps, 0, sizeof s->caps);   /* nothing learned in the clear counts */
        s->after_starttls_reply = 1;
      } else {
        refused(s, "STARTTLS refused", "tls");
        finish(s, MH_ENOTLS, MH_SMTP_CLOSED);
      }
      break;
    case MH_SMTP_AUTH:
      if (s->auth_cancel[0]) {
        /* the server's answer to our "*" (501, RFC 4954 4): the exchange is over,
           the session still usable; the failure is the challenge's, said as such */
        reply_copy(&s->decisive, r);
        set_err(s, "auth", "%s", s->auth_cancel);
        mh_debug("smtp: %s", s->errmsg);
        s->auth_cancel[0] = '\0';
        /* (a 2xx or 334 to "*" is no SMTP: the session ends) */
        if (is2(code) || code == 334) finish(s, MH_EPROTO, MH_SMTP_CLOSED);
        else finish(s, s->auth_cancel_rc, MH_SMTP_READY);
        break;
      }
      if (code == 235) {
        reply_copy(&s->decisive, r);
        mh_buf_wipe(&s->auth_ir);
        finish(s, 0, MH_SMTP_READY);
        break;
      }
      if (code == 334 && s->auth_step < 3) {
        s->auth_step++;
        if (s->auth_ir.len) {
          /* the initial response kept off the AUTH line (auth_with_ir) */
          mh_buf_add(&s->wbuf, s->auth_ir.data, s->auth_ir.len);
          mh_buf_add(&s->wbuf, "\r\n", 2);
          mh_buf_wipe(&s->auth_ir);
        } else if (s->mech == MH_SMTP_AUTH_CRAM_MD5 && s->auth_step == 1) {
          cram_answer(s);
        } else if (s->mech == MH_SMTP_AUTH_LOGIN && s->auth_step <= 2) {
          mh_buf e = { 0 };
          mh_buf *v = s->auth_step == 1 ? &s->auth_user : &s->auth_secret;
          if (mh_buf_b64(&e, v->data ? v->data : "", v->len) < 0) s->wbuf.oom = 1;
          auth_remember(s, &e);
          mh_buf_add(&s->wbuf, e.data ? e.data : "", e.len);
          mh_buf_add(&s->wbuf, "\r\n", 2);
          mh_buf_wipe(&e);
        } else if (s->mech == MH_SMTP_AUTH_OAUTHBEARER) {
          oauth_error(s, r);
          mh_buf_add(&s->wbuf, "AQ==\r\n", 6);  /* %x01: abort, the server then says why */
        } else {
          oauth_error(s, r);
          mh_buf_add(&s->wbuf, "\r\n", 2);      /* XOAUTH2 error challenge: empty answer */
        }
        s->wcmds++;   /* each answer to a 334 is owed a reply */
        s->io.timer(s->io.ud, mh_smtp_state_timeout(s));
        break;
      }
      mh_buf_wipe(&s->auth_ir);
      refused(s, "authentication failed", "auth");
      if (s->oauth_err[0]) {
        /* what the token lacked (Google: {"status":"400","schemes":"Bearer","scope":
        ** "https://mail.google.com/"}), said with the final reply, which never says it */
        size_t n = strlen(s->errmsg);
        snprintf(s->errmsg + n, sizeof s->errmsg - n, " (the server's OAuth error: %s)", s->oauth_err);
      }
      finish(s, code == 334 ? MH_EPROTO : MH_EAUTH, code == 334 ? MH_SMTP_CLOSED : MH_SMTP_READY);
      break;
    case MH_SMTP_RSET:
      if (!is2(code)) {
        refused(s, "RSET refused", "mail");
        finish(s, MH_EREPLY, MH_SMTP_CLOSED);
        break;
      }
      s->need_rset = 0;
      if (s->op == OP_CHECK && s->check_rc != CHECK_CLEARING) { finish(s, s->check_rc, MH_SMTP_READY); break; }
      if (s->op == OP_CHECK) s->check_rc = 0;
      enter_state(s, MH_SMTP_MAIL);
      break;
    case MH_SMTP_MAIL:
      if (s->op == OP_CHECK) {
        if (is2(code)) { reply_copy(&s->decisive, r); s->check_rc = 0; }
        else { refused(s, "MAIL FROM refused", "mail"); s->check_rc = MH_EREPLY; }
        /* the RCPT: asked when MAIL passed, or answered anyway (pipelined with it) */
        if (s->t->nrcpt && (s->t->ahead || s->check_rc == 0)) {
          s->t->rcpt_i = 0;
          enter_state(s, MH_SMTP_RCPT);
        } else {
          enter_state(s, MH_SMTP_RSET);
        }
        break;
      }
      if (!is2(code)) {
        refused(s, "MAIL FROM refused", "mail");
        s->t->mail_failed = 1;
        if (!s->t->ahead) { send_done(s); break; }
      }
      s->t->rcpt_i = 0;
      enter_state(s, MH_SMTP_RCPT);
      break;
    case MH_SMTP_RCPT: {
      if (s->op == OP_CHECK) {
        /* the check's one RCPT: its refusal is the outcome unless MAIL's came first */
        if (!is2(code) && s->check_rc == 0) { refused(s, "RCPT TO refused", "rcpt"); s->check_rc = MH_EREPLY; }
        else if (is2(code) && s->check_rc == 0) reply_copy(&s->decisive, r);
        enter_state(s, MH_SMTP_RSET);
        break;
      }
      assert(s->t->rcpt_i < s->t->nrcpt);   /* one RCPT reply per recipient sent */
      mh_smtp_rcpt *rc = &s->t->rcpts[s->t->rcpt_i];
      rc->code = code;
      rc->accepted = is2(code) && !s->t->mail_failed;
      mh_smtp_strcopy(rc->enhanced, sizeof rc->enhanced, r->enhanced);
      mh_smtp_strcopy(rc->text, sizeof rc->text, r->text);
      if (rc->accepted) s->t->accepted++;
      else if (s->t->first_rejected < 0) s->t->first_rejected = (int)s->t->rcpt_i;
      if (++s->t->rcpt_i < s->t->nrcpt) { enter_state(s, MH_SMTP_RCPT); break; }
      if (s->t->bdat) {
        /* no DATA, no 354: the data (or its first chunk) now, unless it left
        ** with the commands; with no recipient it never goes, and a BDAT
        ** already out is answered in BODY */
        if (s->t->accepted == 0 && s->t->chunks_out == 0) { send_done(s); break; }
        enter_state(s, MH_SMTP_BODY);
        break;
      }
      if (!s->t->ahead && s->t->accepted == 0) { send_done(s); break; }
      enter_state(s, MH_SMTP_DATA);
      break;
    }
    case MH_SMTP_DATA:
      if (code == 354) {
        if (s->t->accepted == 0 || s->t->mail_failed) s->t->empty_data = 1;
        enter_state(s, MH_SMTP_BODY);
        break;
      }
      if (s->t->accepted > 0 && !s->t->mail_failed) {
        refused(s, "DATA refused", "data");
        s->t->data_refused = 1;
        reject_accepted(s);
      }
      send_done(s);
      break;
    case MH_SMTP_BODY:
      if (s->t->bdat) { on_chunk_reply(s); break; }
      s->need_rset = 0;   /* the dot ended the transaction, whatever the reply */
      if (s->t->empty_data) { send_done(s); break; }
      reply_copy(&s->decisive, r);
      if (!is2(code)) {
        refused(s, "message refused", "data");
        s->t->data_refused = 1;
        reject_accepted(s);
      }
      send_done(s);
      break;
    case MH_SMTP_QUIT:
      reply_copy(&s->decisive, r);
      finish(s, 0, MH_SMTP_CLOSED);
      break;
    default:
      /* READY, TLS, INIT: nothing was asked */
      die(s, MH_EPROTO, stage_of(s->state), "unexpected reply in state %s: %d %s",
          state_names[s->state], code, r->first);
      break;
  }
}

/* ------------------------------------------------- credentials echoed */

static int b64ch(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/' || c == '=';
}

/* An ASCII letter or digit (not the locale's isalnum). */
static int alnum(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Marks [from, from + n) of a text of len bytes. */
static void mark(unsigned char *m, size_t len, size_t from, size_t n) {
  for (size_t k = from; k < from + n && k < len; k++) m[k] = 1;
}

/* Marks in text (len bytes) each place the secret sec (n bytes) stands; a
** secret under 4 bytes only where it stands alone (not inside a word).
** Returns whether any was found. */
static int mark_secret(unsigned char *m, const char *text, size_t len, const char *sec, size_t n) {
  int any = 0;
  if (n > len) return 0;
  for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), sec, n)) != NULL; p++) {
    size_t at = (size_t)(p - text), end = at + n;
    if (n < 4 && ((at > 0 && alnum((unsigned char)text[at - 1])) || (end < len && alnum((unsigned char)text[end]))))
      continue;                       /* a short secret inside a word: not it */
    mark(m, len, at, n), any = 1;
    if (end >= len) break;
  }
  return any;
}

/* Some servers quote the AUTH line in their 535 ("535 5.7.8 AUTH PLAIN
** AGFsaWNl... failed"): the reply text would carry the credentials into the
** error, the log, `mailhook test` and the failed/ sidecar.  Every trace is
** replaced in text (NUL-terminated, cap bytes, edited in place) by "********":
** the secret as given (whatever its length: one under 4 bytes where it stands
** alone, not flanked by a letter or digit -- "535 bad password ab" hides ab,
** "disabled" keeps its "ab"), each base64 string sent, and any
** run of 8 or more base64 characters that is a piece of one of them (an echo
** cut short or re-wrapped).  The user name in clear is left (it is no secret). */
static void mask_creds(const mh_smtp *s, char *text, size_t cap) {
  static const char MASK[] = "********";
  size_t len = strlen(text), o = 0, i;
  const char *sent = s->auth_sent.data ? s->auth_sent.data : "";
  size_t sentlen = s->auth_sent.len;
  unsigned char *m;
  char *out;
  int any = 0;
  if (!len || (!sentlen && !s->auth_secret.len)) return;
  if (!(m = (unsigned char *)calloc(len, 1))) return;
  if (!(out = (char *)malloc(len * (sizeof MASK - 1) + 1))) { free(m); return; }
  /* the secret itself, as given and as the reply's text shows it (text.h: an
     echoed secret holding a control byte, or a byte that is no UTF-8 (a
     Latin-1 "p\xE4ss"), arrives with '?' for it, and was not found) */
  if (s->auth_secret.len) {
    any |= mark_secret(m, text, len, s->auth_secret.data, s->auth_secret.len);
    mh_buf shown = { 0 };
    if (mh_buf_add(&shown, s->auth_secret.data, s->auth_secret.len) == 0) {
      size_t sn = mh_text_shown(shown.data, shown.len, 0);
      if (sn && (sn != s->auth_secret.len || memcmp(shown.data, s->auth_secret.data, sn)))
        any |= mark_secret(m, text, len, shown.data, sn);
    }
    mh_buf_wipe(&shown);   /* (a copy of the secret) */
  }
  /* each base64 string sent, wherever it appears */
  for (const char *a = sent; a < sent + sentlen;) {
    const char *e = memchr(a, '\n', (size_t)(sent + sentlen - a));
    size_t an = e ? (size_t)(e - a) : (size_t)(sent + sentlen - a);
    if (an) {
      for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), a, an)) != NULL; p++)
        mark(m, len, (size_t)(p - text), an), any = 1;
    }
    a += an + 1;
  }
  /* runs of base64 characters that are pieces of what was sent */
  for (i = 0; i < len;) {
    size_t j = i;
    while (j < len && b64ch((unsigned char)text[j])) j++;
    if (j - i >= 8 && sentlen && memmem(sent, sentlen, text + i, j - i)) mark(m, len, i, j - i), any = 1;
    i = j > i ? j : i + 1;
  }
  if (any) {
    for (i = 0; i < len;) {
      if (!m[i]) { out[o++] = text[i++]; continue; }
      while (i < len && m[i]) i++;
      memcpy(out + o, MASK, sizeof MASK - 1);
      o += sizeof MASK - 1;
    }
    if (o > cap - 1) o = cap - 1;   /* a short secret masked may lengthen the text */
    out[o] = '\0';
    memcpy(text, out, o + 1);
  }
  free(out);
  free(m);
}

/* ----------------------------------------------------------- events */

void mh_smtp_connected(mh_smtp *s, int tls) {
  assert(s->state == MH_SMTP_INIT);   /* one connection per session */
  s->tls = tls;
  s->op = OP_OPEN;
  s->expect = 1;   /* the greeting */
  enter_state(s, MH_SMTP_BANNER);
  flush(s);
}

void mh_smtp_tls_ready(mh_smtp *s) {
  if (s->state != MH_SMTP_TLS) return;
  s->tls = 1;
  s->linelen = 0;
  mh_smtp_reply_reset(&s->reply);
  enter_state(s, MH_SMTP_EHLO);   /* capabilities again, now under TLS */
  flush(s);
}

/* What a server that does not speak SMTP sent in place of its greeting, for
** the error: its first QUOTE_MAX bytes of a then b, printable ASCII kept, every
** other byte (control, 8-bit, the backslash) as \xNN, "..." when there was
** more.  Only for the greeting: nothing was sent yet, so it cannot be a hostile
** server's echo of the credentials. */
#define QUOTE_MAX 60
static void quote_greeting(char *out, size_t outsz, const char *a, size_t alen, const char *b, size_t blen) {
  size_t o = 0;
  /* out holds 4 * QUOTE_MAX + 4 bytes: every byte escaped, "..." and the NUL */
  for (size_t k = 0; k < alen + blen && k < QUOTE_MAX && o + 4 < outsz; k++) {
    unsigned char c = (unsigned char)(k < alen ? a[k] : b[k - alen]);
    if (c >= 32 && c < 127 && c != '\\') out[o++] = (char)c;
    else o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
  }
  if (alen + blen > QUOTE_MAX && o + 3 < outsz) { memcpy(out + o, "...", 3); o += 3; }
  out[o] = '\0';
}

/* Whether the bytes of a then b start as a reply does ("220", "421"...). */
static int starts_as_reply(const char *a, size_t alen, const char *b, size_t blen) {
  for (size_t k = 0; k < 3; k++) {
    char c;
    if (k >= alen + blen) return 0;
    c = k < alen ? a[k] : b[k - alen];
    if (c < (k ? '0' : '2') || c > (k ? '9' : '5')) return 0;
  }
  return 1;
}

void mh_smtp_data(mh_smtp *s, const char *buf, size_t len) {
  size_t i = 0;
  if (s->state == MH_SMTP_CLOSED) return;
  while (i < len && s->state != MH_SMTP_CLOSED) {
    const char *nl;
    size_t n;
    int rc;
    if (s->state == MH_SMTP_TLS || s->after_starttls_reply) {
      /* bytes between STARTTLS's 220 and the handshake: injected plain text
         (CVE-2011-0411 class) — never act on them */
      s->after_starttls_reply = 0;
      die(s, MH_EPROTO, "tls", "protocol violation: %zu byte(s) received after the 220 "
          "reply to STARTTLS, before the TLS handshake", len - i);
      break;
    }
    nl = memchr(buf + i, '\n', len - i);
    n = nl ? (size_t)(nl - (buf + i)) : len - i;
    if (s->linelen + n > MH_SMTP_LINE_MAX + 1) {
      if (s->state == MH_SMTP_BANNER && !starts_as_reply(s->line, s->linelen, buf + i, n)) {
        /* a "greeting" of 2000 bytes and no line end that does not even start
        ** as a reply: no SMTP server (binary, a TLS record, a banner of
        ** another protocol); quoted, so it shows */
        char shown[4 * QUOTE_MAX + 4];
        quote_greeting(shown, sizeof shown, s->line, s->linelen, buf + i, n);
        mask_creds(s, shown, sizeof shown);   /* (credentials known from the start: mh_smtp_mask) */
        die(s, MH_EPROTO, stage_of(s->state), "the server's greeting is no SMTP reply (a line longer than "
            "%d bytes): '%s'", MH_SMTP_LINE_MAX, shown);
      } else
        die(s, MH_ETOOLONG, stage_of(s->state), "reply line longer than %d bytes", MH_SMTP_LINE_MAX);
      break;
    }
    memcpy(s->line + s->linelen, buf + i, n);
    s->linelen += n;
    i += n;
    if (!nl) break;
    i++;  /* the LF */
    if (s->linelen && s->line[s->linelen - 1] == '\r') s->linelen--;
    size_t got = s->linelen;   /* (the line stays in s->line: quoted below) */
    rc = mh_smtp_reply_line(&s->reply, s->line, s->linelen);
    s->linelen = 0;
    if (rc < 0) {
      if (rc == MH_ETOOLONG)
        die(s, rc, stage_of(s->state), "reply longer than %d lines or %d bytes per line",
            MH_SMTP_LINES_MAX, MH_SMTP_LINE_MAX);
      else if (s->state == MH_SMTP_BANNER) {
        /* a greeting that is no SMTP: quoted (its start, escaped), so the
        ** administrator sees what answers there ("SSH-2.0-OpenSSH", "HTTP/1.1
        ** 400").  Only here: nothing was sent yet, so no later reply can be a
        ** hostile server's echo of the credentials (those known from an earlier
        ** session are masked all the same). */
        char shown[4 * QUOTE_MAX + 4];
        quote_greeting(shown, sizeof shown, s->line, got, NULL, 0);
        mask_creds(s, shown, sizeof shown);   /* (credentials known from the start: mh_smtp_mask) */
        die(s, rc, stage_of(s->state), "malformed reply line (line %d%s): '%s'", s->reply.nlines + 1,
            s->reply.nlines ? ", a continuation must carry the code of the first line" : "", shown);
      } else
        die(s, rc, stage_of(s->state), "malformed reply line (line %d%s)", s->reply.nlines + 1,
            s->reply.nlines ? ", a continuation must carry the code of the first line" : "");
      break;
    }
    if (s->reply.nlines == 1) {
      /* a reply starts: it must answer something written (the greeting, a
      ** command, a final dot).  A 421 may come at any time (RFC 5321 §3.8). */
      if (s->expect == 0 && s->reply.code != 421) {
        if (s->state == MH_SMTP_BODY)
          die(s, MH_EPROTO, "data", "protocol violation: a reply (%d) arrived before the message "
              "and its final dot were sent; the message is kept", s->reply.code);
        else
          die(s, MH_EPROTO, stage_of(s->state), "protocol violation: a reply (%d) arrived with no "
              "command outstanding (state %s)", s->reply.code, state_names[s->state]);
        break;
      }
      if (s->expect > 0) s->expect--;
    }
    /* (the capabilities read before the masking: a secret that is also a
       keyword must not take the keyword away) */
    if (s->state == MH_SMTP_EHLO && s->reply.nlines > 1 && is2(s->reply.code))
      mh_smtp_caps_line(&s->caps, s->reply.first);
    /* every reply once credentials were sent, not only AUTH's: a server may
       quote the AUTH line or the password when it refuses MAIL after its 235;
       and from the greeting on when they were known before (mh_smtp_mask) */
    if (s->auth_secret.len || s->auth_sent.len) {
      mask_creds(s, s->reply.first, sizeof s->reply.first);
      mask_creds(s, s->reply.text, sizeof s->reply.text);
      s->reply.len = strlen(s->reply.text);
    }
    if (rc == 1) {
      on_reply(s);
      if (s->after_starttls_reply) {
        if (i < len) continue;   /* loop top reports the violation */
        s->after_starttls_reply = 0;
        enter_state(s, MH_SMTP_TLS);
      }
    }
  }
  flush(s);
}

void mh_smtp_flushed(mh_smtp *s) {
  /* the final dot's timer counts from the moment the data left */
  if (s->state == MH_SMTP_BODY && !s->t->body_held) s->io.timer(s->io.ud, mh_smtp_state_timeout(s));
  /* a streamed message: everything written left, the next piece may come
  ** (BDAT without PIPELINING: once its chunk is answered, on_chunk_reply) */
  if (s->state == MH_SMTP_BODY && s->t->streamed && !s->t->dot_out && !s->t->body_held && !s->t->wanting &&
      !s->t->bdat_failed && (!s->t->bdat || (s->caps.flags & MH_SMTP_CAP_PIPELINING))) {
    s->t->wanting = 1;
    if (s->io.more) s->io.more(s->io.ud);
  }
}

void mh_smtp_more(mh_smtp *s, const char *buf, size_t len, int last) {
  txn *t = s->t;
  int rc;
  if (s->state != MH_SMTP_BODY || !t->streamed || !t->wanting) return;
  t->wanting = 0;
  /* BDAT: the piece is made first, to be counted for its command */
  mh_buf *out = t->bdat ? &t->body : &s->wbuf;
  if (t->bdat) t->body.len = 0;
  if (t->conv) {
    conv_sink k = { &t->dotw, out };
    /* the sink is this piece's: the converter writes nothing between pieces */
    rc = mh_mime7_convert_sink(t->conv, conv_out, &k, buf, len, last);
  } else {
    size_t direct = 0;
    /* (not behind a CR that ended the last piece: its line end is the
    ** writer's to make, then the piece's own; a CR CR LF cut after its first
    ** CR lost a line end here: in the header, the empty line that ends it) */
    if (!t->bdat && s->wbuf.len == 0 && !t->dotw.cr) {
      int nul = memchr(buf, '\0', len) != NULL;   /* told to the writer: not scanned twice */
      if (!nul) {
        /* whole clean lines (most of a message) go to the owner as they are, not
        ** copied into the output first: nothing of this event precedes them (a
        ** piece holding a NUL goes through the writer, which drops it) */
        direct = clean_run(&t->dotw, buf, 0, len);
        if (direct) s->io.write(s->io.ud, buf, direct);
      }
      rc = dot_write(&t->dotw, out, buf + direct, len - direct, nul);
    } else {
      rc = mh_smtp_dot_write(&t->dotw, out, buf, len);
    }
  }
  if (rc == 0 && last) rc = t->bdat ? mh_smtp_dot_end(&t->dotw, out) : mh_smtp_dot_finish(&t->dotw, out);
  if (rc == 0 && out->oom) rc = MH_ENOMEM;
  if (rc < 0) {
    die(s, rc, "data", "%s%s", t->conv ? "converting the message to 7-bit: " : "", mh_strerror(rc));
    return;
  }
  if (t->bdat) {
    if (!last && t->body.len == 0) {
      /* nothing to send yet (a CR held for its LF): the next piece at once */
      t->wanting = 1;
      if (s->io.more) s->io.more(s->io.ud);
      return;
    }
    put_chunk(s, t->body.data, t->body.len, last);
  } else if (last) {
    dot_written(s);
  }
  s->io.timer(s->io.ud, mh_smtp_state_timeout(s));
  flush(s);
}

void mh_smtp_more_error(mh_smtp *s, int code, const char *what) {
  if (s->state != MH_SMTP_BODY || !s->t->streamed) return;
  /* half a message is on the wire: only closing the session keeps the server
  ** from taking it as complete.  Stage "file": the message's own spool file
  ** failed (cut short, an I/O error), not the server (outcome.classify) */
  die(s, code, "file", "reading the message failed: %s", what ? what : mh_strerror(code));
}

void mh_smtp_timeout(mh_smtp *s) {
  die(s, MH_ETIMEDOUT, stage_of(s->state), "timed out in state %s (no complete reply in time)",
      state_names[s->state]);
}

void mh_smtp_error(mh_smtp *s, int code, const char *what) {
  if (s->state == MH_SMTP_BANNER && s->linelen > 0 && code == MH_EEOF) {
    /* the server hung up in the middle of a line, before any greeting: what it
    ** sent is quoted (binary, a banner of another protocol), and, when it does
    ** not even start as a reply ("220"), it answered in something else than
    ** SMTP (EPROTO: not "nothing answers there") */
    char shown[4 * QUOTE_MAX + 4];
    int smtpish = starts_as_reply(s->line, s->linelen, NULL, 0);
    quote_greeting(shown, sizeof shown, s->line, s->linelen, NULL, 0);
    mask_creds(s, shown, sizeof shown);   /* (credentials known from the start: mh_smtp_mask) */
    die(s, smtpish ? code : MH_EPROTO, stage_of(s->state), "%s before a complete greeting, after '%s' "
        "(in state %s)", what ? what : mh_strerror(code), shown, state_names[s->state]);
    return;
  }
  die(s, code, stage_of(s->state), "%s (in state %s)", what ? what : mh_strerror(code),
      state_names[s->state]);
}

/* ------------------------------------------------------- operations */

static int start_op(mh_smtp *s, int op) {
  if (s->state != MH_SMTP_READY || s->op != OP_NONE) {
    set_err(s, stage_of(s->state), "session not ready (state %s)", state_names[s->state]);
    return MH_EINVAL;
  }
  s->errmsg[0] = '\0';
  s->stage = NULL;
  mh_smtp_reply_reset(&s->decisive);
  s->op = op;
  return 0;
}

int mh_smtp_mask(mh_smtp *s, const char *user, const char *secret) {
  mh_buf raw = { 0 }, b64s = { 0 };
  if (!secret || !*secret) return 0;
  if (!user) user = "";
  mh_buf_wipe(&s->auth_secret);
  mh_buf_add(&s->auth_secret, secret, strlen(secret));
  /* PLAIN's initial response ("\0user\0secret"), LOGIN's second line */
  mh_buf_add(&raw, "\0", 1);
  mh_buf_add(&raw, user, strlen(user));
  mh_buf_add(&raw, "\0", 1);
  mh_buf_add(&raw, secret, strlen(secret));
  if (!raw.oom) mh_buf_b64(&b64s, raw.data, raw.len);
  auth_remember(s, &b64s);
  mh_buf_wipe(&b64s);
  mh_buf_b64(&b64s, secret, strlen(secret));
  auth_remember(s, &b64s);
  mh_buf_wipe(&b64s);
  mh_buf_wipe(&raw);
  return s->auth_secret.oom || raw.oom || s->auth_sent.oom ? MH_ENOMEM : 0;
}

int mh_smtp_auth(mh_smtp *s, unsigned mech, const char *user, const char *secret) {
  int rc;
  if (mech != MH_SMTP_AUTH_PLAIN && mech != MH_SMTP_AUTH_LOGIN && mech != MH_SMTP_AUTH_XOAUTH2 &&
      mech != MH_SMTP_AUTH_OAUTHBEARER && mech != MH_SMTP_AUTH_CRAM_MD5)
    return MH_EINVAL;
  if ((rc = start_op(s, OP_AUTH)) < 0) return rc;
  mh_buf_wipe(&s->auth_user);
  mh_buf_wipe(&s->auth_secret);
  if (mh_buf_add(&s->auth_user, user ? user : "", user ? strlen(user) : 0) < 0 ||
      mh_buf_add(&s->auth_secret, secret ? secret : "", secret ? strlen(secret) : 0) < 0) {
    s->op = OP_NONE;
    return MH_ENOMEM;
  }
  s->mech = mech;
  enter_state(s, MH_SMTP_AUTH);
  flush(s);
  return 0;
}

/* An address we may put between < and >: no CR, LF, controls nor angle
** brackets (a server that does not parse quotes would end the path at a '>'
** and read what follows as parameters); a space only inside a quoted local
** part ("e x"@y, RFC 5321's qtextSMTP), which the intake takes: refused here,
** such a recipient failed the whole message at delivery, for every recipient.
** An unbalanced quote is refused. */
static int addr_ok(const char *a, int *utf8) {
  size_t n = strlen(a);
  int q = 0;   /* inside a quoted local part ("e x"@y): a space is text there */
  if (n > 500) return 0;
  for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
    if (q && *p == '\\' && p[1] >= 0x20 && p[1] < 0x7f && p[1] != '<' && p[1] != '>') { p++; continue; }
    if (*p == '"') q = !q;
    else if (q && *p == ' ') continue;   /* RFC 5321 qtextSMTP; the intake takes it (mh_addr_check) */
    if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>') return 0;
    if (*p >= 0x80) *utf8 = 1;
  }
  return !q;
}

/* A message refused before anything is sent: the reason goes to verr (and,
** by the caller, to errmsg when no other transaction is running). */
static int refuse(mh_smtp *s, int code, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(mh_smtp *s, int code, const char *stage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->verr, sizeof s->verr, fmt, ap);
  va_end(ap);
  s->vstage = stage;
  return code;
}

/* Shared by send and check: from, rcpts, MAIL parameters, into x. */
static int prepare(mh_smtp *s, txn *x, const char *from, const char *const *rcpt, size_t nrcpt,
                   int eightbit, uint64_t size, int head8) {
  int utf8 = 0;
  if (!addr_ok(from, &utf8)) return refuse(s, MH_EBADADDR, "mail", "invalid sender address: %.100s", from);
  for (size_t i = 0; i < nrcpt; i++)
    if (!*rcpt[i] || !addr_ok(rcpt[i], &utf8))
      return refuse(s, MH_EBADADDR, "rcpt", "invalid recipient address: %.100s", rcpt[i]);
  if (utf8 && !(s->caps.flags & MH_SMTP_CAP_SMTPUTF8))
    return refuse(s, MH_EBADADDR, "mail", "an address is not ASCII and the server does not offer SMTPUTF8");
  clear_rcpts(x);
  if (nrcpt) {
    x->rcpts = (mh_smtp_rcpt *)calloc(nrcpt, sizeof *x->rcpts);
    if (!x->rcpts) return MH_ENOMEM;
    for (size_t i = 0; i < nrcpt; i++) {
      x->rcpts[i].rcpt = strdup(rcpt[i]);
      if (!x->rcpts[i].rcpt) { x->nrcpt = i; clear_rcpts(x); return MH_ENOMEM; }
    }
  }
  x->nrcpt = nrcpt;
  x->rcpt_i = 0;
  x->accepted = 0;
  x->first_rejected = -1;
  x->mail_failed = x->data_refused = x->empty_data = x->ahead = x->body_held = 0;
  x->streamed = x->wanting = x->dot_out = 0;
  x->chunks_out = x->chunks_answered = x->bdat_failed = 0;
  mh_smtp_strcopy(x->from, sizeof x->from, from);
  x->mail_params[0] = '\0';
  if (size && (s->caps.flags & MH_SMTP_CAP_SIZE)) {   /* " SIZE=n", per message: no format parser */
    char d[20];
    size_t k = 0, j = 6;
    memcpy(x->mail_params, " SIZE=", 6);
    for (uint64_t v = size; v; v /= 10) d[k++] = (char)('0' + v % 10);
    while (k) x->mail_params[j++] = d[--k];
    x->mail_params[j] = '\0';
  }
  if (eightbit && (s->caps.flags & MH_SMTP_CAP_8BITMIME))
    strcat(x->mail_params, " BODY=8BITMIME");
  /* RFC 6531 §3.4: SMTPUTF8 when the envelope or the header holds UTF-8 (a
  ** header not converted because the server offers it) */
  if (utf8 || (head8 && (s->caps.flags & MH_SMTP_CAP_SMTPUTF8))) strcat(x->mail_params, " SMTPUTF8");
  /* DSN only where offered: a request the server cannot honour is dropped, not
     sent (it would refuse the unknown parameter) */
  if ((s->caps.flags & MH_SMTP_CAP_DSN) && nrcpt) {
    size_t have = strlen(x->mail_params);
    if (s->dsn_mail && strlen(s->dsn_mail) < sizeof x->mail_params - have)
      memcpy(x->mail_params + have, s->dsn_mail, strlen(s->dsn_mail) + 1);
    if (s->dsn_rcpt) {
      if (!(x->rcpt_dsn = (char **)calloc(nrcpt, sizeof *x->rcpt_dsn))) { clear_rcpts(x); return MH_ENOMEM; }
      for (size_t i = 0; i < nrcpt && i < s->dsn_n; i++)
        if (s->dsn_rcpt[i] && *s->dsn_rcpt[i] && !(x->rcpt_dsn[i] = strdup(s->dsn_rcpt[i]))) {
          clear_rcpts(x);
          return MH_ENOMEM;
        }
    }
  }
  return 0;
}

/* Whether any byte is >= 0x80: eight at a time (the byte loop was a fifth of
** the engine's work on a 100 KB message). */
static int has8(const char *p, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull) break;
  }
  for (; i < n; i++) if ((unsigned char)p[i] >= 0x80) return 1;
  return 0;
}

/* What to convert for this session (mime7.h), from what a scan learnt: the
** bodies without 8BITMIME (RFC 6152 §3), the top-level header fields without
** SMTPUTF8 (RFC 6531), and the bodies holding a line over 998 octets whatever
** the server offers (RFC 5321 §4.5.3.1.6: quoted-printable's soft breaks keep
** the text as it was, where cutting the line would add a line break to it;
** when they cannot be encoded, the dot writer still cuts them). */
static unsigned to_convert(const mh_smtp *s, const mh_mime7 *m) {
  const mh_mime7_info *i = mh_mime7_get_info(m);
  unsigned what = 0;
  if (i->body8 && !(s->caps.flags & MH_SMTP_CAP_8BITMIME)) what |= MH_MIME7_BODIES;
  if (i->head8 && !(s->caps.flags & MH_SMTP_CAP_SMTPUTF8)) what |= MH_MIME7_HEADERS;
  if ((i->bodylong || i->bodynul) && !(what & MH_MIME7_BODIES) && !mh_mime7_why(m, what | MH_MIME7_BODIES))
    what |= MH_MIME7_BODIES;   /* a NUL: no SMTP body may hold one (RFC 5321 §4.5.2, RFC 6152) */
  return what;
}

/* A message that cannot be made 7-bit is refused before anything is sent. */
static int refuse_8bit(mh_smtp *s, const mh_mime7 *m, unsigned what) {
  return refuse(s, MH_E8BIT, "data", "not sent: the server does not offer %s and the message cannot be "
                "converted: %s", (what & MH_MIME7_BODIES) && (what & MH_MIME7_HEADERS) ? "8BITMIME or SMTPUTF8"
                : (what & MH_MIME7_BODIES) ? "8BITMIME" : "SMTPUTF8", mh_mime7_why(m, what));
}

static int too_big(mh_smtp *s, uint64_t size) {
  return refuse(s, MH_ETOOBIG, "mail", "message is %llu bytes, the server accepts at most %llu (its SIZE); "
                "not sent", (unsigned long long)size, (unsigned long long)s->caps.size);
}

/* Stuffs the message into x and fills its envelope.  An 8-bit message to a
** server without 8BITMIME or SMTPUTF8 is converted first (mime7.h); SIZE= is
** the size actually sent. */
/* Streamed: data is NULL and len the message's size (its data comes later
** through io.more / mh_smtp_more; flags and scan as mh_smtp_send_stream's). */
static int load_txn(mh_smtp *s, txn *x, const char *from, const char *const *rcpt, size_t nrcpt,
                    const char *data, size_t len, unsigned flags, mh_mime7 *scan) {
  mh_smtp_dotw w;
  int rc, eightbit = 0, head8 = 0;
  unsigned what = 0;
  uint64_t size;
  mh_mime7 *m = NULL;
  mh_mime7_free(x->conv);
  x->conv = NULL;
  x->bdat = (s->caps.flags & MH_SMTP_CAP_CHUNKING) != 0;
  if (nrcpt == 0) { mh_mime7_free(scan); return refuse(s, MH_EBADADDR, "rcpt", "no recipient"); }
  if (!data) {
    size = len;
    eightbit = (flags & MH_SMTP_STREAM_8BIT) != 0;
    head8 = (flags & MH_SMTP_STREAM_HEAD8) != 0;
    if (scan) {
      const mh_mime7_info *i = mh_mime7_get_info(scan);
      what = to_convert(s, scan);
      eightbit = i->body8 && !(what & MH_MIME7_BODIES);
      head8 = i->head8;
      if (what && mh_mime7_why(scan, what)) { rc = refuse_8bit(s, scan, what); mh_mime7_free(scan); return rc; }
      size = mh_mime7_size(scan, what);
    }
    if (s->caps.size && size > s->caps.size) { mh_mime7_free(scan); return too_big(s, size); }
    x->body.len = 0;
    if ((rc = prepare(s, x, from, rcpt, nrcpt, eightbit, size, head8)) < 0) { mh_mime7_free(scan); return rc; }
    x->streamed = 1;
    mh_smtp_dot_init(&x->dotw);
    x->dotw.nostuff = x->bdat;
    if (what) {
      if ((rc = mh_mime7_convert_begin(scan, what, conv_out, NULL)) < 0) { mh_mime7_free(scan); return rc; }
      x->conv = scan;   /* pieces go through it (mh_smtp_more) */
    } else {
      mh_mime7_free(scan);
    }
    return 0;
  }
  eightbit = has8(data, len);
  uint64_t run = 0;
  int nul = memchr(data, '\0', len) != NULL;   /* told to the writer below: not scanned twice */
  int longl = mh_mime7_longline(data, len, &run) || nul;   /* scanned, like a long line */
  if (eightbit && !longl && (s->caps.flags & MH_SMTP_CAP_8BITMIME) && (s->caps.flags & MH_SMTP_CAP_SMTPUTF8)) {
    head8 = mh_mime7_head8(data, len);
  } else if (eightbit || longl) {
    const mh_mime7_info *i;
    if (!(m = mh_mime7_new()) || mh_mime7_scan(m, data, len) < 0 || mh_mime7_scan_end(m) < 0) {
      mh_mime7_free(m);
      return refuse(s, MH_ENOMEM, "data", "out of memory");
    }
    i = mh_mime7_get_info(m);
    what = to_convert(s, m);
    eightbit = i->body8 && !(what & MH_MIME7_BODIES);
    head8 = i->head8;
    if (what && mh_mime7_why(m, what)) { rc = refuse_8bit(s, m, what); mh_mime7_free(m); return rc; }
  }
  x->body.len = 0;
  mh_smtp_dot_init(&w);
  w.nostuff = x->bdat;
  if (what) {
    conv_sink k = { &w, &x->body };
    if ((rc = mh_mime7_convert_begin(m, what, conv_out, &k)) < 0 || (rc = mh_mime7_convert(m, data, len)) < 0 ||
        (rc = mh_mime7_convert_end(m)) < 0) {
      mh_mime7_free(m);
      return refuse(s, rc, "data", "converting the message to 7-bit: %s", mh_strerror(rc));
    }
  } else if ((rc = dot_write(&w, &x->body, data, len, nul)) < 0) {
    mh_mime7_free(m);
    return refuse(s, rc, "data", "%s", mh_strerror(rc));
  }
  mh_mime7_free(m);
  if ((rc = x->bdat ? mh_smtp_dot_end(&w, &x->body) : mh_smtp_dot_finish(&w, &x->body)) < 0)
    return refuse(s, rc, "data", "%s", mh_strerror(rc));
  /* RFC 1870: the dot-stuffing is not counted (BDAT has none, and no dot) */
  size = x->bdat ? x->body.len : x->body.len - 3 - w.dots;
  if (s->caps.size && size > s->caps.size) return too_big(s, size);
  return prepare(s, x, from, rcpt, nrcpt, eightbit, size, head8);
}

/* Can a send be queued behind the one running?  Only one may wait. */
static int can_queue(const mh_smtp *s) {
  return s->op == OP_SEND && !s->q && s->state >= MH_SMTP_RSET && s->state <= MH_SMTP_BODY;
}

static int send_txn(mh_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                    const char *data, size_t len, unsigned flags, mh_mime7 *scan) {
  int rc, gate = s->gate_next;
  s->gate_next = 0;   /* for this send only, whatever becomes of it */
  s->verr[0] = '\0';
  s->vstage = NULL;
  if (can_queue(s)) {
    txn *x = s->t == &s->tx[0] ? &s->tx[1] : &s->tx[0];
    assert(x != s->t);
    if ((rc = load_txn(s, x, from, rcpt, nrcpt, data, len, flags, scan)) < 0) return rc;
    s->q = x;
    /* the current dot (or BDAT LAST, perhaps with its commands) is out
    ** already: the commands follow at once */
    if (s->t->dot_out && (s->caps.flags & MH_SMTP_CAP_PIPELINING)) {
      put_group(s, x, s->t->bdat);
      flush(s);
    }
    return 0;
  }
  if (s->op != OP_NONE) {  /* something runs: its record of failure stays as it is */
    mh_mime7_free(scan);
    return refuse(s, MH_EINVAL, stage_of(s->state), "session busy (state %s)%s",
                  state_names[s->state], s->op == OP_SEND ? ": one send is queued already" : "");
  }
  if ((rc = start_op(s, OP_SEND)) < 0) {
    mh_mime7_free(scan);
    snprintf(s->verr, sizeof s->verr, "%s", s->errmsg);
    s->vstage = s->stage;
    return rc;
  }
  s->op = OP_NONE;  /* until the checks pass: a refusal here is not an io.done */
  if ((rc = load_txn(s, s->t, from, rcpt, nrcpt, data, len, flags, scan)) < 0) {
    set_err(s, s->vstage, "%s", s->verr);
    return rc;
  }
  s->op = OP_SEND;
  s->gated = gate;
  enter_state(s, s->need_rset ? MH_SMTP_RSET : MH_SMTP_MAIL);
  flush(s);
  return 0;
}

/* Both forget the DSN parameters set for them, used or not. */
int mh_smtp_send(mh_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                 const char *data, size_t len) {
  int rc = send_txn(s, from, rcpt, nrcpt, data ? data : "", len, 0, NULL);
  clear_dsn(s);
  return rc;
}

int mh_smtp_send_stream(mh_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                        uint64_t size, unsigned flags, mh_mime7 *scan) {
  int rc = send_txn(s, from, rcpt, nrcpt, NULL, (size_t)size, flags, scan);
  clear_dsn(s);
  return rc;
}

int mh_smtp_stream_scan_needed(const mh_smtp *s, int head8) {
  if (!(s->caps.flags & MH_SMTP_CAP_8BITMIME)) return 1;   /* the body may need converting */
  return head8 && !(s->caps.flags & MH_SMTP_CAP_SMTPUTF8);  /* its header does */
}

void mh_smtp_gate(mh_smtp *s) {
  if (s->op == OP_NONE && s->state == MH_SMTP_READY) { s->gate_next = 1; return; }
  if (s->op == OP_SEND && s->state >= MH_SMTP_RSET && s->state <= MH_SMTP_DATA) s->gated = 1;
}

void mh_smtp_release(mh_smtp *s) {
  s->gated = 0;
  if (s->state != MH_SMTP_BODY || !s->t->body_held) return;
  s->t->body_held = 0;
  put_body(s);
  s->io.timer(s->io.ud, mh_smtp_state_timeout(s));
  flush(s);
}

const char *mh_smtp_send_error(const mh_smtp *s, const char **stage) {
  if (stage) *stage = s->vstage ? s->vstage : "";
  return s->verr;
}

int mh_smtp_check_sender(mh_smtp *s, const char *from, const char *rcpt) {
  int rc;
  if ((rc = start_op(s, OP_CHECK)) < 0) return rc;
  s->op = OP_NONE;
  if ((rc = prepare(s, s->t, from, rcpt ? &rcpt : NULL, rcpt ? 1 : 0, 0, 0, 0)) < 0) {
    set_err(s, s->vstage, "%s", s->verr);
    return rc;
  }
  s->op = OP_CHECK;
  if (s->need_rset) {
    /* RSET first (alone: grouped()), then MAIL and RSET again */
    s->check_rc = CHECK_CLEARING;
    enter_state(s, MH_SMTP_RSET);
  } else {
    s->check_rc = 0;
    enter_state(s, MH_SMTP_MAIL);
  }
  flush(s);
  return 0;
}

int mh_smtp_quit(mh_smtp *s) {
  int rc;
  if ((rc = start_op(s, OP_QUIT)) < 0) return rc;
  enter_state(s, MH_SMTP_QUIT);
  flush(s);
  return 0;
}
