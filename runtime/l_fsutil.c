/*
** l_fsutil.c — core.fsutil: the file helpers of fsutil.c for Lua, so that Lua
** code opens a file it did not create by the same one rule as the C core
** (read, open, check: regular files only, never a blocking open, a size limit;
** limits: the named input limits), plus write_atomic, check_ca_file (what
** tls_ca_file must be), hostname() (the default EHLO name), mode(path),
** with_lock(path, fn), isatty(fd) (a progress line only on a terminal,
** without forking a shell), echo(fd [, on [, again]]) (a password typed on a
** terminal is not shown, a stop included) and read_line(file, max) (a line of stdin, bounded).
** These calls block the loop briefly; they are
** meant for small files (settings, templates, rules, state, stdin).
*/
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <uv.h>
#include "l_sched.h"
#include "error.h"
#include "fsutil.h"
#include "tls.h"

/* The options {max = N, follow = bool, owned = bool, what = "attachment"} at
** idx (may be absent): the limit (default MH_LIMIT_CONFIG), MH_FS_FOLLOW,
** MH_FS_OWNED (a file no other user may change: rule files, settings), the
** prefix of messages. */
static void input_opts(lua_State *L, int idx, const char *fn, int64_t *max, unsigned *flags, const char **what) {
  *max = MH_LIMIT_CONFIG;
  *flags = 0;
  *what = "";
  static const char *const known[] = { "max", "follow", "owned", "what", NULL };
  mh_l_check_nargs(L, idx, fn);
  if (lua_isnoneornil(L, idx)) return;
  mh_l_arg_type(L, idx, "options", LUA_TTABLE);
  mh_l_check_options(L, idx, fn, known);
  lua_getfield(L, idx, "max");
  if (!lua_isnil(L, -1)) {
    lua_Integer m = mh_l_field_integer(L, -1, fn, "max");
    if (m <= 0) mh_l_field_error(L, -1, fn, "max", "> 0");
    *max = (int64_t)m;
  }
  lua_getfield(L, idx, "follow");
  if (lua_toboolean(L, -1)) *flags |= MH_FS_FOLLOW;
  lua_getfield(L, idx, "owned");
  if (lua_toboolean(L, -1)) *flags |= MH_FS_OWNED;
  lua_getfield(L, idx, "what");
  if (!lua_isnil(L, -1)) *what = mh_l_field_string(L, -1, fn, "what");
  lua_rotate(L, -4, 1);   /* what stays on the stack: a number converted there is no field of the table */
  lua_pop(L, 3);
}

/* read(path | fd [, {max =, follow =, what =}]) -> bytes | nil, err, info.
** A path: only a regular file (a FIFO, a device, a folder: refused unopened;
** a symbolic link only with follow = true), at most max bytes (default
** limits.config).  An fd (stdin: 0): read to its end, refused as soon as it
** passes max.  err names what, the path and the limit. */
static int l_read(lua_State *L) {
  int64_t max;
  unsigned flags;
  const char *what, *path = NULL;
  char **buf, why[4200];
  size_t len = 0;
  struct stat st;
  int rc;
  input_opts(L, 2, "fsutil.read", &max, &flags, &what);
  memset(&st, 0, sizeof st);
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Integer fd = mh_l_arg_integer(L, 1, "fd");
    if (!(fd >= 0 && fd <= 0x7fffffff)) mh_l_arg_error(L, 1, "fd", "a file descriptor");
    buf = (char **)mh_l_box(L, sizeof *buf, mh_l_free_ptr);   /* pushing the bytes may raise */
    rc = mh_fsutil_read_fd((int)fd, max, buf, &len);
  } else {
    path = mh_l_arg_path(L, 1, "path");
    buf = (char **)mh_l_box(L, sizeof *buf, mh_l_free_ptr);
    rc = mh_fsutil_read(AT_FDCWD, path, flags, max, buf, &len, &st);
  }
  if (rc < 0) {
    mh_fsutil_why(why, sizeof why, *what ? what : path ? "" : "input", path, rc, &st, max);
    return mh_l_fail(L, rc, "read", "%s", why);
  }
  lua_pushlstring(L, *buf, len);
  return 1;   /* the box frees the buffer as the function returns */
}

