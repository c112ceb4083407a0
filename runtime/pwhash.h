/*
** pwhash.h — the console's secrets: the admin password stored only as a salted
** scrypt hash (OpenSSL's EVP_PBE_scrypt), random session tokens, and a
** comparison whose time does not depend on where two strings differ.
**
** The stored form is a PHC-style string:
**     $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
** (N = 2^ln).  The parameters travel with the hash, so they can be raised
** later without invalidating stored passwords.  A check costs ~32 MiB and some
** 50-100 ms of CPU: callers run it on the thread pool, never on the loop.
*/
#ifndef MH_PWHASH_H
#define MH_PWHASH_H

#include <stddef.h>

#define MH_PWHASH_LEN 128     /* enough for any string mh_pwhash_make writes */

/* Hashes pw with a fresh 16-byte salt into out (NUL-terminated).  0 or a
** negative code (MH_ENOMEM, MH_EINVAL when outlen is short). */
int mh_pwhash_make(const char *pw, size_t pwlen, char *out, size_t outlen);

/* 1 when pw matches stored, 0 when not, MH_EINVAL when stored is not a hash
** this module wrote (or its parameters are outside sane bounds). */
int mh_pwhash_check(const char *pw, size_t pwlen, const char *stored);

/* 1 when s has the stored form above with sane parameters, else 0. */
int mh_pwhash_valid(const char *s);

/* n random bytes from OpenSSL's CSPRNG as 2n lowercase hex digits + NUL
** (out holds 2n + 1).  0 or MH_EINVAL. */
int mh_random_hex(char *out, size_t n);

/* HMAC-MD5 (RFC 2104) of msg under key into out (16 bytes): the one
** computation of AUTH CRAM-MD5 (RFC 2195, runtime/smtp.c).  Here, beside the
** console's scrypt, as the other code that needs OpenSSL without TLS: in the
** binary it lives in the TLS module, loaded on first use (a plain session
** that logs in with CRAM-MD5 loads it then).  0, or MH_EINVAL when OpenSSL
** refuses (MD5 disabled, a FIPS provider) or the module cannot be loaded
** (mh_pwhash_unavailable says why). */
int mh_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen, unsigned char out[16]);

/* NULL when the functions above can work; otherwise why not (the binary's
** copy of them lives in the TLS module, runtime/tls_load.c: "cannot load the TLS
** module PATH: ..."), so a caller can say that instead of "invalid argument". */
const char *mh_pwhash_unavailable(void);

/* 1 when a and b (each len bytes) are equal; the time depends on len only. */
int mh_ct_equal(const void *a, const void *b, size_t len);

/* 1 when given (glen bytes) equals secret (slen bytes).  Both are hashed
** (SHA-256) and the digests compared in constant time: the time depends on the
** lengths only, and a wrong length takes as long as a wrong byte (a plain
** length check first would tell the secret's length).  0 on any failure. */
int mh_ct_equal_str(const void *given, size_t glen, const void *secret, size_t slen);

#endif
