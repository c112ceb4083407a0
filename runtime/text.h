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

/* Makes s[0..n) safe to show, in place: each control byte (C0, DEL; newline
** and tab too unless MH_TEXT_KEEP_LINES), each C1 control (U+0080-9F, which
** xterm and VTE obey as ESC-sequences: U+009B is CSI), each byte that is not
** part of a UTF-8 character, the line and paragraph separators U+2028/9 and
** the invisible direction marks and overrides (U+200E/F, U+202A-E, U+2066-9,
** U+061C) becomes one '?' (a character of several bytes one '?' too).  Other
** UTF-8 (a server's "Zugang verweigert für ...") is kept.  Returns the new
** length, at most n; s[result] is set to NUL when result < n. */
size_t mh_text_shown(char *s, size_t n, int flags);

#endif
