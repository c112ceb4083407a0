/*
** mime7.c — a message made 7-bit, in two streaming passes (see mime7.h).
**
** Both passes run the same walker over the same bytes, so they meet the same
** entities in the same order: pass 1 records a plan (one small record per
** entity: its type, whether its body holds 8-bit bytes, which encoding is
** smaller) and the size deltas; pass 2 reads the plan back by entity number
** and writes.  The walker works line by line (runtime/eol.h line ends): in a
** header block it gathers one field at a time (at most FIELDCAP bytes); in a
** body it keeps at most LINECAP bytes of a line, enough to recognise a
** boundary delimiter, and streams the rest.  The line end before a delimiter
** belongs to the delimiter (RFC 2046 §5.1.1), so a body's last line end is
** held until the next line is known not to be one.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mime7.h"
#include "b64.h"
#include "buf.h"
#include "eol.h"
#include "error.h"

#define LINECAP   1024          /* body line prefix kept: a delimiter is shorter */
#define FIELDCAP  (256 * 1024)  /* one header field, folded lines included */
#define DEPTH     32            /* nested entities */
#define ENTS_MAX  65536         /* entities in one message (the plan's bound) */
#define BMAX      70            /* RFC 2046: a boundary is 1..70 characters */
#define QP_WIDTH  76            /* RFC 2045 §6.7: encoded lines of at most 76 octets */

/* ------------------------------------------------------------ buffers */

/* A byte >= 0x80.  A NUL is not one: in a header field or a part that cannot
** be encoded the data writer drops it (smtp.c), in a body part it is encoded
** (content(), bodynul), never carried as "8-bit" text (RFC 2047 words that
** decode to a NUL were sent before). */
static int is8(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] >= 0x80) return 1;
  return 0;
}

/* Well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF). */
static int utf8_ok(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c >= 0xE0 && c <= 0xEF) k = 2;
    else if (c >= 0xF0 && c <= 0xF4) k = 3;
    else return 0;
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++)
      if ((p[i + j] & 0xC0) != 0x80) return 0;
    if (k == 2 && ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F))) return 0;
    if (k == 3 && ((c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))) return 0;
    i += k + 1;
  }
  return 1;
}

/* The same, fed in pieces: a small state that survives between them. */
typedef struct { unsigned char need, lo, hi, bad; } u8st;
static void u8_feed(u8st *u, const char *s, size_t n) {
  for (size_t i = 0; i < n && !u->bad; i++) {
    unsigned c = (unsigned char)s[i];
    if (u->need) {
      if (c < u->lo || c > u->hi) { u->bad = 1; break; }
      u->need--;
      u->lo = 0x80;
      u->hi = 0xBF;
      continue;
    }
    if (c < 0x80) continue;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) u->need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      u->need = 2;
      if (c == 0xE0) u->lo = 0xA0;
      if (c == 0xED) u->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      u->need = 3;
      if (c == 0xF0) u->lo = 0x90;
      if (c == 0xF4) u->hi = 0x8F;
    } else {
      u->bad = 1;
    }
  }
}

/* ------------------------------------------------------------ the walker */

enum { T_LEAF, T_MULTI, T_MSG };
enum { CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_B64, CTE_OTHER };
enum { ENC_NONE, ENC_QP, ENC_B64, ENC_7BIT };
enum { CTX_HEAD, CTX_BODY };

/* What pass 1 learnt of one entity, in order of appearance (the plan). */
typedef struct {
  unsigned char type;      /* T_* */
  unsigned char text;      /* a text type (or the text/plain of no Content-Type) */
  unsigned char cte;       /* its declared Content-Transfer-Encoding (CTE_*) */
  unsigned char enc;       /* ENC_*: what pass 2 does to it when converting bodies */
  unsigned char has8;      /* an 8-bit byte in its body (a multipart: outside its parts), or
                              a NUL in a leaf that can be encoded */
  unsigned char longl;     /* a leaf declared 7bit/8bit/binary (or nothing) with a body line
                              over 998 octets: SMTP allows none (RFC 5321 §4.5.3.1.6), so it
                              is encoded like an 8-bit one, whatever the server offers */
  unsigned char top;       /* the message itself (its header is the top-level one) */
  unsigned char has_ct, has_mv;   /* a Content-Type, a MIME-Version field */
  unsigned char last_eol;  /* its body's content ended with a line end */
  unsigned char cte_n;     /* Content-Transfer-Encoding fields */
  unsigned char utf8bad;   /* its body is not UTF-8: an added Content-Type says unknown-8bit */
  uint32_t cte_len;        /* their bytes as sent (CRLF included) */
  uint64_t raw;            /* its body's bytes as sent unconverted */
} ent;

/* An entity being read. */
typedef struct {
  size_t ent;              /* its plan record */
  int type;                /* T_* */
  int digest;              /* multipart/digest: parts default to message/rfc822 */
  char bnd[BMAX + 1];      /* multipart: its boundary */
  size_t blen;
  int closed;              /* multipart: its close delimiter was met (epilogue) */
} frame;

/* What the header block being read says. */
typedef struct {
  char type[32], sub[64];  /* Content-Type, lowercased ("" when none) */
  char bnd[BMAX + 1];      /* its boundary parameter */
  size_t blen;             /* 0: none or invalid */
  int cte;                 /* CTE_* */
} hinfo;

struct mh_mime7 {
  int pass;                /* 0 new, 1 scanning, 3 scanned, 2 converting, 4 converted */
  unsigned what;           /* pass 2: MH_MIME7_* */
  mh_mime7_out out;        /* pass 2: the sink */
  void *ud;
  int err;                 /* the first error (sticky) */
  /* input */
  int cr;                  /* the last byte was a CR: an LF now belongs to its line end */
  int ctx;                 /* CTX_HEAD / CTX_BODY */
  mh_buf line;               /* the current line (BODY: its first LINECAP bytes at most) */
  int streaming;           /* BODY: the line outgrew LINECAP, its bytes go straight on */
  int started;             /* BODY: the current line has had bytes */
  int eol_held;            /* BODY: the last line end, held in case a delimiter follows */
  int at_eol;              /* the last bytes given out (either pass, unconverted) end a line */
  mh_buf field;              /* HEAD: the field being gathered, its lines joined by CRLF */
  hinfo h;                 /* HEAD: what the block says so far */
  int cte_done;            /* pass 2: the first CTE field of this block was written */
  /* structure */
  ent *ents;
  size_t nents, cap, next; /* pass 2: next = the plan record of the next entity */
  frame st[DEPTH];
  int depth, open_multi;   /* frames; multiparts not closed (a delimiter may come) */
  /* the current leaf's encoders */
  int qcol, qws;           /* quoted-printable: column, a held space or tab (0: none) */
  uint64_t qcount;         /* pass 1: quoted-printable bytes of the current leaf */
  unsigned char bq[3];     /* base64: bytes of the next quantum */
  int bn, bcol;
  int qcounting;           /* pass 1: the current leaf could be encoded (counting QP) */
  uint64_t llen;           /* pass 1: octets of the current body line so far */
  u8st u8;                 /* pass 1: is the current leaf's body UTF-8 */
  char last_out;           /* pass 2: the last byte written ('\n' at the start) */
  /* results of pass 1 */
  uint64_t size;           /* bytes as sent unconverted (the final CRLF the writer adds
                              to a message without one: not included, see tail_o) */
  int64_t dhead, dbody;    /* size deltas of converting headers / bodies */
  int tail_o, tail_b;      /* the output ends with a line end: unconverted / bodies converted */
  char why_head[240], why_body[240];   /* "" or why it cannot be converted */
  mh_mime7_info info;
};