/* check(path [, {max =, follow =, what =}]) -> size | nil, err, info: what read
** would refuse, without reading (an attachment is only named at first). */
static int l_check(lua_State *L) {
  int64_t max;
  unsigned flags;
  const char *what, *path = mh_l_arg_path(L, 1, "path");
  char why[4200];
  struct stat st;
  input_opts(L, 2, "fsutil.check", &max, &flags, &what);
  memset(&st, 0, sizeof st);
  int fd = mh_fsutil_open_input(AT_FDCWD, path, flags, max, &st);
  if (fd < 0) {
    mh_fsutil_why(why, sizeof why, what, path, fd, &st, max);
    return mh_l_fail(L, fd, "read", "%s", why);
  }
  close(fd);
  lua_pushinteger(L, (lua_Integer)st.st_size);
  return 1;
}

/* __close/__gc of a file handle made by l_open (liolib's io_fclose). */
static int stream_close(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int res = fclose(p->f);
  return luaL_fileresult(L, res == 0, NULL);
}

/* open(path [, {max =, follow =, what =}]) -> file | nil, err, info: a Lua file
** handle (io's own: f:read, f:seek, f:lines, f:close) opened for reading by the
** same rule as read (no size limit unless max), for a file read piece by
** piece (a spool file streamed). */
static int l_open(lua_State *L) {
  int64_t max;
  unsigned flags;
  const char *what, *path = mh_l_arg_path(L, 1, "path");
  char why[4200];
  struct stat st;
  input_opts(L, 2, "fsutil.open", &max, &flags, &what);
  /* a stream: no size limit unless asked */
  if (lua_isnoneornil(L, 2) || lua_getfield(L, 2, "max") == LUA_TNIL) max = 0;
  lua_settop(L, 2);
  memset(&st, 0, sizeof st);
  luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL;   /* a closed file until fdopen worked */
  luaL_setmetatable(L, LUA_FILEHANDLE);
  int fd = mh_fsutil_open_input(AT_FDCWD, path, flags, max, &st);
  if (fd < 0) {
    mh_fsutil_why(why, sizeof why, what, path, fd, &st, max);
    return mh_l_fail(L, fd, "read", "%s", why);
  }
  if (!(p->f = fdopen(fd, "rb"))) {
    int e = errno;
    close(fd);
    return mh_l_fail(L, -e, "read", "%s: %s", path, strerror(e));
  }
  p->closef = stream_close;
  return 1;
}

/* read_line(file, max) -> line, long | nil: the next line of a Lua file handle
** (io.stdin), its "\n" kept, at most max bytes of it held: a longer line gives
** its first max bytes and long = true, and the rest of it is read and dropped
** as it comes (never held).  nil at the end of the input with nothing read.
** Like f:read("L"), it returns as soon as the line's "\n" arrives (a client
** waiting for a reply is answered); unlike it, a line of gigabytes without a
** "\n" costs max bytes, not the line (sendmail -bs: a 200 MB MAIL FROM line
** took 590 MB to be refused as "Line too long"). */
static int l_read_line(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
  if (!p || !p->closef || !p->f) return mh_l_arg_error(L, 1, "file", "an open file");
  lua_Integer max = mh_l_arg_integer(L, 2, "max");
  if (max < 1) return mh_l_arg_error(L, 2, "max", "a positive integer");
  luaL_Buffer b;
  size_t kept = 0;
  int c, got = 0, dropped = 0;
  luaL_buffinit(L, &b);
  flockfile(p->f);   /* as liolib's read_line: getc_unlocked, the buffer grown inside */
  while ((c = getc_unlocked(p->f)) != EOF) {
    got = 1;
    if (kept < (size_t)max) {
      luaL_addchar(&b, (char)c);
      kept++;
    } else {
      dropped = 1;
    }
    if (c == '\n') break;
  }
  funlockfile(p->f);
  if (!got) return 0;
  luaL_pushresult(&b);
  lua_pushboolean(L, dropped);
  return 2;
}

