/*
** test-spool-journal.c — the delivered journal (runtime/spool.c, "the
** delivered journal"; issue 16 point 2): a message recorded as delivered is
** gone for every reader of the spool (scan, load, the listing, remove, retry;
** in the deliverer and in any other process) while its file waits for a purge;
** a purge removes exactly the recorded files, also when a record arrives while
** it runs; a deliverer killed before or during a purge leaves nothing that the
** next one sends again (the lock replays the journal); a record that cannot be
** written records nothing.
**
** This file compiles runtime/spool.c itself (with -DMH_TESTS): test_point runs
** a competitor, or ends a child process, exactly inside a purge; test_fault
** makes the record's write fail.
*/
#include "spool.c"

#include <pthread.h>
#include <sys/wait.h>
#include "tap.h"
#include "spool-helpers.h"

static char root[512];

/* A set-up step failed: nothing after it would mean anything. */
static void bail_out(const char *fmt, const char *a, const char *b) {
  printf("Bail out! ");
  printf(fmt, a, b);
  printf("\n");
  exit(1);
}

static void path_of(char *out, size_t n, const char *rel) { snprintf(out, n, "%s/%s", root, rel); }

static int exists(const char *rel) {
  char p[700];
  path_of(p, sizeof p, rel);
  return access(p, F_OK) == 0;
}

static void put(const char *rel, const char *content) {
  char p[700];
  path_of(p, sizeof p, rel);
  FILE *f = fopen(p, "wb");
  if (f) { fputs(content, f); fclose(f); }
}

static const char *contents(const char *rel) {
  char p[700];
  path_of(p, sizeof p, rel);
  return slurp(p);
}

