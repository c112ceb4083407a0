/*
** intake-ref.h — the rule runtime/intake.c replaced, kept as the reference its
** tests compare with (tests/unit/test-intake.c, tests/fuzz/fuzz-intake.c): the
** whole input in memory, every line end (CRLF, bare CR, bare LF: runtime/eol.h)
** made CRLF, cut before the first lone "." line when dot is set (sendmail
** without -i), CRLF added at the end.  out needs 2n + 2 bytes.
*/
#ifndef MH_INTAKE_REF_H
#define MH_INTAKE_REF_H

#include <string.h>

static size_t intake_reference(const char *in, size_t n, int dot, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '\r' || in[i] == '\n') {   /* CRLF, bare CR, bare LF: one line end */
      out[o++] = '\r';
      out[o++] = '\n';
      if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') i++;
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
  return o;
}

#endif
