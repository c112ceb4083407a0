/*
** client.h — an SMTP client on the libuv loop: the session (smtp.c, the
** protocol state machine) joined to a transport (transport.c, TCP and TLS),
** with what neither does alone — which TLS mode to try (tls = auto listens
** for a greeting before it offers a ClientHello), the session deadline, a
** message streamed from its spool file piece by piece, pipelining across
** messages with the gate of smtp.h, and the outcome of each operation as a C
** result that outlives the session's own record.
**
** No Lua: runtime/l_smtp.c turns these calls into waits, and
** tests/unit/test-client.c drives it against a peer written in C.
**
** Operations (open, auth, check_sender, quit) run one at a time: start one,
** then mh_client_op_done() says when it has ended and mh_client_op_take()
** gives its outcome.  Sends are submitted (two in flight at most) and their
** outcomes taken in order with mh_client_result_ready() / _take().  The
** owner's notify callback says "something you may wait for happened": it is
** called from loop callbacks only, never from inside a call into the client,
** so the owner checks right after each call, and again in notify.
*/
#ifndef MH_CLIENT_H
#define MH_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "smtp.h"
#include "tls.h"

typedef struct mh_client mh_client;

/* The TLS modes (settings `tls`, and what auto falls back to). */
enum {
  MH_CLIENT_TLS_NONE,           /* plain text only */
  MH_CLIENT_TLS_IMPLICIT,       /* TLS from the first byte (port 465) */
  MH_CLIENT_TLS_STARTTLS,       /* STARTTLS, required */
  MH_CLIENT_TLS_OPPORTUNISTIC,  /* STARTTLS when offered */
  MH_CLIENT_TLS_AUTO            /* a greeting within greeting_wait: STARTTLS (required when
                                   tls_required, else when offered); silence: implicit TLS */
};

/* A known cause of a failure, for the administrator's hint (mailhook test). */
enum {
  MH_CLIENT_WHY_NONE,
  MH_CLIENT_WHY_TLS_VERSION,    /* no TLS version in common (tls_reason says how it showed) */
  MH_CLIENT_WHY_TLS_CLOSED      /* the server hung up during the handshake */
};

/* The longest host, helo, ca_file, fingerprint and min_version a client keeps
** (bytes, without the NUL).  Copied into buffers of these sizes + 1: a longer
** one is refused (mh_client_new), never cut, since a cut host is another
** host and a cut ca_file another file. */
#define MH_CLIENT_HOST_MAX 255
#define MH_CLIENT_HELO_MAX 255
#define MH_CLIENT_CA_FILE_MAX 1023
#define MH_CLIENT_FINGERPRINT_MAX 127
#define MH_CLIENT_MIN_VERSION_MAX 7

typedef struct {
  uv_loop_t *loop;
  const char *host;             /* server name or address (copied) */
  int port;
  int tls;                      /* MH_CLIENT_TLS_* */
  int tls_required;             /* tls = auto: STARTTLS must be offered */
  const char *helo;             /* EHLO argument (copied; NULL: "localhost") */
  int verify;                   /* verify chain and host name */
  const char *ca_file;          /* extra trust anchors, or NULL (copied) */
  const char *fingerprint;      /* sha256 pin, or NULL (copied) */
  const char *min_version;      /* "1.0".."1.3", NULL: "1.2" (copied) */
  uint64_t connect_ms;          /* each address's TCP connect */
  uint64_t command_ms;          /* caps every command timeout; bounds an implicit handshake */
  uint64_t data_ms;             /* the final dot's timeout */
  uint64_t deadline_ms;         /* a whole operation (or one message): no trickling server
                                   escapes it */
  uint64_t greeting_wait_ms;    /* tls = auto: how long a plain greeting may take */
  void (*notify)(void *ud);     /* something the owner may wait for happened (see above) */
  void *ud;
} mh_client_params;

/* The outcome of one operation or one send.  (A new field: client.c's
** result_clear and result_move name every field.) */
typedef struct {
  int rc;                       /* 0 or a negative code (MH_E*) */
  const char *stage;            /* failed: "dns", "connect", "tls", "auth", "mail", "rcpt",
                                   "data", "quit" (static) */
  char msg[800];                /* failed: why, for the administrator */
  int code;                     /* the decisive reply (0: none) */
  char enhanced[16];            /* its enhanced status code, or "" */
  char text[2048];              /* its text (lines joined by '\n') */
  int closed;                   /* the connection is unusable afterwards */
  const char *waited;           /* rc == MH_ETIMEDOUT: what never came ("greeting", "tls",
                                   "EHLO", "the final dot", ...; static), else NULL */
  int tls_probe;                /* that timeout came after tls = auto's ClientHello */
  int plain_smtp;               /* implicit TLS met a plain-text greeting: the owner may try
                                   again with STARTTLS */
  int why;                      /* MH_CLIENT_WHY_* */
  const char *tls_reason;       /* WHY_TLS_VERSION: how it showed ("alert protocol version"),
                                   static, else "" */
  char causes[256];             /* a failed connect: "ADDR ERRNO" lines, each address tried
                                   and its cause by errno name (transport.h); else "" */
  int refused_early;            /* a send refused before anything was sent (bad address, too
                                   big, unusable session) */
  mh_smtp_rcpt *rcpts;          /* a send: each recipient's reply (owned; code 0: unanswered) */
  size_t nrcpt;
} mh_client_result;

