/*
** test-spool-leftout.c — an enqueue with recipient items left out of the
** envelope (mh_spool_item.refused: `mailhook sendmail`'s `To: a@x, Some
** Name`), recorded as refused in ID.state the way a drop-in's are
** (docs/sendmail.md, "Recipients and local names"): the sidecar is in
** pickup/ before ID.eml is, a deliverer's scan in that window does not take
** it for an orphan, a failure leaves nothing, an id queued already never gets
** one, bounds are kept.  Before, an enqueue had no way to record them: sendmail
** named them on stderr alone, which cron and PHP drop.
**
** This file compiles runtime/spool.c itself (-DMH_TESTS): its test points let
** a test act exactly inside the window between the sidecar and the rename.
*/
#include "spool.c"

#include "tap.h"

static char root[512];     /* the current test's spool */
static char base[256];

static void fresh(const char *name) {
  snprintf(root, sizeof root, "%s/%s", base, name);
  mkdir(root, 0700);
}

static int exists(const char *dir, const char *id, const char *suffix) {
  char p[800];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s/%s%s", root, dir, id, suffix);
  return lstat(p, &st) == 0;
}

static void put(const char *dir, const char *name, const char *content) {
  char p[800];
  snprintf(p, sizeof p, "%s/%s/%s", root, dir, name);
  FILE *f = fopen(p, "wb");
  if (f) { fputs(content, f); fclose(f); }
}

static char *get(const char *dir, const char *name) {
  static char buf[8192];
  char p[800];
  size_t n = 0;
  snprintf(p, sizeof p, "%s/%s/%s", root, dir, name);
  FILE *f = fopen(p, "rb");
  if (f) { n = fread(buf, 1, sizeof buf - 1, f); fclose(f); }
  buf[n] = '\0';
  return buf;
}

/* Files in root/dir whose name does not start with a dot. */
static int count(const char *dir) {
  char p[800];
  int n = 0;
  snprintf(p, sizeof p, "%s/%s", root, dir);
  DIR *d = opendir(p);
  struct dirent *de;
  while (d && (de = readdir(d))) n += de->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static int write_str(void *arg, int fd) { return mh_fsutil_write_all(fd, arg, strlen(arg)); }

static mh_spool *open_spool(void) {
  mh_spool *sp = NULL;
  char err[MH_SPOOL_ERRLEN];
  if (mh_spool_open(root, &sp, err)) diag("open: %s", err);
  return sp;
}

static const char *TO[] = { "ops@example.com", "b@example.com" };
static mh_refused LEFT[] = {
  { "Some Name", "To header: not an address: left out at intake (mailhook sendmail) by mailhook, never sent" },
  { "ops@example.com", "spelled as a recipient: never recorded" },
  { "a\\x0Ab", "recipient: holds a line break: left out at intake (mailhook sendmail) by mailhook, never sent" },
};

static mh_spool_item item(size_t nrefused) {
  mh_spool_item it = { "a@b.c", TO, 2, write_str, (void *)"Subject: t\r\n\r\nbody\r\n", "", NULL, NULL, 0, 0,
                       nrefused ? LEFT : NULL, nrefused };
  return it;
}

/* ---- the window between the sidecar and the rename */

static mh_spool *holder;         /* the deliverer's handle (holds the lock) */
static mh_spool_item *current;   /* the item being enqueued (its id is set in the window) */
static int seen_side, seen_eml;
static long scanned = -1;
static int plant_once;           /* plant pickup/ID.eml in the window (an id taken meanwhile) */
static char planted[MH_SPOOL_IDLEN];

static void in_window(const char *where) {
  char err[MH_SPOOL_ERRLEN], **ids;
  if (strcmp(where, "enqueue-sidecar") || !current) return;
  seen_side = exists("pickup", current->id, ".state");
  seen_eml = exists("pickup", current->id, ".eml");
  if (plant_once) {
    plant_once = 0;
    memcpy(planted, current->id, sizeof planted);
    char name[40];
    snprintf(name, sizeof name, "%s.eml", current->id);
    put("pickup", name, "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\n\r\nplanted\r\n");
    return;
  }
  if (holder) {   /* the deliverer scans right now: the sidecar is no orphan */
    scanned = mh_spool_scan(holder, 0, &ids, NULL, err);
    for (long k = 0; k < scanned; k++) free(ids[k]);
    if (scanned >= 0) free(ids);
  }
}

static void test_recorded_before_rename(void) {
  char err[MH_SPOOL_ERRLEN];
  long h;
  fresh("window");
  mh_spool *sp = open_spool();
  holder = open_spool();
  if (!sp || !holder || mh_spool_lock(holder, &h)) { ok(0, "spools open, lock taken"); goto out; }
  mh_spool_item it = item(3);
  current = &it;
  test_point = in_window;
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "enqueue with 3 items left out");
  test_point = NULL;
  current = NULL;
  ok(seen_side && !seen_eml, "the sidecar is in pickup/ before the message (sidecar %d, message %d)", seen_side,
     seen_eml);
  ok(scanned >= 0, "the deliverer scanned in that window (%ld)", scanned);
  ok(exists("pickup", it.id, ".state"), "the sidecar survived that scan (it was taken for an orphan: removed)");
  mh_spool_entry e;
  memset(&e, 0, sizeof e);
  int rc = mh_spool_load(holder, it.id, &e, err);
  is_int(rc, 0, "the deliverer loads the message");
  if (rc == 0) {
    is_int((int)e.env.nto, 2, "its envelope: the two recipients");
    is_int((int)e.state.nrefused, 2, "two items refused (the one spelled as a recipient is not)");
    if (e.state.nrefused == 2) {
      is_str(e.state.refused[0].rcpt, "Some Name", "the item as written");
      is_str(e.state.refused[0].reply, LEFT[0].reply, "with why");
      is_str(e.state.refused[1].rcpt, "a\\x0Ab", "the escaped one as given");
    }
    is_int(e.state.attempts, 0, "no attempt yet");
    mh_spool_entry_free(&e);
  }
  is_int(count("tmp"), 0, "nothing left in tmp/");
out:
  mh_spool_close(holder);
  holder = NULL;
  mh_spool_close(sp);
}