/* Keeps the first reason a conversion cannot be done. */
static void set_why(char *why, const char *msg) {
  if (!*why) snprintf(why, 240, "%s", msg);
}

mh_mime7 *mh_mime7_new(void) {
  mh_mime7 *m = calloc(1, sizeof *m);
  return m;
}

void mh_mime7_free(mh_mime7 *m) {
  if (!m) return;
  mh_buf_free(&m->line);
  mh_buf_free(&m->field);
  free(m->ents);
  free(m);
}

const mh_mime7_info *mh_mime7_get_info(const mh_mime7 *m) { return &m->info; }

/* Pass 2 output (pass 1 output is counted where it is decided). */
static void put(mh_mime7 *m, const char *p, size_t n) {
  int rc;
  if (m->err || !n) return;
  if ((rc = m->out(m->ud, p, n)) < 0) m->err = rc;
  m->last_out = p[n - 1];
}

/* Bytes that leave unconverted in either pass. */
static void emit(mh_mime7 *m, const char *p, size_t n) {
  if (!n) return;
  m->at_eol = p[n - 1] == '\n';
  if (m->pass == 1) {
    m->size += n;
    m->tail_o = m->tail_b = p[n - 1] == '\n';
  } else {
    put(m, p, n);
  }
}

static ent *cur(mh_mime7 *m) { return &m->ents[m->st[m->depth - 1].ent]; }

/* ---------------------------------------------------- body encoders */

/* Sends encoder output: counted in pass 1, written in pass 2. */
static void qout(mh_mime7 *m, const char *p, size_t n) {
  if (m->pass == 1) m->qcount += n;
  else put(m, p, n);
}

/* One quoted-printable token (a literal byte or =XX), with a soft line break
** first when the line would pass 76 octets (75 and the "="). */
static void qp_tok(mh_mime7 *m, const char *t, size_t n) {
  if ((size_t)m->qcol + n > QP_WIDTH - 1) {
    qout(m, "=\r\n", 3);
    m->qcol = 0;
  }
  qout(m, t, n);
  m->qcol += (int)n;
}

static void qp_byte(mh_mime7 *m, unsigned char b, int literal_ok) {
  static const char hex[] = "0123456789ABCDEF";
  char t[3];
  /* '-' at the start of a line is encoded: a soft break must never make a line
  ** that starts like a boundary delimiter */
  if (literal_ok && ((b >= 33 && b <= 126 && b != '=' && !(b == '-' && m->qcol == 0)) ||
                     b == ' ' || b == '\t')) {
    t[0] = (char)b;
    qp_tok(m, t, 1);
    return;
  }
  t[0] = '=';
  t[1] = hex[b >> 4];
  t[2] = hex[b & 15];
  qp_tok(m, t, 3);
}

/* A held space or tab: literal when more text follows on its line, encoded at
** a line end (RFC 2045 §6.7 rule 3). */
static void qp_flush_ws(mh_mime7 *m, int at_eol) {
  if (!m->qws) return;
  qp_byte(m, (unsigned char)m->qws, !at_eol);
  m->qws = 0;
}

static void qp_data(mh_mime7 *m, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)p[i];
    qp_flush_ws(m, 0);
    if (b == ' ' || b == '\t') { m->qws = b; continue; }
    qp_byte(m, b, 1);
  }
}

static void qp_eol(mh_mime7 *m) {
  qp_flush_ws(m, 1);
  qout(m, "\r\n", 2);
  m->qcol = 0;
}

static void qp_end(mh_mime7 *m) { qp_flush_ws(m, 1); }

/* base64 in lines of 76 (RFC 2045 §6.8), no line end after the last one. */
static void b64_char(mh_mime7 *m, char c) {
  if (m->bcol == 76) { put(m, "\r\n", 2); m->bcol = 0; }
  put(m, &c, 1);
  m->bcol++;
}

static void b64_quantum(mh_mime7 *m) {
  char q[4];
  mh_b64_encode(q, m->bq, m->bn);
  for (int i = 0; i < 4; i++) b64_char(m, q[i]);
  m->bn = 0;
  m->bq[0] = m->bq[1] = m->bq[2] = 0;
}

static void b64_data(mh_mime7 *m, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    m->bq[m->bn++] = (unsigned char)p[i];
    if (m->bn == 3) b64_quantum(m);
  }
}

static void b64_end(mh_mime7 *m) { if (m->bn) b64_quantum(m); }

static uint64_t b64_size(uint64_t n) {
  uint64_t chars = (n + 2) / 3 * 4;
  return chars ? chars + 2 * ((chars - 1) / 76) : 0;
}

/* ---------------------------------------------------- body content */

