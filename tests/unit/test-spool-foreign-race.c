/*
** test-spool-foreign-race.c -- a file written straight into pickup/ under an
** id's name (not in the spool's form) whose adoption fails (ENOSPC) is said
** once, even with a scan beside the load.  The load (foreign()) noted the
** failure AFTER adopt() released the adoption lock (amu): a scan beside it
** that saw the aside waited on amu, then pruned the note of pickup/ID.eml (a
** name it had not seen) before the load noted the failure, which was logged
** again (the race b9bf2be fixed for the scan's own adoptions).  Now the note
** is taken under amu.  The window is made exact: the loader, once it has
** released amu, waits for the whole scan beside it (pthread_mutex_unlock is
** wrapped for spool.c only).  Found by a review (review3).
*/
#include <pthread.h>
static int review_unlock(pthread_mutex_t *m);
#define pthread_mutex_unlock(m) review_unlock(m)
#include "spool.c"
#undef pthread_mutex_unlock

#include <sys/wait.h>
#include "tap.h"

static char root[512], base[256], logpath[800];
static int logfd = -1;
static mh_spool *hook_sp;
static pthread_t main_th, b_th;
static int state;   /* 0 idle, 1 B started, 2 B waits on amu, 3 B joined */
static pthread_mutex_t smu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scv = PTHREAD_COND_INITIALIZER;
static int fault_on;

static int review_unlock(pthread_mutex_t *m) {
  int rc = (pthread_mutex_unlock)(m);
  if (hook_sp && m == &hook_sp->amu && pthread_equal(pthread_self(), main_th) && state == 2) {
    pthread_join(b_th, NULL);   /* the loader, amu released: the scan beside goes to its end first */
    state = 3;
  }
  return rc;
}

static int inject(const char *where) { return fault_on && !strcmp(where, "adopt-write") ? -ENOSPC : 0; }

static void *b_scan(void *arg) {
  char err[MH_SPOOL_ERRLEN], **ids;
  long n = mh_spool_scan(hook_sp, 0, &ids, NULL, err);
  for (long k = 0; k < n; k++) free(ids[k]);
  if (n > 0) free(ids);
  return arg;
}

static void beside(const char *where) {
  if (!pthread_equal(pthread_self(), main_th)) {
    if (!strcmp(where, "adopt-wait")) {
      (pthread_mutex_lock)(&smu); state = 2; pthread_cond_signal(&scv); (pthread_mutex_unlock)(&smu);
    }
    return;
  }
  if (!strcmp(where, "adopt-taken") && state == 0) {
    state = 1;
    if (pthread_create(&b_th, NULL, b_scan, NULL)) { state = 3; return; }
    (pthread_mutex_lock)(&smu);
    while (state != 2) pthread_cond_wait(&scv, &smu);
    (pthread_mutex_unlock)(&smu);
  }
}

static int child(void *arg) {
  long h;
  char err[MH_SPOOL_ERRLEN];
  mh_spool_entry e;
  (void)arg;
  if (mh_spool_open(root, &hook_sp, err)) return 90;
  main_th = pthread_self();
  if (mh_spool_lock(hook_sp, &h)) return 91;
  test_fault = inject;
  fault_on = 1;
  memset(&e, 0, sizeof e);
  if (mh_spool_load(hook_sp, "0000000000000abc", &e, err) == 0) mh_spool_entry_free(&e);   /* alone: noted */
  if (!getenv("NO_SCAN_BESIDE")) test_point = beside; else state = 3;
  memset(&e, 0, sizeof e);
  if (mh_spool_load(hook_sp, "0000000000000abc", &e, err) == 0) mh_spool_entry_free(&e);   /* a scan beside */
  test_point = NULL;
  mh_spool_close(hook_sp);
  return state == 3 ? 0 : 93;
}

int main(void) {
  char p[700];
  snprintf(base, sizeof base, "%s/mh-foreign-race.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  snprintf(logpath, sizeof logpath, "%s/log", base);
  logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
  snprintf(root, sizeof root, "%s/spool", base);
  mkdir(root, 0700);
  { mh_spool *sp; char err[MH_SPOOL_ERRLEN]; if (mh_spool_open(root, &sp, err)) return 2; mh_spool_close(sp); }
  /* decoys the scan skips (dot files): its readdir ends past most hashes, so the
     name put back after the failure is not listed again to it (ext4 hash order) */
  for (int i = 0; i < 300; i++) {
    snprintf(p, sizeof p, "%s/pickup/.decoy%03d", root, i);
    close(open(p, O_CREAT | O_WRONLY, 0600));
  }
  snprintf(p, sizeof p, "%s/pickup/0000000000000abc.eml", root);
  FILE *f = fopen(p, "wb");
  fputs("From: a@b.c\r\nTo: x@y.z\r\nSubject: written straight into pickup/\r\n\r\nhi\r\n", f);
  fclose(f);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) { alarm(10); dup2(logfd, 2); _exit(child(NULL)); }
  int st = 0;
  waitpid(pid, &st, 0);
  is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0, "two loads of a foreign file while its adoption fails, a scan beside the second");
  FILE *lf = fopen(logpath, "rb");
  char line[4096];
  int n = 0;
  while (lf && fgets(line, sizeof line, lf)) if (strstr(line, "cannot be adopted")) n++;
  if (lf) fclose(lf);
  is_int(n, 1, "the failure to adopt pickup/0000000000000abc.eml is logged once");
  if (getenv("KEEP")) diag("log: %s", logpath); else { char cmd[600]; snprintf(cmd, sizeof cmd, "rm -rf %s", base); if (system(cmd)) {} }
  return done_testing();
}