static int count_pickup(void) {
  char p[700];
  DIR *d;
  struct dirent *de;
  int n = 0;
  path_of(p, sizeof p, "pickup");
  if (!(d = opendir(p))) return -1;
  while ((de = readdir(d))) if (de->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* Queues n messages; their ids into ids[]. */
static void queue(mh_spool *sp, int n, char ids[][MH_SPOOL_IDLEN]) {
  static const char *to[] = { "d@e.f" };
  char err[MH_SPOOL_ERRLEN];
  for (int i = 0; i < n; i++) {
    mh_spool_item it = { .from = "a@b.c", .to = to, .nto = 1, .write = write_bytes,
                         .arg = (void *)"Subject: x\r\n\r\nbody\r\n" };
    if (mh_spool_enqueue(sp, &it, 1, err)) { diag("enqueue: %s", err); ids[i][0] = '\0'; continue; }
    memcpy(ids[i], it.id, MH_SPOOL_IDLEN);
  }
}

/* The ids a scan returns, as one string "id id ..." (and how many). */
static long scan_str(mh_spool *sp, char *out, size_t cap) {
  char **ids, err[MH_SPOOL_ERRLEN];
  long total = 0, n = mh_spool_scan(sp, 0, &ids, &total, err);
  out[0] = '\0';
  for (long i = 0; i < n; i++) {
    size_t l = strlen(out);
    snprintf(out + l, cap - l, "%s%s", l ? " " : "", ids[i]);
    free(ids[i]);
  }
  if (n >= 0) free(ids);
  return n < 0 ? n : total;
}

static int listed(mh_spool *sp) {
  mh_spool_iter *it;
  mh_spool_entry e;
  int n = 0;
  if (mh_spool_iter_open(sp, 0, &it)) return -1;
  while (mh_spool_iter_next(it, &e) == 1) { n++; mh_spool_entry_free(&e); }
  mh_spool_iter_close(it);
  return n;
}

/* Every test's spool lives under base (removed at the end). */
static char base[256];

static void fresh(const char *name, mh_spool **sp) {
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "%s/%s", base, name);
  mkdir(root, 0700);
  if (mh_spool_open(root, sp, err)) bail_out("open %s: %s", root, err);
}

static void test_readers(void) {
  mh_spool *sp, *other;
  char ids[4][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], got[200], want[200], rec[64];
  mh_spool_entry e;
  fresh("readers", &sp);
  queue(sp, 4, ids);
  is_int(mh_spool_open(root, &other, err), 0, "a second handle on the spool (another process's view)");
  is_int(mh_spool_mark(other, ids[0], -1, err), MH_EINVAL, "only the lock holder records deliveries: %s", err);
  is_int(mh_spool_lock(sp, NULL), 0, "the deliverer takes the lock");
  is_int(mh_spool_mark(sp, "../x", -1, err), MH_EINVAL, "a bad id is refused");
  is_int(mh_spool_mark(sp, ids[0], -1, err), 0, "delivered: recorded");
  is_int(mh_spool_mark(sp, ids[1], -1, err), 0, "a second one");
  snprintf(rec, sizeof rec, "%s\n%s\n", ids[0], ids[1]);
  is_str(contents("delivered"), rec, "DIR/delivered holds one line per record, in order");
  is_int(count_pickup(), 4, "their files are still in pickup/ (removed by a purge)");
  is_int((long)mh_spool_marked(sp), 2, "two records wait for a purge");

  snprintf(want, sizeof want, "%s %s", ids[2], ids[3]);
  is_int(scan_str(sp, got, sizeof got), 2, "the deliverer's scan counts the two left");
  is_str(got, want, "and lists only them");
  is_int(mh_spool_load(sp, ids[0], &e, err), MH_ENOTFOUND, "load of a delivered one: not found");
  ok(mh_spool_load(sp, ids[2], &e, err) == 0, "load of one still queued works");
  mh_spool_entry_free(&e);
  is_int(listed(sp), 2, "the listing leaves the delivered ones out");
  is_int(mh_spool_remove(sp, ids[1], err), MH_ENOTFOUND, "queue rm of a delivered one: not found");
  is_int(mh_spool_retry(sp, ids[1], err), MH_ENOTFOUND, "queue retry of a delivered one: not found");

  /* another process reads the journal file */
  is_int(scan_str(other, got, sizeof got), 2, "another process's scan counts the two left");
  is_str(got, want, "and lists only them");
  is_int(mh_spool_load(other, ids[1], &e, err), MH_ENOTFOUND, "its load of a delivered one: not found");
  is_int(listed(other), 2, "its listing leaves them out");
  is_int(mh_spool_remove(other, ids[0], err), MH_ENOTFOUND, "its queue rm of a delivered one: not found");

  is_int(mh_spool_sync(sp, err), 0, "sync (the records' fsync)");
  is_int((int)mh_spool_purge(sp, err), 2, "purge removes the two recorded files");
  is_int(count_pickup(), 2, "two files left in pickup/");
  ok(!exists("delivered") && !exists("delivered.old"), "no journal file left");
  is_int((long)mh_spool_marked(sp), 0, "nothing waits");
  is_int((int)mh_spool_purge(sp, err), 0, "a purge with nothing recorded removes nothing");
  is_int(scan_str(other, got, sizeof got), 2, "the other process still sees the two queued");
  is_int(mh_spool_mark(sp, ids[2], -1, err), 0, "a record after the purge");
  snprintf(rec, sizeof rec, "%s\n", ids[2]);
  is_str(contents("delivered"), rec, "starts a new journal file");
  mh_spool_close(other);
  mh_spool_close(sp);
}

/* A record made while a purge runs (test_point between the rename and the
** unlinks: the deliverer goes on on its loop thread) stays, with its file,
** for the next purge. */
static mh_spool *racing;
static char race_id[MH_SPOOL_IDLEN];
static int race_rc = 99;
static void mark_during_purge(const char *where) {
  char err[MH_SPOOL_ERRLEN];
  if (!strcmp(where, "purge-renamed") && race_rc == 99) race_rc = mh_spool_mark(racing, race_id, -1, err);
}

/* A spool of three messages, locked, the first two recorded: the third is the
** one a test point records while a purge runs (racing, race_id). */
static mh_spool *two_recorded(const char *name, char ids[3][MH_SPOOL_IDLEN]) {
  mh_spool *sp;
  char err[MH_SPOOL_ERRLEN];
  fresh(name, &sp);
  queue(sp, 3, ids);
  mh_spool_lock(sp, NULL);
  mh_spool_mark(sp, ids[0], -1, err);
  mh_spool_mark(sp, ids[1], -1, err);
  racing = sp;
  race_rc = 99;
  memcpy(race_id, ids[2], MH_SPOOL_IDLEN);
  return sp;
}

static void test_race(void) {
  mh_spool *sp;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], got[200], file[64];
  sp = two_recorded("race", ids);
  test_point = mark_during_purge;
  is_int((int)mh_spool_purge(sp, err), 2, "a purge removes the two recorded before it began");
  test_point = NULL;
  is_int(race_rc, 0, "a record was made while it ran");
  snprintf(file, sizeof file, "pickup/%s.eml", ids[2]);
  ok(exists(file), "that message's file was left for the next purge");
  is_int(scan_str(sp, got, sizeof got), 0, "and it is not queued: delivered");
  is_int((long)mh_spool_marked(sp), 1, "one record waits");
  is_int((int)mh_spool_purge(sp, err), 1, "the next purge removes it");
  ok(!exists(file) && count_pickup() == 0, "pickup/ is empty");
  mh_spool_close(sp);
}