void mh_client_result_free(mh_client_result *r);

/* A client, not connected yet; NULL when out of memory (errno ENOMEM) or when
** a string parameter is longer than its MH_CLIENT_*_MAX (errno ENAMETOOLONG;
** a binding names the field before calling: l_smtp.c). */
mh_client *mh_client_new(const mh_client_params *p);
/* Closes it (no notify after this) and lets it go. */
void mh_client_free(mh_client *c);
/* Closes the connection at once (an interrupted operation ends unanswered);
** the getters still answer until mh_client_free. */
void mh_client_close(mh_client *c);

/* Operations.  Each starts (or ends at once: mh_client_op_done) and must not
** be called while another runs (mh_client_busy). */
void mh_client_open(mh_client *c);     /* DNS, every address, TLS, greeting, EHLO: once */
int mh_client_can_open(const mh_client *c);   /* not opened (nor closed) yet */
void mh_client_auth(mh_client *c, unsigned mech, const char *user, const char *secret);
int mh_client_mask(mh_client *c, const char *user, const char *secret);   /* smtp.h: mh_smtp_mask */
void mh_client_check_sender(mh_client *c, const char *from, const char *rcpt);   /* MAIL [RCPT] RSET */
void mh_client_quit(mh_client *c);
int mh_client_busy(const mh_client *c);      /* an operation runs or awaits its take */
int mh_client_op_done(const mh_client *c);   /* the running operation has ended */
/* Its outcome (moved into out: free with mh_client_result_free). */
void mh_client_op_take(mh_client *c, mh_client_result *out);

/* Sends.  At most two outstanding (submitted, outcome not taken).  The
** addresses and data are copied; fd (submit_file) is the client's from now
** on, read from off, size bytes, as the message is sent. */
#define MH_CLIENT_MAX_SENDS 2
int mh_client_can_submit(const mh_client *c);   /* the session takes a message now */
void mh_client_submit(mh_client *c, const char *from, const char *const *rcpt, size_t nrcpt,
                      const char *data, size_t len);
void mh_client_submit_file(mh_client *c, const char *from, const char *const *rcpt, size_t nrcpt,
                           int fd, uint64_t off, uint64_t size);
/* The RFC 3461 parameters of the next submission (smtp.h mh_smtp_set_dsn:
** filtered, sent only where the server offers DSN, forgotten after that one
** send): mail for MAIL FROM, rcpt[i] for the i-th recipient.  0 or MH_ENOMEM. */
int mh_client_set_dsn(mh_client *c, const char *mail, const char *const *rcpt, size_t n);
/* A submission that ends before it starts (the owner refused it: a NUL in an
** address, a session that is not usable), queued in order with the others. */
void mh_client_refuse(mh_client *c, int rc, const char *stage, const char *msg, int closed);
size_t mh_client_pending(const mh_client *c);          /* outcomes not taken */
int mh_client_result_ready(const mh_client *c);        /* the oldest one's outcome is in */
void mh_client_result_take(mh_client *c, mh_client_result *out);
/* The oldest outstanding send may send its data: the owner settled the ones
** before it (removed them from the spool).  Taking an outcome does not do it. */
void mh_client_release(mh_client *c);

/* What it knows. */
int mh_client_alive(const mh_client *c);      /* connected, and the session is ready */
const mh_smtp *mh_client_session(const mh_client *c);
const char *mh_client_errmsg(const mh_client *c);   /* the session's last failure, or "" */
const char *mh_client_host(const mh_client *c);
int mh_client_port(const mh_client *c);
const char *mh_client_helo(const mh_client *c);
const char *mh_client_address(const mh_client *c);  /* the address connected to, or "" */
uint64_t mh_client_received(const mh_client *c);    /* bytes read from the server so far */
const char *mh_client_security(const mh_client *c); /* "none", "implicit", "starttls" */
/* How long the plain-text greeting took, in ms from the TCP connection (at least 1),
** or 0 when none came (yet) or the session began with TLS: tls = auto remembers a
** server that greets later than greeting_wait (lua/mailhook/smtp.lua, greeting-late). */
uint64_t mh_client_greeting_ms(const mh_client *c);
int mh_client_starttls_offered(const mh_client *c); /* the server offered STARTTLS (after the
                                                       handshake too, when the second EHLO
                                                       no longer lists it) */
/* The TLS engine's report (after a handshake, or a failed one): 1 and *out
** filled, or 0 when no TLS was started; *err (may be NULL) its failure or "". */
int mh_client_tls_info(const mh_client *c, mh_tls_info *out, const char **err);

#endif
