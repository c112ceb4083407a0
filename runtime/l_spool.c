/*
** l_spool.c — core.spool: the spool (runtime/spool.c) for Lua.  Every call
** that touches the disk runs on libuv's thread pool (mh_l_work) and yields the
** calling task until the work is done, so the loop never stalls on an fsync.
**
**   core.spool.open(dir [, {existing =, create =}]) -> Spool | nil, err, info
**   core.spool.parse(bytes) -> {from, to = {...}, offset, canonical, uid} | nil, err, info
**     (uid: the X-Submitter-Uid line, absent in a file written before it)
**   Spool:enqueue(data, env | nil) -> id            (waits; data: string or Message;
**     env.uid: the submitter when not this process, else the caller (privdrop.h);
**     env.refused = {{rcpt =, reply =}...}: items left out of the envelope at
**     intake, recorded as refused before the message is in pickup/ (spool.h))
**   Spool:enqueue_many({{data, env}, ...}) -> {id...} (waits; group commit)
**   Spool:lock() Spool:scan() Spool:load(id [, {data =, keep =, now =, lean =, buffer =}]) Spool:sync()
**   Spool:delivered(id [, {sync = false, now =, journal =}]) Spool:purge() Spool:defer(id, t)
**   Spool:loader([opts]) -> load   Spool:pickup_path(id) -> DIR/pickup/ID.eml | nil
**   Spool:fail(id, t) Spool:retry(id) Spool:remove(id) Spool:list([which])
**   Spool:watch(fn) -> Watch (:stop())   Spool:close()   Spool.dir
**   core.spool.stream(fd [, {dot = true}]) -> Stream: a message read from fd
**     in chunks (sendmail's stdin); Stream:head() -> header block, empty (waits);
**     Stream:set_head(bytes); Spool:enqueue(stream, env) streams it in (waits)
*/
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "l_sched.h"
#include "error.h"
#include "spool.h"
#include "fsutil.h"
#include "intake.h"

#include "l_watch.h"
#include "l_msg.h"   /* a message object (mh.message) is enqueued as it is */
#include "l_spool.h"

#define SPOOL_MT "mailhook.Spool"
#define LIST_MT "mailhook.SpoolList"
#define STREAM_MT "mailhook.SpoolStream"
#define LIST_BATCH 64

/* Files kept open between load{keep = true} and delivered{now = true}: the
** removal then needs no path lookup.  A few, the oldest closed first. */
#define KEPT_MAX 16
typedef struct {
  char id[32];
  int fd;            /* -1: free */
  int has_state;     /* its ID.state existed at load */
} kept_file;

/* The keys of an entry (and of the deliverer's per-message options), as Lua
** strings made once per state: lua_setfield/lua_getfield with a C string look
** it up in Lua's string cache first (a hash of its address, a strcmp), some
** 100 instructions a field, a dozen fields a message.  A table in the
** registry, its strings at fixed indices; push_keys leaves it on the stack.
** A Spool holds their addresses too (lspool.key): a short string is
** interned, so an option's key is one of these exactly when its address is
** (the per-message options, read with no lookup: fast_opts). */
enum {
  K_ID = 1, K_PATH, K_STATE, K_OFFSET, K_SIZE, K_QUEUED_AT, K_FROM, K_UID, K_ALL, K_UTF8, K_TO,
  K_DONE, K_REFUSED, K_RCPT, K_REPLY, K_ATTEMPTS, K_NEXT_ATTEMPT, K_LAST_REPLY, K_REASON,
  K_FAILED_AT, K_DATA, K_NOW, K_KEEP, K_LEAN, K_BUFFER, K_SYNC, K_JOURNAL, K_ANGLE, K_RETRIED_AT, K_N,
  K_DATA_MT = K_N   /* (not a key: the SpoolData metatable, set by data_open) */
};
static const char *const key_names[K_N] = {
  NULL, "id", "path", "state", "offset", "size", "queued_at", "from", "uid", "all", "utf8", "to",
  "done", "refused", "rcpt", "reply", "attempts", "next_attempt", "last_reply", "reason",
  "failed_at", "data", "now", "keep", "lean", "buffer", "sync", "journal", "angle", "retried_at"
};
static const char KEYS = 0;   /* registry key (its address) */

static int push_keys(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &KEYS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, K_N - 1, 0);
    for (int k = 1; k < K_N; k++) {
      lua_pushstring(L, key_names[k]);
      lua_rawseti(L, -2, k);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &KEYS);
  }
  return lua_gettop(L);
}

typedef struct closes closes;

/* The Spool userdata.  Work in flight keeps it alive (an anchor ref) and
** holds `pending`, so a close while work runs waits for the work to end. */
typedef struct {
  mh_spool *sp;      /* NULL once closed */
  closes *cl;        /* the state's batched closes of removed files (see close_held) */
  int pending;       /* thread-pool jobs using sp */
  int closing;       /* close asked while jobs ran: the last job closes sp */
  kept_file kept[KEPT_MAX];
  unsigned kept_next;  /* the slot to take next (round robin: the oldest) */
  const char *key[K_N];   /* the keys' strings (push_keys), alive in the registry */
  void *spare;       /* the op (op *) that op_now reuses, made at its first use, or NULL */
  int spare_busy;    /* spare is in a call of op_now (a push may run a finalizer that calls again) */
} lspool;

static void kept_close_all(lspool *ls) {
  for (int i = 0; i < KEPT_MAX; i++)
    if (ls->kept[i].fd >= 0) { close(ls->kept[i].fd); ls->kept[i].fd = -1; }
}

/* Remembers fd for id (loop thread); the file it replaces is closed. */
static void kept_add(lspool *ls, const char *id, int fd, int has_state) {
  /* one slot per id: a load again (a file replaced since, reloaded) leaves no
     older descriptor that kept_take or Spool:unchanged would find first (it
     said "replaced" of the new file at each look, 15 more loads; review4) */
  for (int i = 0; i < KEPT_MAX; i++) {
    kept_file *o = &ls->kept[i];
    if (o->fd >= 0 && !strcmp(o->id, id)) { close(o->fd); o->fd = -1; }
  }
  kept_file *k = &ls->kept[ls->kept_next++ % KEPT_MAX];
  if (k->fd >= 0) close(k->fd);   /* still named: a cheap close */
  k->fd = -1;
  size_t n = strlen(id);
  if (n >= sizeof k->id) { close(fd); return; }   /* not a canonical id: not kept */
  memcpy(k->id, id, n + 1);
  k->fd = fd;
  k->has_state = has_state;
}

/* The kept fd of id, forgotten by the table (the caller owns it), or -1. */
static int kept_take(lspool *ls, const char *id, int *has_state) {
  for (int i = 0; i < KEPT_MAX; i++) {
    kept_file *k = &ls->kept[i];
    if (k->fd >= 0 && !strcmp(k->id, id)) {
      int fd = k->fd;
      k->fd = -1;
      *has_state = k->has_state;
      return fd;
    }
  }
  return -1;
}

static lspool *check_spool(lua_State *L, int idx) {
  lspool *ls = (lspool *)mh_l_checkself(L, idx, SPOOL_MT);
  /* a method through pcall: luaL_argerror said "bad argument #1 to '?'" */
  if (!ls->sp || ls->closing) luaL_error(L, "the spool is closed (Spool:close() was called)");
  return ls;
}

/* ls (checked at index 1) once the options were read: an options table's
** metamethods run Lua, which may have closed it meanwhile. */
static lspool *still_open(lua_State *L, lspool *ls) {
  if (!ls->sp || ls->closing) luaL_error(L, "the spool is closed (Spool:close() was called)");
  return ls;
}

static void release(lspool *ls) {
  if (--ls->pending == 0 && ls->closing && ls->sp) {
    mh_spool_close(ls->sp);
    ls->sp = NULL;
  }
}

static void flush_closes(closes *cl);
static closes *state_closes(lua_State *L);

/* The thread callbacks work on (registry refs, spawns): never a caller's. */
static lua_State *main_state(lua_State *L) { return mh_l_cbstate(L); }

/* ------------------------------------------------------------ open */

/* open(dir [, {existing = true, create = false}]): existing, the folder and
** its pickup/ must be there (MH_SPOOL_MUST_EXIST); create = false, no folder
** is made (MH_SPOOL_NO_CREATE): nil, "no spool at DIR", {code = "ENOENT"}. */
static int l_open(lua_State *L) {
  const char *dir = mh_l_arg_path(L, 1, "dir");
  char err[MH_SPOOL_ERRLEN];
  mh_spool *sp;
  unsigned flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    mh_l_arg_type(L, 2, "opts", LUA_TTABLE);
    if (lua_getfield(L, 2, "existing") != LUA_TNIL && lua_toboolean(L, -1)) flags |= MH_SPOOL_MUST_EXIST;
    if (lua_getfield(L, 2, "create") != LUA_TNIL && !lua_toboolean(L, -1)) flags |= MH_SPOOL_NO_CREATE;
    lua_pop(L, 2);
  }
  int rc = mh_spool_open_ex(dir, flags, &sp, err);
  lspool *ls;
  if (rc) return mh_l_fail(L, rc, "spool", "%s", err);
  ls = (lspool *)lua_newuserdatauv(L, sizeof *ls, 2);   /* 1: keys; 2: op_now's box */
  memset(ls, 0, sizeof *ls);
  for (int i = 0; i < KEPT_MAX; i++) ls->kept[i].fd = -1;
  ls->sp = sp;
  ls->cl = state_closes(L);
  luaL_setmetatable(L, SPOOL_MT);
  push_keys(L);
  for (int k = 1; k < K_N; k++) {
    lua_rawgeti(L, -1, k);
    ls->key[k] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_setiuservalue(L, -2, 1);   /* the keys at hand for a load on the calling thread (l_load) */
  return 1;
}

static int l_close(lua_State *L) {
  lspool *ls = (lspool *)luaL_checkudata(L, 1, SPOOL_MT);
  if (ls->spare && !ls->spare_busy) { free(ls->spare); ls->spare = NULL; }   /* no op_now after a close */
  if (!ls->sp || ls->closing) return 0;
  kept_close_all(ls);
  flush_closes(ls->cl);
  if (ls->pending) { ls->closing = 1; return 0; }
  mh_spool_close(ls->sp);
  ls->sp = NULL;
  return 0;
}

/* Spool:set_dropin_from(addr | nil [, domain]) -> true | nil, err, info: the
** sender and From a drop-in that names none gets at adoption: addr (the
** settings' `from`), else its owner's login at domain (default_domain; nil:
** the host name).  spool.h. */
static int l_set_dropin_from(lua_State *L) {
  lspool *ls = (lspool *)luaL_checkudata(L, 1, SPOOL_MT);
  const char *a = luaL_optstring(L, 2, NULL), *dom = luaL_optstring(L, 3, NULL);
  int rc;
  if (!ls->sp) return luaL_error(L, "spool is closed");
  if ((rc = mh_spool_set_dropin_from(ls->sp, a, dom)))
    return mh_l_fail(L, rc, "spool", "drop-in sender '%s' (default_domain '%s')", a ? a : "", dom ? dom : "");
  lua_pushboolean(L, 1);
  return 1;
}

/* One entry of a names table (at the stack top): a list of addresses (joined
** with LF) or a string saying why the name has none. */
static int names_entry(lua_State *L, mh_spool_names *n, const char *name) {
  if (lua_type(L, -1) == LUA_TSTRING) return mh_spool_names_add(n, name, lua_tostring(L, -1), 1);
  if (lua_type(L, -1) != LUA_TTABLE) return MH_EBADADDR;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer len = luaL_len(L, -2);   /* the buffer took a slot: the list is at -2 */
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, -2, i);
    size_t l;
    const char *a = lua_tolstring(L, -1, &l);
    if (!a || memchr(a, '\n', l)) { lua_pop(L, 1); return MH_EBADADDR; }
    if (i > 1) luaL_addchar(&b, '\n');
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  int rc = mh_spool_names_add(n, name, lua_tostring(L, -1), 0);
  lua_pop(L, 1);
  return rc;
}

