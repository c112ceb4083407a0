/*
** fsutil.h — small file helpers shared by the core and the bindings:
**   - the ONE rule for opening a file mailhook did not create itself (a
**     drop-in, a sidecar, an attachment, a settings, template or CA file,
**     stdin): never a blocking open, never anything but a regular file, never
**     more bytes than the input's limit (mh_fsutil_open, mh_fsutil_read...);
**   - the input size limits (MH_LIMIT_*), named in docs/spool.md;
**   - replace a file atomically and durably (temporary file, fsync, rename,
**     fsync of the folder).
** Blocking calls, meant for small files or for the thread pool.
*/
#ifndef MH_FSUTIL_H
#define MH_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ------------------------------------------------------ input limits
** What one input may weigh.  Past it, the input is refused with an error
** naming it and the limit (mh_fsutil_why); nothing is queued.  Documented in
** docs/spool.md ("Limits") and docs/message.md. */
#define MH_LIMIT_ATTACHMENT ((int64_t)64 << 20)  /* one attachment file (--attach, attachments = {}) */
#define MH_LIMIT_BODY       ((int64_t)16 << 20)  /* a text or HTML body: enqueue's stdin, --html, text =, html = */
#define MH_LIMIT_EVENT      ((int64_t)1 << 20)   /* the JSON document of `hook EVENT --json` */
#define MH_LIMIT_FIELD      ((int64_t)64 << 10)  /* one event field's value (KEY=VALUE or JSON string) */
#define MH_LIMIT_CONFIG     ((int64_t)1 << 20)   /* settings, rule, template and spool state files */
#define MH_LIMIT_CA         ((int64_t)4 << 20)   /* tls_ca_file (a whole CA bundle is ~220 KB) */
#define MH_LIMIT_MESSAGE    ((int64_t)1 << 30)   /* a whole message streamed from stdin (mailhook
                                                    sendmail): a runaway producer (`yes |`) stops
                                                    there instead of filling the spool's disk */

/* --------------------------------------------- opening foreign files */

/* fsflags of mh_fsutil_open. */
#define MH_FS_FOLLOW 1u   /* follow a symbolic link as the last component: for a path
                             someone named (an attachment, the settings file, a CA
                             bundle); without it a link is refused (files in folders
                             mailhook owns: spool files, drop-ins, sidecars) */
#define MH_FS_OWNED  2u   /* the file opened (what a link leads to) must belong to the
                             running user or root and must not be writable by every
                             user: a file that is code, or names code to run (rule
                             files, the settings with password_command), which no
                             other user may change.  Else MH_EUNSAFE */
