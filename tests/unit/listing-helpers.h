/*
** listing-helpers.h — what the tests of the deliverer's listing share
** (test-spool-listing.c, test-spool-listing-races.c; each #includes
** runtime/spool.c first): a spool per test under base, the deliverer's scan,
** files written by hand, a message that one recipient took before it failed,
** and the retry race's folder (a scan long enough to be raced).
*/
#ifndef MH_TEST_LISTING_HELPERS_H
#define MH_TEST_LISTING_HELPERS_H

#include <sys/stat.h>
#include "tap.h"
#include "spool-helpers.h"

static char base[256], root[512];

/* A set-up step failed: nothing after it would mean anything. */
static void bail_out(const char *what, const char *err) {
  printf("Bail out! %s: %s\n", what, err);
  exit(1);
}

/* A fresh spool base/NAME (root names it), opened. */
static void fresh(const char *name, mh_spool **sp) {
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "%s/%s", base, name);
  mkdir(root, 0700);
  if (mh_spool_open(root, sp, err)) bail_out(root, err);
}

/* The deliverer's scan (its listing published); how many ids it returned. */
static long scan(mh_spool *sp) {
  char **ids, err[MH_SPOOL_ERRLEN];
  long n = mh_spool_scan(sp, 0, &ids, NULL, err);
  for (long i = 0; i < n; i++) free(ids[i]);
  if (n >= 0) free(ids);
  else diag("scan: %s", err);
  return n;
}

/* What a load of id would do now: 1 when the listing knows it, with *state
** whether its sidecar would be read (the scan, the touches, DIR/sidecars). */
static int knows(mh_spool *sp, const char *id, int *state) {
  char lx[SIDECARS_REC];
  int lx_ok, known = listing_lookup(sp, id, state, lx, &lx_ok, NULL);
  if (known && !*state && listing_stale(sp, lx, lx_ok)) *state = 1;
  return known;
}

static void put_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f)) bail_out("write", path);
}

/* A canonical message to d@e.f and g@h.i, and the sidecar it has in failed/
** once d@e.f took it and g@h.i refused it for good. */
#define MSG "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\nX-Receiver: g@h.i\r\nX-Submitter-Uid: 0\r\n" \
            "Subject: x\r\n\r\nbody\r\n"
#define FAILED_STATE "attempts 4\nnext_attempt 0\nlast_reply 550 no\ndone d@e.f\n" \
                     "refused g@h.i\t550 no\nreason rejected\nfailed_at 1\n"

/* Is rcpt among e's pending recipients (what the deliverer would send to)? */
static int pending(const mh_spool_entry *e, const char *rcpt) {
  int in = 0;
  for (size_t i = 0; i < e->env.nto; i++) in |= !strcmp(e->env.to[i], rcpt);
  for (size_t j = 0; j < e->state.ndone; j++) if (!strcmp(e->state.done[j], rcpt)) return 0;
  return in;
}

/* The retry race's folder in root: filler messages in pickup/ (names only:
** the scan never opens them; 2,400 take several getdents), nfailed in failed/
** with FAILED_STATE (their ids into fids), and 8 drop-ins, adopted in the
** middle of the readdir (test point "adopt-checked", where a test runs the
** retries). */
static inline void race_files(int filler, char fids[][MH_SPOOL_IDLEN], int nfailed) {
  char p[2048];
  uint64_t t = (uint64_t)now_us();
  for (int i = 0; i < filler; i++) {
    char id[17];
    hex16(id, t + (uint64_t)i); id[16] = 0;
    snprintf(p, sizeof p, "%s/pickup/%s.eml", root, id);
    put_file(p, MSG);
  }
  for (int i = 0; i < nfailed; i++) {
    hex16(fids[i], t + (uint64_t)filler + (uint64_t)i); fids[i][16] = 0;
    snprintf(p, sizeof p, "%s/failed/%s.eml", root, fids[i]); put_file(p, MSG);
    snprintf(p, sizeof p, "%s/failed/%s.state", root, fids[i]); put_file(p, FAILED_STATE);
  }
  for (int i = 0; i < 8; i++) {
    snprintf(p, sizeof p, "%s/pickup/drop-%d.eml", root, i);
    put_file(p, "From: a@b.c\r\nTo: d@e.f\r\nSubject: y\r\n\r\nhi\r\n");
  }
}

#endif
