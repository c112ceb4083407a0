/*
** main.c — the mailhook binary: global options, paths, the Lua state, and the
** main task on the libuv loop.  Everything a site may want to change (the CLI
** commands themselves) lives in Lua: lua/mailhook/cli.lua and scripts/.
**
**   mailhook [-c FILE] [-s DIR] [-v] COMMAND [ARGS]   see `mailhook help`
**   mailhook [-c FILE] [-s DIR] SCRIPT.lua [ARGS]     run a script, like lua
**   mailhook [-c FILE] [-s DIR] -e CODE [ARGS]
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>
#include "instpaths.h"
#include "l_sched.h"
#include "log.h"
#include "privdrop.h"
#include "version.h"

int luaopen_mailhook_core(lua_State *L);

/* Where things are: the build tree (ROOT/build/mailhook beside ROOT/lua) or an
** installed PREFIX (PREFIX/bin/mailhook, PREFIX/share/mailhook/lua; the
** settings and the spool where SYSCONFDIR and LOCALSTATEDIR say). */
typedef struct {
  char root[PATH_MAX - 64]; /* the repo, or PREFIX (shorter: suffixes are appended) */
  char lua[PATH_MAX];       /* folder holding mailhook/init.lua */
  char scripts[PATH_MAX];   /* admin action scripts (test.lua, update.lua, ...) */
  char conf[PATH_MAX];      /* settings file: -c, $MAILHOOK_CONF, or the default */
  char spool[PATH_MAX];     /* spool folder: -s, $MAILHOOK_SPOOL, or the default */
  char luac[PATH_MAX];      /* precompiled lua/ (BUILD/luac, PREFIX/lib/mailhook/luac): bc_searcher */
  char drop[PATH_MAX];      /* the setgid drop program of unprivileged submission (BUILD/mailhook-drop,
                               PREFIX/sbin/mailhook-drop; $MAILHOOK_DROP: the caller's own choice,
                               it gains nothing by it) */
  const char *conf_given;   /* who named conf: "-c", "$MAILHOOK_CONF", or NULL for the default.
                               A named file must exist (a typo must not mean "defaults");
                               the default's absence does mean defaults */
  int installed;            /* 1 for an installed binary */
} paths_t;

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void find_paths(paths_t *p) {
  char exe[PATH_MAX - 64], probe[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash;
  if (n <= 0) n = (ssize_t)snprintf(exe, sizeof exe, "%s/bin/mailhook", MH_PREFIX);
  exe[n] = 0;
  if ((slash = strrchr(exe, '/'))) *slash = 0;        /* bin dir */
  snprintf(p->luac, sizeof p->luac, "%s/luac", exe);
  snprintf(p->drop, sizeof p->drop, "%s/mailhook-drop", exe);
  if ((slash = strrchr(exe, '/'))) *slash = 0; else strcpy(exe, ".");
  snprintf(p->root, sizeof p->root, "%s", exe);
  snprintf(probe, sizeof probe, "%s/lua/mailhook/init.lua", p->root);
  p->installed = !exists(probe);
  if (p->installed) {
    snprintf(p->lua, sizeof p->lua, "%s/share/mailhook/lua", p->root);
    snprintf(p->scripts, sizeof p->scripts, "%s/share/mailhook/scripts", p->root);
    /* SYSCONFDIR/mailhook/mailhook.conf, LOCALSTATEDIR/spool/mailhook (instpaths.h) */
    mh_instpaths_defaults(p->root, p->conf, sizeof p->conf, p->spool, sizeof p->spool);
    /* `make install` puts BUILD/luac there: bytecode is per machine, not shared */
    snprintf(p->luac, sizeof p->luac, "%s/lib/mailhook/luac", p->root);
    snprintf(p->drop, sizeof p->drop, "%s/sbin/mailhook-drop", p->root);
  } else {
    snprintf(p->lua, sizeof p->lua, "%s/lua", p->root);
    snprintf(p->scripts, sizeof p->scripts, "%s/scripts", p->root);
    snprintf(p->conf, sizeof p->conf, "%s/mailhook.conf", p->root);
    snprintf(p->spool, sizeof p->spool, "%s/spool", p->root);
  }
  p->conf_given = NULL;
  if (getenv("MAILHOOK_CONF") && *getenv("MAILHOOK_CONF")) {
    snprintf(p->conf, sizeof p->conf, "%s", getenv("MAILHOOK_CONF"));
    p->conf_given = "$MAILHOOK_CONF";
  }
  if (getenv("MAILHOOK_SPOOL") && *getenv("MAILHOOK_SPOOL"))
    snprintf(p->spool, sizeof p->spool, "%s", getenv("MAILHOOK_SPOOL"));
  if (getenv("MAILHOOK_DROP") && *getenv("MAILHOOK_DROP"))
    snprintf(p->drop, sizeof p->drop, "%s", getenv("MAILHOOK_DROP"));
}

/* ------------------------------------------------------- bytecode searcher
** Parsing the Lua modules a `mailhook hook` needs (cli, rules, settings,
** template, ...: ~60 KB) was ~60% of the instructions of a whole run
** (callgrind: 11.8M -> 4.9M with bytecode; bench/60-hook.sh).  `make` writes
** BUILD/luac/REL.luac for every lua/REL.lua (scripts/build-luac), and this
** searcher, placed before Lua's own, loads it instead of parsing the source.
** The source stays the truth: it is read every time and the bytecode is used
** only when the copy of the source it carries is byte for byte the same (a
** memcmp: cheaper than any hash of it, exact), so an edited module (a site's,
** or one changed since `make`) is parsed as before, and so is every failure
** here (missing, short, foreign bytecode):
** the searcher then returns nothing and Lua's searcher runs as it always did.
** The bytecode is trusted like the binary beside it (same folder, same owner).
** An installed binary reads PREFIX/lib/mailhook/luac, made in the build tree:
** the chunk is renamed on loading to the source file it stands for, wherever
** the tree now lies (DESTDIR, a moved PREFIX), so messages name that file. */

/* Reads all of PATH into a malloc'd buffer (NUL-terminated); NULL on any failure.
** open + fstat + one read of one byte more than fstat said + close: a regular
** file's read that returns less than asked has reached its end (one that grew
** meanwhile fills the buffer and is read on).  No stdio: fopen's buffer and its
** reads in 4 KB steps were three more system calls per file, and a `hook`
** reads ~25 of them. */
static char *slurp(const char *path, size_t *len) {
  struct stat st;
  char *buf = NULL;
  size_t cap, n = 0;
  ssize_t got;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  if (fstat(fd, &st) < 0 || st.st_size < 0 || (unsigned long long)st.st_size > SIZE_MAX / 2 - 2) goto fail;
  cap = (size_t)st.st_size + 1;          /* + 1: the read that sees the end (or growth) */
  if (!(buf = malloc(cap + 1))) goto fail;
  for (;;) {
    if (n == cap) {                      /* the file grew since fstat: keep reading */
      char *nb = cap > SIZE_MAX / 4 ? NULL : realloc(buf, cap * 2 + 1);
      if (!nb) goto fail;
      buf = nb;
      cap *= 2;
    }
    got = read(fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) goto fail;
    if (got == 0) break;
    n += (size_t)got;
    if (S_ISREG(st.st_mode) && n < cap) break;   /* a short read of a regular file: its end */
  }
  close(fd);
  buf[n] = 0;
  *len = n;
  return buf;
fail:
  free(buf);
  close(fd);
  return NULL;
}

#define MAGIC "MHLUAC2 "

/* lua_load reads a renamed dump in four pieces: see load_as. */
typedef struct {
  const char *part[4];
  size_t len[4];
  int next;
} pieces_t;

static const char *read_pieces(lua_State *L, void *ud, size_t *size) {
  pieces_t *p = (pieces_t *)ud;
  (void)L;
  while (p->next < 4) {
    int i = p->next++;
    if (p->len[i]) { *size = p->len[i]; return p->part[i]; }
  }
  *size = 0;
  return NULL;
}

/* Loads DUMP (build-luac's dump of a main chunk: line numbers and source name,
** no local names) as the chunk of source file SRC: its main function's source
** name, which build-luac set to the build tree's file, becomes "@SRC", as Lua's
** file searcher names it (the nested functions inherit it).  Lua 5.4's layout: a header of 15 bytes, then
** an integer and a number of the sizes given at bytes 13 and 14, the number of
** upvalues (1 byte), then the source: its length + 1 in base 128, most
** significant group first, the last byte marked with 0x80, then its bytes.
** Anything else (another layout, a stripped dump) is loaded as it is, and
** lua_load itself rejects what is not a sound chunk of this Lua. */
static int load_as(lua_State *L, const char *dump, size_t n, const char *src) {
  const unsigned char *d = (const unsigned char *)dump;
  char name[PATH_MAX + 2];
  unsigned char size[16], tmp[16], b;
  size_t off, at, len = 0, nlen = (size_t)snprintf(name, sizeof name, "@%s", src), x;
  int k = 0, m = 0;
  pieces_t p;
  if (n < 17 || memcmp(dump, LUA_SIGNATURE, 4) || d[4] != 0x54 || nlen >= sizeof name)
    return luaL_loadbufferx(L, dump, n, src, "b");
  off = at = 15 + (size_t)d[13] + d[14] + 1;
  do {                                 /* the old name's length + 1 */
    if (at >= n || at - off > 8) return luaL_loadbufferx(L, dump, n, src, "b");
    b = d[at++];
    len = (len << 7) | (b & 0x7f);
  } while (!(b & 0x80));
  if (len == 0 || len - 1 > n - at ||  /* stripped (no name), or short */
      (len - 1 == nlen && !memcmp(dump + at, name, nlen)))  /* already right */
    return luaL_loadbufferx(L, dump, n, src, "b");
  x = nlen + 1;
  do { tmp[k++] = (unsigned char)(x & 0x7f); x >>= 7; } while (x);
  while (k) size[m++] = tmp[--k];
  size[m - 1] |= 0x80;
  p.part[0] = dump;                   p.len[0] = off;
  p.part[1] = (const char *)size;     p.len[1] = (size_t)m;
  p.part[2] = name;                   p.len[2] = nlen;
  p.part[3] = dump + at + (len - 1);  p.len[3] = n - at - (len - 1);
  p.next = 0;
  return lua_load(L, read_pieces, &p, src, "b");
}

/* With SRC's text (STEXT, SLEN bytes: freed here), loads BC when it is the
** precompiled SRC: MAGIC <source length>\n <the source> <string.dump of it>.
** 1: the chunk is on the stack; 0: nothing was pushed (parse the source). */
static int load_matching(lua_State *L, const char *src, char *stext, size_t slen, const char *bc) {
  size_t blen, hdr = sizeof MAGIC - 1;
  char *btext = slurp(bc, &blen), *end;
  unsigned long long want_len;
  int top = lua_gettop(L), ok;
  ok = btext && blen > hdr && !memcmp(btext, MAGIC, hdr) &&
       (want_len = strtoull(btext + hdr, &end, 10), *end == '\n') && want_len == slen &&
       (hdr = (size_t)(end + 1 - btext), blen - hdr > slen) && !memcmp(btext + hdr, stext, slen);
  free(stext);
  if (ok) ok = load_as(L, btext + hdr + slen, blen - hdr - slen, src) == LUA_OK;
  free(btext);
  if (!ok) lua_settop(L, top);
  return ok;
}

/* package.searchers entry: upvalues lua dir, luac dir.  name -> loader, source
** path (what Lua's file searcher returns) | nothing (let the next searcher look).
** Only for the file Lua's searcher would pick itself (package.searchpath over
** package.path, which a script may have changed) when it lies in our lua dir.
** While package.path still begins with the templates set_paths put first
** ("LUADIR/?.lua;LUADIR/?/init.lua;"), that file is the first of
** LUADIR/NAME.lua and LUADIR/NAME/init.lua that can be opened (searchpath
** takes the first template whose file opens): it is read at once, without
** searchpath's own open and close of it first.  Otherwise (neither file; a
** path a script changed) searchpath decides. */
static int bc_searcher(lua_State *L) {
  const char *luadir = lua_tostring(L, lua_upvalueindex(1));
  const char *luacdir = lua_tostring(L, lua_upvalueindex(2));
  size_t dlen = strlen(luadir), slen = 0, flen, nlen;
  const char *found, *name = luaL_checklstring(L, 1, &nlen), *path;
  char src[PATH_MAX], bc[PATH_MAX + 16], *stext = NULL;
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) return 0;
  lua_getfield(L, -1, "path");
  path = lua_tostring(L, -1);
  /* the two templates set_paths put first: LUADIR/?.lua;LUADIR/?/init.lua; */
  for (int t = 0; t < 2 && !stext && path; t++) {
    static const char *const tail[2] = { "/?.lua;", "/?/init.lua;" }, *const ext[2] = { ".lua", "/init.lua" };
    size_t tl = strlen(tail[t]), el = strlen(ext[t]);
    if (strncmp(path, luadir, dlen) || strncmp(path + dlen, tail[t], tl) ||
        dlen + 1 + nlen + el >= sizeof src || memchr(name, 0, nlen))
      break;
    path += dlen + tl;                 /* the next template */
    memcpy(src, luadir, dlen);
    src[dlen] = '/';
    for (size_t k = 0; k < nlen; k++) src[dlen + 1 + k] = name[k] == '.' ? '/' : name[k];
    memcpy(src + dlen + 1 + nlen, ext[t], el + 1);
    stext = slurp(src, &slen);         /* NULL: the next template, or searchpath decides */
  }
  lua_settop(L, 2);                    /* name, package */
  if (!stext) {
    if (lua_getfield(L, 2, "searchpath") != LUA_TFUNCTION) return 0;
    lua_pushvalue(L, 1);
    lua_getfield(L, 2, "path");
    if (!lua_isstring(L, -1)) return 0;
    lua_call(L, 2, 1);
    found = lua_tolstring(L, -1, &flen);
    if (!found || flen >= sizeof src || strncmp(found, luadir, dlen) || found[dlen] != '/' ||
        flen < 4 || strcmp(found + flen - 4, ".lua"))
      return 0;
    memcpy(src, found, flen + 1);
    if (!(stext = slurp(src, &slen))) return 0;
  }
  lua_settop(L, 1);
  snprintf(bc, sizeof bc, "%s/%sc", luacdir, src + dlen + 1);
  if (!load_matching(L, src, stext, slen, bc)) return 0;   /* the source is parsed, as before */
  lua_pushstring(L, src);
  return 2;
}

