/*
** tls.c — the TLS client of the SMTP engine: OpenSSL with two memory BIOs
** (network bytes in, network bytes out), so the owner moves bytes on the loop
** and nothing here ever blocks.  See tls.h.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include "tls.h"
#include "error.h"
#include "fsutil.h"
#include "text.h"

struct mh_tls {
  SSL *ssl;              /* holds a reference to the shared SSL_CTX (ctx_get) */
  BIO *in;               /* bytes from the server, written by mh_tls_feed */
  BIO *out;              /* bytes for the server, read by mh_tls_take */
  int verify;            /* chain + host name must verify */
  char pin[65];          /* sha256 hex, lower case, no colons; "" = no pin */
  int checked;           /* mh_tls_check passed */
  char verify_result[160];
  char err[300];         /* the last failure, for the administrator */
  int why;               /* MH_TLS_WHY_* of the last failure: what a caller acts on */
  int reason;            /* ERR_GET_REASON of OpenSSL's error behind it, 0 none */
};

const char *mh_tls_error(const mh_tls *t) { return t->err; }

/* The OpenSSL reasons a caller acts on, by code (never by their text): no TLS
** version in common, said by the server's alert or found in its ServerHello.
** The names are ours, stable, and shown to the administrator. */
static const struct { int reason; const char *name; } known[] = {
  { SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, "alert protocol version" },
  { SSL_R_UNSUPPORTED_PROTOCOL, "unsupported protocol" },
  { SSL_R_NO_PROTOCOLS_AVAILABLE, "no protocols available" },
};

static const char *reason_name(int reason) {
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (known[i].reason == reason) return known[i].name;
  return "";
}

/* OpenSSL's queued errors as one message (after a prefix), and the first
** one's reason as a code (t->reason, t->why). */
static void ssl_err(mh_tls *t, const char *what) {
  unsigned long e = ERR_get_error();
  char buf[200] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  snprintf(t->err, sizeof t->err, "%s%s%s", what, *buf ? ": " : "", buf);
  t->reason = e && ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
  t->why = *reason_name(t->reason) ? MH_TLS_WHY_VERSION : MH_TLS_WHY_OTHER;
}

/* The one mapping from SSL_get_error to what the owner must do. */
static int want(mh_tls *t, int ret, const char *what) {
  switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ: return MH_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return MH_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
      snprintf(t->err, sizeof t->err, "TLS closed by the server");
      t->why = MH_TLS_WHY_CLOSED;
      return MH_EEOF;
    default: ssl_err(t, what); return MH_ETLS;
  }
}

