/*
** spool-helpers.h — what the spool's unit tests share (test-spool.c,
** test-spool-dsn.c, test-spool-uid.c): a writer that puts a string into a
** message file, and a file read whole.  Header-only, like tap.h.
*/
#ifndef MH_TEST_SPOOL_HELPERS_H
#define MH_TEST_SPOOL_HELPERS_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* An mh_spool_writer: the NUL-terminated string arg, whole. */
static inline int write_bytes(void *arg, int fd) {
  const char *s = arg;
  return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

/* The file at path (its first 64 KiB), NUL-terminated in a static buffer; NULL when it cannot be read. */
static inline char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  static char buf[65536];
  size_t n;
  if (!f) return NULL;
  n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

#endif