/* A box's release for drop-in names being filled (mh_l_box). */
static void names_release(void *p) { mh_spool_names_free(*(mh_spool_names **)p); }

/* Spool:set_dropin_names({domain =, locals = {...}, names = {[name] = {addr...} | why},
** other = {addr...} | why | nil} | nil) -> true | nil, err, info: where a
** drop-in's bare local recipients go (submit.lua's dropin_names works it out
** from the settings, as `sendmail -t` resolves them).  spool.h. */
static int l_set_dropin_names(lua_State *L) {
  lspool *ls = (lspool *)luaL_checkudata(L, 1, SPOOL_MT);
  if (!ls->sp) return luaL_error(L, "spool is closed");
  if (lua_isnoneornil(L, 2)) { mh_spool_set_dropin_names(ls->sp, NULL); lua_pushboolean(L, 1); return 1; }
  if (!lua_istable(L, 2)) return mh_l_field_error(L, 2, "spool:set_dropin_names", "names", "a table");
  lua_getfield(L, 2, "domain");
  const char *domain = mh_l_optfield_string(L, -1, "spool:set_dropin_names", "domain", NULL);
  /* boxed while the table is read (lua_getfield, luaL_len, a key made text
  ** may raise); domain stays alive on the stack below */
  mh_spool_names **n = (mh_spool_names **)mh_l_box(L, sizeof *n, names_release);
  if (!(*n = mh_spool_names_new(domain))) return mh_l_fail(L, MH_ENOMEM, "spool", "drop-in names");
  int rc = 0;
  lua_getfield(L, 2, "locals");
  if (lua_istable(L, -1))
    for (lua_Integer i = 1; !rc && i <= luaL_len(L, -1); i++) {
      lua_geti(L, -1, i);
      if (lua_type(L, -1) == LUA_TSTRING) rc = mh_spool_names_local(*n, lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  lua_pop(L, 1);
  lua_getfield(L, 2, "names");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (!rc && lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING) rc = names_entry(L, *n, lua_tostring(L, -2));
      lua_pop(L, 1);
    }
    if (rc) lua_pop(L, 1);   /* the key lua_next left */
  }
  lua_pop(L, 1);
  lua_getfield(L, 2, "other");
  if (!rc && !lua_isnil(L, -1)) rc = names_entry(L, *n, NULL);
  lua_pop(L, 1);
  if (rc)   /* the box frees *n */
    return mh_l_fail(L, rc, "spool", "drop-in names: an entry is not a list of addresses");
  mh_spool_set_dropin_names(ls->sp, *n);   /* the spool's now */
  *n = NULL;
  lua_pushboolean(L, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lspool *ls = (lspool *)luaL_checkudata(L, 1, SPOOL_MT);
  if (ls->sp) lua_pushfstring(L, "mailhook.Spool(%s)", mh_spool_dir(ls->sp));
  else lua_pushliteral(L, "mailhook.Spool(closed)");
  return 1;
}

/* --------------------------------------------------------- generic ops */

enum { OP_ENQ, OP_LOCK, OP_SCAN, OP_LOAD, OP_DELIVERED, OP_DEFER, OP_FAIL, OP_RETRY,
       OP_REMOVE, OP_LIST, OP_SYNC, OP_PURGE, OP_NEWID, OP_HASCOPY };

typedef struct {
  const char *data;  /* bytes (anchored), or NULL for a message */
  size_t len;
  int strip_bcc;     /* bytes given without an envelope: Bcc lines left out */
  mh_msg *msg;       /* a message object (anchored with the op): written by msg.c */
  void *msg_hold;    /* l_msg_hold's: released with the op */
  mh_intake *intake; /* a Stream: read from its descriptor as it is written */
} source;

typedef struct mh_spool_iter_box lbox;

/* The Stream userdata: a message read from a descriptor (runtime/intake.c). */
typedef struct {
  mh_intake *in;     /* NULL once closed or handed to an enqueue (which frees it) */
  int busy;          /* head() runs on the pool: close waits for it */
  int closing;       /* close asked while busy: the job frees in */
} lstream;

typedef struct {
  int kind;
  lspool *ls;
  lua_State *main;   /* to drop the anchor in done() */
  int anchor;        /* registry ref: table anchoring the spool and the data */
  int anchor_at;     /* until op_start: the anchor table's stack index (op_new) */
  void *owner;       /* until op_start: the box that frees the op at a raise (op **, op_new) */
  int rc;
  char err[MH_SPOOL_ERRLEN];
  char id[256];
  /* enqueue */
  size_t n;
  mh_spool_item *items;
  source *src;
  char **strs;       /* every string we strdup'ed (envelopes) */
  size_t nstrs;
  /* lock */
  long holder;
  /* defer: attempts to record, -1 = stored + 1 */
  int attempts;
  /* scan */
  char **ids;
  long nids;
  long limit;        /* scan: keep only the oldest limit ids (0 = all), for bounded memory */
  long total;        /* scan: how many ready ids there were before the limit */
  int nosync;        /* delivered: leave the fsync of pickup/ to a later sync() */
  int held;          /* delivered: the removed file, still open (see close_held), or -1 */
  int may_hold;      /* delivered: fewer than MAX_HELD closes are pending (decided on the loop) */
  int journal;       /* delivered: record it in the journal (mh_spool_mark); the file goes with a
                        later purge, and is unlinked at once only when the record fails */
  int memory;        /* delivered: record and unlink both failed; kept as recorded in memory
                        (mh_spool_mark_memory), said as info.kept_in_memory */
  long purged;       /* purge: how many files it removed */
  /* load */
  int have_entry;    /* entry (below) holds a loaded message */
  size_t data_max;   /* load: the message itself too when at most this long (0: no) */
  int keep;          /* load: keep the file open (kept_add), in kept_fd */
  int lean;          /* load: the entry without what a deliverer never reads (push_entry) */
  int bare;          /* load by a lean loader: no id, no attempts/next_attempt at 0 (l_loader) */
  int buffer;        /* load: data as a SpoolData handle, not a string (push_data) */
  int keys;          /* load on the calling thread: the stack index of the keys (push_keys), or 0 */
  int kept_fd;
  int known;         /* delivered: held came from the kept table; has_state says ... */
  int has_state;     /* ... whether there is an ID.state to remove */
  /* defer / fail */
  int64_t next_attempt;
  char *reply, *reason;
  mh_refused *refused;   /* recipients refused for good by this attempt (owned) */
  size_t nrefused;
  /* list */
  void *list;
  /* load: last, left uninitialised by op_new (4 KB of paths and names, filled by
     the load itself): zeroing it with the rest was a quarter of a message's
     load in the deliverer (calloc) */
  mh_spool_entry entry;
} op;

static int source_write(void *arg, int fd) {
  source *s = (source *)arg;
  if (s->msg) return mh_msg_write(s->msg, fd);
  if (s->intake) return mh_intake_write(s->intake, fd);
  if (s->strip_bcc) return mh__spool_write_no_bcc(fd, s->data, s->len);
  return mh_fsutil_write_all(fd, s->data, s->len);
}

static char *keep(op *o, const char *s) {
  char *p = strdup(s ? s : "");
  if (p) o->strs[o->nstrs++] = p;
  return p;
}

/* The closes of removed spool files, on the thread pool and waited for by
** nobody: the message is already out of the queue (its names are gone), and
** the last close is where the kernel frees its blocks, which is slow with
** discard (100-280 us a file on ext4 here).  Done apart, spool:delivered
** returns as soon as the names are gone and the deliverer's next message does
** not wait for it (see delivery.lua).  They go in batches of CLOSE_BATCH, one
** pool job each: a job per file cost two context switches per message.
** Spool:sync() and Spool:close() send a partial batch off. */
#define CLOSE_BATCH 64
typedef struct {
  uv_work_t req;
  closes *cl;        /* whose count of held files it is in */
  int n;
  int fds[CLOSE_BATCH];
} held_close;

/* Files held open (batched or in a job), per Lua state, on its loop thread.
** Bounded, so a disk slower than the sends cannot pile up open files towards
** the fd limit: past MAX_HELD a removal closes its file itself (slower, never
** wrong).  A userdata in the registry: its __gc (lua_close, before the loop
** is closed) sends the last batch, and removals after it close at once. */
#define MAX_HELD 256
struct closes {
  uv_loop_t *loop;          /* where the jobs run */
  int nheld;                /* files batched or in a job */
  held_close *batch;        /* the batch being filled, or NULL */
  int closed;               /* the state is closing: no more batching */
};
static const char CLOSES = 0;   /* registry key (its address) */

static void held_close_work(uv_work_t *req) {
  held_close *h = (held_close *)req->data;
  for (int i = 0; i < h->n; i++) { close(h->fds[i]); h->fds[i] = -1; }
}

static void held_close_after(uv_work_t *req, int status) {
  held_close *h = (held_close *)req->data;
  for (int i = 0; i < h->n; i++) if (h->fds[i] >= 0) close(h->fds[i]);   /* cancelled */
  h->cl->nheld -= h->n;
  free(h);
  (void)status;
}

/* Sends the batch being filled to the pool. */
static void flush_closes(closes *cl) {
  held_close *h = cl->batch;
  if (!h) return;
  cl->batch = NULL;
  h->req.data = h;
  h->cl = cl;
  if (uv_queue_work(cl->loop, &h->req, held_close_work, held_close_after)) {
    held_close_after(&h->req, 0);
  }
}

static void close_held(closes *cl, int fd) {
  if (fd < 0) return;
  if (cl->closed || cl->nheld >= MAX_HELD ||
      (!cl->batch && !(cl->batch = (held_close *)calloc(1, sizeof *cl->batch)))) {
    close(fd);
    return;
  }
  cl->batch->fds[cl->batch->n++] = fd;
  cl->nheld++;
  if (cl->batch->n == CLOSE_BATCH) flush_closes(cl);
}

static int closes_gc(lua_State *L) {
  closes *cl = (closes *)lua_touserdata(L, 1);
  flush_closes(cl);
  cl->closed = 1;
  return 0;
}

/* The state's closes (made on first use). */
static closes *state_closes(lua_State *L) {
  closes *cl;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CLOSES) == LUA_TUSERDATA) {
    cl = (closes *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cl;
  }
  lua_pop(L, 1);
  cl = (closes *)lua_newuserdatauv(L, sizeof *cl, 0);
  memset(cl, 0, sizeof *cl);
  cl->loop = mh_l_loop(L);
  lua_newtable(L);
  lua_pushcfunction(L, closes_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CLOSES);
  return cl;
}

/* What o holds, released (o itself is the caller's: op_free, or a stack op). */
static void op_clear(op *o) {
  size_t i;
  close_held(o->ls->cl, o->held);
  if (o->kept_fd >= 0) close(o->kept_fd);
  for (i = 0; i < o->nstrs; i++) free(o->strs[i]);
  free(o->strs);
  if (o->items) for (i = 0; i < o->n; i++) {
    mh_refused *r = (mh_refused *)o->items[i].refused;
    free((void *)o->items[i].to);
    free((void *)o->items[i].to_params);
    for (size_t k = 0; k < o->items[i].nrefused; k++) { free(r[k].rcpt); free(r[k].reply); }
    free(r);
  }
  free(o->items);
  if (o->src) for (i = 0; i < o->n; i++) {
    mh_intake_free(o->src[i].intake);
    l_msg_release(o->src[i].msg_hold);
  }
  free(o->src);
  for (long k = 0; k < o->nids; k++) free(o->ids[k]);
  free(o->ids);
  if (o->have_entry) mh_spool_entry_free(&o->entry);
  free(o->reply);
  free(o->reason);
  for (i = 0; i < o->nrefused; i++) { free(o->refused[i].rcpt); free(o->refused[i].reply); }
  free(o->refused);
  release(o->ls);
  luaL_unref(o->main, LUA_REGISTRYINDEX, o->anchor);
}

