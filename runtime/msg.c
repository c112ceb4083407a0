/*
** msg.c — the message builder (see msg.h for the contract).
**
** Fields are copied and checked as they are set.  mh_msg_finish() renders the
** message into a list of pieces: in-memory bytes (headers, MIME part headers,
** encoded bodies) and attachment references, whose files are read and
** base64-encoded in fixed-size chunks only while writing.  Header lines are
** produced by one folding writer fed with tokens that each start with the
** whitespace a fold may replace, so no header line can exceed 998 octets and
** no input byte can end one: CR, LF and NUL are refused at the door.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "b64.h"
#include "buf.h"
#include "error.h"
#include "fsutil.h"
#include "msg.h"
#include "eol.h"
#include "text.h"

#define FOLD_AT 78          /* fold header lines after this many columns when possible */
#define MAX_PLAIN_WORD 900  /* a longer token (plain_ok) is sent as encoded words instead */
#define EW_BYTES 42         /* input bytes per encoded word: 56 base64 + 12 = 68 <= 75,
                               so "Reply-To: " and one word fit in 78 columns */
#define B64_LINE 57         /* input bytes per 76-column base64 line */
#define CHUNK (B64_LINE * 1024)  /* attachment bytes read at a time */
#define OUT_FLUSH 65536     /* write to the descriptor when this much is buffered */
#define MAX_FILE_NAME 255   /* an attachment's shown name: longer ones are cut (NAME_MAX) */

typedef struct {
  char *name;               /* display name (UTF-8) or NULL */
  char *addr;               /* bare address, validated */
} mbox;

typedef struct {
  mbox *v;
  size_t n, cap;
} alist;

typedef struct {
  char *name;               /* validated field name */
  char *value;              /* unstructured value (may hold NUL-free UTF-8) */
  size_t len;
} header;

typedef struct {
  char *path;               /* read at write time */
  char *type;               /* content type, validated */
  char *name;               /* file name shown to the reader */
} attach;

typedef struct {
  mh_buf mem;                 /* bytes written as they are */
  long att;                 /* >= 0: then stream attachment att as base64 */
} piece;

struct mh_msg {
  alist from, to, cc, bcc, reply_to;
  char *subject;            /* NULL: no Subject header */
  size_t subject_len;
  header *hdrs;             /* extra headers, in the order given */
  size_t nhdrs;
  char *text, *html;        /* bodies as given (NULL: none) */
  size_t text_len, html_len;
  attach *att;
  size_t natt;
  int64_t att_bytes;        /* the attachments' sizes so far: their sum stays within
                               MH_LIMIT_MESSAGE (each is within MH_LIMIT_ATTACHMENT;
                               --attach given 1,000 times made a 64 GB message) */
  int finished;             /* mh_msg_finish done: setters refuse, output allowed */
  char id[320];             /* Message-ID with brackets */
  piece *pieces;            /* the rendered message */
  size_t npieces;
  char *env_from;           /* the envelope sender (From without a root dot), set by finish */
  char **rcpt;              /* envelope recipients, deduplicated */
  size_t nrcpt;
  size_t rcpt_probes;       /* slots looked at deduplicating them (mh__msg_rcpt_probes) */
  char err[512];            /* detail of the last failure */
};

static int fail(mh_msg *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The message names what was wrong, quoting the caller's value (a header name,
** an address, a path): a control byte in it is shown as \xNN, so the error
** printed or logged can neither start a forged line (CR, LF) nor drive the
** terminal (ESC). */
static int fail(mh_msg *m, int code, const char *fmt, ...) {
  char raw[sizeof m->err];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  size_t o = 0;
  for (const unsigned char *c = (const unsigned char *)raw; *c && o + 5 < sizeof m->err; c++) {
    if (*c < 0x20 || *c == 0x7f) o += (size_t)snprintf(m->err + o, sizeof m->err - o, "\\x%02x", *c);
    else m->err[o++] = (char)*c;
  }
  m->err[o] = '\0';
  return code;
}

const char *mh_msg_error(const mh_msg *m) { return m->err; }

int mh_msg_set_error(mh_msg *m, int code, const char *fmt, ...) {
  char raw[sizeof m->err];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  return fail(m, code, "%s", raw);   /* control bytes escaped as fail does */
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) { memcpy(d, s, n); d[n] = '\0'; }
  return d;
}

