/*
** spool.h — the durable pickup folder: every message mailhook has
** acknowledged lives here as one file until a server said 250 to its final dot.
**
**   DIR/tmp/      files being written (never read by the sender; swept at start)
**   DIR/pickup/   ready messages ID.eml (+ ID.state sidecar once tried)
**   DIR/failed/   dead letters ID.eml + ID.state (reason, time, reply)
**   DIR/corrupt/  unparsable files (and what is not a regular file), kept for a human
**   DIR/state/    the Lua layer's own files (tls-seen, rules/)
**   DIR/seq       the id clock (see mh_spool_new_id)
**   DIR/lock      flock(2)ed by the one deliverer of this spool
**   DIR/delivered the delivered journal: ids delivered whose files are not removed
**                 yet (and DIR/delivered.old while a purge removes them; see
**                 mh_spool_mark)
**
** Nothing found in these folders is trusted: every file is opened through
** mh_fsutil_open (never blocking, never through a link, regular files only),
** and the folders must belong to us or root and be writable by nobody else.
**
** A spool file starts with "X-Sender: FROM" and one "X-Receiver: RCPT" line per
** recipient; the message as it is sent follows (entry offset).  Either line
** may carry RFC 3461 parameters after the address ("X-Sender: a@b RET=HDRS
** ENVID=x", "X-Receiver: c@d NOTIFY=SUCCESS,FAILURE"): sendmail's -N -R -V,
** sent only where the server offers DSN (docs/sendmail.md).  Then one
** "X-Submitter-Uid: N" line, the uid of the local caller who submitted it (the
** drop program's proven uid for a maildrop/ message, else the enqueuing
** process's real uid): written with the message, in the same fsynced file, so
** no crash can separate them.  It is the envelope's last line: whatever follows
** it is the message, even a line that reads like an envelope line.  A file
** written before it existed has none (the uid is unknown).  Every function
** here does blocking disk I/O: bindings call them on the thread pool.  An
** mh_spool is safe to use from several threads at once (its descriptor
** numbers never change after open: a folder removed or replaced is opened
** again under the same number, see mh_spool_follow; every cross-process
** exclusion is a flock).
*/
#ifndef MH_SPOOL_H
#define MH_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define MH_SPOOL_IDLEN 17     /* 16 hex digits + NUL */
#define MH_SPOOL_ERRLEN 256   /* room for a "what failed: why" message */
#define MH_SPOOL_MAXBATCH 1024

typedef struct mh_spool mh_spool;

/* An envelope, as parsed from a spool file or given by a caller. */
typedef struct mh_env {
  char *from;          /* envelope sender; "" is the null sender <> */
  char **to;           /* recipients, bare addresses */
  size_t nto;
  size_t offset;       /* first byte of the message proper (after the X- lines) */
  int canonical;       /* 1 when the envelope came from X-Sender/X-Receiver lines */
  char *from_params;   /* RFC 3461 MAIL parameters ("RET=HDRS ENVID=x"), or NULL */
  char **to_params;    /* NOTIFY/ORCPT per recipient (nto entries, NULL for none), or
                          NULL when no recipient has any */
  int has_uid;         /* 1 when the envelope carries an X-Submitter-Uid line (0: a file
                          written before it existed, or no canonical envelope) */
  unsigned long uid;   /* who submitted it (valid when has_uid): the local caller's uid */
  int has_size;        /* 1 when the envelope carries an X-Spool-Size line (0: a file written
                          before it existed, or a drop-in's own envelope) */
  uint64_t size;       /* the message's bytes after the envelope when it was queued (valid
                          when has_size): a load of a file of another size refuses it */
  /* a drop-in's To/Cc/Bcc items that are no usable address, each with why
  ** (rcpt as the log shows it: control bytes as \xNN): left out of the envelope,
  ** the rest of the list still parsed; adoption records them as refused */
  struct mh_refused *bad;
  size_t nbad;
  size_t nbad_more;    /* more of them, past the ones kept (MH_ENV_BAD_MAX) */
  int keep_bad;        /* parsing a drop-in: collect them, instead of refusing the file */
} mh_env;

#define MH_ENV_BAD_MAX 100

