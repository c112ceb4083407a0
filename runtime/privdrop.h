/*
** privdrop.h — root works as the owner of the spool.
**
** The service runs as a dedicated user (the package's `mailhook`) and can
** read only what that user may: a message that root's `sendmail` (cron, a
** PBX's hook run as root) wrote into the spool as a root-owned 0600 file
** would wait there forever, and rule state or a settings file root rewrote
** would lock the service out the same way.  So a process running as root
** whose spool folder belongs to the service's account (SERVICE_USER, by
** name) becomes that user (its primary group and supplementary groups too)
** before it touches anything: every file stays the service's, and rules and
** scripts never run as root.  Only that account: a spool some other user
** owns (one who pre-created it, say, with links planted in it) is not a
** reason to become them; root stays root and the spool's own check refuses
** that folder, naming its owner (spool.c).  A spool owned by root (a test's,
** a root-only setup) changes nothing.
*/
#ifndef MH_PRIVDROP_H
#define MH_PRIVDROP_H

#include <stddef.h>

/* When the effective user is root and DIR (the spool folder, followed if it
** is a symbolic link) exists and belongs to the account named USER: switch
** to that user for good (groups, gid, uid; root cannot be regained).  Returns 1 when
** it switched, 0 when there was nothing to do, -errno when a step failed (the
** caller must stop then: a half-dropped process must not go on). */
int mh_privdrop_to_owner(const char *dir, const char *user);

/* The uid of the caller: getuid(), or root's when mh_privdrop_to_owner switched
** (root's `sendmail` is root's mail, recorded as uid 0 in its Received line,
** the mail log and the queue's USER; it read as the service's uid). */
unsigned long mh_privdrop_caller(void);

#endif
