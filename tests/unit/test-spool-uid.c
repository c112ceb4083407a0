/*
** test-spool-uid.c — who submitted a message (issue 12.5): the spool file's
** X-Submitter-Uid envelope line.  Written with every message (the given uid,
** else the enqueuing process's), read back; a file written before the line
** existed still loads (uid unknown); a lookalike line in the message (its
** first header, or in its body) is never taken for the envelope's, and cannot
** add a recipient after it either.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "spool.h"
#include "spool-helpers.h"

static char root[256];


static void put_file(const char *rel, const char *s) {
  char path[600];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", root, rel);
  f = fopen(path, "wb");
  if (f) { fputs(s, f); fclose(f); }
}

static void test_written(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN] = "", path[600], want[300];
  const char *to[] = { "x@y.z" };
  mh_spool_item given = { "a@b.c", to, 1, write_bytes, (void *)"Subject: t\r\n\r\nbody\r\n", "", NULL, NULL,
                          1, 65534, NULL, 0 };
  mh_spool_item own = { "a@b.c", to, 1, write_bytes, (void *)"Subject: u\r\n\r\nbody\r\n", "", NULL, NULL,
                        0, 0, NULL, 0 };
  mh_spool_entry e;
  is_int(mh_spool_enqueue(sp, &given, 1, err), 0, "enqueue with a given uid");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, given.id);
  is_str(slurp(path), "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Spool-Size: 000000000020\r\nX-Submitter-Uid: 65534\r\n"
         "Subject: t\r\n\r\nbody\r\n", "the uid is the envelope's last line");
  is_int(mh_spool_load(sp, given.id, &e, err), 0, "load");
  is_int(e.env.has_uid, 1, "it has a uid");
  is_int(e.env.uid, 65534, "the one given");
  is_int(e.env.offset, strlen("X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Spool-Size: 000000000020\r\n"
                              "X-Submitter-Uid: 65534\r\n"),
         "the message starts after it");
  mh_spool_entry_free(&e);

  is_int(mh_spool_enqueue(sp, &own, 1, err), 0, "enqueue without one");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, own.id);
  snprintf(want, sizeof want, "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Spool-Size: 000000000020\r\n"
           "X-Submitter-Uid: %lu\r\nSubject: u\r\n\r\nbody\r\n",
           (unsigned long)getuid());
  is_str(slurp(path), want, "this process's real uid is recorded");
  is_int(mh_spool_load(sp, own.id, &e, err), 0, "load");
  is_int(e.env.has_uid && e.env.uid == (unsigned long)getuid(), 1, "read back");
  mh_spool_entry_free(&e);

  /* the null sender (written "<>") and the longest uid: the envelope's fixed
  ** lines are longer than a short sender's room was (the uid line lost its
  ** CRLF, the write read past the buffer: a null-sender message of a local
  ** user went to corrupt/ at adoption) */
  const char *to1[] = { "y@z.w" };
  mh_spool_item null = { "", to1, 1, write_bytes, (void *)"Subject: n\r\n\r\nbody\r\n", "", NULL, NULL,
                         1, 4294967294UL, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &null, 1, err), 0, "enqueue from the null sender with a 10-digit uid");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, null.id);
  is_str(slurp(path), "X-Sender: <>\r\nX-Receiver: y@z.w\r\nX-Spool-Size: 000000000020\r\n"
         "X-Submitter-Uid: 4294967294\r\nSubject: n\r\n\r\nbody\r\n", "its envelope whole, each line ended");
  is_int(mh_spool_load(sp, null.id, &e, err), 0, "it loads (%s)", err);
  is_int(e.env.has_uid && e.env.uid == 4294967294UL, 1, "with its uid");
  mh_spool_entry_free(&e);

  mh_spool_item bad = { "a@b.c", to, 1, write_bytes, (void *)"S: x\r\n\r\n", "", NULL, NULL, 1, 4294967295UL, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &bad, 1, err), MH_EINVAL, "(uid_t)-1 is no uid: refused (%s)", err);
}