/* A recipient the server refused for good (a 5xx to RCPT, or to the message
** once it had accepted that recipient), with the reply: RFC 5321 §4.2.1, a 5yz
** command is not repeated, so it is never sent to again. */
typedef struct mh_refused {
  char *rcpt;          /* the address */
  char *reply;         /* the server's reply ("550 5.1.1 no such user"), never NULL */
} mh_refused;

/* Per-message delivery state: the sidecar ID.state (a missing file = all zero). */
typedef struct mh_state {
  int attempts;        /* delivery attempts so far */
  int64_t next_attempt;/* unix seconds; 0 = as soon as possible */
  char *last_reply;    /* the server's last reply ("451 4.7.0 try later"), or NULL */
  char **done;         /* recipients already accepted: never sent to again */
  size_t ndone;
  mh_refused *refused; /* recipients refused for good: never sent to again either */
  size_t nrefused;
  char *reason;        /* failed/: why it failed, or NULL */
  int64_t failed_at;   /* failed/: when (unix seconds) */
  int64_t retried_at;  /* `queue retry`: when (unix seconds), or 0; max_queue_age counts from it
                          (an expired message retried failed again at once, never tried) */
} mh_state;

/* What load/list return about one message. */
typedef struct mh_spool_entry {
  char id[256];        /* the id (or the file name of a not yet adopted drop-in) */
  int failed;          /* 1 when it sits in failed/ */
  char path[4096];     /* the .eml file */
  int64_t size;        /* bytes of the file, X- lines included */
  int64_t queued_at;   /* unix seconds, from the id's clock (mtime for a drop-in) */
  mh_env env;          /* the whole envelope (pending = env.to minus state.done) */
  mh_state state;
  char *data;          /* mh_spool_load_ex: the message after the envelope lines, or NULL */
  size_t datalen;
  int has_state;       /* an ID.state sidecar was found */
} mh_spool_entry;

/* How a message body gets into its file: write everything to fd, return 0 or a
** negative code.  Called on the thread that runs mh_spool_enqueue. */
typedef int (*mh_spool_writer)(void *arg, int fd);

/* One message to enqueue. */
typedef struct mh_spool_item {
  const char *from;             /* envelope sender ("" = null sender) */
  const char *const *to;        /* recipients; at least one */
  size_t nto;
  mh_spool_writer write;        /* produces the message bytes */
  void *arg;                    /* its argument */
  char id[MH_SPOOL_IDLEN];      /* out: the id, valid once enqueue returned 0 */
  const char *from_params;      /* DSN parameters of the sender, or NULL (mh_spool_params_ok) */
  const char *const *to_params; /* of each recipient (nto entries, NULL for none), or NULL */
  int has_uid;                  /* 1: uid is the submitter (the maildrop adopter gives the uid
                                   the drop program proved); 0: this process's getuid() */
  unsigned long uid;            /* the submitter's uid when has_uid (< 4294967295) */
  const mh_refused *refused;    /* recipient items left out of the envelope at intake (sendmail's
                                   `To: a@x, Some Name`), each with why (rcpt: the item as shown,
                                   escaped; reply: why), or NULL: recorded as refused in
                                   pickup/ID.state BEFORE ID.eml is renamed in, as a drop-in's
                                   (docs/spool.md), so no deliverer ever sees the message
                                   without them.  One spelled as a recipient is not recorded */
  size_t nrefused;              /* how many: at most MH_ENV_BAD_MAX, each string at most
                                   MH_SPOOL_REFUSED_LEN bytes (else MH_EINVAL) */
} mh_spool_item;

#define MH_SPOOL_REFUSED_LEN 1000

