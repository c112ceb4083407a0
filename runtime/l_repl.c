/*
** l_repl.c — line input for `mailhook repl` (core.repl), on the libuv loop.
**
** On a terminal, GNU readline's callback interface does the editing and the
** history: a uv_poll_t on stdin feeds rl_callback_read_char(), so the loop
** keeps running (timers, other tasks) while the prompt waits, and readline()
** is an ordinary waiting call of l_sched.h.  From a pipe or a file, stdin is
** read with uv_fs_read and split into lines, without prompts.
**
** Ctrl-C: while the REPL is open a SIGINT handler is installed.  At the prompt
** it clears the line (readline() returns nil, "interrupted").  While a line
** runs (guard(task)), it interrupts that task: a task waiting in a libuv
** request is cancelled through mh_task_interrupt(); a task busy in Lua (the
** loop thread never gets back to libuv) is stopped by a count hook set from
** the signal handler on its coroutine, as lua.c does.  A second Ctrl-C before
** the first took effect (a C call that never returns) ends the process.
**
** There is one stdin, so this module is a singleton: one reader at a time.
**
** readline is loaded (dlopen) when the REPL first needs it, never at start:
** merely linking libreadline and its libtinfo made the dynamic loader map
** and relocate them in every process, 0.49 M instructions of every command,
** a quarter of `mailhook -e ''` (callgrind; docs/perf-hook.md), for the one
** command that edits lines.  Without it (a system lacking the library) a
** terminal is read as plain lines, as a pipe is, and history is not kept.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <dlfcn.h>
#include <readline/readline.h>
#include <readline/history.h>
#include "l_sched.h"
#include "log.h"
#include "error.h"

/* ------------------------------------------------- readline, loaded late
** Every readline function and variable this file uses, reached through
** pointers that rl_load() fills; the names below are macros for them, so the
** code reads as if it were linked (headers give the types: the same readline
** the build had). */
#define RL_SYMBOLS(X) \
  X(rl_free_line_state) X(rl_callback_sigcleanup) X(rl_callback_handler_remove) \
  X(rl_callback_handler_install) X(rl_callback_read_char) X(rl_completion_matches) \
  X(rl_clear_visible_line) X(rl_forced_update_display) X(using_history) X(stifle_history) \
  X(read_history) X(history_truncate_file) X(history_get) X(add_history) X(append_history) \
  X(rl_attempted_completion_over) X(rl_completion_append_character) X(rl_outstream) \
  X(rl_readline_name) X(rl_catch_signals) X(rl_attempted_completion_function) \
  X(rl_completer_word_break_characters) X(history_length) X(history_base)

static struct {
#define RL_FIELD(name) __typeof__(&name) name;
  RL_SYMBOLS(RL_FIELD)
#undef RL_FIELD
} rl;
static int rl_state;          /* 0 not tried, 1 loaded, -1 not available */

