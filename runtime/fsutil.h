/*
** fsutil.h — small durable-file helpers: replace a file atomically and
** durably (temporary file, fsync, rename, fsync of the folder).  Used by the
** settings writer; blocking calls, meant for small files written rarely.
*/
#ifndef MH_FSUTIL_H
#define MH_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Replaces path with exactly len bytes of data, durably:
**   a temporary ".NAME.XXXXXX" in the same folder (O_CREAT|O_EXCL, mode),
**   write all, fsync, close, rename over path, fsync the folder.
** Readers see either the old file or the new one, never a mix.  On any failure
** the temporary file is removed and path is untouched (unless the failure was
** the final folder fsync, after the rename: then the new content is in place
** but maybe not yet durable, and the error is still reported).
** Returns 0 or a negative errno. */
int mh_fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* write(2) all of len bytes, retrying short writes and EINTR; 0 or -errno on the
** first error (the caller never retries on that descriptor). */
int mh_fsutil_write_all(int fd, const void *buf, size_t len);

/* fsync the folder that holds path (its dirname); 0 or a negative errno. */
int mh_fsutil_fsync_parent(const char *path);

#endif
