/*
** pwhash.c — scrypt password hashes, random tokens and constant-time
** comparison for the console (see pwhash.h).  OpenSSL does the cryptography;
** this file only formats and parses the stored string.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "error.h"
#include "pwhash.h"

#define SALT_LEN 16
#define KEY_LEN 32
/* 2^15 x 8 x 128 bytes = 32 MiB per check: what OWASP suggests for scrypt. */
#define DEF_LN 15
#define DEF_R 8
#define DEF_P 1
/* Bounds a stored string may ask for: never weaker than 2^14, never a memory
** or time cost that could be used against the service. */
#define MIN_LN 14
#define MAX_LN 20
#define MAX_R 16
#define MAX_P 4

/* base64 without padding (PHC) of n bytes; returns the length written. */
static size_t b64(char *out, const unsigned char *in, size_t n) {
  int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
  while (len > 0 && out[len - 1] == '=') out[--len] = 0;
  return (size_t)len;
}

/* Decodes unpadded base64 of exactly want bytes; 0 or -1. */
static int unb64(unsigned char *out, size_t want, const char *in, size_t n) {
  char buf[128];
  unsigned char tmp[96];
  size_t padded = (n + 3) / 4 * 4;
  int len;
  if (n == 0 || padded >= sizeof buf || want > sizeof tmp) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return -1;
  }
  memcpy(buf, in, n);
  memset(buf + n, '=', padded - n);
  buf[padded] = 0;
  len = EVP_DecodeBlock(tmp, (unsigned char *)buf, (int)padded);
  if (len < 0) return -1;
  len -= (int)(padded - n);            /* EVP_DecodeBlock counts the padding as zero bytes */
  if (len != (int)want) return -1;
  memcpy(out, tmp, want);
  return 0;
}

/* RAND_bytes and scrypt give the calling thread its own random generators and
** error queue, freed by OpenSSL when the thread ends.  make and check run on libuv's worker threads, which are
** never joined, and OpenSSL is in a dlopened module (runtime/tls_load.c), whose
** thread-local slots LeakSanitizer does not see: each worker's generators were
** reported leaked at exit.  Freeing them after each call costs a reseed (a few
** microseconds) beside an scrypt of 50-100 ms.  (ERR_set_mark inside scrypt
** allocates the error queue even when nothing fails.) */
static void thread_done(void) { OPENSSL_thread_stop(); }

static int derive(const char *pw, size_t pwlen, const unsigned char *salt, int ln, int r, int p,
                  unsigned char *key) {
  uint64_t N = (uint64_t)1 << ln;
  uint64_t maxmem = 128 * (uint64_t)r * (N + (uint64_t)p + 2) + (1 << 20);
  if (EVP_PBE_scrypt(pw, pwlen, salt, SALT_LEN, N, (uint64_t)r, (uint64_t)p, maxmem, key, KEY_LEN) != 1)
    return MH_ENOMEM;
  return 0;
}

int mh_pwhash_make(const char *pw, size_t pwlen, char *out, size_t outlen) {
  unsigned char salt[SALT_LEN], key[KEY_LEN];
  char s64[40], k64[64];
  int rc;
  if (outlen < MH_PWHASH_LEN) return MH_EINVAL;
  if (RAND_bytes(salt, sizeof salt) != 1) { thread_done(); return MH_EINVAL; }
  rc = derive(pw, pwlen, salt, DEF_LN, DEF_R, DEF_P, key);
  thread_done();
  if (rc < 0) return rc;
  b64(s64, salt, sizeof salt);
  b64(k64, key, sizeof key);
  OPENSSL_cleanse(key, sizeof key);
  snprintf(out, outlen, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", DEF_LN, DEF_R, DEF_P, s64, k64);
  return 0;
}

/* Parses stored into its parameters; 0 or -1. */
static int parse(const char *s, int *ln, int *r, int *p, unsigned char *salt, unsigned char *key) {
  int used = 0;
  const char *salt_at, *key_at;
  if (strncmp(s, "$scrypt$", 8)) return -1;
  if (sscanf(s + 8, "ln=%d,r=%d,p=%d$%n", ln, r, p, &used) != 3 || used == 0) return -1;
  if (*ln < MIN_LN || *ln > MAX_LN || *r < 1 || *r > MAX_R || *p < 1 || *p > MAX_P) return -1;
  salt_at = s + 8 + used;
  if (!(key_at = strchr(salt_at, '$'))) return -1;
  if (unb64(salt, SALT_LEN, salt_at, (size_t)(key_at - salt_at)) < 0) return -1;
  key_at++;
  if (unb64(key, KEY_LEN, key_at, strlen(key_at)) < 0) return -1;
  return 0;
}

int mh_pwhash_valid(const char *s) {
  int ln, r, p;
  unsigned char salt[SALT_LEN], key[KEY_LEN];
  return s && parse(s, &ln, &r, &p, salt, key) == 0;
}

int mh_pwhash_check(const char *pw, size_t pwlen, const char *stored) {
  int ln, r, p, rc;
  unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
  if (!stored || parse(stored, &ln, &r, &p, salt, want) < 0) return MH_EINVAL;
  rc = derive(pw, pwlen, salt, ln, r, p, got);
  thread_done();
  if (rc < 0) return rc;
  rc = CRYPTO_memcmp(got, want, KEY_LEN) == 0;
  OPENSSL_cleanse(got, sizeof got);
  return rc;
}

int mh_random_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  unsigned char buf[64];
  if (n > sizeof buf || RAND_bytes(buf, (int)n) != 1) return MH_EINVAL;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[buf[i] >> 4];
    out[2 * i + 1] = hex[buf[i] & 15];
  }
  out[2 * n] = 0;
  return 0;
}

int mh_ct_equal(const void *a, const void *b, size_t len) {
  return CRYPTO_memcmp(a, b, len) == 0;
}

int mh_ct_equal_str(const void *given, size_t glen, const void *secret, size_t slen) {
  unsigned char dg[32], ds[32];
  unsigned int n1 = 0, n2 = 0;
  if (EVP_Digest(given, glen, dg, &n1, EVP_sha256(), NULL) != 1 ||
      EVP_Digest(secret, slen, ds, &n2, EVP_sha256(), NULL) != 1 || n1 != 32 || n2 != 32)
    return 0;
  return (CRYPTO_memcmp(dg, ds, 32) == 0) & (glen == slen);
}

/* EVP_Q_mac: OpenSSL 3's one-shot MAC (HMAC_CTX is deprecated there). */
int mh_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen, unsigned char out[16]) {
  size_t n = 0;
  static const unsigned char none = 0;
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, keylen ? key : &none, keylen, msg, msglen, out, 16, &n) ||
      n != 16)
    return MH_EINVAL;
  return 0;
}

/* Linked with OpenSSL here: always usable. */
const char *mh_pwhash_unavailable(void) { return NULL; }
