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

int main(void) {
  test_roundtrip();
  test_refused();
  test_random();
  return done_testing();
}
