/*
** msg.h — the message builder: RFC 5322 / MIME messages for notifications,
** built from fields a caller gives (possibly from templates and event data,
** so nothing in them may add a header line) and streamed to a descriptor so
** that attachments of any size never sit in memory.
*/
#ifndef MH_MSG_H
#define MH_MSG_H

#include <stddef.h>

/* ------------------------------------------------------------ addresses */

/* Checks a bare address (local@domain, RFC 5321 "Mailbox": dot-atom or quoted
** local part, host name or [address literal] domain; ASCII only).  Returns 0, or
** MH_EBADHDR for CR, LF or NUL and MH_EBADADDR for anything else, with *why (when
** why is not NULL) set to a short static reason such as "no @". */
int mh_msg_check_addr(const char *addr, size_t len, const char **why);

/* 1 when addr (a C string) is a valid bare address. */
int mh_msg_valid_addr(const char *addr);

#endif
