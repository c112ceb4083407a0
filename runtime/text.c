/*
** text.c — the display rule for text from outside (text.h): what a hostile
** server or certificate says reaches a terminal, the log or the console only
** as characters, never as a command to the terminal or a forged line.
*/
#include "text.h"

#include <stdint.h>
#include <string.h>

/* Length of the UTF-8 character at c (n bytes left), 0 when it is none
** (a stray continuation, a cut or overlong sequence, a surrogate, past
** U+10FFFF); *cp its code point. */
static size_t utf8_char(const unsigned char *c, size_t n, uint32_t *cp) {
  size_t k;
  uint32_t v, min;
  if (c[0] < 0x80) { *cp = c[0]; return 1; }
  if ((c[0] & 0xe0) == 0xc0) { k = 2; v = c[0] & 0x1fu; min = 0x80; }
  else if ((c[0] & 0xf0) == 0xe0) { k = 3; v = c[0] & 0x0fu; min = 0x800; }
  else if ((c[0] & 0xf8) == 0xf0) { k = 4; v = c[0] & 0x07u; min = 0x10000; }
  else return 0;
  if (k > n) return 0;
  for (size_t j = 1; j < k; j++) {
    if ((c[j] & 0xc0) != 0x80) return 0;
    v = v << 6 | (c[j] & 0x3fu);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return k;
}

/* Whether code point cp may not be shown as it is. */
static int unsafe(uint32_t cp, int flags) {
  if (cp < 0x20) return !((flags & MH_TEXT_KEEP_LINES) && (cp == '\n' || cp == '\t'));
  if (cp < 0x7f) return 0;
  return cp <= 0x9f ||                                  /* DEL, C1 controls */
         cp == 0x061c || cp == 0x200e || cp == 0x200f ||  /* ALM, LRM, RLM */
         (cp >= 0x202a && cp <= 0x202e) ||                /* embeddings, overrides */
         (cp >= 0x2066 && cp <= 0x2069) ||                /* isolates */
         cp == 0x2028 || cp == 0x2029;                    /* line, paragraph separators */
}

/* How many bytes at the start of t[0..n) are printable ASCII: 8 at a time (a
** byte loop was a third of the reply parser's instructions; the usual reply is
** all printable ASCII, and is left as it is). */
static size_t ascii_len(const char *t, size_t n) {
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, d;
    memcpy(&x, t + i, 8);
    d = x ^ (ones * 0x7f);   /* a DEL byte: a zero byte here */
    /* any byte >= 0x80, any byte < 0x20, or any zero byte of d (the classic
       "has less than" test) */
    if ((x & highs) | ((x - ones * 0x20) & ~x & highs) | ((d - ones) & ~d & highs)) break;
  }
  while (i < n && (unsigned char)t[i] >= 0x20 && (unsigned char)t[i] < 0x7f) i++;
  return i;
}

size_t mh_text_shown(char *s, size_t n, int flags) {
  size_t i = ascii_len(s, n), o;
  for (o = i; i < n;) {
    uint32_t cp = 0;
    size_t k = utf8_char((const unsigned char *)s + i, n - i, &cp);
    if (k == 0 || unsafe(cp, flags)) {
      s[o++] = '?';
      i += k ? k : 1;
      continue;
    }
    memmove(s + o, s + i, k);
    o += k;
    i += k;
  }
  if (o < n) s[o] = '\0';
  return o;
}

/* Whether c[0..n) is the start of a UTF-8 character that more bytes could
** complete (a lead byte followed only by continuation bytes, fewer than it
** needs). */
static int cut_char(const unsigned char *c, size_t n) {
  size_t k = (c[0] & 0xe0) == 0xc0 ? 2 : (c[0] & 0xf0) == 0xe0 ? 3 : (c[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (k == 0 || n >= k) return 0;
  for (size_t j = 1; j < n; j++)
    if ((c[j] & 0xc0) != 0x80) return 0;
  return 1;
}

static const char hexdig[] = "0123456789abcdef";

static size_t put_byte(char *o, unsigned char b) {
  o[0] = '\\'; o[1] = 'x'; o[2] = hexdig[b >> 4]; o[3] = hexdig[b & 15];
  return 4;
}

size_t mh_text_cut(const char *s, size_t max) {
  size_t j = max;
  unsigned c;
  while (j > 0 && max - j < 3 && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
  c = (unsigned char)s[j];
  if (j == max || c < 0xc0) return max;            /* s[max] starts a character, or is a stray byte */
  return j + (c >= 0xf0 ? 4u : c >= 0xe0 ? 3u : 2u) > max ? j : max;
}

size_t mh_text_visible(const char *s, size_t n, int flags, char *out, size_t *used) {
  const unsigned char *c = (const unsigned char *)s;
  size_t i = 0, o = 0;
  while (i < n) {
    size_t a = ascii_len(s + i, n - i), k;
    uint32_t cp = 0;
    if (flags & MH_TEXT_BACKSLASH) {   /* the printable run, up to a backslash */
      const char *bs = memchr(s + i, '\\', a);
      if (bs) a = (size_t)(bs - (s + i));
    }
    memcpy(out + o, s + i, a);
    o += a;
    i += a;
    if (i >= n) break;
    if (c[i] == '\\' && (flags & MH_TEXT_BACKSLASH)) {   /* \x5C: as mailhook-drop -l records it */
      memcpy(out + o, "\\x5C", 4);
      o += 4;
      i++;
      continue;
    }
    k = utf8_char(c + i, n - i, &cp);
    if (k == 0) {
      if ((flags & MH_TEXT_PARTIAL) && cut_char(c + i, n - i)) break;
      o += put_byte(out + o, c[i++]);
    } else if (!unsafe(cp, flags & MH_TEXT_KEEP_LINES)) {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    } else if (cp < 0xa0) {   /* C0, DEL, C1: the bytes as they are written */
      for (size_t j = 0; j < k; j++) o += put_byte(out + o, c[i + j]);
      i += k;
    } else {                  /* marks, overrides, isolates, separators */
      out[o++] = '\\'; out[o++] = 'u';
      for (int sh = 12; sh >= 0; sh -= 4) out[o++] = hexdig[(cp >> sh) & 15];
      i += k;
    }
  }
  if (used) *used = i;
  return o;
}
