/*
** intake.c — a message from a descriptor, converted as it streams (see
** intake.h).  Memory: the input chunk, the header block, one output chunk;
** never the message.
*/
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include "intake.h"
#include "error.h"
#include "fsutil.h"
#include "spool.h"

/* Where a lone-dot line could be starting (output bytes seen on this line). */
enum { LINE_START, DOT, DOT_CR, MID_LINE };

struct mh_intake {
  int fd;              /* the input (stdin); not ours to close */
  int dot;             /* a lone "." line ends the message */
  int eof;             /* read(2) returned 0 */
  int ended;           /* no more output: end of input or the dot line */
  int dot_end;         /* ended by the dot line: the rest of the input is drained */
  size_t ncr;          /* CRs read and not written yet: a run of CRs then LF is one line end
                       ** (CR CR LF, as some Windows/PHP callers write), a CR then anything
                       ** else a line end of its own (eol.h); decided when the next byte comes */
  int dstate;          /* lone-dot detection, see the enum */
  int rerr;            /* the read error met by mh_intake_write, or 0 */
  char raw[MH_INTAKE_CHUNK];  /* input not converted yet */
  size_t rpos, rlen;
  char *buf;           /* converted output: the header block, then the rest read with it */
  size_t len, cap;
  size_t head_len;     /* the header block is buf[0..head_len) */
  size_t scan;         /* the start of the first line of buf not yet known to be a header */
  size_t seek;         /* where the search for that line's CRLF goes on (bytes before it have none) */
  int scan_field;      /* that line already showed itself a header field ("Name:") */
  int nfield;          /* a header field was seen: a line starting with a blank continues it */
  int from_;           /* still at the start: a From_ line here is dropped (see split) */
  int start_done;      /* the input's start is decided: a BOM there was dropped, or there was none */
  size_t nstart;       /* until then: the bytes read so far, a prefix of a BOM, held at raw[0..) */
  int sep;             /* the header block ended at a line that is no header (body text, as
                       ** `echo hi | sendmail root` gives): an empty line goes between */
  char *head;          /* the caller's replacement header block, or NULL */
  size_t head_over;    /* its length */
  size_t written;      /* bytes written by mh_intake_write */
  size_t max;          /* at most this many (MH_LIMIT_MESSAGE): see mh_intake_set_max */
  char last[2];        /* the last two bytes written after the header block */
  size_t nlast;        /* how many of them there are (0..2) */
};

mh_intake *mh_intake_new(int fd, int dot) {
  mh_intake *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  in->fd = fd;
  in->dot = dot;
  in->max = (size_t)MH_LIMIT_MESSAGE;
  in->dstate = LINE_START;
  in->from_ = 1;
  return in;
}

void mh_intake_free(mh_intake *in) {
  if (!in) return;
  free(in->buf);
  free(in->head);
  free(in);
}

/* Refills raw.  0 with bytes, 1 at end of input, -errno.  A non-blocking
** descriptor (a pipe libuv touched) is waited for with poll. */
static int refill(mh_intake *in) {
  static const char bom[3] = { '\xEF', '\xBB', '\xBF' };
  for (;;) {
    /* until the start is decided, the bytes read so far (a prefix of the BOM)
    ** stay at the start of raw and the next read goes after them */
    size_t held = in->start_done ? 0 : in->nstart;
    ssize_t n = read(in->fd, in->raw + held, sizeof in->raw - held);
    if (n > 0 || (n == 0 && held)) {
      in->rpos = 0;
      in->rlen = held + (size_t)n;
      if (!in->start_done) {
        /* a UTF-8 byte order mark first (PowerShell 5's Out-File -Encoding
        ** UTF8, Notepad): no part of an RFC 5322 message, and it made the
        ** first field no header ("line 1 is not a header"): a drop-in went to
        ** corrupt/, sendmail -t found no recipient.  Dropped, wherever the
        ** reads cut it: a pipe may give EF, then BB BF Subject... */
        size_t k = 0;
        while (k < in->rlen && k < 3 && in->raw[k] == bom[k]) k++;
        if (k == in->rlen && k < 3 && n > 0) {   /* all of it may start a BOM: read on */
          in->nstart = k;
          continue;
        }
        in->start_done = 1;
        if (k == 3) in->rpos = 3;
        if (n == 0) in->eof = 1;   /* held bytes, then the end: never read again */
      }
      if (in->rpos == in->rlen) continue;
      return 0;
    }
    if (n == 0) { in->eof = 1; return 1; }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd p = { .fd = in->fd, .events = POLLIN };
      if (poll(&p, 1, -1) < 0 && errno != EINTR) return -errno;
      continue;
    }
    return -errno;
  }
}

