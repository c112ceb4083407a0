# tests/lib/lualib.sh — run stock lua5.4 against the built Lua module (sourced after
# tests/lib/tap.sh).  The interpreter is Debian's /usr/bin/lua5.4, never the mailhook
# binary; it finds the module the way a user's program does: LUA_CPATH names
# $BUILD/lua (core.so), LUA_PATH the checkout's lua/ (docs/lua-library.md).
#
#   lua54 ARGS...            /usr/bin/lua5.4 with those paths (and, for a sanitizer
#                            build, its runtime preloaded: lua5.4 is not instrumented)
#   lua_with LUA ARGS...     another interpreter the same way (lua5.3)
#   lua_tap SCRIPT ARGS...   run tests/lualib/SCRIPT under lua54; its "ok - "/"not ok - "
#                            lines become numbered TAP tests, "# " lines pass through,
#                            and a last test checks that it exited 0
#   tap_cmd NAME CMD...      the same for any command (a C host)
LUA54=${LUA54:-/usr/bin/lua5.4}
LUAMOD=$BUILD/lua/mailhook/core.so
export LUA_PATH="$ROOT/tests/lualib/?.lua;$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$BUILD/lua/?.so;;"
# A module built with -fsanitize=address needs the ASan runtime first in the process:
# preload it into the uninstrumented interpreter.  Leak detection stays on: lua5.4
# closes its state at exit (so core.so's __gc closes the loop), and a leak is ours.
# (tests/run-one sets MH_ASAN_PRELOAD for such a build; a test run by hand finds it here.)
_san_preload=${MH_ASAN_PRELOAD:-}
if [ -z "$_san_preload" ] && [ -f "$LUAMOD" ] && readelf -d "$LUAMOD" 2>/dev/null | grep -q 'libasan'; then
  _san_preload=$(cc -print-file-name=libasan.so)
fi
[ -n "$_san_preload" ] && export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
lua54() { lua_with "$LUA54" "$@"; }
# lua_with INTERPRETER ARGS...: another interpreter (lua5.3) the same way.
lua_with() {
  if [ -n "$_san_preload" ]; then LD_PRELOAD="$_san_preload${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
  else "$@"; fi
}

# tap_cmd NAME CMD...: run CMD; its "ok - "/"not ok - " lines become numbered tests
# named NAME: ..., "# " lines pass through, and a last test checks it exited 0
# (its stderr is shown when not, or when a sanitizer wrote a report).
tap_cmd() {
  local name=$1 rc line; shift
  local out=$T/tap_cmd.$$.out
  "$@" >"$out" 2>"$out.err"; rc=$?
  while IFS= read -r line; do
    case $line in
      "ok - "*)     ok 0 "$name: ${line#ok - }" ;;
      "not ok - "*) ok 1 "$name: ${line#not ok - }" ;;
      "#"*)         echo "$line" ;;
    esac
  done < "$out"
  is "$rc" 0 "$name: exits 0"
  if [ "$rc" != 0 ] || grep -q 'ERROR: \|runtime error:' "$out.err"; then
    sed 's/^/#   stderr: /' "$out.err" | head -40
  fi
}

# lua_tap SCRIPT ARGS...: tests/lualib/SCRIPT under lua54, as tap_cmd.
lua_tap() {
  local script=$1; shift
  tap_cmd "$script" lua54 "$ROOT/tests/lualib/$script" "$@"
}
