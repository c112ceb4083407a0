/*
** notify.h — tell the service manager how the service is doing: systemd's
** notification protocol, written from its documentation (sd_notify(3),
** systemd.service(5)), without libsystemd.
**
** The manager (systemd for a Type=notify unit) puts the path of a Unix
** datagram socket in $NOTIFY_SOCKET: a file system path, or an abstract
** socket when it starts with '@' (that byte stands for the leading NUL).  The
** service sends it datagrams of newline-separated VAR=VALUE assignments:
** READY=1 once it serves, RELOADING=1 / READY=1 around a reload, STOPPING=1,
** STATUS=free text, WATCHDOG=1 keep-alive pings at least every
** $WATCHDOG_USEC microseconds (when $WATCHDOG_PID, if set, is this process).
** Outside a manager (no $NOTIFY_SOCKET) every call is a no-op that says so.
**
** Why not libsystemd: the protocol is a handful of lines and documented as a
** stable interface; one more shared library (and its dependencies) in every
** `mailhook hook` run is a cost the other commands would pay for nothing.
*/
#ifndef MH_NOTIFY_H
#define MH_NOTIFY_H

#include <stdint.h>

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID once and removes them
** from the environment, so programs the service starts (password_command,
** programs a rule runs) never speak for it.  Idempotent.  Returns 1 when a
** manager listens, 0 when none does, MH_EINVAL for an unusable socket
** address (not absolute, not '@', too long: then sends fail the same way). */
int mh_notify_init(void);

/* Sends STATE ("READY=1\nSTATUS=..."), as one datagram.  Returns 1 sent, 0 no
** manager ($NOTIFY_SOCKET unset), or a negative code (-errno of socket or
** sendmsg, MH_EINVAL for an unusable address).  Calls mh_notify_init first. */
int mh_notify_send(const char *state);

/* The watchdog interval the manager asked of this process, in microseconds;
** 0 when there is none (no $WATCHDOG_USEC, or $WATCHDOG_PID names another
** process, or no manager).  Pings are due at least that often; half of it
** is the usual cadence. */
uint64_t mh_notify_watchdog_usec(void);

/* $NOTIFY_SOCKET as mh_notify_init read it ("" when unset), for messages. */
const char *mh_notify_socket(void);

#endif
