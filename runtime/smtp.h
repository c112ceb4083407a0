/*
** smtp.h — the SMTP client session as an explicit state machine.
**
** The session owns the protocol only: it never touches a socket, a timer or
** TLS.  Its owner (runtime/l_smtp.c, or a unit test) feeds it I/O events —
** connected, data in, output flushed, timeout, error, TLS ready — and the
** session answers through the callbacks of mh_smtp_io: bytes to write, a
** timer to arm, "start TLS now", and "the operation is done".  Every write of
** one event goes out as one buffer, so a PIPELINING group (or a message and its
** terminating dot) leaves in one segment.
**
** Reply parsing, EHLO capabilities and the dot-stuffing data writer are
** exported too, for the fuzzers and the unit tests.
*/
#ifndef MH_SMTP_H
#define MH_SMTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "buf.h"

/* Bounds of a server reply: longer lines or more lines are a protocol violation
** (RFC 5321 §4.5.3.1.5 says 512 octets; real servers exceed it, 2000 does not). */
#define MH_SMTP_LINE_MAX   2000
#define MH_SMTP_LINES_MAX  100
/* RFC 5321 §4.5.3.1.6: a text line of a message is at most 998 octets. */
#define MH_SMTP_TEXT_LINE  998
/* A header line that reaches this column is folded at its next blank (the
** blank kept: unfolding gives the field back as it was, RFC 5322 §2.2.3),
** so a long field is not cut inside a word at 998. */
#define MH_SMTP_FOLD_AT    900

/* X(name, command-timeout-kind): the states of a session, in the order a
** session meets them.  The kind picks the RFC 5321 §4.5.3.2 timeout. */
#define MH_SMTP_STATE_MAP(X) \
  X(INIT,     NONE)    /* not connected yet */                                   \
  X(BANNER,   GREET)   /* waiting for the 220 greeting */                         \
  X(EHLO,     CMD)                                                                \
  X(HELO,     CMD)     /* fallback when EHLO is refused */                        \
  X(STARTTLS, CMD)                                                                \
  X(TLS,      CMD)     /* handshake in the owner's hands; no byte may arrive */   \
  X(AUTH,     CMD)     /* AUTH exchange, several steps */                         \
  X(READY,    NONE)    /* idle between operations */                              \
  X(RSET,     CMD)                                                                \
  X(MAIL,     MAIL)                                                               \
  X(RCPT,     MAIL)                                                               \
  X(DATA,     DATA)    /* waiting for 354 */                                      \
  X(BODY,     DOT)     /* body and dot (or BDAT chunks) sent, waiting for the     \
                          final reply (and each chunk's)  */                     \
  X(QUIT,     CMD)                                                                \
  X(CLOSED,   NONE)    /* QUIT answered or session failed: unusable */

typedef enum {
#define MH__X(name, kind) MH_SMTP_##name,
  MH_SMTP_STATE_MAP(MH__X)
#undef MH__X
  MH_SMTP_NSTATES
} mh_smtp_state;

const char *mh_smtp_state_name(mh_smtp_state st);

/* Capability flags learned from EHLO. */
enum {
  MH_SMTP_CAP_PIPELINING = 1 << 0,
  MH_SMTP_CAP_SIZE       = 1 << 1,
  MH_SMTP_CAP_8BITMIME   = 1 << 2,
  MH_SMTP_CAP_SMTPUTF8   = 1 << 3,
  MH_SMTP_CAP_STARTTLS   = 1 << 4,
  MH_SMTP_CAP_AUTH       = 1 << 5,
  MH_SMTP_CAP_ENHANCED   = 1 << 6,   /* ENHANCEDSTATUSCODES */
  MH_SMTP_CAP_EHLO       = 1 << 7,   /* the server answered EHLO (not HELO) */
  MH_SMTP_CAP_DSN        = 1 << 8,   /* RFC 3461 delivery status notifications */
  MH_SMTP_CAP_CHUNKING   = 1 << 9    /* RFC 3030 BDAT: a message goes as BDAT chunks
                                        instead of DATA (no 354, no dot-stuffing) */
};

/* AUTH mechanisms, a bit each. */
enum {
  MH_SMTP_AUTH_PLAIN = 1 << 0,
  MH_SMTP_AUTH_LOGIN = 1 << 1,
  MH_SMTP_AUTH_XOAUTH2 = 1 << 2,
  MH_SMTP_AUTH_OAUTHBEARER = 1 << 3,
  MH_SMTP_AUTH_CRAM_MD5 = 1 << 4       /* RFC 2195: the password never crosses, an HMAC-MD5
                                          of the server's challenge does (pwhash.h) */
};

