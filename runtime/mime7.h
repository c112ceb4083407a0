/*
** mime7.h — a message made 7-bit for a server that did not offer 8BITMIME
** (RFC 6152 §3: the client converts, or does not send) or SMTPUTF8 (RFC 6531:
** raw UTF-8 header fields are not allowed without it).
**
** The message is read twice, in pieces of any size (a spool file read 64 KiB
** at a time: memory is bounded by one header field and the plan, never by the
** message):
**
**   1. mh_mime7_scan: the MIME structure is walked (nested multiparts and
**      message/rfc822 included); for each body part it learns whether it holds
**      8-bit bytes and what quoted-printable and base64 would cost, and picks
**      the smaller; for each header field with 8-bit bytes it works out the
**      RFC 2047 (unstructured text, display names) or RFC 2231 (Content-Type
**      and Content-Disposition parameters) form.  The result: what the message
**      holds (mh_mime7_info), the exact size after conversion, or why it
**      cannot be converted (an 8-bit address, an 8-bit Message-ID, 8-bit bytes
**      inside a base64 part...).
**   2. mh_mime7_convert: the same bytes again, written out converted through a
**      callback.  Parts and fields without 8-bit bytes pass unchanged.
**
** Lines are read as runtime/eol.h says (CRLF, bare CR, bare LF); the output has
** CRLF line ends only and every converted line is at most 76 octets.  A
** converted part decodes to exactly the bytes the data writer would have sent
** (its line ends as CRLF).  No lua.h, no I/O: pure computation, tested by
** tests/unit/test-mime7.c and tests/fuzz/fuzz-mime7.c.
*/
#ifndef MH_MIME7_H
#define MH_MIME7_H

#include <stddef.h>
#include <stdint.h>

typedef struct mh_mime7 mh_mime7;

/* What to convert (pass 2), and what a size or a refusal is asked for. */
enum {
  MH_MIME7_BODIES  = 1 << 0,   /* 8-bit body parts (and the header fields of nested
                                  parts, which SMTP counts as body): no 8BITMIME */
  MH_MIME7_HEADERS = 1 << 1    /* 8-bit fields of the top-level header: no SMTPUTF8 */
};

/* What pass 1 learnt. */
typedef struct {
  int body8;          /* an 8-bit byte after the top-level header block (or a NUL in a
                         part that can be encoded) */
  int head8;          /* an 8-bit byte in a top-level header field */
  int bodylong;       /* a body line over 998 octets in a part not already encoded: SMTP
                         carries none, 8BITMIME or not (RFC 5321 §4.5.3.1.6, RFC 6152 §3),
                         so MH_MIME7_BODIES encodes it (quoted-printable, soft breaks)
                         instead of the line being cut */
  int bodynul;        /* a NUL byte after the top-level header block: neither 7bit nor 8bit
                         data may hold one (RFC 2045 §2.7-2.8, RFC 6152), many servers refuse
                         or cut the message there, so MH_MIME7_BODIES encodes its part
                         whatever the server offers, like a long line (the data writer
                         drops the NULs it is still given: smtp.h) */
  unsigned parts;     /* entities met (the message itself counts one) */
} mh_mime7_info;

/* Output of pass 2: 0, or a negative code that stops the conversion. */
typedef int (*mh_mime7_out)(void *ud, const char *p, size_t n);

mh_mime7 *mh_mime7_new(void);          /* NULL when out of memory */
void mh_mime7_free(mh_mime7 *m);

/* Pass 1, in pieces; then _end.  0 or MH_ENOMEM. */
int mh_mime7_scan(mh_mime7 *m, const char *buf, size_t len);
int mh_mime7_scan_end(mh_mime7 *m);
const mh_mime7_info *mh_mime7_get_info(const mh_mime7 *m);

/* After pass 1: the message's size as sent (RFC 1870: CRLF line ends, no
** dot-stuffing) with `what` converted (0: unconverted), and NULL when it can
** be converted, else why not (a sentence naming the part or field). */
uint64_t mh_mime7_size(const mh_mime7 *m, unsigned what);
const char *mh_mime7_why(const mh_mime7 *m, unsigned what);

/* Pass 2 over the same bytes: begin (what, the sink), pieces, end.  0, or
** MH_E8BIT when `what` cannot be converted (mh_mime7_why), MH_EINVAL when the
** bytes differ from pass 1's, or the sink's code. */
int mh_mime7_convert_begin(mh_mime7 *m, unsigned what, mh_mime7_out out, void *ud);
int mh_mime7_convert(mh_mime7 *m, const char *buf, size_t len);
int mh_mime7_convert_end(mh_mime7 *m);
/* mh_mime7_convert with the sink given for this piece only (its ud may live
** on the caller's stack: nothing is written between pieces), and
** mh_mime7_convert_end after it when last is set. */
int mh_mime7_convert_sink(mh_mime7 *m, mh_mime7_out out, void *ud, const char *buf, size_t len, int last);

/* Line lengths across pieces: *run is the current line's octets so far (0 at
** the start); true when buf[0..len) takes a line (CR and LF excluded) past 998
** octets.  The cheap question asked of every message before the MIME scan. */
int mh_mime7_longline(const char *buf, size_t len, uint64_t *run);

/* True when the top-level header block of buf[0..len) (up to its empty line,
** or the whole buffer) holds a byte >= 0x80: the SMTPUTF8 question for a
** message that is not scanned whole. */
int mh_mime7_head8(const char *buf, size_t len);

#endif
