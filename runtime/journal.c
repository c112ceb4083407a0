/*
** journal.c — the journal's native protocol (see journal.h).  One socket,
** opened on first use and kept (the address is given with each datagram, so
** a restarted journald is found again); a mutex orders its use by threads.
** An entry is built in a stack buffer, or one malloc'd to its exact size.
*/
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "error.h"
#include "journal.h"

#define DEFAULT_SOCKET "/run/systemd/journal/socket"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock_fd = -1;             /* the datagram socket, once opened */

/* secure_getenv: a setuid or setgid mailhook (a submission helper) never lets
** its caller point its log at a socket of the caller's choosing. */
const char *mh_journal_socket(void) {
  const char *p = secure_getenv("MAILHOOK_JOURNAL_SOCKET");
  return p && *p ? p : DEFAULT_SOCKET;
}

int mh_journal_valid_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9')) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
      return 0;
  return 1;
}

/* Appends len bytes at *at in buf (cap bytes); -1 when they do not fit. */
static int put(char *buf, size_t cap, size_t *at, const void *p, size_t len) {
  if (len > cap - *at) return -1;
  memcpy(buf + *at, p, len);
  *at += len;
  return 0;
}

int mh_journal_send(const mh_journal_field *fields, size_t n) {
  char small[4096], *buf = small;
  size_t at = 0, need = 0;
  int rc = 0;
  struct sockaddr_un sa;
  const char *path = mh_journal_socket();
  size_t plen = strlen(path);
  ssize_t sent;

  if (plen == 0 || plen >= sizeof sa.sun_path) return MH_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (!mh_journal_valid_name(fields[i].name) || !fields[i].value) return MH_EINVAL;
    need += strlen(fields[i].name) + 10 +
            (fields[i].len == (size_t)-1 ? strlen(fields[i].value) : fields[i].len);
    if (need > MH_JOURNAL_MAX) return MH_ETOOLONG;
  }
  if (need > sizeof small && !(buf = malloc(need))) return MH_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const char *v = fields[i].value;
    size_t vl = fields[i].len == (size_t)-1 ? strlen(v) : fields[i].len;
    size_t nl = strlen(fields[i].name);
    if (!memchr(v, '\n', vl)) {
      rc = put(buf, need, &at, fields[i].name, nl) || put(buf, need, &at, "=", 1) ||
           put(buf, need, &at, v, vl) || put(buf, need, &at, "\n", 1);
    } else {
      unsigned char le[8];
      uint64_t x = vl;
      for (int k = 0; k < 8; k++) { le[k] = (unsigned char)(x & 0xff); x >>= 8; }
      rc = put(buf, need, &at, fields[i].name, nl) || put(buf, need, &at, "\n", 1) ||
           put(buf, need, &at, le, 8) || put(buf, need, &at, v, vl) || put(buf, need, &at, "\n", 1);
    }
  }
  if (rc) rc = MH_ETOOLONG;            /* cannot happen: need counted every byte */
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, plen);
  pthread_mutex_lock(&lock);
  if (rc == 0 && sock_fd < 0 && (sock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) rc = -errno;
  if (rc == 0) {
    /* MSG_DONTWAIT: a journald that cannot keep up must not stop the event
       loop; the caller writes the line to stderr instead (-EAGAIN) */
    do sent = sendto(sock_fd, buf, at, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&sa,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1));
    while (sent < 0 && errno == EINTR);
    rc = sent < 0 ? -errno : 0;
  }
  pthread_mutex_unlock(&lock);
  if (buf != small) free(buf);
  return rc;
}