/* A purge asked while another runs (two workers going idle one after the
** other) waits for it, then removes what was recorded since: it used to
** return 0 at once, and those files stayed until the next delivery. */
static pthread_t second;
static int second_started;
static long second_rc = -99;
static void *purge_again(void *arg) {
  char err[MH_SPOOL_ERRLEN];
  second_rc = mh_spool_purge((mh_spool *)arg, err);
  return NULL;
}
static void mark_and_purge_again(const char *where) {
  char err[MH_SPOOL_ERRLEN];
  if (strcmp(where, "purge-renamed") || second_started) return;
  race_rc = mh_spool_mark(racing, race_id, -1, err);
  second_started = pthread_create(&second, NULL, purge_again, racing) == 0;
}

static void test_second_purge(void) {
  mh_spool *sp;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], file[64];
  sp = two_recorded("second", ids);
  test_point = mark_and_purge_again;
  is_int((int)mh_spool_purge(sp, err), 2, "the first purge removes the two recorded before it");
  test_point = NULL;
  ok(second_started, "a second purge was asked while it ran, after one more record");
  if (second_started) pthread_join(second, NULL);
  is_int((int)second_rc, 1, "the second waited for the first, then removed that record's file");
  snprintf(file, sizeof file, "pickup/%s.eml", ids[2]);
  ok(!exists(file) && count_pickup() == 0, "pickup/ is empty when both returned");
  is_int((long)mh_spool_marked(sp), 0, "nothing waits");
  mh_spool_close(sp);
}

/* Two scans of one lock holder at once (the deliverer's, and the service's
** status count every few seconds: both on the thread pool) met the same
** drop-in: each adopted it under an id of its own, and the message was sent
** twice (CI, intake-dropin-local.sh under ASan: "changed@example.org
** changed@example.org").  The second scan is run while the first one is
** inside its adoption, and given a second to finish. */
static pthread_t other_scan;
static volatile int other_done;
static int other_started;
static void *scan_once(void *arg) {
  char str[200];
  scan_str((mh_spool *)arg, str, sizeof str);
  other_done = 1;
  return NULL;
}
static void scan_meanwhile(const char *where) {
  if (strcmp(where, "adopt-checked") || other_started) return;
  other_started = pthread_create(&other_scan, NULL, scan_once, racing) == 0;
  for (int i = 0; i < 100 && other_started && !other_done; i++) usleep(10000);
}

static void test_adopt_once(void) {
  mh_spool *sp;
  char str[200];
  long holder = 0;
  fresh("adopt", &sp);
  if (mh_spool_lock(sp, &holder)) bail_out("lock %s%s", root, "");
  put("pickup/dropin.eml", "To: a@b.c\r\nSubject: once\r\n\r\nbody\r\n");
  racing = sp;
  test_point = scan_meanwhile;
  scan_str(sp, str, sizeof str);
  test_point = NULL;
  ok(other_started, "a second scan ran while the first was adopting the drop-in");
  if (other_started) pthread_join(other_scan, NULL);
  is_int(count_pickup(), 1, "the drop-in was adopted once: one message in pickup/, not two");
  is_int((int)scan_str(sp, str, sizeof str), 1, "one message queued (%s)", str);
  mh_spool_close(sp);
}