/* Content of the current entity's body: bytes, or (eol) one line end. */
static void content(mh_mime7 *m, const char *p, size_t n, int eol) {
  ent *e = cur(m);
  if (eol) { p = "\r\n"; n = 2; }
  if (n == 0) return;
  m->at_eol = eol;
  if (m->pass == 1) {
    m->size += n;
    m->tail_o = m->tail_b = eol;
    if (!eol) {
      /* a NUL makes a leaf that can be encoded an 8-bit one (encoded, so it
      ** decodes to the NUL); in a part that says it is encoded already, or
      ** outside the parts of a multipart, it blocks nothing: the writer drops it */
      int nul = memchr(p, '\0', n) != NULL;
      if (nul) m->info.bodynul = 1;
      if (is8(p, n) || (nul && e->type == T_LEAF && e->cte != CTE_QP && e->cte != CTE_B64 && e->cte != CTE_OTHER)) {
        e->has8 = 1;
        m->info.body8 = 1;
      }
    }
    if (e->type == T_LEAF) {
      if (eol) {
        m->llen = 0;
      } else if ((m->llen += n) > 998 && e->cte != CTE_QP && e->cte != CTE_B64 && e->cte != CTE_OTHER) {
        e->longl = 1;
        m->info.bodylong = 1;
      }
      if (!eol) u8_feed(&m->u8, p, n);
      e->raw += n;
      e->last_eol = (unsigned char)eol;
      if (m->qcounting) { if (eol) qp_eol(m); else qp_data(m, p, n); }
    }
    return;
  }
  if (e->type == T_LEAF && (m->what & MH_MIME7_BODIES) && e->enc == ENC_QP) {
    if (eol) qp_eol(m); else qp_data(m, p, n);
  } else if (e->type == T_LEAF && (m->what & MH_MIME7_BODIES) && e->enc == ENC_B64) {
    b64_data(m, p, n);
  } else {
    put(m, p, n);
  }
}

/* The held line end turns out to be content (no delimiter followed). */
static void release_eol(mh_mime7 *m) {
  if (!m->eol_held) return;
  m->eol_held = 0;
  content(m, NULL, 0, 1);
}

/* ---------------------------------------------------- entities */

static const char *const CTE_LINE[] = { NULL, "Content-Transfer-Encoding: quoted-printable\r\n",
                                        "Content-Transfer-Encoding: base64\r\n",
                                        "Content-Transfer-Encoding: 7bit\r\n" };
static const char MV_LINE[] = "MIME-Version: 1.0\r\n";
/* The Content-Type added to a message without one that gets encoded: ASCII
** (encoded only for its long lines), UTF-8, or bytes of no known charset. */
static const char *ct_line(const ent *e) {
  if (!e->has8) return "Content-Type: text/plain; charset=us-ascii\r\n";
  return !e->utf8bad ? "Content-Type: text/plain; charset=utf-8\r\n"
                     : "Content-Type: text/plain; charset=unknown-8bit\r\n";
}

/* A new entity (the message, a part, a message/rfc822's message): its header
** block comes next.  The caller made sure a frame is free (header_end reads a
** multipart or a message/rfc822 at the last level as a leaf).  Past ENTS_MAX
** entities the last plan record is shared (and bodies refused), so the plan
** stays bounded. */
static void start_entity(mh_mime7 *m) {
  frame *f;
  if (m->err) return;
  if (m->pass == 1) {
    m->info.parts++;
    if (m->nents == ENTS_MAX) {
      set_why(m->why_body, "more than 65536 MIME parts");
    } else {
      if (m->nents == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        ent *n = realloc(m->ents, cap * sizeof *n);
        if (!n) { m->err = MH_ENOMEM; return; }
        m->ents = n;
        m->cap = cap;
      }
      memset(&m->ents[m->nents], 0, sizeof *m->ents);
      m->ents[m->nents].top = m->depth == 0;
      m->nents++;
    }
  }
  f = &m->st[m->depth++];
  memset(f, 0, sizeof *f);
  if (m->pass == 1) f->ent = m->nents - 1;
  else f->ent = m->next < m->nents ? m->next++ : m->nents - 1;
  m->ctx = CTX_HEAD;
  memset(&m->h, 0, sizeof m->h);
  m->cte_done = 0;
  m->field.len = 0;
  m->llen = 0;
  memset(&m->u8, 0, sizeof m->u8);
}

/* The entity on top ends (a delimiter of an outer multipart, or the end). */
static void end_entity(mh_mime7 *m) {
  frame *f = &m->st[m->depth - 1];
  ent *e = &m->ents[f->ent];
  if (m->pass == 2) {
    if (e->type == T_LEAF && (m->what & MH_MIME7_BODIES)) {
      if (e->enc == ENC_QP) qp_end(m);
      else if (e->enc == ENC_B64) b64_end(m);
    }
  } else if (e->type == T_LEAF && (e->has8 || e->longl)) {
    if (e->cte == CTE_QP || e->cte == CTE_B64 || e->cte == CTE_OTHER) {
      set_why(m->why_body, "8-bit bytes inside a part that says it is already encoded "
              "(Content-Transfer-Encoding quoted-printable, base64 or unknown)");
    } else {
      uint64_t qp, b64 = b64_size(e->raw);
      qp_end(m);   /* a held trailing space is encoded: counted */
      qp = m->qcount;
      e->enc = qp < b64 || (qp == b64 && e->text) ? ENC_QP : ENC_B64;
      m->dbody += (int64_t)(e->enc == ENC_QP ? qp : b64) - (int64_t)e->raw;
      m->dbody += (int64_t)strlen(CTE_LINE[e->enc]) - (int64_t)e->cte_len;
      if (e->top && !e->has_mv) m->dbody += (int64_t)strlen(MV_LINE);
      e->utf8bad = m->u8.bad || m->u8.need;
      if (e->top && !e->has_ct) m->dbody += (int64_t)strlen(ct_line(e));
      m->tail_b = e->raw == 0 ? 1 : e->enc == ENC_QP ? e->last_eol : 0;
    }
  } else if (e->type == T_MULTI && e->has8) {
    set_why(m->why_body, "8-bit text outside the parts of a multipart (its preamble or epilogue)");
  }
  if (m->pass == 1 && e->type != T_LEAF && (e->cte == CTE_8BIT || e->cte == CTE_BINARY)) {
    /* a multipart or message/rfc822 cannot be encoded, only relabelled (RFC 2045 §6.4) */
    e->enc = ENC_7BIT;
    m->dbody += (int64_t)strlen(CTE_LINE[ENC_7BIT]) - (int64_t)e->cte_len;
  }
  if (f->type == T_MULTI && !f->closed) m->open_multi--;
  m->depth--;
}

/* ---------------------------------------------------- header fields */

static int name_in(const char *name, size_t n, const char *const *list) {
  for (; *list; list++)
    if (strlen(*list) == n && !strncasecmp(name, *list, n)) return 1;
  return 0;
}

static const char *const ADDR_FIELDS[] = {
  "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Resent-From", "Resent-Sender", "Resent-To",
  "Resent-Cc", "Resent-Bcc", "Disposition-Notification-To", "Mail-Followup-To", "Mail-Reply-To",
  "Return-Receipt-To", "Errors-To", NULL };
