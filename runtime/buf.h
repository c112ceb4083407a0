/*
** buf.h — the one growable byte buffer of the C core (the SMTP session's
** output and AUTH strings, the message builder's rendered pieces, the 7-bit
** converter's header fields).
**
** A failed allocation is sticky: it sets `oom`, and every later append is a
** no-op that returns MH_ENOMEM again, so a run of appends needs one check at
** its end and no byte is ever dropped silently from the middle of a buffer
** that is then used.
*/
#ifndef MH_BUF_H
#define MH_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
  char *data;              /* the bytes, NUL-terminated once anything was added (else NULL) */
  size_t len;              /* bytes used (the NUL not counted) */
  size_t cap;              /* bytes allocated */
  int oom;                 /* an append failed: the content is incomplete (sticky until
                              mh_buf_free) */
} mh_buf;

/* Appends n bytes (p may be NULL when n is 0).  0, or MH_ENOMEM (then and
** after: b->oom). */
int mh_buf_add(mh_buf *b, const void *p, size_t n);
/* Appends a C string. */
int mh_buf_adds(mh_buf *b, const char *s);
/* Appends printf output, of any length. */
int mh_buf_printf(mh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mh_buf_vprintf(mh_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends the base64 (RFC 4648, padded, no line breaks) of n bytes. */
int mh_buf_b64(mh_buf *b, const void *in, size_t n);
/* Frees the bytes; b is empty (and usable) again. */
void mh_buf_free(mh_buf *b);
/* mh_buf_free for a buffer that held a secret: every allocated byte is
** overwritten first (in a way the compiler may not drop). */
void mh_buf_wipe(mh_buf *b);

#endif
