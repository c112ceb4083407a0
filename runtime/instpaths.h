/*
** instpaths.h — where an installed mailhook keeps its settings and its spool.
** The FHS and autoconf place them by SYSCONFDIR and LOCALSTATEDIR, which are
** not under PREFIX when PREFIX is /usr (/etc and /var, not /usr/etc and
** /usr/var).  The Makefile compiles PREFIX, SYSCONFDIR and LOCALSTATEDIR into
** instpaths.c alone, so `make install PREFIX=...` rebuilds one object, and
** main.c and the embedding API (l_embed.c) share one rule for the defaults.
*/
#ifndef MH_INSTPATHS_H
#define MH_INSTPATHS_H

#include <stddef.h>

/* The compiled-in PREFIX, SYSCONFDIR, LOCALSTATEDIR (no trailing slash). */
const char *mh_instpaths_prefix(void);
const char *mh_instpaths_sysconfdir(void);
const char *mh_instpaths_localstatedir(void);
/* The service's account (SERVICE_USER, `mailhook`): the one user root switches
** to when the spool is its own (privdrop.h). */
const char *mh_instpaths_service_user(void);

/* The machine's mail name file (Debian policy 11.6: /etc/mailname, the domain
** Postfix's myorigin, Exim's qualify domain and nullmailer use): where the
** settings find the default of default_domain when `from` names none.
** $MAILHOOK_MAILNAME when set and not empty (read with secure_getenv: a
** setuid or setgid caller cannot point it elsewhere; the tests point it at a
** file of their own, never the machine's), else the compiled MH_MAILNAME
** (/etc/mailname). */
const char *mh_instpaths_mailname(void);

/* The default settings file and spool of an installed tree whose PREFIX was
** found at ROOT (the binary's ROOT/bin/mailhook, from /proc/self/exe):
**   ROOT == PREFIX                 SYSCONFDIR/mailhook/mailhook.conf and
**                                  LOCALSTATEDIR/spool/mailhook
**   ROOT == STAGE + PREFIX         the same under STAGE: a tree staged with
**                                  `make install DESTDIR=STAGE`, or a package
**                                  unpacked with `dpkg -x PKG STAGE`, finds
**                                  its own files, never the machine's
**   anything else (a moved tree)   ROOT/etc/mailhook/mailhook.conf and
**                                  ROOT/var/spool/mailhook
** Returns 0, or -ENAMETOOLONG when a result would not fit (then both are ""). */
int mh_instpaths_defaults(const char *root, char *conf, size_t conflen, char *spool, size_t spoollen);

#endif