static const char *const PARAM_FIELDS[] = { "Content-Type", "Content-Disposition", NULL };
/* structured fields whose 8-bit bytes no encoding can carry */
static const char *const STRUCT_FIELDS[] = {
  "Message-ID", "In-Reply-To", "References", "Date", "Received", "Return-Path", "Content-ID",
  "Content-Transfer-Encoding", "MIME-Version", "Resent-Date", "Resent-Message-ID", "DKIM-Signature",
  "ARC-Seal", "ARC-Message-Signature", "Content-Language", "List-Id", "List-Unsubscribe",
  "List-Post", "List-Help", "List-Subscribe", "List-Owner", "List-Archive", "Content-Location",
  "Content-MD5", "Original-Message-ID", NULL };

/* The field value unfolded (its CRLFs dropped, the WSP after them kept). */
static int unfold(mh_buf *o, const char *v, size_t n) {
  size_t i = 0, run = 0;
  int rc = 0;
  o->len = 0;
  while (i < n) {
    if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') {
      if ((rc = mh_buf_add(o, v + run, i - run))) return rc;
      i += 2;
      run = i;
      continue;
    }
    i++;
  }
  return mh_buf_add(o, v + run, n - run);
}

/* RFC 2047 encoded-words (B) for s[0..n), separated by folds: the first word
** on a line already `used` octets long, the others on lines of their own;
** each at most 75 octets, and none splits a UTF-8 character. */
static int enc_words(mh_buf *o, const char *s, size_t n, size_t used) {
  int utf8 = utf8_ok(s, n);
  const char *cs = utf8 ? "UTF-8" : "UNKNOWN-8BIT";
  size_t over = 2 + strlen(cs) + 3 + 2, i = 0;
  int first = 1, rc = 0;
  while (i < n && rc == 0) {
    size_t room = 76 - (first ? (used < 60 ? used : 60) : 1);
    size_t chars = room > over + 4 ? room - over : 4, raw;
    chars -= chars % 4;
    if (chars > 60) chars = 60;   /* 75-octet words at most */
    raw = chars / 4 * 3;
    if (raw > n - i) raw = n - i;
    if (utf8 && i + raw < n) {
      size_t k = raw;
      while (k > 0 && ((unsigned char)s[i + k] & 0xC0) == 0x80) k--;
      if (k == 0) {   /* one character longer than the room: take it whole */
        k = 1;
        while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80) k++;
      }
      raw = k;
    }
    if (!first) rc = mh_buf_adds(o, "\r\n ");
    if (!rc) rc = mh_buf_adds(o, "=?");
    if (!rc) rc = mh_buf_adds(o, cs);
    if (!rc) rc = mh_buf_adds(o, "?B?");
    if (!rc) rc = mh_buf_b64(o, s + i, raw);
    if (!rc) rc = mh_buf_adds(o, "?=");
    i += raw;
    first = 0;
  }
  return rc;
}

/* Unstructured text (Subject, Comments, X-...): everything after the leading
** blanks becomes encoded-words, so it decodes to exactly the unfolded text. */
static int enc_text(mh_buf *o, const char *name, size_t nl, const mh_buf *u) {
  size_t i = 0;
  int rc;
  while (i < u->len && (u->data[i] == ' ' || u->data[i] == '\t')) i++;
  if ((rc = mh_buf_add(o, name, nl)) || (rc = mh_buf_adds(o, ": "))) return rc;
  return enc_words(o, u->data + i, u->len - i, nl + 2);
}

/* The display name of a phrase, quoted-strings unquoted. */
static int unquote(mh_buf *o, const char *p, size_t n) {
  int rc = 0, q = 0;
  o->len = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (p[i] == '"') { q = !q; continue; }
    if (q && p[i] == '\\' && i + 1 < n) i++;
    rc = mh_buf_add(o, p + i, 1);
  }
  return rc;
}

static void trim(const char **p, size_t *n) {
  while (*n && ((*p)[0] == ' ' || (*p)[0] == '\t')) { (*p)++; (*n)--; }
  while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) (*n)--;
}

/* Address lists (From, To, Cc...): an 8-bit display name becomes encoded-words
** (RFC 2047 §5 (3)); an 8-bit address, comment or group cannot be converted.
** Mailboxes are written one a line.  0, 1 (why says why), or a negative code. */
static int enc_addr(mh_buf *o, const char *name, size_t nl, const mh_buf *u, char *why) {
  const char *v = u->data;
  size_t n = u->len, a = 0;
  int q = 0, depth = 0, angle = 0, rc, nitem = 0;
  mh_buf dn = { 0 };
  if ((rc = mh_buf_add(o, name, nl)) || (rc = mh_buf_adds(o, ":"))) return rc;
  for (size_t i = 0; i <= n; i++) {
    char c = i < n ? v[i] : ',';
    if (i < n) {
      if (q) { if (c == '\\' && i + 1 < n) i++; else if (c == '"') q = 0; continue; }
      if (depth) {
        if (c == '\\' && i + 1 < n) i++;
        else if (c == '(') depth++;
        else if (c == ')') depth--;
        continue;
      }
      if (c == '"') { q = 1; continue; }
      if (c == '(') { depth = 1; continue; }
      if (c == '<') { angle = 1; continue; }
      if (c == '>') { angle = 0; continue; }
      if (angle) continue;
      if (c == ':' || c == ';') {
        snprintf(why, 240, "the %.*s header uses group syntax with 8-bit bytes", (int)nl, name);
        mh_buf_free(&dn);
        return 1;
      }
      if (c != ',') continue;
    }
    /* the mailbox v[a..i) */
    const char *item = v + a, *lt = NULL, *gt = NULL;
    size_t in = i - a;
    a = i + 1;
    trim(&item, &in);
    if (in == 0) continue;
    if (is8(item, in)) {
      int iq = 0;
      for (size_t k = 0; k < in; k++) {
        if (item[k] == '"') iq = !iq;
        else if (iq && item[k] == '\\') k++;
        else if (!iq && item[k] == '<') lt = item + k;
        else if (!iq && item[k] == '>') gt = item + k;
        else if (!iq && item[k] == '(') {
          snprintf(why, 240, "the %.*s header has an 8-bit comment", (int)nl, name);
          mh_buf_free(&dn);
          return 1;
        }
      }
      if (!lt || !gt || gt < lt || is8(lt, (size_t)(item + in - lt))) {
        snprintf(why, 240, "the %.*s header holds a non-ASCII address, which only SMTPUTF8 can carry "
                 "(RFC 6531)", (int)nl, name);
        mh_buf_free(&dn);
        return 1;
      }
      const char *ph = item;
      size_t pn = (size_t)(lt - item);
      trim(&ph, &pn);
      if ((rc = unquote(&dn, ph, pn)) ||
          (rc = mh_buf_adds(o, nitem ? ",\r\n " : " ")) ||
          (rc = enc_words(o, dn.data ? dn.data : "", dn.len, nitem ? 1 : nl + 2)) ||
          (rc = mh_buf_adds(o, "\r\n ")) ||
          (rc = mh_buf_add(o, lt, (size_t)(item + in - lt)))) {
        mh_buf_free(&dn);
        return rc;
      }
    } else if ((rc = mh_buf_adds(o, nitem ? ",\r\n " : " ")) || (rc = mh_buf_add(o, item, in))) {
      mh_buf_free(&dn);
      return rc;
    }
    nitem++;
  }
  mh_buf_free(&dn);
  return 0;
}