/* A deliverer killed with records and no purge, or in the middle of one (a
** child ends itself at a test point: _exit, no clean-up, as a SIGKILL): the
** next lock holder removes what was recorded and sends it again never. */
static const char *die_at;
static void die_here(const char *where) { if (!strcmp(where, die_at)) _exit(0); }

static void killed_deliverer(const char *point, const char *what) {
  mh_spool *sp;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], got[200];
  pid_t pid;
  int status;
  char name[64];
  snprintf(name, sizeof name, "kill-%s", point ? point : "none");
  fresh(name, &sp);
  queue(sp, 3, ids);
  mh_spool_close(sp);
  fflush(stdout);
  if ((pid = fork()) == 0) {
    mh_spool *c;
    if (mh_spool_open(root, &c, err) || mh_spool_lock(c, NULL)) _exit(1);
    mh_spool_mark(c, ids[0], -1, err);
    mh_spool_mark(c, ids[1], -1, err);
    if (!point) _exit(0);                 /* killed before any purge */
    die_at = point;
    test_point = die_here;
    mh_spool_purge(c, err);
    _exit(2);                             /* the point was not reached */
  }
  waitpid(pid, &status, 0);
  is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "%s: the deliverer died there", what);
  if (mh_spool_open(root, &sp, err)) bail_out("reopen %s: %s", root, err);
  is_int(scan_str(sp, got, sizeof got), 1, "%s: before the lock, a reader sees one message queued", what);
  is_int(mh_spool_lock(sp, NULL), 0, "%s: the next deliverer takes the lock", what);
  is_int(scan_str(sp, got, sizeof got), 1, "%s: it is given only the one never delivered", what);
  is_str(got, ids[2], "%s: (that one)", what);
  is_int(count_pickup(), 1, "%s: the two delivered files were removed at the lock", what);
  ok(!exists("delivered") && !exists("delivered.old"), "%s: no journal file left", what);
  is_int((long)mh_spool_marked(sp), 0, "%s: nothing waits", what);
  mh_spool_close(sp);
}

/* Journal files as a power cut or an old crash may leave them: a torn last
** line, a line that is no id, both files at once. */
static void test_replay_files(void) {
  mh_spool *sp;
  char ids[4][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], got[200], buf[200], file[64];
  fresh("files", &sp);
  queue(sp, 4, ids);
  mh_spool_close(sp);
  snprintf(buf, sizeof buf, "%s\nnot an id\n%.10s", ids[0], ids[1]);   /* torn: ids[1] never recorded */
  put("delivered.old", buf);
  snprintf(buf, sizeof buf, "%s\n", ids[2]);
  put("delivered", buf);
  if (mh_spool_open(root, &sp, err)) bail_out("reopen %s: %s", root, err);
  is_int(scan_str(sp, got, sizeof got), 2, "a reader reads both files: two left");
  mh_spool_lock(sp, NULL);
  is_int(count_pickup(), 2, "the lock removed the two recorded whole (both files)");
  snprintf(file, sizeof file, "pickup/%s.eml", ids[1]);
  ok(exists(file), "the torn record removed nothing");
  snprintf(buf, sizeof buf, "%s %s", ids[1], ids[3]);
  scan_str(sp, got, sizeof got);
  is_str(got, buf, "and the two not recorded are queued");
  mh_spool_close(sp);
}

/* A record that cannot be written (a full disk) records nothing. */
static int fail_journal(const char *where) { return !strcmp(where, "journal") ? -ENOSPC : 0; }

