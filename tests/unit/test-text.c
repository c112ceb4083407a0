/*
** test-text.c — the display rules of runtime/text.h: mh_text_visible, the
** rule for text local users wrote (visible escapes), against each kind of
** character it names, its flags, its bound, and input cut in pieces.
*/
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "text.h"

/* s (n bytes) shown with flags, NUL-terminated in a static buffer. */
static const char *vis(const char *s, size_t n, int flags, size_t *used) {
  static char out[4096];
  size_t o = mh_text_visible(s, n, flags, out, used);
  out[o] = '\0';
  return out;
}
#define VIS(lit, flags) vis(lit, sizeof lit - 1, flags, NULL)

static void test_kinds(void) {
  is_str(VIS("plain ASCII, Grüße, café", 0), "plain ASCII, Grüße, café", "printable text and UTF-8 kept");
  is_str(VIS("a\033[2Jb\007\177", 0), "a\\x1b[2Jb\\x07\\x7f", "C0 controls and DEL as \\xNN, lower-case");
  is_str(VIS("a\302\2332Jb", 0), "a\\xc2\\x9b2Jb", "a C1 control as the two bytes of its UTF-8 form");
  is_str(VIS("\342\200\256txt.exe", 0), "\\u202etxt.exe", "U+202E (right-to-left override) as \\u202e");
  is_str(VIS("a\342\200\250b\342\200\251c", 0), "a\\u2028b\\u2029c", "U+2028/9 as \\u2028, \\u2029");
  is_str(VIS("\342\201\246\342\201\251\342\200\216\342\200\217\330\234\342\200\252", 0),
         "\\u2066\\u2069\\u200e\\u200f\\u061c\\u202a", "isolates, marks, embeddings");
  is_str(VIS("a\377\376b\300\257c\355\240\200", 0), "a\\xff\\xfeb\\xc0\\xafc\\xed\\xa0\\x80",
         "bytes that are no UTF-8 (stray, overlong, a surrogate), each as \\xNN");
  is_str(VIS("x\342\200", 0), "x\\xe2\\x80", "a character cut at the end, without PARTIAL: its bytes");
  is_str(VIS("a\nb\tc\rd", 0), "a\\x0ab\\x09c\\x0dd", "newline, tab, CR escaped");
  is_str(VIS("a\nb\tc\rd", MH_TEXT_KEEP_LINES), "a\nb\tc\\x0dd", "KEEP_LINES: newline and tab kept, CR not");
  is_str(VIS("a\\x1b\\", 0), "a\\x1b\\", "a backslash kept by default (a value escaped already)");
  is_str(VIS("a\\x1b\\", MH_TEXT_BACKSLASH), "a\\x5Cx1b\\x5C", "BACKSLASH: as \\x5C");
}

static void test_partial(void) {
  size_t used = 0;
  is_str(vis("ab\342\200", 4, MH_TEXT_PARTIAL, &used), "ab", "PARTIAL: a cut character waits");
  is_int(used, 2, "  its bytes not consumed");
  is_str(vis("ab\302", 3, MH_TEXT_PARTIAL, &used), "ab", "  a C1 control's first byte too");
  is_int(used, 2, "  (2 consumed)");
  is_str(vis("ab\377", 3, MH_TEXT_PARTIAL, &used), "ab\\xff", "  a byte that starts nothing is shown at once");
  is_int(used, 3, "  (all consumed)");
  is_str(vis("a\342\200x", 4, MH_TEXT_PARTIAL, &used), "a\\xe2\\x80x", "  a broken sequence is not waited for");
  is_int(used, 4, "  (all consumed)");
  /* a text fed in pieces of every size reads as it does whole */
  static const char text[] = "R\342\200\256\302\233\360\237\230\200\303\251\377z";
  const char *whole = VIS(text, 0);
  char want[256], got[256];
  strcpy(want, whole);
  int same = 1;
  for (size_t step = 1; step < sizeof text; step++) {
    char buf[64];
    size_t pend = 0, g = 0;
    for (size_t i = 0; i < sizeof text - 1; i += step) {
      size_t k = i + step < sizeof text - 1 ? step : sizeof text - 1 - i, u;
      memcpy(buf + pend, text + i, k);
      const char *o = vis(buf, pend + k, MH_TEXT_PARTIAL, &u);
      memcpy(got + g, o, strlen(o));
      g += strlen(o);
      memmove(buf, buf + u, pend + k - u);
      pend = pend + k - u;
    }
    const char *o = vis(buf, pend, 0, NULL);
    memcpy(got + g, o, strlen(o) + 1);
    if (strcmp(got, want) != 0) { same = 0; diag("step %zu: %s", step, got); }
  }
  ok(same, "pieces of 1..%zu bytes show as the whole: %s", sizeof text - 2, want);
}

static void test_bound(void) {
  /* the worst case of every kind fits MH_TEXT_VISIBLE_MAX */
  static const char *const worst[] = { "\001", "\377", "\302\233", "\342\200\256", "\\" };
  for (size_t i = 0; i < 5; i++) {
    size_t n = strlen(worst[i]);
    char *out = malloc(MH_TEXT_VISIBLE_MAX(n * 100));
    char *in = malloc(n * 100);
    for (size_t j = 0; j < 100; j++) memcpy(in + j * n, worst[i], n);
    size_t o = mh_text_visible(in, n * 100, MH_TEXT_BACKSLASH, out, NULL);
    ok(o <= MH_TEXT_VISIBLE_MAX(n * 100), "worst case %zu: %zu <= %zu", i, o, (size_t)MH_TEXT_VISIBLE_MAX(n * 100));
    free(in);
    free(out);
  }
  is_int(mh_text_visible("", 0, 0, NULL, NULL), 0, "empty input: nothing written");
}

static void test_cut(void) {
  static const struct { const char *s; size_t max, want; const char *what; } cases[] = {
    { "abcdef", 3, 3, "ASCII: at max" },
    { "ab\xc3\xbc", 3, 2, "a 2-byte character cut after its first byte: left out" },
    { "ab\xc3\xbcx", 4, 4, "a 2-byte character that fits: kept" },
    { "a\xe2\x80\xae", 3, 1, "a 3-byte one cut after 2 bytes" },
    { "a\xf0\x9f\x98\x80" "b", 4, 1, "a 4-byte one cut after 3" },
    { "a\xf0\x9f\x98\x80" "b", 5, 5, "a 4-byte one whole" },
    { "reply \x80\x80\x80\x80\x80\x80\x80\x80", 10, 10, "a run of stray bytes: at max, the text kept" },
    { "\xbf\xbf\xbf\xbf\xbf\xbf", 5, 5, "stray bytes alone: at max, not 0" },
    { "x\xc3\xbc\x80\x80\x80y", 5, 5, "stray bytes after a whole character: at max" },
    { "\xe2\x80\x80\x80\x80", 4, 4, "a lead byte 4 back starts no character reaching past max" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    is_int((int)mh_text_cut(cases[i].s, cases[i].max), (int)cases[i].want, "cut: %s", cases[i].what);
}

int main(void) {
  test_cut();
  test_kinds();
  test_partial();
  test_bound();
  return done_testing();
}
