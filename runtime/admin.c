/*
** admin.c — read-only probes of a spool for status and the console (see
** admin.h): the deliverer lock's holder and pages of a queue folder.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "admin.h"
#include "fsutil.h"
#include "spool.h"

/* /proc/locks is made a page at a time, the lock list let go between pages:
** a lock before ours released meanwhile shifts the list, and ours is not
** listed in that read (4 reads in 8,930 missed a held lock with 180 others
** changing hands; 7 in 4,590 looks of three reads each with 300).  A
** `mailhook flush` polling it took that for "the service went away" and
** ended early (flush-wait.sh in CI, beside the browser tests' locks).  So a
** lock not listed is looked at itself (mh_admin_lock_holder). */
#define LOCK_READS 3

int mh_admin_flock_holder(const struct stat *st, long *pid) {
  return mh_fsutil_flock_holder(st, LOCK_READS, pid);
}

int mh_admin_lock_holder(const char *spool_dir, long *pid) {
  char path[4096];
  struct stat st;
  int rc, fd, e;
  snprintf(path, sizeof path, "%s/lock", spool_dir);
  if (stat(path, &st) < 0) return errno == ENOENT ? 0 : -errno;
  if ((rc = mh_admin_flock_holder(&st, pid)) != 0) return rc;
  /* not listed: held or not, the lock itself says.  A shared lock tried
     without waiting and let go at once: refused, it is held (its holder
     unnamed: -EAGAIN); had, nobody holds it.  (Had for microseconds, when the
     holder is gone: a service starting in that instant finds the spool
     held, as it would beside another starting one.) */
  if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0) return errno == ENOENT ? 0 : -errno;
  rc = flock(fd, LOCK_SH | LOCK_NB);
  e = errno;
  close(fd);
  if (rc == 0) return 0;
  if (e != EWOULDBLOCK) return -e;
  /* held: its holder, from more reads (the churn that hid it passes) */
  if ((rc = mh_fsutil_flock_holder(&st, 4 * LOCK_READS, pid)) != 0) return rc;
  return -EAGAIN;
}

/* A canonical id's value (16 lowercase hex digits, as the spool writes them). */
static uint64_t id_value(const char *id) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) v = v * 16 + (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
  return v;
}

/* A bounded heap keeping the `cap` best values: the smallest (max-heap on
** top, `largest` = 0) or the largest (min-heap, `largest` = 1). */
typedef struct {
  uint64_t *v;
  size_t n, cap;
  int largest;
} heap_t;

static int worse(const heap_t *h, uint64_t a, uint64_t b) {  /* a goes out before b */
  return h->largest ? a < b : a > b;
}

static void sift_down(heap_t *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < h->n && worse(h, h->v[l], h->v[m])) m = l;
    if (l + 1 < h->n && worse(h, h->v[l + 1], h->v[m])) m = l + 1;
    if (m == i) return;
    uint64_t t = h->v[i]; h->v[i] = h->v[m]; h->v[m] = t;
    i = m;
  }
}

static void heap_offer(heap_t *h, uint64_t x) {
  if (h->n < h->cap) {
    size_t i = h->n++;
    h->v[i] = x;
    while (i > 0 && worse(h, h->v[i], h->v[(i - 1) / 2])) {
      uint64_t t = h->v[i]; h->v[i] = h->v[(i - 1) / 2]; h->v[(i - 1) / 2] = t;
      i = (i - 1) / 2;
    }
  } else if (h->cap > 0 && worse(h, h->v[0], x)) {
    h->v[0] = x;
    sift_down(h, 0);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int mh_admin_page(const char *dir, const mh_admin_page_opts *o, char (*ids)[MH_ADMIN_IDLEN],
                  size_t *n, size_t *total, size_t *skipped, size_t *others) {
  DIR *d;
  struct dirent *de;
  heap_t h = { NULL, 0, o->limit, o->last };
  uint64_t after = 0, before = UINT64_MAX;
  int has_after = o->after && mh_spool_is_id(o->after);
  int has_before = o->before && mh_spool_is_id(o->before);
  size_t below = 0, above = 0;   /* ids <= after, ids >= before */
  *n = *total = *skipped = *others = 0;
  if (has_after) after = id_value(o->after);
  if (has_before) before = id_value(o->before);
  uint64_t *jv = NULL;   /* pickup/: delivered, not yet removed (spool.h, the delivered journal) */
  size_t nj = 0;
  if (o->limit && !(h.v = malloc(o->limit * sizeof *h.v))) return -ENOMEM;
  {
    const char *base = strrchr(dir, '/');
    if (!strcmp(base ? base + 1 : dir, "pickup")) {
      char parent[4200];
      int pfd;
      snprintf(parent, sizeof parent, "%s/..", dir);
      if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        mh_spool_journal_read(pfd, &jv, &nj);
        close(pfd);
      }
    }
  }
  if (!(d = opendir(dir))) { free(h.v); free(jv); return -errno; }
  for (;;) {
    const char *nm;
    size_t nl;
    char id[MH_ADMIN_IDLEN];
    errno = 0;
    if (!(de = readdir(d))) {
      int e = errno;
      closedir(d);
      free(jv);
      if (e) { free(h.v); return -e; }
      break;
    }
    nm = de->d_name;
    nl = strlen(nm);
    if (nm[0] == '.' || (nl > 6 && !strcmp(nm + nl - 6, ".state"))) continue;
    if (!(nl == 20 && !strcmp(nm + 16, ".eml") && (memcpy(id, nm, 16), id[16] = 0, mh_spool_is_id(id)))) {
      (*others)++;
      continue;
    }
    if (nj && mh_spool_journal_has(jv, nj, id)) continue;
    uint64_t v = id_value(id);
    (*total)++;
    if (has_after && v <= after) { below++; continue; }
    if (has_before && v >= before) { above++; continue; }
    heap_offer(&h, v);
  }
  if (h.n > 1) qsort(h.v, h.n, sizeof *h.v, cmp_u64);   /* h.v is NULL when limit is 0 */
  for (size_t i = 0; i < h.n; i++) snprintf(ids[i], MH_ADMIN_IDLEN, "%016" PRIx64, h.v[i]);
  *n = h.n;
  /* smallest-first: every id in range not taken lies after the page; largest-
     first: before it */
  *skipped = o->last ? *total - above - h.n : below;
  free(h.v);
  return 0;
}
