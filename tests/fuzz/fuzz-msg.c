/*
** fuzz-msg.c — libFuzzer target for the message builder.
** The input is split at 0x1E bytes into fields (from, to, cc, bcc, subject,
** header name, header value, display name, text, html, attachment name,
** attachment type); whatever the builder accepts must give a message where:
**   - every line ends in CRLF, has at most 998 octets, and no bare CR/LF exists;
**   - the top-level header fields are exactly the ones the builder writes for
**     the fields it accepted, in order (no input can add a header line);
**   - no folded continuation line is whitespace only;
**   - one MIME part header per attachment, and the Bcc header never appears.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "msg.h"

enum { F_FROM, F_TO, F_CC, F_BCC, F_SUBJ, F_HNAME, F_HVAL, F_DNAME, F_TEXT, F_HTML, F_ANAME, F_ATYPE, NF };

static char att_path[64];

static void remove_att(void) { unlink(att_path); }

static void check(const char *s, size_t n) {
  size_t col = 0, line_start = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r') {
      if (i + 1 >= n || s[i + 1] != '\n') abort();          /* bare CR */
      i++;
      col = 0;
      line_start = i + 1;
    } else if (s[i] == '\n') {
      abort();                                              /* bare LF */
    } else if (++col > 998) {
      abort();                                              /* over-long line */
    }
  }
  (void)line_start;
  if (n && col) abort();                                    /* unterminated last line */
}

static char *dupz(const char *s, size_t n) {
  char *d = malloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *f[NF] = { 0 };
  size_t fl[NF] = { 0 };
  size_t k = 0, st = 0;
  for (size_t i = 0; i <= size && k < NF; i++) {
    if (i == size || data[i] == 0x1E) {
      f[k] = (const char *)data + st;
      fl[k] = i - st;
      k++;
      st = i + 1;
    }
  }
  if (!att_path[0]) {
    strcpy(att_path, "/tmp/fuzz-msg-att.XXXXXX");
    int fd = mkstemp(att_path);
    if (fd < 0 || write(fd, "attachment bytes\n\x00\xff", 20) != 20) abort();
    close(fd);
    atexit(remove_att);
  }

  mh_msg *m = mh_msg_new();
  const char *expect[16];
  int ne = 0, to = 0, cc = 0, subj = 0, hdr = 0, natt = 0;
  char *hname = NULL, *dname = NULL, *aname = NULL, *atype = NULL;

  /* From: fixed valid address with a fuzzed display name */
  dname = f[F_DNAME] ? dupz(f[F_DNAME], fl[F_DNAME]) : NULL;
  if (mh_msg_add_addr(m, MH_MSG_FROM, "sender@example.com", 18, dname) < 0)
    mh_msg_add_addr(m, MH_MSG_FROM, "sender@example.com", 18, NULL);
  if (f[F_FROM]) mh_msg_add_addr(m, MH_MSG_REPLY_TO, f[F_FROM], fl[F_FROM], NULL);
  if (f[F_TO] && mh_msg_add_addr(m, MH_MSG_TO, f[F_TO], fl[F_TO], NULL) == 0) to = 1;
  if (f[F_CC] && mh_msg_add_addr(m, MH_MSG_CC, f[F_CC], fl[F_CC], NULL) == 0) cc = 1;
  if (f[F_BCC]) mh_msg_add_addr(m, MH_MSG_BCC, f[F_BCC], fl[F_BCC], NULL);
  mh_msg_add_addr(m, MH_MSG_BCC, "hidden@example.com", 18, NULL);  /* always a recipient */
  if (f[F_SUBJ] && mh_msg_set_subject(m, f[F_SUBJ], fl[F_SUBJ]) == 0) subj = 1;
  if (f[F_HNAME]) {
    hname = dupz(f[F_HNAME], fl[F_HNAME]);
    if (mh_msg_add_header(m, hname, f[F_HVAL] ? f[F_HVAL] : "", f[F_HVAL] ? fl[F_HVAL] : 0) == 0) hdr = 1;
  }
  int text = f[F_TEXT] && mh_msg_set_text(m, f[F_TEXT], fl[F_TEXT]) == 0;
  int html = f[F_HTML] && mh_msg_set_html(m, f[F_HTML], fl[F_HTML]) == 0;
  if (f[F_ANAME]) {
    aname = dupz(f[F_ANAME], fl[F_ANAME]);
    atype = f[F_ATYPE] ? dupz(f[F_ATYPE], fl[F_ATYPE]) : NULL;
    if (mh_msg_add_attachment(m, att_path, atype, aname) == 0) natt++;
  }
  if (mh_msg_finish(m, 1700000000) != 0) abort();           /* From + a Bcc: always buildable */

  /* Reply-To only when that address list was accepted: learn it from the builder's
     own envelope? No: Reply-To is not in the envelope, so detect acceptance by
     re-adding to a scratch message. */
  int reply = 0;
  if (f[F_FROM]) {
    mh_msg *s = mh_msg_new();
    reply = mh_msg_add_addr(s, MH_MSG_REPLY_TO, f[F_FROM], fl[F_FROM], NULL) == 0;
    mh_msg_free(s);
  }
  expect[ne++] = "Date";
  expect[ne++] = "From";
  if (reply) expect[ne++] = "Reply-To";
  if (to || !cc) expect[ne++] = "To";                       /* list or undisclosed-recipients */
  if (cc) expect[ne++] = "Cc";
  if (subj) expect[ne++] = "Subject";
  expect[ne++] = "Message-ID";
  if (hdr) expect[ne++] = hname;
  expect[ne++] = "MIME-Version";
  expect[ne++] = "Content-Type";
  if (!natt && !(text && html)) expect[ne++] = "Content-Transfer-Encoding";

  char *out = NULL;
  size_t n = 0;
  if (mh_msg_bytes(m, &out, &n) != 0) abort();
  check(out, n);

  /* the header block: field names in order, continuation lines not blank */
  int got = 0;
  const char *p = out;
  for (;;) {
    const char *e = strstr(p, "\r\n");
    if (!e) abort();
    if (e == p) break;                                      /* end of the header block */
    if (*p == ' ' || *p == '\t') {
      const char *q = p;
      while (q < e && (*q == ' ' || *q == '\t')) q++;
      if (q == e) abort();                                  /* whitespace-only continuation */
      if (got == 0) abort();
    } else {
      const char *colon = memchr(p, ':', (size_t)(e - p));
      if (!colon || got >= ne) abort();                     /* an extra header line */
      size_t nl = (size_t)(colon - p);
      if (strlen(expect[got]) != nl || memcmp(expect[got], p, nl)) abort();
      if (nl == 3 && !memcmp(p, "Bcc", 3)) abort();
      got++;
    }
    p = e + 2;
  }
  if (got != ne) abort();                                   /* a header went missing */

  /* with attachments: the mixed boundary opens 1 + natt parts (bodies cannot
     contain the random boundary, so this counts real parts only) */
  if (natt) {
    static const char ct[] = "multipart/mixed;\r\n boundary=\"";
    const char *b = strstr(out, ct);
    if (!b) abort();
    b += sizeof ct - 1;
    const char *be = strchr(b, '"');
    char delim[128];
    int dl = snprintf(delim, sizeof delim, "\r\n--%.*s\r\n", (int)(be - b), b);
    int parts = 0;
    for (const char *q = out; (q = strstr(q, delim)); q += dl) parts++;
    if (parts != 1 + natt) abort();
  }

  free(out);
  free(hname); free(dname); free(aname); free(atype);
  mh_msg_free(m);
  return 0;
}
