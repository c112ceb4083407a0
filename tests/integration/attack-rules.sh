# Rules and the code mailhook loads, attacked the way issue 10's catalogue did
# once its fixes were in: what still got through, each pinned here.
#   - a rule writing a forged frame on the rules worker's channel (LuaSocket's
#     setfd(3); os.execute "... >&3"): the service ran the frame as code, and
#     `while true do end` froze delivery with SIGTERM ignored;
#   - a rule state file that is code: every `hook` using that key was ended by
#     the watchdog, for ever;
#   - os.exit in a handler: `hook` exited 0 before the other handlers ran;
#   - a rule enqueuing in a loop: as many messages as its time budget allowed
#     (~200,000 on a disk whose fsync is cheap), at every event;
#   - a rule file any user may write, or another user owns: run with our rights;
#     a password_command in settings any user may write: run too;
#   - a FIFO named like a site template: `hook` blocked in the open;
#   - a module missing from mailhook's folders was loaded from the current
#     folder (root running `mailhook stats`, a typo, in /tmp ran
#     /tmp/mailhook/cmd/stats.lua, or a C module ./mailhook/cmd/stats.so).
# Every command runs under `timeout`: a hang is a failed test, never a stuck suite.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

LIMIT=15
run() { OUT=$(timeout -k 2 "$LIMIT" "$@" 2>&1); RC=$?; }

PORT=$(free_port)
mkdir -p "$T/rules"
conf_for "$PORT" rules="$T/rules" rule_timeout=2
peer_start "$PORT" "$T/peer"

