# Embedding: examples/embed/host.c built against build/libmailhook.a and
# runtime/mailhook.h; mh_emit has hook's semantics (durable mail, failing
# rule named, malformed event refused).
. "$ROOT/tests/lib/tap.sh"
BUILD_DIR=${BUILD:-$ROOT/build}
SAN=""
case "$BUILD_DIR" in *asan*) SAN="-fsanitize=address,undefined" ;; esac
cc -std=c11 -Wall -Wextra $SAN -I"$ROOT/runtime" "$ROOT/examples/embed/host.c" "$BUILD_DIR/libmailhook.a" \
   $(pkg-config --libs lua5.4 libuv openssl) -lreadline -lm -o "$T/host" 2>"$T/cc.err"
ok $? "host.c compiles and links against libmailhook.a"
[ -x "$T/host" ] || { cat "$T/cc.err"; done_testing; exit; }
export MAILHOOK_ROOT="$ROOT"
mkdir -p "$T/rules"
cat > "$T/mailhook.conf" <<CONF
enabled = true
server = 127.0.0.1
from = pbx@example.com
CONF
cat > "$T/rules/vm.lua" <<'LUA'
on("voicemail", function(ev)
  if ev.fail then error("rule refuses") end
  local m = mh.template.message("voicemail", ev)
  assert(mh.enqueue { to = "owner@example.com", subject = m.subject, text = m.text })
end)
LUA
out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail caller=+33123 duration=42 mailbox=200 2>&1); rc=$?
is "$rc" 0 "mh_emit returns 0"
like "$out" "mail durable" "the host reports it"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 1 "the message is in the spool when mh_emit returns"
like "$(cat "$T"/spool/pickup/*.eml)" "Subject: New voicemail from \+33123 \(42 s\) for mailbox 200" "built by the rule and the shipped template"

# a value that is not UTF-8 (a PBX's Latin-1): read as hook reads it, Windows-1252
cat > "$T/rules/latin.lua" <<'LUA'
on("latin", function(ev)
  local f = assert(io.open(ev.out, "w")); f:write(ev.name, " ", tostring(utf8.len(ev.name) ~= nil), "\n"); f:close()
end)
LUA
"$T/host" "$T/mailhook.conf" "$T/spool" latin "name=$(printf 'Jos\351')" out="$T/latin.out" >/dev/null 2>&1
is "$(cat "$T/latin.out" 2>/dev/null)" "José true" "mh_emit: a Latin-1 value reaches the rule as UTF-8 (it was the raw bytes)"

HOST_TWICE=1 "$T/host" "$T/mailhook.conf" "$T/spool" voicemail caller=+1 >/dev/null 2>&1
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 3 "two emits on one runtime: two more messages"

out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail fail=1 2>&1); rc=$?
is "$rc" 1 "a failing rule: status 1"
like "$out" "rule voicemail@vm.lua:1 failed: .*rule refuses" "naming the handler"

out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail caller 2>&1); rc=$?
is "$rc" 2 "a key without a value: status 2"
like "$out" "field 'caller' has no value" "says so"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" 'bad event' 2>&1); rc=$?
is "$rc" 2 "a bad event name: status 2"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail event=fax caller=1 2>&1); rc=$?
is "$rc" 2 "a field named 'event': status 2"
like "$out" "field name 'event' is reserved" "says so (hook's rule)"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail caller=1 caller=2 2>&1); rc=$?
is "$rc" 2 "a key given twice: status 2"
like "$out" "field 'caller' is given twice" "says which"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail "caller=$(head -c 70000 /dev/zero | tr '\0' x)" 2>&1); rc=$?
is "$rc" 2 "a value over hook's 64 KiB limit: status 2"
like "$out" "field 'caller': 70000 bytes, over the 64 KiB limit" "named, as hook names it"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" $'vm\nFAKE' 2>&1)
like "$out" "bad event name 'vm\\\\nFAKE'" "a bad event name is shown escaped"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 3 "nothing queued by refused events"

# a settings file the host names must exist (a typo is an error, not the defaults),
# as one named by -c or $MAILHOOK_CONF
out=$("$T/host" "$T/no-such.conf" "$T/spool" voicemail caller=1 2>&1); rc=$?
is "$rc" 1 "mh_open on a settings file that does not exist fails"
like "$out" "no-such\.conf: no such settings file \(named by mh_open" "naming it and who named it"
out=$(MAILHOOK_CONF="$T/typo.conf" "$T/host" "" "$T/spool" voicemail caller=1 2>&1); rc=$?
is "$rc" 1 "mh_open(NULL, ...) with \$MAILHOOK_CONF naming no file fails"
like "$out" "typo\.conf: no such settings file \(named by \\\$MAILHOOK_CONF" "naming it"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 3 "nothing queued"

# two runtimes in one process, NULL arguments, one closed while the other goes on:
# tests/lualib/embed-two.c, built with ASan and UBSan (a leak or a bad access fails it)
cc -std=c11 -Wall -Wextra -g -fsanitize=address,undefined -fno-omit-frame-pointer -I"$ROOT/runtime" \
   "$ROOT/tests/lualib/embed-two.c" "$BUILD_DIR/libmailhook.a" \
   $(pkg-config --libs lua5.4 libuv openssl) -lreadline -lm -o "$T/embed-two" 2>"$T/cc2.err"
ok $? "embed-two.c compiles and links (ASan, UBSan)"
mkdir -p "$T/two/rules"
cp "$T/mailhook.conf" "$T/two/mailhook.conf"
echo 'on("note", function(ev) assert(mh.enqueue { to = "ops@example.com", subject = "note " .. tostring(ev.who), text = "t" }) end)' \
  > "$T/two/rules/note.lua"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$T/embed-two" "$T/two/mailhook.conf" "$T/two" >"$T/two.out" 2>"$T/two.err"; rc=$?
while IFS= read -r line; do
  case "$line" in
    "ok - "*) ok 0 "embed-two: ${line#ok - }" ;;
    "not ok - "*) ok 1 "embed-two: ${line#not ok - }" ;;
  esac
done < "$T/two.out"
is "$rc" 0 "embed-two exits 0"
unlike "$(cat "$T/two.err")" "ERROR: (Address|Leak)Sanitizer|runtime error:" "no sanitizer report"

# mh_emit ran outside any protected call: a raise in it (a push refused for
# want of memory, a function of the rules module raising: here a rule file
# replaced event_problem) reached Lua's panic and aborted the host.  Its body
# runs under lua_pcall now: status 1, with the error.
mkdir -p "$T/raise/rules"
cp "$T/mailhook.conf" "$T/raise/mailhook.conf"
cat > "$T/raise/rules/raise.lua" <<'LUA'
mh.rules.event_problem = function() error("event_problem raises") end
on("x", function() end)
LUA
out=$("$T/host" "$T/raise/mailhook.conf" "$T/raise" x a=1 2>&1); rc=$?
is "$rc" 1 "mh_emit: a raise inside it is status 1, not an abort of the host (134)"
like "$out" "mh_emit: .*raise\.lua:1: event_problem raises" "with the error"

echo 'y = 2' > "$T/rules/broken.lua"
out=$("$T/host" "$T/mailhook.conf" "$T/spool" voicemail caller=1 2>&1); rc=$?
is "$rc" 1 "mh_open fails on a broken rule file"
like "$out" "broken.lua did not load: .*undeclared global 'y'" "naming it"

done_testing