/* core.loadscript(path) -> chunk | nil, message, unopened: loadfile(path) for the admin
** action scripts (scripts/NAME.lua, which mailhook.cli runs: `enqueue`,
** `test`, `update`), with the same bytecode rule as the modules: `make`
** writes BUILD/luac/scripts/NAME.luac and it is loaded while the copy of the
** source it carries is the file itself (parsing scripts/enqueue.lua was 0.36 M
** of the 4.4 M instructions of an `enqueue`).  Anything else: loadfile.
** unopened is true when the file could not be opened (mailhook.cli then
** looks for a module of that name: one open decides, not an io.open first). */
static int l_loadscript(lua_State *L) {
  const char *sdir = lua_tostring(L, lua_upvalueindex(1));
  const char *luacdir = lua_tostring(L, lua_upvalueindex(2));
  const char *path = luaL_checkstring(L, 1);
  size_t dlen = strlen(sdir), slen;
  char bc[PATH_MAX + 32], *stext;
  lua_settop(L, 1);
  int status;
  if (*luacdir && !strncmp(path, sdir, dlen) && path[dlen] == '/' &&
      strlen(luacdir) + strlen(path + dlen) + 16 < sizeof bc) {
    if (!(stext = slurp(path, &slen))) {
      int e = errno;
      luaL_pushfail(L);
      lua_pushfstring(L, "cannot open %s: %s", path, strerror(e));
      lua_pushboolean(L, 1);
      return 3;
    }
    snprintf(bc, sizeof bc, "%s/scripts%sc", luacdir, path + dlen);
    if (load_matching(L, path, stext, slen, bc)) return 1;
  }
  if ((status = luaL_loadfilex(L, path, NULL)) == LUA_OK) return 1;
  luaL_pushfail(L);
  lua_insert(L, -2);
  lua_pushboolean(L, status == LUA_ERRFILE);
  return 3;                              /* nil, message (as loadfile), unopened */
}