/* The length of the UTF-8 sequence at c (at most left bytes), 0 when it is
** none: a stray continuation byte, a cut sequence, an overlong form, a
** surrogate, or past U+10FFFF. */
static size_t utf8_seq(const unsigned char *c, size_t left) {
  if (c[0] < 0x80) return 1;
  size_t k = (c[0] & 0xe0) == 0xc0 ? 2 : (c[0] & 0xf0) == 0xe0 ? 3 : (c[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (k == 0 || k > left) return 0;
  for (size_t j = 1; j < k; j++)
    if ((c[j] & 0xc0) != 0x80) return 0;
  if (k == 2) return c[0] >= 0xc2 ? 2 : 0;
  if (k == 3) {
    if (c[0] == 0xe0 && c[1] < 0xa0) return 0;           /* overlong */
    if (c[0] == 0xed && c[1] >= 0xa0) return 0;          /* U+D800-DFFF */
    return 3;
  }
  if (c[0] == 0xf0 && c[1] < 0x90) return 0;             /* overlong */
  if (c[0] > 0xf4 || (c[0] == 0xf4 && c[1] >= 0x90)) return 0;
  return 4;
}

/* Windows-1252's 0x80-0x9F (0: a byte it leaves undefined, shown as U+FFFD). */
static const unsigned short cp1252[32] = {
  0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
  0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
};

/* A copy of s (n bytes) as UTF-8, NUL-terminated, its length in *outn.  Every
** part the builder labels UTF-8 (the Subject, a header value, a display name,
** the text and HTML bodies) goes through here: a byte that is no UTF-8 is
** read as Windows-1252 (Latin-1 with its printable 0x80-0x9F), what a PBX or a
** Windows program passes for "Jérôme" (was sent as is under charset=utf-8:
** readers showed J?r?me, and an encoded word held invalid UTF-8).  Valid
** UTF-8 is copied untouched, so mixed input keeps its UTF-8 characters. */
static char *utf8_dup(const char *s, size_t n, size_t *outn) {
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq((const unsigned char *)s + i, n - i);
    if (k == 0) break;
    i += k;
  }
  if (i == n) {                         /* already UTF-8: the common case */
    if (outn) *outn = n;
    return dupn(s, n);
  }
  if (n > (SIZE_MAX - 1) / 3) return NULL;
  char *d = malloc(n * 3 + 1);          /* each byte at most 3 (U+20AC, U+FFFD) */
  if (!d) return NULL;
  memcpy(d, s, i);
  size_t o = i;
  while (i < n) {
    const unsigned char *c = (const unsigned char *)s + i;
    size_t k = utf8_seq(c, n - i);
    if (k) { memcpy(d + o, c, k); o += k; i += k; continue; }
    unsigned cp = c[0] >= 0xa0 ? c[0] : c[0] >= 0x80 ? cp1252[c[0] - 0x80] : c[0];
    if (cp == 0) cp = 0xfffd;
    if (cp < 0x800) { d[o++] = (char)(0xc0 | cp >> 6); d[o++] = (char)(0x80 | (cp & 0x3f)); }
    else {
      d[o++] = (char)(0xe0 | cp >> 12);
      d[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
      d[o++] = (char)(0x80 | (cp & 0x3f));
    }
    i++;
  }
  d[o] = '\0';
  if (outn) *outn = o;
  return d;
}

char *mh_msg_utf8(const char *s, size_t n, size_t *outn) { return utf8_dup(s, n, outn); }

static int has_crlfnul(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* ------------------------------------------------------------ addresses */

/* RFC 5322 atext: the characters of a dot-atom besides the dots. */
static int is_atext(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int mh_msg_addr_literal(const char *d, size_t n, const char **why) {
  char buf[64];
  unsigned char bin[16];
  const char *dummy;
  if (!why) why = &dummy;
  if (n < 3 || d[0] != '[' || d[n - 1] != ']') {
    /* x@[192.0.2.1]. is closed: the root's dot is for names (mh_msg_addr_unroot),
       and "unterminated" sent the writer looking for a missing ']' */
    *why = n >= 3 && d[0] == '[' && memchr(d, ']', n) ? "text after the address literal's ']' (no root's dot "
                                                          "after a literal)"
                                                        : "unterminated address literal";
    return MH_EBADADDR;
  }
  if (n - 2 >= sizeof buf) { *why = "address literal too long"; return MH_EBADADDR; }
  memcpy(buf, d + 1, n - 2);
  buf[n - 2] = '\0';
  if (!strncasecmp(buf, "IPv6:", 5)) {
    if (inet_pton(AF_INET6, buf + 5, bin) == 1) return 0;
    *why = "address literal [IPv6:...] holds no IPv6 address";
    return MH_EBADADDR;
  }
  if (inet_pton(AF_INET, buf, bin) == 1) return 0;
  *why = strchr(buf, ':') ? "address literal with a tag other than IPv6: (a General-address-literal "
                            "names no address a connection can use)"
                          : "address literal is neither an IPv4 address (as [192.0.2.1]) nor [IPv6:...]";
  return MH_EBADADDR;
}

/* A domain: dot-separated labels of letters, digits and inner hyphens (each
** 1..63, all ≤ 253), or an address literal (mh_msg_addr_literal). */
static int check_domain(const char *d, size_t n, const char **why) {
  if (n == 0) { *why = "empty domain"; return MH_EBADADDR; }
  if (d[0] == '[') return mh_msg_addr_literal(d, n, why);
  if (n > 253) { *why = "domain too long"; return MH_EBADADDR; }
  size_t label = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || d[i] == '.') {
      if (label == 0) { *why = "empty label in domain"; return MH_EBADADDR; }
      if (label > 63) { *why = "domain label too long"; return MH_EBADADDR; }
      if (d[i - 1] == '-' || d[i - label] == '-') {
        *why = "domain label starts or ends with '-'";
        return MH_EBADADDR;
      }
      label = 0;
      continue;
    }
    if (!is_alnum((unsigned char)d[i]) && d[i] != '-') {
      *why = (unsigned char)d[i] >= 0x80 ? "non-ASCII domain (use its xn-- form)"
                                          : "bad character in domain";
      return MH_EBADADDR;
    }
    label++;
  }
  return 0;
}

size_t mh_msg_addr_unroot(const char *a, size_t n) {
  /* the dot ends a domain: after the last '@' (a quoted local part ends before
  ** it), right after a label's letter, digit or hyphen (not '.', '@' or ']') */
  if (n < 3 || a[n - 1] != '.') return n;
  const char *at = memrchr(a, '@', n - 1);
  if (!at || (size_t)(at - a) >= n - 2) return n;
  unsigned char c = (unsigned char)a[n - 2];
  return is_alnum(c) || c == '-' ? n - 1 : n;
}

int mh_msg_check_addr(const char *a, size_t n, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *why = NULL;
  for (size_t i = 0; i < n; i++)
    if (a[i] == '\r' || a[i] == '\n' || a[i] == '\0') {
      *why = "CR, LF or NUL in address";
      return MH_EBADHDR;
    }
  n = mh_msg_addr_unroot(a, n);   /* ops@example.com. is ops@example.com */
  if (n == 0) { *why = "empty address"; return MH_EBADADDR; }
  if (n > 254) { *why = "address longer than 254 characters"; return MH_EBADADDR; }
  /* the local part ends at the last '@' outside a quoted string */
  size_t at, i = 0;
  if (a[0] == '"') {
    for (i = 1; i < n && a[i] != '"'; i++) {
      unsigned char c = (unsigned char)a[i];
      if (c == '\\') {
        if (++i >= n) break;
        c = (unsigned char)a[i];
      }
      if (c < 0x20 || c >= 0x7f) {
        if (c == '\t' || c == ' ') continue;
        *why = "bad character in quoted local part";
        return MH_EBADADDR;
      }
    }
    if (i >= n) { *why = "unterminated quoted local part"; return MH_EBADADDR; }
    i++;
    if (i >= n || a[i] != '@') { *why = "no @ after quoted local part"; return MH_EBADADDR; }
    at = i;
  } else {
    const char *p = memchr(a, '@', n);
    if (!p) { *why = "no @"; return MH_EBADADDR; }
    at = (size_t)(p - a);
    if (at == 0) { *why = "empty local part"; return MH_EBADADDR; }
    for (i = 0; i < at; i++) {
      if (a[i] == '.') {
        if (i == 0 || i == at - 1 || a[i - 1] == '.') {
          *why = "misplaced dot in local part";
          return MH_EBADADDR;
        }
      } else if (!is_atext((unsigned char)a[i])) {
        *why = (unsigned char)a[i] >= 0x80 ? "non-ASCII local part"
                                            : "bad character in local part";
        return MH_EBADADDR;
      }
    }
  }
  if (at > 64) { *why = "local part longer than 64 characters"; return MH_EBADADDR; }
  return check_domain(a + at + 1, n - at - 1, why);
}

int mh_msg_valid_addr(const char *addr) {
  return mh_msg_check_addr(addr, strlen(addr), NULL) == 0;
}

/* ------------------------------------------------------------ building */

mh_msg *mh_msg_new(void) { return calloc(1, sizeof(mh_msg)); }

static void alist_free(alist *l) {
  for (size_t i = 0; i < l->n; i++) { free(l->v[i].name); free(l->v[i].addr); }
  free(l->v);
}

void mh_msg_free(mh_msg *m) {
  if (!m) return;
  alist_free(&m->from); alist_free(&m->to); alist_free(&m->cc);
  alist_free(&m->bcc); alist_free(&m->reply_to);
  free(m->subject);
  for (size_t i = 0; i < m->nhdrs; i++) { free(m->hdrs[i].name); free(m->hdrs[i].value); }
  free(m->hdrs);
  free(m->text); free(m->html);
  for (size_t i = 0; i < m->natt; i++) { free(m->att[i].path); free(m->att[i].type); free(m->att[i].name); }
  free(m->att);
  for (size_t i = 0; i < m->npieces; i++) free(m->pieces[i].mem.data);
  free(m->pieces);
  for (size_t i = 0; i < m->nrcpt; i++) free(m->rcpt[i]);
  free(m->rcpt);
  free(m->env_from);
  free(m);
}

static const char *field_name(mh_msg_field f) {
  switch (f) {
  case MH_MSG_FROM: return "from";
  case MH_MSG_TO: return "to";
  case MH_MSG_CC: return "cc";
  case MH_MSG_BCC: return "bcc";
  default: return "reply_to";
  }
}

static alist *field_list(mh_msg *m, mh_msg_field f) {
  switch (f) {
  case MH_MSG_FROM: return &m->from;
  case MH_MSG_TO: return &m->to;
  case MH_MSG_CC: return &m->cc;
  case MH_MSG_BCC: return &m->bcc;
  default: return &m->reply_to;
  }
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

/* Drops from s (n bytes, UTF-8; NUL-terminated after) the invisible bidi
** controls, and returns the new length.  A display name or a Subject holding
** them is a spoof: "invoice\u202Efdp.exe" shows as "invoiceexe.pdf", an
** isolate or an embedding reorders what follows it, and a mark moves the
** neutrals around it.  Gone: the embeddings and overrides U+202A-E, the
** isolates U+2066-9, the marks U+200E/F and U+061C.  Dropped rather than made
** '_' (as in a file name): the text reads as it was typed, and Arabic or
** Hebrew letters keep their direction by themselves (the Unicode bidi
** algorithm needs no control for them), so legitimate right-to-left text stays
** readable.  The Unicode line breaks are made a space: the line and paragraph
** separators U+2028/9 and the C1 controls U+0080-9F (NEL, U+0085, among
** them), which a reader that decodes the RFC 2047 words may show as a new
** line ("Call from x<U+2028>From: ceo@bank") -- the header-template rule
** (template.lua: every control character becomes a space).  So do the C0
** controls left (CR, LF and NUL are refused before) and DEL: TAB, which a
** reader shows as a gap, a box or nothing, and ESC, which went inside the
** RFC 2047 words to a reader's terminal ("\x1b[2J"). */
static size_t drop_bidi(char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; ) {
    const unsigned char *c = (const unsigned char *)s + i;
    if (c[0] < 0x20 || c[0] == 0x7f) { s[o++] = ' '; i++; continue; }
    if (i + 3 <= n && c[0] == 0xe2 && ((c[1] == 0x80 && ((c[2] >= 0xaa && c[2] <= 0xae) || c[2] == 0x8e || c[2] == 0x8f)) ||
                                       (c[1] == 0x81 && c[2] >= 0xa6 && c[2] <= 0xa9))) { i += 3; continue; }
    if (i + 2 <= n && c[0] == 0xd8 && c[1] == 0x9c) { i += 2; continue; }
    if ((i + 3 <= n && c[0] == 0xe2 && c[1] == 0x80 && (c[2] == 0xa8 || c[2] == 0xa9)) ||
        (i + 2 <= n && c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)) {
      i += c[0] == 0xe2 ? 3 : 2;   /* before the write: s[o] may be c[0] */
      s[o++] = ' ';
      continue;
    }
    s[o++] = s[i++];
  }
  s[o] = '\0';
  return o;
}

/* Adds one "addr" / "Name <addr>" item (already split, trimmed).  name_in
** overrides the name when given. */
static int add_one(mh_msg *m, mh_msg_field f, const char *s, size_t n, const char *name_in) {
  const char *fname = field_name(f), *why;
  const char *a = s;
  size_t alen = n;
  char *name = NULL;
  if (!name_in && n > 0 && s[n - 1] == '>') {
    /* the last '<' outside a quoted name starts the address */
    size_t lt = n, i;
    int q = 0;
    for (i = 0; i + 1 < n; i++) {
      if (s[i] == '\\' && q) { i++; continue; }
      if (s[i] == '"') q = !q;
      else if (s[i] == '<' && !q) lt = i;
    }
    if (lt == n) return fail(m, MH_EBADADDR, "%s: '%.*s' is not a valid address: no '<' before '>'",
                             fname, (int)n, s);
    a = s + lt + 1;
    alen = n - lt - 2;
    size_t nl = lt;
    while (nl > 0 && is_wsp(s[nl - 1])) nl--;
    if (nl >= 2 && s[0] == '"' && s[nl - 1] == '"') {
      /* a quoted display name: unquote it (\x -> x) */
      name = malloc(nl);
      if (!name) return fail(m, MH_ENOMEM, "out of memory");
      size_t k = 0;
      for (size_t j = 1; j + 1 < nl; j++) {
        if (s[j] == '\\' && j + 2 < nl) j++;
        name[k++] = s[j];
      }
      name[k] = '\0';
    } else if (nl > 0) {
      name = dupn(s, nl);
      if (!name) return fail(m, MH_ENOMEM, "out of memory");
    }
  } else if (name_in && *name_in) {
    if (has_crlfnul(name_in, strlen(name_in)))
      return fail(m, MH_EBADHDR, "%s: CR, LF or NUL in the display name", fname);
    name = strdup(name_in);
    if (!name) return fail(m, MH_ENOMEM, "out of memory");
  }
  if (name) {
    char *u = utf8_dup(name, strlen(name), NULL);
    free(name);
    if (!u) return fail(m, MH_ENOMEM, "out of memory");
    name = u;
    drop_bidi(name, strlen(name));
  }
  int rc = mh_msg_check_addr(a, alen, &why);
  if (rc < 0) {
    free(name);
    return fail(m, rc, "%s: '%.*s' is not a valid address: %s", fname, (int)(alen > 300 ? 300 : alen), a, why);
  }
  alist *l = field_list(m, f);
  if (f == MH_MSG_FROM && l->n > 0) {
    free(name);
    return fail(m, MH_EINVAL, "from: only one From address");
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    mbox *v = realloc(l->v, cap * sizeof *v);
    if (!v) { free(name); return fail(m, MH_ENOMEM, "out of memory"); }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n].name = name;
  l->v[l->n].addr = dupn(a, alen);
  if (!l->v[l->n].addr) { free(name); return fail(m, MH_ENOMEM, "out of memory"); }
  l->n++;
  return 0;
}

int mh_msg_add_addr(mh_msg *m, mh_msg_field f, const char *spec, size_t len, const char *name) {
  const char *fname = field_name(f);
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if (has_crlfnul(spec, len)) return fail(m, MH_EBADHDR, "%s: CR, LF or NUL in address", fname);
  if (name) {
    size_t b = 0, e = len;
    while (b < e && is_wsp(spec[b])) b++;
    while (e > b && is_wsp(spec[e - 1])) e--;
    return add_one(m, f, spec + b, e - b, name);
  }
  /* split at commas outside quotes and angle brackets; all or nothing */
  alist *l = field_list(m, f);
  size_t before = l->n, start = 0, added = 0;
  int q = 0, angle = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len) {
      char c = spec[i];
      if (q && c == '\\') { i++; continue; }
      if (c == '"') q = !q;
      else if (!q && c == '<') angle = 1;
      else if (!q && c == '>') angle = 0;
      if (c != ',' || q || angle) continue;
    }
    size_t b = start, e = i < len ? i : len;
    while (b < e && is_wsp(spec[b])) b++;
    while (e > b && is_wsp(spec[e - 1])) e--;
    if (e > b) {
      int rc = add_one(m, f, spec + b, e - b, NULL);
      if (rc < 0) {
        while (l->n > before) {
          l->n--;
          free(l->v[l->n].name);
          free(l->v[l->n].addr);
        }
        return rc;
      }
      added++;
    }
    start = i + 1;
  }
  if (added == 0) return fail(m, MH_EBADADDR, "%s: empty address", fname);
  return 0;
}