/* Loads libreadline once; 1 when every symbol is there, else 0 (said once). */
static int rl_load(void) {
  static const char *const names[] = { "libreadline.so.8", "libreadline.so" };
  void *h = NULL;
  if (rl_state) return rl_state > 0;
  rl_state = -1;
  for (size_t i = 0; !h && i < sizeof names / sizeof *names; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    mh_warn("repl: GNU readline cannot be loaded (%s): no line editing nor history", dlerror());
    return 0;
  }
#define RL_SYM(name) \
  if (!(*(void **)&rl.name = dlsym(h, #name))) { \
    mh_warn("repl: the readline library lacks %s: no line editing nor history", #name); \
    memset(&rl, 0, sizeof rl); \
    return 0; \
  }
  RL_SYMBOLS(RL_SYM)
#undef RL_SYM
  rl_state = 1;
  return 1;
}

/* From here on, each name is what rl_load found (a macro is not expanded again
** inside its own expansion: rl.NAME stays the field). */
#define rl_free_line_state (*rl.rl_free_line_state)
#define rl_callback_sigcleanup (*rl.rl_callback_sigcleanup)
#define rl_callback_handler_remove (*rl.rl_callback_handler_remove)
#define rl_callback_handler_install (*rl.rl_callback_handler_install)
#define rl_callback_read_char (*rl.rl_callback_read_char)
#define rl_completion_matches (*rl.rl_completion_matches)
#define rl_clear_visible_line (*rl.rl_clear_visible_line)
#define rl_forced_update_display (*rl.rl_forced_update_display)
#define using_history (*rl.using_history)
#define stifle_history (*rl.stifle_history)
#define read_history (*rl.read_history)
#define history_truncate_file (*rl.history_truncate_file)
#define history_get (*rl.history_get)
#define add_history (*rl.add_history)
#define append_history (*rl.append_history)
#define rl_attempted_completion_over (*rl.rl_attempted_completion_over)
#define rl_completion_append_character (*rl.rl_completion_append_character)
#define rl_outstream (*rl.rl_outstream)
#define rl_readline_name (*rl.rl_readline_name)
#define rl_catch_signals (*rl.rl_catch_signals)
#define rl_attempted_completion_function (*rl.rl_attempted_completion_function)
#define rl_completer_word_break_characters (*rl.rl_completer_word_break_characters)
#define history_length (*rl.history_length)
#define history_base (*rl.history_base)

#define HISTORY_MAX 1000      /* entries kept in memory and in the history file */
#define CHUNK 65536           /* bytes per read from a pipe */

static struct {
  int opened;                 /* handles initialised */
  int sig_installed;          /* our SIGINT handler is in place (terminal only) */
  int tty;                    /* stdin is a terminal: readline; else plain lines */
  uv_poll_t poll;             /* stdin readable, while a prompt waits (tty) */
  uv_async_t async;           /* the SIGINT handler wakes the loop with it */
  struct sigaction old_int;   /* restored by close() */

  mh_wait w;                  /* the readline() in progress */
  int waiting;                /* w belongs to a live readline() */
  int prompt_active;          /* readline's callback handler is installed */
  int line_done;              /* line_cb ran: hand `line` over outside readline */
  int in_rl;                  /* inside rl_callback_read_char (keys, Tab): no redraw */
  int log_cleared;            /* log_before took the prompt off: log_after redraws it */
  char *line;                 /* what line_cb got (NULL = Ctrl-D), malloc'd by readline */
  char *history;              /* history file, NULL when history is not kept */
  int completer_ref;          /* registry ref of the Lua completer, for Tab */
  char **cands;               /* candidates of the completion in progress */
  size_t ncands;

  lua_State *L;               /* the state's callback thread (mh_l_cbstate), for the registry */
  uv_loop_t *loop;            /* the loop of the state that opened it (one at a time) */
  int guard_ref;              /* registry ref of the task Ctrl-C interrupts */
  mh_task *guard_task;

  char *buf;                  /* pipe mode: bytes read, not yet returned as lines */
  size_t len, cap;
  int eof;                    /* pipe mode: read() returned 0 (or failed) */
  int reading;                /* pipe mode: an uv_fs_read is in flight */
  uv_fs_t req;
  char chunk[CHUNK];
} R = { .guard_ref = LUA_NOREF, .completer_ref = LUA_NOREF };

/* Written by the SIGINT handler, read on the loop thread. */
static volatile sig_atomic_t sig_pending;  /* a Ctrl-C not yet acted upon */
static volatile sig_atomic_t sig_running;  /* it came while a line ran (else: at the prompt) */
static volatile sig_atomic_t sig_hit;      /* the guarded line was interrupted */
static lua_State *volatile guard_co;       /* coroutine of the guarded task (hooked) */

/* ------------------------------------------------------------ interrupt */

/* Count hook set by the signal handler: raises "interrupted" in the busy task.
** It stays armed until guard(nil), so a loop that catches errors with pcall
** cannot swallow the interrupt: the period changes by one instruction each
** time, or a loop of fixed length would be hit at the same (caught) place. */
#define REARM 1000
static void stop_hook(lua_State *L, lua_Debug *ar) {
  static unsigned shift;
  (void)ar;
  lua_sethook(L, stop_hook, LUA_MASKCOUNT, REARM + (int)(shift++ % 97));
  sig_pending = 0;
  lua_pushliteral(L, "interrupted");
  lua_error(L);
}

/* Async-signal-safe: a flag, lua_sethook (as lua.c does) and uv_async_send. */
static void on_sigint(int sig) {
  int saved = errno;
  lua_State *co = guard_co;
  if (sig_pending && co) {   /* the first one did not take effect: give up */
    signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
    return;
  }
  sig_pending = 1;
  sig_running = co != NULL;
  if (co) sig_hit = 1;
  if (co) lua_sethook(co, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
  uv_async_send(&R.async);
  errno = saved;
}


/* Pushes the guarded task's status() ("waiting", "ready", "done", "failed"). */
static const char *guard_status(lua_State *L) {
  const char *s;
  lua_rawgeti(L, LUA_REGISTRYINDEX, R.guard_ref);
  lua_getfield(L, -1, "status");
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { lua_pop(L, 1); return "done"; }
  s = lua_tostring(L, -1);
  lua_pop(L, 1);     /* the string is interned: the literal names stay valid */
  return s ? s : "done";
}

/* On the loop thread, after a Ctrl-C. */
static void async_cb(uv_async_t *h) {
  (void)h;
  if (!sig_pending) return;          /* the hook already stopped the busy task */
  if (sig_running) {
    const char *st;
    sig_pending = 0;
    if (!R.guard_task) return;       /* the line finished meanwhile */
    st = guard_status(R.L);
    if (!strcmp(st, "waiting")) {
      /* not running Lua: the hook would fire inside the error handler; the
         scheduler raises "interrupted" from the wait instead */
      if (guard_co) lua_sethook(guard_co, NULL, 0, 0);
      mh_task_interrupt(R.guard_task);
    }                                /* "ready": the hook fires when it resumes */
    return;
  }
  if (R.prompt_active) {             /* at the prompt: drop the line, fresh prompt */
    sig_pending = 0;
    fputs("^C\n", stdout);          /* the cursor is on the line typed: end it */
    fflush(stdout);
    rl_free_line_state();
    rl_callback_sigcleanup();
    rl_callback_handler_remove();
    R.prompt_active = 0;
    uv_poll_stop(&R.poll);
    if (R.waiting) {
      lua_State *co = mh_wait_co(&R.w);
      R.waiting = 0;
      if (co) {
        lua_pushnil(co);
        lua_pushliteral(co, "interrupted");
        mh_wait_resume(&R.w, 2);
      }
    }
  }
  /* else: between a line's Enter and its guard(): sig_pending stays set and
     guard() interrupts the line at once */
}

/* guard(task): until guard(nil), Ctrl-C interrupts task instead of the prompt.
** guard(nil) returns true when a Ctrl-C reached the task meanwhile (whatever
** became of the error it raised: the line counts as interrupted). */
static int l_guard(lua_State *L) {
  int hit = sig_hit;
  sig_hit = 0;
  if (R.guard_task) {
    lua_State *co = guard_co;
    guard_co = NULL;
    if (co) lua_sethook(co, NULL, 0, 0);
    R.guard_task = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, R.guard_ref);
    R.guard_ref = LUA_NOREF;
  }
  if (lua_isnoneornil(L, 1)) {
    sig_pending = 0;                 /* a Ctrl-C for the line that just ended */
    lua_pushboolean(L, hit);
    return 1;
  }
  R.guard_task = (mh_task *)luaL_checkudata(L, 1, "mailhook.Task");
  if (sig_pending && !sig_running) { /* Ctrl-C came after Enter, before this */
    sig_pending = 0;
    sig_hit = 1;
    mh_task_interrupt(R.guard_task);
  }
  /* the task's coroutine is its first user value (l_sched.c) */
  if (lua_getiuservalue(L, 1, 1) == LUA_TTHREAD) guard_co = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 1);
  R.guard_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* ------------------------------------------------------------ terminal */

/* readline calls this with the finished line (NULL on Ctrl-D).  We are inside
** rl_callback_read_char: only stash it; poll_cb hands it over afterwards, so
** the REPL may install the next prompt without nesting inside readline. */
static void line_cb(char *line) {
  rl_callback_handler_remove();
  R.prompt_active = 0;
  R.line_done = 1;
  R.line = line;
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  (void)events;
  if (status < 0) {                  /* stdin went away: as Ctrl-D */
    if (R.prompt_active) rl_callback_handler_remove();
    R.prompt_active = 0;
    R.line_done = 1;
    R.line = NULL;
  } else {
    R.in_rl = 1;
    rl_callback_read_char();
    R.in_rl = 0;
  }
  if (!R.line_done) return;
  R.line_done = 0;
  uv_poll_stop(h);
  if (!R.line && status < 0) { fputs("\n", stdout); fflush(stdout); }
  if (R.waiting) {
    lua_State *co = mh_wait_co(&R.w);
    R.waiting = 0;
    if (co) {
      if (R.line) lua_pushstring(co, R.line); else lua_pushnil(co);
      free(R.line);
      R.line = NULL;
      mh_wait_resume(&R.w, 1);
      return;
    }
  }
  free(R.line);
  R.line = NULL;
}

/* The waiting readline() was cancelled (its task interrupted). */
static void readline_cancel(mh_wait *w) {
  (void)w;
  R.waiting = 0;
  if (R.prompt_active) {
    rl_callback_handler_remove();
    R.prompt_active = 0;
    uv_poll_stop(&R.poll);
  }
  if (R.reading) uv_cancel((uv_req_t *)&R.req);
}

/* ------------------------------------------------------------ completion */

static void free_cands(void) {
  for (size_t i = 0; i < R.ncands; i++) free(R.cands[i]);
  free(R.cands);
  R.cands = NULL;
  R.ncands = 0;
}

/* readline's generator: hands out R.cands one by one (readline frees them). */
static char *cand_gen(const char *text, int state) {
  static size_t next;
  (void)text;
  if (!state) next = 0;
  return next < R.ncands ? strdup(R.cands[next++]) : NULL;
}

/* Tab: asks the Lua completer (completer(word) -> {candidate, ...}) under
** pcall; never falls back to file names, which mean nothing in Lua. */
static char **complete_cb(const char *text, int start, int end) {
  lua_State *L = R.L;
  int top = lua_gettop(L);
  (void)start; (void)end;
  rl_attempted_completion_over = 1;
  rl_completion_append_character = '\0';
  free_cands();
  if (R.completer_ref == LUA_NOREF) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, R.completer_ref);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    size_t n = (size_t)lua_rawlen(L, -1);
    R.cands = (char **)calloc(n ? n : 1, sizeof *R.cands);
    for (size_t i = 1; R.cands && i <= n; i++) {
      const char *c;
      lua_rawgeti(L, -1, (lua_Integer)i);
      c = lua_tostring(L, -1);
      if (c && (R.cands[R.ncands] = strdup(c))) R.ncands++;
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return R.ncands ? rl_completion_matches(text, cand_gen) : NULL;
}

/* completer(fn | nil): fn(word) -> list of completions of word, for Tab. */
static int l_completer(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, R.completer_ref);
  R.completer_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    lua_pushvalue(L, 1);
    R.completer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* ------------------------------------------------------------ log lines */

/* log.c calls these around every line it writes to stderr (mh_log_set_hooks),
** set while the REPL reads a terminal.  A log line of a background task that
** comes while a prompt is shown would otherwise land in the middle of the line
** being typed: the prompt and the partial line are wiped first, the log line
** is written on the cleared line, and readline draws them again below it (the
** text and the cursor position kept), as l_write does for print().  Nothing
** happens when no prompt is shown (a line runs: its output is ordinary) or
** from inside readline itself (a completer that logs). */
static void log_before(void *ud) {
  (void)ud;
  if (!R.prompt_active || R.in_rl || R.log_cleared) return;
  fflush(stdout);
  rl_clear_visible_line();           /* to column 0 of the prompt's first row, rows erased */
  fflush(rl_outstream ? rl_outstream : stdout);
  R.log_cleared = 1;
}

static void log_after(void *ud) {
  (void)ud;
  if (!R.log_cleared) return;
  R.log_cleared = 0;
  if (R.prompt_active) rl_forced_update_display();  /* prompt, text, cursor; flushes */
}

/* Leave the terminal as we found it, whatever ends the process. */
static void restore_terminal(void) {
  mh_log_set_hooks(NULL, NULL, NULL);
  if (R.prompt_active) rl_callback_handler_remove();
  R.prompt_active = 0;
}

/* -------------------------------------------------------------- pipe */

/* Pushes the next line (or nil at the end) when one is ready; 0 when not. */
static int pipe_take(lua_State *co) {
  char *nl = R.len ? memchr(R.buf, '\n', R.len) : NULL;
  size_t n, skip;
  if (nl) {
    n = (size_t)(nl - R.buf);
    skip = n + 1;
  } else if (R.eof) {
    if (R.len == 0) { lua_pushnil(co); return 1; }
    n = skip = R.len;                 /* a last line without its newline */
  } else {
    return 0;
  }
  lua_pushlstring(co, R.buf, n > 0 && R.buf[n - 1] == '\r' ? n - 1 : n);
  memmove(R.buf, R.buf + skip, R.len - skip);
  R.len -= skip;
  return 1;
}

static int start_read(void);

static void read_cb(uv_fs_t *req) {
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  R.reading = 0;
  if (n > 0) {
    if (R.len + (size_t)n > R.cap) {
      size_t cap = R.cap ? R.cap : CHUNK;
      char *nb;
      while (cap < R.len + (size_t)n) cap *= 2;
      nb = (char *)realloc(R.buf, cap);
      if (!nb) { R.eof = 1; n = 0; } else { R.buf = nb; R.cap = cap; }
    }
    if (n > 0) { memcpy(R.buf + R.len, R.chunk, (size_t)n); R.len += (size_t)n; }
  } else if (n != UV_ECANCELED) {
    R.eof = 1;                        /* end of input, or an error reading it */
  }
  if (!R.waiting) return;
  {
    lua_State *co = mh_wait_co(&R.w);
    if (!co) { R.waiting = 0; return; }
    if (pipe_take(co)) {
      R.waiting = 0;
      mh_wait_resume(&R.w, 1);
      return;
    }
    if (start_read() < 0) {           /* cannot read on: end of input */
      R.waiting = 0;
      pipe_take(co);
      mh_wait_resume(&R.w, 1);
    }
  }
}

/* Starts the next read of stdin; on failure marks the end of input and returns
** the (negative) error: the caller then takes what is left. */
static int start_read(void) {
  uv_buf_t b = uv_buf_init(R.chunk, sizeof R.chunk);
  int rc = uv_fs_read(R.loop, &R.req, 0, &b, 1, -1, read_cb);
  if (rc < 0) {
    R.eof = 1;
    return rc;
  }
  R.reading = 1;
  return 0;
}

/* ------------------------------------------------------------ Lua API */

static void open_repl(lua_State *L) {
  struct sigaction sa;
  if (R.opened && R.loop != mh_l_loop(L))
    luaL_error(L, "the REPL is open in another Lua state (the terminal is the process's)");
  if (R.opened) return;
  R.L = mh_l_cbstate(L);
  R.loop = mh_l_loop(L);
  R.tty = isatty(0) && rl_load();      /* no readline: the terminal is read as plain lines */
  uv_async_init(R.loop, &R.async, async_cb);
  uv_unref((uv_handle_t *)&R.async);
  if (R.tty) {
    static int once;
    int fl = fcntl(0, F_GETFL);
    if (uv_poll_init(R.loop, &R.poll, 0) < 0) {
      R.tty = 0;                      /* not pollable after all: read it as a pipe */
    } else {
      /* uv_poll_init made the terminal non-blocking, which the shell shares and
         io.read() in a line would trip on; poll only needs readiness */
      if (fl >= 0) fcntl(0, F_SETFL, fl);
      rl_readline_name = "mailhook";
      rl_catch_signals = 0;           /* our SIGINT handler; readline keeps SIGWINCH */
      rl_attempted_completion_function = complete_cb;
      /* a Lua word: names joined by . and : complete as one */
      rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{(,+-*/%^~#[]";
      using_history();
      stifle_history(HISTORY_MAX);
      if (!once) { atexit(restore_terminal); once = 1; }
      mh_log_set_hooks(log_before, log_after, NULL);
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_sigint;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      R.sig_installed = sigaction(SIGINT, &sa, &R.old_int) == 0;
    }
  }
  R.opened = 1;
}

static void close_cb(uv_handle_t *h) { (void)h; }

/* close(): back to the state before the REPL (handlers, SIGINT, terminal). */
static int l_close(lua_State *L) {
  if (!R.opened) return 0;
  lua_settop(L, 0);
  l_guard(L);
  restore_terminal();
  if (R.sig_installed) sigaction(SIGINT, &R.old_int, NULL);
  R.sig_installed = 0;
  if (R.tty) uv_close((uv_handle_t *)&R.poll, close_cb);
  uv_close((uv_handle_t *)&R.async, close_cb);
  free(R.history);
  R.history = NULL;
  free_cands();
  luaL_unref(L, LUA_REGISTRYINDEX, R.completer_ref);
  R.completer_ref = LUA_NOREF;
  free(R.buf);
  R.buf = NULL;
  R.len = R.cap = 0;
  R.eof = 0;
  R.opened = 0;
  return 0;
}

/* readline([prompt]) -> line | nil (end of input) | nil, "interrupted" (Ctrl-C
** at the prompt).  Waits.  On a terminal the prompt is shown and the line can be
** edited; from a pipe lines are returned in order, without prompts. */
static int l_readline(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  open_repl(L);
  if (R.waiting) return luaL_error(L, "repl.readline: another readline() is waiting");
  if (!R.tty && pipe_take(L)) return 1;
  if (R.tty && sig_pending && !sig_running) {  /* Ctrl-C while no prompt was shown */
    sig_pending = 0;
    fputs("^C\n", stdout);
    fflush(stdout);
    lua_pushnil(L);
    lua_pushliteral(L, "interrupted");
    return 2;
  }
  mh_wait_init(L, &R.w, "repl.readline");
  R.w.cancel = readline_cancel;
  R.waiting = 1;
  if (R.tty) {
    fflush(stdout);
    rl_callback_handler_install(prompt, line_cb);  /* copies the prompt */
    R.prompt_active = 1;
    uv_poll_start(&R.poll, UV_READABLE, poll_cb);
  } else if (!R.reading && start_read() < 0) {
    R.waiting = 0;                    /* stdin cannot be read: end of input */
    return pipe_take(L);
  }
  return mh_wait_yield(L, &R.w);
}

/* interactive() -> true when stdin is a terminal (readline, prompts, Ctrl-C). */
static int l_interactive(lua_State *L) {
  lua_pushboolean(L, isatty(0));
  return 1;
}

/* Whether the history file may be kept at path: its folder belongs to us (or
** root) and nobody else may write it (unless sticky, as /tmp), and the file,
** when it exists, is a regular file of ours with one name.  `sudo mailhook
** repl` keeping the caller's HOME would otherwise let that user point
** ~/.mailhook_history at /etc/shadow (a link) for root to append to and
** truncate, or make it a FIFO and hang the REPL.  NULL, or why not. */
static const char *history_unsafe(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  struct stat st;
  uid_t me = geteuid();
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  if (stat(dir, &st) < 0) return strerror(errno);
  if (st.st_uid != me && st.st_uid != 0) return "its folder belongs to another user";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) return "its folder is writable by others";
  if (lstat(path, &st) < 0) return errno == ENOENT ? NULL : strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_uid != me) return "it belongs to another user";
  if (st.st_nlink != 1) return "it has more than one name (a hard link)";
  return NULL;
}

/* history(path): load the history file (created 0600 if missing) and append
** every later add_history() line to it.  Returns true, or nil, message. */
static int l_history(lua_State *L) {
  const char *path = luaL_checkstring(L, 1), *why;
  int fd;
  open_repl(L);
  if (!rl_load())
    return mh_l_fail(L, -ENOSYS, NULL, "history file %s: GNU readline cannot be loaded", path);
  if ((why = history_unsafe(path)))
    return mh_l_fail(L, MH_EUNSAFE, NULL, "history file %s: %s", path, why);
  fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) return mh_l_fail(L, -errno, NULL, "history file %s: %s", path, strerror(errno));
  close(fd);
  read_history(path);
  history_truncate_file(path, HISTORY_MAX);
  free(R.history);
  R.history = strdup(path);
  lua_pushboolean(L, 1);
  return 1;
}

/* add_history(line): remember line (up-arrow), and in the history file. */
static int l_add_history(lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  HIST_ENTRY *last;
  if (!*line || !rl_load()) return 0;
  using_history();
  last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last && last->line && !strcmp(last->line, line)) return 0;  /* no repeats */
  add_history(line);
  if (R.history) append_history(1, R.history);
  return 0;
}

/* write(text): print text on stdout; while a prompt is shown, above it, the
** prompt and the line being typed redrawn after (output of background tasks). */
static int l_write(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (R.prompt_active) {
    rl_clear_visible_line();
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    rl_forced_update_display();
  } else {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
  }
  return 0;
}

void l_repl_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"readline", l_readline}, {"interactive", l_interactive}, {"history", l_history},
    {"add_history", l_add_history}, {"guard", l_guard}, {"write", l_write},
    {"completer", l_completer}, {"close", l_close}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "repl");
}
