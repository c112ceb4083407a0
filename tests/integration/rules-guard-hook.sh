# `mailhook hook` whatever its rules do (issue 10 point 2): every way a rule
# can spend time or memory ends within its budget (rule_timeout = 1 s here),
# with exit 1 and a log line naming the rule, and the mail the rule made
# durable before stays queued.  Each call is bounded by `timeout 60`: before
# the budget covered these, each of them hung for ever (or grew without end).
. "$ROOT/tests/lib/tap.sh"
rules_env rule_timeout=1 rule_memory=32
cat > "$T/rules/10-guard.lua" <<'LUA'
local function first(ev)   -- mail made durable before the rule goes wrong
  assert(mh.enqueue { to = "ops@example.com", subject = "before " .. ev.event, text = "x" })
end
on("wrap", function(ev) first(ev); coroutine.wrap(function() while true do end end)() end, "wrap-loop")
on("cocreate", function(ev)
  first(ev)
  local co = coroutine.create(function() while true do coroutine.yield() end end)
  while true do coroutine.resume(co) end
end, "coroutine-pingpong")
on("pattern", function(ev) first(ev); local _ = ("a"):rep(1e5):find(".-.-.-.-b") end, "pattern")
on("gc", function(ev)
  first(ev)
  setmetatable({}, { __gc = function() while true do end end })
  collectgarbage()
end, "gc-loop")
on("gclate", function(ev)   -- collected only when the process ends, outside the rule
  first(ev)
  GC_KEEP = nil
  setmetatable({}, { __gc = function() while true do end end })
end, "gc-at-exit")
on("spawn", function(ev) first(ev); mh.spawn(function() while true do end end) end, "spawn-loop")
on("spawnwait", function(ev) first(ev); mh.spawn(function() while true do mh.sleep(0.05) end end) end, "spawn-sleeper")
on("sleep", function(ev) first(ev); mh.sleep(1e6) end, "sleeper")
on("hog", function(ev)
  first(ev)
  local t, chunk = {}, ("0123456789abcdef"):rep(4096)   -- 64 KB
  for i = 1, 1e9 do t[i] = chunk .. i end
end, "memory-hog")
on("hogpcall", function(ev)   -- catching the memory error does not help it
  first(ev)
  local t, chunk = {}, ("0123456789abcdef"):rep(65536)  -- 1 MB
  while true do pcall(function() t[#t + 1] = chunk .. #t end) end
end, "memory-hog-pcall")
on("every", function(ev) first(ev); mh.every(0.05, function() end) end, "leaves-a-timer")
on("fine", function(ev) first(ev) end, "fine")
LUA
sed -i 's/^  GC_KEEP = nil$//' "$T/rules/10-guard.lua"
pickup_has() { grep -qs "Subject: $1" "${MAILHOOK_SPOOL:-$T/spool}"/pickup/*.eml; }
# The memory hogs get a longer budget: they must end by the memory limit, and on a
# loaded machine 1 s of running time ran out before a hog reached 32 MB.
sed 's/^rule_timeout = .*/rule_timeout = 20/' "$MAILHOOK_CONF" > "$T/hog.conf"
# Rule files whose top level is stuck: each its own rules folder (beside 10-guard.lua)
# and spool, so that they run beside the others.
for top in spin pattern; do
  mkdir -p "$T/rules-$top"; cp "$T/rules/10-guard.lua" "$T/rules-$top/"
  sed "s|^rules = .*|rules = rules-$top|" "$MAILHOOK_CONF" > "$T/$top.conf"
done
printf 'while true do end\n' > "$T/rules-spin/20-spin.lua"
printf 'local x = ("a"):rep(1e5):find(".-.-.-.-b")\n' > "$T/rules-pattern/20-pattern.lua"

# run EVENT: OUT, RC, SECS
run() {
  local t0=$(date +%s%N)
  OUT=$(timeout 60 "$MAILHOOK" hook "$1" 2>&1); RC=$?
  SECS=$(( ($(date +%s%N) - t0) / 1000000000 ))
}
# start KEY EVENT: run EVENT in the background (the calls that wait, not burn, their
# budget run beside the others); result KEY: waits for it, then OUT, RC, SECS.
declare -A RUN_PID=()
start() {
  ( run "$2"; printf '%s\n' "$OUT" > "$T/run-$1.out"; echo "$RC $SECS" > "$T/run-$1.rc" ) &
  RUN_PID[$1]=$!
}
result() { wait "${RUN_PID[$1]}"; OUT=$(cat "$T/run-$1.out"); read -r RC SECS < "$T/run-$1.rc"; }
start spawnwait spawnwait
start sleep sleep
start every every
MAILHOOK_CONF=$T/spin.conf MAILHOOK_SPOOL=$T/spool-spin start spin fine
MAILHOOK_CONF=$T/pattern.conf MAILHOOK_SPOOL=$T/spool-pattern start toppattern fine

check() {   # check EVENT RULE-NAME REGEX WHAT: runs EVENT, unless started
  if [ -n "${RUN_PID[$1]:-}" ]; then result "$1"; else run "$1"; fi
  is "$RC" 1 "$4: hook exits 1 (after ${SECS} s)"
  ok "$([ "$SECS" -lt 30 ]; echo $?)" "$4: ends within its budget, not by the test's timeout"
  like "$OUT" "$2" "$4: the log names the rule"
  like "$OUT" "$3" "$4: and says why"
  pickup_has "before $1"; ok $? "$4: the mail queued before stays queued"
}
check wrap "rule wrap-loop for event 'wrap'" "stopped: exceeded its budget" "a loop in coroutine.wrap"
check cocreate "rule coroutine-pingpong for event 'cocreate'" "stopped: exceeded its budget" \
  "resuming a coroutine for ever"
check pattern "rule pattern for event 'pattern'" "stopped: still running .* inside one call" \
  "a backtracking string.find (C code, no hook runs)"
check gc "rule gc-loop for event 'gc'" "stopped: .*__gc finalizer" "a __gc finalizer that loops"
check gclate "rule gc-at-exit for event 'gclate'" "stopped: .*__gc finalizer" \
  "a looping __gc finalizer collected when the process ends"
check spawn "rule spawn-loop for event 'spawn'" "stopped: exceeded its budget" "a loop in an mh.spawn task"
check spawnwait "rule spawn-sleeper for event 'spawnwait'" "stopped: not finished 3 seconds after it started" \
  "an mh.spawn task that waits for ever"
check sleep "rule sleeper for event 'sleep'" "stopped: not finished 3 seconds after it started" \
  "a handler that waits for ever"
MAILHOOK_CONF=$T/hog.conf check hog "rule memory-hog for event 'hog'" "stopped: exceeded the memory limit of 32 MB" \
  "a memory hog"
MAILHOOK_CONF=$T/hog.conf check hogpcall "rule memory-hog-pcall for event 'hogpcall'" \
  "stopped: exceeded the memory limit of 32 MB" "a memory hog that catches the error"

result every
is "$RC" 0 "a rule that leaves a timer: hook still exits (0: the rule itself succeeded; ${SECS} s)"
ok "$([ "$SECS" -lt 30 ]; echo $?)" "promptly"

# a rule file's top level: a Lua loop (the budget) and a pattern (the watchdog)
result spin
is "$RC" 1 "a rule file whose top level loops: hook exits 1 (after ${SECS} s)"
like "$OUT" "rule file .*20-spin.lua.*stopped: exceeded its budget" "naming the file"
MAILHOOK_SPOOL=$T/spool-spin pickup_has "before fine"; ok $? "the other rule files still ran"
result toppattern
is "$RC" 1 "a rule file whose top level is stuck in a pattern: hook exits 1 (after ${SECS} s)"
ok "$([ "$SECS" -lt 30 ]; echo $?)" "within its budget"
like "$OUT" "rule file .*20-pattern.lua: stopped: still running" "naming the file"

# the settings are checked: a budget of nothing is refused
printf 'rule_timeout = 0\n' >> "$MAILHOOK_CONF"
run fine
is "$RC" 1 "rule_timeout = 0 is refused"
like "$OUT" "rule_timeout" "naming the setting"
done_testing