/* check_ca_file(path) -> number of certificates | nil, err, info: path is what
** tls_ca_file needs (a regular PEM file with a certificate, read safely). */
static int l_check_ca_file(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "path");
  char err[4400];
  int n = mh_tls_check_ca_file(path, err, sizeof err);
  if (n < 0) return mh_l_fail(L, n, "read", "%s", err);
  lua_pushinteger(L, n);
  return 1;
}

/* isatty(fd) -> boolean */
static int l_isatty(lua_State *L) {
  lua_Integer fd = mh_l_arg_integer(L, 1, "fd");
  lua_pushboolean(L, fd >= 0 && fd <= 0x7fffffff && isatty((int)fd));
  return 1;
}

/* While echo(fd, false) holds the echo off, the terminal's settings of
** before are kept here, and a signal that ends the process (Ctrl-C, SIGTERM,
** SIGHUP, SIGQUIT) or its exit puts them back first: the process died with
** the echo off, and under sh or a script every command typed afterwards was
** invisible until `stty sane`.  A stop (Ctrl-Z) puts them back for as long as
** the process is stopped and takes the echo off again when it goes on: see
** quiet_on_stop.  echo(fd, true) takes the handlers away. */
static const int quiet_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_QUIET_SIGS (sizeof quiet_sigs / sizeof quiet_sigs[0])
static struct termios quiet_saved;            /* as it was: put back at the end, and while stopped */
static struct termios quiet_off;              /* the echo off: taken again after a stop */
static volatile sig_atomic_t quiet_fd = -1;
static struct sigaction quiet_old[N_QUIET_SIGS];
static int quiet_caught[N_QUIET_SIGS];
static struct sigaction quiet_old_tstp;       /* SIGTSTP's disposition before quiet_hold */
static int quiet_tstp_caught;
static char quiet_again[512];                 /* echo's AGAIN: written to stderr when typing starts over */
static size_t quiet_again_len;

static void quiet_restore(void) {
  int fd = quiet_fd;
  if (fd >= 0) { quiet_fd = -1; (void)tcsetattr(fd, TCSANOW, &quiet_saved); }
}

/* Async-signal-safe: tcsetattr, sigaction and raise are. */
static void quiet_on_signal(int sig) {
  int saved = errno;
  quiet_restore();
  for (size_t i = 0; i < N_QUIET_SIGS; i++) {
    if (quiet_sigs[i] == sig && quiet_caught[i]) { sigaction(sig, &quiet_old[i], NULL); quiet_caught[i] = 0; }
  }
  raise(sig);   /* as it would have been: the process dies of it (or its own handler runs) */
  errno = saved;
}

/* Ctrl-Z while the echo is off.  Before, the process stopped with the echo
** off; bash then set the terminal for itself, and after `fg` gave the job
** back no settings of its own: the rest of the password showed on the screen
** as it was typed, and what was typed before the stop stayed at the front of
** the line (a password the administrator did not mean was saved).  Now, as
** readpassphrase(3) does: the settings of before are put back for the stop,
** the process stops as it would have (SIGTSTP's default, raised here with it
** unblocked: this handler returns only once the process goes on), then the
** echo goes off again, what the terminal holds unread is dropped (TCSAFLUSH:
** in canonical mode an unfinished line was never read) and AGAIN is written:
** typing starts over.  A process group the kernel will not stop (orphaned:
** no shell to `fg` it) goes on at once, the same way.  Async-signal-safe:
** tcsetattr, sigaction, pthread_sigmask, raise and write are. */
static void quiet_on_stop(int sig) {
  int saved = errno, fd = quiet_fd;
  struct sigaction dfl, mine;
  sigset_t set;
  (void)sig;
  if (fd >= 0) (void)tcsetattr(fd, TCSANOW, &quiet_saved);
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGTSTP, &dfl, &mine);
  sigemptyset(&set);
  sigaddset(&set, SIGTSTP);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(SIGTSTP);                       /* stopped here, until SIGCONT */
  sigaction(SIGTSTP, &mine, NULL);
  if ((fd = quiet_fd) >= 0) {
    (void)tcsetattr(fd, TCSAFLUSH, &quiet_off);
    if (quiet_again_len) (void)!write(2, quiet_again, quiet_again_len);
  }
  errno = saved;
}

