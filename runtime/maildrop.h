/*
** maildrop.h — both sides of SPOOL/maildrop/, the folder through which local
** users who may not write the spool submit mail (docs/sendmail.md,
** "Unprivileged submission"):
**   - the caller's side: run the setgid drop program (runtime/drop.c,
**     mailhook-drop) with the message on a pipe (mh_maildrop_submit);
**   - the service's side: list the files it left, open one with the record
**     checked (mh_maildrop_open), and remove it once adopted, or move it to
**     corrupt/ (mh_maildrop_done).
** The limits are shared with drop.c, which includes this header for them
** (and nothing else: drop.c links no mailhook code).
** Every function here blocks on the disk or on the child: call them on the
** thread pool.
*/
#ifndef MH_MAILDROP_H
#define MH_MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#define MH_DROP_MAX_MSG   ((int64_t)100 << 20)  /* bytes of one message (the drop program's limit) */
#define MH_DROP_MAX_RCPT  10000                 /* recipients of one message */
#define MH_DROP_MAX_VALUE 998                   /* bytes of one address or parameter */
#define MH_DROP_MAX_REC   (4 << 20)             /* bytes of the record before the message */
#define MH_DROP_MAX_LEFT  100                   /* recipient items left out one record names (-l) */
#define MH_DROP_MAX_LEFTLEN 600                 /* bytes of each one's item, and of its why, as
                                                   recorded (escaped, cut: the drop program) */
#define MH_DROP_MAGIC     "MAILHOOK-DROP 1\n"
#define MH_DROP_ERRLEN    300

#ifndef MH_DROP_PROGRAM_ONLY

/* What the drop program recorded about one message. */
typedef struct mh_drop_rec {
  unsigned long uid, gid;   /* the caller's real uid and gid (getuid, getgid) */
  long pid;                 /* its process, for the log */
  int64_t time;             /* when it was dropped (unix seconds): the Date it gets */
  char *from;               /* the sender it asked for (NULL: none; "": the null sender) */
  char **to;                /* the recipients, as given (resolved by the service) */
  size_t nto;
  char *notify, *ret, *envid;  /* sendmail -N -R -V, or NULL */
  char **left_item;         /* the recipient items sendmail left out of the envelope, as the
                               caller gave them to -l (the record's escapes decoded: a control
                               character may be there, never a NUL), or NULL */
  char **left_why;          /* why, for each ("To header: 'Some Name' is not an address") */
  size_t nleft;             /* how many (at most MH_DROP_MAX_LEFT): never recipients, only
                               recorded refused with the message (the caller's word) */
  int64_t offset;           /* the first byte of the message in the file */
  int64_t size;             /* bytes of the file */
} mh_drop_rec;

void mh_drop_rec_free(mh_drop_rec *r);

/* The names of SPOOL/maildrop/ that are complete drops, oldest first (their
** names sort in drop order), and those of temporary files ("t." names left
** by a drop program killed where O_TMPFILE is missing) older than stale_age
** seconds, to be removed.  0 with the arrays (free each and them; NULL when
** empty); 1 when there is no maildrop/ folder (nothing to adopt); -errno. */
int mh_maildrop_list(const char *spool, char ***names, size_t *n, int64_t stale_age, char ***stale,
                     size_t *nstale);

/* Opens SPOOL/maildrop/NAME for adoption, never following a link nor
** blocking on a FIFO: a regular file with one link, owned by the uid its
** record names, of at most the drop program's limits, whose record parses.
** 0 with *rec and *fd (the file, positioned at the message; the caller closes
** it); MH_ECORRUPT when the file is not what the drop program writes (err
** says why: the service moves it to corrupt/); MH_ENOTFOUND; -errno. */
int mh_maildrop_open(const char *spool, const char *name, mh_drop_rec *rec, int *fd, char *err);

/* After adoption: removes maildrop/NAME (corrupt = 0) or moves it to
** corrupt/ under a free name (corrupt = 1: maildrop.AS, AS the name it came
** under when it was renamed aside since, else NULL for NAME); the folders
** fsynced.  0 or a negative code (err says which path). */
int mh_maildrop_done(const char *spool, const char *name, int corrupt, const char *as, char *err);

/* An administrator's removal of maildrop/NAME, never adopted (`mailhook queue
** rm NAME`): unlinked, the folder fsynced.  MH_ENOTFOUND when NAME is not
** there (unlike mh_maildrop_done, for which a file gone is the goal): the
** service may have renamed it aside meanwhile, its copy queued, and "removed"
** would be false.  0 or a negative code (err says why). */
int mh_maildrop_remove(const char *spool, const char *name, char *err);

/* Before its copy is made: maildrop/NAME, open as fd, is renamed to
** maildrop/ID.adopted, the name recording the id its copy will take
** (lua/mailhook/maildrop.lua; the pickup/ side does the same, spool.c's
** adopt_one).  A kill after this leaves that name, which the next adopter
** removes when ID is queued and adopts under ID otherwise: never twice.  The
** file renamed must be the one open (its inode): another goes back under its
** name, -EAGAIN.  0 with the new name in aside (at least 32 bytes);
** MH_ENOTFOUND when NAME is gone; or a negative code (err says why). */
int mh_maildrop_aside(const char *spool, const char *name, const char *id, int fd, char *aside, char *err);

/* Runs the drop program (argv[0] = its path; argv NULL-terminated) with the
** message on its stdin, produced by write(arg, fd) (an mh_spool_writer:
** mh_intake_write streams a sendmail stdin through), with an empty
** environment and SIGPIPE at its default.  0 with *status = the program's
** exit code (128 + signal when killed); a negative code when it could not be
** run or the writer failed for another reason than the program closing its
** end (err says which). */
int mh_maildrop_submit(const char *const *argv, int (*writer)(void *arg, int fd), void *arg, int *status,
                       char *err);

#endif /* MH_DROP_PROGRAM_ONLY */
#endif
