# The one-shot intake commands (enqueue, sendmail -t, hook) do only what they
# need (issue 16, docs/perf-hook.md), checked by what each process opens and
# calls (strace), never by a clock: the settings file read once; each Lua
# module's source opened once and its precompiled chunk used, for the admin
# scripts too (scripts/enqueue.lua); no module the command does not use
# (mailhook.queue for an enqueue); neither OpenSSL, the TLS module nor
# readline opened; and still exactly the durable write's two fsyncs (the
# file, then pickup/ after the rename), in that order.
. "$ROOT/tests/lib/tap.sh"
if ! strace -f -o /dev/null true 2>/dev/null; then
  echo "1..0 # SKIP strace cannot trace here"
  exit 0
fi
rules_env
C=$MAILHOOK_CONF; S=$MAILHOOK_SPOOL
cat > "$T/rules/alarm.lua" <<'LUA'
on("alarm", function(ev)
  local m = mh.template.message("alarm", ev)
  assert(mh.enqueue { to = "ops@example.com", subject = m.subject, text = m.text })
end)
LUA
# traced NAME CMD...: runs CMD (stdin from $T/in) under strace into $T/NAME.tr; its status
traced() {
  local name=$1; shift
  # (LeakSanitizer cannot run under ptrace: an ASan build exits 1 there unless it is off)
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
  strace -f -qq -e trace=openat,open,fsync,fdatasync,renameat2,rename,clone,clone3,fcntl \
    -o "$T/$name.tr" "$@" < "$T/in" > "$T/$name.out" 2> "$T/$name.err"
  local rc=$?
  [ "$rc" = 0 ] || sed "s/^/#   $name: /" "$T/$name.err" | tail -5 >&2
  return "$rc"
}
# opened NAME: the files NAME's process opened, one per line (a failed open left out).  On the
# joined trace: an open another thread's call cut in two has its ENOENT on the second half.
opened() { strace_joined "$T/$1.tr" | grep -E 'open(at)?\(' | grep -v ENOENT | sed -E 's/.*open(at)?\([^"]*"([^"]*)".*/\2/'; }

echo "body" > "$T/in"
traced enqueue "$MAILHOOK" enqueue --to ops@example.com --subject hi
is "$?" 0 "enqueue queues (traced)"
printf 'From: pbx@example.com\nTo: ops@example.com\nSubject: s\n\nbody\n' > "$T/in"
traced sendmail "$MAILHOOK" sendmail -t
is "$?" 0 "sendmail -t queues (traced)"
: > "$T/in"
traced hook "$MAILHOOK" hook alarm severity=major source=ups1 message=on-battery
is "$?" 0 "hook with the alarm rule queues (traced)"
is "$(find "$S/pickup" -name '*.eml' | wc -l)" 3 "three messages queued"

for c in enqueue sendmail hook; do
  is "$(opened $c | grep -cxF "$C")" 1 "$c reads the settings file once"
  dup=$(opened $c | grep -E '/lua/.*\.lua$|/scripts/[^/]*\.lua$' | sort | uniq -d)
  is "$dup" "" "$c opens no Lua source twice"
  n_src=$(opened $c | grep -cE '/lua/mailhook/.*\.lua$')
  n_bc=$(opened $c | grep -cE '/luac/mailhook/.*\.luac$')
  ok "$([ "$n_src" -gt 3 ] && [ "$n_bc" = "$n_src" ]; echo $?)" \
     "$c loads every module it opens precompiled ($n_bc chunks for $n_src sources)"
  unlike "$(opened $c)" 'libssl|libcrypto|mailhook-tls\.so|libreadline|libtinfo' \
     "$c opens neither OpenSSL, the TLS module nor readline"
  is "$(grep -cE 'fsync\(|fdatasync\(' "$T/$c.tr")" 2 "$c makes exactly two fsyncs"
  # a file opened by the core's rule is made blocking again by one F_SETFL, no F_GETFL first
  is "$(grep -c 'F_GETFL' "$T/$c.tr")" 0 "$c: no F_GETFL to open a file (runtime/fsutil.c)"
  # the order of the durable write: fsync of the file, rename into pickup/, fsync of pickup/
  seq=$(grep -E 'fsync\(|fdatasync\(|rename(at2)?\(' "$T/$c.tr" | sed -E 's/^[0-9]+ +//; s/\(.*//' | tr '\n' ' ')
  like "$seq" '^f(data)?sync renameat2? f(data)?sync $' "$c: fsync, rename, fsync of the folder, in that order"
done
like "$(opened enqueue)" '/luac/scripts/enqueue\.luac$' "enqueue's admin script is loaded precompiled"
unlike "$(opened enqueue)" '/mailhook/queue\.lua$' "enqueue does not load mailhook.queue"
for c in enqueue sendmail hook; do   # settings' editing half (update, password...) is not an intake's
  unlike "$(opened $c)" '/mailhook/settings_edit\.luac?$' "$c does not load the settings' editing half"
done
unlike "$(opened sendmail)" '/mailhook/queue\.lua$' "sendmail -t does not load mailhook.queue"
is "$("$MAILHOOK" -e 'io.write(tostring(package.loaded["mailhook.settings"] == nil))')" true \
   "-e '' loads no settings"

