/*
** test-spool.c — the spool core without Lua: id ordering (also when the clock
** or the seq file go backwards), envelope parsing, the commit protocol's files,
** sidecar state, drop-in adoption, corrupt files, the tmp/ sweep and the lock.
*/
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tap.h"
#include "error.h"
#include "spool.h"
#include "spool-helpers.h"
#include "eol.h"

static char root[256];


static int count(const char *sub) {
  char path[512];
  DIR *d;
  struct dirent *de;
  int n = 0;
  snprintf(path, sizeof path, "%s/%s", root, sub);
  if (!(d = opendir(path))) return -1;
  while ((de = readdir(d))) if (de->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static void put_file(const char *rel, const char *content) {
  char path[512];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", root, rel);
  f = fopen(path, "wb");
  fputs(content, f);
  fclose(f);
}

static void test_ids(mh_spool *sp) {
  char a[MH_SPOOL_IDLEN], b[MH_SPOOL_IDLEN], c[MH_SPOOL_IDLEN];
  int sorted = 1;
  ok(mh_spool_new_id(sp, a, NULL) == 0 && mh_spool_is_id(a), "an id is 16 hex digits (%s)", a);
  for (int i = 0; i < 1000; i++) {
    if (mh_spool_new_id(sp, b, NULL)) { sorted = 0; break; }
    if (strcmp(a, b) >= 0) sorted = 0;
    memcpy(a, b, sizeof a);
  }
  ok(sorted, "1000 ids in a row sort strictly increasing");
  /* the clock "steps back": seq holds a time far ahead; ids keep increasing */
  put_file("seq", "00ff000000000000\n");
  ok(mh_spool_new_id(sp, c, NULL) == 0 && strcmp(c, "00ff000000000000") > 0,
     "after a backward clock step ids still sort after the last one (%s)", c);
  ok(mh_spool_raise_seq(sp, "0100000000000000", NULL) == 0 && mh_spool_new_id(sp, c, NULL) == 0 &&
     strcmp(c, "0100000000000000") > 0, "raise_seq lifts the clock above a seen id");
  /* a seq at the end of the range (garbage, a hostile write): no overflow, ids still increase */
  put_file("seq", "7fffffffffffffff\n");
  ok(mh_spool_new_id(sp, a, NULL) == 0 && mh_spool_new_id(sp, b, NULL) == 0 && strcmp(a, b) < 0 && a[0] == '0',
     "a seq at the end of the signed range: the clock again, ids increase (%s, %s)", a, b);
  put_file("seq", "ffffffffffffffff\n");
  ok(mh_spool_new_id(sp, a, NULL) == 0 && mh_spool_new_id(sp, b, NULL) == 0 && strcmp(a, b) < 0 && a[0] == '0',
     "a seq past it: the same (%s, %s)", a, b);
  is_int(mh_spool_raise_seq(sp, "ffffffffffffffff", NULL), MH_EINVAL, "a drop-in named past any id does not move the clock");
  ok(mh_spool_new_id(sp, c, NULL) == 0 && strcmp(c, b) > 0, "ids go on after it (%s)", c);
  /* two processes share the clock through the flocked seq file */
  {
    int fds[2];
    char child[MH_SPOOL_IDLEN] = "";
    pid_t pid = -1;
    if (pipe(fds) == 0 && (pid = fork()) == 0) {
      char id[MH_SPOOL_IDLEN];
      for (int i = 0; i < 200; i++) mh_spool_new_id(sp, id, NULL);
      if (write(fds[1], id, sizeof id) < 0) _exit(1);
      _exit(0);
    }
    for (int i = 0; i < 200; i++) mh_spool_new_id(sp, a, NULL);
    waitpid(pid, NULL, 0);
    if (read(fds[0], child, sizeof child) < 0) child[0] = '\0';
    close(fds[0]); close(fds[1]);
    mh_spool_new_id(sp, b, NULL);
    ok(strcmp(b, a) > 0 && strcmp(b, child) > 0, "ids from two processes never repeat or go back");
  }
}

/* mh_spool_is_id: exactly 16 lowercase hex digits, whatever is wrong and where */
static void test_is_id(void) {
  char b[32];
  ok(mh_spool_is_id("0123456789abcdef"), "16 lowercase hex digits");
  ok(!mh_spool_is_id(""), "empty");
  ok(!mh_spool_is_id("0123456789abcde"), "15 digits");
  ok(!mh_spool_is_id("0123456789abcdef0"), "17 digits");
  ok(!mh_spool_is_id("0123456789ABCDEF"), "uppercase");
  for (int i = 0; i < 16; i++) {
    const char bad[] = { 'g', 'G', '/', '.', ' ', '\x80' };
    int all = 1;
    for (size_t k = 0; k < sizeof bad; k++) {
      memcpy(b, "0123456789abcdef", 17);
      b[i] = bad[k];
      all &= !mh_spool_is_id(b);
    }
    ok(all, "a non-digit at position %d", i);
  }
  for (int i = 0; i < 16; i++) {   /* a string that ends early is never read past its end */
    char *p = (char *)malloc((size_t)i + 1);
    memset(p, 'a', (size_t)i);
    p[i] = '\0';
    ok(!mh_spool_is_id(p), "%d digits, in a buffer of exactly that size", i);
    free(p);
  }
}

/* A drop-in's header -> its recipients and the items left out (rcpt: why),
** for group syntax and words that touch: the same as `sendmail -t`
** (tests/lua/test-submit.lua has these rows too), never a wrong recipient.
** An address is no group name (RFC 5322: display-name is a phrase): a ':'
** after one leaves the whole item out, never the mailbox after it; what
** touches a word with nothing between is part of it (ab"q"@x is no "q"@x). */
static void test_dropin_table(void) {
  static const struct { const char *hdr, *to, *left; } rows[] = {
    /* header, recipients ("" none: refused, err names the item), a left-out item and its why */
    { "To: e@ex.org\r\n\t:\r\n d@ex.org", "", "'e@ex.org\\x09: d@ex.org': a ':' after an address" },
    { "To: c@ex.org c@ex.org\r :d@exa", "", "'c@ex.org c@ex.org :d@exa': a ':' after an address" },
    { "To: a@ex.org:b@ex.org, c@ex.org", "c@ex.org", "a@ex.org:b@ex.org: a ':' after an address" },
    { "To: Name <a@ex.org>: b@ex.org", "", "'Name <a@ex.org>: b@ex.org': a ':' after an address" },
    { "To: team: a@ex.org: b@ex.org; c@ex.org", "c@ex.org", "a@ex.org: b@ex.org: a ':' after an address" },
    { "To: @\"a b\":\r\n c@ex.org;", "", "'@\"a b\": c@ex.org': a ':' after an address" },
    { "To: @a,@b:c@ex.org, d@ex.org", "d@ex.org", "@b:c@ex.org: a ':' after an address" },
    { "To: \"a@b\": c@ex.org;", "c@ex.org", "" },                   /* a quoted '@': a phrase's */
    { "To: team: a@ex.org, b@ex.org;, c@ex.org", "a@ex.org,b@ex.org,c@ex.org", "" },
    { "To: ab\"q\"@ex.org", "", "'ab\"q\"@ex.org'" },
    { "To: c@ex.org\"a b\"d@ex.org, e@ex.org", "e@ex.org", "c@ex.org\"a b\"d@ex.org: " },
    { "To: a>b@ex.org", "", "'a>b@ex.org'" },                         /* never ab@ex.org */
    { "To: a)b@ex.org", "", "'a)b@ex.org'" },
    { "To: [192.0.2.1]b@ex.org", "", "'[192.0.2.1]b@ex.org'" },
    /* a word whose '@' touches another is no address: it goes with the one before */
    { "To: d@exa (x\r\n y)mple.org@@\"a b\", e@ex.org", "e@ex.org", "d@exa mple.org@@\"a b\": a line break" },
    /* two angle addresses, or one and an address, the comma between missing:
    ** each a recipient (before, the second took the first one's place) */
    { "To: <a@ex.org> <b@ex.org>", "a@ex.org,b@ex.org", "" },
    { "To: Ann <a@ex.org> Bob <b@ex.org>", "a@ex.org,b@ex.org", "" },
    { "To: <a@ex.org> b@ex.org", "a@ex.org,b@ex.org", "" },
    { "To: <a@ex.org>\r\n <b@ex.org>", "a@ex.org,b@ex.org", "" },
    { "To: <a@ex.org> \"Bob\" <b@ex.org>", "a@ex.org,b@ex.org", "" },
    { "To: <a@ex.org> \"b\"@ex.org", "a@ex.org,\"b\"@ex.org", "" },
    { "To: <a@ex.org> (Bob) <b@ex.org>", "a@ex.org,b@ex.org", "" },
    { "To: team: <a@ex.org> <b@ex.org>;", "a@ex.org,b@ex.org", "" },
    /* words after an angle address that are no address: an item left out, named */
    { "To: <a@ex.org> root", "a@ex.org", "root: not an address" },
    { "To: <a@ex.org> c@exa\r\n mple.org", "a@ex.org", "c@exa mple.org: a line break" },
    { "To: <a@ex.org> b@ex.org Bob <c@ex.org>", "a@ex.org,c@ex.org", "b@ex.org Bob: not an address" },
    { "To: <a@ex.org> <b@ex.org>: c@ex.org", "a@ex.org", "<b@ex.org>: c@ex.org: a ':' after an address" },
    { "To: <a@ex.org> team: b@ex.org;", "", "'<a@ex.org> team: b@ex.org': a ':' after an address" },
    /* a '<' inside <...> is the address's: never c@ex.org, a piece of it */
    { "To: <mple.org<c@ex.org>, d@ex.org", "d@ex.org", "mple.org<c@ex.org: " },
    /* an item left out is kept as `sendmail -t` keeps it (submit.printable):
    ** a control byte as \xNN, a backslash as \x5C, so a "\x1b" typed and an
    ** ESC byte never read the same; an item quoted in an error (all left out)
    ** is escaped once, never \x5Cx5C nor \x5Cx09 */
    { "To: Ops\\x1bName, Esc\x1b" "Name, d@ex.org", "d@ex.org", "Ops\\x5Cx1bName: no @ / Esc\\x1BName: no @" },
    { "To: Ops\\x1bName, Esc\x1b" "Name\r\nCc: e@ex.org\r\n\t:\r\n d@ex.org", "",
      "no usable recipient: 'Ops\\x5Cx1bName': no @; 'Esc\\x1BName': no @; 'e@ex.org\\x09: d@ex.org': a ':'" },
  };
  for (size_t k = 0; k < sizeof rows / sizeof *rows; k++) {
    char m[512], err[MH_SPOOL_ERRLEN] = "", to[512] = "", left[1024] = "", h[256];
    size_t hl = 0;
    mh_env env;
    for (const char *c = rows[k].hdr; *c && hl + 5 < sizeof h; c++)   /* the header shown: <CR> <LF> <TAB> <ESC> */
      hl += (size_t)snprintf(h + hl, sizeof h - hl, "%s", *c == '\r' ? "<CR>" : *c == '\n' ? "<LF>" : *c == '\t' ? "<TAB>" : *c == 033 ? "<ESC>" : (char[]){ *c, 0 });
    snprintf(m, sizeof m, "%s\r\nSubject: s\r\n\r\nbody\r\n", rows[k].hdr);
    int rc = mh__spool_dropin_env(m, strlen(m), &env, err);
    if (rc == 0) {
      for (size_t i = 0; i < env.nto; i++)
        snprintf(to + strlen(to), sizeof to - strlen(to), "%s%s", i ? "," : "", env.to[i]);
      for (size_t i = 0; i < env.nbad; i++)
        snprintf(left + strlen(left), sizeof left - strlen(left), "%s%s: %s", i ? " / " : "", env.bad[i].rcpt,
                 env.bad[i].reply);
      mh_env_free(&env);
    } else {
      snprintf(left, sizeof left, "%s", err);
    }
    if (!*rows[k].to) {
      ok(rc != 0 && strstr(left, rows[k].left), "drop-in %s: no recipient (%s)", h, rc ? left : to);
    } else {
      is_str(to, rows[k].to, "drop-in %s: recipients", h);
      ok(*rows[k].left ? strstr(left, rows[k].left) != NULL : !*left, "drop-in %s: left out: '%s'", h, left);
    }
  }
}

static void test_parse(void) {
  mh_env env;
  char err[MH_SPOOL_ERRLEN];
  const char *m1 = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Receiver: <w@y.z>\r\nFrom: a@b.c\r\n\r\nhi\r\n";
  is_int(mh_env_parse(m1, strlen(m1), 1, &env, err), 0, "canonical file parses");
  ok(env.canonical && !strcmp(env.from, "a@b.c") && env.nto == 2 && !strcmp(env.to[1], "w@y.z"),
     "X-Sender / X-Receiver give the envelope");
  is_int(env.offset, strlen("X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Receiver: <w@y.z>\r\n"),
         "offset is the first byte after the X- lines");
  mh_env_free(&env);

  const char *m2 = "From: \"Doe, John\" <john@ex.org>\nTo: Ann <ann@ex.org>, bob@ex.org (Bob)\n"
                   "Cc: team: c1@ex.org, c2@ex.org;, \"q,x\"@ex.org\nBcc: hidden@ex.org\n"
                   "Subject: x\n\nbody\n";
  is_int(mh_env_parse(m2, strlen(m2), 1, &env, err), 0, "From/To/Cc/Bcc message parses");
  ok(!env.canonical && !strcmp(env.from, "john@ex.org"), "sender from From (display name with comma)");
  ok(env.nto == 6 && !strcmp(env.to[0], "ann@ex.org") && !strcmp(env.to[1], "bob@ex.org") &&
     !strcmp(env.to[2], "c1@ex.org") && !strcmp(env.to[3], "c2@ex.org") &&
     !strcmp(env.to[4], "\"q,x\"@ex.org") && !strcmp(env.to[5], "hidden@ex.org"),
     "recipients: names, comments, groups, quoted local parts, Bcc");
  mh_env_free(&env);

  const char *m3 = "To: a@b.c,\n a2@b.c\nSubject: folded\n\n";
  ok(mh_env_parse(m3, strlen(m3), 1, &env, err) == 0 && env.nto == 2, "folded To header");
  mh_env_free(&env);

  /* a drop-in's header folded inside an address, or with CFWS around its '@'
  ** and dots: the normalised address, or the item left out whole (never the
  ** piece before or after the break: c@exa, c@x) -- tests/integration/
  ** intake-dropin-folded.sh has the table, compared with sendmail -t */
  const char *m4 = "To: <b @ex.org>, c@ex . org, d@exa\r\n mple.org, ab\r\n e@ex.org,\r\n"
                   " f@exa(x)mple.org, g(y\r\n z)@ex.org\r\n\r\n";
  ok(mh__spool_dropin_env(m4, strlen(m4), &env, err) == 0 && env.nto == 3 &&
     !strcmp(env.to[0], "b@ex.org") && !strcmp(env.to[1], "c@ex.org") && !strcmp(env.to[2], "g@ex.org") &&
     env.nbad == 3 && !strcmp(env.bad[0].rcpt, "d@exa mple.org") && strstr(env.bad[0].reply, "a line break") &&
     !strcmp(env.bad[1].rcpt, "ab e@ex.org") && !strcmp(env.bad[2].rcpt, "f@exa mple.org") &&
     strstr(env.bad[2].reply, "a comment"),
     "drop-in: CFWS taken out of addresses; an item a fold or a comment cut is left out whole");
  mh_env_free(&env);

  /* a bare CR is a line end here as CRLF is (hdr_line, eol.h): "ab<CR> c@x"
  ** is a fold inside an address as "ab<CRLF> c@x" is (sendmail -t reads its
  ** stdin's bare CR as a line end too), never sent to c@x */
  const char *m5 = "To: ab\r c@ex.org, d@ex.org, e@exa\r mple.org\r\n\r\n";
  ok(mh__spool_dropin_env(m5, strlen(m5), &env, err) == 0 && env.nto == 1 && !strcmp(env.to[0], "d@ex.org") &&
     env.nbad == 2 && !strcmp(env.bad[0].rcpt, "ab c@ex.org") && strstr(env.bad[0].reply, "a line break") &&
     !strcmp(env.bad[1].rcpt, "e@exa mple.org") && strstr(env.bad[1].reply, "a line break"),
     "drop-in: a fold after a bare CR inside an item leaves it out whole, as after a CRLF");
  mh_env_free(&env);

  /* a quoted string with a comment stuck between it and an address is one
  ** item ("q"c@x, as sendmail -t reads it: refused there), never c@x; with a
  ** blank or a fold between them the quoted string is a display name */
  const char *m6 = "To: \"q\"(x)c@ex.org, \"r\"(y\r\n z)d@ex.org, \"s\" (w)e@ex.org, \"t\"\r\n f@ex.org\r\n\r\n";
  ok(mh__spool_dropin_env(m6, strlen(m6), &env, err) == 0 && env.nto == 2 && !strcmp(env.to[0], "e@ex.org") &&
     !strcmp(env.to[1], "f@ex.org") && env.nbad == 4 && !strcmp(env.bad[0].rcpt, "\"q\" c@ex.org") &&
     strstr(env.bad[0].reply, "a comment") && !strcmp(env.bad[1].rcpt, "\"r\" d@ex.org") &&
     strstr(env.bad[1].reply, "a line break"),
     "drop-in: a quoted string, a stuck comment, an address: left out whole, never the address");
  mh_env_free(&env);

  test_dropin_table();

  const char *bad[] = {
    "this is not a header\n\nbody\n",
    "To: a@b.c\nbroken line\n\nbody\n",
    "Subject: no recipients\n\nbody\n",
    "To: not an address\n\n",
    "To: <>\n\n",
    "X-Sender: a@b.c\nSubject: x\n\n",
    "\nbody only\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = mh_env_parse(bad[i], strlen(bad[i]), 1, &env, err);
    ok(rc == MH_ECORRUPT, "malformed #%zu refused: %s", i, rc ? err : "(accepted)");
  }
  const char *part = "To: a@b.c\nSubject: x";
  is_int(mh_env_parse(part, strlen(part), 0, &env, err), 1, "an incomplete header block asks for more");
  /* lines end at CRLF, a bare CR or a bare LF (runtime/eol.h), as the data writer sends them */
  const char *cut = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nSubject: s\r\n\r\nbody\r\nmore\r";
  ok(mh_env_parse(cut, strlen(cut), 0, &env, err) == 0 && env.nto == 1,
     "a buffer cut after a CR in the body: the header block is complete");
  mh_env_free(&env);
  const char *cr_end = "To: a@b.c\r\nSubject: x\r\n\r";
  is_int(mh_env_parse(cr_end, strlen(cr_end), 0, &env, err), 1, "a CR at the very end: the next byte decides");
  const char *bare = "From: a@b.c\rTo: x@y.z\rSubject: hi\rBcc: hidden@y.z\r\rbody";
  ok(mh_env_parse(bare, strlen(bare), 1, &env, err) == 0 && env.nto == 2 && !strcmp(env.to[1], "hidden@y.z"),
     "bare CRs end the header lines: the Bcc is a field of its own (issue 10.4)");
  mh_env_free(&env);
  {   /* a repeated X-Receiver is dropped (the copy the parser made, handed over: freed, no leak under asan) */
    const char *dup = "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Receiver: w@y.z NOTIFY=NEVER\r\n"
                      "X-Receiver: x@y.z\r\nX-Receiver: w@y.z\r\nSubject: s\r\n\r\nb\r\n";
    ok(mh_env_parse(dup, strlen(dup), 1, &env, err) == 0 && env.nto == 2 && !strcmp(env.to[0], "x@y.z") &&
       !strcmp(env.to[1], "w@y.z") && env.to_params && !env.to_params[0] &&
       env.to_params[1] && !strcmp(env.to_params[1], "NOTIFY=NEVER"),
       "X-Receiver: a repeated recipient once, with the parameters of its first line");
    mh_env_free(&env);
  }
  ok(mh_addr_check("a@b.c", 0) == 0 && mh_addr_check("", 1) == 0 && mh_addr_check("", 0) &&
     mh_addr_check("a b@c.d", 0) && mh_addr_check("a@b\r\nRCPT TO:<x@y>", 0) && mh_addr_check("ab.c", 0),
     "address check: CR/LF, spaces, missing @ refused");
  /* address literals (RFC 5321 4.1.3): real IPv4 / IPv6 ones only */
  ok(mh_addr_check("a@[192.0.2.1]", 0) == 0 && mh_addr_check("a@[IPv6:2001:db8::1]", 0) == 0 &&
     mh_addr_check("a@[ipv6:::1]", 0) == 0 && mh_addr_check("\"a b\"@[192.0.2.1]", 0) == 0,
     "address check: [IPv4] and [IPv6:...] literals taken");
  ok(mh_addr_check("a@[999.1.1.1]", 0) && mh_addr_check("a@[1.2.3]", 0) && mh_addr_check("a@[01.2.3.4]", 0) &&
     mh_addr_check("a@[2001:db8::1]", 0) && mh_addr_check("a@[IPv6:zz::1]", 0) && mh_addr_check("a@[tag:x]", 0) &&
     mh_addr_check("a@[192.0.2.1", 0) && mh_addr_check("a@[192.0.2.1]x", 0) && mh_addr_check("a@[]", 0) &&
     mh_addr_check("a[@[192.0.2.1]", 0) && mh_addr_check("a@[IPv6:fe80::1%eth0]", 0) &&
     mh_addr_check("a@[192.0.2.1 ]", 0),
     "address check: a literal that is no real address refused");
  const char *lits = "a@[IPv6:2001:db8::1], \"B\" <b@[192.0.2.1]>";
  memset(&env, 0, sizeof env);
  ok(mh_env_addrs(lits, strlen(lits), &env, err) == 0 && env.nto == 2 &&
     !strcmp(env.to[0], "a@[IPv6:2001:db8::1]") && !strcmp(env.to[1], "b@[192.0.2.1]"),
     "a header's literals: the IPv6 one's ':' is no group");
  mh_env_free(&env);
}

static void test_enqueue(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN], path[600];
  const char *to[] = { "x@y.z", "w@y.z" };
  mh_spool_item it = { "a@b.c", to, 2, write_bytes, (void *)"Subject: t\r\n\r\nbody\r\n", "", NULL, NULL, 1, 0, NULL, 0 };
  mh_spool_entry e;
  struct stat st;
  int before = count("pickup");
  is_int(mh_spool_enqueue(sp, &it, 1, err), 0, "enqueue");
  snprintf(path, sizeof path, "%s/pickup/%s.eml", root, it.id);
  is_str(slurp(path), "X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nX-Receiver: w@y.z\r\nX-Spool-Size: 000000000020\r\n"
         "X-Submitter-Uid: 0\r\nSubject: t\r\n\r\nbody\r\n",
         "pickup/ID.eml holds the envelope lines and the message");
  ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
  is_int(count("tmp"), 0, "nothing left in tmp/");
  is_int(count("pickup"), before + 1, "one file more in pickup/");

  const char *bad_to[] = { "x@y.z\r\nRCPT TO:<evil@x.y>" };
  mh_spool_item bad = { "a@b.c", bad_to, 1, write_bytes, (void *)"x", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &bad, 1, err), MH_EBADADDR, "a recipient with CR/LF is refused");
  is_int(count("pickup"), before + 1, "and nothing was written");

  /* defer / load: state survives in the sidecar */
  const char *done[] = { "x@y.z" };
  is_int(mh_spool_defer(sp, it.id, -1, 12345, "451 4.7.0 later", done, 1, NULL, 0, err), 0, "defer");
  /* the counter of DIR/sidecars at the end of the range (garbage): it moves, from the clock */
  put_file("sidecars", "7fffffffffffffff\n");
  is_int(mh_spool_defer(sp, it.id, -1, 12345, "451 4.7.0 later", done, 1, NULL, 0, err), 0, "defer again");
  snprintf(path, sizeof path, "%s/sidecars", root);
  {
    char *x = slurp(path);
    ok(x && strncmp(x, "7fffffffffffffff", 16) && x[0] == '0', "sidecars at the end of the range: "
       "moved, from the clock (%.16s)", x ? x : "missing");
  }
  is_int(mh_spool_load(sp, it.id, &e, err), 0, "load");
  ok(e.state.attempts == 2 && e.state.next_attempt == 12345 && !strcmp(e.state.last_reply, "451 4.7.0 later") &&
     e.state.ndone == 1 && !strcmp(e.state.done[0], "x@y.z"), "sidecar state read back");
  ok(e.env.offset > 0 && e.size > (int64_t)e.env.offset && !e.failed, "offset and size");
  mh_spool_entry_free(&e);

  /* a recipient refused for good is recorded once, with its reply (a tab or a
  ** line break in it cannot break the sidecar) */
  mh_refused bad1 = { "w@y.z", "550 5.1.1 no\tsuch\r\nuser" };
  is_int(mh_spool_defer(sp, it.id, -1, 12346, "550 5.1.1 no such user", NULL, 0, &bad1, 1, err), 0,
         "defer with a refused recipient");
  mh_refused bad2 = { "w@y.z", "550 5.1.1 still no such user" };
  is_int(mh_spool_defer(sp, it.id, -1, 12347, NULL, NULL, 0, &bad2, 1, err), 0, "the same one again");
  is_int(mh_spool_load(sp, it.id, &e, err), 0, "load");
  ok(e.state.nrefused == 1 && !strcmp(e.state.refused[0].rcpt, "w@y.z") &&
     !strcmp(e.state.refused[0].reply, "550 5.1.1 still no such user"),
     "one refused recipient, with the newest reply (%zu)", e.state.nrefused);
  ok(e.state.attempts == 4 && e.state.ndone == 1, "attempts counted, done kept");
  mh_spool_entry_free(&e);

  is_int(mh_spool_fail(sp, it.id, "550 5.1.1 unknown", "550 5.1.1 unknown user", 4, NULL, 0, err), 0, "fail");
  is_int(count("failed"), 2, "failed/ holds the message and its sidecar");
  is_int(mh_spool_load(sp, it.id, &e, err), 0, "a failed message loads");
  ok(e.failed && e.state.reason && e.state.failed_at > 0, "with its reason and time");
  is_int(e.state.attempts, 4, "and the attempt that failed it counted");
  ok(e.state.nrefused == 1, "and its refused recipient");
  mh_spool_entry_free(&e);
  is_int(mh_spool_retry(sp, it.id, err), 0, "retry");
  is_int(count("failed"), 0, "failed/ is empty again");
  is_int(mh_spool_load(sp, it.id, &e, err), 0, "back in pickup/");
  ok(!e.failed && e.state.attempts == 4 && e.state.next_attempt == 0 && !e.state.reason,
     "due now, attempts kept, no reason");
  is_int(e.state.nrefused, 0, "the refused recipient is pending again (the administrator asked)");
  mh_spool_entry_free(&e);
  is_int(mh_spool_delivered(sp, it.id, err), 0, "delivered");
  is_int(mh_spool_load(sp, it.id, &e, err), MH_ENOTFOUND, "gone after delivered");
  is_int(count("pickup"), before, "no sidecar left behind");

  /* a batch: group commit */
  mh_spool_item many[5];
  const char *one[] = { "m@y.z" };
  for (int i = 0; i < 5; i++) {
    mh_spool_item x = { "", one, 1, write_bytes, (void *)"Subject: b\r\n\r\n.\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
    many[i] = x;
  }
  is_int(mh_spool_enqueue(sp, many, 5, err), 0, "a batch of 5");
  ok(strcmp(many[0].id, many[4].id) < 0, "batch ids in order");
  is_int(count("pickup"), before + 5, "all five in pickup/");

  /* a lost seq update cannot make an id replace a file */
  put_file("pickup/0200000000000001.eml", "X-Sender: <>\r\nX-Receiver: old@y.z\r\nSubject: old\r\n\r\n");
  put_file("seq", "0200000000000000\n");
  mh_spool_item again = { "a@b.c", to, 2, write_bytes, (void *)"Subject: new\r\n\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &again, 1, err), 0, "enqueue when the next id is taken");
  is_str(again.id, "0200000000000002", "it takes the next free id");
  snprintf(path, sizeof path, "%s/pickup/0200000000000001.eml", root);
  ok(strstr(slurp(path), "Subject: old") != NULL, "the existing file was not replaced");
}

static void test_scan(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN], **ids = NULL, path[600];
  long n;
  mh_spool_entry e;
  long holder = 0;
  int fd;
  /* a stale tmp file (no writer) and a live one (flocked by us) */
  put_file("tmp/stale", "half a message");
  snprintf(path, sizeof path, "%s/tmp/live", root);
  fd = open(path, O_CREAT | O_WRONLY, 0600);
  flock(fd, LOCK_EX);
  put_file("pickup/dropin.eml", "From: Ann <ann@ex.org>\r\nTo: bob@ex.org\r\nBcc: secret@ex.org,\r\n"
                                " other@ex.org\r\nSubject: drop\r\n\r\nhello\r\n");
  put_file("pickup/garbage", "no headers here at all\n");
  put_file("pickup/0000000000000001.state", "attempts 3\n");
  is_int(mh_spool_lock(sp, &holder), 0, "lock");
  is_int(count("tmp"), 1, "the stale tmp file was swept, the live one kept");
  close(fd);
  unlink(path);
  {
    pid_t pid = fork();
    if (pid == 0) {
      mh_spool *sp2;
      long h = 0;
      int rc;
      if (mh_spool_open(root, &sp2, NULL)) _exit(3);
      rc = mh_spool_lock(sp2, &h);
      _exit(rc == MH_ELOCKED && h == (long)getppid() ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a second deliverer is refused, naming our pid");
  }
  {
    char **few = NULL;
    long k = mh_spool_scan(sp, 2, &few, NULL, err);
    n = mh_spool_scan(sp, 0, &ids, NULL, err);
    ok(k == 2 && n > 2 && !strcmp(few[0], ids[0]) && !strcmp(few[1], ids[1]),
       "scan with a limit returns the oldest ids only");
    for (long i = 0; i < k; i++) free(few[i]);
    free(few);
  }
  ok(n >= 6, "scan found the ready messages (%ld)", n);
  int sorted = 1;
  for (long i = 1; i < n; i++) if (strcmp(ids[i - 1], ids[i]) >= 0) sorted = 0;
  ok(sorted, "oldest first");
  is_int(count("corrupt"), 1, "the unparsable drop-in went to corrupt/");
  snprintf(path, sizeof path, "%s/pickup/dropin.eml", root);
  ok(access(path, F_OK) != 0, "the drop-in was adopted under an id");
  snprintf(path, sizeof path, "%s/pickup/0000000000000001.state", root);
  ok(access(path, F_OK) != 0, "an orphan sidecar was removed");
  /* the adopted one is the newest id */
  is_int(mh_spool_load(sp, ids[n - 1], &e, err), 0, "adopted drop-in loads");
  ok(e.env.canonical && !strcmp(e.env.from, "ann@ex.org") && e.env.nto == 3, "its envelope: From, To, Bcc");
  {
    char *body = slurp(e.path);
    ok(body && !strstr(body + e.env.offset, "Bcc") && !strstr(body + e.env.offset, "other@ex.org") &&
       strstr(body, "Subject: drop\r\nDate: ") && strstr(body, "\r\n\r\nhello\r\n"),
       "Bcc (with its continuation) is gone from the sent copy");
    /* the Date and Message-ID it lacked, added at adoption (the sender's domain) */
    ok(body && strstr(body, "\r\nDate: ") && strstr(body, "\r\nMessage-ID: <") && strstr(body, "@ex.org>\r\n\r\nhello"),
       "Date and Message-ID added before the empty line");
  }
  mh_spool_entry_free(&e);
  for (long i = 0; i < n; i++) free(ids[i]);
  free(ids);
  /* a torn canonical file found by load goes to corrupt/ */
  put_file("pickup/00000000000000aa.eml", "X-Sender: a@b.c\r\n");
  is_int(mh_spool_load(sp, "00000000000000aa", &e, err), MH_ECORRUPT, "load of an unparsable file: %s", err);
  is_int(count("corrupt"), 2, "moved to corrupt/, not deleted");
  /* listing */
  mh_spool_iter *it;
  int listed = 0, rc;
  mh_spool_iter_open(sp, 0, &it);
  while ((rc = mh_spool_iter_next(it, &e)) == 1) { listed++; mh_spool_entry_free(&e); }
  mh_spool_iter_close(it);
  is_int(listed, n, "list streams every message");
}

/* delivered with the file held open: the names are gone when it returns (the
** message is out of the queue), the caller's fd still reads the bytes (its
** close frees the blocks, off the deliverer's path); errors hold nothing. */
static void test_delivered_held(mh_spool *sp) {
  char err[MH_SPOOL_ERRLEN], path[600], buf[64];
  int held = 7;
  put_file("pickup/00000000000000b1.eml", "X-Sender: a@b.c\r\nX-Receiver: d@e.f\r\n\r\nheld body\r\n");
  put_file("pickup/00000000000000b1.state", "attempts 1\n");
  is_int(mh_spool_delivered_held(sp, "00000000000000b1", &held, err), 0, "delivered_held");
  snprintf(path, sizeof path, "%s/pickup/00000000000000b1.eml", root);
  ok(access(path, F_OK) != 0, "the message file is unlinked when it returns");
  snprintf(path, sizeof path, "%s/pickup/00000000000000b1.state", root);
  ok(access(path, F_OK) != 0, "and its sidecar");
  ok(held >= 0, "the file is handed back open");
  {
    ssize_t n = held >= 0 ? pread(held, buf, sizeof buf - 1, 0) : -1;
    buf[n > 0 ? n : 0] = '\0';
    ok(n > 0 && strstr(buf, "held body"), "still readable through the held fd until closed");
  }
  if (held >= 0) close(held);
  held = 7;
  is_int(mh_spool_delivered_held(sp, "00000000000000b1", &held, err), MH_ENOTFOUND, "again: not found: %s", err);
  is_int(held, -1, "and nothing held");
  held = 7;
  is_int(mh_spool_delivered_held(sp, "../x", &held, err), MH_EINVAL, "a bad id is refused");
  is_int(held, -1, "nothing held");
}

/* Two scans at once (the deliverer's workers with connections = 2 start by
** scanning together, on two pool threads; the listing and the tmp/ sweep too):
** each reads the whole folder.  They once read it through dup()s of one
** descriptor, whose shared offset let one scan start where the other had
** ended: it saw an empty queue, and its worker went idle. */
typedef struct { mh_spool *sp; int rounds, short_reads; long want; } scan_race;
static void *scan_many(void *arg) {
  scan_race *r = arg;
  char err[MH_SPOOL_ERRLEN];
  for (int i = 0; i < r->rounds; i++) {
    char **ids;
    long total = 0, n = mh_spool_scan(r->sp, 0, &ids, &total, err);
    if (n != r->want) r->short_reads++;
    for (long k = 0; k < n; k++) free(ids[k]);
    if (n >= 0) free(ids);
    mh_spool_iter *it;
    mh_spool_entry e;
    long listed = 0;
    if (mh_spool_iter_open(r->sp, 1, &it) == 0) {
      while (mh_spool_iter_next(it, &e) == 1) { listed++; mh_spool_entry_free(&e); }
      mh_spool_iter_close(it);
    }
    if (listed != r->want) r->short_reads++;
  }
  return NULL;
}

static void test_concurrent_scans(mh_spool *sp) {
  static const char *to[] = { "d@e.f" };
  char **ids, err[MH_SPOOL_ERRLEN];
  for (int i = 0; i < 40; i++) {
    mh_spool_item it = { .from = "a@b.c", .to = to, .nto = 1, .write = write_bytes,
                         .arg = (void *)"Subject: race\r\n\r\nbody\r\n" };
    mh_spool_enqueue(sp, &it, 1, err);
  }
  long total = 0, n = mh_spool_scan(sp, 0, &ids, &total, err);
  scan_race a = { sp, 1000, 0, n }, b = a;
  pthread_t ta, tb;
  for (long k = 0; k < n; k++) free(ids[k]);
  if (n >= 0) free(ids);
  ok(n > 20, "a queue to scan (%ld messages)", n);
  pthread_create(&ta, NULL, scan_many, &a);
  pthread_create(&tb, NULL, scan_many, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  is_int(a.short_reads + b.short_reads, 0, "2,000 scans and listings, two at a time: each saw the whole queue");
}

/* A sub-folder, the lock file, the journal or the whole spool removed, moved
** or replaced while a deliverer holds the spool open: its handle follows the
** path (mh_spool_follow, which scans and enqueues call at most once a second;
** forced here), so nothing enqueued into the new folders waits for a restart,
** and two handles never both hold the lock. */
static int scan_has(mh_spool *sp, const char *id, long *n_out) {
  char err[MH_SPOOL_ERRLEN], **ids = NULL;
  long n = mh_spool_scan(sp, 0, &ids, NULL, err);
  int has = 0;
  for (long i = 0; i < n; i++) { if (!strcmp(ids[i], id)) has = 1; free(ids[i]); }
  free(ids);
  if (n_out) *n_out = n;
  return has;
}

static void test_follow(void) {
  char dir[300], old[320], cmd[700], err[MH_SPOOL_ERRLEN], path[400];
  const char *to[] = { "x@y.z" };
  mh_spool *sp, *other, *third;
  long n, holder = 0;
  struct stat st;
  snprintf(dir, sizeof dir, "%s/follow", root);
  is_int(mh_spool_open(dir, &sp, err), 0, "follow: a second spool");
  is_int(mh_spool_lock(sp, NULL), 0, "its deliverer holds the lock");
  mh_spool_item a = { "a@b.c", to, 1, write_bytes, (void *)"Subject: a\r\n\r\na\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &a, 1, err), 0, "a message queued");

  /* rm -rf pickup/: `mailhook enqueue` (another handle) makes a new one */
  snprintf(cmd, sizeof cmd, "rm -rf '%s/pickup'", dir);
  ok(system(cmd) == 0, "pickup/ removed under the deliverer (its message with it: the administrator's act)");
  is_int(mh_spool_open(dir, &other, err), 0, "another handle opens the spool (makes pickup/ again)");
  mh_spool_item b = { "a@b.c", to, 1, write_bytes, (void *)"Subject: b\r\n\r\nb\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(other, &b, 1, err), 0, "and queues a message into the new pickup/");
  mh_spool_close(other);
  is_int(mh_spool_follow(sp, 1, err), 0, "the deliverer looks at its folders");
  ok(scan_has(sp, b.id, &n) && n == 1, "its scan sees the message in the new pickup/ (%ld)", n);

  /* tmp/ removed: the deliverer's own enqueue (a rule's mh.enqueue) makes it again */
  snprintf(cmd, sizeof cmd, "rm -rf '%s/tmp'", dir);
  ok(system(cmd) == 0, "tmp/ removed");
  mh_spool_item c = { "a@b.c", to, 1, write_bytes, (void *)"Subject: c\r\n\r\nc\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(sp, &c, 1, err), 0, "an enqueue through the deliverer's handle still works");
  snprintf(path, sizeof path, "%s/tmp", dir);
  ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "tmp/ made again, mode 0700");
  ok(scan_has(sp, c.id, NULL), "the message is in pickup/");

  /* the journal removed between a mark and the purge: its records written again */
  is_int(mh_spool_mark(sp, b.id, -1, err), 0, "a delivery recorded in the journal");
  snprintf(path, sizeof path, "%s/delivered", dir);
  ok(unlink(path) == 0, "the journal file removed");
  is_int(mh_spool_follow(sp, 1, err), 0, "looked at");
  char *j = slurp(path);
  ok(j && !strncmp(j, b.id, 16), "the journal is there again with its record (%s)", j ? j : "missing");
  ok(mh_spool_purge(sp, err) == 1, "the purge removes the delivered message");

  /* the lock file removed: the holder takes the new one, a second deliverer is refused */
  snprintf(path, sizeof path, "%s/lock", dir);
  ok(unlink(path) == 0, "the lock file removed");
  is_int(mh_spool_follow(sp, 1, err), 0, "looked at: locked again");
  is_int(mh_spool_open(dir, &other, err), 0, "a second service opens the spool");
  is_int(mh_spool_lock(other, &holder), MH_ELOCKED, "and cannot take the lock");
  is_int((int)holder, (int)getpid(), "held by the first");
  mh_spool_close(other);
  /* removed again, and this time another service takes the new one first */
  ok(unlink(path) == 0, "the lock file removed again");
  is_int(mh_spool_open(dir, &other, err), 0, "a second service opens the spool");
  is_int(mh_spool_lock(other, NULL), 0, "and takes the new lock first");
  is_int(mh_spool_follow(sp, 1, err), MH_ELOCKED, "the first sees it lost the lock: %s", err);
  n = mh_spool_scan(sp, 0, &(char **){ NULL }, NULL, err);
  is_int((int)n, MH_ELOCKED, "its scans fail: it delivers nothing meanwhile");
  {
    mh_spool_entry e;
    is_int(mh_spool_load(sp, c.id, &e, err), MH_ELOCKED, "nor loads a message of its last scan: %s", err);
  }
  mh_spool_close(other);
  is_int(mh_spool_follow(sp, 1, err), 0, "once the other is gone, it takes the lock again");
  ok(scan_has(sp, c.id, NULL), "and scans again");

  /* the whole spool moved away: the folder at its path is made again and followed */
  snprintf(old, sizeof old, "%s.old", dir);
  ok(rename(dir, old) == 0, "mv SPOOL SPOOL.old");
  is_int(mh_spool_open(dir, &other, err), 0, "`mailhook enqueue` makes a new spool at the path");
  mh_spool_item d = { "a@b.c", to, 1, write_bytes, (void *)"Subject: d\r\n\r\nd\r\n", "", NULL, NULL, 0, 0, NULL, 0 };
  is_int(mh_spool_enqueue(other, &d, 1, err), 0, "and queues a message into it");
  is_int(mh_spool_follow(sp, 1, err), 0, "the deliverer follows the path");
  ok(scan_has(sp, d.id, &n) && n == 1, "its scan sees the new spool's message (%ld)", n);
  is_int(mh_spool_lock(other, &holder), MH_ELOCKED, "and it holds the new spool's lock");
  mh_spool_close(other);
  is_int(mh_spool_open(old, &third, err), 0, "the old spool");
  is_int(mh_spool_lock(third, NULL), 0, "is left to whoever delivers it now");
  mh_spool_close(third);

  /* pickup/ replaced by a link: refused (said), never followed; fixed: followed */
  snprintf(cmd, sizeof cmd, "rm -rf '%s/pickup' && ln -s /tmp '%s/pickup'", dir, dir);
  ok(system(cmd) == 0, "pickup/ replaced by a link to /tmp");
  is_int(mh_spool_follow(sp, 1, err), MH_EUNSAFE, "refused: %s", err);
  snprintf(cmd, sizeof cmd, "rm -f '%s/pickup'", dir);
  ok(system(cmd) == 0, "the link removed");
  is_int(mh_spool_follow(sp, 1, err), 0, "pickup/ made again");
  ok(!scan_has(sp, d.id, &n) && n == 0, "an empty queue (%ld)", n);
  mh_spool_close(sp);
}

/* mh_eol_find (eol.h: the header parser's line ends) against the byte rule,
** on buffers where the CRs and LFs are sparse (far past its 256-byte
** windows), dense, or missing. */
static void test_eol_find(void) {
  static char buf[1200];
  unsigned seed = 11;
  int bad = 0;
  for (int round = 0; round < 3000; round++) {
    size_t n = (seed = seed * 1103515245u + 12345u) >> 16;
    unsigned every = 1u << (round % 12);   /* one byte in `every` is a CR or an LF */
    n %= sizeof buf;
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = (seed >> 8) % every ? 'x' : (seed >> 4) & 1 ? '\r' : '\n';
    }
    for (size_t from = 0; from <= n; from += 1 + from / 3) {
      const char *want = NULL;
      for (size_t i = from; i < n && !want; i++)
        if (buf[i] == '\r' || buf[i] == '\n') want = buf + i;
      if (mh_eol_find(buf + from, n - from) != want) bad++;
    }
  }
  is_int(bad, 0, "mh_eol_find: the first CR or LF, or none (3,000 buffers)");
}

/* The lock holder removes the temporaries of atomic writes whose writer was
** killed (.status.json.PID.N piled up under a crash-looping service), in DIR,
** state/rules/ and state/rules/held/, and leaves a live writer's. */
static void aged_file(const char *path) {
  struct timespec ts[2];
  close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= 300;
  ts[1] = ts[0];
  utimensat(AT_FDCWD, path, ts, 0);
}

static void test_lock_sweeps_temps(void) {
  char dir[300], a[400], b[400], c[400], live[400], err[MH_SPOOL_ERRLEN];
  mh_spool *sp;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);
  snprintf(dir, sizeof dir, "%s/temps", root);
  is_int(mh_spool_open(dir, &sp, err), 0, "temps: a spool");
  snprintf(a, sizeof a, "%s/state/rules", dir);
  mkdir(a, 0700);
  snprintf(a, sizeof a, "%s/state/rules/held", dir);
  mkdir(a, 0700);
  snprintf(a, sizeof a, "%s/.status.json.%ld.0", dir, (long)pid);
  snprintf(b, sizeof b, "%s/state/rules/.k.state.%ld.2", dir, (long)pid);
  snprintf(c, sizeof c, "%s/state/rules/held/.h1.%ld.0", dir, (long)pid);
  snprintf(live, sizeof live, "%s/.outage.%ld.0", dir, (long)getpid());
  aged_file(a); aged_file(b); aged_file(c); aged_file(live);
  is_int(mh_spool_lock(sp, NULL), 0, "temps: the deliverer takes the lock");
  ok(access(a, F_OK) < 0 && access(b, F_OK) < 0 && access(c, F_OK) < 0,
     "the dead writers' temporaries are gone (DIR, state/rules, state/rules/held)");
  ok(access(live, F_OK) == 0, "a live writer's stays");
  unlink(live);
  mh_spool_close(sp);
}

/* mh_spool_open_ex: MUST_EXIST and NO_CREATE make no folder (an
** administrator's look at the queue made the spool, owned by whoever looked);
** a folder with maildrop/ alone is the installed spool. */
static void test_open_existing(void) {
  char d[400], p[500], err[MH_SPOOL_ERRLEN];
  mh_spool *sp = NULL;
  char **ids = NULL;
  long total = -1;
  mh_spool_entry e;
  snprintf(d, sizeof d, "%s/ro", root);
  is_int(mh_spool_open_ex(d, MH_SPOOL_MUST_EXIST | MH_SPOOL_NO_CREATE, &sp, err), -ENOENT, "existing: no folder");
  ok(!strncmp(err, "no spool at ", 12) && strstr(err, "/ro") && !strchr(err, ':'), "err says so, naming it: %s", err);
  is_int(mh_spool_open_ex(d, MH_SPOOL_MUST_EXIST, &sp, err), -ENOENT, "MUST_EXIST alone: the same");
  ok(access(d, F_OK) < 0, "nothing made");
  mkdir(d, 0700);
  is_int(mh_spool_open_ex(d, MH_SPOOL_MUST_EXIST | MH_SPOOL_NO_CREATE, &sp, err), -ENOENT, "a folder without pickup/");
  ok(strstr(err, "no spool at ") && strstr(err, "(it has no pickup/ folder)"), "said: %s", err);
  snprintf(p, sizeof p, "%s/maildrop", d);
  mkdir(p, 0700);
  is_int(mh_spool_open_ex(d, MH_SPOOL_MUST_EXIST | MH_SPOOL_NO_CREATE, &sp, err), 0, "maildrop/ alone: a spool");
  snprintf(p, sizeof p, "%s/pickup", d);
  ok(access(p, F_OK) < 0, "NO_CREATE: pickup/ not made");
  is_int(mh_spool_scan(sp, 10, &ids, &total, err), 0, "its scan: nothing");
  is_int(total, 0, "total 0");
  free(ids);
  is_int(mh_spool_load(sp, "0000000000000001", &e, err), MH_ENOTFOUND, "a load: no such message");
  is_int(mh_spool_remove(sp, "0000000000000001", err), MH_ENOTFOUND, "a remove: no such message");
  ok(access(p, F_OK) < 0, "still no pickup/");
  mh_spool_close(sp);
  is_int(mh_spool_open_ex(d, MH_SPOOL_MUST_EXIST, &sp, err), 0, "MUST_EXIST (a deliverer) on it: opened");
  ok(access(p, F_OK) == 0, "and its folders made");
  mh_spool_close(sp);
}

int main(void) {
  mh_spool *sp;
  char err[MH_SPOOL_ERRLEN];
  snprintf(root, sizeof root, "%s/mh-spool-unit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(root)) return 1;
  is_int(mh_spool_open(root, &sp, err), 0, "open creates the spool");
  ok(count("tmp") == 0 && count("pickup") == 0 && count("failed") == 0 && count("corrupt") == 0,
     "tmp/ pickup/ failed/ corrupt/ exist");
  test_ids(sp);
  test_is_id();
  test_eol_find();
  test_parse();
  test_enqueue(sp);
  test_scan(sp);
  test_delivered_held(sp);
  test_concurrent_scans(sp);
  test_follow();
  test_lock_sweeps_temps();
  test_open_existing();
  mh_spool_close(sp);
  is_int(mh_spool_open("/proc/no/such", &sp, err), -ENOENT, "open of an impossible folder fails: %s", err);
  {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) diag("could not remove %s", root);
  }
  return done_testing();
}
