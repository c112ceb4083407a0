/*
** tls_load.c — tls.h for the mailhook binary: the TLS client (tls.c and the
** shared OpenSSL it links) lives in a module, BUILD/mailhook-tls.so or
** PREFIX/lib/mailhook/mailhook-tls.so, loaded the first time a connection
** needs TLS.
**
** Why: Debian builds libssl and libcrypto with BIND_NOW, so merely linking
** them makes the dynamic loader resolve their ~4,000 symbol relocations (and
** 22,000 relative ones) at every start: 4.3 M of the 5.3 M instructions of
** `mailhook -e ''` (callgrind, Debian 12), three times what all of Lua's
** start costs.  `hook`, `enqueue` and `sendmail` only write the spool and
** never use TLS; `run`, `flush` and `test` load the module once, on their
** first TLS session, and pay that cost then.  OpenSSL stays a shared library
** (Debian policy: a security update reaches mailhook without a rebuild).
** docs/perf-hook.md has the figures.
**
** The module is tls.c itself, compiled position-independent; this file only
** forwards.  libmhcore.a and libmailhook.a (unit tests, fuzzers, embedders)
** hold tls.c directly and never use this file.
*/
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "tls.h"
#include "pwhash.h"
#include "error.h"

/* The module's functions, resolved once; NULL until loaded. */
static struct {
  mh_tls *(*new_)(const mh_tls_params *, char *, size_t);
  void (*free_)(mh_tls *);
  int (*feed)(mh_tls *, const char *, size_t);
  size_t (*take)(mh_tls *, char *, size_t);
  size_t (*pending)(mh_tls *);
  int (*handshake)(mh_tls *);
  int (*check)(mh_tls *);
  int (*read)(mh_tls *, char *, size_t);
  int (*write)(mh_tls *, const char *, size_t);
  const char *(*error)(const mh_tls *);
  void (*get_info)(mh_tls *, mh_tls_info *);
  int (*check_ca_file)(const char *, char *, size_t);
  /* pwhash.c, in the same module for the same reason (scrypt, RAND_bytes, HMAC-MD5) */
  int (*pw_make)(const char *, size_t, char *, size_t);
  int (*pw_check)(const char *, size_t, const char *);
  int (*pw_valid)(const char *);
  int (*random_hex)(char *, size_t);
  int (*ct_equal_str)(const void *, size_t, const void *, size_t);
  int (*hmac_md5)(const void *, size_t, const void *, size_t, unsigned char *);
} fn;
static char load_err[PATH_MAX + 400];  /* why the module could not be loaded ("" once loaded) */
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define MODULE "mailhook-tls.so"

/* Tries one candidate path; 0 when the module is loaded and every symbol found. */
static int try_load(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    if (access(path, F_OK) == 0)   /* there but unusable (libssl missing?): say why */
      snprintf(load_err, sizeof load_err, "cannot load the TLS module %s: %s", path, dlerror());
    return -1;
  }
#define SYM(field, name)                                                   \
  if (!(*(void **)&fn.field = dlsym(h, name))) {                           \
    snprintf(load_err, sizeof load_err, "the TLS module %s lacks %s", path, name); \
    memset(&fn, 0, sizeof fn);                                             \
    return -1;                                                             \
  }
  SYM(new_, "mh_tls_new") SYM(free_, "mh_tls_free") SYM(feed, "mh_tls_feed")
  SYM(take, "mh_tls_take") SYM(pending, "mh_tls_pending") SYM(handshake, "mh_tls_handshake")
  SYM(check, "mh_tls_check") SYM(read, "mh_tls_read") SYM(write, "mh_tls_write")
  SYM(error, "mh_tls_error") SYM(get_info, "mh_tls_get_info") SYM(check_ca_file, "mh_tls_check_ca_file")
  SYM(pw_make, "mh_pwhash_make") SYM(pw_check, "mh_pwhash_check") SYM(pw_valid, "mh_pwhash_valid")
  SYM(random_hex, "mh_random_hex") SYM(ct_equal_str, "mh_ct_equal_str") SYM(hmac_md5, "mh_hmac_md5")
#undef SYM
  load_err[0] = 0;
  return 0;
}

