/*
** text.h — the one rule for text from outside (a server's reply, its greeting
** and capabilities, a certificate's names, a log line) shown to an
** administrator on a terminal, in a log or on a page: nothing in it may drive
** the terminal, break a line or change the direction of what follows.
*/
#ifndef MH_TEXT_H
#define MH_TEXT_H

#include <stddef.h>

/* Flags of mh_text_shown. */
#define MH_TEXT_KEEP_LINES 1   /* newline and tab stay (a log entry's lines) */
#define MH_TEXT_BACKSLASH  2   /* mh_text_visible: a backslash is \x5C (else it stays), so a typed "\x1b" never reads as an escape */
#define MH_TEXT_PARTIAL    4   /* mh_text_visible: more follows; a character cut at the end waits */

/* Makes s[0..n) safe to show, in place: each control byte (C0, DEL; newline
** and tab too unless MH_TEXT_KEEP_LINES), each C1 control (U+0080-9F, which
** xterm and VTE obey as ESC-sequences: U+009B is CSI), each byte that is not
** part of a UTF-8 character, the line and paragraph separators U+2028/9 and
** the invisible direction marks and overrides (U+200E/F, U+202A-E, U+2066-9,
** U+061C) becomes one '?' (a character of several bytes one '?' too).  Other
** UTF-8 (a server's "Zugang verweigert für ...") is kept.  Returns the new
** length, at most n; s[result] is set to NUL when result < n. */
size_t mh_text_shown(char *s, size_t n, int flags);

/* The most bytes mh_text_visible writes for n bytes of input. */
#define MH_TEXT_VISIBLE_MAX(n) ((n) * 4)

/* The display rule for text that local users wrote (a queued message's
** From, To, Subject, the items sendmail left out, a drop-in's reason, a
** process's name): the same characters as mh_text_shown, written as
** visible escapes instead of '?' so the administrator sees what is there:
** a control byte and each byte that is not part of a UTF-8 character as
** \xNN, a C1 control as the two bytes of its UTF-8 form (\xc2\x9b), the
** direction marks, overrides, isolates and U+2028/9 as \uNNNN (hex digits
** lower-case throughout).  Writes to out (MH_TEXT_VISIBLE_MAX(n) bytes of
** room, not NUL-terminated) and returns the length written.  *used (may be
** NULL) is the number of input bytes consumed: n, except with
** MH_TEXT_PARTIAL, where the start of a UTF-8 character cut by the end of
** s is left for the next call. */
size_t mh_text_visible(const char *s, size_t n, int flags, char *out, size_t *used);

/* Where text longer than max bytes is cut to at most max: before the UTF-8
** character s[max] belongs to when it started at most 3 bytes back and
** reaches past max, at max otherwise (s[max] must be readable).  Continuation
** bytes that belong to no character are bytes like others: a walk back over
** every one of them cut a run of them, and all the text before it, to
** nothing (a log line, a server's reply, an attachment's name). */
size_t mh_text_cut(const char *s, size_t max);

#endif
