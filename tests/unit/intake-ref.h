/*
** intake-ref.h — the rule runtime/intake.c replaced, kept as the reference its
** tests compare with (tests/unit/test-intake.c, tests/fuzz/fuzz-intake.c): the
** whole input in memory, a UTF-8 BOM first dropped (however the reads cut it), every line end (CR* LF, a bare CR not before an LF,
** a bare LF: runtime/intake.h) made CRLF, cut before the first lone "." line when dot is set (sendmail
** without -i), CRLF added at the end, the From_ lines at the start (">From ",
** "From ") dropped, and an empty line put before the first
** line of the header block that is no header field (Postfix's rule: that line
** starts the body).  out needs 2n + 4 bytes.
*/
#ifndef MH_INTAKE_REF_H
#define MH_INTAKE_REF_H

#include <string.h>

static size_t intake_reference(const char *in, size_t n, int dot, char *out) {
  size_t o = 0;
  if (n >= 3 && !memcmp(in, "\xEF\xBB\xBF", 3)) { in += 3; n -= 3; }
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '\r' || in[i] == '\n') {   /* CR* LF, bare CR, bare LF: one line end */
      size_t j = i;
      while (j < n && in[j] == '\r') j++;
      out[o++] = '\r';
      out[o++] = '\n';
      if (j < n && in[j] == '\n') i = j;   /* CRs then LF: one line end (CR CR LF) */
    } else {
      out[o++] = in[i];
    }
  }
  if (dot)
    for (size_t p = 0; p + 3 <= o; p++)
      if ((p == 0 || (p >= 2 && out[p - 2] == '\r' && out[p - 1] == '\n')) && !memcmp(out + p, ".\r\n", 3)) {
        o = p;
        break;
      }
  if (o && (o < 2 || out[o - 2] != '\r' || out[o - 1] != '\n')) { out[o++] = '\r'; out[o++] = '\n'; }
  /* the mbox From_ lines at the start */
  for (;;) {
    size_t i = 0, e = 0;
    while (i < o && out[i] == '>') i++;
    if (o - i < 5 || memcmp(out + i, "From ", 5)) break;
    while (out[e] != '\r') e++;
    memmove(out, out + e + 2, o - e - 2);
    o -= e + 2;
  }
  /* the header block, line by line: a field ("Name:", "Name :"), or a line
  ** starting with a blank after one; an empty line ends it; any other line
  ** starts the body, and an empty line goes before it */
  for (size_t p = 0, fields = 0; p < o;) {
    size_t e = p;
    while (out[e] != '\r') e++;   /* every line ends in CRLF now */
    if (e == p) break;
    int field = 0;
    if (out[p] == ' ' || out[p] == '\t') field = fields > 0;
    else {
      size_t i = p;
      while (i < e && out[i] > ' ' && out[i] < 127 && out[i] != ':') i++;
      int named = i > p && i - p <= 998;
      while (i < e && (out[i] == ' ' || out[i] == '\t')) i++;
      field = named && i < e && out[i] == ':';
    }
    if (!field) {
      memmove(out + p + 2, out + p, o - p);
      out[p] = '\r';
      out[p + 1] = '\n';
      o += 2;
      break;
    }
    fields++;
    p = e + 2;
  }
  return o;
}

#endif