static void test_old_file(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN] = "";
  mh_spool_entry e;
  put_file("pickup/0100000000000001.eml", "X-Sender: a@b.c\r\nX-Receiver: old@y.z\r\nSubject: old\r\n\r\nx\r\n");
  is_int(mh_spool_load(sp, "0100000000000001", &e, err), 0, "a file without the line loads (%s)", err);
  is_int(e.env.has_uid, 0, "its uid is unknown");
  is_str(e.env.nto ? e.env.to[0] : NULL, "old@y.z", "its envelope as before");
  mh_spool_entry_free(&e);
}

static void test_lookalikes(void) {
  char err[MH_SPOOL_ERRLEN] = "";
  mh_env env;
  /* what a caller typed follows the envelope: never read as a second uid nor a recipient */
  const char *forged = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: 65534\r\n"
                       "X-Submitter-Uid: 0\r\nX-Receiver: victim@evil.example\r\nSubject: s\r\n\r\n"
                       "X-Submitter-Uid: 0\r\n";
  is_int(mh_env_parse(forged, strlen(forged), 1, &env, err), 0, "parse");
  is_int(env.uid, 65534, "the envelope's uid, not the message's lookalike");
  is_int(env.nto, 1, "an X-Receiver after the uid line is the message's, not a recipient");
  ok(strncmp(forged + env.offset, "X-Submitter-Uid: 0\r\n", 20) == 0, "the lookalike is the message's first header");
  mh_env_free(&env);
  /* a message without any envelope: its X-Submitter-Uid header is a header */
  const char *plain = "X-Submitter-Uid: 0\r\nFrom: a@b.c\r\nTo: x@y.z\r\n\r\nbody\r\n";
  is_int(mh_env_parse(plain, strlen(plain), 1, &env, err), 0, "parse a plain message");
  is_int(env.has_uid, 0, "no envelope: no uid (the header is the message's)");
  is_int(env.canonical, 0, "not canonical");
  mh_env_free(&env);
  /* only in the body */
  const char *body = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nSubject: s\r\n\r\nX-Submitter-Uid: 0\r\n";
  is_int(mh_env_parse(body, strlen(body), 1, &env, err), 0, "parse");
  is_int(env.has_uid, 0, "a line in the body is not the envelope");
  mh_env_free(&env);
  const char *bad[] = {
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: -1\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: 4294967295\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: 12 x\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid: 99999999999\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Submitter-Uid:\r\nS: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    is_int(mh_env_parse(bad[i], strlen(bad[i]), 1, &env, err), MH_ECORRUPT, "unparsable: %s", err);
}

/* A drop-in in pickup/ (a raw message the spool's owner put there) gets its
** owner as submitter when it is adopted, whatever header it carries. */
static void test_dropin(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN] = "";
  char **ids = NULL;
  mh_spool_entry e;
  long n;
  put_file("pickup/raw.eml", "X-Submitter-Uid: 4242\r\nFrom: a@b.c\r\nTo: d@y.z\r\nSubject: raw\r\n\r\nx\r\n");
  n = mh_spool_scan(sp, 0, &ids, NULL, err);
  ok(n >= 1, "scan adopts it");
  for (long i = 0; i < n; i++) {
    if (mh_spool_load(sp, ids[i], &e, err) == 0) {
      if (e.env.nto && !strcmp(e.env.to[0], "d@y.z")) {
        is_int(e.env.has_uid && e.env.uid == (unsigned long)getuid(), 1,
               "the adopted drop-in's uid: its file's owner, not its header's 4242");
      }
      mh_spool_entry_free(&e);
    }
    free(ids[i]);
  }
  free(ids);
}

int main(void) {
  mh_spool *sp;
  char err[MH_SPOOL_ERRLEN] = "";
  snprintf(root, sizeof root, "/tmp/mh-spool-uid.XXXXXX");
  if (!mkdtemp(root)) return 1;
  if (mh_spool_open(root, &sp, err)) { printf("Bail out! %s\n", err); return 1; }
  test_written(sp);
  test_old_file(sp);
  test_lookalikes();
  test_dropin(sp);
  mh_spool_close(sp);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd)) {}
  return done_testing();
}
