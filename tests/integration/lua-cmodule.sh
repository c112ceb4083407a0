# A site's Lua C module (found on package.cpath) works inside mailhook, in a
# script and in a rule run by `hook`, however the binary has Lua: linked in
# (make's default: the binary exports Lua's API for such modules, Makefile
# LUA_UV_STATIC) or shared (debian/rules).  Two builds of the module, as
# distributions ship them: with no link to liblua (Debian's Lua modules: the
# host provides the API), and linked against liblua5.4.so (the API the binary
# exports still wins: the module's calls reach the one Lua that runs the state,
# not a second copy loaded beside it).  The module calls into Lua both ways
# (it pushes values, and calls back a Lua function it is given) and says where
# its lua_pushinteger lives (dladdr).
. "$ROOT/tests/lib/tap.sh"
command -v cc >/dev/null || { echo "1..0 # SKIP no C compiler"; exit 0; }
rules_env
# make's default links Lua and libuv in where their archives are installed (Debian 12
# has both, 13 only Lua's): the binary then loads neither shared (start-up,
# docs/perf-hook.md)
deps=$(LD_TRACE_LOADED_OBJECTS=1 "$MAILHOOK" 2>&1)
if [ -f "$(pkg-config --variable=libdir lua5.4)/liblua5.4.a" ]; then
  unlike "$deps" "liblua" "the binary has Lua linked in (liblua5.4.a): no shared liblua loaded"
  want=$(readlink -f "$MAILHOOK")   # every module's Lua is the binary's own
else
  like "$deps" "liblua" "without liblua5.4.a, the binary loads liblua5.4.so"
  want=$(echo "$deps" | sed -n 's/.*=> \(.*liblua[^ ]*\) .*/\1/p')
fi
uvdir=$(pkg-config --variable=libdir libuv)
if [ -f "$uvdir/libuv_a.a" ] || [ -f "$uvdir/libuv.a" ]; then
  unlike "$deps" "libuv" "the binary has libuv linked in: no shared libuv loaded"
else
  like "$deps" "libuv" "without libuv's archive, the binary loads libuv.so"
fi
mkdir -p "$T/lib/plain" "$T/lib/linked"
cat > "$T/probe.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <lua.h>
#include <lauxlib.h>
static int twice(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  lua_pushinteger(L, 2 * n);
  return 1;
}
static int call(lua_State *L) {           /* call(f, x) -> f(x) .. "!" */
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_call(L, 1, 1);
  lua_pushliteral(L, "!");
  lua_concat(L, 2);
  return 1;
}
static int origin(lua_State *L) {         /* the file the module's Lua API comes from */
  Dl_info di;
  lua_pushstring(L, dladdr((void *)lua_pushinteger, &di) && di.dli_fname ? di.dli_fname : "?");
  return 1;
}
int luaopen_mhprobe(lua_State *L) {
  static const luaL_Reg f[] = { { "twice", twice }, { "call", call }, { "origin", origin }, { NULL, NULL } };
  luaL_newlib(L, f);
  return 1;
}
C
cflags=$(pkg-config --cflags lua5.4)
# shellcheck disable=SC2086
cc -shared -fPIC $cflags -o "$T/lib/plain/mhprobe.so" "$T/probe.c"; ok $? "the module builds, not linked to liblua"
# shellcheck disable=SC2086
cc -shared -fPIC $cflags -o "$T/lib/linked/mhprobe.so" "$T/probe.c" $(pkg-config --libs lua5.4); ok $? "and linked to liblua5.4.so"

cat > "$T/rules/probe.lua" <<'LUA'
on("probe", function(ev)
  package.cpath = ev.dir .. "/?.so;" .. package.cpath
  local p = require("mhprobe")
  local f = assert(io.open(ev.out, "w"))
  f:write(p.twice(21), " ", p.call(function(s) return s:upper() end, "ok"), " ", p.origin(), "\n")
  f:close()
  assert(mh.enqueue { to = "ops@example.com", subject = "probe " .. ev.dir:match("[^/]+$"), text = "x" })
end)
LUA
# "42 OK! FILE" with FILE resolved (dladdr gives the path the file was loaded by)
resolved() { local a b c; read -r a b c <<< "$1"; echo "$a $b $(readlink -f "$c" 2>/dev/null || echo "$c")"; }
want=$(readlink -f "$want")
for v in plain linked; do
  OUT=$("$MAILHOOK" -e "package.cpath = '$T/lib/$v/?.so;' .. package.cpath
    local p = require('mhprobe'); io.write(p.twice(21), ' ', p.call(function(s) return s:upper() end, 'ok'), ' ', p.origin())" 2>&1); RC=$?
  is "$(resolved "$OUT")" "42 OK! $want" "$v: a script requires the module and calls it both ways, through $want's Lua (exit $RC)"
  "$MAILHOOK" hook probe dir="$T/lib/$v" out="$T/out-$v" 2>"$T/err-$v"; rc=$?
  is "$rc" 0 "$v: hook runs a rule that requires it"
  [ "$rc" = 0 ] || sed 's/^/#   /' "$T/err-$v"
  is "$(resolved "$(cat "$T/out-$v" 2>/dev/null)")" "42 OK! $want" "$v: the rule got its results, through the same Lua"
  grep -qs "Subject: probe $v" "$T"/spool/pickup/*.eml; ok $? "$v: and the rule's mail is queued"
done
done_testing