static void add_bc_searcher(lua_State *L, const paths_t *p) {
  int have = p->luac[0] && exists(p->luac);
  /* core.loadscript, on the core table left on the stack by set_paths */
  lua_pushstring(L, p->scripts);
  lua_pushstring(L, have ? p->luac : "");
  lua_pushcclosure(L, l_loadscript, 2);
  lua_setfield(L, -2, "loadscript");
  if (!have) return;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i >= 2; i--) {  /* shift 2.. up by one */
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushstring(L, p->lua);
  lua_pushstring(L, p->luac);
  lua_pushcclosure(L, bc_searcher, 2);
  lua_rawseti(L, -2, 2);                /* after preload, before the source searcher */
  lua_pop(L, 2);
}

static void set_paths(lua_State *L, const paths_t *p) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "mailhook.core");
  lua_createtable(L, 0, 6);
  lua_pushstring(L, p->root);    lua_setfield(L, -2, "root");
  lua_pushstring(L, p->lua);     lua_setfield(L, -2, "lua");
  lua_pushstring(L, p->scripts); lua_setfield(L, -2, "scripts");
  lua_pushstring(L, p->conf);    lua_setfield(L, -2, "conf");
  lua_pushstring(L, p->spool);   lua_setfield(L, -2, "spool");
  lua_pushstring(L, p->drop);    lua_setfield(L, -2, "drop");
  lua_pushstring(L, mh_instpaths_mailname()); lua_setfield(L, -2, "mailname");
  lua_pushboolean(L, p->installed); lua_setfield(L, -2, "installed");
  if (p->conf_given) { lua_pushstring(L, p->conf_given); lua_setfield(L, -2, "conf_given"); }
  lua_setfield(L, -2, "paths");
  /* package.path: ours first, then Lua's default (LuaSocket lives there) */
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", p->lua, p->lua);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  add_bc_searcher(L, p);                 /* with the core table on top */
  lua_pop(L, 2);
}

