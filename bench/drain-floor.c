/*
** bench/drain-floor.c — the floor of a durable drain's spool work: the least
** a deliverer can do per message with its files, whatever it sends them
** with.  For every *.eml in DIR/pickup (oldest name first, as queued): the
** open (O_NOFOLLOW | O_NONBLOCK | O_NOATIME, as the deliverer's), one read
** of up to 8 KiB (a 1 KB message whole: a short read of a file renamed into
** place is all of it, so no fstat: the deliverer's load does the same), one
** 17-byte append to DIR/floor-journal (the delivered record, made before the
** next message's data may leave) and the close.  No network, no Lua, no parsing; the
** files are left in place.  bench/50-delivery.sh prints its time per message
** next to the engine alone and the drain: what a durable drain must spend on
** top of the engine before any logic of its own.
**   drain-floor DIR   -> prints "N MICROSECONDS_PER_MESSAGE"
*/
#define _GNU_SOURCE   /* O_NOATIME */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  char path[4096], buf[8192], rec[17];
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct timespec t0, t1;
  struct dirent *de;
  DIR *d;
  int dfd, jfd;
  if (argc != 2) { fprintf(stderr, "usage: drain-floor DIR\n"); return 2; }
  snprintf(path, sizeof path, "%s/pickup", argv[1]);
  if (!(d = opendir(path))) { perror(path); return 1; }
  dfd = dirfd(d);
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 5 || strcmp(de->d_name + l - 4, ".eml")) continue;
    if (n == cap && !(names = realloc(names, (cap = cap ? cap * 2 : 1024) * sizeof *names))) return 1;
    if (!(names[n++] = strdup(de->d_name))) return 1;
  }
  qsort(names, n, sizeof *names, by_name);
  snprintf(path, sizeof path, "%s/floor-journal", argv[1]);
  if ((jfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) { perror(path); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < n; i++) {
    int fd = openat(dfd, names[i], O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_NOATIME | O_CLOEXEC);
    if (fd < 0) { perror(names[i]); return 1; }
    if (pread(fd, buf, sizeof buf, 0) < 0) return 1;
    memcpy(rec, names[i], 16);
    rec[16] = '\n';
    if (write(jfd, rec, sizeof rec) != (ssize_t)sizeof rec) return 1;
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  close(jfd);
  unlink(path);
  printf("%zu %.2f\n", n, n ? ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / n : 0.0);
  return 0;
}
