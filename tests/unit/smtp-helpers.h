/*
** smtp-helpers.h — what the SMTP engine's unit tests share (test-smtp.c,
** test-smtp-pipeline.c, test-smtp-dsn.c, test-smtp-bdat.c): feeding a
** server's text to a session, and taking what the session wrote since the
** last look.  Each test keeps its own record of callbacks; these only need
** its output buffer.  Header-only, like tap.h.
*/
#ifndef MH_TEST_SMTP_HELPERS_H
#define MH_TEST_SMTP_HELPERS_H

#include <string.h>
#include "buf.h"
#include "smtp.h"

/* The server's text, as one read. */
static inline void feed(mh_smtp *s, const char *text) { mh_smtp_data(s, text, strlen(text)); }

/* What was written into out since the last call, as a string in a static
** buffer (the first 64 KiB), and out emptied; *writes (when given) zeroed. */
static inline const char *take_out(mh_buf *out, int *writes) {
  static char last[70000];
  size_t n = out->len < sizeof last - 1 ? out->len : sizeof last - 1;
  memcpy(last, out->data ? out->data : "", n);
  last[n] = '\0';
  out->len = 0;
  if (writes) *writes = 0;
  return last;
}

#endif
