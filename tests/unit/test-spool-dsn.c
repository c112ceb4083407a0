/*
** test-spool-dsn.c — the RFC 3461 parameters a spool file's envelope lines
** carry (sendmail -N -R -V): written after the addresses, read back, and
** refused when they could smuggle anything (a CR, a '>', an unknown keyword).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "spool.h"
#include "spool-helpers.h"

static char root[256];


static void test_write_and_read(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN], path[600];
  const char *to[] = { "x@y.z", "w@y.z", "\"a b\"@y.z" };
  const char *tp[] = { "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.z", NULL, "NOTIFY=NEVER" };
  mh_spool_item it = { "", to, 3, write_bytes, (void *)"Subject: t\r\n\r\nbody\r\n", "",
                       "RET=HDRS ENVID=QQ314159", tp, 1, 0, NULL, 0 };
  mh_spool_entry e;
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "enqueue with DSN parameters");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, it.id);
  is_str(slurp(path),
         "X-Sender: <> RET=HDRS ENVID=QQ314159\r\n"
         "X-Receiver: x@y.z NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.z\r\n"
         "X-Receiver: w@y.z\r\n"
         "X-Receiver: \"a b\"@y.z NOTIFY=NEVER\r\n"
         "X-Spool-Size: 000000000020\r\n"
         "X-Submitter-Uid: 0\r\n"
         "Subject: t\r\n\r\nbody\r\n",
         "the parameters follow the addresses");
  is_int(mh_spool_load(sp, it.id, &e, err), 0, "load");
  is_str(e.env.from, "", "null sender");
  is_str(e.env.from_params, "RET=HDRS ENVID=QQ314159", "sender parameters read back");
  is_int(e.env.nto, 3, "three recipients");
  is_str(e.env.to[2], "\"a b\"@y.z", "a quoted local part with a space stays one address");
  ok(e.env.to_params && e.env.to_params[1] == NULL, "a recipient without parameters has none");
  is_str(e.env.to_params ? e.env.to_params[0] : NULL, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.z",
         "recipient parameters read back");
  is_str(e.env.to_params ? e.env.to_params[2] : NULL, "NOTIFY=NEVER", "the quoted one's too");
  mh_spool_entry_free(&e);

  const char *plain_to[] = { "p@y.z" };
  mh_spool_item plain = { "a@b.c", plain_to, 1, write_bytes, (void *)"Subject: p\r\n\r\n", "", NULL, NULL, 1, 0, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &plain, 1, err), 0, "enqueue without parameters");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, plain.id);
  is_str(slurp(path), "X-Sender: a@b.c\r\nX-Receiver: p@y.z\r\nX-Spool-Size: 000000000014\r\nX-Submitter-Uid: 0\r\n"
         "Subject: p\r\n\r\n", "lines as before");
  is_int(mh_spool_load(sp, plain.id, &e, err), 0, "load");
  ok(e.env.from_params == NULL && e.env.to_params == NULL, "no parameters: NULL");
  mh_spool_entry_free(&e);
}

static void test_refused(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN];
  const char *to[] = { "x@y.z" };
  const char *bad_from[] = { "RET=HDRS\r\nRCPT TO:<e@v.il>", "NOTIFY=SUCCESS", "RET=<x>", "RET", "X=1",
                             "ENVID=" };
  const char *bad_rcpt[] = { "NOTIFY=SUCCESS\r\n", "RET=FULL", "ORCPT=rfc822;<e@v.il>", "NOTIFY" };
  for (size_t i = 0; i < sizeof bad_from / sizeof *bad_from; i++) {
    mh_spool_item it = { "a@b.c", to, 1, write_bytes, (void *)"S: x\r\n\r\n", "", bad_from[i], NULL, 0, 0, NULL, 0 };
    is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EBADADDR, "bad sender parameters %zu refused", i);
  }
  for (size_t i = 0; i < sizeof bad_rcpt / sizeof *bad_rcpt; i++) {
    const char *tp[] = { bad_rcpt[i] };
    mh_spool_item it = { "a@b.c", to, 1, write_bytes, (void *)"S: x\r\n\r\n", "", NULL, tp, 0, 0, NULL, 0 };
    is_int(mh_spool_enqueue(sp, &it, 1, err), MH_EBADADDR, "bad recipient parameters %zu refused", i);
  }
}

static void test_parse(void) {
  char err[MH_SPOOL_ERRLEN];
  mh_env env;
  const char *good = "X-Sender: <a@b.c>  RET=FULL\r\nX-Receiver: <x@y.z> NOTIFY=DELAY\r\nS: x\r\n\r\n";
  is_int(mh_env_parse(good, strlen(good), 1, &env, err), 0, "angle brackets and parameters");
  is_str(env.from, "a@b.c", "sender");
  is_str(env.from_params, "RET=FULL", "its parameters, spaces trimmed");
  is_str(env.to_params ? env.to_params[0] : NULL, "NOTIFY=DELAY", "recipient parameters");
  mh_env_free(&env);
  /* read from the file, not the spool's own listing: a quoted local part's
  ** space is no end of the address, a space before any quote is */
  const char *quoted = "X-Sender: \"a b\"@c.d RET=FULL\r\nX-Receiver: \"x\\\" y\"@y.z NOTIFY=DELAY\r\n"
                       "X-Receiver: p@q.r ORCPT=rfc822;p\"q@q.r\r\nX-Receiver: s@t.u\r\nS: x\r\n\r\n";
  is_int(mh_env_parse(quoted, strlen(quoted), 1, &env, err), 0, "quoted local parts with spaces");
  ok(env.from && !strcmp(env.from, "\"a b\"@c.d") && env.from_params && !strcmp(env.from_params, "RET=FULL"),
     "a quoted sender with a space stays one address, its parameters after it");
  ok(env.nto == 3 && !strcmp(env.to[0], "\"x\\\" y\"@y.z") && !strcmp(env.to[1], "p@q.r") &&
     !strcmp(env.to[2], "s@t.u") && env.to_params && !strcmp(env.to_params[0], "NOTIFY=DELAY") &&
     !strcmp(env.to_params[1], "ORCPT=rfc822;p\"q@q.r") && !env.to_params[2],
     "a quoted recipient (an escaped quote in it) stays whole; a quote after the first space is a parameter's");
  mh_env_free(&env);
  const char *bad[] = {
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z junk\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c BODY=8BITMIME\r\nX-Receiver: x@y.z\r\nS: x\r\n\r\n",
    "X-Sender: a@b.c\r\nX-Receiver: x@y.z NOTIFY=<x>\r\nS: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    is_int(mh_env_parse(bad[i], strlen(bad[i]), 1, &env, err), MH_ECORRUPT, "unparsable: %s", err);
}

int main(void) {
  mh_spool *sp;
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "/tmp/mh-spool-dsn.XXXXXX");
  if (!mkdtemp(root)) return 1;
  if (mh_spool_open(root, &sp, err)) { printf("Bail out! %s\n", err); return 1; }
  test_write_and_read(sp);
  test_refused(sp);
  test_parse();
  mh_spool_close(sp);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd)) {}
  return done_testing();
}