static void test_write_fails(void) {
  mh_spool *sp;
  char ids[1][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], got[200];
  fresh("full", &sp);
  queue(sp, 1, ids);
  mh_spool_lock(sp, NULL);
  test_fault = fail_journal;
  is_int(mh_spool_mark(sp, ids[0], -1, err), -ENOSPC, "a failed write: the error (%s)", err);
  test_fault = NULL;
  ok(strstr(err, "delivered") != NULL, "naming the journal");
  is_int((long)mh_spool_marked(sp), 0, "nothing recorded in memory");
  is_str(contents("delivered") ? contents("delivered") : "", "", "nor in the file");
  is_int(scan_str(sp, got, sizeof got), 1, "the message is still queued (the caller unlinks it instead)");
  mh_spool_close(sp);
}

/* `queue rm` while the message was sent: its 250 is recorded all the same (the
** record names that message only, and no fstat per message looks first), the
** purge takes the file gone as done and says it was removed meanwhile, by
** name or through the file the deliverer holds open; one still there is
** removed and not said so.  The log goes to a file here (stderr). */
static void test_removed_meanwhile(void) {
  mh_spool *sp;
  mh_spool_entry e;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], name[64], p[700], logp[700], line[200];
  int fd, saved, logfd;
  fresh("rm", &sp);
  queue(sp, 3, ids);
  mh_spool_lock(sp, NULL);
  is_int(mh_spool_remove(sp, ids[0], err), 0, "queue rm of the first");
  is_int(mh_spool_mark(sp, ids[0], -1, err), 0, "its 250 is recorded all the same");
  snprintf(name, sizeof name, "pickup/%s.eml", ids[1]);
  path_of(p, sizeof p, name);
  fd = open(p, O_RDONLY);
  is_int(mh_spool_remove(sp, ids[1], err), 0, "queue rm of one the deliverer holds open");
  is_int(mh_spool_mark(sp, ids[1], fd, err), 0, "recorded too");
  is_int(mh_spool_mark(sp, ids[2], -1, err), 0, "one still there is recorded");
  if (fd >= 0) close(fd);
  is_int((long)mh_spool_marked(sp), 3, "the three wait for a purge");
  is_int(mh_spool_load(sp, ids[0], &e, err), MH_ENOTFOUND, "the one removed is not a message");
  path_of(logp, sizeof logp, "rm.log");
  fflush(stderr);
  saved = dup(2);
  logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(logfd, 2);
  mh_log_set_level(MH_LOG_INFO);
  long removed = mh_spool_purge(sp, err);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(logfd);
  is_int(removed, 1, "the purge removes the one file still there, the others taken as done");
  is_int((long)mh_spool_marked(sp), 0, "nothing waits any more");
  is_int(count_pickup(), 0, "pickup/ is empty");
  const char *log = contents("rm.log");
  for (int k = 0; k < 3; k++) {
    snprintf(line, sizeof line, "%s was delivered; it had been removed meanwhile (mailhook queue rm)", ids[k]);
    if (k < 2) ok(log && strstr(log, line) != NULL, "the purge says %s was removed meanwhile", ids[k]);
    else ok(log && strstr(log, line) == NULL, "and not of the one it removed");
  }
  mh_spool_close(sp);
}

/* Loads id as the deliverer does (after a scan: the listing; data read whole). */
static int deliverer_load(mh_spool *sp, const char *id, mh_spool_entry *e, char *err) {
  char **ids;
  long n = mh_spool_scan(sp, 0, &ids, NULL, err);
  for (long i = 0; i < n; i++) free(ids[i]);
  if (n >= 0) free(ids);
  return mh_spool_load_ex(sp, id, e, 1 << 20, NULL, err);
}

/* Runs the purge with stderr into DIR/NAME; the log's text. */
static const char *purge_logged(mh_spool *sp, const char *name, long *removed) {
  char logp[700], err[MH_SPOOL_ERRLEN];
  int saved, logfd;
  path_of(logp, sizeof logp, name);
  fflush(stderr);
  saved = dup(2);
  logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(logfd, 2);
  mh_log_set_level(MH_LOG_INFO);
  *removed = mh_spool_purge(sp, err);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(logfd);
  return contents(name);
}