int mh_msg_set_subject(mh_msg *m, const char *s, size_t len) {
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if (has_crlfnul(s, len)) return fail(m, MH_EBADHDR, "subject: CR, LF or NUL in the subject");
  char *d = utf8_dup(s, len, &len);
  if (!d) return fail(m, MH_ENOMEM, "out of memory");
  free(m->subject);
  m->subject = d;
  m->subject_len = drop_bidi(d, len);
  return 0;
}

static const char *const builder_headers[] = {
  "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version", NULL,
};

int mh_msg_add_header(mh_msg *m, const char *name, const char *value, size_t len) {
  size_t nlen = strlen(name);
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if (has_crlfnul(name, nlen) || has_crlfnul(value, len))
    return fail(m, MH_EBADHDR, "header %.80s: CR, LF or NUL in the header name or value", name);
  if (nlen == 0 || nlen > 76) return fail(m, MH_EINVAL, "header name must be 1-76 characters");
  for (size_t i = 0; i < nlen; i++)
    if ((unsigned char)name[i] <= 32 || (unsigned char)name[i] >= 127 || name[i] == ':')
      return fail(m, MH_EINVAL, "header name '%.80s': only printable ASCII without ':' or spaces", name);
  for (int i = 0; builder_headers[i]; i++)
    if (!strcasecmp(name, builder_headers[i]))
      return fail(m, MH_EINVAL, "header %s is written by the builder (use its own field)", name);
  if (!strncasecmp(name, "content-", 8))
    return fail(m, MH_EINVAL, "header %s is written by the builder", name);
  header *v = realloc(m->hdrs, (m->nhdrs + 1) * sizeof *v);
  if (!v) return fail(m, MH_ENOMEM, "out of memory");
  m->hdrs = v;
  v[m->nhdrs].name = strdup(name);
  v[m->nhdrs].value = utf8_dup(value, len, &len);
  v[m->nhdrs].len = len;
  if (!v[m->nhdrs].name || !v[m->nhdrs].value) {
    free(v[m->nhdrs].name); free(v[m->nhdrs].value);
    return fail(m, MH_ENOMEM, "out of memory");
  }
  m->nhdrs++;
  return 0;
}

/* A body (what: "text" or "html") of at most MH_LIMIT_BODY bytes. */
static int set_body(mh_msg *m, char **dst, size_t *dlen, const char *s, size_t len, const char *what) {
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if ((int64_t)len > MH_LIMIT_BODY) {
    char lim[32];
    return fail(m, MH_ELIMIT, "%s body: %zu bytes, over the %s limit", what, len,
                mh_fsutil_size(lim, sizeof lim, MH_LIMIT_BODY));
  }
  char *d = utf8_dup(s, len, &len);
  if (!d) return fail(m, MH_ENOMEM, "out of memory");
  free(*dst);
  *dst = d;
  *dlen = len;
  return 0;
}

int mh_msg_set_text(mh_msg *m, const char *s, size_t len) {
  return set_body(m, &m->text, &m->text_len, s, len, "text");
}

int mh_msg_set_html(mh_msg *m, const char *s, size_t len) {
  return set_body(m, &m->html, &m->html_len, s, len, "html");
}

static const struct { const char *ext, *type; } types[] = {
  { "wav", "audio/wav" },        { "mp3", "audio/mpeg" },        { "pdf", "application/pdf" },
  { "tif", "image/tiff" },       { "tiff", "image/tiff" },       { "png", "image/png" },
  { "jpg", "image/jpeg" },       { "jpeg", "image/jpeg" },       { "gif", "image/gif" },
  { "txt", "text/plain" },       { "csv", "text/csv" },          { "htm", "text/html" },
  { "html", "text/html" },       { "json", "application/json" }, { "xml", "application/xml" },
  { "zip", "application/zip" },  { NULL, NULL },
};