/* Opens (creating what is missing, mode 0700) the spool in dir: the folder
** and tmp/ pickup/ failed/ corrupt/ state/.  Like `postfix check`, each must
** belong to the running user or root and be writable by nobody else (the
** sub-folders are opened without following a link): else MH_EUNSAFE.  0 or a
** negative code; err (MH_SPOOL_ERRLEN, may be NULL) says which path failed and
** why (owner, mode). */
int mh_spool_open(const char *dir, mh_spool **out, char *err);
/* mh_spool_open with flags (0: as mh_spool_open):
**   MH_SPOOL_MUST_EXIST  the folder and its pickup/ (or its maildrop/: the
**                        spool as installed, the service never started)
**                        must be there: else -ENOENT, err "no spool at DIR"
**                        (with why), and nothing made; the other
**                        sub-folders are made when missing unless
**                        NO_CREATE (a deliverer: flush)
**   MH_SPOOL_NO_CREATE   makes no folder, at open or when following
**                        (mh_spool_follow), a missing folder reading as
**                        "no spool at DIR"; a missing tmp/ failed/ corrupt/
**                        state/ reads as empty (a sidecar cannot be written
**                        without tmp/: -ENOENT).  For an administrator's
**                        look at the queue (list, show, rm, retry): a look
**                        must never make a spool, owned by whoever looked. */
#define MH_SPOOL_MUST_EXIST 1u
#define MH_SPOOL_NO_CREATE 2u
int mh_spool_open_ex(const char *dir, unsigned flags, mh_spool **out, char *err);
void mh_spool_close(mh_spool *sp);

/* Whether the spool folder, its sub-folders, the lock file (of a holder) and
** the delivered journal at their paths are still what this handle opened:
** one removed, moved or replaced while the process runs (`rm -rf
** SPOOL/pickup`, `mv SPOOL ...`) is opened again (made again when missing, as
** mh_spool_open does) under the same descriptor number, with one log line;
** the holder takes the new lock file's flock, or, when another process holds
** it, delivers no more (MH_ELOCKED, said once) until it is free again.
** Scans and enqueues call it, looking at most once a second (force: now).
** 0 or a negative code (err, may be NULL, says what; logged once). */
int mh_spool_follow(mh_spool *sp, int force, char *err);
const char *mh_spool_dir(const mh_spool *sp);

/* The sender (and From) given at adoption to a drop-in that names no sender
** (no X-Sender, no address in a From): the settings' `from`; without it
** (NULL), the file owner's login at domain (the settings' default_domain;
** NULL: the host name), never the null sender.  May be called again at any
** time (a settings reload), also while a scan adopts on another thread.
** 0, MH_EBADADDR (addr, or domain, is no address's) or MH_ENOMEM. */
int mh_spool_set_dropin_from(mh_spool *sp, const char *addr, const char *domain);

/* Where a drop-in's bare local recipients (`To: root`, `Cc: ops`, or
** name@localhost / @this host) go: the answer `mailhook sendmail -t` gives for
** the same name (lua/mailhook/submit.lua's resolver: aliases, their
** `default:`, admin_address, NAME@default_domain), worked out by the Lua side
** from the settings and handed over as a table, since adoption runs in C on
** the thread pool.  Built with mh_spool_names_new, filled, then given to the
** spool (which owns it from then on; NULL: none, a bare name is unparsable,
** as before).  May be set again at any time (a reload), as the sender. */
typedef struct mh_spool_names mh_spool_names;
mh_spool_names *mh_spool_names_new(const char *domain);
/* name: its recipients, LF-separated (or, is_error, why it has none);
** name NULL: every name without an entry of its own (NULL never given: NAME@domain). */
int mh_spool_names_add(mh_spool_names *n, const char *name, const char *addrs, int is_error);
int mh_spool_names_local(mh_spool_names *n, const char *domain);  /* a domain meaning this machine */
void mh_spool_names_free(mh_spool_names *n);
void mh_spool_set_dropin_names(mh_spool *sp, mh_spool_names *n);

/* Takes the deliverer lock (non-blocking) and then sweeps stale tmp/ files.
** 0; MH_ELOCKED with *holder = the holder's pid; -errno.  The lock lasts until
** mh_spool_close.  Enqueuing never takes this lock. */
int mh_spool_lock(mh_spool *sp, long *holder);

/* Removes tmp/ files no live writer holds (a writer flocks its tmp file
** before it has its name: made nameless with O_TMPFILE, flocked, linked in; or
** else as w.PID.NAME, flocked, renamed) and older than min_age seconds; a w.
** file only when its writer PID is gone or it is older than 10 minutes.  What
** is not a regular file in tmp/ is removed too (a folder is left).  Returns
** how many were removed, or -errno. */
int mh_spool_sweep(mh_spool *sp, int min_age);

