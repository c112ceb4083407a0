# The bytecode searcher (runtime/main.c bc_searcher, scripts/build-luac):
# BUILD/luac/REL.luac is loaded instead of parsing lua/REL.lua only while the
# copy of the source it carries is that source, byte for byte; an edited source, a damaged or
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
# head SRC: what a .luac of SRC starts with (header line, then the source)
head_of() { printf 'MHLUAC2 %d\n' "$(wc -c < "$1")"; cat "$1"; }
# probe.luac: the dump of 'return "bytecode"' behind the head of probe.lua
printf 'return "bytecode"\n' > "$R/lua/mailhook/zz_probe.lua"
(cd "$R" && build/mailhook "$ROOT/scripts/build-luac" lua/mailhook/zz_probe.lua build/luac/mailhook/zz_probe.luac)
head_of "$R/lua/mailhook/zz_probe.lua" > "$T/head"
n=$(wc -c < "$T/head")
is "$(head -c "$n" "$R/build/luac/mailhook/zz_probe.luac" | od -An -c)" "$(od -An -c < "$T/head")" \
   "build-luac writes the header and the source first"
tail -c +$((n + 1)) "$R/build/luac/mailhook/zz_probe.luac" > "$T/dump"
like "$(head -c 4 "$T/dump" | od -An -c)" "033 +L +u +a" "then a Lua binary chunk"
printf 'return "source"\n' > "$R/lua/mailhook/zz_probe.lua"
{ head_of "$R/lua/mailhook/zz_probe.lua"; cat "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac"
probe() { "$MH" -e 'io.write((require "mailhook.zz_probe"))' 2>&1; }
# stale SRCDIR LUACDIR: "N" then each SRCDIR/F.lua (of N) whose LUACDIR/F.luac does not start
# with head_of F.lua, one per line; one process for every module (four a file before)
stale() {
  "$MAILHOOK" -e '
    local src, out = arg[1], arg[2]
    local p, n, bad = io.popen("cd \"" .. src .. "\" && find . -name \"*.lua\""), 0, {}
    for f in p:lines() do
      f = f:gsub("^%./", ""); n = n + 1
      local h = assert(io.open(src .. "/" .. f, "rb")); local s = h:read("a"); h:close()
      local head = ("MHLUAC2 %d\n"):format(#s) .. s
      local c = io.open(out .. "/" .. f .. "c", "rb")
      local got = c and c:read(#head); if c then c:close() end
      if got ~= head then bad[#bad + 1] = f end
    end
    p:close()
    print(n); for _, f in ipairs(bad) do print(f) end' "$1" "$2"
}

is "$(probe)" "bytecode" "a .luac matching its source is loaded, not the source"
printf 'return "source" -- edited\n' > "$R/lua/mailhook/zz_probe.lua"
is "$(probe)" "source" "an edited source is parsed (its carried copy no longer matches)"
printf 'return "sourcE"\n' > "$R/lua/mailhook/zz_probe.lua"
is "$(probe)" "sourcE" "so is an edit of the same length"
printf 'return "source"\n' > "$R/lua/mailhook/zz_probe.lua"
is "$(probe)" "bytecode" "(the probe again matches)"
{ head_of "$R/lua/mailhook/zz_probe.lua"; head -c 20 "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac.t"
mv "$R/build/luac/mailhook/zz_probe.luac.t" "$R/build/luac/mailhook/zz_probe.luac"
is "$(probe)" "source" "a truncated .luac falls back to the source"
rm "$R/build/luac/mailhook/zz_probe.luac"
is "$(probe)" "source" "a missing .luac falls back to the source"
{ head_of "$R/lua/mailhook/zz_probe.lua"; cat "$T/dump"; } > "$R/build/luac/mailhook/zz_probe.luac"
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
# without the names of local variables (scripts/build-luac, lean): line numbers and the
# code stay; the same chunk parsed from source has the names (the cost they add to a
# one-shot command's start: docs/perf-hook.md)
out=$("$MAILHOOK" -e '
  local s = require "mailhook.settings"
  local fn = s.load
  local parsed = assert(loadfile(debug.getinfo(fn, "S").source:sub(2)))()
  io.write(tostring(debug.getlocal(fn, 1)), " ", tostring(debug.getlocal(parsed.load, 1)), " ",
           next(debug.getinfo(fn, "L").activelines) and "lines" or "nolines", " ",
           string.dump(fn, true) == string.dump(parsed.load, true) and "same" or "differ")')
like "$out" "^nil [a-z_]+ lines same$" \
   "a precompiled function carries no local names, but its line numbers and the same code as its source ($out)"
out=$("$MAILHOOK" -e 'local ok, e = pcall(require("mailhook.args").parse, 42) io.write(tostring(e))' 2>&1)
like "$out" "/lua/mailhook/args.lua:[0-9]+: " "an error raised in a precompiled module names its file and line ($out)"
# build-luac checks its lean chunk (loaded back: the same code, its line info where it read
# it) and says when it keeps the names instead: for none of ours, and every chunk make wrote
# is the one it writes now
n=0 same=0
: > "$T/lb.err"
for f in $(cd "$ROOT" && find lua -name '*.lua' | sort); do
  (cd "$ROOT" && "$MAILHOOK" scripts/build-luac "$f" "$T/lb.luac") 2>> "$T/lb.err"
  n=$((n + 1))
  cmp -s "$T/lb.luac" "$BUILD/luac/${f#lua/}c" && same=$((same + 1))
done
is "$(cat "$T/lb.err")" "" "build-luac drops the local names of every module ($n)"
is "$same" "$n" "and make's chunks are those"

out=$(stale "$ROOT/lua" "$BUILD/luac")
printf '%s\n' "$out" | sed '1d; s/^/# stale or missing: /'
is "$(printf '%s\n' "$out" | sed 1d)" "" "make precompiled every lua/ module, each matching its source ($(echo "$out" | head -1))"

# `make install`: the precompiled modules go to PREFIX/lib/mailhook/luac and the
# installed binary loads them (relocatable: the tree is moved first).  Staged at the
# build's own PREFIX, the binary installed as built (tests/lib/tap.sh stage_install_build).
sum_before=$(cksum "$BUILD/lua/mailhook/core.so" "$BUILD/mailhook" "$BUILD/instpaths.stamp" 2>/dev/null)
stage_install_build "$T/stage" install >"$T/make.out" 2>&1
is "$?" 0 "make install DESTDIR= runs"
is "$(cksum "$BUILD/lua/mailhook/core.so" "$BUILD/mailhook" "$BUILD/instpaths.stamp" 2>/dev/null)" "$sum_before" \
  "the install changed nothing of this build: binary, Lua module, compiled-in paths (a sanitizer build stays one)"
P=$STAGED
P2="$T/moved"
mv "$P" "$P2"
IMH="$P2/bin/mailhook"
ILUA="$P2/share/mailhook/lua"
ILUAC="$P2/lib/mailhook/luac"
out=$(stale "$ILUA" "$ILUAC")
printf '%s\n' "$out" | sed '1d; s/^/# not installed or stale: /'
n=$(printf '%s\n' "$out" | head -1)
ok "$([ -z "$(printf '%s\n' "$out" | sed 1d)" ] && [ "$n" -gt 10 ]; echo $?)" "every installed module has its precompiled chunk in PREFIX/lib/mailhook/luac ($n)"
# the probe, in the installed tree: a .luac whose bytecode differs from its source
printf 'return "source"\n' > "$ILUA/mailhook/zz_probe.lua"
{ head_of "$ILUA/mailhook/zz_probe.lua"; cat "$T/dump"; } > "$ILUAC/mailhook/zz_probe.luac"
iprobe() { "$IMH" -e 'io.write((require "mailhook.zz_probe"))' 2>&1; }
is "$(iprobe)" "bytecode" "the installed binary loads a matching chunk from PREFIX/lib/mailhook/luac"
printf 'return "source" -- edited after install\n' > "$ILUA/mailhook/zz_probe.lua"
is "$(iprobe)" "source" "and parses a source edited after install"
out=$("$IMH" -e '
  local s = require "mailhook.settings"
  local i = debug.getinfo(s.load, "S")
  io.write(i.source, " ", i.linedefined > 0 and "lines" or "nolines")')
is "$out" "@$ILUA/mailhook/settings.lua lines" \
   "an installed precompiled module is named as its installed source (not the build tree's), with lines"
out=$("$IMH" -e 'local ok, e = pcall(require("mailhook.args").parse, 42) io.write(tostring(e))' 2>&1)
like "$out" "/moved/share/mailhook/lua/mailhook/args.lua:[0-9]+: " "an error raised in it names the installed file and its line"
# a real module edited after install: the edit is what runs
{ printf 'MH_EDITED = "yes"\n'; cat "$ILUA/mailhook/pretty.lua"; } > "$T/p" && mv "$T/p" "$ILUA/mailhook/pretty.lua"
is "$("$IMH" -e 'require "mailhook.pretty" io.write(tostring(MH_EDITED))')" "yes" \
   "a real module edited after install runs as edited"
is "$(printf '{1}\n' | MAILHOOK_HISTORY= "$IMH" repl 2>&1)" "{ 1 }" "the installed binary works on (its REPL)"
done_testing
