/*
** msg.h — the message builder: RFC 5322 / MIME messages for notifications,
** built from fields a caller gives (possibly from templates and event data,
** so nothing in them may add a header line) and streamed to a descriptor so
** that attachments of any size never sit in memory.
**
** Use: mh_msg_new(); set/add fields (each checks its input at once and
** returns 0 or a negative code, with mh_msg_error() naming what was wrong);
** mh_msg_finish() fixes Date, Message-ID and the MIME boundary and renders
** everything except attachment contents; then mh_msg_write() (any number of
** times: the same bytes each time, attachment files permitting) or
** mh_msg_bytes().
**
** The output holds: every line CRLF-terminated and at most 998 octets (header
** lines are folded at 78 where possible); non-ASCII (or encoded-word-looking)
** display names, subjects and header values as RFC 2047 encoded words
** (UTF-8, B, each at most 75 characters); bodies in 7bit when they are ASCII
** with short lines, else quoted-printable (never 8bit: the bytes are fixed
** before the server, and whether it offers 8BITMIME, is known); attachments
** in base64, 76 columns.  Bcc recipients are in the envelope, never in the
** headers.
*/
#ifndef MH_MSG_H
#define MH_MSG_H

#include <stddef.h>
#include <time.h>

typedef struct mh_msg mh_msg;

/* Which address header an address goes to. */
typedef enum {
  MH_MSG_FROM,       /* one address: header From and the envelope sender */
  MH_MSG_TO,
  MH_MSG_CC,
  MH_MSG_BCC,        /* envelope only */
  MH_MSG_REPLY_TO,
} mh_msg_field;

/* ------------------------------------------------------------ addresses */

/* Checks a bare address (local@domain, RFC 5321 "Mailbox": dot-atom or quoted
** local part, host name or [address literal] domain; ASCII only); a domain
** written absolute (its root's dot, mh_msg_addr_unroot) is checked without it.  Returns 0, or
** MH_EBADHDR for CR, LF or NUL and MH_EBADADDR for anything else, with *why (when
** why is not NULL) set to a short static reason such as "no @". */
int mh_msg_check_addr(const char *addr, size_t len, const char **why);

/* The one rule for an address literal as the domain (d[0..n), brackets
** included), shared by the builder (mh_msg_check_addr) and the spool's
** envelope check (spool.c mh_addr_check, which sendmail's intake and every
** enqueue pass): RFC 5321 4.1.3's [IPv4] (four decimal octets) or
** [IPv6:...] (the tag in any case), checked by inet_pton, the parser the
** connection itself uses.  A General-address-literal ([tag:content]) is
** refused: it names no address a connection could use.  0, or MH_EBADADDR
** with *why (may be NULL) set to a short static reason. */
int mh_msg_addr_literal(const char *d, size_t n, const char **why);

/* The length of a[0..n) in its envelope form: an address whose domain is
** written absolute, with the root's dot (ops@example.com.), is the address
** without that dot, as Postfix's trivial-rewrite makes it.  The one rule for
** every way an address comes in (the builder's envelope, the spool's parser of
** X-Sender/X-Receiver and address headers, core.msg.envelope_address for the
** Lua layer).  One dot only, after a label: a@example.com.., a@. and a@[IPv4].
** keep theirs (and fail the checks: an empty label, no domain).  A header keeps
** the address as its writer wrote it; only the envelope drops the dot. */
size_t mh_msg_addr_unroot(const char *a, size_t n);

/* 1 when addr (a C string) is a valid bare address. */
int mh_msg_valid_addr(const char *addr);

/* The one rule for text that must be UTF-8 (docs/message.md, "Charset"): a
** malloc'd, NUL-terminated copy of s[0..n) in which every byte that is no
** UTF-8 is read as Windows-1252 (Latin-1 with its printable 0x80-0x9F; a byte
** it leaves undefined as U+FFFD) and valid UTF-8 is kept as it is.  Its length
** in *outn (may be NULL).  The builder applies it to everything it labels
** UTF-8; `mailhook hook` to every event value at intake (core.msg.utf8), so a
** rule sees the same text the mail will carry.  NULL when out of memory. */
char *mh_msg_utf8(const char *s, size_t n, size_t *outn);

/* ------------------------------------------------------------- building */

/* A new empty message; NULL when out of memory. */
mh_msg *mh_msg_new(void);

/* Frees m and everything it holds; NULL is fine. */
void mh_msg_free(mh_msg *m);

/* The detail of the last failure ("to: 'bob' is not a valid address: no @",
** "attachment /x/y.pdf: No such file or directory"); "" when none. */
const char *mh_msg_error(const mh_msg *m);

/* Adds addresses to field (all of them, or none on error).  spec is one address or a comma-separated list, each
** "a@b", "Name <a@b>" or "\"Name, Inc.\" <a@b>"; name, when not NULL, is the
** display name for a spec that is a single bare address (then spec is not split).
** Display names may be any UTF-8.  MH_EBADADDR / MH_EBADHDR naming the bad one;
** MH_EINVAL for a second From. */
int mh_msg_add_addr(mh_msg *m, mh_msg_field field, const char *spec, size_t len,
                    const char *name);

