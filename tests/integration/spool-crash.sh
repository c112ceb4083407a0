# Crash safety of the spool, proven by killing the enqueuer (and the deliverer)
# with SIGKILL at each write, fsync, rename and unlink in turn (strace fault
# injection), restarting, and checking that every acknowledged id is present
# exactly once and intact, tmp/ is swept, and pickup/ holds nothing torn.
# Then EIO on fsync and ENOSPC on write: a clear error, nothing acknowledged.
. "$ROOT/tests/lib/tap.sh"

if ! command -v strace >/dev/null || ! strace -f -o /dev/null -e inject=getpid:error=EPERM:when=1000 true 2>/dev/null; then
  echo "1..0 # SKIP strace with fault injection is not available"; exit 0
fi

# enqueue.lua SPOOL N: enqueues N messages (body derived from the index so a
# torn or mixed-up file is detectable); prints "ACK i id" once each is durable.
cat > "$T/enqueue.lua" <<'LUA'
local sp = assert(require("mailhook.spool").open(arg[1]))
-- strace counts calls per thread: with arg 3, the main thread spends its 2nd
-- write here, so that an injection "when=2" hits the pool thread's 2nd write
-- (the message body) and not the error message below
if arg[3] then io.stdout:write("START\n") io.stdout:flush() end
for i = 1, tonumber(arg[2]) do
  local body = string.rep(string.format("line %06d\r\n", i), 80)
  local id, err = sp:enqueue("Subject: msg " .. i .. "\r\n\r\n" .. body, { from = "a@b.c", to = { "r" .. i .. "@x.y" } })
  if not id then io.stderr:write("enqueue failed: ", err, "\n") return 1 end
  io.stdout:write("ACK ", i, " ", id, "\n")
  io.stdout:flush()