static void op_free(void *arg) {
  op *o = (op *)arg;
  int big_scan = o->kind == OP_SCAN && o->total > 4096;
  op_clear(o);
  free(o);
  /* A big scan ran on a pool thread, whose malloc arena keeps the freed memory:
  ** give it back, or each of the pool's threads would hold a backlog's worth. */
  if (big_scan) malloc_trim(0);
}

static void op_work(void *arg) {
  op *o = (op *)arg;
  mh_spool *sp = o->ls->sp;
  o->err[0] = '\0';
  switch (o->kind) {
  case OP_ENQ:
    /* with an id given (a maildrop adoption's): that id or nothing */
    o->rc = o->id[0] ? mh_spool_enqueue_as(sp, o->items, o->id, o->err) : mh_spool_enqueue(sp, o->items, o->n, o->err);
    for (size_t i = 0; o->rc && i < o->n; i++)   /* the input failed, not the spool */
      if (o->src[i].intake && mh_intake_error(o->src[i].intake) == MH_ELIMIT) {
        char lim[32];
        snprintf(o->err, sizeof o->err, "the message: over the %s limit (nothing queued)",
                 mh_fsutil_size(lim, sizeof lim, (int64_t)mh_intake_max(o->src[i].intake)));
      } else if (o->src[i].intake && mh_intake_error(o->src[i].intake)) {
        snprintf(o->err, sizeof o->err, "reading the message: %s",
                 mh_strerror(mh_intake_error(o->src[i].intake)));
      }
    break;
  case OP_LOCK:
    o->rc = mh_spool_lock(sp, &o->holder);
    if (o->rc == MH_ELOCKED)
      snprintf(o->err, sizeof o->err, "spool %s is locked by pid %ld", mh_spool_dir(sp), o->holder);
    else if (o->rc == MH_ENOTREG)   /* a link or a FIFO planted as DIR/lock: never used */
      snprintf(o->err, sizeof o->err, "spool %s: lock is not a regular file (remove it: mailhook "
               "creates it)", mh_spool_dir(sp));
    else if (o->rc)
      snprintf(o->err, sizeof o->err, "spool %s: lock: %s", mh_spool_dir(sp), mh_strerror(o->rc));
    break;
  case OP_SCAN:
    o->nids = mh_spool_scan(sp, (size_t)o->limit, &o->ids, &o->total, o->err);
    o->rc = o->nids < 0 ? (int)o->nids : 0;
    if (o->nids < 0) o->nids = o->total = 0;
    break;
  case OP_LOAD:
    o->rc = mh_spool_load_ex(sp, o->id, &o->entry, o->data_max, o->keep ? &o->kept_fd : NULL, o->err);
    o->have_entry = o->rc == 0;
    break;
  case OP_DELIVERED:
    if (o->journal) {
      o->rc = mh_spool_mark(sp, o->id, o->held, o->err);
      if (o->rc == 0 || o->rc == MH_ENOTFOUND) {   /* recorded; or removed meanwhile (queue rm) */
        if (o->held >= 0) { close(o->held); o->held = -1; }   /* a cheap close: no blocks freed */
        break;
      }
    }
    o->rc = o->known ? mh_spool_unlink_names(sp, o->id, o->has_state, o->err)
            : !o->nosync ? mh_spool_delivered(sp, o->id, o->err)
            : o->may_hold ? mh_spool_delivered_held(sp, o->id, &o->held, o->err)
            : mh_spool_delivered_nosync(sp, o->id, o->err);
    if (o->journal && o->rc < 0 && o->rc != MH_ENOTFOUND) {
      /* neither recorded nor removed (a failing disk): the file stays in
         pickup/, and the next scan sent it again at once.  Kept as recorded
         in memory: not sent again by this process, its unlink tried again by
         the purge.  The unlink's error is still returned, to be said. */
      char e2[MH_SPOOL_ERRLEN];
      o->memory = mh_spool_mark_memory(sp, o->id, e2) == 0;
    }
    break;
  case OP_SYNC: o->rc = mh_spool_sync(sp, o->err); break;
  case OP_PURGE:
    o->purged = mh_spool_purge(sp, o->err);
    o->rc = o->purged < 0 ? (int)o->purged : 0;
    break;
  case OP_DEFER:
    o->rc = mh_spool_defer(sp, o->id, o->attempts, o->next_attempt, o->reply,
                           (const char *const *)o->strs, o->nstrs, o->refused, o->nrefused, o->err);
    break;
  case OP_FAIL:
    o->rc = mh_spool_fail(sp, o->id, o->reason, o->reply, o->attempts, o->refused, o->nrefused, o->err);
    break;
  case OP_RETRY: o->rc = mh_spool_retry(sp, o->id, o->err); break;
  case OP_REMOVE: o->rc = mh_spool_remove(sp, o->id, o->err); break;
  case OP_NEWID: o->rc = mh_spool_new_id(sp, o->id, o->err); break;
  case OP_HASCOPY: o->total = mh_spool_has_copy(sp, o->id); break;
  }
}

static void push_strings(lua_State *L, char **v, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushlstring(L, v[i], strlen(v[i]));   /* (lua_pushstring: a string-cache probe first, and its strcmp) */
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* The DSN parameters of env into the table on top: from_params (a string),
** to_params = {[rcpt] = params} (only when some recipient has any). */
static void push_params(lua_State *L, const mh_env *env) {
  if (env->from_params) { lua_pushstring(L, env->from_params); lua_setfield(L, -2, "from_params"); }
  if (!env->to_params) return;
  lua_newtable(L);
  for (size_t i = 0; i < env->nto; i++)
    if (env->to_params[i]) { lua_pushstring(L, env->to_params[i]); lua_setfield(L, -2, env->to[i]); }
  lua_setfield(L, -2, "to_params");
}

/* Is rcpt among the recipients refused for good? */
static int is_refused(const mh_state *st, const char *rcpt) {
  for (size_t j = 0; j < st->nrefused; j++)
    if (!strcmp(st->refused[j].rcpt, rcpt)) return 1;
  return 0;
}

/* The message data as a handle (load{buffer = true}): the buffer the load
** read the file into, owned by a userdata (freed by its __gc) instead of
** copied into a Lua string; for the deliverer, whose entry only carries its
** data to c:submit (which copies it into the session's buffer).  A 1 KB
** message's string was an allocation, a copy and 1 KB more for the collector
** to pace itself on, per message.  The submission takes the bytes
** (l_spool_data_take): the buffer is freed there, not by the collector, which
** knows nothing of it (it counts the userdata's few bytes, not the 8 KiB read
** buffer it points to) and let a 20,000-message drain grow by 16 MB. */
typedef struct {
  char *p;
  size_t len;
  int taken;   /* the bytes went with a submission: p freed, len kept for #h */
} spool_data;
static const char DATA_MT = 0;   /* registry key (its address) of the metatable */

static int data_gc(lua_State *L) {
  spool_data *d = (spool_data *)lua_touserdata(L, 1);
  free(d->p);
  d->p = NULL;
  d->len = 0;
  return 0;
}

static spool_data *check_data(lua_State *L, int idx) {
  spool_data *d = (spool_data *)luaL_checkudata(L, idx, MH_SPOOL_DATA_MT);
  return d;
}

static int data_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_data(L, 1)->len);
  return 1;
}

/* h:bytes([n]) -> the data (its first n bytes) as a string; nil once a
** submission took them (maillog then reads the file) */
static int data_bytes(lua_State *L) {
  spool_data *d = check_data(L, 1);
  lua_Integer n = mh_l_optfield_integer(L, 2, "SpoolData:bytes", "n", (lua_Integer)d->len);
  if (d->taken) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, d->p ? d->p : "", n < 0 ? 0 : (size_t)n < d->len ? (size_t)n : d->len);
  return 1;
}

static int data_tostring(lua_State *L) {
  spool_data *d = check_data(L, 1);
  lua_pushfstring(L, MH_SPOOL_DATA_MT " (%d bytes%s)", (int)d->len, d->taken ? ", submitted" : "");
  return 1;
}

static void data_open(lua_State *L) {
  static const luaL_Reg meta[] = {
    { "__gc", data_gc }, { "__len", data_len }, { "__tostring", data_tostring }, { NULL, NULL }
  };
  luaL_newmetatable(L, MH_SPOOL_DATA_MT);   /* (its name: luaL_checkudata's messages) */
  luaL_setfuncs(L, meta, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, data_bytes);
  lua_setfield(L, -2, "bytes");
  lua_setfield(L, -2, "__index");
  push_keys(L);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, K_DATA_MT);   /* at hand for push_data */
  lua_pop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DATA_MT);
}

/* e->data as a handle on top of the stack; e no longer owns it */
static void push_data(lua_State *L, mh_spool_entry *e, int keys) {
  spool_data *d = (spool_data *)lua_newuserdatauv(L, sizeof *d, 0);
  d->p = NULL;
  d->len = 0;
  d->taken = 0;
  if (lua_rawgeti(L, keys, K_DATA_MT) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &DATA_MT);
  }
  lua_setmetatable(L, -2);
  d->p = e->data;
  d->len = e->datalen;
  e->data = NULL;
}

static spool_data *as_data(lua_State *L, int idx) {
  int same;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &DATA_MT);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? (spool_data *)lua_touserdata(L, idx) : NULL;
}

int l_spool_data(lua_State *L, int idx, const char **p, size_t *len, void **h) {
  spool_data *d = as_data(L, idx);
  *h = d;
  if (!d) return 0;
  if (d->taken) return -1;
  *p = d->p ? d->p : "";
  *len = d->len;
  return 1;
}

void l_spool_data_take(void *h) {
  spool_data *d = (spool_data *)h;
  if (!d) return;
  free(d->p);
  d->p = NULL;
  d->taken = 1;
}

/* t[key k] = the value on top, t just below it; keys at index `keys` */
static void set_key(lua_State *L, int keys, int k) {
  lua_rawgeti(L, keys, k);
  lua_insert(L, -2);
  lua_rawset(L, -3);
}

static void set_str(lua_State *L, int keys, int k, const char *v) {
  lua_rawgeti(L, keys, k);
  lua_pushlstring(L, v, strlen(v));
  lua_rawset(L, -3);
}

static void set_int(lua_State *L, int keys, int k, lua_Integer v) {
  lua_rawgeti(L, keys, k);
  lua_pushinteger(L, v);
  lua_rawset(L, -3);
}

/* Whether path is DIR/pickup/ID.eml: as entry_names makes it, DIR the spool's
** (not a path cut short: that loses its end). */
static int at_pickup(const char *path, const char *id) {
  size_t pl = strlen(path), il = strlen(id);
  if (pl < il + 12) return 0;
  path += pl - il - 12;
  return !memcmp(path, "/pickup/", 8) && !memcmp(path + 8, id, il) && !strcmp(path + 8 + il, ".eml");
}