const char *mh_msg_type_for(const char *filename) {
  const char *dot = strrchr(filename, '.'), *slash = strrchr(filename, '/');
  if (dot && (!slash || dot > slash))
    for (int i = 0; types[i].ext; i++)
      if (!strcasecmp(dot + 1, types[i].ext)) return types[i].type;
  return "application/octet-stream";
}

static int is_tspecial(unsigned char c) { return c && strchr("()<>@,;:\\\"/[]?=", c) != NULL; }
static int is_token(unsigned char c) { return c > 32 && c < 127 && !is_tspecial(c); }

/* 1: "type/subtype" of token characters, then any "; attribute=value" (RFC 2045
** 5.1: a token, '=', a token or a quoted string), blanks around them.  Each
** parameter whole: an unbalanced quote (`audio/wav; x="\`) swallowed the
** name="..." the builder writes after it, and readers lost the file name.
** 0 when it is not such a type; -1 when a parameter names the file (name,
** filename: the builder writes them).  (A boundary makes sense only for a
** multipart type, which is refused below with its own reason.) */
static int valid_type(const char *t) {
  size_t i = 0, n = strlen(t);
  if (n == 0 || n > 200) return 0;
  while (i < n && is_token((unsigned char)t[i])) i++;
  if (i == 0 || i >= n || t[i] != '/') return 0;
  size_t s = ++i;
  while (i < n && is_token((unsigned char)t[i])) i++;
  if (i == s) return 0;
  for (;;) {
    while (i < n && is_wsp(t[i])) i++;
    if (i == n) return 1;
    if (t[i++] != ';') return 0;
    while (i < n && is_wsp(t[i])) i++;
    if (i == n) return 1;                        /* a trailing ';' */
    s = i;
    while (i < n && is_token((unsigned char)t[i])) i++;
    if (i == s || i == n || t[i] != '=') return 0;
    /* the builder's own parameters: a name= of the caller's read as the file's
    ** name by readers (evil.exe, ../../.bashrc), past the rule of shown_name,
    ** and written twice beside the builder's; a charset= beside a body part's */
    if ((i - s == 4 && !strncasecmp(t + s, "name", 4)) || (i - s == 8 && !strncasecmp(t + s, "filename", 8)) ||
        (i - s > 4 && !strncasecmp(t + s, "name*", 5)) || (i - s > 8 && !strncasecmp(t + s, "filename*", 9)))
      return -1;
    i++;
    if (i < n && t[i] == '"') {
      for (i++; i < n && t[i] != '"'; i++) {
        if ((unsigned char)t[i] < 32 || (unsigned char)t[i] >= 127) return 0;
        if (t[i] == '\\' && ++i == n) return 0;
      }
      if (i == n) return 0;                      /* no closing quote */
      i++;
    } else {
      s = i;
      while (i < n && is_token((unsigned char)t[i])) i++;
      if (i == s) return 0;
    }
  }
}