/* Review 2 F9: a message edited in place (`sed -i`: a new file renamed over
** pickup/ID.eml) after its load, while the server answered its final dot.
** The original was sent; the purge removed the edited file by name, without a
** word.  Now the purge removes a name only while the file loaded is under it:
** the replaced one goes to corrupt/, said so; the untouched ones go. */
static void test_replaced_after_load(void) {
  mh_spool *sp;
  mh_spool_entry e;
  char ids[2][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], rel[64], tmp[64], p[700], q[700];
  long removed = -1;
  fresh("replaced", &sp);
  queue(sp, 2, ids);
  mh_spool_lock(sp, NULL);
  for (int k = 0; k < 2; k++) {
    is_int(deliverer_load(sp, ids[k], &e, err), 0, "the deliverer loads %s", ids[k]);
    mh_spool_entry_free(&e);
  }
  /* sed -i: a new file, renamed over the name */
  snprintf(rel, sizeof rel, "pickup/%s.eml", ids[0]);
  snprintf(tmp, sizeof tmp, "pickup/sed%s", ids[0]);
  put(tmp, "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nSubject: edited\r\n\r\nnew body\r\n");
  path_of(p, sizeof p, tmp);
  path_of(q, sizeof q, rel);
  ok(rename(p, q) == 0, "%s is edited in place (renamed over) after its load", ids[0]);
  for (int k = 0; k < 2; k++) is_int(mh_spool_mark(sp, ids[k], -1, err), 0, "its 250 is recorded");
  const char *log = purge_logged(sp, "replaced.log", &removed);
  ok(log && strstr(log, "was replaced after") && strstr(log, ids[0]) && strstr(log, "moved to corrupt/"),
     "the purge says so (%s)", log ? log : "(no log)");
  is_int(removed, 1, "the purge removes the one that was not replaced");
  ok(!exists(rel), "the name is no longer in pickup/");
  snprintf(rel, sizeof rel, "corrupt/%s.eml", ids[0]);
  ok(exists(rel), "the edited file is kept in corrupt/");
  const char *c = contents(rel);
  ok(c && strstr(c, "new body") != NULL, "it is the edited one");
  snprintf(rel, sizeof rel, "pickup/%s.eml", ids[1]);
  ok(!exists(rel), "the other one is removed as before");
  is_int(count_pickup(), 0, "pickup/ is empty");
  mh_spool_close(sp);
}

/* A message the server took whose record failed (a full disk), then its unlink
** (EIO): kept as recorded in memory (mh_spool_mark_memory, faults10), its file
** removed by the next purge.  That purge looks at the file as it does for a
** record: one edited in place meanwhile is not the one sent, and goes to
** corrupt/.  The failed record had taken the inode its load noted, and the
** record in memory had none: the purge removed the edited file by name. */
static void test_memory_replaced(void) {
  mh_spool *sp;
  mh_spool_entry e;
  char ids[2][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], rel[64], tmp[64], p[700], q[700];
  long removed = -1;
  fresh("memrepl", &sp);
  queue(sp, 2, ids);
  mh_spool_lock(sp, NULL);
  for (int k = 0; k < 2; k++) {
    is_int(deliverer_load(sp, ids[k], &e, err), 0, "the deliverer loads %s", ids[k]);
    mh_spool_entry_free(&e);
  }
  test_fault = fail_journal;
  is_int(mh_spool_mark(sp, ids[0], -1, err), -ENOSPC, "the record of %s fails (%s)", ids[0], err);
  test_fault = NULL;
  /* (its unlink failed too: not done here) */
  is_int(mh_spool_mark_memory(sp, ids[0], err), 0, "kept as recorded in memory");
  is_int(mh_spool_mark(sp, ids[1], -1, err), 0, "the other one's 250 is recorded");
  /* sed -i: a new file, renamed over the name, before the purge */
  snprintf(rel, sizeof rel, "pickup/%s.eml", ids[0]);
  snprintf(tmp, sizeof tmp, "pickup/sed%s", ids[0]);
  put(tmp, "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nSubject: edited\r\n\r\nnew body\r\n");
  path_of(p, sizeof p, tmp);
  path_of(q, sizeof q, rel);
  ok(rename(p, q) == 0, "%s is edited in place after its send", ids[0]);
  const char *log = purge_logged(sp, "memrepl.log", &removed);
  ok(log && strstr(log, "was replaced after") && strstr(log, ids[0]),
     "the purge says the file was replaced (%s)", log ? log : "(no log)");
  is_int(removed, 1, "the purge removes only the one not replaced");
  snprintf(rel, sizeof rel, "corrupt/%s.eml", ids[0]);
  ok(exists(rel), "the edited file is kept in corrupt/, not removed unseen");
  is_int(count_pickup(), 0, "pickup/ is empty");
  mh_spool_close(sp);
}

