/*
** tls.h — a TLS client over OpenSSL memory BIOs, so TLS never blocks and
** stays on the libuv loop: the owner feeds the bytes read from the socket in
** (mh_tls_feed), takes the bytes to write out (mh_tls_take), and exchanges
** plain text with mh_tls_read / mh_tls_write.
**
** Verification happens after the handshake and before any application byte
** leaves (mh_tls_check), so a failing certificate can still be described to
** the administrator (subject, issuer, expiry, why it failed).
*/
#ifndef MH_TLS_H
#define MH_TLS_H

#include <stddef.h>

typedef struct mh_tls mh_tls;

typedef struct {
  const char *host;         /* server name: SNI and the name the certificate must carry */
  int verify;               /* verify chain and host name (default 1) */
  const char *ca_file;      /* extra trust anchors (PEM); NULL = system store only */
  const char *fingerprint;  /* sha256 of the leaf certificate, hex (colons allowed): when set,
                               the pin alone decides (chain and name not required) */
  const char *min_version;  /* "1.0".."1.3"; NULL = "1.2" */
} mh_tls_params;

/* Result of a TLS step. */
enum {
  MH_TLS_OK = 0,            /* done */
  MH_TLS_WANT_READ = 1,     /* needs bytes from the server (feed then call again) */
  MH_TLS_WANT_WRITE = 2     /* has bytes to send (take them, then call again) */
};

/* Checks that path holds at least one PEM certificate that mh_tls_new could
** load as tls_ca_file (read the safe way: a regular file, at most
** MH_LIMIT_CA).  The count of certificates, or a negative code with err naming
** what was wrong (a FIFO, a folder, /dev/zero, no PEM certificate...). */
int mh_tls_check_ca_file(const char *path, char *err, size_t errlen);

/* Creates a client.  On failure returns NULL with a reason in err.  The
** SSL_CTX behind it, and its trust store, are shared by every client made
** with the same min_version and ca_file while those files stay the same (one
** per settings generation: tls.c, ctx_get). */
mh_tls *mh_tls_new(const mh_tls_params *p, char *err, size_t errlen);
void mh_tls_free(mh_tls *t);

/* Bytes read from the socket go in. Returns 0 or MH_ENOMEM. */
int mh_tls_feed(mh_tls *t, const char *buf, size_t len);
/* Bytes to write to the socket: copies up to cap into buf; returns the count (0 = none). */
size_t mh_tls_take(mh_tls *t, char *buf, size_t cap);
size_t mh_tls_pending(mh_tls *t);

/* Drives the handshake: MH_TLS_OK, MH_TLS_WANT_READ, or MH_ETLS (mh_tls_error says why). */
int mh_tls_handshake(mh_tls *t);
/* After the handshake: certificate present, chain + host verified (or the pin matches).
** 0 or MH_ECERT with mh_tls_error() naming the reason. */
int mh_tls_check(mh_tls *t);
/* Plain text out of the connection: bytes (> 0), 0 when it needs more input,
** MH_EEOF on close_notify, MH_ETLS on error. */
int mh_tls_read(mh_tls *t, char *buf, size_t cap);
/* Plain text into the connection (encrypted into the output). 0 or MH_ETLS. */
int mh_tls_write(mh_tls *t, const char *buf, size_t len);

const char *mh_tls_error(const mh_tls *t);

/* Why a TLS step failed, as a code a caller may act on (never OpenSSL's text). */
enum {
  MH_TLS_WHY_NONE = 0,
  MH_TLS_WHY_VERSION,       /* no TLS version in common (reason_name says how it showed) */
  MH_TLS_WHY_CLOSED,        /* the server closed the connection during the handshake (set by
                               the owner, which sees the end of the stream) or sent close_notify */
  MH_TLS_WHY_CERT,          /* the certificate was refused (mh_tls_check) */
  MH_TLS_WHY_OTHER          /* anything else: mh_tls_error has OpenSSL's words */
};

/* What was negotiated, for reports (valid after the handshake; strings may be "").
** why, reason and reason_name describe the last failure (also before the
** handshake completed). */
typedef struct {
  char version[16];         /* "TLSv1.3" */
  char cipher[64];
  char subject[256];
  char names[256];          /* its subjectAltName DNS names and addresses, ", " between
                               them, "..." when cut: what the host name is checked against
                               (the subject's CN is not, when there are any), so what an
                               admin needs to see to pick `server` */
  char issuer[256];
  char not_after[64];       /* "2027-01-31 12:00:00 UTC" */
  char fingerprint[100];    /* sha256 hex with colons */
  int verified;             /* 1 when the chain and host name were verified or the pin
                               matched; 0 when tls_verify = false let it pass unchecked */
  char verify_result[160];  /* "ok" or OpenSSL's reason */
  int why;                  /* MH_TLS_WHY_* of the last failure */
  int reason;               /* ERR_GET_REASON of the OpenSSL error behind it, 0 none */
  const char *reason_name;  /* a stable name of ours for a known reason ("alert protocol
                               version"), else "" (static) */
} mh_tls_info;
void mh_tls_get_info(mh_tls *t, mh_tls_info *out);

#endif