/* The file name an attachment is shown with (RFC 2183 2.3: a sender should
** not put a path in it; a reader that saves "../../.bashrc" or "/etc/passwd"
** as given writes where it must not).  Writes to out (MAX_FILE_NAME + 1
** bytes): the last component of in, after the last '/' or '\' and a drive
** ("C:"), with every byte that could trick the reader made '_': control bytes
** (TAB, ESC, DEL, and the C1 controls U+0080-9F), the line and paragraph
** separators U+2028/9, bytes that are not UTF-8, and the invisible direction marks
** and overrides (U+200E/F, U+202A-E, U+2066-9, U+061C: "invoice\u202Efdp.exe"
** shows as invoiceexe.pdf), and the look-alike slashes a Windows code page
** maps to / or \ (U+FF0F, U+FF3C, U+2215, U+2216, U+2044, U+FE68).  A
** longer name is cut to MAX_FILE_NAME bytes on a character boundary, keeping
** its extension (a name is not worth refusing the message over).  Spaces
** around it and dots at its end are dropped.  Returns 0 (out "") when nothing
** is left ("..", "dir/", " "), else 1. */
static int shown_name(char *out, const char *in) {
  const char *s = in;
  for (const char *p = in; *p; p++)
    if (*p == '/' || *p == '\\') s = p + 1;
  if (((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')) && s[1] == ':') s += 2;
  size_t o = 0, n = strlen(s);
  char *tmp = malloc(n + 1);     /* never longer than s: each byte kept or one '_' */
  if (!tmp) { snprintf(out, MAX_FILE_NAME + 1, "attachment"); return 1; }
  for (size_t i = 0; i < n; ) {
    const unsigned char *c = (const unsigned char *)s + i;
    size_t k = c[0] < 0x80 ? 1 : (c[0] & 0xe0) == 0xc0 ? 2 : (c[0] & 0xf0) == 0xe0 ? 3 : (c[0] & 0xf8) == 0xf0 ? 4 : 0;
    int bad = k == 0 || i + k > n;
    for (size_t j = 1; !bad && j < k; j++) bad = (c[j] & 0xc0) != 0x80;
    if (!bad && k == 2) bad = c[0] < 0xc2;
    int mark = 0;          /* a whole character made '_' (a direction mark) */
    /* ALM; and the C1 controls U+0080-9F (NEL among them), control bytes too */
    if (!bad && k == 2) mark = (c[0] == 0xd8 && c[1] == 0x9c) || (c[0] == 0xc2 && c[1] <= 0x9f);
    if (!bad && k == 3) {
      unsigned cp = (unsigned)(c[0] & 0x0f) << 12 | (unsigned)(c[1] & 0x3f) << 6 | (c[2] & 0x3f);
      bad = cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff);
      mark = cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
             cp == 0x2028 || cp == 0x2029 ||   /* line and paragraph separators: a name on two lines */
             /* slashes a Windows "best fit" code page turns into / or \ when the
                reader saves the file: "..／..／x" would become a path again */
             cp == 0xff0f || cp == 0xff3c || cp == 0x2215 || cp == 0x2216 || cp == 0x2044 || cp == 0xfe68;
    }
    if (!bad && k == 4) {
      unsigned cp = (unsigned)(c[0] & 0x07) << 18 | (unsigned)(c[1] & 0x3f) << 12 |
                    (unsigned)(c[2] & 0x3f) << 6 | (c[3] & 0x3f);
      bad = cp < 0x10000 || cp > 0x10ffff;
    }
    if (!bad && k == 1 && (c[0] < 0x20 || c[0] == 0x7f)) bad = 1;
    if (bad || mark) { tmp[o++] = '_'; i += bad ? 1 : k; continue; }
    memcpy(tmp + o, c, k);
    o += k;
    i += k;
  }
  /* spaces around it and dots at its end go (Windows drops them when it saves:
     "x.pdf ." would be shown as one name and saved as another) */
  while (o > 0 && (tmp[o - 1] == ' ' || tmp[o - 1] == '.')) o--;
  tmp[o] = '\0';
  char *t = tmp + strspn(tmp, " ");
  o -= (size_t)(t - tmp);
  if (o == 0) { out[0] = '\0'; free(tmp); return 0; }   /* nothing, or only dots and spaces */
  if (o <= MAX_FILE_NAME) { memcpy(out, t, o + 1); free(tmp); return 1; }
  /* too long: the head cut on a character boundary, then the extension */
  const char *ext = strrchr(t, '.');
  size_t el = ext && ext != t && strlen(ext) <= 16 ? strlen(ext) : 0;
  size_t head = MAX_FILE_NAME - el;
  head = mh_text_cut(t, head);
  memcpy(out, t, head);
  memcpy(out + head, t + o - el, el + 1);
  free(tmp);
  return 1;
}

int mh_msg_add_attachment(mh_msg *m, const char *path, const char *type, const char *name) {
  struct stat st;
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if (has_crlfnul(path, strlen(path)))
    return fail(m, MH_EBADHDR, "attachment: CR or LF in the path");
  /* the one rule for a file we did not create: a regular file (a FIFO would
     block, /dev/zero never end), at most MH_LIMIT_ATTACHMENT; a link is
     followed (the caller named the path) */
  int fd = mh_fsutil_open_input(AT_FDCWD, path, MH_FS_FOLLOW, MH_LIMIT_ATTACHMENT, &st);
  if (fd < 0) {
    char why[sizeof m->err];
    mh_fsutil_why(why, sizeof why, "attachment", path, fd, &st, MH_LIMIT_ATTACHMENT);
    return fail(m, fd, "%s", why);
  }
  close(fd);
  if (m->att_bytes + (int64_t)st.st_size > MH_LIMIT_MESSAGE) {
    char lim[32];
    return fail(m, MH_ELIMIT, "attachment %s: the attachments add up to %lld bytes, over the %s limit "
                "of a message", path, (long long)(m->att_bytes + (int64_t)st.st_size),
                mh_fsutil_size(lim, sizeof lim, MH_LIMIT_MESSAGE));
  }
  if (name && has_crlfnul(name, strlen(name)))
    return fail(m, MH_EBADHDR, "attachment %s: CR, LF or NUL in the file name", path);
  /* the name as the builder's other text is read (a PBX's Latin-1 "Jos\xe9.wav"
     is shown as "José.wav", not "Jos_.wav"): shown_name's '_' for a byte that
     is no UTF-8 no longer meets one */
  char shown[MAX_FILE_NAME + 1];
  char *uname = name && *name ? utf8_dup(name, strlen(name), NULL) : NULL;
  char *upath = utf8_dup(path, strlen(path), NULL);
  if ((name && *name && !uname) || !upath) {
    free(uname); free(upath);
    return fail(m, MH_ENOMEM, "out of memory");
  }
  if (!shown_name(shown, uname ? uname : upath))
    shown_name(shown, upath);    /* "../..", "dir/", "...": the file's own name */
  free(uname);
  free(upath);
  if (!*shown) snprintf(shown, sizeof shown, "attachment");
  name = shown;
  if (!type || !*type) type = mh_msg_type_for(name);
  if (has_crlfnul(type, strlen(type)))
    return fail(m, MH_EBADHDR, "attachment %s: CR, LF or NUL in the content type", path);
  int vt = valid_type(type);
  if (vt < 0)
    return fail(m, MH_EINVAL, "attachment %s: content type '%.200s' names the file (name=, filename=): the "
                "name goes in the attachment's name", path, type);
  if (!vt)
    return fail(m, MH_EINVAL, "attachment %s: content type '%.200s' is not type/subtype[; attribute=value]...",
                path, type);
  /* the part goes as base64, which RFC 2045 6.4 forbids for a composite type: a
     multipart/x with its own boundary= (or a message/rfc822) would have a reader
     look for parts or headers in what the file holds, a structure the message's
     builder never made (an event field passed on as a type must not do that) */
  if (!strncasecmp(type, "multipart/", 10) || !strncasecmp(type, "message/", 8))
    return fail(m, MH_EINVAL, "attachment %s: content type '%.200s' is composite (multipart/*, message/*): "
                "an attachment is sent as base64, so give application/octet-stream or its own type", path, type);
  attach *v = realloc(m->att, (m->natt + 1) * sizeof *v);
  if (!v) return fail(m, MH_ENOMEM, "out of memory");
  m->att = v;
  v[m->natt].path = strdup(path);
  v[m->natt].type = strdup(type);
  v[m->natt].name = strdup(name);
  if (!v[m->natt].path || !v[m->natt].type || !v[m->natt].name) {
    free(v[m->natt].path); free(v[m->natt].type); free(v[m->natt].name);
    return fail(m, MH_ENOMEM, "out of memory");
  }
  /* a trailing ';' ("text/plain;") dropped: the builder adds its own before name= */
  for (size_t k = strlen(v[m->natt].type); k > 0 && (v[m->natt].type[k - 1] == ';' || is_wsp(v[m->natt].type[k - 1]));)
    v[m->natt].type[--k] = '\0';
  m->natt++;
  m->att_bytes += (int64_t)st.st_size;
  return 0;
}

/* ------------------------------------------------------------ encoding */

/* The folding header writer: tokens that start with a space or tab may be
** moved to a new line (the fold replaces nothing: CRLF goes before the WSP). */
typedef struct {
  mh_buf *b;
  size_t col;               /* columns used on the current line */
  size_t min;               /* never fold while col <= min (just the name) */
} fold;

static void fold_begin(fold *f, mh_buf *b, const char *name) {
  f->b = b;
  mh_buf_adds(b, name);
  mh_buf_add(b, ":", 1);
  f->col = f->min = strlen(name) + 1;
}

/* fold_tok_r: as fold_tok, keeping room for `reserve` more columns that must
** follow t on its line (an address list's comma, which cannot start one). */
static void fold_tok_r(fold *f, const char *t, size_t n, size_t reserve) {
  if (n > 0 && is_wsp(t[0]) && f->col > f->min && f->col + n + reserve > FOLD_AT) {
    mh_buf_add(f->b, "\r\n", 2);
    f->col = 0;
  }
  mh_buf_add(f->b, t, n);
  f->col += n;
}

static void fold_tok(fold *f, const char *t, size_t n) {
  if (n > 0 && is_wsp(t[0]) && f->col > f->min && f->col + n > FOLD_AT) {
    mh_buf_add(f->b, "\r\n", 2);
    f->col = 0;
  }
  mh_buf_add(f->b, t, n);
  f->col += n;
}

static void fold_end(fold *f) { mh_buf_add(f->b, "\r\n", 2); }

/* Encoded words (RFC 2047, UTF-8, B) for s, each as a token " =?UTF-8?B?...?=";
** chunks end on UTF-8 character boundaries where the input allows. */
static void fold_encoded(fold *f, const char *s, size_t n) {
  char tok[96];
  size_t i = 0;
  if (n == 0) {
    fold_tok(f, " =?UTF-8?B?" "?=", 13);  /* split: no trigraph */
    return;
  }
  while (i < n) {
    size_t take = n - i < EW_BYTES ? n - i : EW_BYTES;
    if (i + take < n) {
      size_t back = 0;
      while (back < 3 && take - back > 1 && ((unsigned char)s[i + take - back] & 0xC0) == 0x80) back++;
      if (((unsigned char)s[i + take - back] & 0xC0) != 0x80) take -= back;
    }
    memcpy(tok, " =?UTF-8?B?", 11);
    size_t k = 11 + mh_b64_encode(tok + 11, s + i, take);
    tok[k++] = '?';
    tok[k++] = '=';
    fold_tok(f, tok, k);
    i += take;
  }
}

/* Whether s can go as plain text: printable ASCII (and tabs), no "=?" that a
** reader would decode, no token too long for one line.  A token is what the
** folding writer keeps on one line: a run of whitespace with the word after
** it, and at the end the trailing whitespace with the word before it (never
** alone on a line).  Counting words alone let a 2000-space run, or blanks
** after a 900-character word, make a header line of 2000 octets. */
static int plain_ok(const char *s, size_t n) {
  size_t tok = 0, last = n;
  while (last > 0 && is_wsp(s[last - 1])) last--;     /* s[last..n) is the trailing whitespace */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 32 && c != '\t') || c >= 127) return 0;
    if (c == '=' && i + 1 < n && s[i + 1] == '?') return 0;
    if (is_wsp((char)c) && i > 0 && !is_wsp(s[i - 1]) && i < last) tok = 0;   /* a new token */
    if (++tok > MAX_PLAIN_WORD) return 0;
  }
  return 1;
}

/* An unstructured value (Subject, extra headers): " " then the text, foldable
** before any whitespace that is followed by more text. */
static void fold_unstructured(fold *f, const char *s, size_t n) {
  if (!plain_ok(s, n)) {
    fold_encoded(f, s, n);
    return;
  }
  size_t i = 0, start = 0;
  /* the first segment goes right after "Name: " */
  while (i < n && !is_wsp(s[i])) i++;
  mh_buf_add(f->b, " ", 1);
  f->col++;
  mh_buf_add(f->b, s, i);
  f->col += i;
  while (i < n) {
    start = i;
    while (i < n && is_wsp(s[i])) i++;
    while (i < n && !is_wsp(s[i])) i++;
    if (i > start && !is_wsp(s[i - 1])) {
      fold_tok(f, s + start, i - start);
    } else {                /* trailing whitespace: never alone on a line */
      mh_buf_add(f->b, s + start, i - start);
      f->col += i - start;
    }
  }
}

