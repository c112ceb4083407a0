/*
** test-tls.c — the TLS client's shared context (tls.c, ctx_get): one SSL_CTX
** per settings generation, and a generation includes the CA file itself, so
** a tls_ca_file edited or replaced between two connections of one process is
** read again at the next one (a stale context would keep trusting the old
** anchors, or accept a file that no longer holds one).  The CA file is made
** by the openssl command (the suite's peers make theirs the same way).
** Also: a TLS failure's cause is a code (MH_TLS_WHY_*), none before a failure.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "tls.h"

static char dir[] = "/tmp/mh-test-tls.XXXXXX";
static char ca[256], ca2[256], bad[256];

static int make_cert(const char *path, const char *cn) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
           "-subj /CN=%s -keyout %s/key.pem -out %s 2>/dev/null", cn, dir, path);
  return system(cmd);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

/* Copies src over dst in place (same inode: only the content, size and times change). */
static void copy_over(const char *src, const char *dst) {
  char buf[8192];
  size_t n;
  FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
  if (in && out) while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  if (in) fclose(in);
  if (out) fclose(out);
}

/* 1 when a client can be made with this CA file (err: why not). */
static int client_with(const char *ca_file, char *err, size_t errlen) {
  mh_tls_params p = { "mx.test", 1, ca_file, NULL, NULL };
  mh_tls *t;
  err[0] = 0;
  t = mh_tls_new(&p, err, errlen);
  if (!t) return 0;
  mh_tls_free(t);
  return 1;
}

int main(void) {
  char err[400], cmd[600];
  mh_tls_params p = { "mx.test", 1, NULL, NULL, NULL };
  mh_tls_info info;
  mh_tls *t;
  if (!mkdtemp(dir)) { diag("mkdtemp failed"); return 1; }
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  snprintf(ca2, sizeof ca2, "%s/ca2.pem", dir);
  snprintf(bad, sizeof bad, "%s/bad.pem", dir);
  if (make_cert(ca, "one.test") != 0 || make_cert(ca2, "two.test") != 0) {
    diag("cannot run the openssl command");
    return 1;
  }
  put(bad, "not a certificate\n");

  ok(client_with(ca, err, sizeof err), "a client with a CA file (%s)", err);
  ok(client_with(ca, err, sizeof err), "another with the same one: the context is shared");
  ok(!client_with(bad, err, sizeof err), "a file with no certificate is refused");
  ok(strstr(err, "bad.pem") != NULL, "naming it: %s", err);
  ok(client_with(ca, err, sizeof err), "back to the good file: a new generation again");

  /* The same path, its content edited in place: the next connection reads it. */
  copy_over(bad, ca);
  ok(!client_with(ca, err, sizeof err), "the CA file edited into garbage: refused at the next connection");
  copy_over(ca2, ca);
  ok(client_with(ca, err, sizeof err), "edited again into another certificate: read, accepted (%s)", err);
  /* Replaced by rename (another inode), as an administrator's editor or a package does. */
  snprintf(cmd, sizeof cmd, "cp %s %s/new.pem && mv %s/new.pem %s", bad, dir, dir, ca);
  if (system(cmd) != 0) diag("cp/mv failed");
  ok(!client_with(ca, err, sizeof err), "replaced by rename with garbage: refused");
  unlink(ca);
  ok(!client_with(ca, err, sizeof err), "removed: refused (%s)", err);
  ok(client_with(NULL, err, sizeof err), "no CA file: the system store alone");

  /* A client that has not failed has no cause to report. */
  t = mh_tls_new(&p, err, sizeof err);
  ok(t != NULL, "a client");
  if (t) {
    memset(&info, 0x55, sizeof info);
    mh_tls_get_info(t, &info);
    is_int(info.why, MH_TLS_WHY_NONE, "no failure: why NONE");
    is_int(info.reason, 0, "no OpenSSL reason");
    is_str(info.reason_name, "", "no reason name");
    mh_tls_free(t);
  }

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) diag("cleanup failed");
  return done_testing();
}
