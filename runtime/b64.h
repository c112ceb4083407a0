/*
** b64.h — base64 (RFC 4648 §4, padded) for the whole core: AUTH strings,
** RFC 2047 encoded words, attachment bodies and the 7-bit conversion.
**
** Our own dozen lines rather than OpenSSL's EVP_EncodeBlock: the message
** builder and the SMTP session are used by processes that never start TLS
** (`hook`, `enqueue`, `sendmail`), and OpenSSL may be a module loaded on the
** first TLS session only (docs/perf-hook.md): nothing outside tls.c calls it.
*/
#ifndef MH_B64_H
#define MH_B64_H

#include <stddef.h>

/* Characters the encoding of n bytes takes (no NUL). */
#define MH_B64_LEN(n) (((n) + 2) / 3 * 4)

/* Encodes n bytes of in into out (MH_B64_LEN(n) characters, no NUL, no line
** breaks); returns that count. */
size_t mh_b64_encode(char *out, const void *in, size_t n);

/* Decodes n characters of in into out (room for n / 4 * 3 + 2 bytes): the
** strict alphabet of RFC 4648 §4, padding optional but only at the end, no
** blank, no line break (an AUTH challenge is one line).  Returns the byte
** count, or -1 when in is not base64 (a character outside the alphabet, a
** '=' inside, a length that leaves 6 lone bits). */
long mh_b64_decode(void *out, const char *in, size_t n);

#endif