/* A display name: atoms, a quoted string, or encoded words. */
static void fold_phrase(fold *f, const char *s, size_t n) {
  int atoms = 1;
  if (!plain_ok(s, n)) {
    fold_encoded(f, s, n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\t' || (c == ' ' && (i == 0 || i + 1 == n || s[i + 1] == ' '))) atoms = 0;
    else if (c != ' ' && !is_atext(c)) atoms = 0;
  }
  if (atoms) {
    size_t i = 0;
    while (i < n) {
      size_t st = i;
      i++;                  /* includes the leading space of every atom but the first */
      while (i < n && s[i] != ' ') i++;
      if (st == 0) {
        char tmp[MAX_PLAIN_WORD + 2];
        tmp[0] = ' ';
        memcpy(tmp + 1, s, i);
        fold_tok(f, tmp, i + 1);
      } else {
        fold_tok(f, s + st, i - st);
      }
    }
    return;
  }
  /* quoted string: escaped length must still fit on a line */
  size_t esc = 0;
  for (size_t i = 0; i < n; i++) esc += (s[i] == '"' || s[i] == '\\') ? 2 : 1;
  if (esc > MAX_PLAIN_WORD) {
    fold_encoded(f, s, n);
    return;
  }
  char tmp[2 * MAX_PLAIN_WORD + 4];
  size_t k = 0;
  tmp[k++] = ' ';
  tmp[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') tmp[k++] = '\\';
    tmp[k++] = s[i];
  }
  tmp[k++] = '"';
  fold_tok(f, tmp, k);
}

static void header_addrs(mh_buf *b, const char *name, const alist *l) {
  fold f;
  char tmp[300];
  fold_begin(&f, b, name);
  for (size_t i = 0; i < l->n; i++) {
    const mbox *a = &l->v[i];
    if (a->name && *a->name) {
      fold_phrase(&f, a->name, strlen(a->name));
      snprintf(tmp, sizeof tmp, " <%s>", a->addr);
    } else {
      snprintf(tmp, sizeof tmp, " %s", a->addr);
    }
    fold_tok_r(&f, tmp, strlen(tmp), i + 1 < l->n);   /* the comma stays on its line */
    if (i + 1 < l->n) fold_tok(&f, ",", 1);
  }
  fold_end(&f);
}

/* Whether s starts with "From ": a line that does is written ">From " by an
** mbox (Postfix's local(8), procmail, mutt's folders), and the reader shows
** that '>'.  RFC 2049 §4 (8): such a line goes quoted-printable, its F as =46. */
static int from_line(const char *s, size_t n) { return n >= 5 && memcmp(s, "From ", 5) == 0; }

/* Normalises line endings to CRLF by intake's rule (eol.h mh_eol_intake_len:
** CR* LF is one, a lone CR or LF one each) and makes sure a
** non-empty body ends with CRLF; picks 7bit (ASCII, no NUL, lines <= 998, no
** line starting "From ") or quoted-printable, where no encoded line starts
** "From " either.  Appends the encoded body to out; returns the CTE name. */
static const char *encode_body(mh_buf *out, const char *s, size_t n) {
  int sevenbit = 1;
  size_t line = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n') {
      i += mh_eol_intake_len(s + i, n - i) - 1;
      line = 0;
      continue;
    }
    if (line == 0 && from_line(s + i, n - i)) { sevenbit = 0; break; }
    if (c == 0 || c >= 128 || ++line > 998) { sevenbit = 0; break; }
  }
  if (sevenbit) {
    size_t st = 0;
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '\r' || s[i] == '\n') {
        mh_buf_add(out, s + st, i - st);
        mh_buf_add(out, "\r\n", 2);
        i += mh_eol_intake_len(s + i, n - i) - 1;
        st = i + 1;
      }
    }
    if (st < n) { mh_buf_add(out, s + st, n - st); mh_buf_add(out, "\r\n", 2); }
    return "7bit";
  }
  /* quoted-printable, lines of at most 76 characters */
  static const char hex[] = "0123456789ABCDEF";
  size_t col = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n') {
      i += mh_eol_intake_len(s + i, n - i) - 1;
      mh_buf_add(out, "\r\n", 2);
      col = 0;
      continue;
    }
    char e[3];
    size_t k;
    int eol = i + 1 == n || s[i + 1] == '\r' || s[i + 1] == '\n';
    if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol)) {
      e[0] = (char)c;
      k = 1;
    } else {
      e[0] = '='; e[1] = hex[c >> 4]; e[2] = hex[c & 15];
      k = 3;
    }
    /* room for a soft break "=" unless this is the last character of the line */
    if (col + k > (eol ? 76 : 75)) {
      mh_buf_add(out, "=\r\n", 3);
      col = 0;
    }
    if (col == 0 && k == 1 && from_line(s + i, n - i)) {   /* after a hard or a soft break */
      e[0] = '='; e[1] = '4'; e[2] = '6';
      k = 3;
    }
    mh_buf_add(out, e, k);
    col += k;
  }
  if (n > 0 && s[n - 1] != '\r' && s[n - 1] != '\n') mh_buf_add(out, "\r\n", 2);
  return "quoted-printable";
}