/* The next id: 16 hex digits of max(now in microseconds, last id + 1), kept in
** DIR/seq under flock, so ids sort in enqueue order across processes, restarts
** and backward clock steps.  0 or -errno; MH_ETIMEDOUT when another process
** holds DIR/seq for over 10 s (stopped while holding it): err (may be NULL)
** says so, naming the file. */
int mh_spool_new_id(mh_spool *sp, char id[MH_SPOOL_IDLEN], char *err);

/* Makes the seq clock at least id (the scanner calls it with the highest id it
** saw, so a seq update lost in a power cut cannot make ids go backwards).
** Errors as mh_spool_new_id's. */
int mh_spool_raise_seq(mh_spool *sp, const char *id, char *err);

/* Whether the message id is queued or was: its file in pickup/ or failed/, or
** recorded delivered and not purged yet.  An adoption (a drop-in in pickup/,
** a file of maildrop/) renames its original aside under a name that records
** the id its copy takes, before it makes the copy: after a kill, an aside whose
** id this says is queued is only removed, any other is adopted under its id
** (docs/spool.md, "A kill during an adoption"). */
int mh_spool_has_copy(mh_spool *sp, const char *id);

/* Enqueues n items (1..MH_SPOOL_MAXBATCH) all or nothing: tmp/ID written with
** O_EXCL 0600, fsynced, renamed into pickup/ (never over an existing file), and
** pickup/ fsynced once for the batch; an item with refused items gets its
** sidecar (pickup/ID.state, fsynced) before its rename, and an id that is
** queued already (a lost seq update) is never given one.  0 once every item
** is durable (ids set);
** otherwise a negative code, err says what failed, and no item was acknowledged
** (every tmp/ file, every file already renamed and every sidecar written is
** removed again). */
int mh_spool_enqueue(mh_spool *sp, mh_spool_item *items, size_t n, char *err);
/* mh_spool_enqueue of one item under the id given (16 hex digits), never
** another: a maildrop adoption's, recorded in its original's aside name before
** the copy is made.  -EEXIST when ID.eml exists. */
int mh_spool_enqueue_as(mh_spool *sp, mh_spool_item *item, const char *id, char *err);

/* Ready ids of pickup/, oldest first (caller frees each and the array); with
** limit > 0 only the `limit` oldest (memory bounded by limit, not by the
** queue).  As the lock holder does it: drop-ins (any other file name, *.state
** too) are adopted into the canonical form under a fresh id, unparsable ones
** and anything that is not a regular file moved to corrupt/, orphan sidecars
** removed (kept in corrupt/ when not a state file).  A failure (a full disk)
** leaves the file and is logged once per name and error, not at each scan.
** *total (when not NULL) = every ready id, beyond the limit too, and, for a
** process that does not hold the lock (which adopts nothing), every drop-in
** waiting for adoption.  Returns the count or a negative code. */
long mh_spool_scan(mh_spool *sp, size_t limit, char ***ids, long *total, char *err);

/* Loads one message (pickup/ first, then failed/).  0, MH_ENOTFOUND, or
** MH_ECORRUPT (a pickup/ file that cannot be parsed, or is not a regular
** file, is moved to corrupt/).  An ID.state that is not a regular file is no
** state (moved to corrupt/ by the lock holder). */
int mh_spool_load(mh_spool *sp, const char *id, mh_spool_entry *e, char *err);
/* The same, and the message itself (what follows the X- envelope lines) in
** e->data when it is at most data_max bytes: the deliverer then sends it
** without opening the file again.
** fd (when not NULL): the file stays open, its descriptor in *fd (else -1), so
** a removal after delivery needs no lookup (mh_spool_unlink_names). */
int mh_spool_load_ex(mh_spool *sp, const char *id, mh_spool_entry *e, size_t data_max, int *fd,
                     char *err);
void mh_spool_entry_free(mh_spool_entry *e);

/* After the server's 250 to the final dot: unlink ID.eml and ID.state, fsync. */
int mh_spool_delivered(mh_spool *sp, const char *id, char *err);

/* The same without the fsync of pickup/: the unlink is done (a SIGKILL cannot undo
** it) but a power cut may; then the message is sent again, never lost.  The
** deliverer calls mh_spool_sync once for a run of removals (group commit). */
int mh_spool_delivered_nosync(mh_spool *sp, const char *id, char *err);