/* The entry table of INTERFACES.md: to = pending recipients (neither accepted
** nor refused for good), all = envelope, refused = {{rcpt =, reply =}...}.
** lean (the deliverer's load{lean = true}, per message): no `all`, `done` and
** `refused` only when not empty (three tables fewer for the usual message),
** `state` only when "failed"; and utf8, whether a recipient's address is not
** ASCII, and angle (only when true), whether one holds '<' or '>' (in a quoted
** local part: the deliverer refuses that recipient alone, delivery.lua).
** bare (a lean loader's, l_loader): no `id` when it is `asked`, the id the
** load was asked for; no `attempts`, `next_attempt` when 0; and no `path`
** when the data is there and the file is pickup/ASKED.eml, the path
** Spool:pickup_path(asked) gives (at_pickup): the message is sent from its
** data, and the deliverer asks for the path only where the file is read (a
** failure's Subject, the mail log's Message-ID, a host's session). */
static void push_entry(lua_State *L, mh_spool_entry *e, int lean, int bare, const char *asked, int buffer,
                       int keys) {
  int plain = e->state.ndone == 0 && e->state.nrefused == 0;   /* to = the whole envelope */
  int own = !keys;   /* keys: their stack index, or 0 (pushed here, removed at the end) */
  if (own) keys = push_keys(L);
  lua_createtable(L, 0, 16);
  if (!bare || strcmp(e->id, asked)) {   /* bare: the caller has the id it asked for */
    lua_rawgeti(L, keys, K_ID); lua_pushlstring(L, e->id, strlen(e->id)); lua_rawset(L, -3);
  }
  if (!bare || !e->data || e->failed || !at_pickup(e->path, asked)) {
    lua_rawgeti(L, keys, K_PATH); lua_pushlstring(L, e->path, strlen(e->path)); lua_rawset(L, -3);
  }
  if (!lean || e->failed) set_str(L, keys, K_STATE, e->failed ? "failed" : "pickup");
  set_int(L, keys, K_OFFSET, (lua_Integer)e->env.offset);
  set_int(L, keys, K_SIZE, e->size);
  set_int(L, keys, K_QUEUED_AT, e->queued_at);
  if (e->env.from) set_str(L, keys, K_FROM, e->env.from);
  if (e->env.has_uid) set_int(L, keys, K_UID, (lua_Integer)e->env.uid);
  push_params(L, &e->env);
  if (!lean) {
    push_strings(L, e->env.to, e->env.nto);
    set_key(L, keys, K_ALL);
  } else {   /* utf8: whether a recipient's address is not ASCII (the deliverer's SMTPUTF8 check) */
    int eight = 0, angle = 0;
    for (size_t i = 0; i < e->env.nto; i++)
      for (const unsigned char *c = (const unsigned char *)e->env.to[i]; *c; c++) {
        if (*c >= 0x80) eight = 1;
        else if (*c == '<' || *c == '>') angle = 1;
      }
    lua_rawgeti(L, keys, K_UTF8);
    lua_pushboolean(L, eight);
    lua_rawset(L, -3);
    if (angle) { lua_rawgeti(L, keys, K_ANGLE); lua_pushboolean(L, 1); lua_rawset(L, -3); }
  }
  if (plain) {   /* every recipient pending: no lookups */
    push_strings(L, e->env.to, e->env.nto);
    set_key(L, keys, K_TO);
  } else {
    lua_newtable(L);
    for (size_t i = 0, k = 0; i < e->env.nto; i++) {
      size_t j;
      for (j = 0; j < e->state.ndone && strcmp(e->state.done[j], e->env.to[i]); j++) {}
      if (j < e->state.ndone || is_refused(&e->state, e->env.to[i])) continue;
      lua_pushstring(L, e->env.to[i]);
      lua_rawseti(L, -2, (lua_Integer)++k);
    }
    set_key(L, keys, K_TO);
  }
  if (!lean || e->state.ndone) { push_strings(L, e->state.done, e->state.ndone); set_key(L, keys, K_DONE); }
  if (!lean || e->state.nrefused) {
    lua_createtable(L, (int)e->state.nrefused, 0);
    for (size_t i = 0; i < e->state.nrefused; i++) {
      lua_createtable(L, 0, 2);
      set_str(L, keys, K_RCPT, e->state.refused[i].rcpt);
      set_str(L, keys, K_REPLY, e->state.refused[i].reply);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    set_key(L, keys, K_REFUSED);
  }
  if (!bare || e->state.attempts) set_int(L, keys, K_ATTEMPTS, e->state.attempts);
  if (!bare || e->state.next_attempt) set_int(L, keys, K_NEXT_ATTEMPT, e->state.next_attempt);
  if (e->state.last_reply) set_str(L, keys, K_LAST_REPLY, e->state.last_reply);
  if (e->state.reason) set_str(L, keys, K_REASON, e->state.reason);
  if (e->state.failed_at) set_int(L, keys, K_FAILED_AT, e->state.failed_at);
  if (e->state.retried_at) set_int(L, keys, K_RETRIED_AT, e->state.retried_at);
  if (e->data) {
    lua_rawgeti(L, keys, K_DATA);
    if (buffer) push_data(L, e, keys); else lua_pushlstring(L, e->data, e->datalen);
    lua_rawset(L, -3);
  }
  if (own) lua_remove(L, keys);
}

static int op_push(lua_State *co, void *arg) {
  op *o = (op *)arg;
  if (o->rc) {
    int n = mh_l_fail(co, o->rc, "spool", "%s", o->err[0] ? o->err : mh_strerror(o->rc));
    if (o->kind == OP_LOCK && o->rc == MH_ELOCKED) {   /* who holds it, as a field: never parsed from text */
      lua_pushinteger(co, o->holder);
      lua_setfield(co, -2, "pid");
    }
    if (o->kind == OP_DELIVERED && o->memory) {   /* neither recorded nor removed: kept in memory */
      lua_pushboolean(co, 1);
      lua_setfield(co, -2, "kept_in_memory");
    }
    return n;
  }
  switch (o->kind) {
  case OP_ENQ:
    if (o->n == 1 && !o->list) { lua_pushstring(co, o->items[0].id); return 1; }
    lua_createtable(co, (int)o->n, 0);
    for (size_t i = 0; i < o->n; i++) {
      lua_pushstring(co, o->items[i].id);
      lua_rawseti(co, -2, (lua_Integer)i + 1);
    }
    return 1;
  case OP_SCAN: push_strings(co, o->ids, (size_t)o->nids); lua_pushinteger(co, o->total); return 2;
  case OP_PURGE: lua_pushinteger(co, o->purged); return 1;
  case OP_LOAD:
    if (o->kept_fd >= 0 && o->ls->sp && !o->ls->closing) {
      kept_add(o->ls, o->id, o->kept_fd, o->entry.has_state);
      o->kept_fd = -1;
    }
    push_entry(co, &o->entry, o->lean, o->bare, o->id, o->buffer, o->keys);
    return 1;
  case OP_NEWID: lua_pushstring(co, o->id); return 1;
  case OP_HASCOPY: lua_pushboolean(co, o->total != 0); return 1;
  default: lua_pushboolean(co, 1); return 1;
  }
}

/* Fills o, an op on the spool ls, with neither an anchor nor room for
** strings: what op_new allocates, and what the deliverer's per-message ops
** (load, record: run now) keep on the C stack (op_now), where the caller's
** stack keeps everything alive and a malloc of the op (some 5 KB: no
** thread cache) cost more than the rest of the call. */
static void op_setup(lua_State *L, op *o, lspool *ls, int kind) {
  memset(o, 0, offsetof(op, entry));
  o->kind = kind;
  o->held = -1;
  o->kept_fd = -1;
  o->ls = ls;
  o->main = L;   /* unref'd only when anchored: op_new's is the callbacks' state */
  o->anchor = LUA_NOREF;
}

/* A box's release for an op not yet started (mh_l_box): freed as op_start's
** mh_l_work would, the spool's count of users taken as op_free gives it back. */
static void op_release(void *p) {
  op *o = *(op **)p;
  if (!o) return;
  *(op **)p = NULL;
  o->ls->pending++;
  op_free(o);
}

/* A new op on the spool at index 1.  Pushed: the anchor table (at
** o->anchor_at), then a box (mh_l_box) owning the op until op_start hands it
** to mh_l_work: whatever is read or pushed after this (an argument refused, a
** string copied, a push refused under a rule's memory budget) may raise, and
** an op freed by hand before some luaL_errors was lost at every other raise
** (some 5 KB, with its strings).  Nothing is malloc'd before the box holds it. */
static op *op_new(lua_State *L, int kind, size_t nstrs) {
  lspool *ls = check_spool(L, 1);
  op **ob;
  op *o;
  lua_newtable(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  ob = (op **)mh_l_box(L, sizeof *ob, op_release);
  if (!(o = (op *)malloc(sizeof *o))) luaL_error(L, "out of memory");
  op_setup(L, o, ls, kind);
  o->main = main_state(L);
  o->anchor_at = lua_gettop(L) - 1;
  o->owner = ob;
  *ob = o;
  if (!(o->strs = (char **)calloc(nstrs + 1, sizeof *o->strs))) luaL_error(L, "out of memory");
  return o;
}

/* Starts o on the pool: its anchor table is ref'd, and mh_l_work owns it from
** the call on (it calls op_free, also when it raises). */
static int op_start(lua_State *L, op *o, const char *what) {
  lua_pushvalue(L, o->anchor_at);
  o->anchor = luaL_ref(L, LUA_REGISTRYINDEX);   /* may raise: the box still frees o */
  o->ls->pending++;
  *(op **)o->owner = NULL;
  o->owner = NULL;
  return mh_l_work(L, what, op_work, op_push, op_free, o);
}

/* A box's release for an op run now (op_now): what it holds is freed, and the
** op kept for the next call (or freed: one made while the spare was busy). */
static void now_release(void *p) {
  op *o = *(op **)p;
  if (!o) return;
  *(op **)p = NULL;
  op_clear(o);
  if (o->ls->spare == o) o->ls->spare_busy = 0;
  else free(o);
}

/* An op for op_now on ls, owned by the spool's kept box (mh_l_box_at: no
** garbage per message) pushed on the stack: the spool's
** spare, made once (a malloc of the op, some 5 KB with no thread cache, cost
** more than the rest of the deliverer's call), or a new one while that one is
** in use.  What the op holds once its work ran (a loaded entry, a kept or
** held descriptor) is freed by the box, also when a push of the results
** raises (a rule's memory budget): an op on the C stack was left behind then,
** the box cannot point into a frame the error has unwound. */
static op *op_now_new(lua_State *L, lspool *ls, int kind) {
  op **ob = (op **)mh_l_box_at(L, 1, 2, sizeof *ob, now_release);   /* the spool at 1 */
  op *o;
  if (!ls->spare && !(ls->spare = malloc(sizeof *o))) luaL_error(L, "out of memory");
  if (!ls->spare_busy) {
    o = (op *)ls->spare;
    ls->spare_busy = 1;
  } else if (!(o = (op *)malloc(sizeof *o))) {
    luaL_error(L, "out of memory");
  }
  op_setup(L, o, ls, kind);
  *ob = o;
  ls->pending++;   /* given back by op_clear */
  return o;
}

/* Runs o (op_now_new's) on the calling thread and returns its results: no
** wait, no pool.  For the deliverer's per-message work on files in the page
** cache (an open, a read, an unlink: some 10 us), where a thread-pool round
** trip cost more than the work itself (two context switches each way on a
** busy CPU).  What may block for long (fsync, the close that frees blocks)
** never runs this way.  The box frees what o holds as the call returns. */
static int op_now(lua_State *L, op *o) {
  op_work(o);
  return op_push(L, o);
}

/* opts.now at index idx: run on the calling thread (see op_now). */
static int opt_now(lua_State *L, int idx) {
  int now;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_getfield(L, idx, "now");
  now = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return now;
}

/* mh_l_work raises before starting when L cannot wait: check first so that an
** op is never leaked by that error. */
static void check_can_wait(lua_State *L, const char *what) {
  mh_wait probe;
  mh_wait_init(L, &probe, what);
}

static const char *checkid(lua_State *L, int idx, const char *fn) {
  size_t n;
  const char *id = mh_l_field_lstring(L, idx, fn, "id", &n);
  /* strlen: a NUL inside would make "a\0b" the file "a" */
  if (!(n > 0 && n < 250 && strlen(id) == n && !strchr(id, '/') && id[0] != '.'))
    mh_l_field_error(L, idx, fn, "id", "a message id");
  return id;
}

/* ---------------------------------------------------------- enqueue */

/* The DSN parameters of an envelope at idx (from_params = "RET=HDRS",
** to_params = {[rcpt] = "NOTIFY=..."}): into it once its recipients are read.
** 0, or -1 with err (a usage error). */
static int read_params(lua_State *L, int idx, op *o, mh_spool_item *it, char *err) {
  const char **tp;
  lua_getfield(L, idx, "from_params");
  if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
    return lua_pop(L, 1), snprintf(err, 200, "envelope.from_params must be a string"), -1;
  if (lua_isstring(L, -1)) it->from_params = keep(o, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, idx, "to_params");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  if (!lua_istable(L, -1))
    return lua_pop(L, 1), snprintf(err, 200, "envelope.to_params must be a table {[rcpt] = params}"), -1;
  if (!(tp = (const char **)calloc(it->nto + 1, sizeof *tp))) return lua_pop(L, 1), snprintf(err, 200, "out of memory"), -1;
  it->to_params = tp;
  for (size_t i = 0; i < it->nto; i++) {
    lua_getfield(L, -1, it->to[i]);
    if (lua_isstring(L, -1)) tp[i] = keep(o, lua_tostring(L, -1));
    else if (!lua_isnil(L, -1))
      return lua_pop(L, 2), snprintf(err, 200, "envelope.to_params[%s] must be a string", it->to[i]), -1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Whether the string at the top holds a NUL: the copy (a C string) would end
** there, and "a@b.example\0x" be queued for a@b.example without a word. */
static int has_nul(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  return s && strlen(s) != n;
}

/* envelope.refused = {{rcpt =, reply =}...} at idx: the recipient items left
** out of the envelope at intake, into it (copied; op_clear frees them).  The
** spool checks their count and lengths (MH_EINVAL: nil, err).  0, or -1 with
** err (a usage error). */
static int read_left_out(lua_State *L, int idx, mh_spool_item *it, char *err) {
  size_t n;
  mh_refused *r;
  lua_getfield(L, idx, "refused");
  if (lua_isnil(L, -1)) return lua_pop(L, 1), 0;
  if (!lua_istable(L, -1))
    return lua_pop(L, 1), snprintf(err, 200, "envelope.refused must be a list of {rcpt =, reply =}"), -1;
  n = lua_rawlen(L, -1);
  if (!n) return lua_pop(L, 1), 0;
  if (n > 2 * MH_ENV_BAD_MAX) n = 2 * MH_ENV_BAD_MAX + 1;   /* enough for the spool to refuse */
  if (!(r = (mh_refused *)calloc(n, sizeof *r))) return lua_pop(L, 1), snprintf(err, 200, "out of memory"), -1;
  it->refused = r;
  for (size_t i = 0; i < n; i++) {
    const char *rcpt, *reply;
    size_t lr, lp;
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    if (!lua_istable(L, -1))
      return lua_pop(L, 2), snprintf(err, 200, "envelope.refused[%zu] must be a table {rcpt =, reply =}", i + 1), -1;
    lua_getfield(L, -1, "rcpt");
    lua_getfield(L, -2, "reply");
    rcpt = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &lr) : NULL;
    reply = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &lp) : NULL;
    if (!rcpt || !reply || strlen(rcpt) != lr || strlen(reply) != lp)
      return lua_pop(L, 4), snprintf(err, 200, "envelope.refused[%zu]: rcpt and reply must be strings without NUL",
                                     i + 1), -1;
    r[i].rcpt = strdup(rcpt);
    r[i].reply = strdup(reply);
    it->nrefused = i + 1;   /* freed by op_clear, whatever follows */
    lua_pop(L, 3);
    if (!r[i].rcpt || !r[i].reply) return lua_pop(L, 1), snprintf(err, 200, "out of memory"), -1;
  }
  lua_pop(L, 1);
  return 0;
}

/* Reads an envelope {from = , to = {...}, from_params =, to_params = {},
** refused = {{rcpt =, reply =}...}} at idx into item (strings copied). */
static int read_env(lua_State *L, int idx, op *o, mh_spool_item *it, char *err) {
  size_t n, i;
  const char **to;
  if (read_left_out(L, idx, it, err)) return -1;
  /* uid: the submitter, when it is not this process (the maildrop adopter's
  ** proven caller); absent = the caller (mh_privdrop_caller) */
  lua_getfield(L, idx, "uid");
  if (!lua_isnil(L, -1)) {
    int isnum;
    lua_Integer u = lua_tointegerx(L, -1, &isnum);
    if (!isnum || u < 0 || u >= 4294967295LL)
      return lua_pop(L, 1), snprintf(err, 200, "envelope.uid must be a uid (an integer 0..4294967294)"), -1;
    it->has_uid = 1;
    it->uid = (unsigned long)u;
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "from");
  if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) return snprintf(err, 200, "envelope.from must be a string"), -1;
  if (has_nul(L)) return snprintf(err, 200, "envelope.from holds a NUL"), -1;
  it->from = keep(o, lua_isnil(L, -1) ? "" : lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, idx, "to");
  if (lua_isstring(L, -1)) {        /* one recipient as a string */
    if (has_nul(L)) return snprintf(err, 200, "envelope.to holds a NUL"), -1;
    to = (const char **)calloc(1, sizeof *to);
    if (!to) return snprintf(err, 200, "out of memory"), -1;
    to[0] = keep(o, lua_tostring(L, -1));
    it->to = to;
    it->nto = 1;
    lua_pop(L, 1);
    return read_params(L, idx, o, it, err);
  }
  if (!lua_istable(L, -1)) return snprintf(err, 200, "envelope.to must be a list of addresses"), -1;
  n = lua_rawlen(L, -1);
  to = (const char **)calloc(n + 1, sizeof *to);
  if (!to) return snprintf(err, 200, "out of memory"), -1;
  it->to = to;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    if (!lua_isstring(L, -1)) return snprintf(err, 200, "envelope.to[%zu] must be a string", i + 1), -1;
    if (has_nul(L)) return snprintf(err, 200, "envelope.to[%zu] holds a NUL", i + 1), -1;
    to[i] = keep(o, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  it->nto = n;
  lua_pop(L, 1);
  return read_params(L, idx, o, it, err);
}

/* Counts the strings an envelope at idx needs (for op_new's array): from and
** its parameters, each recipient and its parameters. */
static size_t env_strings(lua_State *L, int idx) {
  size_t n = 2;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "to");
    n += 2 * (lua_istable(L, -1) ? lua_rawlen(L, -1) : 1);
    lua_pop(L, 1);
  }
  return n;
}