/* Subject (UTF-8, any length; CR, LF or NUL -> MH_EBADHDR). */
int mh_msg_set_subject(mh_msg *m, const char *s, size_t len);

/* An extra header, e.g. "X-Event", "Auto-Submitted".  The name must be printable
** ASCII without ':' (at most 76 characters) and not one the builder writes itself
** (From, To, Cc, Bcc, Reply-To, Subject, Date, Message-ID, MIME-Version,
** Content-*): MH_EINVAL.  The value is unstructured text like the subject. */
int mh_msg_add_header(mh_msg *m, const char *name, const char *value, size_t len);

/* The plain-text and HTML bodies (UTF-8; any line endings, normalised to CRLF).
** Either, both (multipart/alternative) or neither (an empty text part).  Each
** at most MH_LIMIT_BODY bytes (fsutil.h): MH_ELIMIT past it. */
int mh_msg_set_text(mh_msg *m, const char *s, size_t len);
int mh_msg_set_html(mh_msg *m, const char *s, size_t len);

/* Attaches the file at path (read only when the message is written, in chunks).
** type: "type/subtype[; params]" or NULL for one from the extension
** (mh_msg_type_for); name: the file name shown to the reader or NULL for the
** base name of path, either made a safe file name (read as mh_msg_utf8 reads
** text; its last path component, control bytes and direction marks as '_',
** at most 255 bytes;
** nothing or only dots left: path's own name; docs/message.md).  The file must exist and be a readable regular file now,
** of at most MH_LIMIT_ATTACHMENT bytes (opened by fsutil's rule: never a FIFO
** or a device, MH_ENOTREG; MH_ELIMIT past the limit, also if it grows before
** it is written): else the error names the path. */
int mh_msg_add_attachment(mh_msg *m, const char *path, const char *type, const char *name);

/* The content type used for a file name's extension (case-insensitive):
** wav, mp3, pdf, tif/tiff, png, jpg/jpeg, gif, txt, csv, htm/html, json, xml,
** zip; else application/octet-stream. */
const char *mh_msg_type_for(const char *filename);

/* Records an error found by a caller of the setters (a binding that sees a
** value the C string could not carry, such as a Lua string with a NUL), so
** mh_msg_error reports it as the setters' own; returns code. */
int mh_msg_set_error(mh_msg *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Fixes Date (now, local time zone), Message-ID (<time.random@from-domain>) and
** the boundary, and renders the headers and bodies.  Needs a From and at least
** one recipient, and now within mh_msg_date_ok (MH_EINVAL otherwise).  Called
** once; the setters fail after. */
int mh_msg_finish(mh_msg *m, time_t now);

/* Whether t can be a message's Date: 1970 to the end of 9999 in any time zone
** (RFC 5322 writes the year in four digits; a time the C library cannot break
** down, such as 1e18, must not reach it). */
int mh_msg_date_ok(time_t t);

/* The Date and Message-ID rules, for every message mailhook queues: one built
** here (mh_msg_finish) and one that arrives whole without them (mailhook
** sendmail adds them at intake, so every retry sends the same bytes).
** mh_msg_date: RFC 5322 date-time in the local time zone (UTC when its offset
** is not whole minutes or is 24 hours or more) ("Fri, 4 Dec 2026
** 13:30:32 +0100"), at most 40 bytes.  mh_msg_make_id: "<YYYYMMDDhhmmss.RANDOM@domain>"
** (96 random bits; domain "localhost" when NULL or empty), at most 300 bytes.
** A time outside mh_msg_date_ok is written as the epoch (never a crash). */
void mh_msg_date(char *out, size_t cap, time_t now);
void mh_msg_make_id(char *out, size_t cap, const char *domain, time_t now);

/* ------------------------------------------------------------- output */

/* Writes the whole message to fd (blocking writes; attachments read in 57 KiB
** chunks, so memory stays flat whatever their size).  0, or a negative code:
** -errno of a failed write (never retried; the caller discards the file), or of
** an attachment that can no longer be read (mh_msg_error names it). */
int mh_msg_write(mh_msg *m, int fd);

/* The whole message in memory (*out malloc'ed, caller frees).  0 or negative. */
int mh_msg_bytes(mh_msg *m, char **out, size_t *len);

/* The envelope: sender and recipients (To, Cc, Bcc in that order, duplicates
** removed, bare addresses).  Valid after mh_msg_finish. */
const char *mh_msg_env_from(const mh_msg *m);
size_t mh_msg_rcpt_count(const mh_msg *m);
const char *mh_msg_rcpt(const mh_msg *m, size_t i);
/* (tests) How many hash-set slots mh_msg_finish looked at to remove the
** duplicates: about one per recipient, never a number that grows with the
** square of their count. */
size_t mh__msg_rcpt_probes(const mh_msg *m);

/* The Message-ID (with its angle brackets), after mh_msg_finish. */
const char *mh_msg_id(const mh_msg *m);

#endif
