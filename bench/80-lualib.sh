# mailhook as a Lua library in a stock lua5.4 (docs/lua-library.md): what
# `require "mailhook"` costs over `lua5.4 -e ''`, and one blocking mh.enqueue
# (start -> message fsynced in the spool -> exit) next to `mailhook hook` doing
# the same through a rule.  Pairs run alternately, pinned to one CPU (lib.sh's
# alternate), median of N runs each.
. "$(dirname "$0")/lib.sh"
set -u
N=${N:-200}
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD/lua/?.so;;"
export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
printf 'enabled = true\nserver = 127.0.0.1\nfrom = pbx@example.com\n' > "$T/mailhook.conf"
chmod 600 "$T/mailhook.conf"
mkdir -p "$T/rules"
cat > "$T/rules/alarm.lua" <<'LUA'
on("alarm", function(ev)
  assert(mh.enqueue { to = "ops@example.com", subject = "[" .. ev.severity .. "] " .. ev.source, text = ev.message })
end)
LUA
ENQ='local mh = require "mailhook"
assert(mh.enqueue { to = "ops@example.com", subject = "[major] ups1", text = "on battery" })'
# one check that each command does what is measured
lua5.4 -e "$ENQ" && "$MAILHOOK" hook alarm severity=major source=ups1 message=on-battery \
  || echo "   (a command failed: the figures below are not meaningful)"
[ "$(ls "$T/spool/pickup" | grep -c '\.eml$')" = 2 ] || echo "   (the two checks did not queue two messages)"

read -r req lua < <(alternate "$N" lua5.4 -e 'require "mailhook"' -- lua5.4 -e '')
echo "require  lua5.4 -e 'require \"mailhook\"'  ${req} ms   lua5.4 -e ''  ${lua} ms   cost $(/usr/bin/python3 -c "print('%.3f' % ($req-$lua))") ms"
read -r core lua2 < <(alternate "$N" lua5.4 -e 'require "mailhook.core"' -- lua5.4 -e '')
echo "require  lua5.4 -e 'require \"mailhook.core\"' (the C module alone)  ${core} ms   cost $(/usr/bin/python3 -c "print('%.3f' % ($core-$lua2))") ms"
read -r enq hook < <(alternate "$N" lua5.4 -e "$ENQ" -- "$MAILHOOK" hook alarm severity=major source=ups1 message=on-battery)
echo "enqueue  lua5.4: require + one blocking mh.enqueue  ${enq} ms   mailhook hook alarm (rule -> mh.enqueue)  ${hook} ms   ratio $(/usr/bin/python3 -c "print('%.2f' % ($enq/$hook))")"
echo "check    $(ls "$T/spool/pickup" | grep -c '\.eml$') messages queued by $((2 * N + 2)) runs"
