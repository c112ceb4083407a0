/*
** notify.c — systemd's notification protocol over a Unix datagram socket
** (see notify.h).  State kept: the socket address and the watchdog interval,
** taken from the environment once (the environment is then cleaned).
*/
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include "error.h"
#include "notify.h"

static int inited;                   /* the environment was read */
static struct sockaddr_un addr;      /* where datagrams go (sun_path[0] = 0: abstract) */
static socklen_t addr_len;           /* 0: no manager */
static int addr_err;                 /* MH_EINVAL when $NOTIFY_SOCKET was set but unusable */
static uint64_t watchdog_usec;       /* 0: no watchdog for this process */
static char sock_name[120];          /* $NOTIFY_SOCKET as given (cut), for errors */

const char *mh_notify_socket(void) { return sock_name; }

/* Parses a decimal unsigned integer that fills the whole string; 0 on success. */
static int parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  if (!s || !*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

int mh_notify_init(void) {
  const char *sock, *usec, *pid;
  uint64_t u, p;
  if (inited) return addr_len ? 1 : addr_err ? addr_err : 0;
  inited = 1;
  sock = getenv("NOTIFY_SOCKET");
  if (sock) snprintf(sock_name, sizeof sock_name, "%s", sock);
  if (sock && *sock) {
    size_t n = strlen(sock);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    /* "/path" or "@abstract"; anything else (a relative path, "vsock:...") is
       refused rather than guessed at.  An abstract name is counted exactly: its
       bytes after the NUL are the name, no terminator */
    if ((sock[0] != '/' && sock[0] != '@') || n < 2 || n >= sizeof addr.sun_path) {
      addr_err = MH_EINVAL;
    } else {
      memcpy(addr.sun_path, sock, n);
      if (sock[0] == '@') addr.sun_path[0] = 0;
      addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (sock[0] == '/'));
    }
  }
  usec = getenv("WATCHDOG_USEC");
  pid = getenv("WATCHDOG_PID");
  if (addr_len && parse_u64(usec, &u) == 0 && u > 0 &&
      (!pid || !*pid || (parse_u64(pid, &p) == 0 && p == (uint64_t)getpid())))
    watchdog_usec = u;
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  return addr_len ? 1 : addr_err ? addr_err : 0;
}

int mh_notify_send(const char *state) {
  int rc = mh_notify_init(), fd;
  ssize_t sent;
  if (rc <= 0) return rc;
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* a datagram is whole or nothing; MSG_NOSIGNAL: a manager gone away must
     not kill the service with SIGPIPE */
  do sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&addr, addr_len);
  while (sent < 0 && errno == EINTR);
  rc = sent < 0 ? -errno : 1;
  close(fd);
  return rc;
}

uint64_t mh_notify_watchdog_usec(void) {
  mh_notify_init();
  return watchdog_usec;
}
