/*
** transport.h — a byte stream to a mail server on the libuv loop: the name
** resolved, each of its addresses tried in turn, TCP, and TLS over it when
** asked (implicit, or after STARTTLS) — behind one small interface, as
** OpenSMTPD's ioev.h and Redis's ConnectionType put TCP and TLS behind one.
**
** The owner calls in (connect, write, start TLS, arm the timer, close) and is
** told what happened through one callback, with one of six events:
**
**   CONNECTED   TCP is up (mh_transport_address names the address)
**   TLS_READY   the handshake is done and the certificate was accepted
**   DATA        bytes from the server (plain text: decrypted when TLS is on)
**   LOW         the output queue emptied: everything written reached the kernel
**   TIMEOUT     the timer armed with mh_transport_timer fired
**   ERROR       the transport failed and is closed; mh_transport_error says why
**
** Events come only from libuv callbacks, never from inside a call into the
** transport: a call that fails (a write to a reset connection, no memory for
** the output, a TLS engine that cannot start) closes the socket at once and
** reports ERROR on the next loop turn.  A write refused because the server
** closed or reset the connection is the exception to "at once": the socket
** stays open until that turn, when what it still holds (the reply the server
** sent before it closed) comes as DATA first, then ERROR unless the owner
** closed the transport meanwhile; writes in between are dropped.  So the
** owner may call the transport from anywhere, its own callbacks included.  No byte is ever dropped: what
** cannot be queued whole fails the transport.
**
** Inside the callback the owner may call anything here, mh_transport_free
** included.  The C core: no Lua.
*/
#ifndef MH_TRANSPORT_H
#define MH_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "tls.h"

typedef struct mh_transport mh_transport;

typedef enum {
  MH_TR_CONNECTED,
  MH_TR_TLS_READY,
  MH_TR_DATA,
  MH_TR_LOW,
  MH_TR_TIMEOUT,
  MH_TR_ERROR
} mh_tr_event;

/* Where a transport is, which is also what a failure interrupted. */
typedef enum {
  MH_TR_RESOLVING,         /* looking the name up */
  MH_TR_CONNECTING,        /* trying the addresses */
  MH_TR_OPEN,              /* connected, plain text */
  MH_TR_HANDSHAKE,         /* a TLS handshake runs */
  MH_TR_SECURE,            /* connected, TLS on */
  MH_TR_FAILED,            /* ERROR was (or is about to be) reported */
  MH_TR_CLOSED             /* the owner closed it (without a failure) */
} mh_tr_phase;

/* Why the transport failed, as the ERROR event finds it. */
typedef struct {
  int code;                /* MH_EDNS, MH_ECONNECT, MH_ETLS, MH_ECERT, MH_EEOF, MH_ENOMEM */
  mh_tr_phase phase;       /* what it interrupted: RESOLVING, CONNECTING, HANDSHAKE (TLS
                              failures, the certificate included), or OPEN/SECURE (the
                              stream: a read or write failed, the server hung up) */
  int tls_why;             /* MH_TLS_WHY_* (tls.h) for a TLS failure: VERSION, CLOSED (hung
                              up during the handshake), CERT, OTHER; else NONE */
  const char *tls_reason;  /* the known OpenSSL reason behind it by our stable name
                              ("alert protocol version"), else "" */
  char msg[800];           /* for the administrator: "cannot resolve mx: ...",
                              "could not connect to mx port 25: 192.0.2.1: ...",
                              "mx:465: connection closed during the TLS handshake", ... */
  char causes[256];        /* a failed connect: each address tried and its cause by errno
                              name, "ADDR ERRNO" lines ("192.0.2.1 ECONNREFUSED\n::1
                              ETIMEDOUT\n"), for code to read instead of msg; else "" */
} mh_tr_error;

typedef void (*mh_transport_cb)(void *ud, mh_tr_event ev, const char *buf, size_t len);

typedef struct {
  uv_loop_t *loop;         /* where its handles live */
  const char *host;        /* DNS name or address to connect to (copied) */
  int port;
  uint64_t connect_ms;     /* bound on each address's TCP connect (0: 30 s) */
  mh_transport_cb cb;      /* every event */
  void *ud;                /* passed to cb */
} mh_transport_params;

/* A transport, not connected yet; NULL when out of memory. */
mh_transport *mh_transport_new(const mh_transport_params *p);

/* Resolves the name and tries every address in order (IPv4 and IPv6 as the
** resolver gives them), each within connect_ms: CONNECTED, or ERROR naming
** every address and why it failed.  Once per transport. */
void mh_transport_connect(mh_transport *t);

/* Starts TLS on the connection (first thing for implicit TLS; after the 220
** to STARTTLS): TLS_READY once the handshake is done and mh_tls_check passed,
** or ERROR (phase HANDSHAKE).  The handshake has no bound of its own: the
** owner arms the timer.  Bytes that arrive meanwhile go to TLS. */
void mh_transport_start_tls(mh_transport *t, const mh_tls_params *p);

/* Queues len bytes (copied; encrypted when TLS is on): they leave in order,
** LOW follows when the queue has emptied. */
void mh_transport_write(mh_transport *t, const char *buf, size_t len);

/* (Re)arms the one timer: TIMEOUT in ms; 0 stops it. */
void mh_transport_timer(mh_transport *t, uint64_t ms);

/* hold = 1: the connection keeps the loop (the process) alive; 0: it does not
** (an idle session must not keep a script that forgot to quit from ending). */
void mh_transport_hold(mh_transport *t, int hold);

/* Closes it: no event after this returns.  The getters below still answer
** (what was negotiated, why it failed) until mh_transport_free. */
void mh_transport_close(mh_transport *t);
/* Closes it if needed and lets it go: the memory is freed once libuv is done. */
void mh_transport_free(mh_transport *t);

/* What it knows. */
mh_tr_phase mh_transport_phase(const mh_transport *t);
const mh_tr_error *mh_transport_error(const mh_transport *t);
const char *mh_transport_address(const mh_transport *t);  /* the address connected to, or "" */
int mh_transport_resolved(const mh_transport *t);          /* the name was resolved */
int mh_transport_connected(const mh_transport *t);         /* TCP came up (this address) */
uint64_t mh_transport_received(const mh_transport *t);     /* bytes read from the server */
int mh_transport_tls_on(const mh_transport *t);            /* TLS_READY happened */
/* The first bytes (at most 8) received while a handshake ran: a server that
** greets in plain text where TLS was expected shows there ("220 ..."). */
const char *mh_transport_handshake_bytes(const mh_transport *t, size_t *n);
/* The TLS engine (for mh_tls_get_info), or NULL before start_tls. */
mh_tls *mh_transport_tls(const mh_transport *t);

#endif
