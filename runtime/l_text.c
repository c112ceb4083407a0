/*
** l_text.c — core.text: the display rules of runtime/text.h for Lua, so the
** CLI, the console and the log show text from outside by the core's rule.
**
**   core.text.shown(s [, lines]) -> s as a server's words are shown: every
**        character text.h names (controls, C1, direction overrides and
**        isolates, U+2028/9, bytes that are not UTF-8) one '?'; lines: newline
**        and tab kept
**   core.text.visible(s [, how]) -> text [, rest]: s as local users' words are
**        shown (the same characters as visible escapes: \xNN, \u202e); how
**        is a string of letters: "l" newline and tab kept, "b" a backslash
**        as \x5C, "p" more follows (a UTF-8 character cut at the end of s is
**        not consumed: rest is returned, to be put before the next piece)
**   core.text.cut(s, n) -> s cut to at most n bytes, never inside a UTF-8
**        character (a display column's width)
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "l_sched.h"
#include "text.h"

static int l_shown(lua_State *L) {
  size_t n;
  const char *s = mh_l_arg_lstring(L, 1, "s", &n);
  int flags = lua_toboolean(L, 2) ? MH_TEXT_KEEP_LINES : 0;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n ? n : 1);
  memcpy(p, s, n);
  luaL_pushresultsize(&b, mh_text_shown(p, n, flags));
  return 1;
}

static int l_visible(lua_State *L) {
  size_t n, used = 0;
  const char *s = mh_l_arg_lstring(L, 1, "s", &n);
  const char *how = mh_l_optarg_string(L, 2, "how", "");
  int flags = 0;
  luaL_Buffer b;
  char *p;
  for (; *how; how++) {
    if (*how == 'l') flags |= MH_TEXT_KEEP_LINES;
    else if (*how == 'b') flags |= MH_TEXT_BACKSLASH;
    else if (*how == 'p') flags |= MH_TEXT_PARTIAL;
    else return mh_l_arg_error(L, 2, "how", "letters of \"lbp\"");
  }
  if (n > (SIZE_MAX - 1) / 4) return luaL_error(L, "core.text.visible: string too long");
  p = luaL_buffinitsize(L, &b, MH_TEXT_VISIBLE_MAX(n) + 1);
  luaL_pushresultsize(&b, mh_text_visible(s, n, flags, p, &used));
  if (!(flags & MH_TEXT_PARTIAL)) return 1;
  lua_pushlstring(L, s + used, n - used);
  return 2;
}

static int l_cut(lua_State *L) {
  size_t n;
  const char *s = mh_l_arg_lstring(L, 1, "s", &n);
  lua_Integer max = mh_l_arg_integer(L, 2, "n");
  size_t k;
  if (max < 0) return mh_l_arg_error(L, 2, "n", "a count of bytes >= 0");
  if ((lua_Unsigned)max >= n) { lua_settop(L, 1); return 1; }
  k = mh_text_cut(s, (size_t)max);
  lua_pushlstring(L, s, k);
  return 1;
}

void l_text_open(lua_State *L) {
  static const luaL_Reg funcs[] = { { "shown", l_shown }, { "visible", l_visible }, { "cut", l_cut },
                                    { NULL, NULL } };
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "text");
}
