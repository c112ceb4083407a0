/*
** admin.h — what `mailhook status` and the console read from the system
** without disturbing a running service: who holds a spool's deliverer lock
** (without taking it, which would make a service starting at that instant
** fail), and one page of a queue folder's ids without reading the messages.
** Blocking calls: the page reads a whole folder, so bindings run it on the
** thread pool.
*/
#ifndef MH_ADMIN_H
#define MH_ADMIN_H

#include <stddef.h>

#define MH_ADMIN_IDLEN 17   /* 16 hex digits + NUL: a spool id */

/* The pid holding the flock on SPOOL/lock, read from /proc/locks (matched by
** device and inode).  1 and *pid; 0 when nobody holds it (or there is no
** lock file); -EAGAIN when it is held but /proc/locks did not list it in 15
** reads (its list is made a page at a time and can skip an entry); another
** negative errno when /proc/locks cannot be read. */
int mh_admin_lock_holder(const char *spool_dir, long *pid);

/* The same for the file st describes (any flock'd file: rule state's locks):
** 1 and *pid, 0 when /proc/locks lists none (read three times: one read of it
** can miss a lock that is held, see admin.c), -errno. */
struct stat;
int mh_admin_flock_holder(const struct stat *st, long *pid);

/* One page of the canonical ids (ID.eml) of a folder, in enqueue order.
**   after:  ids > after (NULL: from the first)     } at most one of them;
**   before: ids < before (NULL: up to the last)    } with before, or with
**   last:   the page is the LAST `limit` ids in range (else the first)
** Fills ids[0..*n) ascending (ids holds limit entries); *total = canonical ids in
** the folder; *skipped = ids before the page (its position: the page is ids
** skipped+1 .. skipped+n of total); *others = other entries (drop-ins not yet
** adopted), not counted in total.  Memory: the page only.  0 or -errno. */
typedef struct {
  const char *after, *before;
  int last;
  size_t limit;
} mh_admin_page_opts;

int mh_admin_page(const char *dir, const mh_admin_page_opts *o, char (*ids)[MH_ADMIN_IDLEN],
                  size_t *n, size_t *total, size_t *skipped, size_t *others);

#endif