static int parse_version(const char *v) {
  if (!v || !*v || strcmp(v, "1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "1.3") == 0) return TLS1_3_VERSION;
  if (strcmp(v, "1.1") == 0) return TLS1_1_VERSION;
  if (strcmp(v, "1.0") == 0) return TLS1_VERSION;
  return -1;
}

/* Normalises a pin ("AB:cd:..." or "abcd...") to 64 lower-case hex digits; 0 ok, -1 bad. */
static int norm_pin(const char *in, char out[65]) {
  size_t n = 0;
  for (const char *p = in; *p; p++) {
    if (*p == ':' || *p == ' ') continue;
    if (!isxdigit((unsigned char)*p) || n >= 64) return -1;
    out[n++] = (char)tolower((unsigned char)*p);
  }
  out[n] = '\0';
  return n == 64 ? 0 : -1;
}

/* Adds the PEM certificates (and CRLs) of the file at path to store.  The
** file is read through mh_fsutil_read (a regular file, at most MH_LIMIT_CA;
** a link is followed: an administrator named it), never by OpenSSL's own
** fopen, which would block on a FIFO or read /dev/zero without end.  The
** count of certificates (> 0), or a negative code with err saying why. */
static int load_ca(X509_STORE *store, const char *path, char *err, size_t errlen) {
  char *buf = NULL;
  size_t len = 0;
  struct stat st;
  int n = 0, rc = mh_fsutil_read(AT_FDCWD, path, MH_FS_FOLLOW, MH_LIMIT_CA, &buf, &len, &st);
  if (rc < 0) {
    mh_fsutil_why(err, errlen, "tls_ca_file", path, rc, &st, MH_LIMIT_CA);
    return rc;
  }
  BIO *b = BIO_new_mem_buf(buf, (int)len);
  STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
  for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
    X509_INFO *xi = sk_X509_INFO_value(infos, i);
    if (xi->x509 && X509_STORE_add_cert(store, xi->x509) == 1) n++;
    if (xi->crl) X509_STORE_add_crl(store, xi->crl);
  }
  if (infos) sk_X509_INFO_pop_free(infos, X509_INFO_free);
  BIO_free(b);
  free(buf);
  ERR_clear_error();
  if (n == 0) {
    snprintf(err, errlen, "tls_ca_file %s: no PEM certificate in it (-----BEGIN CERTIFICATE-----)", path);
    return MH_EINVAL;
  }
  return n;
}

int mh_tls_check_ca_file(const char *path, char *err, size_t errlen) {
  X509_STORE *store = X509_STORE_new();
  if (!store) { snprintf(err, errlen, "out of memory"); return MH_ENOMEM; }
  int rc = load_ca(store, path, err, errlen);
  X509_STORE_free(store);
  return rc;
}

/* ------------------------------------------------------- the context */

/* Identity of a file behind a trust store: a replaced or edited file is
** another one (an absent file is all zero). */
typedef struct { dev_t dev; ino_t ino; off_t size; struct timespec mtime, ctime; } file_id;

static void file_id_of(const char *path, file_id *id) {
  struct stat st;
  memset(id, 0, sizeof *id);
  if (!path || !*path || stat(path, &st) != 0) return;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  id->size = st.st_size;
  id->mtime = st.st_mtim;
  id->ctime = st.st_ctim;
}

/* The SSL_CTX of the current settings, shared by every connection made with
** them: its trust store (the system's ~140 certificates, the tls_ca_file) is
** loaded once per settings generation, not per connection.  A generation is
** what the context is built from — tls_min_version, tls_ca_file — and the
** files themselves: the CA file and the system bundle (SSL_CERT_FILE or
** OpenSSL's default), so a new bundle or an edited CA file is read at the next
** connection, as a new setting is.  The connections of the previous generation
** keep theirs (each SSL holds a reference).  Host name, pin and verification
** are per connection (on the SSL, or decided in mh_tls_check).  Guarded: two
** Lua states may connect from two threads. */
static struct {
  pthread_mutex_t lock;
  SSL_CTX *ctx;          /* NULL until the first connection */
  int minv;
  char ca_file[1024];
  file_id ca, sys;
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const char *system_bundle(void) {
  const char *f = getenv(X509_get_default_cert_file_env());
  return f && *f ? f : X509_get_default_cert_file();
}

static SSL_CTX *ctx_build(int minv, const char *ca_file, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) { snprintf(err, errlen, "TLS: cannot create a context"); return NULL; }
  SSL_CTX_set_min_proto_version(ctx, minv);
  if (minv < TLS1_2_VERSION) {
    /* OpenSSL 3 refuses TLS 1.0/1.1 at the default security level: asked for explicitly */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  }
  /* verification is decided in mh_tls_check, after the handshake and before any data */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (SSL_CTX_set_default_verify_paths(ctx) != 1) ERR_clear_error();
  if (*ca_file && load_ca(SSL_CTX_get_cert_store(ctx), ca_file, err, errlen) < 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  /* A certificate the administrator put in tls_ca_file is trusted as it is: an
  ** intermediate CA (a company's issuing CA, the one its PKI team hands out) or
  ** the server's own certificate ends the chain there, as msmtp's tls_trust_file
  ** does (GnuTLS).  Without the flag OpenSSL wanted a self-signed root: the
  ** issuing CA given read "unable to get issuer certificate", and the hint said to
  ** give the issuing CA.  The host name, dates and purpose are still checked. */
  if (*ca_file) X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
  return ctx;
}

/* A reference to the context for (minv, ca_file), built when the generation
** changed; NULL with err set when it cannot be (a bad CA file). */
static SSL_CTX *ctx_get(int minv, const char *ca_file, char *err, size_t errlen) {
  file_id ca, sys;
  SSL_CTX *ctx;
  ca_file = ca_file ? ca_file : "";
  file_id_of(ca_file, &ca);
  file_id_of(system_bundle(), &sys);
  pthread_mutex_lock(&cache.lock);
  if (!cache.ctx || cache.minv != minv || strcmp(cache.ca_file, ca_file) != 0 ||
      memcmp(&cache.ca, &ca, sizeof ca) != 0 || memcmp(&cache.sys, &sys, sizeof sys) != 0) {
    if (strlen(ca_file) >= sizeof cache.ca_file) {
      pthread_mutex_unlock(&cache.lock);
      snprintf(err, errlen, "tls_ca_file: path too long");
      return NULL;
    }
    if (!(ctx = ctx_build(minv, ca_file, err, errlen))) {
      pthread_mutex_unlock(&cache.lock);
      return NULL;
    }
    SSL_CTX_free(cache.ctx);   /* the previous generation's connections keep theirs */
    cache.ctx = ctx;
    cache.minv = minv;
    snprintf(cache.ca_file, sizeof cache.ca_file, "%s", ca_file);
    cache.ca = ca;
    cache.sys = sys;
  }
  ctx = cache.ctx;
  SSL_CTX_up_ref(ctx);
  pthread_mutex_unlock(&cache.lock);
  return ctx;
}

/* ------------------------------------------------------- connections */

mh_tls *mh_tls_new(const mh_tls_params *p, char *err, size_t errlen) {
  mh_tls *t = (mh_tls *)calloc(1, sizeof *t);
  int minv = parse_version(p->min_version);
  unsigned char a[16];
  SSL_CTX *ctx = NULL;
  if (!t) { snprintf(err, errlen, "out of memory"); return NULL; }
  if (minv < 0) { snprintf(err, errlen, "tls_min_version must be 1.0, 1.1, 1.2 or 1.3"); goto fail; }
  if (p->fingerprint && *p->fingerprint && norm_pin(p->fingerprint, t->pin) < 0) {
    snprintf(err, errlen, "tls_fingerprint must be a sha256 digest: 64 hex digits (colons allowed)");
    goto fail;
  }
  t->verify = p->verify;
  if (!(ctx = ctx_get(minv, p->ca_file, err, errlen))) goto fail;
  t->ssl = SSL_new(ctx);
  SSL_CTX_free(ctx);     /* the SSL holds its own reference */
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->in || !t->out) { snprintf(err, errlen, "TLS: out of memory"); goto fail; }
  BIO_set_mem_eof_return(t->in, -1);   /* empty = "want more", not end of file */
  SSL_set_bio(t->ssl, t->in, t->out);
  SSL_set_connect_state(t->ssl);
  if (p->host && *p->host) {
    if (inet_pton(AF_INET, p->host, a) == 1 || inet_pton(AF_INET6, p->host, a) == 1) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), p->host);   /* no SNI for an address */
    } else {
      SSL_set_tlsext_host_name(t->ssl, p->host);
      SSL_set1_host(t->ssl, p->host);
    }
  }
  return t;
