/*
** test-pwhash.c — the console's password hashes (runtime/pwhash.c): a hash
** checks its own password and no other, every hash has its own salt, a
** stored string that is not one (or asks for weaker or huge parameters) is
** refused, random tokens are hex and differ, the comparison is exact.
*/
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "error.h"
#include "pwhash.h"
#include "b64.h"

static void test_roundtrip(void) {
  char a[MH_PWHASH_LEN], b[MH_PWHASH_LEN];
  is_int(mh_pwhash_make("correct horse", 13, a, sizeof a), 0, "make");
  ok(!strncmp(a, "$scrypt$ln=15,r=8,p=1$", 22), "PHC form with its parameters: %s", a);
  ok(mh_pwhash_valid(a), "valid");
  is_int(mh_pwhash_check("correct horse", 13, a), 1, "the password matches");
  is_int(mh_pwhash_check("correct horsE", 13, a), 0, "one letter off does not");
  is_int(mh_pwhash_check("correct horse ", 14, a), 0, "nor a trailing space");
  is_int(mh_pwhash_check("", 0, a), 0, "nor the empty password");
  is_int(mh_pwhash_make("correct horse", 13, b, sizeof b), 0, "make again");
  ok(strcmp(a, b) != 0, "a new salt each time: the same password gives another hash");
  is_int(mh_pwhash_check("correct horse", 13, b), 1, "and it checks too");
  /* a NUL inside is part of the password (lengths, not C strings) */
  is_int(mh_pwhash_make("a\0b", 3, a, sizeof a), 0, "a password with a NUL");
  is_int(mh_pwhash_check("a\0c", 3, a), 0, "differs after the NUL: no match");
  is_int(mh_pwhash_check("a\0b", 3, a), 1, "same bytes: match");
  is_int(mh_pwhash_make("x", 1, a, 20), MH_EINVAL, "a short output buffer is refused");
}

static void test_refused(void) {
  char h[MH_PWHASH_LEN], bad[200];
  const char *cases[] = {
    "", "secret", "$scrypt$", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* too weak */
    "$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* 128 GiB */
    "$scrypt$ln=15,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",                     /* short salt */
    "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",                                          /* short key */
    "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!",   /* not base64 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ok(!mh_pwhash_valid(cases[i]), "not a stored hash: '%s'", cases[i]);
    is_int(mh_pwhash_check("secret", 6, cases[i]), MH_EINVAL, "check says so (never a match)");
  }
  ok(!mh_pwhash_valid(NULL), "NULL is not a hash");
  /* a real hash with one character of its key changed: valid form, no match */
  mh_pwhash_make("secret", 6, h, sizeof h);
  strcpy(bad, h);
  bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
  ok(mh_pwhash_valid(bad), "a tampered hash still parses");
  is_int(mh_pwhash_check("secret", 6, bad), 0, "but does not match");
}

static void test_random(void) {
  char a[65], b[65];
  is_int(mh_random_hex(a, 32), 0, "32 random bytes");
  is_int((long)strlen(a), 64, "as 64 hex digits");
  ok(strspn(a, "0123456789abcdef") == 64, "lowercase hex only");
  mh_random_hex(b, 32);
  ok(strcmp(a, b) != 0, "two tokens differ");
  is_int(mh_random_hex(a, 65), MH_EINVAL, "more than 64 bytes at once is refused");
  ok(mh_ct_equal("abcdef", "abcdef", 6), "equal");
  ok(!mh_ct_equal("abcdef", "abcdeg", 6), "last byte differs");
  ok(!mh_ct_equal("abcdef", "Abcdef", 6), "first byte differs");
  ok(mh_ct_equal_str("token-abc", 9, "token-abc", 9), "equal strings");
  ok(!mh_ct_equal_str("token-ab", 8, "token-abc", 9), "a prefix is not equal");
  ok(!mh_ct_equal_str("token-abcd", 10, "token-abc", 9), "a longer string is not equal");
  ok(!mh_ct_equal_str("", 0, "token-abc", 9), "an empty string is not equal");
  ok(mh_ct_equal_str("", 0, "", 0), "two empty strings are");
}

/* HMAC-MD5 for AUTH CRAM-MD5: RFC 2202's test cases 2 and 6 (a key longer than
** the block, hashed first) and RFC 2195's example; and the strict base64 decoder
** its challenge goes through (b64.h). */
static void test_hmac_md5(void) {
  unsigned char mac[16], key[80], raw[64];
  char hex[33];
  static const struct { const char *key; size_t klen; const char *msg; const char *want; } v[] = {
    { "Jefe", 4, "what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738" },
    { NULL, 80, "Test Using Larger Than Block-Size Key - Hash Key First", "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
    { "tanstaaftanstaaf", 16, "<1896.697170952@postoffice.reston.mci.net>", "b913a602c7eda7a495b4e6e7334d3890" } };
  memset(key, 0xaa, sizeof key);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    is_int(mh_hmac_md5(v[i].key ? v[i].key : (const char *)key, v[i].klen, v[i].msg, strlen(v[i].msg), mac), 0,
           "hmac-md5 %zu", i);
    for (int k = 0; k < 16; k++) snprintf(hex + 2 * k, 3, "%02x", mac[k]);
    is_str(hex, v[i].want, "  its value");
  }
  is_int((int)mh_b64_decode(raw, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", 56), 42, "b64: 42 bytes");
  ok(memcmp(raw, "<1896.697170952@postoffice.reston.mci.net>", 42) == 0, "b64: the challenge");
  is_int((int)mh_b64_decode(raw, "QQ==", 4), 1, "b64: padded");
  is_int((int)mh_b64_decode(raw, "QUI", 3), 2, "b64: unpadded");
  is_int((int)mh_b64_decode(raw, "", 0), 0, "b64: empty");
  static const char *const bad[] = { "Q", "QQ=", "Q=Q=", "QQ==QQ==", "QQ QQ", "QQ\r\n", "===", "QQ*=" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    is_int((int)mh_b64_decode(raw, bad[i], strlen(bad[i])), -1, "b64: '%s' refused", bad[i]);
}

int main(void) {
  test_hmac_md5();
  test_roundtrip();
  test_refused();
  test_random();
  return done_testing();
}
