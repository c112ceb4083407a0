# The bytecode searcher (runtime/main.c bc_searcher, scripts/build-luac):
# BUILD/luac/REL.luac is loaded instead of parsing lua/REL.lua only while its
# header holds that source's size and hash; an edited source, a damaged or
# missing .luac, or a package.path pointing elsewhere all get the source, as
# Lua's own searcher would.  Runs a copy of the binary in a scratch root, with
# a probe module whose bytecode answers differently from its source.
. "$ROOT/tests/lib/tap.sh"
R="$T/root"
mkdir -p "$R/build/luac/mailhook" "$R/lua"
cp "$MAILHOOK" "$R/build/mailhook"
cp -R "$ROOT/lua/mailhook" "$R/lua/"
cp -R "$BUILD/luac/." "$R/build/luac/"
MH="$R/build/mailhook"
fnv() { /usr/bin/python3 -c '
import sys
d = open(sys.argv[1], "rb").read(); h = 0xcbf29ce484222325
for b in d: h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
print("MHLUAC1 %d %016x" % (len(d), h))' "$1"; }
# probe.luac: the dump of 'return "bytecode"' under the header of probe.lua
printf 'return "bytecode"\n' > "$R/lua/mailhook/zz_probe.lua"
(cd "$R" && build/mailhook "$ROOT/scripts/build-luac" lua/mailhook/zz_probe.lua build/luac/mailhook/zz_probe.luac)
like "$(head -1 "$R/build/luac/mailhook/zz_probe.luac")" "^MHLUAC1 18 [0-9a-f]{16}$" "build-luac writes size and hash"
is "$(head -1 "$R/build/luac/mailhook/zz_probe.luac")" "$(fnv "$R/lua/mailhook/zz_probe.lua")" "the hash is FNV-1a 64 of the source"
tail -n +2 "$R/build/luac/mailhook/zz_probe.luac" > "$T/dump"
printf 'return "source"\n' > "$R/lua/mailhook/zz_probe.lua"
{ fnv "$R/lua/mailhook/zz_probe.lua"; cat "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac"
probe() { "$MH" -e 'io.write((require "mailhook.zz_probe"))' 2>&1; }

is "$(probe)" "bytecode" "a .luac matching its source is loaded, not the source"
printf 'return "source" -- edited\n' > "$R/lua/mailhook/zz_probe.lua"
is "$(probe)" "source" "an edited source is parsed (the header no longer matches)"
printf 'return "source"\n' > "$R/lua/mailhook/zz_probe.lua"
is "$(probe)" "bytecode" "(the probe again matches)"
{ fnv "$R/lua/mailhook/zz_probe.lua"; head -c 20 "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac.t"
mv "$R/build/luac/mailhook/zz_probe.luac.t" "$R/build/luac/mailhook/zz_probe.luac"
is "$(probe)" "source" "a truncated .luac falls back to the source"
rm "$R/build/luac/mailhook/zz_probe.luac"
is "$(probe)" "source" "a missing .luac falls back to the source"
{ fnv "$R/lua/mailhook/zz_probe.lua"; cat "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac"
mkdir -p "$T/over/mailhook"; printf 'return "override"\n' > "$T/over/mailhook/zz_probe.lua"
is "$("$MH" -e 'package.path = arg[1] .. "/?.lua;" .. package.path; io.write((require "mailhook.zz_probe"))' "$T/over")" \
   "override" "a module found first elsewhere on package.path wins, as with Lua's searcher"
out=$("$MH" -e 'require "mailhook.zz_nothing"' 2>&1)
like "$out" "module 'mailhook.zz_nothing' not found" "a missing module is still reported by require"
unlike "$out" "luac" "without naming the bytecode folder"

# the real modules: built by make, matching, named and numbered as their sources
out=$("$MAILHOOK" -e '
  local s = require "mailhook.settings"
  local i = debug.getinfo(s.load, "S")
  io.write(i.source, " ", i.linedefined > 0 and "lines" or "nolines")')
is "$out" "@$("$MAILHOOK" -e 'io.write(require("mailhook.core").paths.lua)')/mailhook/settings.lua lines" \
   "a precompiled module keeps its source name and line numbers"
for f in $(cd "$ROOT/lua" && find . -name '*.lua' | sed 's|^\./||'); do
  [ "$(head -1 "$BUILD/luac/${f}c" 2>/dev/null)" = "$(fnv "$ROOT/lua/$f")" ] || { echo "# stale or missing: $f"; bad=1; }
done
is "${bad:-0}" 0 "make precompiled every lua/ module, each matching its source"
done_testing
