/*
** instpaths.c — the installed defaults of the settings file and the spool
** (see instpaths.h).  The MH_INST_* values and MH_SERVICE_USER come from the Makefile, for
** this object only; the fallbacks are the Makefile's own defaults, for
** builds that compile the core without it (the fuzzers).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "instpaths.h"

#ifndef MH_INST_PREFIX
#define MH_INST_PREFIX "/usr/local"
#endif
#ifndef MH_INST_SYSCONFDIR
#define MH_INST_SYSCONFDIR MH_INST_PREFIX "/etc"
#endif
#ifndef MH_INST_LOCALSTATEDIR
#define MH_INST_LOCALSTATEDIR MH_INST_PREFIX "/var"
#endif
#ifndef MH_MAILNAME
#define MH_MAILNAME "/etc/mailname"
#endif
#ifndef MH_SERVICE_USER
#define MH_SERVICE_USER "mailhook"
#endif

const char *mh_instpaths_prefix(void) { return MH_INST_PREFIX; }
const char *mh_instpaths_sysconfdir(void) { return MH_INST_SYSCONFDIR; }
const char *mh_instpaths_localstatedir(void) { return MH_INST_LOCALSTATEDIR; }
const char *mh_instpaths_service_user(void) { return MH_SERVICE_USER; }

const char *mh_instpaths_mailname(void) {
  const char *p = secure_getenv("MAILHOOK_MAILNAME");
  return p && *p ? p : MH_MAILNAME;
}

int mh_instpaths_defaults(const char *root, char *conf, size_t conflen, char *spool, size_t spoollen) {
  const char *prefix = MH_INST_PREFIX;
  size_t rl = strlen(root), pl = strlen(prefix);
  int a, b;
  /* ROOT ends with PREFIX on a component boundary: what comes before is the
     stage ("" for a real install); PREFIX always starts with a slash */
  if (rl >= pl && !strcmp(root + rl - pl, prefix) && (pl == 0 || prefix[0] == '/')) {
    int sl = (int)(rl - pl);
    a = snprintf(conf, conflen, "%.*s%s/mailhook/mailhook.conf", sl, root, MH_INST_SYSCONFDIR);
    b = snprintf(spool, spoollen, "%.*s%s/spool/mailhook", sl, root, MH_INST_LOCALSTATEDIR);
  } else {
    a = snprintf(conf, conflen, "%s/etc/mailhook/mailhook.conf", root);
    b = snprintf(spool, spoollen, "%s/var/spool/mailhook", root);
  }
  if (a < 0 || (size_t)a >= conflen || b < 0 || (size_t)b >= spoollen) {
    if (conflen) conf[0] = 0;
    if (spoollen) spool[0] = 0;
    return -ENAMETOOLONG;
  }
  return 0;
}