static void quiet_release(void) {
  for (size_t i = 0; i < N_QUIET_SIGS; i++) {
    if (quiet_caught[i]) { sigaction(quiet_sigs[i], &quiet_old[i], NULL); quiet_caught[i] = 0; }
  }
  if (quiet_tstp_caught) { sigaction(SIGTSTP, &quiet_old_tstp, NULL); quiet_tstp_caught = 0; }
  quiet_restore();
}

static void quiet_hold(int fd, const struct termios *before, const struct termios *off) {
  static int once;
  struct sigaction sa, old;
  if (quiet_fd >= 0) return;        /* off already: the first settings are the ones to put back */
  quiet_saved = *before;
  quiet_off = *off;
  quiet_fd = fd;
  if (!once) { atexit(quiet_restore); once = 1; }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = quiet_on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < N_QUIET_SIGS; i++) {
    /* an ignored signal stays ignored (nohup): it ends nothing */
    if (sigaction(quiet_sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    quiet_caught[i] = sigaction(quiet_sigs[i], &sa, &quiet_old[i]) == 0;
  }
  /* a stop: the read in progress goes on after it (SA_RESTART), from a fresh line;
     an ignored or handled SIGTSTP (the program's own) is left as it is */
  sa.sa_handler = quiet_on_stop;
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGTSTP, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO))
    quiet_tstp_caught = sigaction(SIGTSTP, &sa, &quiet_old_tstp) == 0;
}

/* echo(fd [, on [, again]]) -> was_on | nil, err: whether the terminal on fd
** echoes what is typed; with on given, sets it first (off: what was typed
** ahead is dropped, as getpass(3) does).  `update password=-` reads a
** password from a terminal with it off.  again (with on false): the prompt,
** written to stderr when typing starts over after a stop (Ctrl-Z, then `fg`:
** quiet_on_stop), cut to 511 bytes. */
static int l_echo(lua_State *L) {
  struct termios t;
  lua_Integer fd = mh_l_arg_integer(L, 1, "fd");
  int set = !lua_isnoneornil(L, 2), on = lua_toboolean(L, 2), was;
  size_t alen = 0;
  const char *again = lua_isnoneornil(L, 3) ? NULL : mh_l_arg_lstring(L, 3, "again", &alen);
  mh_l_check_nargs(L, 3, "fsutil.echo");
  if (fd < 0 || fd > 0x7fffffff || tcgetattr((int)fd, &t) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(fd < 0 || fd > 0x7fffffff ? EBADF : errno));
    return 2;
  }
  was = (t.c_lflag & ECHO) != 0;
  if (set) {
    struct termios before = t;
    if (on) t.c_lflag |= ECHO;
    else t.c_lflag &= ~(tcflag_t)ECHO;
    if (!on && was) {
      if (quiet_fd < 0) {           /* (the handlers are not in place yet: no stop reads it) */
        quiet_again_len = again ? (alen < sizeof quiet_again ? alen : sizeof quiet_again - 1) : 0;
        if (quiet_again_len) memcpy(quiet_again, again, quiet_again_len);
      }
      quiet_hold((int)fd, &before, &t);   /* before the change: a signal in between restores */
    }
    if (tcsetattr((int)fd, on ? TCSANOW : TCSAFLUSH, &t) != 0) {
      int e = errno;
      if (!on && was) quiet_release();
      lua_pushnil(L);
      lua_pushstring(L, strerror(e));
      return 2;
    }
    if (on && quiet_fd == (int)fd) { quiet_fd = -1; quiet_release(); }
  }
  lua_pushboolean(L, was);
  return 1;
}