/* One output byte through the lone-dot detector into out (at *o). */
static void emit(mh_intake *in, char *out, size_t *o, char x) {
  if (in->dot) {
    if (in->dstate == LINE_START && x == '.') { in->dstate = DOT; return; }
    if (in->dstate == DOT) {
      if (x == '\r') { in->dstate = DOT_CR; return; }
      out[(*o)++] = '.';
    } else if (in->dstate == DOT_CR) {
      if (x == '\n') { in->ended = in->dot_end = 1; return; }
      out[(*o)++] = '.';
      out[(*o)++] = '\r';
    }
  }
  out[(*o)++] = x;
  in->dstate = x == '\n' ? LINE_START : MID_LINE;
}

/* Up to cap (>= 4) converted bytes into out: their count, 0 once the message
** ended, or -errno. */
static long pull(mh_intake *in, char *out, size_t cap) {
  size_t o = 0;
  while (o + 4 <= cap && !in->ended) {
    if (in->rpos == in->rlen) {
      int rc = 1;
      if (!in->eof) {   /* never read again after the end (a terminal would wait) */
        if (o) break;   /* hand over what there is before blocking on the pipe */
        rc = refill(in);
        if (rc < 0) return rc;
      }
      if (rc == 1 && in->ncr) {   /* end of input after CRs: each was a line end */
        in->ncr--;
        emit(in, out, &o, '\r');
        if (!in->ended) emit(in, out, &o, '\n');
        continue;
      }
      if (rc == 1) {  /* end of input: a held "." or ".\r" was text after all */
        if (in->dstate == DOT || in->dstate == DOT_CR) out[o++] = '.';
        if (in->dstate == DOT_CR) out[o++] = '\r';
        in->dstate = MID_LINE;
        in->ended = 1;
        break;
      }
    }
    while (in->rpos < in->rlen && o + 4 <= cap && !in->ended) {
      /* every line end leaves as CRLF, so the header block the caller parses
      ** splits where the data writer will: CR* LF is one line end (the CRs
      ** before an LF are counted, never written: "Subject: x\r\r\n" keeps
      ** the next field in the header block, as Postfix reads it); a CR
      ** followed by anything else is a line end of its own (eol.h), so no
      ** bare CR ever reaches the spool or a server */
      char c = in->raw[in->rpos];
      if (c == '\r') {
        in->ncr++;
        in->rpos++;
      } else if (c == '\n' || in->ncr) {
        /* an LF ends the line (with the CRs before it); another byte after
        ** CRs: one of them is a line end, written now, the byte read again */
        if (c == '\n') { in->ncr = 0; in->rpos++; } else in->ncr--;
        emit(in, out, &o, '\r');
        if (!in->ended) emit(in, out, &o, '\n');
      } else {
        emit(in, out, &o, c);
        in->rpos++;
      }
    }
  }
  return (long)o;
}

long mh_intake_read(mh_intake *in, char *out, size_t cap) { return pull(in, out, cap); }

