/*
** fuzz-envelope.c — libFuzzer target for the spool's envelope parser, which
** reads files any program may drop into pickup/.  Asserts: no crash or leak;
** an accepted envelope has at least one recipient, every address passes
** mh_addr_check (so none can carry CR, LF or a space into an SMTP command),
** and the offset lies inside the input; a submitter uid only comes with a
** canonical envelope and is a valid uid (below (uid_t)-1).  The same as a
** drop-in's adoption reads it, whose bad recipient items are kept escaped.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "spool.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[MH_SPOOL_ERRLEN];
  mh_env env;
  int rc = mh_env_parse((const char *)data, size, 1, &env, err);
  if (rc == 0) {
    if (env.nto == 0 || env.offset > size || !env.from) abort();
    if (mh_addr_check(env.from, 1)) abort();
    if (env.has_uid && (!env.canonical || env.uid >= 4294967295UL)) abort();
    for (size_t i = 0; i < env.nto; i++)
      if (mh_addr_check(env.to[i], 0)) abort();
    mh_env_free(&env);
  } else if (rc != MH_ECORRUPT && rc != MH_ENOMEM) {
    abort();
  }
  /* as a drop-in's adoption reads it: the bad items left out and kept, the rest
  ** recipients; no kept item or reason holds a control byte (they reach the
  ** log and the sidecar), at most MH_ENV_BAD_MAX are kept */
  rc = mh__spool_dropin_env((const char *)data, size, &env, err);
  if (rc == 0) {
    if (env.nto == 0 || env.offset > size || !env.from || env.nbad > MH_ENV_BAD_MAX) abort();
    for (size_t i = 0; i < env.nto; i++)
      if (mh_addr_check(env.to[i], 0)) abort();
    for (size_t i = 0; i < env.nbad; i++)
      for (const char *q = env.bad[i].rcpt; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) abort();
    for (size_t i = 0; i < env.nbad; i++)
      for (const char *q = env.bad[i].reply; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) abort();
    mh_env_free(&env);
  } else if (rc != MH_ECORRUPT && rc != MH_ENOMEM) {
    abort();
  }
  memset(&env, 0, sizeof env);
  rc = mh_env_addrs((const char *)data, size, &env, err);
  for (size_t i = 0; i < env.nto; i++)
    if (mh_addr_check(env.to[i], 0)) abort();
  mh_env_free(&env);
  return 0;
}
