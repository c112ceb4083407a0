# Manual pages, issue 14: mailhook(1), mailhook.conf(5) and mailhook-lua(3), built by `make`
# from man/*.scd (scdoc), render with `man -l` without a single warning, and match the code:
# every command the CLI dispatches (lua/mailhook/cli.lua's list, scripts/*.lua,
# lua/mailhook/cmd/*.lua), every global option of runtime/main.c, every sendmail option
# lua/mailhook/cmd/sendmail.lua parses, every key of lua/mailhook/settings.lua and every
# function of `require "mailhook"` is documented — the lists come from the code, so a new
# command, option, setting or function without its documentation fails here.
. "$ROOT/tests/lib/tap.sh"

M=$BUILD/man
# Each page is rendered once per width (man is the cost of this file) and read from $T after.
render() { cat "$T/$(basename "$1").${2:-80}"; }
for p in mailhook.1 mailhook.conf.5 mailhook-lua.3 mailhook-drop.8; do
  MANWIDTH=80 man --warnings -l "$M/$p" > "$T/$p.80" 2>"$T/$p.warn"
  MANWIDTH=250 man -l "$M/$p" > "$T/$p.250" 2>/dev/null
done
for p in mailhook.1 mailhook.conf.5 mailhook-lua.3 mailhook-drop.8; do
  [ -s "$M/$p" ]; ok $? "$p is built (make)"
  [ "$M/$p" -nt "$ROOT/man/$p.scd" ] || [ ! "$ROOT/man/$p.scd" -nt "$M/$p" ]
  ok $? "$p is up to date with man/$p.scd"
  warn=$(cat "$T/$p.warn")
  is "$warn" "" "$p renders with no warning (man --warnings -l)"
  like "$(render "$M/$p" | head -3)" "^${p%%.*}" "$p starts with its title"
  # columns are characters: groff 1.23 (Debian 13) hyphenates with U+2010, three bytes,
  # which a byte-counting awk (mawk) took for two columns too many
  n=$(render "$M/$p" | perl -CSD -ne 'print if length($_) > 81' | wc -l)
  is "$n" 0 "$p: no line wider than 80 columns at MANWIDTH=80"
done

