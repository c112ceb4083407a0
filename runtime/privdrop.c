/*
** privdrop.c — root becomes the owner of the spool (see privdrop.h).
*/
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include "privdrop.h"

static int switched;            /* mh_privdrop_to_owner became the spool's owner */
static unsigned long caller_uid; /* the real uid before it */

unsigned long mh_privdrop_caller(void) { return switched ? caller_uid : (unsigned long)getuid(); }

int mh_privdrop_to_owner(const char *dir, const char *user) {
  struct stat st;
  struct passwd *pw;
  gid_t gid;
  if (geteuid() != 0 || !dir || !*dir || !user || !*user) return 0;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid == 0) return 0;
  pw = getpwnam(user);
  if (!pw || pw->pw_uid != st.st_uid || pw->pw_uid == 0) return 0;   /* not the service's spool */
  gid = pw->pw_gid;
  /* groups first (they need root), then the gid, the uid last */
  caller_uid = (unsigned long)getuid();
  if (initgroups(pw->pw_name, gid) < 0) return -errno;
  if (setgid(gid) < 0 || setuid(st.st_uid) < 0) return -errno;
  if (setuid(0) == 0 || geteuid() == 0 || getegid() != gid) return -EPERM;   /* for good */
  switched = 1;
  return 1;
}
