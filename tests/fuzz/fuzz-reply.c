/*
** fuzz-reply.c — the reply parser and EHLO capability parser, and the session
** fed arbitrary server bytes: never a crash, never a line or reply over the
** bounds, a continuation never changes the code, and after a STARTTLS 220
** followed by any byte the session never asks for a handshake.  With CHUNKING
** and PIPELINING, a message and one queued behind it (BDAT), then a streamed
** one, answered by any bytes: never a crash, never more than one io.done each.
*/
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "smtp.h"
#include "error.h"

typedef struct { size_t written; int done; int starttls; } rec;
static void w_cb(void *ud, const char *b, size_t n) { ((rec *)ud)->written += n; (void)b; }
static void t_cb(void *ud, uint64_t ms) { (void)ud; (void)ms; }
static void s_cb(void *ud) { ((rec *)ud)->starttls++; }
static void d_cb(void *ud, int rc) { ((rec *)ud)->done++; (void)rc; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 1. line by line through the reply parser */
  mh_smtp_reply r;
  mh_smtp_caps caps;
  size_t i = 0;
  int code = 0;
  mh_smtp_reply_reset(&r);
  memset(&caps, 0, sizeof caps);
  while (i < size) {
    const uint8_t *nl = memchr(data + i, '\n', size - i);
    size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
    int rc = mh_smtp_reply_line(&r, (const char *)data + i, n);
    if (rc < 0) {
      mh_smtp_reply_reset(&r);
      code = 0;
    } else {
      assert(n <= MH_SMTP_LINE_MAX);
      assert(r.nlines <= MH_SMTP_LINES_MAX);
      assert(r.code >= 200 && r.code <= 599);
      if (code) assert(r.code == code);   /* continuation lines keep the code */
      code = rc == 1 ? 0 : r.code;
      assert(r.len < sizeof r.text);
      mh_smtp_caps_line(&caps, r.first);
      assert(strlen(caps.list) < sizeof caps.list);
    }
    i += n + 1;
  }

  /* 2. the whole input as a server's bytes, after a STARTTLS (required) */
  rec rr = { 0 };
  mh_smtp_params p = { .helo = "fuzz", .starttls = 2 };
  mh_smtp_io io = { &rr, w_cb, t_cb, s_cb, d_cb, NULL };
  mh_smtp *s = mh_smtp_new(&p, &io);
  mh_smtp_connected(s, 0);
  /* one reply per read: a reply that comes before the command it answers was
  ** written is a protocol violation (smtp.c, flush) */
  static const char *const pre[] = { "220 x\r\n", "250-x\r\n250 STARTTLS\r\n", "220 go\r\n" };
  for (int k = 0; k < 3; k++) mh_smtp_data(s, pre[k], strlen(pre[k]));
  assert(rr.starttls == 1);
  if (size > 0) {
    mh_smtp_data(s, (const char *)data, size);
    /* bytes during the handshake: closed, never handed on */
    assert(mh_smtp_get_state(s) == MH_SMTP_CLOSED);
  }
  mh_smtp_free(s);

  /* 3. the same bytes to a plain session at any state, split in two */
  memset(&rr, 0, sizeof rr);
  p.starttls = 0;
  s = mh_smtp_new(&p, &io);
  mh_smtp_connected(s, 0);
  size_t half = size / 2;
  mh_smtp_data(s, (const char *)data, half);
  if (mh_smtp_get_state(s) == MH_SMTP_READY) {
    const char *to[] = { "b@x" };
    mh_smtp_send(s, "a@x", to, 1, "hi\r\n", 4);
  }
  mh_smtp_data(s, (const char *)data + half, size - half);
  assert(rr.done <= 2);
  mh_smtp_free(s);

  /* 4. CHUNKING: BDAT in the group, a second message queued behind it (its
  ** group behind the LAST, opened by RSET), then the server's bytes */
  for (int streamed = 0; streamed < 2; streamed++) {
    const char *to[] = { "b@x", "c@x" };
    memset(&rr, 0, sizeof rr);
    s = mh_smtp_new(&p, &io);
    mh_smtp_connected(s, 0);
    static const char *const hello[] = { "220 x\r\n", "250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n" };
    for (int k = 0; k < 2; k++) mh_smtp_data(s, hello[k], strlen(hello[k]));
    assert(mh_smtp_get_caps(s)->flags & MH_SMTP_CAP_CHUNKING);
    rr.done = 0;   /* the opening's */
    if (streamed) mh_smtp_send_stream(s, "a@x", to, 2, 9, 0, NULL);
    else mh_smtp_send(s, "a@x", to, 2, ".hi\r\n", 5);
    mh_smtp_send(s, "a@x", to, 1, "two\r\n", 5);
    mh_smtp_data(s, (const char *)data, half);
    if (streamed && mh_smtp_get_state(s) == MH_SMTP_BODY) mh_smtp_more(s, "piece\r\n", 7, 0);
    mh_smtp_release(s);
    mh_smtp_data(s, (const char *)data + half, size - half);
    assert(rr.done <= 2);
    mh_smtp_free(s);
  }
  return 0;
}