# the pages of the sendmail names (packaging/*.scd, built by make and by debian/rules,
# installed with the links and by mailhook-mta): each renders without a
# warning, within 80 columns, and each program the package ships has its page (lintian's
# no-manual-page)
for src in "$ROOT"/packaging/*.scd; do
  p=$(basename "$src" .scd)
  scdoc < "$src" > "$T/pkg-$p"; ok $? "packaging/$p.scd builds (scdoc)"
  MANWIDTH=80 man --warnings -l "$T/pkg-$p" > "$T/pkg-$p.80" 2>"$T/pkg-$p.warn"
  is "$(cat "$T/pkg-$p.warn")" "" "$p renders with no warning"
  like "$(head -3 "$T/pkg-$p.80")" "^${p%%.*}" "$p starts with its title"
  is "$(perl -CSD -ne 'print if length($_) > 81' "$T/pkg-$p.80" | wc -l)" 0 "$p: no line wider than 80 columns"
done
for f in $(awk '{ print $1 }' "$ROOT/debian/mailhook-mta.install") $(awk '{ print $2 }' "$ROOT/debian/mailhook-mta.links"); do
  n=$(basename "$f")
  grep -qx "debian/build/$n\.[0-9]" "$ROOT/debian/mailhook-mta.manpages" && [ -e "$ROOT/packaging/$(grep -x "debian/build/$n\.[0-9]" "$ROOT/debian/mailhook-mta.manpages" | xargs basename).scd" ]
  ok $? "mailhook-mta's $n has its manual page (debian/mailhook-mta.manpages, packaging/)"
done

# The section SECTION of a page, rendered wide (terms on one line each).
section() { render "$1" 250 | awk -v s="$2" '/^[A-Z]/ { on = ($0 == s) ; next } on'; }
# Terms of a section: the lines indented by 7 spaces (the tagged paragraphs' heads).
terms() { section "$1" "$2" | grep -E '^       [^ ]'; }

# --- commands: what `mailhook COMMAND` can run
cmds=$("$MAILHOOK" -e '
  local seen, out = {}, {}
  local function add(n) if not seen[n] then seen[n] = true; out[#out + 1] = n end end
  for _, c in ipairs(require("mailhook.cli").commands) do add(c[1]) end
  local core = require "mailhook.core"
  for _, dir in ipairs { core.paths.scripts, core.paths.lua .. "/mailhook/cmd" } do
    local p = io.popen("ls " .. dir)
    for f in p:lines() do local n = f:match("^([%w_-]+)%.lua$"); if n then add((n:gsub("_", "-"))) end end
    p:close()
  end
  table.sort(out); print(table.concat(out, " "))')
like "$cmds" "run.*sendmail" "the command list comes from the code ($cmds)"
T1=$(terms "$M/mailhook.1" COMMANDS)
for c in $cmds; do
  like "$T1" "^       $c( |,|$)" "mailhook(1) COMMANDS documents '$c'"
done

# --- global options: every option runtime/main.c compares against
opts=$(grep -oE 'strcmp\(o, "-[-a-z]+"\)' "$ROOT/runtime/main.c" | grep -oE '"-[-a-z]+"' | tr -d '"' | grep -v '^--$' | sort -u)
like "$(echo $opts)" "-c .*-s" "the option list comes from runtime/main.c ($(echo $opts))"
O1=$(terms "$M/mailhook.1" OPTIONS)
for o in $opts; do
  like "$O1" "(^|[ ,])$o( |,|$)" "mailhook(1) OPTIONS documents '$o'"
done

# --- sendmail options: every letter of cmd/sendmail.lua's getopt tables (FLAG, WITH_VALUE),
# its -b modes and -q
sopts=$( { sed -n '/^local WITH_VALUE = {/,/}/p; /^local FLAG = {/,/}/p' "$ROOT/lua/mailhook/cmd/sendmail.lua" \
           | grep -oE '\b[A-Za-z] = 1' | sed -E 's/^(.) = 1/-\1/'
         grep -oE 'm == "[a-zA-Z]"' "$ROOT/lua/mailhook/cmd/sendmail.lua" | sed -E 's/m == "(.)"/-b\1/'
         echo -q; } | sort -u)
like "$(echo $sopts)" "-t" "the sendmail options come from the code ($(echo $sopts))"
S1=$(section "$M/mailhook.1" "SENDMAIL COMPATIBILITY")
for o in $sopts; do
  like "$S1" "(^|[ ,])$o" "mailhook(1) SENDMAIL COMPATIBILITY documents '$o'"
done

# --- settings: every key of the schema
keys=$("$MAILHOOK" -e 'print(table.concat(require("mailhook.settings").keys, " "))')
like "$keys" "enabled.*log" "the settings come from lua/mailhook/settings.lua"
C5=$(render "$M/mailhook.conf.5" 250 | grep -E '^       [a-z_]+( |$)')
for k in $keys; do
  like "$C5" "^       $k( |$)" "mailhook.conf(5) documents '$k'"
done

# --- the Lua API: every field of `require "mailhook"` and of mh.log
api=$("$MAILHOOK" -e '
  local mh, out = require "mailhook", {}
  for k in pairs(mh) do out[#out + 1] = "mh." .. k end
  for k in pairs(mh.log) do out[#out + 1] = "mh.log." .. k end
  table.sort(out); print(table.concat(out, " "))')
like "$api" "mh.enqueue" "the API list comes from the code"
L3=$(render "$M/mailhook-lua.3" 250)
for f in $api; do
  like "$L3" "(^|[^a-z_.])${f//./\\.}([^a-z_]|$)" "mailhook-lua(3) documents $f"
done
done_testing