/* Whether a line (n bytes of it seen, complete: its CRLF too) is a header
** field: 1 yes, 0 no, -1 not known yet.  A field is a name of printable ASCII
** other than ':' (at most 998 bytes: RFC 5322's line), blanks allowed before
** the colon (the obsolete "Name :", as Postfix reads it), or a line starting
** with a blank after a field (its continuation).  submit.lua's fields() reads
** the same rule. */
static int field_line(const mh_intake *in, const char *p, size_t n, int complete) {
  size_t i = 0;
  if (n == 0) return complete ? 0 : -1;
  if (p[0] == ' ' || p[0] == '\t') return in->nfield ? 1 : 0;
  while (i < n && i <= 998 && p[i] > ' ' && p[i] < 127 && p[i] != ':') i++;
  if (i > 998) return 0;
  if (i == n) return complete ? 0 : -1;
  if (i == 0) return 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i == n) return complete ? 0 : -1;
  return p[i] == ':';
}

/* Whether a line is an mbox From_ line ("From " after any '>'): 1 yes, 0 no,
** -1 not known yet. */
static int from_line(const char *p, size_t n, int complete) {
  size_t i = 0, k;
  while (i < n && p[i] == '>') i++;
  k = n - i < 5 ? n - i : 5;
  if (memcmp(p + i, "From ", k)) return 0;
  return k == 5 ? 1 : complete ? 0 : -1;
}

/* Finds where the header block ends in buf[0..len): at the first empty line,
** or (Postfix's rule, nullmailer's too) at the first line that is no header
** field, which starts the body (sep set: the writer puts the empty line
** there).  1 when found (head_len set), 0 when more input is needed. */
static int split(mh_intake *in) {
  while (in->scan < in->len) {
    const char *s = in->buf + in->scan;
    size_t from = in->seek > in->scan ? in->seek : in->scan;
    const char *nl = memmem(in->buf + from, in->len - from, "\r\n", 2);
    size_t n = nl ? (size_t)(nl - s) : in->len - in->scan;
    if (in->from_) {
      /* the mbox From_ lines a message may start with (`git format-patch
      ** --stdout | sendmail -t`, a message saved from a mailbox) are no part
      ** of it: dropped, as Postfix's sendmail drops them */
      int f = from_line(s, n, nl != NULL);
      if (f != 0 && !nl) { in->seek = in->len - 1; return 0; }
      if (f == 1) {
        size_t cut = n + 2;
        memmove(in->buf, in->buf + cut, in->len - cut);   /* scan is 0 while from_ is set */
        in->len -= cut;
        in->seek = 0;
        continue;
      }
      in->from_ = 0;
    }
    if (nl && n == 0) { in->head_len = in->scan; return 1; }   /* the empty line */
    if (!in->scan_field) {
      int f = field_line(in, s, n, nl != NULL);
      if (f == 0) { in->head_len = in->scan; in->sep = 1; return 1; }
      in->scan_field = f == 1;
    }
    if (!nl) { in->seek = in->len - 1; return 0; }   /* a CR last may have its LF next */
    in->nfield = 1;
    in->scan_field = 0;
    in->scan += n + 2;
  }
  return 0;
}