typedef struct {
  unsigned flags;          /* MH_SMTP_CAP_* */
  unsigned auth;           /* MH_SMTP_AUTH_* offered */
  uint64_t size;           /* SIZE limit; 0 = none announced */
  char list[1024];         /* the EHLO keywords as the server sent them, space-separated
                              (for reports; truncated, never used for decisions) */
} mh_smtp_caps;

/* One parsed reply.  Text lines are joined with '\n' (code and separator removed). */
typedef struct {
  int code;                /* 3-digit code; 0 while incomplete */
  int nlines;              /* lines received so far */
  int done;                /* the last line (code + space) arrived */
  char enhanced[16];       /* "4.7.0" from the first line when present, else "" */
  size_t len;              /* bytes used in text */
  char text[MH_SMTP_LINE_MAX * 4];  /* joined text, truncated (never the parse basis) */
  char first[MH_SMTP_LINE_MAX + 1]; /* the current line's text, for the EHLO parser */
} mh_smtp_reply;

/* Reply parser: give it one line (without CR/LF).  Returns 1 when the reply is
** complete, 0 when more lines follow, or a negative code: MH_EPROTO (malformed
** line, continuation with another code), MH_ETOOLONG (line or line count over the
** bounds).  Call mh_smtp_reply_reset() before the first line of a reply. */
void mh_smtp_reply_reset(mh_smtp_reply *r);
int mh_smtp_reply_line(mh_smtp_reply *r, const char *line, size_t len);

/* EHLO parser: one line of the EHLO reply's text (the keyword and parameters). */
void mh_smtp_caps_line(mh_smtp_caps *c, const char *text);

/* The data writer: message bytes in, wire bytes out.  Line ends of any kind (CRLF,
** bare LF, bare CR) leave as CRLF, so no bare CR or LF reaches the server (the
** SMTP smuggling class, CVE-2023-51764); a line starting with '.' gets another
** '.'; a header line is folded before a blank once it reaches column 900
** (MH_SMTP_FOLD_AT); a line over 998 octets is broken (folded with a space in
** the header, so it cannot become a new header field).  With nostuff set (a message sent with
** BDAT, RFC 3030) no '.' is added and the end has no dot: the same bytes
** otherwise. */
typedef struct {
  uint64_t dots;           /* dots added by stuffing (RFC 1870's SIZE does not count them) */
  int bol;                 /* at the beginning of a line */
  int cr;                  /* last byte was a CR whose LF has not been seen yet */
  int body;                /* past the empty line that ends the header */
  int empty_line;          /* the current line is still empty (header end detection) */
  size_t col;              /* octets on the current line */
  int prev_ws;             /* the last byte on the line was a blank (a fold goes before a run of them) */
  int nostuff;             /* BDAT: the bytes are counted, not scanned for an end: no '.'
                              is doubled (set after mh_smtp_dot_init) */
} mh_smtp_dotw;
void mh_smtp_dot_init(mh_smtp_dotw *w);
int mh_smtp_dot_write(mh_smtp_dotw *w, mh_buf *out, const char *in, size_t len);
/* Ends the data: a final CRLF when the data did not end with one, then ".\r\n". */
int mh_smtp_dot_finish(mh_smtp_dotw *w, mh_buf *out);
/* Ends the data for BDAT: the final CRLF when the data did not end with one. */
int mh_smtp_dot_end(mh_smtp_dotw *w, mh_buf *out);

typedef struct mh_smtp mh_smtp;
typedef struct mh_mime7 mh_mime7;   /* runtime/mime7.h */

/* How the session talks to its owner.  The callbacks must not call back into
** the session (the owner records and acts after the event call returns). */
typedef struct {
  void *ud;                                             /* passed to every callback */
  void (*write)(void *ud, const char *buf, size_t len); /* bytes for the server (plain text;
                                                           the owner encrypts when TLS is on) */
  void (*timer)(void *ud, uint64_t ms);                 /* (re)arm the command timer; 0 stops it */
  void (*starttls)(void *ud);                           /* begin the TLS handshake now; answer
                                                           with mh_smtp_tls_ready() or _error() */
  void (*done)(void *ud, int rc);                       /* the operation ended: 0 or MH_E*; it may
                                                           read the getters (they describe it) */
  void (*more)(void *ud);                               /* a streamed message's next piece may be
                                                           given (mh_smtp_more); may be NULL when
                                                           mh_smtp_send_stream is never used */
} mh_smtp_io;

typedef struct {
  const char *helo;        /* EHLO/HELO argument (copied) */
  const char *host;        /* server name, for OAUTHBEARER (copied; may be NULL) */
  int port;                /* for OAUTHBEARER */
  int starttls;            /* 0 never, 1 when offered, 2 required (no STARTTLS = MH_ENOTLS) */
  uint64_t command_ms;     /* caps every command timeout (RFC values below) */
  uint64_t data_ms;        /* the final dot's timeout (RFC: 10 min) */
} mh_smtp_params;

