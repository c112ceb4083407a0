/*
** host.c — a small application that links mailhook instead of running
** `mailhook hook` per event: it opens a runtime on a settings file and a
** spool, emits one event given on the command line, and closes.
**
**   host CONF SPOOL EVENT [KEY=VALUE ...]
**
** Build (from the repository, after `make`):
**   cc -Iruntime examples/embed/host.c build/libmailhook.a \
**      $(pkg-config --libs lua5.4 libuv openssl) -lreadline -lm -o host
** Run: the Lua modules are found under $MAILHOOK_ROOT, else the PREFIX the
** library was built for (after `make install`); from the repository, without
** an install, name it (else mh_open fails: module 'mailhook.settings' not found):
**   MAILHOOK_ROOT=$PWD ./host mailhook.conf spool voicemail mailbox=200 duration=42
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mailhook.h"

int main(int argc, char **argv) {
  char *err = NULL;
  const char **kv;
  mh_runtime *rt;
  int i, n = 0, rc;
  if (argc < 4) {
    fprintf(stderr, "usage: host CONF SPOOL EVENT [KEY=VALUE ...]\n");
    return 2;
  }
  kv = calloc((size_t)(argc - 4) * 2 + 1, sizeof *kv);
  if (!kv) return 1;
  for (i = 4; i < argc; i++) {          /* "k=v" -> "k", "v"; "k" alone -> "k", NULL */
    char *eq = strchr(argv[i], '=');
    kv[n++] = argv[i];
    if (eq) { *eq = 0; kv[n++] = eq + 1; }
    else break;
  }
  kv[n] = NULL;
  rt = mh_open(argv[1], argv[2], &err);
  if (!rt) {
    fprintf(stderr, "host: %s\n", err);
    free(err);
    free(kv);
    return 1;
  }
  rc = mh_emit(rt, argv[3], kv, &err);
  if (rc != 0) fprintf(stderr, "host: %s (status %d)\n", err ? err : "?", rc);
  else printf("host: %s emitted, mail durable\n", argv[3]);
  free(err);
  /* a second event on the same runtime: rules stay loaded */
  if (rc == 0 && getenv("HOST_TWICE")) {
    rc = mh_emit(rt, argv[3], kv, &err);
    if (rc != 0) fprintf(stderr, "host: second: %s\n", err ? err : "?");
    free(err);
  }
  mh_close(rt);
  free(kv);
  return rc;
}
