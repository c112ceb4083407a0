/*
** eol.h — what a line is, for every part that reads or writes message lines:
** intake (runtime/intake.c), the spool's header parser (spool.c), the 7-bit
** converter (mime7.c) and the SMTP data writer (smtp.c).
**
** A line ends at CRLF, at a bare CR or at a bare LF.  The writer sends each of
** them as CRLF (no bare CR or LF ever reaches a server: SMTP smuggling,
** CVE-2023-51764), so every parser must split lines the same way: a header
** reader that took a bare CR for data would see one field where the server
** gets two ("Subject: hi\rBcc: x" — issue 10 point 4).  Intake (sendmail,
** -bs, maildrop/) reads one rule more before anyone else sees the bytes: the
** CRs right before an LF are part of that one line end (CR CR LF, as Postfix's
** sendmail strips them); its output holds CRLF only, so the parsers here agree
** with it.  A file dropped into pickup/ is adopted through intake's converter
** too (spool.c's adopt, mh_intake_read), so it is stored by the same rule.
** Header-only: a few inline helpers, no state.
*/
#ifndef MH_EOL_H
#define MH_EOL_H

#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The length of the line end at p (n bytes available): 2 for CRLF, 1 for a
** bare CR or LF, 0 when p does not start a line end.  A CR that is the last
** byte available counts 1: a caller reading a stream asks for more first
** when the difference matters. */
static inline size_t mh_eol_len(const char *p, size_t n) {
  if (n == 0) return 0;
  if (p[0] == '\n') return 1;
  if (p[0] != '\r') return 0;
  return n > 1 && p[1] == '\n' ? 2 : 1;
}

/* The length of the line end at p by intake's rule (intake.h): CR* LF is one
** line end (CR CR LF, as a Windows/PHP caller writes it), a CR before anything
** else one of its own; 0 when p does not start a line end.  For a reader that
** has the whole text (the message builder's body, msg.c); intake applies the
** same rule as the bytes stream in. */
static inline size_t mh_eol_intake_len(const char *p, size_t n) {
  size_t k = 1;
  if (n == 0) return 0;
  if (p[0] == '\n') return 1;
  if (p[0] != '\r') return 0;
  while (k < n && p[k] == '\r') k++;
  return k < n && p[k] == '\n' ? k + 1 : 1;
}

/* The first CR or LF in p[0..n), or NULL.  Where SSE2 is (every x86-64), 16
** octets a step, CR and LF compared at once: the data writer asks it of every
** line it sends, the spool's header parser of every header line, and two
** memchr calls a line cost twice this.  Elsewhere by memchr, a window at a
** time: a byte loop cost some 6 instructions a byte; the window bounds what is
** scanned past the answer (an LF far behind lines that end with bare CRs) so
** that a caller walking the lines stays linear (the SSE2 steps read at most 15
** octets past it). */
static inline const char *mh_eol_find(const char *p, size_t n) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  for (; n >= 16; p += 16, n -= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (m) return p + __builtin_ctz(m);
  }
  for (; n > 0; p++, n--)
    if (*p == '\r' || *p == '\n') return p;
  return NULL;
#else
  while (n > 0) {
    size_t w = n < 256 ? n : 256;
    const char *lf = (const char *)memchr(p, '\n', w);
    const char *cr = (const char *)memchr(p, '\r', lf ? (size_t)(lf - p) : w);
    if (cr) return cr;
    if (lf) return lf;
    p += w;
    n -= w;
  }
  return NULL;
#endif
}

#endif
