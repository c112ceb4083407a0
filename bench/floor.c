/*
** bench/floor.c — the floor of a one-shot intake: the least a process can do
** to queue one message durably, as `mailhook enqueue` does it.  It reads the
** body from stdin, writes it (with a few header lines, ~the size of what
** enqueue writes) to DIR/tmp/NAME, fsyncs it, renames it to DIR/new/NAME and
** fsyncs DIR/new, then prints NAME.  No library beyond libc, no settings, no
** lock: what is left is process start, the disk's durable write and exit.
** bench/25-intake.sh compares `mailhook enqueue` with it (goal <= 1.3x).
**   floor DIR < BODY
*/
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char buf[65536], tmp[4096], dst[4096], name[64], newdir[4096];
  struct timespec ts;
  ssize_t n;
  int fd, dfd;
  if (argc != 2) { fprintf(stderr, "usage: floor DIR < BODY\n"); return 2; }
  snprintf(tmp, sizeof tmp, "%s/tmp", argv[1]);
  snprintf(newdir, sizeof newdir, "%s/new", argv[1]);
  mkdir(argv[1], 0700); mkdir(tmp, 0700); mkdir(newdir, 0700);
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(name, sizeof name, "%lld%09ld.%d", (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
  snprintf(tmp, sizeof tmp, "%s/tmp/%s", argv[1], name);
  snprintf(dst, sizeof dst, "%s/new/%s.eml", argv[1], name);
  if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) { perror(tmp); return 1; }
  static const char hdr[] =
    "X-Sender: pbx@example.com\r\nX-Receiver: ops@example.com\r\n"
    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nFrom: pbx@example.com\r\nTo: ops@example.com\r\n"
    "Subject: hi\r\nMessage-ID: <0000000000000000.000000000000@example.com>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  if (write(fd, hdr, sizeof hdr - 1) != (ssize_t)(sizeof hdr - 1)) { perror("write"); return 1; }
  while ((n = read(0, buf, sizeof buf)) > 0)
    if (write(fd, buf, (size_t)n) != n) { perror("write"); return 1; }
  if (n < 0 || fsync(fd) < 0 || close(fd) < 0) { perror(tmp); return 1; }
  if (rename(tmp, dst) < 0) { perror(dst); return 1; }
  if ((dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) < 0) { perror(newdir); return 1; }
  close(dfd);
  puts(name);
  return 0;
}