/* mh_spool_delivered_nosync that returns with the file still open in *held (or
** -1): the unlink then only removes the names (the message is gone from the
** queue when it returns, as above), and freeing the data blocks, which waits
** 100-250 us per 1 KB file on ext4 mounted with discard, happens when the caller
** closes *held, off the deliverer's critical path. */
int mh_spool_delivered_held(mh_spool *sp, const char *id, int *held, char *err);
/* The unlinks of mh_spool_delivered_nosync, for a file the caller holds open
** (from mh_spool_load_ex): ID.state only when has_state is not 0. */
int mh_spool_unlink_names(mh_spool *sp, const char *id, int has_state, char *err);

/* The delivered journal (DIR/delivered; spool.c says why and how): the
** deliverer's cheap way to say "delivered" after a 250, one write(2) where an
** unlink freed the file's blocks.
** mh_spool_mark records id (the lock holder only, else MH_EINVAL; fd: its file
** when the caller holds it open, else -1; not looked at): from its
** return the message is delivered for every reader of this spool (scan, load,
** the listing, remove and retry leave it out) and no crash of the process can
** undo it; its file stays until a purge.  A file gone meanwhile (`queue rm`
** while it was sent) is recorded all the same, with no system call to look:
** the purge finds it gone and logs that it was removed meanwhile.  MH_ELIMIT when too many records
** wait for a purge; -errno of the write (a full disk): then nothing is
** recorded and the caller removes the message the old way
** (mh_spool_delivered_nosync).  Safe to call while a purge runs.
** mh_spool_purge removes the messages recorded so far (unlinks, one fsync of
** pickup/) and starts a new record: the number of files removed, or a
** negative code (what failed is tried again by the next purge).  One runs at a
** time: a call made while another runs waits for it, then removes what was
** recorded since, so every record made before a call is purged when it
** returns.  mh_spool_lock finishes the purge a killed deliverer left.
** mh_spool_marked: records not removed yet. */
int mh_spool_mark(mh_spool *sp, const char *id, int fd, char *err);
/* The same record kept in this process's memory only, nothing written: for a
** message the server took whose record and unlink both failed (a failing
** disk).  Every reader of this handle leaves it out, as a record, so this
** process does not send it again; the next purge tries its unlink again (and
** says when that fails), as for a record, only while the file its load read is
** under the name (one edited in place since goes to corrupt/).  Only a restart before that removal sends it again.
** 0, MH_ELIMIT, MH_ENOMEM, MH_EINVAL (not the lock holder). */
int mh_spool_mark_memory(mh_spool *sp, const char *id, char *err);
long mh_spool_purge(mh_spool *sp, char *err);
size_t mh_spool_marked(mh_spool *sp);

/* For readers without an mh_spool (admin.c's pages): the ids the journal of
** the spool folder dirfd records, sorted, in *ids (caller frees; NULL when
** none), and whether id is among them.  0 or a negative code (then the view
** may hold delivered messages, as a moment before their 250). */
int mh_spool_journal_read(int dirfd, uint64_t **ids, size_t *n);
int mh_spool_journal_has(const uint64_t *ids, size_t n, const char *id);

/* fsync of what the deliverer did since the last one: the journal's records
** (and the folder, when the journal was new) and pickup/ (the unlinks). */
int mh_spool_sync(mh_spool *sp, char *err);

/* Records a failed attempt: attempts (or the stored count + 1 when attempts
** < 0), next_attempt, last_reply, the recipients newly accepted (added to
** done) and those newly refused for good (added to refused, or their reply
** updated); written atomically and fsynced. */
int mh_spool_defer(mh_spool *sp, const char *id, int attempts, int64_t next_attempt,
                   const char *reply, const char *const *done, size_t ndone,
                   const mh_refused *refused, size_t nrefused, char *err);

/* Moves the message to failed/ with its sidecar (reason, time, reply, and the
** recipients refused by the attempt that failed it, added as by defer).
** attempts: the count to record (the attempt that failed included), or < 0 to
** keep the stored one (a message that expired without a new attempt). */
int mh_spool_fail(mh_spool *sp, const char *id, const char *reason, const char *reply,
                  int attempts, const mh_refused *refused, size_t nrefused, char *err);