# the editing half loads on first use of one of its names, and only then
out=$("$MAILHOOK" -e '
  local s = require "mailhook.settings"
  local before = package.loaded["mailhook.settings_edit"] ~= nil
  local none = s.no_such_name
  local still = package.loaded["mailhook.settings_edit"] ~= nil
  local f = s.format(assert(s.load()))
  io.write(tostring(before), " ", tostring(none), " ", tostring(still), " ",
           tostring(package.loaded["mailhook.settings_edit"] ~= nil), " ", f[1], " ",
           s.command_limits.seconds, " ", type(rawget(s, "update")))')
is "$out" "false nil false true enabled = true 10 function" \
   "settings: the editing half is loaded by the first use of one of its names, not before"

# a load of the editing half that failed is tried again at the next use
out=$("$MAILHOOK" -e '
  package.preload["mailhook.settings_edit"] = function() error("refused") end
  local s = require "mailhook.settings"
  local ok, err = pcall(function() return s.update end)
  package.preload["mailhook.settings_edit"] = nil
  io.write(tostring(ok), " ", tostring(err):match("refused") or "?", " ", type(s.update))' 2>&1)
is "$out" "false refused function" "settings: a failed load of the editing half is tried again"

# held settings are a copy: changing what load() returned changes nothing held
out=$("$MAILHOOK" -e '
  local s = require "mailhook.settings"
  local a = s.hold(assert(s.load()))
  local b = assert(s.load())
  b.server = {"changed"}
  local c = assert(s.load())
  io.write(tostring(a ~= b), " ", tostring(c.server[1]))')
is "$out" "true 127.0.0.1" "settings.hold: later loads are copies of the held settings"
# and an update by the process itself is seen by its next load
out=$("$MAILHOOK" -e '
  local s = require "mailhook.settings"
  s.hold(assert(s.load()))
  assert(s.update { from = "other@example.com" })
  io.write(assert(s.load()).from)')
is "$out" "other@example.com" "settings.hold: an update in the same process is read again"
# reading a queued message (listing, loading: the deliverer's path) takes one fstat of
# its file, the one the core's rule makes when it opens it (runtime/spool.c fill_entry)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
strace -f -qq -e trace=openat,fstat,newfstatat,statx,close -o "$T/list.tr" "$MAILHOOK" -e '
  local sp = assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")))
  local n = 0
  for e in sp:list() do n = n + 1; assert(sp:load(e.id)) end
  io.write(n)' > "$T/list.out"
is "$(cat "$T/list.out")" 3 "the three messages listed and loaded (traced)"
# (joined: the open of a file another thread's line cut has its "= FD" on its "resumed" half)
most=$(/usr/bin/python3 - <(strace_joined "$T/list.tr") <<'PY'
import re, sys
fds, n, most = set(), {}, 0
for line in open(sys.argv[1]):
    m = re.search(r'openat\(.*\.eml".*= (\d+)$', line)
    if m: fds.add(m.group(1)); n[m.group(1)] = 0; continue
    # fstat(fd) is the fstat call (glibc 2.39 on, Debian 13) or fstatat(fd, "", AT_EMPTY_PATH)
    # (Debian 12's glibc), or statx(fd, "")
    m = re.search(r'^\S+\s+(?:fstat\((\d+),|(?:newfstatat|statx)\((\d+), "")', line)
    fd = m and (m.group(1) or m.group(2))
    if fd and fd in fds: n[fd] += 1
    m = re.search(r'close\((\d+)\)', line)
    if m and m.group(1) in fds: most = max(most, n[m.group(1)]); fds.discard(m.group(1))
print(most)
PY
)
is "$most" 1 "each message file opened is fstat-ed once while open"

# The bindings are opened on first use (runtime/l_core.c): every runtime/l_NAME.c
# but l_sched, l_watch and l_embed adds exactly core.NAME the first time it is read
lazy=$(cd "$ROOT/runtime" && ls l_*.c | sed 's/^l_//; s/\.c$//' | grep -vxE 'core|sched|watch|embed' | tr '\n' ' ')
out=$("$MAILHOOK" -e '
  local core = require "mailhook.core"
  local bad = {}
  for name in (...):gmatch("%S+") do
    local before = {}
    for k in pairs(core) do before[k] = true end
    if rawget(core, name) ~= nil then bad[#bad + 1] = name .. " opened before use" end
    if type(core[name]) ~= "table" then bad[#bad + 1] = name .. " not a table" end
    for k in pairs(core) do
      if not before[k] and k ~= name then bad[#bad + 1] = name .. " also added " .. k end
    end
  end
  io.write(#bad == 0 and "ok" or table.concat(bad, "; "))' "$lazy")
is "$out" ok "each binding opens on first use and adds only its own field ($lazy)"
is "$("$MAILHOOK" -e 'local c = require "mailhook.core"; io.write(tostring(c.nothing), " ", tostring(c[1]))')" \
   "nil nil" "core: a field no binding adds is nil, as before"
# an enqueue opens only the bindings it uses (fsutil, logsink, msg, spool), none of the others
out=$("$MAILHOOK" -e '
  local core = require "mailhook.core"
  assert(require("mailhook.enqueue").enqueue { to = "ops@example.com", subject = "s", text = "b" })
  local open = {}
  for name in (...):gmatch("%S+") do
    if rawget(core, name) ~= nil then open[#open + 1] = name end
  end
  io.write(table.concat(open, " "))' "$lazy")
is "$out" "fsutil logsink msg spool" "an enqueue opens only the bindings it uses"
done_testing
