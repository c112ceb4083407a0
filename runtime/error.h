/*
** error.h — mailhook's error codes.
** Every C function that can fail returns a negative code: either -errno (as
** libuv does, so system errors keep their meaning) or one of the MH_E* codes
** below, which live far below any errno value so the two never collide.
*/
#ifndef MH_ERROR_H
#define MH_ERROR_H

/* X(name, message): one list generates the enum, the names and the messages. */
#define MH_ERRNO_MAP(X)                                                     \
  X(NOMEM,    "out of memory")                                              \
  X(INVAL,    "invalid argument")                                           \
  X(BADADDR,  "invalid mail address")                                       \
  X(BADHDR,   "CR, LF or NUL in a header name or value")                    \
  X(TOOLONG,  "line or value too long")                                     \
  X(CORRUPT,  "unparsable spool file")                                      \
  X(LOCKED,   "spool is locked by another service")                         \
  X(DISABLED, "outgoing mail is disabled")                                  \
  X(NOTFOUND, "no such message")                                            \
  X(DNS,      "host name could not be resolved")                            \
  X(CONNECT,  "could not connect")                                          \
  X(TLS,      "TLS failure")                                                \
  X(CERT,     "certificate verification failed")                            \
  X(NOTLS,    "server does not offer TLS but TLS is required")              \
  X(DOWNGRADE,"server was seen with TLS before; refusing plain text")       \
  X(AUTH,     "authentication failed")                                      \
  X(NOAUTH,   "no usable authentication mechanism")                         \
  X(PROTO,    "SMTP protocol violation")                                    \
  X(REPLY,    "server rejected the command")                                \
  X(TIMEDOUT, "timed out")                                                  \
  X(EOF,      "connection closed by server")                                \
  X(TOOBIG,   "message larger than the server accepts")                     \
  X(CANCELED, "operation canceled")                                         \
  X(NOTREG,   "not a regular file")                                         \
  X(LIMIT,    "larger than its size limit")                                 \
  X(UNSAFE,   "unsafe owner or permissions")                                \
  X(8BIT,     "8-bit data the server cannot take and mailhook cannot convert")

/* The codes start at -2000: errno values are small positive numbers. */
enum {
  MH__ERR_BASE = -2000,
#define MH__X(name, msg) MH_E##name,
  MH_ERRNO_MAP(MH__X)
#undef MH__X
  MH__ERR_END
};

/* A human message for code (an MH_E* code or -errno); never NULL. */
const char *mh_strerror(int code);

/* The symbolic name ("ENOMEM", "EPROTO", ...); never NULL. */
const char *mh_err_name(int code);

#endif