/* A drop-in adopted by the scan that lists it: the inode the purge checks is
** its copy's (ID.eml), not the drop-in's entry the scan read.  With the
** drop-in's, every adopted message was taken for one replaced after its send
** and moved to corrupt/ once delivered. */
static void test_adopted_purged(void) {
  mh_spool *sp;
  mh_spool_entry e;
  char **ids, err[MH_SPOOL_ERRLEN], id[MH_SPOOL_IDLEN], rel[64];
  long n, removed = -1;
  fresh("adopted", &sp);
  mh_spool_lock(sp, NULL);
  put("pickup/alarm.eml", "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nSubject: drop\r\n\r\nbody\r\n");
  n = mh_spool_scan(sp, 0, &ids, NULL, err);
  is_int(n, 1, "the scan adopts the drop-in and lists its copy");
  if (n != 1) { mh_spool_close(sp); return; }
  memcpy(id, ids[0], MH_SPOOL_IDLEN);
  free(ids[0]);
  free(ids);
  is_int(mh_spool_load_ex(sp, id, &e, 1 << 20, NULL, err), 0, "the deliverer loads it");
  mh_spool_entry_free(&e);
  is_int(mh_spool_mark(sp, id, -1, err), 0, "its 250 is recorded");
  const char *log = purge_logged(sp, "adopted.log", &removed);
  is_int(removed, 1, "the purge removes it");
  ok(!log || !strstr(log, "replaced"), "without a word about a replaced file (%s)", log ? log : "");
  snprintf(rel, sizeof rel, "corrupt/%s.eml", id);
  ok(!exists(rel), "nothing in corrupt/");
  is_int(count_pickup(), 0, "pickup/ is empty");
  mh_spool_close(sp);
}

/* Review 2 F8: a spool file cut short (or written over at another size)
** after it was queued is never sent as if whole: the envelope's X-Spool-Size
** is the message's size when it was queued, and a load of a file of another
** size refuses it (the lock holder's moves it to corrupt/, saying why).  A
** file written before the line existed loads as before. */
static void test_size_record(void) {
  mh_spool *sp;
  mh_spool_entry e;
  char ids[3][MH_SPOOL_IDLEN], err[MH_SPOOL_ERRLEN], rel[64], p[700];
  struct stat st;
  fresh("size", &sp);
  queue(sp, 3, ids);
  snprintf(rel, sizeof rel, "pickup/%s.eml", ids[0]);
  const char *c = contents(rel);
  ok(c && strstr(c, "\r\nX-Spool-Size: 000000000020\r\nX-Submitter-Uid: "), "the size is in the envelope");
  is_int(mh_spool_load(sp, ids[0], &e, err), 0, "a whole file loads");
  is_int(e.env.has_size, 1, "with its size");
  is_int((long)e.env.size, 20, "20 bytes after the envelope");
  mh_spool_entry_free(&e);
  path_of(p, sizeof p, rel);
  ok(stat(p, &st) == 0 && truncate(p, st.st_size - 7) == 0, "cut 7 bytes short");
  is_int(mh_spool_load(sp, ids[0], &e, err), MH_ECORRUPT, "a reader refuses it (%s)", err);
  ok(strstr(err, "13 bytes, it was 20") != NULL, "saying the sizes");
  ok(exists(rel), "and leaves it where it is (no lock)");
  mh_spool_lock(sp, NULL);
  is_int(deliverer_load(sp, ids[0], &e, err), MH_ECORRUPT, "the deliverer refuses it");
  ok(!exists(rel), "not in pickup/ any more");
  snprintf(rel, sizeof rel, "corrupt/%s.eml", ids[0]);
  ok(exists(rel), "set aside to corrupt/");
  /* grown: written over, longer */
  snprintf(rel, sizeof rel, "pickup/%s.eml", ids[1]);
  path_of(p, sizeof p, rel);
  FILE *f = fopen(p, "ab");
  if (f) { fputs("more\r\n", f); fclose(f); }
  is_int(deliverer_load(sp, ids[1], &e, err), MH_ECORRUPT, "a file grown since is refused too");
  is_int(deliverer_load(sp, ids[2], &e, err), 0, "the untouched one loads");
  mh_spool_entry_free(&e);
  /* a file written before the line existed */
  put("pickup/0000000000000abc.eml", "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nX-Submitter-Uid: 0\r\nS: x\r\n\r\nb\r\n");
  err[0] = '\0';
  is_int(deliverer_load(sp, "0000000000000abc", &e, err), 0, "an older file without the line loads");
  is_int(e.env.has_size, 0, "with no size known");
  mh_spool_entry_free(&e);
  put("pickup/0000000000000abd.eml", "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nX-Spool-Size: 12x\r\nS: x\r\n\r\nb\r\n");
  is_int(deliverer_load(sp, "0000000000000abd", &e, err), MH_ECORRUPT, "a bad value is unparsable (%s)", err);
  mh_spool_close(sp);
}