/* RFC 2231 attribute-char: what may stand in an extended value unencoded. */
static int attr_char(unsigned char c) {
  if (c <= ' ' || c >= 0x7f) return 0;
  return !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

/* Content-Type / Content-Disposition: 8-bit parameter values become RFC 2231
** extended values (charset''%XX, split in continuations past 60 octets); an
** 8-bit type or parameter name cannot be converted. */
static int enc_params(mh_buf *o, const char *name, size_t nl, const mh_buf *u, char *why) {
  const char *v = u->data;
  size_t n = u->len, a = 0;
  int q = 0, rc, first = 1;
  mh_buf val = { 0 }, pct = { 0 };
  if ((rc = mh_buf_add(o, name, nl)) || (rc = mh_buf_adds(o, ":"))) return rc;
  for (size_t i = 0; i <= n; i++) {
    if (i < n) {
      if (q) { if (v[i] == '\\' && i + 1 < n) i++; else if (v[i] == '"') q = 0; continue; }
      if (v[i] == '"') { q = 1; continue; }
      if (v[i] != ';') continue;
    }
    const char *seg = v + a;
    size_t sn = (i < n ? i : n) - a;
    a = i + 1;
    trim(&seg, &sn);
    if (first) {
      first = 0;
      if (is8(seg, sn)) {
        snprintf(why, 240, "the %.*s header has an 8-bit type", (int)nl, name);
        goto bad;
      }
      if ((rc = mh_buf_adds(o, " ")) || (rc = mh_buf_add(o, seg, sn))) goto out;
      continue;
    }
    if (sn == 0) continue;
    if (!is8(seg, sn)) {
      if ((rc = mh_buf_adds(o, ";\r\n\t")) || (rc = mh_buf_add(o, seg, sn))) goto out;
      continue;
    }
    const char *eq = memchr(seg, '=', sn), *pn = seg, *pv;
    size_t pl, pvn;
    if (!eq) { snprintf(why, 240, "the %.*s header has an 8-bit parameter", (int)nl, name); goto bad; }
    pl = (size_t)(eq - seg);
    trim(&pn, &pl);
    int token = pl > 0;
    for (size_t j = 0; j < pl; j++) if (!attr_char((unsigned char)pn[j])) token = 0;
    if (!token) {
      snprintf(why, 240, "the %.*s header has an 8-bit parameter name or extended value", (int)nl, name);
      goto bad;
    }
    pv = eq + 1;
    pvn = (size_t)(seg + sn - pv);
    trim(&pv, &pvn);
    val.len = 0;
    if (pvn && pv[0] == '"') {   /* a quoted-string: its content, escapes undone */
      for (size_t j = 1; j < pvn && pv[j] != '"' && rc == 0; j++) {
        if (pv[j] == '\\' && j + 1 < pvn) j++;
        rc = mh_buf_add(&val, pv + j, 1);
      }
    } else {
      rc = mh_buf_add(&val, pv, pvn);   /* a token */
    }
    if (rc) goto out;
    {
      const char *cs = utf8_ok(val.data, val.len) ? "utf-8''" : "unknown-8bit''";
      size_t k = 0, part = 0;
      pct.len = 0;
      for (size_t j = 0; j < val.len && rc == 0; j++) {
        unsigned char c = (unsigned char)val.data[j];
        char t[4];
        if (attr_char(c)) rc = mh_buf_add(&pct, &val.data[j], 1);
        else { snprintf(t, sizeof t, "%%%02X", c); rc = mh_buf_add(&pct, t, 3); }
      }
      if (rc) goto out;
      if (pct.len <= 60) {
        if ((rc = mh_buf_adds(o, ";\r\n\t")) || (rc = mh_buf_add(o, pn, pl)) || (rc = mh_buf_adds(o, "*=")) ||
            (rc = mh_buf_adds(o, cs)) || (rc = mh_buf_add(o, pct.data, pct.len)))
          goto out;
      } else {
        while (k < pct.len) {
          size_t c = pct.len - k > 60 ? 60 : pct.len - k;
          char num[32];
          if (k + c < pct.len) {   /* never split a %XX */
            if (pct.data[k + c - 1] == '%') c -= 1;
            else if (c >= 2 && pct.data[k + c - 2] == '%') c -= 2;
          }
          snprintf(num, sizeof num, "*%zu*=", part);
          if ((rc = mh_buf_adds(o, ";\r\n\t")) || (rc = mh_buf_add(o, pn, pl)) || (rc = mh_buf_adds(o, num)) ||
              (part == 0 && (rc = mh_buf_adds(o, cs))) || (rc = mh_buf_add(o, pct.data + k, c)))
            goto out;
          k += c;
          part++;
        }
      }
    }
  }
  rc = 0;
  goto out;
bad:
  rc = 1;
out:
  mh_buf_free(&val);
  mh_buf_free(&pct);
  return rc;
}

/* The 7-bit form of an 8-bit field into o: 0, 1 (cannot: why), or a negative code. */
static int enc_field(mh_buf *o, const char *f, size_t n, char *why) {
  const char *colon = memchr(f, ':', n);
  size_t nl;
  mh_buf u = { 0 };
  int rc;
  o->len = 0;
  if (!colon) { snprintf(why, 240, "a header line without a field name holds 8-bit bytes"); return 1; }
  nl = (size_t)(colon - f);
  while (nl && (f[nl - 1] == ' ' || f[nl - 1] == '\t')) nl--;
  for (size_t i = 0; i < nl; i++)
    if ((unsigned char)f[i] < 33 || (unsigned char)f[i] > 126) {
      snprintf(why, 240, "a malformed header line (its field name is not printable ASCII) holds 8-bit bytes");
      return 1;
    }
  if (nl == 0) { snprintf(why, 240, "a header line without a field name holds 8-bit bytes"); return 1; }
  if (name_in(f, nl, STRUCT_FIELDS)) {
    snprintf(why, 240, "the %.*s header holds 8-bit bytes, which no encoding can carry there "
             "(it would need SMTPUTF8)", (int)nl, f);
    return 1;
  }
  if ((rc = unfold(&u, colon + 1, (size_t)(f + n - colon - 1)))) return rc;
  if (name_in(f, nl, ADDR_FIELDS)) rc = enc_addr(o, f, nl, &u, why);
  else if (name_in(f, nl, PARAM_FIELDS)) rc = enc_params(o, f, nl, &u, why);
  else rc = enc_text(o, f, nl, &u);
  mh_buf_free(&u);
  return rc;
}

/* Reads the parts of a Content-Type value the walker needs. */
static void parse_ct(hinfo *h, const char *v, size_t n) {
  size_t i = 0, k;
  while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n')) i++;
  for (k = 0; i < n && v[i] != '/' && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '\r'; i++)
    if (k + 1 < sizeof h->type) h->type[k++] = (char)(v[i] | 0x20);
  h->type[k] = '\0';
  if (i < n && v[i] == '/') i++;
  for (k = 0; i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '('; i++)
    if (k + 1 < sizeof h->sub) h->sub[k++] = (char)(v[i] | 0x20);
  h->sub[k] = '\0';
  /* parameters: only boundary matters here */
  h->blen = 0;
  while (i < n) {
    size_t ns, ne;
    if (v[i] != ';') { i++; continue; }
    i++;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n')) i++;
    ns = i;
    while (i < n && v[i] != '=' && v[i] != ';') i++;
    ne = i;
    while (ne > ns && (v[ne - 1] == ' ' || v[ne - 1] == '\t')) ne--;
    if (i >= n || v[i] != '=') continue;
    i++;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    char val[BMAX + 2];
    size_t vl = 0;
    int toolong = 0;
    if (i < n && v[i] == '"') {
      for (i++; i < n && v[i] != '"'; i++) {
        if (v[i] == '\\' && i + 1 < n) i++;
        if (vl < BMAX + 1) val[vl++] = v[i]; else toolong = 1;
      }
      if (i < n) i++;
    } else {
      for (; i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '('; i++)
        if (vl < BMAX + 1) val[vl++] = v[i]; else toolong = 1;
    }
    if (ne - ns == 8 && !strncasecmp(v + ns, "boundary", 8)) {
      if (!toolong && vl >= 1 && vl <= BMAX) { memcpy(h->bnd, val, vl); h->bnd[vl] = '\0'; h->blen = vl; }
      else h->blen = 0;
    }
  }
}

static int parse_cte(const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) { v++; n--; }
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n')) n--;
#define IS(s) (n == strlen(s) && !strncasecmp(v, s, n))
  if (n == 0 || IS("7bit")) return CTE_7BIT;
  if (IS("8bit")) return CTE_8BIT;
  if (IS("binary")) return CTE_BINARY;
  if (IS("quoted-printable")) return CTE_QP;
  if (IS("base64")) return CTE_B64;
#undef IS
  return CTE_OTHER;
}