/* an id found taken at the rename (another file under ID.eml): the sidecar
** goes with the id it was written for, the message takes a later id */
static void test_id_taken_in_window(void) {
  char err[MH_SPOOL_ERRLEN], name[40];
  fresh("taken");
  mh_spool *sp = open_spool();
  if (!sp) { ok(0, "open"); return; }
  mh_spool_item it = item(1);
  current = &it;
  plant_once = 1;
  test_point = in_window;
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "enqueue while its id is taken in the window");
  test_point = NULL;
  current = NULL;
  ok(strcmp(it.id, planted) != 0, "a later id (%s, not %s)", it.id, planted);
  ok(!exists("pickup", planted, ".state"), "the planted message got no sidecar of ours");
  snprintf(name, sizeof name, "%s.state", it.id);
  ok(strstr(get("pickup", name), "refused Some Name\t") != NULL, "the message's own id has it");
  mh_spool_close(sp);
}

/* an id queued already (a seq update lost in a power cut) is never given a
** sidecar: it would be that message's */
static void test_id_queued_already(void) {
  char err[MH_SPOOL_ERRLEN], x[MH_SPOOL_IDLEN], name[40], seq[40];
  fresh("queued");
  mh_spool *sp = open_spool();
  if (!sp) { ok(0, "open"); return; }
  int64_t v = now_us() + 1000000000LL;
  snprintf(seq, sizeof seq, "%016" PRIx64 "\n", (uint64_t)v);
  snprintf(x, sizeof x, "%016" PRIx64, (uint64_t)v + 1);
  put(".", "seq", seq);   /* the id clock, behind a message queued already (a lost update) */
  snprintf(name, sizeof name, "%s.eml", x);
  put("pickup", name, "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\n\r\nqueued\r\n");
  snprintf(name, sizeof name, "%s.state", x);
  put("pickup", name, "attempts 3\nnext_attempt 0\n");
  mh_spool_item it = item(1);
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "enqueue when the next id is queued already");
  ok(strcmp(it.id, x) > 0, "a later id (%s after %s)", it.id, x);
  is_str(get("pickup", name), "attempts 3\nnext_attempt 0\n", "the queued message's sidecar is untouched");
  mh_spool_close(sp);
}

/* the sidecar of an adoption a kill stopped (enqueue_as: the id is the
** adoption's own) is written again */
static void test_given_id(void) {
  char err[MH_SPOOL_ERRLEN], id[MH_SPOOL_IDLEN], name[40];
  fresh("given");
  mh_spool *sp = open_spool();
  if (!sp || mh_spool_new_id(sp, id, NULL)) { ok(0, "open"); mh_spool_close(sp); return; }
  snprintf(name, sizeof name, "%s.state", id);
  put("pickup", name, "attempts 0\nnext_attempt 0\nrefused stale\tfrom a killed adoption\n");
  mh_spool_item it = item(1);
  is_int(mh_spool_enqueue_as(sp, &it, id, err), 0, "enqueue_as with an item left out");
  is_str(it.id, id, "under the id given");
  const char *st = get("pickup", name);
  ok(strstr(st, "refused Some Name\t") && !strstr(st, "stale"), "its sidecar is this enqueue's (the stale one replaced)");
  mh_spool_close(sp);
}

static int fail_sidecar(const char *where) { return !strcmp(where, "leftout-state") ? -ENOSPC : 0; }