/* Where the module is, relative to the binary as everything else it finds:
** beside it (the build tree: BUILD/mailhook, BUILD/mailhook-tls.so), then
** ../lib/mailhook (an install, however PREFIX or DESTDIR moved it), then the
** PREFIX it was built for. */
static void load(void) {
  char exe[PATH_MAX], path[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  snprintf(load_err, sizeof load_err, "the TLS module %s was not found beside the binary, "
           "in ../lib/mailhook, or in %s/lib/mailhook (make; make install)", MODULE, MH_PREFIX);
  if (n > 0) {
    char *slash;
    exe[n] = 0;
    if ((slash = strrchr(exe, '/'))) {
      *slash = 0;
      snprintf(path, sizeof path, "%s/%s", exe, MODULE);
      if (try_load(path) == 0) return;
      snprintf(path, sizeof path, "%s/../lib/mailhook/%s", exe, MODULE);
      if (try_load(path) == 0) return;
    }
  }
  snprintf(path, sizeof path, "%s/lib/mailhook/%s", MH_PREFIX, MODULE);
  try_load(path);
}

mh_tls *mh_tls_new(const mh_tls_params *p, char *err, size_t errlen) {
  pthread_once(&once, load);
  if (!fn.new_) {
    snprintf(err, errlen, "%s", load_err);
    return NULL;
  }
  return fn.new_(p, err, errlen);
}

/* `update tls_ca_file=` checks the file is PEM the way the TLS client will read it. */
int mh_tls_check_ca_file(const char *path, char *err, size_t errlen) {
  pthread_once(&once, load);
  if (!fn.check_ca_file) {
    snprintf(err, errlen, "%s", load_err);
    return MH_EINVAL;
  }
  return fn.check_ca_file(path, err, errlen);
}

/* Every other call takes an mh_tls that mh_tls_new made, so the module is loaded. */
void mh_tls_free(mh_tls *t) { if (t && fn.free_) fn.free_(t); }
int mh_tls_feed(mh_tls *t, const char *buf, size_t len) { return fn.feed(t, buf, len); }
size_t mh_tls_take(mh_tls *t, char *buf, size_t cap) { return fn.take(t, buf, cap); }
size_t mh_tls_pending(mh_tls *t) { return fn.pending(t); }
int mh_tls_handshake(mh_tls *t) { return fn.handshake(t); }
int mh_tls_check(mh_tls *t) { return fn.check(t); }
int mh_tls_read(mh_tls *t, char *buf, size_t cap) { return fn.read(t, buf, cap); }
int mh_tls_write(mh_tls *t, const char *buf, size_t len) { return fn.write(t, buf, len); }
const char *mh_tls_error(const mh_tls *t) { return fn.error(t); }
void mh_tls_get_info(mh_tls *t, mh_tls_info *out) { fn.get_info(t, out); }

/* pwhash.h for the binary: the admin password's scrypt hash and the console's
** random tokens use OpenSSL too, so pwhash.c is in the same module, loaded on
** first use (`update admin_password=-`, a console login): never by `hook`. */
static const char *need_module(void) {
  pthread_once(&once, load);
  return fn.pw_make ? NULL : load_err;
}

const char *mh_pwhash_unavailable(void) { return need_module(); }

int mh_pwhash_make(const char *pw, size_t pwlen, char *out, size_t outlen) {
  if (need_module()) return MH_EINVAL;
  return fn.pw_make(pw, pwlen, out, outlen);
}

int mh_pwhash_check(const char *pw, size_t pwlen, const char *stored) {
  if (need_module()) return MH_EINVAL;
  return fn.pw_check(pw, pwlen, stored);
}

int mh_pwhash_valid(const char *s) {
  if (need_module()) return 0;
  return fn.pw_valid(s);
}

int mh_random_hex(char *out, size_t n) {
  if (need_module()) return MH_EINVAL;
  return fn.random_hex(out, n);
}

/* SHA-256 of both sides (OpenSSL, so the module); without it nothing is equal. */
int mh_ct_equal_str(const void *given, size_t glen, const void *secret, size_t slen) {
  if (need_module()) return 0;
  return fn.ct_equal_str(given, glen, secret, slen);
}

/* AUTH CRAM-MD5 (smtp.c): the module is loaded by the first login that uses it,
** on a plain session too. */
int mh_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen, unsigned char out[16]) {
  if (need_module()) return MH_EINVAL;
  return fn.hmac_md5(key, keylen, msg, msglen, out);
}

/* No OpenSSL needed: every byte is compared whatever the others are. */
int mh_ct_equal(const void *a, const void *b, size_t len) {
  const volatile unsigned char *x = a, *y = b;
  unsigned char d = 0;
  for (size_t i = 0; i < len; i++) d |= (unsigned char)(x[i] ^ y[i]);
  return d == 0;
}