/* Fills item i from data at didx and envelope at eidx (nil: parse the bytes).
** Returns 0, or pushes nothing and sets err (a usage error: raise). */
static int fill_item(lua_State *L, op *o, size_t i, int didx, int eidx, int anchor, char *err,
                     int *code) {
  mh_spool_item *it = &o->items[i];
  source *s = &o->src[i];
  *code = MH_EINVAL;
  it->write = source_write;
  it->arg = s;
  if (lua_type(L, didx) == LUA_TSTRING) {
    s->data = lua_tolstring(L, didx, &s->len);
  } else if (luaL_testudata(L, didx, STREAM_MT)) {
    lstream *st = (lstream *)lua_touserdata(L, didx);
    if (!st->in || st->busy) return snprintf(err, 200, "stream is closed, busy or already used"), -1;
    if (!lua_istable(L, eidx)) return snprintf(err, 200, "a stream needs its envelope"), -1;
    s->intake = st->in;   /* the op owns it now: freed by op_free, used once */
    st->in = NULL;
  } else {
    int closed;
    s->msg = l_msg_test(L, didx, &closed);
    if (closed) return snprintf(err, 200, "message is closed"), -1;
    if (!s->msg) return snprintf(err, 200, "message must be a string or a mailhook.Message"), -1;
    s->msg_hold = l_msg_hold(L, didx);
  }
  lua_pushvalue(L, didx);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  if (lua_istable(L, eidx)) return read_env(L, eidx, o, it, err);
  if (!lua_isnil(L, eidx)) return snprintf(err, 200, "envelope must be a table"), -1;
  if (s->msg) {
    /* the message's own envelope (msg.c's: To, Cc, Bcc, no duplicates); its
    ** strings live as long as the message, which the anchor keeps */
    size_t n = mh_msg_rcpt_count(s->msg);
    const char **to = (const char **)calloc(n + 1, sizeof *to);
    if (!to) return snprintf(err, 200, "out of memory"), -1;
    for (size_t k = 0; k < n; k++) to[k] = mh_msg_rcpt(s->msg, k);
    it->from = mh_msg_env_from(s->msg) ? mh_msg_env_from(s->msg) : "";
    it->to = to;
    it->nto = n;
    return 0;
  }
  {
    mh_env env;
    const char **to;
    int rc = mh_env_parse(s->data, s->len, 1, &env, err);
    if (rc) { *code = rc; return -2; }
    s->strip_bcc = 1;
    it->from = keep(o, env.from);
    to = (const char **)calloc(env.nto + 1, sizeof *to);
    if (!to) { mh_env_free(&env); return snprintf(err, 200, "out of memory"), -1; }
    /* env strings are moved into o->strs (sized by the caller for this) */
    char **ns = (char **)realloc(o->strs, (o->nstrs + env.nto + 1) * sizeof *ns);
    if (!ns) { free(to); mh_env_free(&env); return snprintf(err, 200, "out of memory"), -1; }
    o->strs = ns;
    for (size_t k = 0; k < env.nto; k++) { to[k] = env.to[k]; o->strs[o->nstrs++] = env.to[k]; }
    free(env.to);
    env.to = NULL;
    env.nto = 0;
    mh_env_free(&env);
    it->to = to;
    for (it->nto = 0; to[it->nto]; it->nto++) {}   /* NULL-terminated */
  }
  return 0;
}

/* Spool:enqueue(data [, env]) -> id | nil, err, info   (waits until durable) */
static int l_enqueue(lua_State *L) {
  char err[MH_SPOOL_ERRLEN];
  int code, rc;
  op *o;
  check_spool(L, 1);
  check_can_wait(L, "spool:enqueue");
  lua_settop(L, 3);
  o = op_new(L, OP_ENQ, env_strings(L, 3));   /* anchor at 4, its box at 5 */
  o->n = 1;
  o->items = (mh_spool_item *)calloc(1, sizeof *o->items);
  o->src = (source *)calloc(1, sizeof *o->src);
  if (!o->items || !o->src) return luaL_error(L, "out of memory");
  rc = fill_item(L, o, 0, 2, 3, 4, err, &code);
  if (rc) {   /* the box frees o as this returns or raises */
    if (rc == -2) return mh_l_fail(L, code, "spool", "%s", err);
    return luaL_argerror(L, rc == -1 ? 2 : 3, err);
  }
  /* envelope.id: the id to take, never another (sp:new_id()'s, recorded first in
     the name a maildrop adoption gives its original: maildrop.lua) */
  if (lua_istable(L, 3)) {
    size_t len = 0;
    const char *id;
    lua_getfield(L, 3, "id");
    id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!lua_isnil(L, -1) && (!id || len != 16 || !mh_spool_is_id(id)))
      return luaL_error(L, "spool:enqueue: envelope.id must be a spool id (16 lowercase hex digits)");
    if (id) memcpy(o->id, id, 17);
    lua_pop(L, 1);
  }
  return op_start(L, o, "spool:enqueue");
}

/* Spool:enqueue_many({{data, env}, ...}) -> {id...} | nil, err, info  (waits) */
static int l_enqueue_many(lua_State *L) {
  char err[MH_SPOOL_ERRLEN];
  size_t n, i, ns = 0;
  int code, rc;
  op *o;
  check_spool(L, 1);
  if (!lua_istable(L, 2)) mh_l_field_error(L, 2, "spool:enqueue_many", "messages", "a table");
  check_can_wait(L, "spool:enqueue_many");
  lua_settop(L, 2);
  n = lua_rawlen(L, 2);
  if (n < 1 || n > MH_SPOOL_MAXBATCH)
    luaL_error(L, "spool:enqueue_many: messages must be a list of 1 to %d (got %d)", MH_SPOOL_MAXBATCH, (int)n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    if (!lua_istable(L, -1)) {
      char item[40];
      snprintf(item, sizeof item, "messages[%zu]", i);
      mh_l_field_error(L, -1, "spool:enqueue_many", item, "{data, envelope}");
    }
    lua_rawgeti(L, -1, 2);
    ns += env_strings(L, -1);
    lua_pop(L, 2);
  }
  o = op_new(L, OP_ENQ, ns);   /* anchor at 3, its box at 4 */
  o->list = o;                 /* marks "return a table of ids" */
  o->n = n;
  o->items = (mh_spool_item *)calloc(n, sizeof *o->items);
  o->src = (source *)calloc(n, sizeof *o->src);
  if (!o->items || !o->src) return luaL_error(L, "out of memory");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);   /* 5 */
    lua_rawgeti(L, 5, 1);                    /* 6 data */
    lua_rawgeti(L, 5, 2);                    /* 7 env */
    rc = fill_item(L, o, i, 6, 7, 3, err, &code);
    lua_settop(L, 4);   /* (down to the box, never over it) */
    if (rc) {   /* the box frees o as this returns or raises */
      if (rc == -2) return mh_l_fail(L, code, "spool", "message %zu: %s", i + 1, err);
      return luaL_error(L, "bad message %d: %s", (int)i + 1, err);
    }
  }
  return op_start(L, o, "spool:enqueue_many");
}