/* One complete header field (m->field, lines joined by CRLF, no final line end). */
static void field_done(mh_mime7 *m) {
  const char *f = m->field.data;
  size_t n = m->field.len, nl;
  ent *e = cur(m);
  const char *colon;
  int top = e->top, cte = 0;
  if (!n || m->err) { m->field.len = 0; return; }
  colon = memchr(f, ':', n);
  nl = colon ? (size_t)(colon - f) : 0;
  while (nl && (f[nl - 1] == ' ' || f[nl - 1] == '\t')) nl--;
  if (colon && nl == 12 && !strncasecmp(f, "Content-Type", 12)) {
    parse_ct(&m->h, colon + 1, (size_t)(f + n - colon - 1));
    e->has_ct = 1;
  } else if (colon && nl == 25 && !strncasecmp(f, "Content-Transfer-Encoding", 25)) {
    m->h.cte = parse_cte(colon + 1, (size_t)(f + n - colon - 1));
    cte = 1;
  } else if (colon && nl == 12 && !strncasecmp(f, "MIME-Version", 12)) {
    e->has_mv = 1;
  }
  if (m->pass == 1) {
    m->size += n + 2;
    m->tail_o = m->tail_b = 1;
    if (cte) { e->cte_n++; e->cte_len += (uint32_t)(n + 2); }
    if (is8(f, n)) {
      mh_buf o = { 0 };
      char why[240] = "";
      int rc;
      if (top) m->info.head8 = 1; else m->info.body8 = 1;
      rc = enc_field(&o, f, n, why);
      if (rc < 0) m->err = rc;
      else if (rc == 1) set_why(top ? m->why_head : m->why_body, why);
      else if (top) m->dhead += (int64_t)o.len - (int64_t)n;
      else m->dbody += (int64_t)o.len - (int64_t)n;
      mh_buf_free(&o);
    }
  } else {
    unsigned need = top ? MH_MIME7_HEADERS : MH_MIME7_BODIES;
    if (cte && (m->what & MH_MIME7_BODIES) && e->enc != ENC_NONE) {
      /* relabelled: the first such field says the new encoding, others go */
      if (!m->cte_done) put(m, CTE_LINE[e->enc], strlen(CTE_LINE[e->enc]));
      m->cte_done = 1;
    } else if ((m->what & need) && is8(f, n)) {
      mh_buf o = { 0 };
      char why[240] = "";
      int rc = enc_field(&o, f, n, why);
      if (rc == 0) { put(m, o.data, o.len); put(m, "\r\n", 2); }
      else m->err = rc < 0 ? rc : MH_E8BIT;
      mh_buf_free(&o);
    } else {
      put(m, f, n);
      put(m, "\r\n", 2);
    }
  }
  m->field.len = 0;
}