/* Result per recipient of the last message. */
typedef struct {
  char *rcpt;              /* the address (owned) */
  int code;                /* the server's code to RCPT (or to the final dot when later refused) */
  char enhanced[16];
  char text[512];
  int accepted;            /* 2xx to RCPT */
} mh_smtp_rcpt;

mh_smtp *mh_smtp_new(const mh_smtp_params *p, const mh_smtp_io *io);
void mh_smtp_free(mh_smtp *s);

/* I/O events.  Each may complete the operation in progress (io.done). */
void mh_smtp_connected(mh_smtp *s, int tls);       /* TCP up (tls: implicit TLS already done) */
void mh_smtp_data(mh_smtp *s, const char *buf, size_t len);
void mh_smtp_flushed(mh_smtp *s);                  /* everything written reached the kernel */
void mh_smtp_timeout(mh_smtp *s);                  /* the command timer (or the deadline) fired */
void mh_smtp_error(mh_smtp *s, int code, const char *what);  /* transport failure: closes */
void mh_smtp_tls_ready(mh_smtp *s);                /* STARTTLS handshake done and verified */

/* Operations, one at a time, only in READY (the first one, opening, starts with
** mh_smtp_connected).  Each returns 0 when started (io.done follows, possibly
** before the return) or a negative code when it could not start (no io.done).
**
** mh_smtp_send is the exception: while one send runs, one more may be queued
** behind it (cross-message pipelining).  With PIPELINING its MAIL, RCPT and DATA
** leave right behind the running message's final dot (in the same write when it
** is queued before the data leaves), so the server's reply to the dot and the
** replies to the next commands come back together: one round trip per message.
** Without PIPELINING it starts after the running one's final reply.  io.done is
** called once per transaction, in order; inside it the getters describe the
** transaction that just ended.  When the session fails, a queued transaction
** ends too, with the same code (its recipients unanswered: code 0).
**
** CHUNKING (RFC 3030), where the server offers it: no DATA and no 354; the
** message goes as "BDAT <n> LAST" and its bytes unstuffed (with PIPELINING in
** the write of its MAIL and RCPT; a streamed one after the RCPT replies, one
** "BDAT <n>" chunk per piece), each chunk answered; a refused chunk ends the
** message as a refused final dot would, and the next one starts with RSET.
**
** The gate: a queued transaction that becomes the current one sends its data
** only after mh_smtp_release().  The owner first settles the message before it
** (removes it from the spool), so a crash repeats at most one message: data of
** message n+1 never leaves while message n is accepted but not yet settled.
** A transaction started in READY is never gated.
**
** mh_smtp_send's refusals before anything is sent (bad address, too big, no
** recipient, nothing to queue behind, a second queued send: MH_EINVAL) leave
** their reason in mh_smtp_send_error(), and also in mh_smtp_errmsg() unless
** another transaction was running. */
int mh_smtp_auth(mh_smtp *s, unsigned mech, const char *user, const char *secret);

/* The credentials this session may send, known before it opens: every reply,
** the greeting's and EHLO's included, is masked of them (the secret, AUTH
** PLAIN's and LOGIN's base64 strings), not only once AUTH has sent them.  A
** server that got them in an earlier session could greet the next one with
** them, into the log and `mailhook test`'s report.  0, or MH_ENOMEM. */
int mh_smtp_mask(mh_smtp *s, const char *user, const char *secret);
int mh_smtp_send(mh_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                 const char *data, size_t len);
void mh_smtp_release(mh_smtp *s);

/* mh_smtp_send for a message too big to hold in memory (a spool file with a
** large attachment): size is its length (SIZE= and the server's limit are
** checked with it); flags: MH_SMTP_STREAM_8BIT asks for BODY=8BITMIME where
** offered, MH_SMTP_STREAM_HEAD8 says the top-level header holds 8-bit bytes
** (SMTPUTF8 where offered).  scan (NULL: not scanned) is a finished pass 1 of
** mh_mime7 over the same bytes, handed over (freed by the session): when the
** server lacks 8BITMIME or SMTPUTF8 (mh_smtp_stream_scan_needed), the owner
** scans first, and the pieces are then converted to 7-bit as they pass, with
** SIZE= the converted size; what cannot be converted is refused (MH_E8BIT,
** the reason in mh_smtp_send_error).  Its data is
** given later in pieces: after io.more the owner calls mh_smtp_more once (not
** from inside a callback), with last set on the final piece; the next io.more
** comes when that piece has left (mh_smtp_flushed), so memory stays at one
** piece.  Everything else (queueing, the gate, io.done) is as for a send.  A
** piece that cannot be read: mh_smtp_more_error, which ends the session (half a
** message must never look complete to the server). */
enum { MH_SMTP_STREAM_8BIT = 1, MH_SMTP_STREAM_HEAD8 = 2 };
int mh_smtp_send_stream(mh_smtp *s, const char *from, const char *const *rcpt, size_t nrcpt,
                        uint64_t size, unsigned flags, mh_mime7 *scan);