/* ------------------------------------------------------ simple ops */

static int simple(lua_State *L, int kind, const char *what) {
  op *o;
  check_spool(L, 1);
  check_can_wait(L, what);
  const char *id = kind == OP_LOCK || kind == OP_SCAN || kind == OP_NEWID ? NULL : checkid(L, 2, what);
  o = op_new(L, kind, 0);
  if (id) memcpy(o->id, id, strlen(id) + 1);   /* checkid: < 250 bytes */
  return op_start(L, o, what);
}

static int l_lock(lua_State *L) { return simple(L, OP_LOCK, "spool:lock"); }
/* Spool:scan([limit]) -> {id...} oldest first, total   (waits).  With limit, only
** the oldest limit ids reach Lua (a 100,000-message backlog stays cheap). */
static int l_scan(lua_State *L) {
  op *o;
  lua_Integer limit;
  check_spool(L, 1);
  limit = mh_l_optfield_integer(L, 2, "spool:scan", "limit", 0);
  if (limit < 0) mh_l_field_error(L, 2, "spool:scan", "limit", ">= 0");
  check_can_wait(L, "spool:scan");
  lua_settop(L, 1);
  o = op_new(L, OP_SCAN, 0);
  o->limit = (long)limit;
  return op_start(L, o, "spool:scan");
}
/* The options table at idx read in one pass (lua_next) when it holds only
** keys of want (K_* values, 0-terminated) and no metatable: on[k] = 2 when
** option k is true, 1 when it is false, 0 when absent (left alone).  0:
** anything else (another key, a metatable), for the checked path and its
** error messages.  For the deliverer's record of each message, two options:
** the check and a lookup per option were 740 instructions a call, this
** 410.  (Not for its load: a lua_next costs about as much as a lookup, and
** five options cost more this way.) */
static int fast_opts(lua_State *L, lspool *ls, int idx, const int *want, int *on) {
  if (lua_getmetatable(L, idx)) { lua_pop(L, 1); return 0; }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int i;
    for (i = 0; want[i] && ls->key[want[i]] != k; i++) {}
    if (!want[i]) { lua_pop(L, 2); return 0; }
    on[want[i]] = 1 + lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return 1;
}

/* The options of a load: Spool:load's table, or a loader's (read once). */
typedef struct {
  int now, keep, lean, buffer;
  lua_Integer max;     /* data = N */
  int loader;          /* a loader's entry: see l_loader (push_entry's `bare`) */
} load_opts;

/* The options table at idx (none or nil: all off) into lo; raises on a key
** it does not know or a bad data = N, as Spool:load always did. */
static void read_load_opts(lua_State *L, int idx, load_opts *lo) {
  memset(lo, 0, sizeof *lo);
  lo->now = opt_now(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    static const char *const known[] = { "now", "data", "keep", "lean", "buffer", NULL };
    mh_l_check_options(L, idx, "spool:load", known);
    lua_getfield(L, idx, "data");
    lo->max = mh_l_optfield_integer(L, -1, "spool:load", "data", 0);
    lua_getfield(L, idx, "keep");
    lo->keep = lua_toboolean(L, -1);
    lua_getfield(L, idx, "lean");
    lo->lean = lua_toboolean(L, -1);
    lua_getfield(L, idx, "buffer");
    lo->buffer = lua_toboolean(L, -1);
    lua_pop(L, 4);
  }
}

/* A load of id (checkid's, at index 2) from the spool at index 1 (ls) with
** lo; the stack above 2 is dropped.  Spool:load's and a loader's one path. */
static int load_with(lua_State *L, lspool *ls, const char *id, const load_opts *lo) {
  op *o;
  if (!lo->now) check_can_wait(L, "spool:load");
  lua_settop(L, 2);
  if (lo->now) {
    lua_getiuservalue(L, 1, 1);   /* the keys (l_open), for push_entry: 3 */
    o = op_now_new(L, still_open(L, ls), OP_LOAD);
    o->keys = lua_type(L, 3) == LUA_TTABLE ? 3 : 0;
  } else {
    o = op_new(L, OP_LOAD, 0);
  }
  memcpy(o->id, id, strlen(id) + 1);   /* checkid: < 250 bytes */
  o->data_max = lo->max > 0 ? (size_t)lo->max : 0;
  o->keep = lo->keep;
  o->lean = lo->lean;
  o->bare = lo->loader && lo->lean;
  o->buffer = lo->buffer;
  return lo->now ? op_now(L, o) : op_start(L, o, "spool:load");
}

/* Spool:load(id [, {data = N, keep = true, now = true, lean = true, buffer = true}]) -> entry
** (waits unless now).  data = N: entry.data holds the message (after the
** envelope) when it is at most N bytes.  keep: the file stays open for a later
** delivered{now = true} (a few are kept, the oldest closed first).  now: on
** the calling thread, no wait (see op_now).  lean: no `all`, and `done` and
** `refused` only when not empty (push_entry).  buffer: entry.data is a
** SpoolData handle, not a string (push_data). */
static int l_load(lua_State *L) {
  load_opts lo;
  lspool *ls = check_spool(L, 1);
  const char *id = checkid(L, 2, "spool:load");   /* (its error before an option's, as ever) */
  read_load_opts(L, 3, &lo);
  return load_with(L, ls, id, &lo);
}

/* load(id): a loader's call (l_loader); upvalue 1 the spool (a Spool by
** construction: not checked again, only whether it is still open), 2 its
** options (a userdata holding a load_opts). */
static int loader_call(lua_State *L) {
  const load_opts *lo = (const load_opts *)lua_touserdata(L, lua_upvalueindex(2));
  lspool *ls;
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);   /* the spool at 1, the id at 2, as for Spool:load */
  ls = still_open(L, (lspool *)lua_touserdata(L, 1));
  return load_with(L, ls, checkid(L, 2, "spool:load"), lo);
}

/* Spool:loader([opts]) -> load: load(id) does what spool:load(id, opts)
** does, with opts read and checked once, here (a later change to the table
** is not seen).  With lean, its entry also leaves out what a caller that
** names the id has already or reads as 0 when absent: `id` (unless the entry
** is another's than asked for), `attempts` and `next_attempt` when 0.  The
** deliverer's per-message load (delivery.lua): the five options read and
** checked per call, the Spool checked again, and those three fields were some
** 2,300 instructions of a message's 61,500 (callgrind; issue 16). */
static int l_loader(lua_State *L) {
  load_opts *lo;
  check_spool(L, 1);
  lo = (load_opts *)lua_newuserdatauv(L, sizeof *lo, 0);
  read_load_opts(L, 2, lo);
  lo->loader = 1;
  lua_pushvalue(L, 1);
  lua_insert(L, -2);   /* the spool, then the options: upvalues 1 and 2 */
  lua_pushcclosure(L, loader_call, 2);
  return 1;
}

/* Spool:pickup_path(id) -> DIR/pickup/ID.eml, the path of the message id in
** pickup/ (no file looked at), or nil once the spool is closed: a lean
** loader's entry leaves its path out (push_entry), for the deliverer to ask
** for it only when a failure wants it (delivery.lua D:fail). */
static int l_pickup_path(lua_State *L) {
  lspool *ls = (lspool *)mh_l_checkself(L, 1, SPOOL_MT);
  const char *id = checkid(L, 2, "spool:pickup_path");
  if (!ls->sp || ls->closing) lua_pushnil(L);
  else lua_pushfstring(L, "%s/pickup/%s.eml", mh_spool_dir(ls->sp), id);
  return 1;
}

/* Spool:delivered(id [, {sync = false, now = true, journal = true}]) -> true
** (waits unless now).  sync = false: unlink only; the caller runs Spool:sync()
** after a run of removals (group commit).  now (with sync = false): on the
** calling thread.  journal (the lock holder; implies sync = false and now):
** one record in the delivered journal instead of the unlink, the file removed
** by a later Spool:purge() (spool.h: mh_spool_mark); when the record cannot be
** written the file is unlinked as without it; when that fails too: nil, err,
** info with info.kept_in_memory (mh_spool_mark_memory: not sent again by this
** process, its unlink tried again by the next purge). */
static int l_delivered(lua_State *L) {
  const char *id;
  int nosync = 0, now, journal = 0;
  op *o;
  lspool *ls = check_spool(L, 1);
  id = checkid(L, 2, "spool:delivered");
  static const int want[] = { K_SYNC, K_NOW, K_JOURNAL, 0 };
  int on[K_N] = { 0 };
  if (lua_type(L, 3) == LUA_TTABLE && fast_opts(L, ls, 3, want, on)) {
    nosync = on[K_SYNC] == 1;
    journal = on[K_JOURNAL] == 2;
    if (journal) nosync = 1;
    now = journal || (nosync && on[K_NOW] == 2);
  } else {
    if (!lua_isnoneornil(L, 3)) {
      static const char *const known[] = { "sync", "now", "journal", NULL };
      if (!lua_istable(L, 3)) mh_l_field_error(L, 3, "spool:delivered", "options", "a table");
      mh_l_check_options(L, 3, "spool:delivered", known);
      lua_getfield(L, 3, "sync");
      nosync = !lua_isnil(L, -1) && !lua_toboolean(L, -1);
      lua_getfield(L, 3, "journal");
      journal = lua_toboolean(L, -1);
      lua_pop(L, 2);
    }
    if (journal) nosync = 1;
    now = journal || (nosync && opt_now(L, 3));
  }
  if (!now) check_can_wait(L, "spool:delivered");
  lua_settop(L, 2);
  if (now) o = op_now_new(L, still_open(L, ls), OP_DELIVERED);
  else o = op_new(L, OP_DELIVERED, 0);
  memcpy(o->id, id, strlen(id) + 1);   /* checkid: < 250 bytes */
  o->nosync = nosync;
  o->journal = journal;
  o->may_hold = o->ls->cl->nheld < MAX_HELD;
  if (now && (o->held = kept_take(o->ls, id, &o->has_state)) >= 0) o->known = 1;
  return now ? op_now(L, o) : op_start(L, o, "spool:delivered");
}

/* Spool:sync() -> true   (waits): fsync pickup/ (after delivered{sync = false}). */
/* Spool:sidecars() -> what DIR/sidecars holds (a string that changes when
** another process wrote a sidecar into pickup/: mh_spool_sidecars_mark). */
static int l_sidecars(lua_State *L) {
  char m[17];
  mh_spool_sidecars_mark(check_spool(L, 1)->sp, m);
  lua_pushlstring(L, m, sizeof m);
  return 1;
}