static void test_failure_leaves_nothing(void) {
  char err[MH_SPOOL_ERRLEN];
  fresh("fail");
  mh_spool *sp = open_spool();
  if (!sp) { ok(0, "open"); return; }
  mh_spool_item it[2] = { item(0), item(1) };
  test_fault = fail_sidecar;
  int rc = mh_spool_enqueue(sp, it, 2, err);
  test_fault = NULL;
  is_int(rc, -ENOSPC, "the sidecar cannot be written: the batch fails (%s)", err);
  ok(strstr(err, "sidecar") != NULL, "saying so: %s", err);
  is_int(count("pickup"), 0, "nothing in pickup/ (the first message of the batch removed again)");
  is_int(count("tmp"), 0, "nothing in tmp/");
  /* a batch: only the item with items left out has a sidecar */
  it[0] = item(0);
  it[1] = item(1);
  is_int(mh_spool_enqueue(sp, it, 2, err), 0, "a batch of two, the second with an item left out");
  ok(!exists("pickup", it[0].id, ".state") && exists("pickup", it[1].id, ".state"), "the second alone has a sidecar");
  /* nothing to record (every item spelled as a recipient): no sidecar */
  mh_refused same[] = { { "b@example.com", "x" } };
  mh_spool_item s = item(0);
  s.refused = same;
  s.nrefused = 1;
  is_int(mh_spool_enqueue(sp, &s, 1, err), 0, "an item spelled as a recipient only");
  ok(!exists("pickup", s.id, ".state"), "no sidecar: the recipient is not stopped");
  mh_spool_close(sp);
}

static void test_bounds(void) {
  char err[MH_SPOOL_ERRLEN], big[MH_SPOOL_REFUSED_LEN + 2];
  mh_refused many[MH_ENV_BAD_MAX + 1];
  fresh("bounds");
  mh_spool *sp = open_spool();
  if (!sp) { ok(0, "open"); return; }
  for (int i = 0; i <= MH_ENV_BAD_MAX; i++) { many[i].rcpt = (char *)"x"; many[i].reply = (char *)"y"; }
  mh_spool_item it = item(0);
  it.refused = many;
  it.nrefused = MH_ENV_BAD_MAX + 1;
  is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EINVAL, "over %d items left out: refused (%s)", MH_ENV_BAD_MAX, err);
  it.nrefused = MH_ENV_BAD_MAX;
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "%d: queued", MH_ENV_BAD_MAX);
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mh_refused one[] = { { big, "why" } };
  it = item(0);
  it.refused = one;
  it.nrefused = 1;
  is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EINVAL, "an item over %d bytes: refused", MH_SPOOL_REFUSED_LEN);
  one[0].rcpt = (char *)"";
  is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EINVAL, "an empty item: refused");
  one[0].rcpt = (char *)"x";
  one[0].reply = NULL;
  is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EINVAL, "an item without why: refused");
  is_int(count("pickup"), 2, "only the message of %d items (and its sidecar) in pickup/", MH_ENV_BAD_MAX);
  mh_spool_close(sp);
}

/* An enqueue killed between its sidecar and its rename leaves pickup/ID.state
** and tmp/ID.  The scan spared the sidecar while tmp/ID was there, which is
** until the next lock's sweep, and a message given that id again would have
** taken its refusals (review4).  A tmp/ID a minute old is no enqueue on its
** way: the sidecar is an orphan, removed; a fresh one still spares it. */
static void test_killed_between(void) {
  char err[MH_SPOOL_ERRLEN], **ids, p[800];
  long h, n;
  struct timespec old[2] = { { time(NULL) - 2 * TEMP_MIN_AGE, 0 }, { time(NULL) - 2 * TEMP_MIN_AGE, 0 } };
  fresh("killed");
  mh_spool *sp = open_spool();
  if (!sp || mh_spool_lock(sp, &h)) { ok(0, "spool open, lock taken"); mh_spool_close(sp); return; }
  put("pickup", "0000000000000a01.state", "attempts 0\nrefused Some Name\tleft out by mailhook, never sent\n");
  put("tmp", "0000000000000a01", "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\n\r\nhi\r\n");
  put("pickup", "0000000000000a02.state", "attempts 0\nrefused Some Name\tleft out by mailhook, never sent\n");
  put("tmp", "0000000000000a02", "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\n\r\nhi\r\n");
  snprintf(p, sizeof p, "%s/tmp/0000000000000a01", root);
  utimensat(AT_FDCWD, p, old, 0);
  n = mh_spool_scan(sp, 0, &ids, NULL, err);
  for (long k = 0; k < n; k++) free(ids[k]);
  if (n >= 0) free(ids);
  ok(n >= 0, "a scan (%ld)", n);
  ok(!exists("pickup", "0000000000000a01", ".state"), "beside a tmp/ID two minutes old: an orphan, removed");
  ok(exists("pickup", "0000000000000a02", ".state"), "beside a fresh tmp/ID: spared (an enqueue on its way)");
  ok(exists("tmp", "0000000000000a01", ""), "the old tmp/ID is left to the lock's sweep");
  mh_spool_close(sp);
}

int main(void) {
  snprintf(base, sizeof base, "%s/mh-spool-leftout.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(base)) return 1;
  setvbuf(stdout, NULL, _IONBF, 0);
  test_recorded_before_rename();
  test_id_taken_in_window();
  test_id_queued_already();
  test_given_id();
  test_failure_leaves_nothing();
  test_bounds();
  test_killed_between();
  {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd)) diag("could not remove %s", base);
  }
  return done_testing();
}