static void usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "mailhook: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, " (try 'mailhook help')\n");
  exit(2);
}

/* The `arg` table as lua.c builds it: arg[0] = script, arg[1..] = its arguments. */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Whether COMMAND is a one-shot intake (hook, enqueue, sendmail): an event
** turned into mail, then exit.  Its disk work is one write after another, with
** nothing to overlap it, so its jobs run on the loop thread itself
** (mh_l_jobs_inline): a pool thread cost its start, its malloc arena and its
** join, ~0.5 ms of a ~10 ms hook (bench/60-hook.sh).  The pool still serves
** what must not hold the loop (rule state's lock, which waits on other
** processes; libuv's own file requests), with one thread: libuv's default of
** 4, all started on the first request, bought nothing and cost ~1 ms (4
** clone3 + stack mappings at start, 4 joins at exit), unless
** UV_THREADPOOL_SIZE is already set (the caller's choice wins).  Safe with one
** worker: no request waits on another request of this process (rule state's
** flock is turned in-process first, see rule_state.lua locked()).
** Every other command (run, flush, repl, scripts) keeps libuv's default.
** Programs a rule starts inherit the variable: it only sizes their pool. */
static int one_worker(const char *cmd) {
  return !strcmp(cmd, "hook") || !strcmp(cmd, "enqueue") || !strcmp(cmd, "sendmail");
}

/* Whether the command COMMAND [ARGS] queues mail (enqueue, hook, sendmail), as
** against printing a report: `sendmail -bp` (mailq), `-bv` and `-bt` only
** print, and what they could not print is their failure. */
static int queues_mail(int argc, char **argv, int first) {
  if (!one_worker(argv[first])) return 0;
  if (strcmp(argv[first], "sendmail")) return 1;
  for (int i = first + 1; i < argc; i++)
    if (!strncmp(argv[i], "-bp", 3) || !strncmp(argv[i], "-bv", 3) || !strncmp(argv[i], "-bt", 3)) return 0;
  return 1;
}

/* The exit status once standard output is written out: what a command printed
** and could not write (a full disk under `> file`, /dev/full) was lost without
** a word and exit 0 (`mailhook queue --json > report` left an empty report).
** Said on stderr; the status becomes 1 unless it was already a failure.  An
** intake (enqueue, hook, sendmail) has queued its message by then: its status
** stays (the caller that retried on 1 sent it twice), and it is said that the
** message is queued.  A reader gone (EPIPE: `mailhook queue | head -1`) is
** what SIGPIPE ends silently elsewhere: nothing said, status kept. */
static int stdout_done(int status, int intake) {
  int failed = fflush(stdout) != 0, err = errno;
  if (!failed && ferror(stdout)) {
    /* an earlier write failed, its errno gone: a pipe whose reader left says
       so still (POLLERR on the write end) */
    struct pollfd p = { 1, POLLOUT, 0 };
    failed = 1, err = poll(&p, 1, 0) == 1 && (p.revents & POLLERR) ? EPIPE : 0;
  }
  if (!failed || err == EPIPE) return status;
  fprintf(stderr, "mailhook: cannot write standard output: %s%s\n", err ? strerror(err) : "a write to it failed",
          intake && status == 0 ? " (what it queued stays queued)" : "");
  return intake || status != 0 ? status : 1;
}

/* Descriptors 0, 1 and 2 open, on /dev/null where the caller closed them, before
** anything else opens a file (as MTAs do: Postfix's msg_vstream_init/
** closefrom dance, sendmail's fill_fd).  A caller such as mailutils' mail(1)
** runs sendmail with stdout and stderr closed: the first descriptor libuv
** then made (its signal pipe, an fs event) would be 1 or 2, and libuv asserts
** `fd > STDERR_FILENO` (SIGABRT after the message was already queued: the
** caller saw a failure, wrote dead.letter, and the mail went out twice); a
** spool file opened as fd 1 would receive whatever is printed next.  When
** /dev/null itself cannot be opened (a broken chroot) nothing is safe to do:
** exit 71 (EX_OSERR) before touching anything. */
static void stdio_open(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    int n = open("/dev/null", O_RDWR);   /* the lowest free number: fd itself */
    if (n < 0) _exit(71);
    if (n != fd) {
      if (dup2(n, fd) < 0) _exit(71);
      close(n);
    }
  }
}

/* What the binary is when installed under an MTA's name (`make
** install-sendmail` links them, docs/sendmail.md): `sendmail` is `mailhook
** sendmail`; `mailq` is `sendmail -bp` and `newaliases` is `sendmail -bi`, as
** Postfix defines them.  Under these names every argument is the sendmail
** command's (its -v, -q, -c mean what sendmail(1) says, not mailhook's global
** options); the settings and spool come from $MAILHOOK_CONF, $MAILHOOK_SPOOL
** or the defaults.  Returns the extra arguments to put before the caller's
** (NULL for the plain `mailhook` name). */
static const char *const *mta_name(const char *argv0) {
  static const char *const sendmail[] = { "sendmail", NULL };
  static const char *const mailq[] = { "sendmail", "-bp", NULL };
  static const char *const newaliases[] = { "sendmail", "-bi", NULL };
  const char *base = strrchr(argv0, '/');
  base = base ? base + 1 : argv0;
  if (!strcmp(base, "sendmail")) return sendmail;
  if (!strcmp(base, "mailq")) return mailq;
  if (!strcmp(base, "newaliases")) return newaliases;
  return NULL;
}

/* The allocator of the Lua state while it closes at exit (main's last
** lua_close): lua_close still runs every finalizer (the spool's and the loop's
** handles closed, the loop closed and its threads joined, Lua files flushed
** and closed, a rule's own __gc), but what they leave is left to the
** process's exit instead of freed block by block: freeing the ~2,000 objects
** of a run was 0.35 M of the 4.1 M instructions of an `enqueue` and 0.54 M of
** a `hook` (callgrind; docs/perf-hook.md).  Blocks stay reachable from
** closing_state, so a leak checker sees nothing lost; a sanitizer build frees
** everything as before, so LeakSanitizer still checks what the runtime leaks.
** Growth during the close goes to realloc, as with luaL_newstate's allocator
** (the same heap: a block made before is grown correctly). */
#if defined(__SANITIZE_ADDRESS__)
#define MH_FREE_AT_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define MH_FREE_AT_EXIT 1
#endif
#endif

#ifndef MH_FREE_AT_EXIT
static lua_State *volatile closing_state;
static void *exit_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud; (void)osize;
  if (nsize == 0) return NULL;          /* left to exit */
  return realloc(ptr, nsize);
}
#endif