/* RFC 2231 attr-char. */
static int is_attr_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$&+-.^_`|~", c));
}

/* The escaped length (RFC 2231 section 4: attr-chars as they are, any other
** byte as %XX) of the character at s (n bytes left): its bytes and their
** count in *k.  A character is never cut across two continuations: a reader
** that decodes each piece alone (older Apple Mail, some webmails) would show
** two broken halves. */
static size_t escaped_char(const char *s, size_t n, size_t *k) {
  unsigned char c = (unsigned char)s[0];
  size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
  if (len > n) len = n;
  *k = len;
  return len == 1 && is_attr_char(c) ? 1 : 3 * len;
}

/* Writes the k bytes of one character at s, escaped to w bytes (escaped_char). */
static void put_escaped(mh_buf *b, const char *s, size_t w, size_t k) {
  static const char hex[] = "0123456789ABCDEF";
  if (w == 1) { mh_buf_add(b, s, 1); return; }
  for (size_t j = 0; j < k; j++) {
    unsigned char c = (unsigned char)s[j];
    char e[3] = { '%', hex[c >> 4], hex[c & 15] };
    mh_buf_add(b, e, 3);
  }
}

/* " filename*=UTF-8''r%C3%A9sum%C3%A9.pdf": the name in the RFC 2231 form.
** One parameter while its line fits in 78 characters; a longer name (past
** ~60 characters, fewer when not ASCII: up to 765 escaped bytes for 255
** bytes of name) goes in numbered continuations as mutt and Thunderbird
** send it, each line within 78:
**   filename*0*=UTF-8''...;
**   filename*1*=...
** (section 3 and 4: the pieces are joined, then the %XX decoded). */
static void filename_2231(mh_buf *b, const char *nm, size_t n) {
  size_t total = 0, k;
  for (size_t i = 0; i < n; i += k) total += escaped_char(nm + i, n - i, &k);
  if (1 + strlen("filename*=UTF-8''") + total <= 78) {
    mh_buf_adds(b, "filename*=UTF-8''");
    for (size_t i = 0; i < n; i += k) {
      size_t w = escaped_char(nm + i, n - i, &k);
      put_escaped(b, nm + i, w, k);
    }
    return;
  }
  size_t i = 0;
  for (int part = 0; i < n; part++) {
    char head[32];
    int hl = snprintf(head, sizeof head, "filename*%d*=%s", part, part == 0 ? "UTF-8''" : "");
    if (part > 0) mh_buf_adds(b, ";\r\n ");
    mh_buf_add(b, head, (size_t)hl);
    size_t col = 1 + (size_t)hl;
    /* at least one character per piece; ";" ends every line but the last */
    while (i < n) {
      size_t w = escaped_char(nm + i, n - i, &k);
      if (col > 1 + (size_t)hl && col + w + 1 > 78) break;
      put_escaped(b, nm + i, w, k);
      col += w;
      i += k;
    }
  }
}

/* Content-Type / Content-Disposition of an attachment part. */
static void attach_headers(mh_buf *b, const attach *a) {
  const char *nm = a->name;
  size_t n = strlen(nm);
  int simple = n <= 60;
  for (size_t i = 0; i < n && simple; i++) {
    unsigned char c = (unsigned char)nm[i];
    if (c < 32 || c >= 127 || c == '"' || c == '\\') simple = 0;
    /* "=?...?=" in a quoted name: many readers decode it as RFC 2047 (a name
       shown as evil.exe); RFC 2231 has them show the bytes as they are */
    if (c == '=' && i + 1 < n && nm[i + 1] == '?') simple = 0;
  }
  mh_buf_adds(b, "Content-Type: ");
  mh_buf_adds(b, a->type);
  if (simple) { mh_buf_adds(b, ";\r\n name=\""); mh_buf_adds(b, nm); mh_buf_adds(b, "\""); }
  mh_buf_adds(b, "\r\nContent-Disposition: attachment;\r\n ");
  if (simple) {
    mh_buf_adds(b, "filename=\""); mh_buf_adds(b, nm); mh_buf_adds(b, "\"");
  } else {
    filename_2231(b, nm, n);
  }
  mh_buf_adds(b, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
}

/* ------------------------------------------------------------ finishing */

static void random_hex(char *out, size_t nbytes) {
  unsigned char r[32];
  static unsigned counter;
  if (nbytes > sizeof r) nbytes = sizeof r;
  if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
    /* no entropy source: unique enough for ids and boundaries */
    unsigned long x = (unsigned long)time(NULL) ^ ((unsigned long)getpid() << 16) ^ ++counter;
    for (size_t i = 0; i < nbytes; i++) { x = x * 6364136223846793005UL + 1442695040888963407UL; r[i] = (unsigned char)(x >> 56); }
  }
  for (size_t i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", r[i]);
}

static piece *new_piece(mh_msg *m, long att) {
  piece *v = realloc(m->pieces, (m->npieces + 1) * sizeof *v);
  if (!v) return NULL;
  m->pieces = v;
  memset(&v[m->npieces], 0, sizeof *v);
  v[m->npieces].att = att;
  return &v[m->npieces++];
}

/* FNV-1a (64 bits) of n bytes: the recipients' hash set. */
static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h;
}

/* The envelope recipients: the addresses of To, Cc then Bcc in their envelope
** form (mh_msg_addr_unroot: the header keeps them as written), each once.  A
** repeat is found in a hash set (open addressing, at most half full), so the
** cost is linear: a search of the list so far made it quadratic, and 80,000
** recipients took 13 s inside this one C call (in a rule, the watchdog's
** business).  0 or MH_ENOMEM. */
static int collect_rcpts(mh_msg *m) {
  const alist *lists[3] = { &m->to, &m->cc, &m->bcc };
  size_t total = m->to.n + m->cc.n + m->bcc.n, cap = 16, *slot;
  for (size_t i = 0; i < m->nrcpt; i++) free(m->rcpt[i]);
  free(m->rcpt);
  m->rcpt = NULL;
  m->nrcpt = 0;
  while (cap < 2 * total) cap *= 2;
  slot = calloc(cap, sizeof *slot);          /* index + 1 into m->rcpt; 0: free */
  m->rcpt = malloc((total ? total : 1) * sizeof *m->rcpt);
  if (!slot || !m->rcpt) { free(slot); return MH_ENOMEM; }
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < lists[k]->n; i++) {
      const char *a = lists[k]->v[i].addr;
      size_t n = mh_msg_addr_unroot(a, strlen(a)), j = (size_t)hash_bytes(a, n) & (cap - 1);
      char *copy;
      for (;; j = (j + 1) & (cap - 1)) {
        const char *r;
        m->rcpt_probes++;
        if (!slot[j]) break;
        r = m->rcpt[slot[j] - 1];
        if (strlen(r) == n && !memcmp(r, a, n)) break;   /* already there */
      }
      if (slot[j]) continue;
      if (!(copy = dupn(a, n))) { free(slot); return MH_ENOMEM; }
      m->rcpt[m->nrcpt++] = copy;
      slot[j] = m->nrcpt;
    }
  }
  free(slot);
  return 0;
}

size_t mh__msg_rcpt_probes(const mh_msg *m) { return m->rcpt_probes; }

/* The text/html part (or the alternative of both) with its headers. */
static void body_part(mh_msg *m, mh_buf *b, const char *alt_boundary) {
  int text = m->text != NULL, html = m->html != NULL;
  if (text && html) {
    mh_buf_adds(b, "Content-Type: multipart/alternative;\r\n boundary=\"");
    mh_buf_adds(b, alt_boundary);
    mh_buf_adds(b, "\"\r\n\r\n");
    for (int i = 0; i < 2; i++) {
      mh_buf enc = { 0 };
      const char *cte = i == 0 ? encode_body(&enc, m->text, m->text_len)
                               : encode_body(&enc, m->html, m->html_len);
      mh_buf_adds(b, "\r\n--"); mh_buf_adds(b, alt_boundary);
      mh_buf_adds(b, i == 0 ? "\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      : "\r\nContent-Type: text/html; charset=utf-8\r\n");
      mh_buf_adds(b, "Content-Transfer-Encoding: "); mh_buf_adds(b, cte); mh_buf_adds(b, "\r\n\r\n");
      mh_buf_add(b, enc.data, enc.len);
      if (enc.oom) b->oom = 1;
      free(enc.data);
    }
    mh_buf_adds(b, "\r\n--"); mh_buf_adds(b, alt_boundary); mh_buf_adds(b, "--\r\n");
    return;
  }
  mh_buf enc = { 0 };
  const char *cte = html ? encode_body(&enc, m->html, m->html_len)
                         : encode_body(&enc, text ? m->text : "", text ? m->text_len : 0);
  mh_buf_adds(b, html ? "Content-Type: text/html; charset=utf-8\r\n" : "Content-Type: text/plain; charset=utf-8\r\n");
  mh_buf_adds(b, "Content-Transfer-Encoding: "); mh_buf_adds(b, cte); mh_buf_adds(b, "\r\n\r\n");
  mh_buf_add(b, enc.data, enc.len);
  if (enc.oom) b->oom = 1;
  free(enc.data);
}

static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* 9999-12-30T23:59:59Z: still year 9999 in the zone furthest ahead (+14:00). */
#define DATE_MAX ((time_t)253402214399LL)

int mh_msg_date_ok(time_t t) { return t >= 0 && t <= DATE_MAX; }

void mh_msg_date(char *out, size_t cap, time_t now) {
  struct tm tm;
  if (!mh_msg_date_ok(now)) now = 0;   /* tm would be left unset (days[garbage]) */
  if (!localtime_r(&now, &tm)) { now = 0; gmtime_r(&now, &tm); }
  /* a zone RFC 5322's +hhmm cannot say (an offset in seconds: Monrovia's
  ** -00:44:30 until 1972; a TZ of 24 hours or more, which readers refuse):
  ** the time in UTC, so the instant stays exact */
  if (tm.tm_gmtoff % 60 != 0 || labs(tm.tm_gmtoff) >= 24 * 3600) gmtime_r(&now, &tm);
  long off = tm.tm_gmtoff / 60;
  snprintf(out, cap, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
           off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

void mh_msg_make_id(char *out, size_t cap, const char *domain, time_t now) {
  struct tm tm;
  char rnd[65], stamp[64];
  random_hex(rnd, 12);
  if (!mh_msg_date_ok(now)) now = 0;   /* gmtime_r would return NULL to strftime */
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
  snprintf(out, cap, "<%.14s.%.24s@%.253s>", stamp, rnd, domain && domain[0] ? domain : "localhost");
}

int mh_msg_finish(mh_msg *m, time_t now) {
  char date[64], rnd[65], bound[2][80];
  if (m->finished) return fail(m, MH_EINVAL, "message already finished");
  if (m->from.n == 0) return fail(m, MH_EINVAL, "from: no From address");
  if (m->to.n + m->cc.n + m->bcc.n == 0) return fail(m, MH_EINVAL, "to: no recipient (to, cc or bcc)");
  if (!mh_msg_date_ok(now))
    return fail(m, MH_EINVAL, "date: %lld is out of range (seconds since 1970, up to the year 9999)", (long long)now);
  if (collect_rcpts(m)) return fail(m, MH_ENOMEM, "out of memory");

  mh_msg_date(date, sizeof date, now);
  if (!(m->env_from = dupn(m->from.v[0].addr, mh_msg_addr_unroot(m->from.v[0].addr, strlen(m->from.v[0].addr)))))
    return fail(m, MH_ENOMEM, "out of memory");
  mh_msg_make_id(m->id, sizeof m->id, strrchr(m->env_from, '@') + 1, now);
  for (int i = 0; i < 2; i++) {
    random_hex(rnd, 12);
    snprintf(bound[i], sizeof bound[i], "=_mh_%.24s_%c", rnd, i ? '1' : '0');   /* (24 hex digits: 12 bytes) */
  }

  piece *p = new_piece(m, -1);
  if (!p) return fail(m, MH_ENOMEM, "out of memory");
  mh_buf *b = &p->mem;
  fold f;
  fold_begin(&f, b, "Date"); fold_tok(&f, " ", 1); fold_tok(&f, date, strlen(date)); fold_end(&f);
  header_addrs(b, "From", &m->from);
  if (m->reply_to.n) header_addrs(b, "Reply-To", &m->reply_to);
  if (m->to.n) header_addrs(b, "To", &m->to);
  else if (!m->cc.n) mh_buf_adds(b, "To: undisclosed-recipients:;\r\n");
  if (m->cc.n) header_addrs(b, "Cc", &m->cc);
  if (m->subject) {
    fold_begin(&f, b, "Subject");
    fold_unstructured(&f, m->subject, m->subject_len);
    fold_end(&f);
  }
  mh_buf_adds(b, "Message-ID: "); mh_buf_adds(b, m->id); mh_buf_adds(b, "\r\n");
  for (size_t i = 0; i < m->nhdrs; i++) {
    fold_begin(&f, b, m->hdrs[i].name);
    fold_unstructured(&f, m->hdrs[i].value, m->hdrs[i].len);
    fold_end(&f);
  }
  mh_buf_adds(b, "MIME-Version: 1.0\r\n");
  if (m->natt == 0) {
    body_part(m, b, bound[1]);
  } else {
    mh_buf_adds(b, "Content-Type: multipart/mixed;\r\n boundary=\"");
    mh_buf_adds(b, bound[0]);
    mh_buf_adds(b, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--");
    mh_buf_adds(b, bound[0]);
    mh_buf_adds(b, "\r\n");
    body_part(m, b, bound[1]);
    for (size_t i = 0; i < m->natt; i++) {
      mh_buf_adds(b, "\r\n--"); mh_buf_adds(b, bound[0]); mh_buf_adds(b, "\r\n");
      attach_headers(b, &m->att[i]);
      if (b->oom) return fail(m, MH_ENOMEM, "out of memory");
      if (!new_piece(m, (long)i) || !(p = new_piece(m, -1))) return fail(m, MH_ENOMEM, "out of memory");
      b = &p->mem;
    }
    mh_buf_adds(b, "\r\n--"); mh_buf_adds(b, bound[0]); mh_buf_adds(b, "--\r\n");
  }
  if (b->oom) return fail(m, MH_ENOMEM, "out of memory");
  m->finished = 1;
  return 0;
}

/* --------------------------------------------------------------- output */

/* Where output goes: a descriptor (buffered, flushed at OUT_FLUSH) or memory. */
typedef struct {
  int fd;                   /* -1: keep everything in b */
  mh_buf b;
  int err;                  /* first write error (negative errno); sticky */
} out;

static int flush(out *o) {
  size_t done = 0;
  while (!o->err && done < o->b.len) {
    ssize_t n = write(o->fd, o->b.data + done, o->b.len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      o->err = -errno;
    } else {
      done += (size_t)n;
    }
  }
  o->b.len = 0;
  return o->err;
}

static void out_put(out *o, const void *p, size_t n) {
  if (o->err) return;
  mh_buf_add(&o->b, p, n);
  if (o->b.oom) { o->err = MH_ENOMEM; return; }
  if (o->fd >= 0 && o->b.len >= OUT_FLUSH) flush(o);
}

/* The attachments' sum over MH_LIMIT_MESSAGE: the error.  Their sizes were added
** up when they were added, but a file may grow before the message is written
** (1,000 files empty then, 64 MiB each now, made a 64 GB message). */
static int over_message_limit(mh_msg *m, const char *path, int64_t sum) {
  char lim[32];
  return fail(m, MH_ELIMIT, "attachment %s: the attachments grew to %lld bytes since they were added, over "
              "the %s limit of a message", path, (long long)sum, mh_fsutil_size(lim, sizeof lim, MH_LIMIT_MESSAGE));
}

/* Before a byte is written: the attachments' sizes now, added up, within
** MH_LIMIT_MESSAGE (a file that cannot be looked at fails when it is streamed). */
static int attachments_fit(mh_msg *m) {
  int64_t sum = 0;
  for (size_t i = 0; i < m->natt; i++) {
    struct stat st;
    if (stat(m->att[i].path, &st) == 0 && S_ISREG(st.st_mode)) sum += (int64_t)st.st_size;
    if (sum > MH_LIMIT_MESSAGE) return over_message_limit(m, m->att[i].path, sum);
  }
  return 0;
}

/* Streams attachment a as base64 lines of 76 columns; *sum counts the bytes of
** every attachment streamed so far (a file growing while read stops it too). */
static int stream_attachment(mh_msg *m, out *o, const attach *a, int64_t *sum) {
  static const size_t cap = CHUNK;
  unsigned char *in = malloc(cap);
  char *line = malloc((cap / B64_LINE) * 78 + 8);
  struct stat st;
  /* opened again the safe way: the name may lead elsewhere by now */
  int fd = mh_fsutil_open_input(AT_FDCWD, a->path, MH_FS_FOLLOW, MH_LIMIT_ATTACHMENT, &st);
  int64_t total = 0;
  int rc = 0;
  if (!in || !line) { rc = fail(m, MH_ENOMEM, "out of memory"); goto done; }
  if (fd < 0) {
    char why[sizeof m->err];
    rc = fail(m, fd, "%s", mh_fsutil_why(why, sizeof why, "attachment", a->path, fd, &st, MH_LIMIT_ATTACHMENT));
    goto done;
  }
  for (;;) {
    size_t have = 0;
    while (have < cap) {             /* fill the chunk so lines stay aligned */
      ssize_t n = read(fd, in + have, cap - have);
      if (n < 0) {
        if (errno == EINTR) continue;
        rc = fail(m, -errno, "attachment %s: %s", a->path, strerror(errno));
        goto done;
      }
      if (n == 0) break;
      have += (size_t)n;
    }
    if ((total += (int64_t)have) > MH_LIMIT_ATTACHMENT) {   /* it grew while read */
      char lim[32];
      rc = fail(m, MH_ELIMIT, "attachment %s: grew over the %s limit while read", a->path,
                mh_fsutil_size(lim, sizeof lim, MH_LIMIT_ATTACHMENT));
      goto done;
    }
    if ((*sum += (int64_t)have) > MH_LIMIT_MESSAGE) { rc = over_message_limit(m, a->path, *sum); goto done; }
    size_t k = 0;
    for (size_t i = 0; i < have; i += B64_LINE) {
      size_t take = have - i < B64_LINE ? have - i : B64_LINE;
      k += mh_b64_encode(line + k, in + i, take);
      line[k++] = '\r';
      line[k++] = '\n';
    }
    out_put(o, line, k);
    if (o->err) { rc = o->err; goto done; }
    if (have < cap) break;
  }
done:
  if (fd >= 0) close(fd);
  free(in);
  free(line);
  return rc;
}

static int emit(mh_msg *m, out *o) {
  int64_t sum = 0;
  if (!m->finished) return fail(m, MH_EINVAL, "message not finished");
  int rc = attachments_fit(m);
  if (rc < 0) return rc;
  for (size_t i = 0; i < m->npieces; i++) {
    const piece *p = &m->pieces[i];
    if (p->att >= 0) {
      rc = stream_attachment(m, o, &m->att[p->att], &sum);
      if (rc < 0) return rc;
    } else {
      out_put(o, p->mem.data, p->mem.len);
    }
    if (o->err) return fail(m, o->err, "write: %s", mh_strerror(o->err));
  }
  return 0;
}

int mh_msg_write(mh_msg *m, int fd) {
  out o = { .fd = fd };
  int rc = emit(m, &o);
  if (rc == 0 && flush(&o) < 0) rc = fail(m, o.err, "write: %s", mh_strerror(o.err));
  free(o.b.data);
  return rc;
}

int mh_msg_bytes(mh_msg *m, char **outp, size_t *len) {
  out o = { .fd = -1 };
  int rc = emit(m, &o);
  if (rc < 0) { free(o.b.data); return rc; }
  mh_buf_add(&o.b, "", 0);              /* NUL-terminated (mh_buf), even when empty */
  if (o.b.oom) { free(o.b.data); return fail(m, MH_ENOMEM, "out of memory"); }
  *outp = o.b.data;
  *len = o.b.len;
  return 0;
}

const char *mh_msg_env_from(const mh_msg *m) {
  return m->env_from ? m->env_from : m->from.n ? m->from.v[0].addr : NULL;
}
size_t mh_msg_rcpt_count(const mh_msg *m) { return m->nrcpt; }
const char *mh_msg_rcpt(const mh_msg *m, size_t i) { return i < m->nrcpt ? m->rcpt[i] : NULL; }
const char *mh_msg_id(const mh_msg *m) { return m->id; }