/* The empty line: the header block of the entity on top is complete. */
static void header_end(mh_mime7 *m) {
  frame *f = &m->st[m->depth - 1];
  ent *e = &m->ents[f->ent];
  frame *parent = m->depth > 1 ? &m->st[m->depth - 2] : NULL;
  int type = T_LEAF;
  field_done(m);
  if (m->depth >= DEPTH - 1) {
    /* no room for its parts: read as one opaque leaf (and refused if 8-bit) */
    if (!strcmp(m->h.type, "multipart") || !strcmp(m->h.type, "message"))
      set_why(m->why_body, "MIME parts nested more than 32 deep");
  } else if (!strcmp(m->h.type, "multipart") && m->h.blen) type = T_MULTI;
  else if ((!strcmp(m->h.type, "message") && !strcmp(m->h.sub, "rfc822")) ||
           (!e->has_ct && parent && parent->type == T_MULTI && parent->digest))
    type = T_MSG;
  if (m->pass == 1) {
    e->type = (unsigned char)type;
    e->cte = (unsigned char)m->h.cte;
    e->text = !e->has_ct || !strcmp(m->h.type, "text");
  } else if ((m->what & MH_MIME7_BODIES) && e->enc != ENC_NONE) {
    if (!m->cte_done && e->enc != ENC_7BIT) put(m, CTE_LINE[e->enc], strlen(CTE_LINE[e->enc]));
    if (e->top && e->type == T_LEAF && !e->has_mv) put(m, MV_LINE, strlen(MV_LINE));
    if (e->top && e->type == T_LEAF && !e->has_ct) put(m, ct_line(e), strlen(ct_line(e)));
  }
  emit(m, "\r\n", 2);
  f->type = type;
  if (type == T_MULTI) {
    memcpy(f->bnd, m->h.bnd, m->h.blen + 1);
    f->blen = m->h.blen;
    f->digest = !strcmp(m->h.sub, "digest");
    m->open_multi++;
  }
  m->ctx = CTX_BODY;
  m->eol_held = 0;
  m->streaming = m->started = 0;
  m->line.len = 0;
  m->qcol = m->qws = 0;
  m->qcount = 0;
  m->bn = m->bcol = 0;
  m->qcounting = m->pass == 1 && type == T_LEAF && m->h.cte != CTE_QP && m->h.cte != CTE_B64;
  if (type == T_MSG) start_entity(m);   /* its body is a message: a header block again */
}

/* One line of a header block (its line end seen, or the end of input). */
static void header_line(mh_mime7 *m, const char *p, size_t n, int eof) {
  if (n == 0 && !eof) { header_end(m); return; }
  if (n && (p[0] == ' ' || p[0] == '\t') && m->field.len) {
    if (mh_buf_add(&m->field, "\r\n", 2) || mh_buf_add(&m->field, p, n)) m->err = MH_ENOMEM;
  } else {
    field_done(m);
    if (n && mh_buf_add(&m->field, p, n)) m->err = MH_ENOMEM;
  }
  if (m->field.len > FIELDCAP) {
    set_why(m->why_head, "a header field longer than 256 KiB");
    set_why(m->why_body, "a header field longer than 256 KiB");
    m->field.len = 0;
  }
  if (eof) field_done(m);
}

/* ---------------------------------------------------- body lines */

/* Is line[0..n) a delimiter of an open multipart?  Its frame index, or -1;
** *close set for a close delimiter. */
static int delimiter(mh_mime7 *m, const char *p, size_t n, int *close) {
  if (n < 3 || p[0] != '-' || p[1] != '-' || !m->open_multi) return -1;
  for (int k = m->depth - 1; k >= 0; k--) {
    frame *f = &m->st[k];
    size_t i;
    if (f->type != T_MULTI || f->closed) continue;
    if (n < 2 + f->blen || memcmp(p + 2, f->bnd, f->blen)) continue;
    i = 2 + f->blen;
    *close = n >= i + 2 && p[i] == '-' && p[i + 1] == '-';
    if (*close) i += 2;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    if (i == n) return k;
  }
  return -1;
}

/* A delimiter of the multipart at frame k: the entities above it end, the
** held line end and the delimiter line leave as they are. */
static void on_delimiter(mh_mime7 *m, int k, int close, const char *p, size_t n, int eol) {
  while (m->depth - 1 > k) end_entity(m);
  if (m->eol_held) { m->eol_held = 0; emit(m, "\r\n", 2); }
  emit(m, p, n);
  if (eol) emit(m, "\r\n", 2);
  if (close) {
    m->st[k].closed = 1;
    m->open_multi--;
    m->ctx = CTX_BODY;   /* the epilogue */
    m->eol_held = 0;
  } else {
    start_entity(m);     /* a part: its header block */
  }
}

/* Bytes of a body line. */
static void body_bytes(mh_mime7 *m, const char *p, size_t n) {
  if (!n) return;
  if (!m->started) {
    m->started = 1;
    /* no delimiter can come: stream the line (the held line end is content) */
    if (!m->open_multi || p[0] != '-') { release_eol(m); m->streaming = 1; }
  }
  if (m->streaming) { content(m, p, n, 0); return; }
  if (m->line.len + n > LINECAP) {   /* too long for a delimiter */
    release_eol(m);
    content(m, m->line.data, m->line.len, 0);
    m->line.len = 0;
    m->streaming = 1;
    content(m, p, n, 0);
    return;
  }
  if (mh_buf_add(&m->line, p, n)) m->err = MH_ENOMEM;
}

/* A body line ended (eol), or the input did (!eol). */
static void body_line_end(mh_mime7 *m, int eol) {
  if (!m->streaming) {
    int close = 0, k = delimiter(m, m->line.data, m->line.len, &close);
    if (k >= 0) {
      on_delimiter(m, k, close, m->line.data, m->line.len, eol);
      m->line.len = 0;
      m->started = m->streaming = 0;
      return;
    }
    if (m->line.len || eol) release_eol(m);
    content(m, m->line.data, m->line.len, 0);
    m->line.len = 0;
  }
  m->started = m->streaming = 0;
  if (eol) m->eol_held = 1;
}

/* ---------------------------------------------------- input */

static void line_end(mh_mime7 *m) {
  if (m->ctx == CTX_HEAD) {
    header_line(m, m->line.data, m->line.len, 0);
    m->line.len = 0;
  } else {
    body_line_end(m, 1);
  }
}

static void feed(mh_mime7 *m, const char *buf, size_t len) {
  for (size_t i = 0; i < len && !m->err; i++) {
    char c = buf[i];
    if (m->cr) {
      m->cr = 0;
      if (c == '\n') continue;   /* the LF of a CRLF: its line already ended */
    }
    if (c == '\r' || c == '\n') {
      m->cr = c == '\r';
      line_end(m);
      continue;
    }
    size_t j = i;
    while (j < len && buf[j] != '\r' && buf[j] != '\n') j++;
    if (m->ctx == CTX_HEAD) {
      if (mh_buf_add(&m->line, buf + i, j - i)) m->err = MH_ENOMEM;
      if (m->line.len > FIELDCAP + 1) {   /* one line alone over the field limit */
        set_why(m->why_head, "a header field longer than 256 KiB");
    set_why(m->why_body, "a header field longer than 256 KiB");
        m->line.len = 0;
      }
    } else {
      body_bytes(m, buf + i, j - i);
    }
    i = j - 1;
  }
}

