/*
** b64.c — base64 encoding and strict decoding (see b64.h).
*/
#include "b64.h"

static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mh_b64_encode(char *out, const void *in_, size_t n) {
  const unsigned char *in = (const unsigned char *)in_;
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

/* The value of a base64 character, or -1. */
static int val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long mh_b64_decode(void *out_, const char *in, size_t n) {
  unsigned char *out = (unsigned char *)out_;
  size_t o = 0, i, pad = 0;
  unsigned v = 0;
  int bits = 0;
  while (pad < 2 && pad < n && in[n - 1 - pad] == '=') pad++;
  if (pad && n % 4) return -1;          /* padded, then whole quanta */
  n -= pad;
  if (n % 4 == 1) return -1;            /* 6 lone bits: no byte */
  for (i = 0; i < n; i++) {
    int d = val((unsigned char)in[i]);
    if (d < 0) return -1;
    v = (v << 6 | (unsigned)d) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(v >> bits);
    }
  }
  return (long)o;
}