/* id_value (the journal's and the listing's key) is the id read as a base-16
** number, digit by digit, over ids of every digit at every place. */
static void test_id_value(void) {
  static const char digits[] = "0123456789abcdef";
  char id[17];
  uint64_t s = 88172645463325252u;
  int bad = 0;
  for (int k = 0; k < 100000; k++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    for (int i = 0; i < 16; i++) id[i] = k < 32 ? digits[k % 16 * (k < 16 || i % 2)] : digits[(s >> (4 * i)) & 15];
    id[16] = '\0';
    if (id_value(id) != (uint64_t)strtoull(id, NULL, 16)) bad++;
  }
  is_int(bad, 0, "id_value: the id as a base-16 number (100,000 ids)");
}

/* sort_ids' look for an array in order already (issue 16: the journal's
** snapshot at each scan) against the heap sort it skips: the same result as
** qsort for arrays in order, reversed, with ties, out of order only at the
** end, and shuffled, of 0 to 300 ids. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_sort_ids(void) {
  static uint64_t v[300], w[300];
  int same = 1;
  unsigned r = 12345;
  for (size_t n = 0; n <= 300 && same; n += n < 5 ? 1 : 37) {
    for (int shape = 0; shape < 5 && same; shape++) {
      for (size_t i = 0; i < n; i++) {
        r = r * 1103515245u + 12345u;
        v[i] = shape == 0 ? i : shape == 1 ? n - i : shape == 2 ? i / 3 : shape == 3 ? (i + 1 == n ? 0 : i + 1)
             : (uint64_t)(r >> 8) << 20;
      }
      memcpy(w, v, n * sizeof *v);
      sort_ids(v, n);
      if (n) qsort(w, n, sizeof *w, cmp_u64);
      if (n && memcmp(v, w, n * sizeof *v)) {
        diag("%zu ids of shape %d: not sorted as qsort sorts them", n, shape);
        same = 0;
      }
    }
  }
  ok(same, "sort_ids: in order already (left as is), or not (sorted): as qsort sorts");
}

int main(void) {
  char cmd[300];
  snprintf(base, sizeof base, "%s/mh-journal-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  test_id_value();
  test_sort_ids();
  test_readers();
  test_race();
  test_second_purge();
  test_adopt_once();
  killed_deliverer(NULL, "killed before a purge");
  killed_deliverer("purge-renamed", "killed after the journal's rename");
  killed_deliverer("purge-removed", "killed after the unlinks");
  test_replay_files();
  test_write_fails();
  test_removed_meanwhile();
  test_replaced_after_load();
  test_memory_replaced();
  test_size_record();
  test_adopted_purged();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) diag("could not remove %s", base);
  return done_testing();
}
