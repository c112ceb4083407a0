/*
** l_pwhash.c — core.pwhash: runtime/pwhash.c for Lua (the console's login and
** `mailhook update admin_password=-`).
**
**   core.pwhash.make(password) -> "$scrypt$..." | nil, err, info   (waits: thread pool)
**   core.pwhash.check(password, stored) -> true | false | nil, err (waits: thread pool)
**   core.pwhash.valid(stored) -> boolean      (the stored form, parameters in bounds)
**   core.pwhash.random(nbytes) -> hex string  (session ids, CSRF tokens; nbytes <= 64)
**   core.pwhash.equal(given, secret) -> boolean  (time independent of where they differ,
**                                             and of the secret's length)
** A check costs tens of milliseconds and 32 MiB: it never runs on the loop.
*/
#include <stdlib.h>
#include <string.h>
#include "l_sched.h"
#include "error.h"
#include "pwhash.h"

typedef struct {
  char *pw;                   /* a copy of the password, wiped and freed in done */
  size_t pwlen;
  char stored[256];           /* check: the stored hash; make: the result */
  int check;                  /* 1: check, 0: make */
  int rc;                     /* result */
} pw_req;

static void pw_work(void *arg) {
  pw_req *r = (pw_req *)arg;
  if (r->check) r->rc = mh_pwhash_check(r->pw, r->pwlen, r->stored);
  else r->rc = mh_pwhash_make(r->pw, r->pwlen, r->stored, sizeof r->stored);
}

static int pw_push(lua_State *co, void *arg) {
  pw_req *r = (pw_req *)arg;
  const char *why = r->rc < 0 ? mh_pwhash_unavailable() : NULL;
  if (why) return mh_l_fail(co, MH_ETLS, "password", "%s", why);
  if (r->rc < 0) return mh_l_fail(co, r->rc, "password", r->check ? "the stored admin password is not a "
                                  "valid hash (set it again: mailhook update admin_password=-)" : NULL);
  if (r->check) lua_pushboolean(co, r->rc == 1);
  else lua_pushstring(co, r->stored);
  return 1;
}

static void pw_done(void *arg) {
  pw_req *r = (pw_req *)arg;
  volatile char *p = r->pw;
  for (size_t i = 0; i < r->pwlen; i++) p[i] = 0;
  free(r->pw);
  free(r);
}

static int start(lua_State *L, int check) {
  size_t len;
  const char *pw = mh_l_arg_lstring(L, 1, "password", &len);
  const char *stored = NULL;
  size_t slen = 0;
  if (check) {   /* before r: a number made text here allocates, and may raise */
    stored = lua_tolstring(L, 2, &slen);
    if (!stored) return mh_l_arg_error(L, 2, "stored", "a string");
    if (slen >= sizeof ((pw_req *)0)->stored) return mh_l_arg_error(L, 2, "stored", "a stored hash (this one is too long)");
  }
  pw_req *r = (pw_req *)calloc(1, sizeof *r);
  if (!r) return luaL_error(L, "out of memory");
  if (check) memcpy(r->stored, stored, slen + 1);
  if (!(r->pw = (char *)malloc(len + 1))) { free(r); return luaL_error(L, "out of memory"); }
  memcpy(r->pw, pw, len + 1);
  r->pwlen = len;
  r->check = check;
  return mh_l_work_pool(L, check ? "pwhash.check" : "pwhash.make", pw_work, pw_push, pw_done, r);   /* CPU-bound */
}

static int l_make(lua_State *L) { return start(L, 0); }
static int l_check(lua_State *L) { return start(L, 1); }

static int l_valid(lua_State *L) {
  lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && mh_pwhash_valid(lua_tostring(L, 1)));
  return 1;
}

static int l_random(lua_State *L) {
  char hex[129];
  lua_Integer n = mh_l_optarg_integer(L, 1, "bytes", 32);
  if (!(n > 0 && n <= 64)) mh_l_arg_error(L, 1, "bytes", "1-64");
  if (mh_random_hex(hex, (size_t)n) < 0) {
    const char *why = mh_pwhash_unavailable();
    return luaL_error(L, "%s", why ? why : "no random bytes from OpenSSL");
  }
  lua_pushstring(L, hex);
  return 1;
}

static int l_equal(lua_State *L) {
  size_t la, lb;
  const char *a = mh_l_arg_lstring(L, 1, "a", &la);
  const char *b = mh_l_arg_lstring(L, 2, "b", &lb);
  lua_pushboolean(L, mh_ct_equal_str(a, la, b, lb));
  return 1;
}

void l_pwhash_open(lua_State *L) {
  static const luaL_Reg funcs[] = { { "make", l_make }, { "check", l_check }, { "valid", l_valid },
                                    { "random", l_random }, { "equal", l_equal }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "pwhash");
}