/* True when a streamed message must be scanned whole (mh_mime7) before
** mh_smtp_send_stream: the server lacks 8BITMIME (its body may be 8-bit), or
** head8 (its top-level header holds 8-bit bytes, mh_mime7_head8) and the
** server lacks SMTPUTF8.  Otherwise no conversion can be needed: the file is
** not read an extra time. */
int mh_smtp_stream_scan_needed(const mh_smtp *s, int head8);
void mh_smtp_more(mh_smtp *s, const char *buf, size_t len, int last);
void mh_smtp_more_error(mh_smtp *s, int code, const char *what);
/* Gates the running transaction (started in READY) as if it had been queued:
** for an owner that has not settled the message before it yet.  Called in
** READY (before the send), it gates the next send from its start: needed with
** CHUNKING, where an ungated message's data leaves with its MAIL and RCPT. */
void mh_smtp_gate(mh_smtp *s);
const char *mh_smtp_send_error(const mh_smtp *s, const char **stage);

/* RFC 3461 parameters for the next mh_smtp_send / mh_smtp_send_stream (sendmail
** -N, -R, -V, or -bs's MAIL and RCPT parameters, carried in the spool file's
** envelope lines): mail = "RET=HDRS ENVID=x" for MAIL FROM, rcpt[i] =
** "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b" for recipient i of that send (n
** entries, NULL for none; rcpt may be NULL).  They are a request, not a
** condition: sent only when the server announced DSN, silently left out
** otherwise (a server without DSN would refuse the parameter, RFC 1869).  Only
** the keywords RFC 3461 defines for each command, with printable ASCII values,
** are ever written: anything else is dropped, so no parameter can carry a
** line break or a '>'.  Copied; used (or dropped) by the next send, which
** forgets them.  0 or MH_ENOMEM. */
int mh_smtp_set_dsn(mh_smtp *s, const char *mail, const char *const *rcpt, size_t n);
/* The Test button's check: MAIL FROM:<from>, then RCPT TO:<rcpt> when rcpt is
** not NULL, then RSET -- no message.  A server that decides at RCPT (Postfix's
** smtpd_delay_reject: its HELO, sender and relay checks) is asked there too;
** MAIL alone passed for sessions whose every message it would refuse.  The
** outcome: MAIL's refusal (stage "mail"), else RCPT's (stage "rcpt"), else 0. */
int mh_smtp_check_sender(mh_smtp *s, const char *from, const char *rcpt);
int mh_smtp_quit(mh_smtp *s);

/* What the session knows. */
mh_smtp_state mh_smtp_get_state(const mh_smtp *s);
const mh_smtp_caps *mh_smtp_get_caps(const mh_smtp *s);
const mh_smtp_reply *mh_smtp_last_reply(const mh_smtp *s);  /* the reply that decided the op */
/* 1 while a send's done callback runs for an outcome the server's replies decided
** (MAIL refused, every recipient refused) before it hung up: the session is
** closed, yet the break is not the outcome (the caller reconnects for the next). */
int mh_smtp_decided_then_closed(const mh_smtp *s);
const char *mh_smtp_stage(const mh_smtp *s);      /* "greeting", "ehlo", "helo", "tls", "auth", "mail", "rcpt", "data", "quit" */
const char *mh_smtp_errmsg(const mh_smtp *s);     /* why the last op failed ("" when it did not) */
int mh_smtp_is_tls(const mh_smtp *s);
int mh_smtp_used_ehlo(const mh_smtp *s);
/* The 5xx reply to EHLO ("502 5.5.2 not recognized", one line) after which HELO
** was said and taken, or NULL (also when HELO was refused too): why an old
** server's session has no extensions. */
const char *mh_smtp_ehlo_refused(const mh_smtp *s);
const mh_smtp_rcpt *mh_smtp_rcpts(const mh_smtp *s, size_t *n);
uint64_t mh_smtp_state_timeout(const mh_smtp *s); /* ms for the current state's reply */

/* dst = src cut to cap - 1 bytes: what snprintf(dst, cap, "%s", src) does, for
** the reply fields copied per reply and per message (the engine, the client's
** results), without the format parser (~150 instructions a call). */
static inline void mh_smtp_strcopy(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  while (n + 1 < cap && src[n]) n++;
  if (cap) { memcpy(dst, src, n); dst[n] = '\0'; }
}

#endif