static int l_sync(lua_State *L) {
  op *o;
  check_spool(L, 1);
  flush_closes(check_spool(L, 1)->cl);   /* the files removed so far start being freed too */
  check_can_wait(L, "spool:sync");
  lua_settop(L, 1);
  o = op_new(L, OP_SYNC, 0);
  return op_start(L, o, "spool:sync");
}
/* Spool:purge() -> count   (waits): removes the messages recorded by
** delivered{journal = true} so far (one fsync of pickup/); count = files
** removed.  One at a time: asked while another runs, it waits for that one
** and then removes what was recorded since. */
static int l_purge(lua_State *L) {
  op *o;
  check_spool(L, 1);
  check_can_wait(L, "spool:purge");
  lua_settop(L, 1);
  o = op_new(L, OP_PURGE, 0);
  return op_start(L, o, "spool:purge");
}
static int l_retry(lua_State *L) { return simple(L, OP_RETRY, "spool:retry"); }
static int l_remove(lua_State *L) { return simple(L, OP_REMOVE, "spool:remove"); }
/* Spool:new_id() -> id (waits): an id from the spool's clock, for an adoption
** that records it in its original's name before its copy is made
** (maildrop.lua); Spool:has_copy(id) -> boolean (waits): whether that copy
** was made (the message is queued, failed, or recorded delivered). */
static int l_new_id(lua_State *L) { return simple(L, OP_NEWID, "spool:new_id"); }
static int l_has_copy(lua_State *L) { return simple(L, OP_HASCOPY, "spool:has_copy"); }

static char *opt_str(lua_State *L, int t, const char *key) {
  char *v = NULL;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    if (!lua_isstring(L, -1)) luaL_error(L, "%s must be a string", key);
    v = strdup(lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/* opts.refused = {{rcpt =, reply =}...} of the options table at t: checked
** (misuse raises; call it before op_new), then copied into o (0, or -1 when
** out of memory).  Stack-neutral. */
static void check_refused(lua_State *L, int t, const char *fn) {
  lua_getfield(L, t, "refused");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) mh_l_field_error(L, -1, fn, "refused", "a list of {rcpt =, reply =}");
    for (size_t i = 1, n = lua_rawlen(L, -1); i <= n; i++) {
      char item[48];
      lua_rawgeti(L, -1, (lua_Integer)i);
      snprintf(item, sizeof item, "refused[%zu]", i);
      if (!lua_istable(L, -1)) mh_l_field_error(L, -1, fn, item, "a table {rcpt =, reply =}");
      lua_getfield(L, -1, "rcpt");
      lua_getfield(L, -2, "reply");
      snprintf(item, sizeof item, "refused[%zu].rcpt", i);
      if (lua_type(L, -2) != LUA_TSTRING) mh_l_field_error(L, -2, fn, item, "a string");
      snprintf(item, sizeof item, "refused[%zu].reply", i);
      if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) mh_l_field_error(L, -1, fn, item, "a string");
      lua_pop(L, 3);
    }
  }
  lua_pop(L, 1);
}
static int fill_refused(lua_State *L, int t, op *o) {
  size_t n;
  int rc = 0;
  lua_getfield(L, t, "refused");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  if (n && !(o->refused = (mh_refused *)calloc(n, sizeof *o->refused))) rc = -1;
  for (size_t i = 1; i <= n && rc == 0; i++) {
    const char *reply;
    mh_refused *r = &o->refused[o->nrefused];
    lua_rawgeti(L, -1, (lua_Integer)i);
    lua_getfield(L, -1, "rcpt");
    lua_getfield(L, -2, "reply");
    reply = lua_tostring(L, -1);
    r->rcpt = strdup(lua_tostring(L, -2));
    r->reply = strdup(reply ? reply : "");
    if (r->rcpt || r->reply) o->nrefused++;   /* freed by op_free either way */
    if (!r->rcpt || !r->reply) rc = -1;
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  return rc;
}

/* Spool:defer(id, {reply=, next_attempt=, done = {rcpt...}, refused = {{rcpt=, reply=}...},
** attempts=}) -> true (waits) */
static int l_defer(lua_State *L) {
  const char *id;
  size_t nd = 0;
  op *o;
  check_spool(L, 1);
  id = checkid(L, 2, "spool:defer");
  if (lua_isnoneornil(L, 3)) { lua_settop(L, 2); lua_newtable(L); }
  if (!lua_istable(L, 3)) mh_l_field_error(L, 3, "spool:defer", "options", "a table");
  {
    static const char *const known[] = { "done", "next_attempt", "reply", "attempts", "refused", NULL };
    mh_l_check_options(L, 3, "spool:defer", known);
  }
  check_can_wait(L, "spool:defer");
  lua_settop(L, 3);
  lua_getfield(L, 3, "done");  /* 4 */
  if (!lua_isnil(L, 4)) {
    if (!lua_istable(L, 4)) mh_l_field_error(L, 4, "spool:defer", "done", "a list of addresses");
    nd = lua_rawlen(L, 4);
    for (size_t i = 1; i <= nd; i++) {
      lua_rawgeti(L, 4, (lua_Integer)i);
      if (lua_type(L, -1) != LUA_TSTRING) {
        char item[40];
        snprintf(item, sizeof item, "done[%zu]", i);
        mh_l_field_error(L, -1, "spool:defer", item, "a string");
      }
      lua_pop(L, 1);
    }
  }
  lua_getfield(L, 3, "next_attempt");  /* 5 */
  if (!lua_isnil(L, 5)) {
    /* a time in seconds: NaN, inf or 1e300 cast to int64_t were an undefined value */
    lua_Number t = mh_l_field_number(L, 5, "spool:defer", "next_attempt");
    if (!(t >= 0 && t < 9.2e18)) mh_l_field_error(L, 5, "spool:defer", "next_attempt", "seconds since 1970");
  }
  lua_getfield(L, 3, "reply");         /* 6 */
  if (!lua_isnil(L, 6)) mh_l_field_string(L, 6, "spool:defer", "reply");
  lua_getfield(L, 3, "attempts");      /* 7 */
  if (!lua_isnil(L, 7) && (!lua_isinteger(L, 7) || lua_tointeger(L, 7) < 0 || lua_tointeger(L, 7) > INT_MAX))
    mh_l_field_error(L, 7, "spool:defer", "attempts", "an integer 0-2147483647");
  check_refused(L, 3, "spool:defer");
  o = op_new(L, OP_DEFER, nd);         /* anchor at 8 */
  memcpy(o->id, id, strlen(id) + 1);   /* checkid: < 250 bytes */
  o->attempts = lua_isnil(L, 7) ? -1 : (int)lua_tointeger(L, 7);
  o->next_attempt = (int64_t)luaL_optnumber(L, 5, 0);
  if (!lua_isnil(L, 6)) o->reply = strdup(lua_tostring(L, 6));
  for (size_t i = 1; i <= nd; i++) {
    lua_rawgeti(L, 4, (lua_Integer)i);
    keep(o, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (fill_refused(L, 3, o)) return luaL_error(L, "out of memory");   /* the box frees o */
  return op_start(L, o, "spool:defer");
}

/* Spool:fail(id, {reason=, reply=, attempts=, refused = {{rcpt=, reply=}...}}) -> true
** (waits).  attempts: the count to record (default: the stored one). */
static int l_fail(lua_State *L) {
  const char *id;
  op *o;
  check_spool(L, 1);
  id = checkid(L, 2, "spool:fail");
  if (lua_isnoneornil(L, 3)) { lua_settop(L, 2); lua_newtable(L); }
  if (!lua_istable(L, 3)) mh_l_field_error(L, 3, "spool:fail", "options", "a table");
  {
    static const char *const known[] = { "attempts", "refused", "reason", "reply", NULL };
    mh_l_check_options(L, 3, "spool:fail", known);
  }
  check_can_wait(L, "spool:fail");
  lua_settop(L, 3);
  lua_getfield(L, 3, "attempts");
  if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > INT_MAX))
    mh_l_field_error(L, -1, "spool:fail", "attempts", "an integer 0-2147483647");
  int attempts = lua_isnil(L, -1) ? -1 : (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  check_refused(L, 3, "spool:fail");
  o = op_new(L, OP_FAIL, 0);   /* anchor at 4, its box at 5 */
  memcpy(o->id, id, strlen(id) + 1);   /* checkid: < 250 bytes */
  /* read into the op, which the box owns: a reply not a string raised past a
     reason strdup'd into a C local */
  o->reason = opt_str(L, 3, "reason");
  o->reply = opt_str(L, 3, "reply");
  o->attempts = attempts;
  if (fill_refused(L, 3, o)) return luaL_error(L, "out of memory");   /* the box frees o */
  return op_start(L, o, "spool:fail");
}

/* --------------------------------------------------------------- list */

typedef struct {
  lspool *ls;
  mh_spool_iter *it;
  mh_spool_entry *buf;   /* LIST_BATCH entries, made by the first batch read: 286 KiB
                            that a listing of an empty folder never touches (held inline
                            and zeroed, they were 5% of an empty `mailhook queue`) */
  int n, next;       /* entries in buf, the next one to hand out */
  int done;          /* the iterator ran out */
  int busy;          /* a batch is being read */
  int rc;
} llist;

/* One batch request: its own struct, since the task may already have asked
** for the next batch when done() of this one runs. */
typedef struct {
  llist *l;
  int pushed;        /* push ran (the task got the batch and is not waiting) */
} lbatch;

static void list_work(void *arg) {
  llist *l = ((lbatch *)arg)->l;
  l->n = l->next = 0;
  if (!l->buf && !(l->buf = (mh_spool_entry *)malloc(LIST_BATCH * sizeof *l->buf))) {
    l->done = 1;
    l->rc = MH_ENOMEM;
    return;
  }
  while (l->n < LIST_BATCH) {
    int rc = mh_spool_iter_next(l->it, &l->buf[l->n]);
    if (rc <= 0) { l->done = 1; l->rc = rc; break; }
    l->n++;
  }
}

static int list_push(lua_State *co, void *arg) {
  lbatch *b = (lbatch *)arg;
  llist *l = b->l;
  b->pushed = 1;
  l->busy = 0;      /* before the task resumes and asks for more */
  if (l->n == 0 && l->rc < 0) return mh_l_fail(co, l->rc, "spool", "listing: %s", mh_strerror(l->rc));
  if (l->n == 0) { lua_pushnil(co); return 1; }
  push_entry(co, &l->buf[0], 0, 0, NULL, 0, 0);
  mh_spool_entry_free(&l->buf[0]);
  l->next = 1;
  return 1;
}

static void list_done(void *arg) {
  lbatch *b = (lbatch *)arg;
  if (!b->pushed) b->l->busy = 0;   /* interrupted: nobody got this batch */
  release(b->l->ls);
  free(b);
}

/* the iterator: next entry | nil at the end (waits when a batch must be read) */
static int list_iter(lua_State *L) {
  llist *l = (llist *)luaL_checkudata(L, lua_upvalueindex(1), LIST_MT);
  if (!l->it) return 0;
  if (l->next < l->n) {
    push_entry(L, &l->buf[l->next], 0, 0, NULL, 0, 0);
    mh_spool_entry_free(&l->buf[l->next]);
    l->next++;
    return 1;
  }
  if (l->done) return 0;
  if (l->busy) return luaL_error(L, "spool listing used by two tasks at once");
  if (!l->ls->sp) return luaL_error(L, "spool is closed");
  check_can_wait(L, "spool:list");
  lbatch *b = (lbatch *)calloc(1, sizeof *b);
  if (!b) return luaL_error(L, "out of memory");
  b->l = l;
  l->busy = 1;
  l->ls->pending++;
  return mh_l_work(L, "spool:list", list_work, list_push, list_done, b);
}

static int list_gc(lua_State *L) {
  llist *l = (llist *)luaL_checkudata(L, 1, LIST_MT);
  /* a batch in flight keeps the list alive (upvalue of the running iterator) */
  for (int i = l->next; i < l->n; i++) mh_spool_entry_free(&l->buf[i]);
  l->n = l->next = 0;
  free(l->buf);
  l->buf = NULL;
  mh_spool_iter_close(l->it);
  l->it = NULL;
  return 0;
}

/* Spool:list([which]) -> iterator over entries ("pickup", "failed" or both),
** oldest first, for use as `for e in sp:list() do ... end`.  Memory: 8 bytes an
** id plus one batch of entries. */
static int l_list(lua_State *L) {
  static const char *const opts[] = { "all", "pickup", "failed", NULL };
  lspool *ls = check_spool(L, 1);
  const char *w = mh_l_optfield_string(L, 2, "spool:list", "which", "all");
  int which = 0, rc;
  while (opts[which] && strcmp(opts[which], w) != 0) which++;
  if (!opts[which]) luaL_error(L, "spool:list: which must be all, pickup or failed (got '%s')", w);
  llist *l = (llist *)lua_newuserdatauv(L, sizeof *l, 1);
  memset(l, 0, sizeof *l);
  luaL_setmetatable(L, LIST_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);   /* keeps the spool alive */
  l->ls = ls;
  if ((rc = mh_spool_iter_open(ls->sp, which, &l->it))) return luaL_error(L, "%s", mh_strerror(rc));
  lua_pushcclosure(L, list_iter, 1);
  return 1;
}

/* -------------------------------------------------------------- watch */

/* Hidden files and our own sidecar updates (ID.state) are not new mail. */
static int pickup_skip(const char *name) {
  size_t n = strlen(name);
  return name[0] == '.' || (n == 22 && !strcmp(name + 16, ".state") && strspn(name, "0123456789abcdef") == 16);
}

/* Spool:watch(fn) -> handle with :stop(); fn() runs as a task when files
** appear in pickup/ (bursts coalesced: l_watch.h). */
static int l_watch(lua_State *L) {
  lspool *ls = check_spool(L, 1);
  char path[4200];
  snprintf(path, sizeof path, "%s/pickup", mh_spool_dir(ls->sp));
  return mh_l_watch(L, path, 2, pickup_skip, "spool", "spool watch");
}

/* ------------------------------------------------------------- stream */

static int stream_close(lua_State *L) {
  lstream *st = (lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (st->busy) { st->closing = 1; return 0; }
  mh_intake_free(st->in);
  st->in = NULL;
  return 0;
}

static int stream_tostring(lua_State *L) {
  lstream *st = (lstream *)luaL_checkudata(L, 1, STREAM_MT);
  lua_pushstring(L, st->in ? "mailhook.SpoolStream" : "mailhook.SpoolStream(closed)");
  return 1;
}

/* core.spool.stream(fd [, {dot = false, max = N}]) -> Stream (max: at most N
** bytes of message, fewer than MH_LIMIT_MESSAGE).  dot (default true): a line
** with a lone "." ends the message (sendmail without -i).  fd is not closed. */
static int l_stream(lua_State *L) {
  lua_Integer fd = mh_l_arg_integer(L, 1, "fd"), max = 0;
  int dot = 1;
  lstream *st;
  if (!(fd >= 0 && fd <= 0x7fffffff)) mh_l_arg_error(L, 1, "fd", "a file descriptor");
  if (!lua_isnoneornil(L, 2)) {
    static const char *const known[] = { "dot", "max", NULL };
    mh_l_arg_type(L, 2, "options", LUA_TTABLE);
    mh_l_check_nargs(L, 2, "spool.stream");
    mh_l_check_options(L, 2, "spool.stream", known);
    lua_getfield(L, 2, "dot");
    if (!lua_isnil(L, -1)) dot = lua_toboolean(L, -1);
    lua_getfield(L, 2, "max");   /* below MH_LIMIT_MESSAGE only (tests, a stricter caller) */
    if (!lua_isnil(L, -1)) max = mh_l_field_integer(L, -1, "spool.stream", "max");
    lua_pop(L, 2);
  }
  if (max < 0 || max > MH_LIMIT_MESSAGE)
    luaL_error(L, "spool.stream: max must be 0 up to limits.message (got %I)", (LUAI_UACINT)max);
  st = (lstream *)lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  luaL_setmetatable(L, STREAM_MT);
  if (!(st->in = mh_intake_new((int)fd, dot))) return luaL_error(L, "out of memory");
  if (max > 0) mh_intake_set_max(st->in, (size_t)max);
  return 1;
}

typedef struct {
  lstream *st;
  lua_State *main;
  int anchor;        /* registry ref to the Stream while the job runs */
  int rc;
  char err[MH_INTAKE_ERRLEN];
  const char *head;
  size_t len;
  int empty;
  int pushed;        /* push ran: the stream was handed back before the task resumed */
} lhead;

static void head_work(void *arg) {
  lhead *h = (lhead *)arg;
  h->rc = mh_intake_head(h->st->in, &h->head, &h->len, &h->empty, h->err);
}

static int head_push(lua_State *co, void *arg) {
  lhead *h = (lhead *)arg;
  int n;
  if (h->rc) n = mh_l_fail(co, h->rc, "intake", "%s", h->err);
  else {
    lua_pushlstring(co, h->head, h->len);   /* points into the reader: before any free */
    lua_pushboolean(co, h->empty);
    n = 2;
  }
  /* the stream is free again before the task resumes (done() runs later) */
  h->pushed = 1;
  h->st->busy = 0;
  if (h->st->closing) { mh_intake_free(h->st->in); h->st->in = NULL; }
  return n;
}

static void head_done(void *arg) {
  lhead *h = (lhead *)arg;
  if (!h->pushed) {   /* interrupted: nobody got the head */
    h->st->busy = 0;
    if (h->st->closing) { mh_intake_free(h->st->in); h->st->in = NULL; }
  }
  luaL_unref(h->main, LUA_REGISTRYINDEX, h->anchor);
  free(h);
}

/* Stream:head() -> header block (CRLF lines, without the empty line), empty
** | nil, err, info   (waits: reads the input up to its first empty line, at
** most 4 MB).  empty: the input had no message at all.  Once per stream. */
static int stream_head(lua_State *L) {
  lstream *st = (lstream *)luaL_checkudata(L, 1, STREAM_MT);
  lhead *h;
  if (!st->in || st->busy) return luaL_error(L, "stream is closed, busy or already used");
  int anchor;
  check_can_wait(L, "stream:head");
  /* the reference first: it may raise (it may grow the registry: out of
  ** memory, a rule's memory budget), and a request allocated before it leaked */
  lua_settop(L, 1);
  anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!(h = (lhead *)calloc(1, sizeof *h))) {
    luaL_unref(L, LUA_REGISTRYINDEX, anchor);
    return luaL_error(L, "out of memory");
  }
  h->st = st;
  h->main = main_state(L);
  h->anchor = anchor;
  st->busy = 1;
  return mh_l_work(L, "stream:head", head_work, head_push, head_done, h);
}

/* Stream:set_head(bytes): the header block written in place of the one read
** (Bcc removed, Date added...). */
static int stream_set_head(lua_State *L) {
  lstream *st = (lstream *)luaL_checkudata(L, 1, STREAM_MT);
  size_t n;
  const char *s = mh_l_field_lstring(L, 2, "stream:set_head", "bytes", &n);
  if (!st->in || st->busy) return luaL_error(L, "stream is closed, busy or already used");
  if (mh_intake_set_head(st->in, s, n)) return luaL_error(L, "out of memory");
  return 0;
}

/* -------------------------------------------------------------- parse */

/* A box's release for an mh_env (mh_l_box): the parsed envelope is pushed
** field by field, and every push may raise. */
static void env_release(void *p) { mh_env_free((mh_env *)p); }

/* core.spool.parse(bytes) -> {from, to, offset, canonical} | nil, err, info */
static int l_parse(lua_State *L) {
  size_t len;
  const char *s = mh_l_arg_lstring(L, 1, "bytes", &len);
  char err[MH_SPOOL_ERRLEN];
  mh_env *env = (mh_env *)mh_l_box(L, sizeof *env, env_release);
  int rc = mh_env_parse(s, len, 1, env, err);
  if (rc) return mh_l_fail(L, rc, "parse", "%s", err);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, env->from); lua_setfield(L, -2, "from");
  push_strings(L, env->to, env->nto); lua_setfield(L, -2, "to");
  lua_pushinteger(L, (lua_Integer)env->offset); lua_setfield(L, -2, "offset");
  lua_pushboolean(L, env->canonical); lua_setfield(L, -2, "canonical");
  if (env->has_uid) { lua_pushinteger(L, (lua_Integer)env->uid); lua_setfield(L, -2, "uid"); }
  push_params(L, env);
  return 1;   /* the box frees env as the function returns */
}

/* core.spool.addresses(list) -> {addr...} | nil, err, info (RFC 5322 list) */
static int l_addresses(lua_State *L) {
  size_t len;
  const char *s = mh_l_arg_lstring(L, 1, "list", &len);
  char err[MH_SPOOL_ERRLEN];
  mh_env *env = (mh_env *)mh_l_box(L, sizeof *env, env_release);   /* zeroed */
  int rc = mh_env_addrs(s, len, env, err);
  if (rc) return mh_l_fail(L, rc, "parse", "%s", err);
  push_strings(L, env->to, env->nto);
  return 1;   /* the box frees env as the function returns */
}

/* core.spool.is_id(s) -> boolean: a canonical spool id, by spool.c's one rule
** (16 lowercase hex digits; a NUL inside is no id). */
static int l_is_id(lua_State *L) {
  size_t len;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, s && len == 16 && mh_spool_is_id(s));
  return 1;
}