int mh_intake_head(mh_intake *in, const char **head, size_t *len, int *empty, char *err) {
  int over = 0;
  for (;;) {
    if (in->cap - in->len < MH_INTAKE_CHUNK) {
      size_t nc = in->cap ? in->cap * 2 : MH_INTAKE_CHUNK * 2;
      char *nb = realloc(in->buf, nc);
      if (!nb) { if (err) snprintf(err, MH_INTAKE_ERRLEN, "header block: out of memory"); return MH_ENOMEM; }
      in->buf = nb;
      in->cap = nc;
    }
    long n = pull(in, in->buf + in->len, MH_INTAKE_CHUNK);
    if (n < 0) {
      if (err) snprintf(err, MH_INTAKE_ERRLEN, "reading the message: %s", strerror((int)-n));
      return (int)n;
    }
    in->len += (size_t)n;
    if (n == 0 && in->len && (in->len < 2 || in->buf[in->len - 2] != '\r' || in->buf[in->len - 1] != '\n')) {
      in->buf[in->len++] = '\r';   /* ended mid-line: room, cap - len >= MH_INTAKE_CHUNK */
      in->buf[in->len++] = '\n';
    }
    if (split(in)) break;
    if (in->len > MH_INTAKE_HEADMAX) { over = 1; break; }   /* no end within the limit */
    if (n == 0) { in->head_len = in->len; break; }   /* ended in the header block: all of it is */
  }
  if (over || in->head_len > MH_INTAKE_HEADMAX) {
    if (err) snprintf(err, MH_INTAKE_ERRLEN, "header block over %u MB", MH_INTAKE_HEADMAX >> 20);
    return MH_ECORRUPT;
  }
  *head = in->buf;
  *len = in->head_len;
  *empty = in->len == 0;
  return 0;
}

int mh_intake_set_head(mh_intake *in, const char *head, size_t len) {
  char *h = malloc(len ? len : 1);
  if (!h) return MH_ENOMEM;
  memcpy(h, head, len);
  free(in->head);
  in->head = h;
  in->head_over = mh__spool_drop_bcc(h, len);   /* never a Bcc in what is sent */
  return 0;
}

/* Writes the bytes of the message after the header block, noting the last two. */
static int put_rest(mh_intake *in, int fd, const char *p, size_t n) {
  int rc;
  if (!n) return 0;
  if (in->written + n > in->max) return in->rerr = MH_ELIMIT;   /* the input's fault */
  if ((rc = mh_fsutil_write_all(fd, p, n))) return rc;
  in->written += n;
  if (n >= 2) { in->last[0] = p[n - 2]; in->last[1] = p[n - 1]; in->nlast = 2; }
  else { in->last[0] = in->last[1]; in->last[1] = p[0]; in->nlast = in->nlast ? 2 : 1; }
  return 0;
}

int mh_intake_write(void *arg, int fd) {
  mh_intake *in = (mh_intake *)arg;
  const char *h = in->head ? in->head : in->buf;
  size_t hl = in->head ? in->head_over : in->head_len;
  char *out;
  int rc;
  if (hl && (rc = mh_fsutil_write_all(fd, h, hl))) return rc;
  in->written += hl;
  if (in->sep) {   /* the body started with a line that is no header: the empty line between */
    if ((rc = mh_fsutil_write_all(fd, "\r\n", 2))) return rc;
    in->written += 2;
  }
  if ((rc = put_rest(in, fd, in->buf + in->head_len, in->len - in->head_len))) return rc;
  /* the header block's buffer may be megabytes: give it back before streaming */
  free(in->buf);
  in->buf = NULL;
  in->len = in->cap = in->head_len = 0;
  if (!(out = malloc(MH_INTAKE_CHUNK))) return MH_ENOMEM;
  for (;;) {
    long n = pull(in, out, MH_INTAKE_CHUNK);
    if (n < 0) { in->rerr = (int)n; rc = (int)n; break; }
    if (n == 0) { rc = 0; break; }
    if ((rc = put_rest(in, fd, out, (size_t)n))) break;
  }
  free(out);
  if (rc) return rc;
  if (in->nlast && !(in->nlast == 2 && in->last[0] == '\r' && in->last[1] == '\n')) {
    if ((rc = mh_fsutil_write_all(fd, "\r\n", 2))) return rc;
    in->written += 2;
  }
  /* after the dot line: read the rest and drop it, as sendmail does */
  if (in->dot_end)
    while (!in->eof && refill(in) == 0) {}
  return 0;
}

int mh_intake_error(const mh_intake *in) { return in->rerr; }

void mh_intake_set_max(mh_intake *in, size_t max) { in->max = max; }

size_t mh_intake_max(const mh_intake *in) { return in->max; }

size_t mh_intake_written(const mh_intake *in) { return in->written; }