fail:
  if (t->ssl) SSL_free(t->ssl);
  else { BIO_free(t->in); BIO_free(t->out); }
  free(t);
  return NULL;
}

void mh_tls_free(mh_tls *t) {
  if (!t) return;
  SSL_free(t->ssl);      /* frees both BIOs and its reference to the context */
  free(t);
}

int mh_tls_feed(mh_tls *t, const char *buf, size_t len) {
  if (len && BIO_write(t->in, buf, (int)len) != (int)len) return MH_ENOMEM;
  return 0;
}

size_t mh_tls_pending(mh_tls *t) { return (size_t)BIO_ctrl_pending(t->out); }

size_t mh_tls_take(mh_tls *t, char *buf, size_t cap) {
  int n = BIO_read(t->out, buf, (int)cap);
  return n > 0 ? (size_t)n : 0;
}

int mh_tls_handshake(mh_tls *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) return MH_TLS_OK;
  r = want(t, r, "TLS handshake failed");
  if (r == MH_TLS_WANT_WRITE) r = MH_TLS_WANT_READ;  /* memory BIO: output is always taken */
  return r == MH_EEOF ? MH_ETLS : r;
}

static void hex_digest(X509 *cert, char *out, size_t cap, int colons) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  size_t o = 0;
  out[0] = '\0';
  if (!X509_digest(cert, EVP_sha256(), md, &n)) return;
  for (unsigned i = 0; i < n && o + (colons ? 3 : 2) < cap; i++)
    o += (size_t)snprintf(out + o, cap - o, colons && i ? ":%02X" : (colons ? "%02X" : "%02x"), md[i]);
}

int mh_tls_check(mh_tls *t) {
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
  long vr;
  if (!cert) {
    snprintf(t->verify_result, sizeof t->verify_result, "no certificate");
    snprintf(t->err, sizeof t->err, "the server sent no certificate");
    t->why = MH_TLS_WHY_CERT;
    return MH_ECERT;
  }
  vr = SSL_get_verify_result(t->ssl);
  snprintf(t->verify_result, sizeof t->verify_result, "%s",
           vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr));
  if (t->pin[0]) {
    char got[65];
    hex_digest(cert, got, sizeof got, 0);
    X509_free(cert);
    if (strcmp(got, t->pin) != 0) {
      snprintf(t->err, sizeof t->err, "certificate sha256 fingerprint %s does not match tls_fingerprint", got);
      snprintf(t->verify_result, sizeof t->verify_result, "fingerprint mismatch");
      t->why = MH_TLS_WHY_CERT;
      return MH_ECERT;
    }
    snprintf(t->verify_result, sizeof t->verify_result, "fingerprint pinned (matches)");
    t->checked = 1;
    return 0;
  }
  X509_free(cert);
  if (t->verify && vr != X509_V_OK) {
    snprintf(t->err, sizeof t->err, "certificate verification failed: %s", X509_verify_cert_error_string(vr));
    t->why = MH_TLS_WHY_CERT;
    return MH_ECERT;
  }
  if (!t->verify) snprintf(t->verify_result, sizeof t->verify_result, "not verified (tls_verify=false)%s%s",
                           vr == X509_V_OK ? "" : ": ", vr == X509_V_OK ? "" : X509_verify_cert_error_string(vr));
  t->checked = 1;
  return 0;
}