#define MH_FS_LISTED 4u   /* a file of a folder of mailhook's own that the caller's
                             listing (readdir's d_type) has just seen as a regular
                             file, read by this process alone: step 1 is skipped (the
                             listing was that look) and so is step 4 (O_NONBLOCK stays:
                             a regular file ignores it).  Steps 2 and 3 still refuse
                             what was swapped in since: a link is never opened, a FIFO
                             or a device may be opened (O_NONBLOCK | O_NOCTTY: no
                             blocking, no terminal taken) but is never read.  Only the
                             folder's owner or root can swap one in.  The spool's
                             deliverer, per message (issue 16) */
#define MH_FS_UNREAD 8u   /* with MH_FS_LISTED: step 3 is skipped too (st is left
                             zeroed), for a caller whose first read, a pread, tells
                             instead: a FIFO or a socket fails it (ESPIPE), a folder
                             too (EISDIR), and a regular file written by a rename
                             that returns less than asked is whole.  The caller
                             fstats when the read fails or fills its buffer.  Only a
                             device (its node made there by root since the listing)
                             may be read once, non-blocking (spool.c's load) */

/* Opens dirfd/path (dirfd AT_FDCWD for a plain path) with oflags (O_RDONLY,
** O_RDWR, O_CREAT, O_EXCL ...; mode for O_CREAT) the safe way, for a file
** mailhook did not create itself or that lies in a folder others might have
** written to:
**   1. fstatat first: anything but a regular file (FIFO, device, socket,
**      folder; a symbolic link unless MH_FS_FOLLOW) is refused unopened, so a
**      device's open has no side effect;
**   2. openat with O_NONBLOCK | O_NOCTTY | O_CLOEXEC (| O_NOFOLLOW unless
**      MH_FS_FOLLOW): a FIFO swapped in after 1 still cannot block the open;
**   3. fstat of the descriptor: a regular file again (it is what is read);
**      with MH_FS_OWNED, owned by the running user or root and not writable
**      by others (MH_EUNSAFE);
**   4. O_NONBLOCK cleared (regular files ignore it anyway).
** With MH_FS_LISTED, steps 2 and 3 only; with MH_FS_UNREAD too, step 2 only.
** Returns the descriptor; MH_ENOTREG with st->st_mode telling what it was (see
** mh_fsutil_kind); -errno (-ENOENT ...).  st (may be NULL) receives the
** descriptor's fstat. */
int mh_fsutil_open(int dirfd, const char *path, int oflags, mode_t mode, unsigned fsflags,
                   struct stat *st);

/* mh_fsutil_open for reading, and a size check: MH_ELIMIT (st->st_size says
** how big) when max > 0 and the file holds more than max bytes. */
int mh_fsutil_open_input(int dirfd, const char *path, unsigned fsflags, int64_t max, struct stat *st);

/* Reads a whole file opened by the rule above, at most max bytes (checked
** before reading and while reading, in case it grows): *out (malloc'ed,
** NUL-terminated, caller frees) and *len.  0, MH_ENOTREG, MH_ELIMIT, -errno. */
int mh_fsutil_read(int dirfd, const char *path, unsigned fsflags, int64_t max, char **out,
                   size_t *len, struct stat *st);

/* Reads fd (stdin, a pipe) to its end, at most max bytes: MH_ELIMIT as soon as
** byte max + 1 arrives (nothing more is read).  A non-blocking fd is waited
** for with poll.  0 with *out (NUL-terminated) and *len, or a negative code. */
int mh_fsutil_read_fd(int fd, int64_t max, char **out, size_t *len);

/* "a FIFO", "a folder", "a symbolic link", "a socket", "a character device",
** "a block device", "a regular file" (for messages). */
const char *mh_fsutil_kind(mode_t mode);

/* The one wording of an input failure, into buf: "WHAT PATH: a FIFO, not a
** regular file", "WHAT PATH: 70000000 bytes, over the 64 MiB limit", "WHAT
** PATH: No such file or directory".  what may be "" (no prefix), path NULL
** (stdin: "WHAT: ..."); st is what mh_fsutil_open* filled; max the limit.
** Returns buf. */
char *mh_fsutil_why(char *buf, size_t n, const char *what, const char *path, int rc,
                    const struct stat *st, int64_t max);

/* "64 MiB", "1 MiB", "512 KiB" or "1234 bytes": a limit for messages. */
char *mh_fsutil_size(char *buf, size_t n, int64_t bytes);

/* Replaces path with exactly len bytes of data, durably:
**   a temporary ".NAME.PID.N" in the same folder (O_CREAT|O_EXCL, mode; N
**   counts this process's calls, a collision tries the next),
**   write all, fsync, close, rename over path, fsync the folder.
** Readers see either the old file or the new one, never a mix.  On any failure
** the temporary file is removed and path is untouched (unless the failure was
** the final folder fsync, after the rename: then the new content is in place
** but maybe not yet durable, and the error is still reported).
** Returns 0 or a negative errno. */
int mh_fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* The same with sync = 0: no fsync of the file nor of the folder, for a
** snapshot rewritten often that need not survive a power cut (status.json);
** the temporary file is still made O_EXCL (never through a planted link or
** FIFO) and renamed over path. */
int mh_fsutil_write_atomic_ex(const char *path, const void *data, size_t len, mode_t mode, int sync);

/* The same, the temporary file given owner uid and group gid ((uid_t)-1 /
** (gid_t)-1: unchanged) before its content and the rename, so that a file
** rewritten (the settings, the secrets) keeps the owner and group an
** administrator gave it.  A chown refused (-EPERM: not root) fails the write
** with path untouched.  step (may be NULL) is set to the step that failed, for
** the message ("write the new copy", "rename the new copy over it", ...); when
** it is "fsync the folder", the new content is in place (see above). */
int mh_fsutil_write_atomic_as(const char *path, const void *data, size_t len, mode_t mode,
                              uid_t uid, gid_t gid, int sync, const char **step);

/* Removes from the folder dfd the temporaries ".NAME.PID.N" that writers
** killed between their open and their rename left (a crash-looping service
** piled up .status.json.PID.N): only regular files whose PID no longer exists
** (kill(PID, 0) gives ESRCH) and that are at least min_age seconds old, a
** writer in another pid namespace looking dead.  Returns how many went, or a
** negative errno when the folder cannot be read. */
int mh_fsutil_sweep_temps(int dfd, int min_age);

/* write(2) all of len bytes, retrying short writes and EINTR; 0 or -errno on the
** first error (the caller never retries on that descriptor). */
int mh_fsutil_write_all(int fd, const void *buf, size_t len);

/* fsync the folder that holds path (its dirname); 0 or a negative errno. */
int mh_fsutil_fsync_parent(const char *path);

/* Who holds a flock: the pid of a FLOCK WRITE lock on st's file (device and
** inode) as /proc/locks lists it, looked for in up to `reads` reads (one read
** can miss a lock that is held: the kernel makes that file a page at a time).
** 1 and *pid; 0 when none listed it; -errno when /proc/locks cannot be read.
** (admin.c: the spool's deliverer lock; spool.c: its short locks, to name the
** holder of one held too long; l_rstate.c: rule state's locks.) */
struct stat;
int mh_fsutil_flock_holder(const struct stat *st, int reads, long *pid);

/* Whether process pid is stopped (SIGSTOP, Ctrl-Z, a debugger: state T or t
** in /proc/PID/stat): 1, 0, or -errno (no such process). */
int mh_fsutil_proc_stopped(long pid);

#endif
