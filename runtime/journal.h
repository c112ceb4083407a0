/*
** journal.h — entries for systemd's journal in its native protocol, written
** from its documentation (systemd-journald.service(8), "Native Journal
** Protocol"), without libsystemd (see notify.h for why).
**
** An entry is one datagram to journald's Unix socket holding its fields: a
** field whose value is one line is "NAME=value\n"; any other value (a
** newline in it, binary data) is "NAME\n", its length as a little-endian
** 64-bit integer, the bytes, "\n".  Field names are upper-case letters,
** digits and '_', not starting with '_' (those are journald's own, trusted
** fields) nor a digit, at most 64 bytes.  journald adds the time, the pid,
** the unit and the rest of the trusted fields itself.
**
** The socket is /run/systemd/journal/socket; $MAILHOOK_JOURNAL_SOCKET names
** another (the tests bind their own socket there and read the datagrams),
** except in a setuid or setgid process, which ignores it.
*/
#ifndef MH_JOURNAL_H
#define MH_JOURNAL_H

#include <stddef.h>

typedef struct {
  const char *name;    /* MESSAGE, PRIORITY, MAILHOOK_QUEUE_ID, ... */
  const char *value;   /* the bytes (need not be NUL-terminated when len is given) */
  size_t len;          /* strlen(value) when (size_t)-1 */
} mh_journal_field;

/* Whether NAME may be sent (see above). */
int mh_journal_valid_name(const char *name);

/* Sends one entry of n fields.  Returns 0, MH_EINVAL for a bad field name
** (nothing sent), MH_ETOOLONG when the entry exceeds the datagram limit kept
** here (MH_JOURNAL_MAX), or -errno of the socket (-ENOENT / -ECONNREFUSED: no
** journal listens).  Safe from any thread. */
#define MH_JOURNAL_MAX (128 * 1024)
int mh_journal_send(const mh_journal_field *fields, size_t n);

/* The socket path in use (the default or $MAILHOOK_JOURNAL_SOCKET). */
const char *mh_journal_socket(void);

#endif