/* failed/ID back to pickup/ (or a deferred pickup/ID made due now); attempts
** and accepted recipients are kept, the refused ones are pending again (the
** administrator asked for them to be tried). */
int mh_spool_retry(mh_spool *sp, const char *id, char *err);

/* What DIR/sidecars holds now (16 hex digits and a newline; zeros when it is
** empty or cannot be read) into out: it moves whenever a process without the
** lock wrote a sidecar into pickup/ (`queue retry` of a deferred message), so
** the deliverer, which keeps each deferred message's next attempt in memory,
** knows to look again (a retry did nothing until the old backoff ended). */
void mh_spool_sidecars_mark(mh_spool *sp, char out[17]);

/* Deletes a message (pickup/ or failed/) and its sidecar. */
int mh_spool_remove(mh_spool *sp, const char *id, char *err);

/* Streaming listing, oldest first (enqueue order; pickup/ and failed/ merged),
** then the drop-ins not adopted yet by name.  The first call of next reads the
** folders' names once and keeps only the ids (8 bytes a message: 0.8 MB for
** 100,000); entries are then loaded one at a time, so memory does not grow
** with the size of the messages.  A message delivered meanwhile is left out. */
typedef struct mh_spool_iter mh_spool_iter;
/* which: 0 pickup then failed, 1 pickup only, 2 failed only */
int mh_spool_iter_open(mh_spool *sp, int which, mh_spool_iter **it);
/* 1 with *e filled (free with mh_spool_entry_free), 0 at the end, <0 error. */
int mh_spool_iter_next(mh_spool_iter *it, mh_spool_entry *e);
void mh_spool_iter_close(mh_spool_iter *it);

/* Envelope parsing (exposed for tests, sendmail and the fuzzer).
** Parses the head of a message in buf[0..len): the X-Sender/X-Receiver lines
** when present, else From (sender) and To/Cc/Bcc (recipients).  eof says buf
** holds the whole file.  0 and env filled; 1 = need more bytes (header block
** not complete and !eof); MH_ECORRUPT when unparsable (err says why). */
int mh_env_parse(const char *buf, size_t len, int eof, mh_env *env, char *err);
void mh_env_free(mh_env *env);

/* Appends the addr-specs of an RFC 5322 address list (display names, comments,
** groups) to env->to.  0, MH_EBADADDR (err names it) or MH_ENOMEM. */
int mh_env_addrs(const char *val, size_t len, mh_env *env, char *err);

/* 0 when addr is a usable bare address (local@domain, no space, control
** character, <, > or comma; <= 320 bytes); "" is allowed when empty_ok. */
int mh_addr_check(const char *addr, int empty_ok);

/* 0 when p is a list of RFC 3461 parameters a spool file may carry: space
** separated KEY=VALUE, KEY one of RET, ENVID (sender: sender != 0) or NOTIFY,
** ORCPT (recipient), VALUE printable ASCII without '<' or '>', at most 500
** bytes in all.  NULL and "" are fine (none).  Else MH_EBADADDR. */
int mh_spool_params_ok(const char *p, int sender);

/* For the binding: writes buf[0..len) to fd, with the Bcc lines of its header
** block (up to the first blank line) left out, and the other fields never
** sent (Resent-Bcc, Return-Path, Content-Length: spool.c never_sent).  0 or
** -errno (never retried on fd). */
int mh__spool_write_no_bcc(int fd, const char *buf, size_t len);

/* For the intake (mailhook sendmail): removes the Bcc fields of the header
** block buf[0..len) in place, by the same rule; returns the new length. */
size_t mh__spool_drop_bcc(char *buf, size_t len);

/* For tests/fuzz/fuzz-envelope.c: a drop-in's envelope parsed as adoption parses
** it (bad recipient items collected in env->bad, not refused), no local names
** table.  mh_env_parse's results. */
int mh__spool_dropin_env(const char *buf, size_t len, mh_env *env, char *err);

/* True for a canonical id (16 lowercase hex digits). */
int mh_spool_is_id(const char *s);

#endif