int mh_tls_read(mh_tls *t, char *buf, size_t cap) {
  int n = SSL_read(t->ssl, buf, (int)cap);
  if (n > 0) return n;
  n = want(t, n, "TLS read failed");
  return n == MH_TLS_WANT_READ || n == MH_TLS_WANT_WRITE ? 0 : n;
}

int mh_tls_write(mh_tls *t, const char *buf, size_t len) {
  if (len == 0) return 0;
  int n = SSL_write(t->ssl, buf, (int)len);
  if (n == (int)len) return 0;
  n = want(t, n, "TLS write failed");
  return n < 0 ? n : MH_ETLS;
}

static void name_str(X509_NAME *nm, char *out, size_t cap) {
  BIO *b = BIO_new(BIO_s_mem());
  int n;
  out[0] = '\0';
  if (!b) return;
  X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  n = BIO_read(b, out, (int)cap - 1);
  /* RFC 2253 escapes the C0 controls, but the names are the server's: a C1
     control (U+009B, CSI), a direction override, a name cut mid-character
     go to a terminal and a page (text.h) */
  out[mh_text_shown(out, n > 0 ? (size_t)n : 0, 0)] = '\0';
  BIO_free(b);
}

/* Appends one name to out ("a, b"), control and non-ASCII bytes as '?' (the
** names come from the server, and go to a terminal and a web page); "..." and
** nothing more once it does not fit. */
static void names_add(char *out, size_t cap, int *cut, const unsigned char *p, size_t n) {
  size_t len = strlen(out), need = n + (len ? 2 : 0);
  /* (cut: a flag, not a look at out's end: a name of the server's may end
     in "...", and the names after it were dropped) */
  if (*cut) return;
  if (len + need + 4 > cap) {   /* room kept for "..." */
    if (len + 4 <= cap) memcpy(out + len, "...", 4);
    *cut = 1;
    return;
  }
  if (len) { memcpy(out + len, ", ", 2); len += 2; }
  for (size_t i = 0; i < n; i++) out[len++] = (p[i] > 32 && p[i] < 127) ? (char)p[i] : '?';
  out[len] = '\0';
}

/* The certificate's subjectAltName DNS names and IP addresses into out. */
static void alt_names(X509 *cert, char *out, size_t cap) {
  GENERAL_NAMES *gens = (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int cut = 0;
  out[0] = '\0';
  if (!gens) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      names_add(out, cap, &cut, ASN1_STRING_get0_data(g->d.dNSName), (size_t)ASN1_STRING_length(g->d.dNSName));
    } else if (g->type == GEN_IPADD) {
      char a[INET6_ADDRSTRLEN];
      int n = ASN1_STRING_length(g->d.iPAddress);
      if ((n == 4 || n == 16) &&
          inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), a, sizeof a))
        names_add(out, cap, &cut, (const unsigned char *)a, strlen(a));
    }
  }
  GENERAL_NAMES_free(gens);
}

void mh_tls_get_info(mh_tls *t, mh_tls_info *o) {
  X509 *cert;
  memset(o, 0, sizeof *o);
  snprintf(o->version, sizeof o->version, "%s", SSL_get_version(t->ssl));
  snprintf(o->cipher, sizeof o->cipher, "%s", SSL_get_cipher_name(t->ssl) ? SSL_get_cipher_name(t->ssl) : "");
  o->verified = t->checked && (t->verify || t->pin[0]);   /* tls_verify = false: passed, not verified */
  snprintf(o->verify_result, sizeof o->verify_result, "%s", t->verify_result);
  o->why = t->why;
  o->reason = t->reason;
  o->reason_name = reason_name(t->reason);
  cert = SSL_get1_peer_certificate(t->ssl);
  if (!cert) return;
  name_str(X509_get_subject_name(cert), o->subject, sizeof o->subject);
  alt_names(cert, o->names, sizeof o->names);
  name_str(X509_get_issuer_name(cert), o->issuer, sizeof o->issuer);
  {
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
      strftime(o->not_after, sizeof o->not_after, "%Y-%m-%d %H:%M:%S UTC", &tm);
  }
  hex_digest(cert, o->fingerprint, sizeof o->fingerprint, 1);
  X509_free(cert);
}