/* Spool:unchanged(id) -> true | false, why | nil   (no wait: an lstat, and an
** fstat of the kept descriptor, on the calling thread).  Whether pickup/ID.eml
** is still the file the last load{keep = true} of id read (the kept
** descriptor's device and inode): why "gone" (nothing under that name any
** more: `mailhook queue rm`) or "replaced" (another file under it: edited in
** place).  No descriptor kept for id (a streamed message, or closed since):
** only whether a file is there (true, or false, "gone").  nil: id is no spool
** id, or the look failed otherwise (unknown).  The deliverer's look at a
** message it loaded ahead and kept waiting (delivery.lua, Worker:burst). */
static int l_unchanged(lua_State *L) {
  lspool *ls = check_spool(L, 1);
  const char *id = checkid(L, 2, "spool:unchanged");
  char path[PATH_MAX];
  struct stat is, was;
  int fd = -1;
  if (!mh_spool_is_id(id) ||
      snprintf(path, sizeof path, "%s/pickup/%s.eml", mh_spool_dir(ls->sp), id) >= (int)sizeof path) {
    lua_pushnil(L);
    return 1;
  }
  for (int i = 0; i < KEPT_MAX; i++)
    if (ls->kept[i].fd >= 0 && !strcmp(ls->kept[i].id, id)) { fd = ls->kept[i].fd; break; }
  if (lstat(path, &is) < 0) {
    if (errno != ENOENT) { lua_pushnil(L); return 1; }
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "gone");
    return 2;
  }
  if (fd >= 0 && fstat(fd, &was) == 0 && (was.st_ino != is.st_ino || was.st_dev != is.st_dev)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "replaced");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------ module */

void l_spool_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "enqueue", l_enqueue }, { "enqueue_many", l_enqueue_many }, { "lock", l_lock },
    { "scan", l_scan }, { "sidecars", l_sidecars }, { "load", l_load }, { "loader", l_loader }, { "pickup_path", l_pickup_path }, { "delivered", l_delivered }, { "sync", l_sync },
    { "purge", l_purge },
    { "defer", l_defer }, { "fail", l_fail }, { "retry", l_retry }, { "remove", l_remove },
    { "new_id", l_new_id }, { "has_copy", l_has_copy },
    { "list", l_list }, { "watch", l_watch }, { "close", l_close },
    { "set_dropin_from", l_set_dropin_from }, { "set_dropin_names", l_set_dropin_names },
    { "unchanged", l_unchanged },
    { NULL, NULL }
  };
  static const luaL_Reg funcs[] = {
    { "open", l_open }, { "parse", l_parse }, { "addresses", l_addresses }, { "stream", l_stream },
    { "is_id", l_is_id }, { NULL, NULL }
  };
  static const luaL_Reg stream_methods[] = {
    { "head", stream_head }, { "set_head", stream_set_head }, { "close", stream_close }, { NULL, NULL }
  };
  mh_l_newclass(L, SPOOL_MT, methods, l_close, l_tostring);
  mh_l_newclass(L, STREAM_MT, stream_methods, stream_close, stream_tostring);
  data_open(L);
  luaL_newmetatable(L, LIST_MT);
  lua_pushcfunction(L, list_gc); lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, list_gc); lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "spool");
}