/* write_atomic(path, bytes [, mode = 0600 [, {sync = false, uid =, gid =}]]) -> true | nil, err, info
** (err "PATH: STEP: strerror"; info.step the step that failed, info.replaced
** true when path holds the new content all the same: the folder's fsync failed)
** (sync = false: no fsync, for a snapshot rewritten often such as status.json;
** uid, gid: the owner and group the new file gets before its rename, e.g. the
** ones of the file it replaces -- EPERM when this process may not give them) */
static int l_write_atomic(lua_State *L) {
  size_t len;
  int sync = 1;
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  const char *path = mh_l_arg_path(L, 1, "path");
  const char *data = mh_l_arg_lstring(L, 2, "data", &len);
  lua_Integer mode = mh_l_optarg_integer(L, 3, "mode", 0600);
  if (!(mode >= 0 && mode <= 07777)) mh_l_arg_error(L, 3, "mode", "permission bits 0-07777");
  mh_l_check_nargs(L, 4, "fsutil.write_atomic");
  if (lua_istable(L, 4)) {
    static const char *const known[] = { "sync", "uid", "gid", NULL };
    mh_l_check_options(L, 4, "fsutil.write_atomic", known);
    lua_getfield(L, 4, "sync");
    sync = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 4, "uid");
    if (!lua_isnil(L, -1)) uid = (uid_t)mh_l_field_integer(L, -1, "fsutil.write_atomic", "uid");
    lua_getfield(L, 4, "gid");
    if (!lua_isnil(L, -1)) gid = (gid_t)mh_l_field_integer(L, -1, "fsutil.write_atomic", "gid");
    lua_pop(L, 2);
  }
  const char *step = NULL;
  int rc = mh_fsutil_write_atomic_as(path, data, len, (mode_t)mode, uid, gid, sync, &step);
  if (rc < 0) {
    /* which step, and whether path now holds the new content (only a failed
       fsync of the folder comes after the rename) */
    int in_place = step && strcmp(step, "fsync the folder") == 0;
    mh_l_fail(L, rc, "write", "%s: %s: %s", path, step ? step : "write", mh_strerror(rc));
    lua_pushstring(L, step ? step : "write");
    lua_setfield(L, -2, "step");
    lua_pushboolean(L, in_place);
    lua_setfield(L, -2, "replaced");
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* mode(path) -> permission bits (e.g. 384 for 0600) | nil, err */
static int l_mode(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "path");
  struct stat st;
  if (stat(path, &st) < 0) return mh_l_fail(L, -errno, NULL, "%s: %s", path, strerror(errno));
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* owner_name(t, key): the __index of an owner() table, for "user" and
** "group" only: the name of t.uid / t.gid (the number as text when the
** system has none), looked up at the first read and kept in t.  Why lazy: a
** lookup reads nsswitch.conf, passwd or group and asks nscd (some twenty
** system calls), and most callers (settings.stamp, unsafe(), every intake)
** read only uid, mode and size: `enqueue` paid for names it never showed. */
static int owner_name(lua_State *L) {
  const char *key = lua_tostring(L, 2);
  int user = key && strcmp(key, "user") == 0;
  if (!user && !(key && strcmp(key, "group") == 0)) return 0;
  lua_getfield(L, 1, user ? "uid" : "gid");
  lua_Integer id = lua_tointeger(L, -1);
  lua_pop(L, 1);
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)id);
  const char *name = NULL;
  if (user) { struct passwd *pw = getpwuid((uid_t)id); if (pw) name = pw->pw_name; }
  else { struct group *gr = getgrgid((gid_t)id); if (gr) name = gr->gr_name; }
  lua_pushstring(L, name ? name : num);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);   /* kept: a second read makes no lookup */
  return 1;
}

/* owner(path [, link]) -> {mode =, uid =, gid =, user =, group =, link =, regular =, size =, ino =,
**                          mtime_ns =} | nil, err
** Of the file path names (followed; with link true, of a symbolic link itself,
** link = true then): what a rewrite keeps, and who made a link.  user and
** group are the names (the numbers as text when the system has none), looked
** up when first read (owner_name): pairs() and a JSON encoding do not list
** them until then. */
static int l_owner(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "path");
  int nofollow = lua_toboolean(L, 2);
  struct stat st;
  if ((nofollow ? lstat(path, &st) : stat(path, &st)) < 0)
    return mh_l_fail(L, -errno, NULL, "%s: %s", path, strerror(errno));
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st.st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushboolean(L, S_ISLNK(st.st_mode));
  lua_setfield(L, -2, "link");
  lua_pushboolean(L, S_ISREG(st.st_mode));
  lua_setfield(L, -2, "regular");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
  lua_setfield(L, -2, "mtime_ns");
  if (luaL_newmetatable(L, "fsutil.owner")   /* not "mailhook.": no class, no __gc */) {
    lua_pushcfunction(L, owner_name);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  return 1;
}

