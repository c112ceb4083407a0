/*
** test-buf.c — the growable buffer and base64 of the core (buf.h, b64.h):
** the RFC 4648 test vectors, appends of any length, and a secret wiped.
*/
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "buf.h"
#include "b64.h"
#include "error.h"

static void test_b64_vectors(void) {
  /* RFC 4648 §10 */
  static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
  static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
  for (int i = 0; i < 7; i++) {
    char o[16];
    size_t n = mh_b64_encode(o, in[i], strlen(in[i]));
    o[n] = '\0';
    is_str(o, out[i], "base64 of '%s'", in[i]);
    is_int(n, MH_B64_LEN(strlen(in[i])), "its length is MH_B64_LEN");
  }
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  mh_buf b = { 0 };
  is_int(mh_buf_b64(&b, all, 3), 0, "mh_buf_b64");
  is_str(b.data, "AAEC", "bytes 0 1 2");
  b.len = 0;
  mh_buf_b64(&b, all + 251, 5);
  is_str(b.data, "+/z9/v8=", "bytes 251..255 use + and /");
  mh_buf_free(&b);
}

static void test_buf(void) {
  mh_buf b = { 0 };
  ok(b.data == NULL && b.len == 0, "starts empty");
  is_int(mh_buf_add(&b, NULL, 0), 0, "an empty append");
  is_str(b.data, "", "and the buffer is an empty string");
  for (int i = 0; i < 1000; i++) mh_buf_adds(&b, "0123456789");
  is_int(b.len, 10000, "10000 bytes appended");
  ok(b.data[10000] == '\0' && b.cap > 10000, "NUL-terminated");
  b.len = 0;
  char big[6000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  is_int(mh_buf_printf(&b, "<%s>", big), 0, "printf of 6000 bytes");
  is_int(b.len, 6001, "whole");
  ok(b.data[0] == '<' && b.data[6000] == '>' && b.data[6001] == '\0', "as written");
  ok(!b.oom, "no failure recorded");
  mh_buf_wipe(&b);
  ok(b.data == NULL && b.len == 0 && b.cap == 0, "wiped and freed");
}

int main(void) {
  test_b64_vectors();
  test_buf();
  return done_testing();
}
