/*
** intake.h — a message read from a descriptor (mailhook sendmail's stdin) in
** bounded chunks, for the spool to store without holding it in memory.
**
** The bytes are converted as they pass: every line end (CR* LF, a bare CR, a
** bare LF; runtime/eol.h) becomes CRLF, and (unless the caller said
** otherwise, sendmail -i) a line holding a lone dot ends the message; what
** follows it is read and dropped, as sendmail does, so the writer never gets
** EPIPE.  The message ends with CRLF (added
** when the input did not).  The header block is read first and kept whole
** (at most MH_INTAKE_HEADMAX bytes) so the caller can work out the envelope;
** the body streams through a 64 KiB buffer straight into the spool file.
** Blocking reads: call on the thread pool.  Not thread-safe (one user).
*/
#ifndef MH_INTAKE_H
#define MH_INTAKE_H

#include <stddef.h>

#define MH_INTAKE_HEADMAX (4u << 20)   /* the spool's own limit for a header block */
#define MH_INTAKE_CHUNK 65536

typedef struct mh_intake mh_intake;

/* A reader of fd (not closed by mh_intake_free); dot: a lone "." line ends the
** message.  NULL when out of memory. */
mh_intake *mh_intake_new(int fd, int dot);
void mh_intake_free(mh_intake *in);

/* The converted bytes of the input, without the header block's work (no
** From_ line dropped, no empty line added): up to cap (>= 4) bytes into out,
** their count, 0 once the input ended, or -errno.  The one line-end rule of
** intake for a reader that parses the header itself: the spool's adoption of
** a file dropped into pickup/ (spool.c), so CR CR LF is one line end there too
** and no bare CR is stored.  Use it instead of mh_intake_head/_write, not with
** them. */
long mh_intake_read(mh_intake *in, char *out, size_t cap);

/* Reads the header block: the lines before the first empty line, each ending
** in CRLF (the whole message when it has no empty line), or before the first
** line that is no header field ("Name:" or a blank-led continuation): that
** line starts the body, as Postfix reads `echo hi | sendmail root`, and the
** writer puts an empty line before it (a header block may be empty: all
** body).  The mbox From_ lines ("From ", ">From ") the input starts with are
** dropped, as Postfix's sendmail drops them.  0 with *head, *len
** pointing into the reader (valid until mh_intake_set_head or free) and *empty
** set when the message has no byte at all; MH_ECORRUPT when the block is over
** MH_INTAKE_HEADMAX; -errno when reading fails (err, MH_INTAKE_ERRLEN, says
** which).  Called once. */
#define MH_INTAKE_ERRLEN 256
int mh_intake_head(mh_intake *in, const char **head, size_t *len, int *empty, char *err);

/* Replaces the header block that is written (the caller added a Date...): a
** copy of head[0..len) is taken, its Bcc fields (and the others never sent:
** Return-Path, Content-Length) left out (mh__spool_drop_bcc,
** the spool's rule for what is sent).  0 or MH_ENOMEM. */
int mh_intake_set_head(mh_intake *in, const char *head, size_t len);

/* An mh_spool_writer: writes the header block, then the rest of the message
** (converted, read as it goes) to fd.  0, or a negative code: a read error is
** also kept for mh_intake_error, so the caller can say "stdin" and not the
** spool file.  Called once. */
int mh_intake_write(void *in, int fd);

/* The read error (negative errno) mh_intake_write met, or 0. */
int mh_intake_error(const mh_intake *in);

/* Bytes of the message written by mh_intake_write (head included). */
size_t mh_intake_written(const mh_intake *in);

/* The most bytes mh_intake_write writes (default MH_LIMIT_MESSAGE): past it,
** it stops with MH_ELIMIT (also kept for mh_intake_error: the input is at
** fault, not the spool), so the enqueue fails and nothing is queued. */
void mh_intake_set_max(mh_intake *in, size_t max);
size_t mh_intake_max(const mh_intake *in);

#endif