/* The argv main builds under an MTA name: kept here, reachable for the whole
** process (a pointer only in main's frame is a leak to LeakSanitizer at exit). */
static char **volatile mta_argv;     /* volatile: a store never read is not optimised away */

int main(int argc, char **argv) {
  paths_t paths;
  const char *code = NULL;
  const char *const *mta;
  int i, status, first, nargs;
  lua_State *L;
  mh_task *task;

  stdio_open();                        /* first: before libuv or anything opens a file */
  signal(SIGPIPE, SIG_IGN);
  /* An ignored SIGCHLD survives exec: a caller that reaps nothing (a Perl
  ** daemon's $SIG{CHLD} = 'IGNORE' before it opens "|sendmail -t") would make
  ** the kernel reap our own children, and waitpid() fail with ECHILD after
  ** mailhook-drop had stored the message: sendmail exited 75 for mail that was
  ** queued (a caller that retries sends it twice); pclose() and io.popen's
  ** status the same.  Postfix's and sendmail's children are waited for alike. */
  signal(SIGCHLD, SIG_DFL);
  find_paths(&paths);
  mta = argc > 0 ? mta_name(argv[0]) : NULL;
  if (mta) {
    /* argv becomes: argv[0] MTA-ARGS... caller's args (no global options) */
    int extra = 0;
    char **nv;
    while (mta[extra]) extra++;
    if (!(nv = malloc(((size_t)argc + (size_t)extra + 1) * sizeof *nv))) return 71;
    nv[0] = argv[0];
    for (int k = 0; k < extra; k++) nv[1 + k] = (char *)mta[k];
    for (int k = 1; k < argc; k++) nv[extra + k] = argv[k];
    nv[argc + extra] = NULL;
    argc += extra;
    argv = mta_argv = nv;              /* lives as long as the process */
    i = 1;
  } else for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--")) { i++; break; }
    if (!strcmp(o, "-c") || !strcmp(o, "-s") || !strcmp(o, "-e")) {
      if (i + 1 >= argc) usage_error("option %s needs a value", o);
      if (o[1] != 'e' && strlen(argv[i + 1]) >= sizeof paths.conf - 1)
        usage_error("the value of option %s is too long", o);
      if (o[1] == 'c') {
        if (!*argv[i + 1]) usage_error("option %s needs a file name, not an empty string", o);
        snprintf(paths.conf, sizeof paths.conf, "%s", argv[++i]);
        paths.conf_given = "-c";
      }
      else if (o[1] == 's') {
        if (!*argv[i + 1]) usage_error("option %s needs a folder name, not an empty string", o);
        snprintf(paths.spool, sizeof paths.spool, "%s", argv[++i]);
      }
      else { code = argv[++i]; i++; break; }
    } else if (!strcmp(o, "-v") || !strcmp(o, "--verbose")) {
      mh_log_set_level(MH_LOG_DEBUG);
    } else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) {
      mh_log_set_level(MH_LOG_ERROR);
    } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
      argv[i] = (char *)"help"; break;
    } else if (!strcmp(o, "-V") || !strcmp(o, "--version")) {
      argv[i] = (char *)"version"; break;
    } else {
      usage_error("unknown option '%s'", o);
    }
  }
  first = i;
  /* root works as the owner of the spool (privdrop.h), before touching anything */
  if ((status = mh_privdrop_to_owner(paths.spool, mh_instpaths_service_user())) < 0) {
    fprintf(stderr, "mailhook: cannot switch to the owner of the spool %s: %s\n", paths.spool, strerror(-status));
    return 1;
  }

  L = luaL_newstate();
  if (!L) { fprintf(stderr, "mailhook: cannot create Lua state: out of memory\n"); return 1; }
  luaL_openlibs(L);
  mh_l_absolute_paths(L);   /* before our folders are added: nothing from the current folder */
  luaL_requiref(L, "mailhook.core", luaopen_mailhook_core, 0);
  lua_pop(L, 1);
  set_paths(L, &paths);
  /* each argument takes a stack slot below (a command line may hold thousands:
     sendmail RCPT...), Lua guarantees LUA_MINSTACK = 20: 30 arguments wrote
     past the stack's end */
  if (!lua_checkstack(L, argc + 8)) {
    fprintf(stderr, "mailhook: too many arguments (%d)\n", argc);
    lua_close(L);
    return 2;
  }

  if (code) {
    set_arg(L, argv, argc, first - 1);
    status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
    nargs = argc - first;
    for (int k = first; k < argc; k++) lua_pushstring(L, argv[k]);
  } else if (first < argc && (strchr(argv[first], '/') || strstr(argv[first], ".lua") ||
                              !strcmp(argv[first], "-"))) {
    const char *script = argv[first];
    set_arg(L, argv, argc, first);
    status = luaL_loadfile(L, !strcmp(script, "-") ? NULL : script);
    nargs = argc - first - 1;
    for (int k = first + 1; k < argc; k++) lua_pushstring(L, argv[k]);
    if (status == LUA_ERRFILE && !exists(script)) {
      fprintf(stderr, "mailhook: cannot open script '%s': no such file\n", script);
      return 1;
    }
  } else {
    /* a command: mailhook.cli dispatches it (help when none) */
    static const char boot[] = "return require('mailhook.cli').main(...)";
    if (first < argc && one_worker(argv[first])) {
      setenv("UV_THREADPOOL_SIZE", "1", 0);
      mh_l_jobs_inline(L, 1);
    }
    set_arg(L, argv, argc, first - 1);
    status = luaL_loadbuffer(L, boot, sizeof boot - 1, "=mailhook");
    nargs = argc - first;
    for (int k = first; k < argc; k++) lua_pushstring(L, argv[k]);
  }
  if (status != LUA_OK) {
    fprintf(stderr, "mailhook: %s\n", lua_tostring(L, -1 - nargs));
    lua_close(L);
    return 1;
  }

  task = mh_task_spawn(L, -1 - nargs, nargs, code ? "(command line)" :
                       first < argc ? argv[first] : "mailhook");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "mailhook.main_task");
  lua_settop(L, 0);
  mh_l_run(L, UV_RUN_DEFAULT);

  status = 0;
  if (mh_task_done(task) < 0) {
    status = 1;
  } else if (mh_task_done(task) > 0) {
    /* the main chunk's first result, when an integer, is the exit status */
    lua_getfield(L, LUA_REGISTRYINDEX, "mailhook.main_task");
    lua_getfield(L, -1, "wait");
    lua_insert(L, -2);
    lua_call(L, 1, 2);
    if (lua_isinteger(L, -1)) status = (int)lua_tointeger(L, -1);
    lua_settop(L, 0);
  } else {
    /* the loop ran dry while the main task still waited: a wait with no request
       behind it (coroutine.yield() at the top of a script, a join on itself) */
    fprintf(stderr, "mailhook: main task never finished (it waited on nothing)\n");
    status = 1;
  }
  status = stdout_done(status, code == NULL && first < argc && queues_mail(argc, argv, first));
#ifndef MH_FREE_AT_EXIT
  closing_state = L;
  lua_setallocf(L, exit_alloc, NULL);
#endif
  lua_close(L);   /* closes the state's loop too (l_sched.c, ctx_gc) */
  return status;
}