end
return 0
LUA
# check.lua SPOOL ACKFILE: the restart.  Takes the lock (sweeps tmp/), scans,
# then checks every file and every acknowledged id.  Prints PROBLEM lines.
cat > "$T/check.lua" <<'LUA'
local sp = assert(require("mailhook.spool").open(arg[1]))
assert(sp:lock())
local ids = assert(sp:scan())
local seen, by_index = {}, {}
for _, id in ipairs(ids) do
  local e, err = sp:load(id)
  if not e then print("PROBLEM unloadable " .. id .. ": " .. tostring(err))
  else
    local f = io.open(e.path, "rb"); local s = f:read("a"); f:close()
    local i = tonumber(s:match("Subject: msg (%d+)\r\n"))
    local msg = i and ("Subject: msg " .. i .. "\r\n\r\n" .. string.rep(string.format("line %06d\r\n", i), 80))
    local want = i and ("X-Sender: a@b.c\r\nX-Receiver: r" .. i .. "@x.y\r\nX-Spool-Size: " ..
                        string.format("%012d", #msg) .. "\r\nX-Submitter-Uid: " ..
                        require("mailhook.core").maildrop.whoami().uid .. "\r\n" .. msg)
    if s ~= want then print("PROBLEM torn " .. id) end
    if i then by_index[i] = (by_index[i] or 0) + 1 end
    seen[id] = true
  end
end
for line in io.lines(arg[2]) do
  local i, id = line:match("^ACK (%d+) (%x+)$")
  if id then
    if not seen[id] then print("PROBLEM acknowledged " .. id .. " (msg " .. i .. ") missing") end
    if (by_index[tonumber(i)] or 0) ~= 1 then print("PROBLEM msg " .. i .. " present " .. (by_index[tonumber(i)] or 0) .. " times") end
  end
end
for name in io.popen("ls -A '" .. arg[1] .. "/tmp'"):lines() do print("PROBLEM tmp/ not swept: " .. name) end
print("CHECKED " .. #ids)
LUA

# strace counts calls per thread: one pool thread makes the N-th call of the
# pool thread the N-th disk call of the run, so every call is hit in turn.
S=$T/spool
runs=0; problems=0; acked_total=0
for sc in write pwrite64 fsync renameat2; do
  n=1
  while :; do
    rm -rf "$S"
    ( UV_THREADPOOL_SIZE=1 strace -f -o /dev/null -e trace=$sc -e inject=$sc:signal=SIGKILL:when=$n \
      "$MAILHOOK" "$T/enqueue.lua" "$S" 3 > "$T/ack"; exit $? ) 2>/dev/null
    rc=$?
    out=$("$MAILHOOK" "$T/check.lua" "$S" "$T/ack" 2>&1)
    runs=$((runs + 1))
    acked_total=$((acked_total + $(grep -c ^ACK "$T/ack")))
    if printf '%s' "$out" | grep -q PROBLEM || ! printf '%s' "$out" | grep -q CHECKED; then
      problems=$((problems + 1)); diag "killed at $sc #$n: $out"
    fi
    # exit 0: the process finished before the n-th call; the sequence is covered
    [ $rc = 0 ] && break
    n=$((n + 1)); [ $n -gt 40 ] && break
  done
  ok $([ $n -gt 1 ] && echo 0 || echo 1) "the enqueuer was killed at each of its $((n - 1)) $sc call(s)"
done
is "$problems" 0 "after $runs kills: every acknowledged id present exactly once and intact, tmp/ swept, nothing torn"
ok $([ $acked_total -gt 0 ] && echo 0 || echo 1) "some runs acknowledged messages before the kill ($acked_total)"

# The CLI: `mailhook sendmail` killed at each of its writes, fsyncs and renames.
# Exit 0 is its acknowledgement: then the message must be there, once, intact.
C=$T/mailhook.conf
"$MAILHOOK" -c "$C" update enabled=true server=127.0.0.1 from=noreply@ex.org >/dev/null
printf 'From: app@ex.org\nTo: ops@ex.org\nSubject: via sendmail\n\n%s\n' "$(head -c 3000 /dev/zero | tr '\0' x)" > "$T/msg"
bad=0; runs=0
for sc in write fsync renameat2; do
  n=1
  while :; do
    rm -rf "$S"
    ( UV_THREADPOOL_SIZE=1 strace -f -o /dev/null -e trace=$sc -e inject=$sc:signal=SIGKILL:when=$n \
      "$MAILHOOK" -c "$C" -s "$S" sendmail -t < "$T/msg" >/dev/null 2>&1; exit $? ) 2>/dev/null
    rc=$?
    runs=$((runs + 1))
    out=$("$MAILHOOK" -s "$S" -e '
      local sp = assert(require("mailhook.spool").open(...)); assert(sp:lock())
      local n = 0
      for _, id in ipairs(assert(sp:scan())) do
        local e = assert(sp:load(id)); local f = io.open(e.path, "rb"); local s = f:read("a"); f:close()
        if s:find("Subject: via sendmail\r\n", 1, true) and s:find(string.rep("x", 3000) .. "\r\n$") then n = n + 1
        else print("TORN " .. id) end
      end
      for name in io.popen("ls -A " .. ... .. "/tmp"):lines() do print("UNSWEPT " .. name) end
      print("COUNT " .. n)' "$S" 2>&1)
    if [ $rc = 0 ]; then want="COUNT 1"; else want="COUNT [01]"; fi
    if ! printf '%s' "$out" | grep -Eq "^$want\$" || printf '%s' "$out" | grep -q "TORN\|UNSWEPT"; then
      bad=$((bad + 1)); diag "sendmail killed at $sc #$n (rc $rc): $out"
    fi
    [ $rc = 0 ] && break
    n=$((n + 1)); [ $n -gt 30 ] && break
  done
done
is "$bad" 0 "mailhook sendmail killed at each write, fsync and rename ($runs runs): acknowledged means present once and intact; nothing torn, tmp/ swept"

# The deliverer side: adoption of drop-ins and delivered() unlink; kill at each
# rename and unlink.  A drop-in is never lost: original or adopted copy remains.
cat > "$T/deliver.lua" <<'LUA'
local sp = assert(require("mailhook.spool").open(arg[1]))
assert(sp:lock())
local ids = assert(sp:scan())
for _, id in ipairs(ids) do
  local e = assert(sp:load(id))
  local f = io.open(e.path, "rb"); local s = f:read("a"); f:close()
  if s:find("Subject: drop2", 1, true) then assert(sp:delivered(id))
  else assert(sp:defer(id, { reply = "451 later", next_attempt = 1 })) end
end
return 0
LUA
cat > "$T/count.lua" <<'LUA'
-- after restart: how many messages hold each subject (drop1, drop2)
local sp = assert(require("mailhook.spool").open(arg[1]))
assert(sp:lock())
local n = {}
for _, id in ipairs(assert(sp:scan())) do
  local e = assert(sp:load(id))
  local f = io.open(e.path, "rb"); local s = f:read("a"); f:close()
  local subj = s:match("Subject: (%w+)")
  n[subj] = (n[subj] or 0) + 1
end
print(string.format("drop1=%d drop2=%d", n.drop1 or 0, n.drop2 or 0))
LUA
lost=0; runs=0
for sc in renameat2 unlinkat fsync; do
  n=1
  while :; do
    rm -rf "$S"; mkdir -p "$S/pickup"
    printf 'From: a@b.c\r\nTo: x@y.z\r\nBcc: h@y.z\r\nSubject: drop1\r\n\r\nbody\r\n' > "$S/pickup/one.eml"
    printf 'X-Sender: a@b.c\r\nX-Receiver: x@y.z\r\nSubject: drop2\r\n\r\nbody\r\n' > "$S/pickup/two.eml"
    ( UV_THREADPOOL_SIZE=1 strace -f -o /dev/null -e trace=$sc -e inject=$sc:signal=SIGKILL:when=$n \
      "$MAILHOOK" "$T/deliver.lua" "$S" >/dev/null 2>&1; exit $? ) 2>/dev/null
    rc=$?
    # drop1 is only deferred: it must survive every kill (once, or twice when
    # the kill fell between the adopted copy and the original's unlink: at
    # least once); drop2 is delivered, so it may be gone, but never doubled
    # once its delivered() returned
    if [ $rc != 0 ]; then
      out=$("$MAILHOOK" "$T/count.lua" "$S" 2>&1)
      runs=$((runs + 1))
      case $out in *drop1=0*|*rror*) lost=$((lost + 1)); diag "killed at $sc #$n: $out";; esac
    fi
    [ $rc = 0 ] && break
    n=$((n + 1)); [ $n -gt 20 ] && break
  done
done
is "$lost" 0 "deliverer killed at each rename, unlink and fsync ($runs kills): no message lost that was not delivered"

# EIO on fsync, ENOSPC on write: a clear error, nothing acknowledged, nothing left.
rm -rf "$S"
out=$(strace -f -o /dev/null -e trace=fsync -e inject=fsync:error=EIO "$MAILHOOK" "$T/enqueue.lua" "$S" 1 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "EIO on fsync: the enqueue fails"
like "$out" "fsync tmp/[0-9a-f]+: Input/output error" "with a clear error"
unlike "$out" "ACK" "and acknowledges nothing"
is "$(find "$S/pickup" "$S/tmp" -type f | wc -l)" 0 "no file left in pickup/ or tmp/"

rm -rf "$S"
out=$(strace -f -o /dev/null -e trace=write -e inject=write:error=ENOSPC:when=2 "$MAILHOOK" "$T/enqueue.lua" "$S" 1 start 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "ENOSPC on write: the enqueue fails"
like "$out" "write tmp/[0-9a-f]+: No space left on device" "with a clear error"
unlike "$out" "ACK" "and acknowledges nothing"
is "$(find "$S/pickup" "$S/tmp" -type f | wc -l)" 0 "no file left in pickup/ or tmp/"

# EIO on the folder fsync (the second fsync): the renamed file is taken back
rm -rf "$S"
out=$(strace -f -o /dev/null -e trace=fsync -e inject=fsync:error=EIO:when=2 "$MAILHOOK" "$T/enqueue.lua" "$S" 1 2>&1); rc=$?
like "$out" "fsync pickup/: Input/output error" "EIO on the folder fsync: a clear error"
is "$(find "$S/pickup" "$S/tmp" -type f | wc -l)" 0 "and the message is not left in pickup/ or tmp/"

# a failed write never loses what was queued before
rm -rf "$S"
"$MAILHOOK" "$T/enqueue.lua" "$S" 2 > "$T/ack" 2>/dev/null
strace -f -o /dev/null -e trace=fsync -e inject=fsync:error=EIO "$MAILHOOK" "$T/enqueue.lua" "$S" 1 >/dev/null 2>&1
out=$("$MAILHOOK" "$T/check.lua" "$S" "$T/ack" 2>&1)
unlike "$out" "PROBLEM" "messages queued before a failed write are intact"
like "$out" "CHECKED 2" "both still there"

done_testing