/* The end of the input: the last line without a line end, then every open
** entity ends. */
static void finish(mh_mime7 *m) {
  if (m->ctx == CTX_HEAD) {
    if (m->line.len || m->field.len) header_line(m, m->line.data, m->line.len, 1);
    m->line.len = 0;
  } else if (m->started || m->line.len) {
    body_line_end(m, 0);
  }
  release_eol(m);   /* the last line end of the message is content */
  /* the data writer ends the message with a line end: as content, so an
  ** encoded last part carries it too */
  if (m->ctx == CTX_BODY && !m->at_eol) content(m, NULL, 0, 1);
  if (m->pass == 1 && m->depth > 0) {
    ent *e = cur(m);
    int enc_leaf = e->type == T_LEAF && (e->has8 || e->longl) && e->cte != CTE_QP && e->cte != CTE_B64 && e->cte != CTE_OTHER;
    while (m->depth > 0) end_entity(m);
    /* converted, the last bytes are the last leaf's (its tail_b set by end_entity) */
    if (!enc_leaf) m->tail_b = m->tail_o;
  } else {
    while (m->depth > 0) end_entity(m);
  }
}

/* ---------------------------------------------------- API */

int mh_mime7_scan(mh_mime7 *m, const char *buf, size_t len) {
  if (m->pass == 0) { m->pass = 1; m->tail_o = m->tail_b = m->at_eol = 1; start_entity(m); }
  if (m->pass != 1) return MH_EINVAL;
  feed(m, buf, len);
  return m->err;
}

int mh_mime7_scan_end(mh_mime7 *m) {
  if (m->pass == 0) mh_mime7_scan(m, "", 0);
  if (m->pass != 1) return MH_EINVAL;
  finish(m);
  m->pass = 3;   /* scanned */
  return m->err;
}

uint64_t mh_mime7_size(const mh_mime7 *m, unsigned what) {
  int64_t s = (int64_t)m->size + (m->tail_o ? 0 : 2);
  if (what & MH_MIME7_HEADERS) s += m->dhead;
  if (what & MH_MIME7_BODIES) s += m->dbody + (m->tail_b ? 0 : 2) - (m->tail_o ? 0 : 2);
  return s < 0 ? 0 : (uint64_t)s;
}

const char *mh_mime7_why(const mh_mime7 *m, unsigned what) {
  if ((what & MH_MIME7_BODIES) && *m->why_body) return m->why_body;
  if ((what & MH_MIME7_HEADERS) && *m->why_head) return m->why_head;
  return NULL;
}

int mh_mime7_convert_begin(mh_mime7 *m, unsigned what, mh_mime7_out out, void *ud) {
  if (m->pass != 3 || m->err) return m->err ? m->err : MH_EINVAL;
  if (mh_mime7_why(m, what)) return MH_E8BIT;
  m->pass = 2;
  m->what = what;
  m->out = out;
  m->ud = ud;
  m->cr = m->depth = m->open_multi = 0;
  m->line.len = m->field.len = 0;
  m->eol_held = m->streaming = m->started = 0;
  m->at_eol = 1;
  m->next = 0;
  m->last_out = '\n';
  start_entity(m);
  return m->err;
}

int mh_mime7_convert(mh_mime7 *m, const char *buf, size_t len) {
  if (m->pass != 2) return MH_EINVAL;
  feed(m, buf, len);
  return m->err;
}

int mh_mime7_convert_end(mh_mime7 *m) {
  if (m->pass != 2) return MH_EINVAL;
  finish(m);
  if (m->last_out != '\n') put(m, "\r\n", 2);   /* SMTP data ends with a line end */
  m->pass = 4;
  return m->err;
}

int mh_mime7_convert_sink(mh_mime7 *m, mh_mime7_out out, void *ud, const char *buf, size_t len, int last) {
  int rc;
  m->out = out;
  m->ud = ud;
  rc = mh_mime7_convert(m, buf, len);
  if (rc == 0 && last) rc = mh_mime7_convert_end(m);
  return rc;
}

int mh_mime7_head8(const char *buf, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c >= 0x80) return 1;
    if ((c == '\n' || c == '\r') && i + 1 < len) {
      /* an empty line ends the header block */
      size_t j = i + 1;
      if (c == '\r' && buf[j] == '\n') j++;
      if (j < len && (buf[j] == '\n' || buf[j] == '\r')) return 0;
    }
  }
  return 0;
}

/* mh_mime7_longline's walk, a line (a memchr) at a time, from p with *run
** octets of the current line before it. */
static int longline_walk(const char *p, const char *end, uint64_t *run) {
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    /* a bare CR ends a line too (runtime/eol.h): rare, looked for only in a long run */
    uint64_t n = (uint64_t)(stop - p);
    if (*run + n > 998) {
      const char *cr = memchr(p, '\r', (size_t)(stop - p));
      while (cr && cr + 1 < stop) {   /* a CR inside the run: a line end of its own */
        if (*run + (uint64_t)(cr - p) > 998) return 1;
        *run = 0;
        p = cr + 1;
        cr = memchr(p, '\r', (size_t)(stop - p));
      }
      n = (uint64_t)(stop - p);
      if (cr && cr + 1 == stop) n--;   /* the CR of a CRLF (or a CR last in the piece) */
      if (*run + n > 998) return 1;
    }
    if (!nl) { *run += (uint64_t)(stop - p); return 0; }
    *run = 0;
    p = nl + 1;
  }
  return 0;
}

int mh_mime7_longline(const char *buf, size_t len, uint64_t *run) {
  const char *p = buf, *end = buf + len;
  /* Many lines a call: in the window of 999 - *run octets from p, an LF means
  ** every line ended in the window is short of the rule (the first has *run +
  ** fewer than 999 - *run octets, the others fewer than 999), so p jumps past
  ** the window's last LF (memrchr: found a line's length back from the
  ** window's end).  An ordinary 1 KB message costs one or two calls here, not
  ** a memchr a line.  Where a window holds no LF, the walk takes over in the
  ** same state the line-by-line walk would have reached. */
  while (*run < 999) {
    size_t rest = (size_t)(end - p), w = (size_t)(999 - *run);
    const char *lf = memrchr(p, '\n', rest < w ? rest : w);
    if (lf) {
      *run = 0;
      p = lf + 1;
    } else if (rest < w) {   /* the rest fits on the current line, no line end in it */
      *run += (uint64_t)rest;
      return 0;
    } else {
      break;
    }
  }
  return longline_walk(p, end, run);
}
