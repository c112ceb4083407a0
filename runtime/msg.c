/*
** msg.c — the message builder (see msg.h).
*/
#include <string.h>
#include "error.h"
#include "msg.h"

/* ------------------------------------------------------------ addresses */

/* RFC 5322 atext: the characters of a dot-atom besides the dots. */
static int is_atext(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A domain: dot-separated labels of letters, digits and inner hyphens (each
** 1..63, all ≤ 253), or an address literal [1.2.3.4] / [IPv6:...]. */
static int check_domain(const char *d, size_t n, const char **why) {
  if (n == 0) { *why = "empty domain"; return MH_EBADADDR; }
  if (d[0] == '[') {
    if (d[n - 1] != ']' || n < 3) { *why = "unterminated address literal"; return MH_EBADADDR; }
    for (size_t i = 1; i < n - 1; i++)
      if (!is_alnum((unsigned char)d[i]) && !strchr(".:", d[i])) {
        *why = "bad character in address literal";
        return MH_EBADADDR;
      }
    return 0;
  }
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

int mh_msg_check_addr(const char *a, size_t n, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *why = NULL;
  for (size_t i = 0; i < n; i++)
    if (a[i] == '\r' || a[i] == '\n' || a[i] == '\0') {
      *why = "CR, LF or NUL in address";
      return MH_EBADHDR;
    }
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