/* realpath(path) -> the path with every symbolic link and "." / ".." resolved
** | nil, err (ENOENT for a path or a link's target that does not exist).
** Where a rewrite of a linked settings file must write: beside the target,
** keeping the link (a rename over the link replaced it with a plain file). */
static int l_realpath(lua_State *L) {
  const char *path = mh_l_arg_path(L, 1, "path");
  char *r = realpath(path, NULL);
  if (!r) return mh_l_fail(L, -errno, NULL, "%s: %s", path, strerror(errno));
  lua_pushstring(L, r);
  free(r);
  return 1;
}

/* with_lock(path, fn, ...) -> fn(...)'s results.  Holds an exclusive flock on
** the folder that contains path while fn runs, so that read-modify-write cycles
** on files in it (settings updates) do not interleave between processes.  fn
** must not yield; an error in fn is re-raised after the lock is released.
** try_lock(path, fn, ...) -> fn(...)'s results | nil, err, {locked = true,
** lock = folder}: the same without waiting, for the service, whose loop must
** not stop while another process (a `mailhook update` still running, a
** script's flock(1)) holds the lock; its caller retries on a timer. */
static int with_lock(lua_State *L, const char *fname, int wait) {
  char dir[4096];
  /* its folder is copied whole or refused: a cut path would lock another folder */
  const char *path = mh_l_field_cstring(L, 1, fname, "path", sizeof dir - 1);
  if (!lua_isfunction(L, 2)) mh_l_field_error(L, 2, fname, "fn", "a function");
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    int rc;
    while ((rc = flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) < 0 && errno == EINTR) {}
    if (rc < 0 && errno == EWOULDBLOCK) {
      close(fd);
      lua_pushnil(L);
      lua_pushfstring(L, "%s: locked by another process (an update of the settings in this folder)", dir);
      lua_createtable(L, 0, 2);
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "locked");
      lua_pushstring(L, dir);
      lua_setfield(L, -2, "lock");
      return 3;
    }
  }
  /* no folder (or no lock): run anyway; fn reports the real error (ENOENT ...) */
  int nargs = lua_gettop(L) - 2;
  int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
  if (fd >= 0) close(fd);             /* releases the lock */
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L) - 1;
}

static int l_with_lock(lua_State *L) { return with_lock(L, "fsutil.with_lock", 1); }
static int l_try_lock(lua_State *L) { return with_lock(L, "fsutil.try_lock", 0); }

/* hostname() -> the machine's host name | nil, err */
static int l_hostname(lua_State *L) {
  char buf[256];
  size_t n = sizeof buf;
  int rc = uv_os_gethostname(buf, &n);
  if (rc < 0) return mh_l_fail(L, rc, NULL, "hostname: %s", uv_strerror(rc));
  lua_pushlstring(L, buf, n);
  return 1;
}

void l_fsutil_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "write_atomic", l_write_atomic },
    { "isatty", l_isatty },
    { "echo", l_echo },
    { "hostname", l_hostname },
    { "mode", l_mode },
    { "owner", l_owner },
    { "realpath", l_realpath },
    { "with_lock", l_with_lock },
    { "try_lock", l_try_lock },
    { "read", l_read },
    { "open", l_open },
    { "check", l_check },
    { "check_ca_file", l_check_ca_file },
    { "read_line", l_read_line },
    { NULL, NULL },
  };
  static const struct { const char *name; int64_t v; } limits[] = {
    { "attachment", MH_LIMIT_ATTACHMENT }, { "body", MH_LIMIT_BODY }, { "event", MH_LIMIT_EVENT },
    { "field", MH_LIMIT_FIELD }, { "config", MH_LIMIT_CONFIG }, { "ca", MH_LIMIT_CA },
    { "message", MH_LIMIT_MESSAGE },
  };
  luaL_newlib(L, fns);
  lua_createtable(L, 0, 7);   /* limits: the named input limits (fsutil.h, docs/spool.md) */
  for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
    lua_pushinteger(L, (lua_Integer)limits[i].v);
    lua_setfield(L, -2, limits[i].name);
  }
  lua_setfield(L, -2, "limits");
  lua_setfield(L, -2, "fsutil");
}