# --- a frame forged by a rule on the worker's channel ---------------------------------
cat > "$T/rules/forge.lua" <<'EOF'
-- loaded in the rules worker of `mailhook run`: fd 3 is its channel to the service
if SERVICE then
  os.execute("printf '17\\nwhile true do end' >&3 2>/dev/null")   -- a program it starts
  local s = require("socket").tcp()                              -- and the rule itself
  s:setfd(3)
  local frame = "return {op = (function() while true do end end)()}"
  s:send(#frame .. "\n" .. frame)
  s:setfd(-1)
end
EOF
svc_start
wait_for "$LIMIT" grep -q "rule file(s) loaded" "$T/svc.log"; ok $? "the service started its rules worker"
enqueue 1 >/dev/null
wait_for "$LIMIT" received_at_least "$T/peer" 1
ok $? "a rule forging frames on the worker's channel: the service still delivers"
kill -TERM "$SVC"
wait_for 10 sh -c "! kill -0 $SVC 2>/dev/null"; ok $? "and stops on SIGTERM"
rm -f "$T/rules/forge.lua"

# --- a rule state file that is code ----------------------------------------------------
printf 'on("thr", function() assert(throttle{key = "k", max = 3, per = 600}) end)\n' > "$T/thr.lua"
mkdir -p "$SPOOL/state/rules/throttle"
printf 'while true do end' > "$SPOOL/state/rules/throttle/k.lua"
run "$MAILHOOK" hook thr --rules "$T/thr.lua"
is "$RC" 0 "a throttle whose state file is a loop: hook succeeds (exit 0)"
like "$OUT" "rule state .*throttle/k.lua is unreadable .*not a literal.*starting afresh" "and says the file is damaged"
grep -q '"count"\]=1' "$SPOOL/state/rules/throttle/k.lua"; ok $? "the state starts afresh"

# --- os.exit in a handler ---------------------------------------------------------------
cat > "$T/bye.lua" <<'EOF'
on("bye", function() os.exit(0) end)
on("bye", function() assert(mh.enqueue { to = "ok@example.net", subject = "after exit", text = "x" }) end)
EOF
n0=$(pickup_count)
run "$MAILHOOK" hook bye --rules "$T/bye.lua"
is "$RC" 1 "os.exit in a handler: hook fails (exit 1), not a silent 0"
like "$OUT" "os.exit is not allowed in a rule" "saying why"
is "$(pickup_count)" "$((n0 + 1))" "the other handler ran and its mail is queued"

# --- a rule that enqueues in a loop -------------------------------------------------------
cat > "$T/loop.lua" <<'EOF'
require("mailhook.rules").max_enqueue = 20       -- the default, 1000, is slow to reach in a test
on("loop", function()
  for i = 1, 1000000 do pcall(mh.enqueue, { to = "ok@example.net", subject = "loop " .. i, text = "x" }) end
end)
EOF
n0=$(pickup_count)
run "$MAILHOOK" hook loop --rules "$T/loop.lua"
is "$RC" 1 "a rule enqueuing in a loop (its errors swallowed by pcall): hook fails"
like "$OUT" "over the limit of 20 messages for one rule run \(an endless loop\?\)" "naming the limit"
is "$(pickup_count)" "$((n0 + 20))" "exactly the limit was queued"
run "$MAILHOOK" -e 'io.write(require("mailhook.rules").max_enqueue)'
is "$OUT" 1000 "the limit is 1000 messages per rule run"

# --- code others could change -----------------------------------------------------------
printf 'on("ww", function() local f = io.open("%s", "w") f:write("ran") f:close() end)\n' "$T/ran" > "$T/ww.lua"
chmod 666 "$T/ww.lua"
run "$MAILHOOK" hook ww --rules "$T/ww.lua"
is "$RC" 1 "a rule file any user may write: refused (exit 1)"
like "$OUT" "ww.lua: mode 0666, writable by every user" "naming it and its mode"
[ ! -e "$T/ran" ]; ok $? "its code never ran"
chmod 644 "$T/ww.lua"
if [ "$(id -u)" = 0 ]; then
  chown 65534 "$T/ww.lua"
  run "$MAILHOOK" hook ww --rules "$T/ww.lua"
  like "$OUT" "ww.lua: belongs to uid 65534, not to the running user \(uid 0\) or root" \
    "a rule file another user owns: refused, naming the owner"
  [ ! -e "$T/ran" ]; ok $? "its code never ran"
  chown 0 "$T/ww.lua"
else
  skip "not root: cannot give a file to another user"; skip "not root"
fi
run "$MAILHOOK" hook ww --rules "$T/ww.lua"
is "$RC:$(cat "$T/ran" 2>/dev/null)" "0:ran" "the same file, ours and 0644: loaded"

cp "$CONF" "$T/pw.conf"
printf 'auth = true\nusername = u\npassword_command = "touch %s; echo secret"\n' "$T/pw-ran" >> "$T/pw.conf"
chmod 666 "$T/pw.conf"
PW='local s = require "mailhook.settings"; local p, e = s.password(assert(s.load())); io.write(tostring(p), " ", tostring(e))'
run "$MAILHOOK" -c "$T/pw.conf" -e "$PW"
like "$OUT" "pw.conf: any user may write it \(mode 0666\), and it decides where the password is sent: refused" \
  "settings any user may write (with a password_command): refused whole, and said why"
[ ! -e "$T/pw-ran" ]; ok $? "the command never ran"
chmod 600 "$T/pw.conf"
run "$MAILHOOK" -c "$T/pw.conf" -e "$PW"
like "$OUT" "^secret" "from settings only we may write: run"

# --- a FIFO named like a site template ----------------------------------------------------
mkdir -p "$T/tpl"
mkfifo "$T/tpl/alarm.subject"
printf 'templates = "%s"\n' "$T/tpl" >> "$CONF"
printf 'on("alarm", function(ev) mh.template.message("alarm", ev) end)\n' > "$T/tpl.lua"
run "$MAILHOOK" hook alarm severity=major --rules "$T/tpl.lua"
is "$RC" 1 "a FIFO named like a site template: the rule fails at once"
like "$OUT" "alarm.subject: a FIFO, not a regular file" "naming the FIFO"
unlike "$OUT" "still running|watchdog|past its budget" "in its open, not by the watchdog"

# --- modules from the current folder --------------------------------------------------------
mkdir -p "$T/cwd/mailhook/cmd"
printf 'io.open("%s", "w"):close() return function() return 0 end\n' "$T/mark-lua" > "$T/cwd/mailhook/cmd/stats.lua"
printf 'io.open("%s", "w"):close() return {}\n' "$T/mark-mh" > "$T/cwd/mailhook/nosuch.lua"
run sh -c "cd '$T/cwd' && '$MAILHOOK' stats"
is "$RC" 2 "\`mailhook stats\` (no such command) in a folder holding mailhook/cmd/stats.lua: unknown command"
[ ! -e "$T/mark-lua" ]; ok $? "the current folder's Lua file never ran"
run sh -c "cd '$T/cwd' && '$MAILHOOK' -e 'local x = require(\"mailhook\").nosuch; io.write(tostring(x))'"
[ ! -e "$T/mark-mh" ]; ok $? "mh.nosuch: ./mailhook/nosuch.lua never ran ($OUT)"
if command -v cc >/dev/null; then
  mkdir -p "$T/cwdc/mailhook/cmd"
  printf '#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) { FILE *f = fopen("%s", "w"); if (f) fclose(f); }\nint luaopen_mailhook_cmd_stats(void *L) { (void)L; return 0; }\n' \
    "$T/mark-so" > "$T/pwn.c"
  cc -shared -fPIC -o "$T/cwdc/mailhook/cmd/stats.so" "$T/pwn.c"
  run sh -c "cd '$T/cwdc' && '$MAILHOOK' stats"
  [ ! -e "$T/mark-so" ]; ok $? "nor a C module ./mailhook/cmd/stats.so (exit $RC)"
else
  skip "no C compiler"
fi
run "$MAILHOOK" -e 'io.write(package.path, ";", package.cpath)'
unlike "$OUT" "(^|;)[^/;]" "package.path and package.cpath name absolute folders only"

done_testing
