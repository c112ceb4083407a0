# The spool's short flocks are waited for a bounded time (runtime/spool.c,
# LOCK_WAIT_MS: 10 s): DIR/seq (each new id: enqueue, sendmail, hook),
# DIR/state.lock (defer, fail, retry) and DIR/sidecars (a sidecar written
# without the deliverer lock: `queue retry`).  Their holders keep them for
# microseconds, but a holder that is stopped (Ctrl-Z, a debugger, an admin's
# `flock spool/seq sleep 1000`) made every intake hang forever: `mailhook hook`
# run by an application never returned.  Here each is held from outside (a
# process of its own, in a spool of its own, all three at once so the file
# takes one bound): the command ends after the bound with exit 1 and a message
# naming the file and its holder's pid, and saying so when that one is stopped
# (sendmail: 75, EX_TEMPFAIL), nothing half-written; once the holder is gone the same
# command succeeds and nothing queued before is lost.  The old code hung: the
# commands run under `timeout`, whose 124 fails the exit-status checks.
. "$ROOT/tests/lib/tap.sh"
PY=/usr/bin/python3
BOUND=10                  # LOCK_WAIT_MS
LIMIT=$((BOUND + 15))     # a hang (the old code) is killed here
export MAILHOOK_CONF="$T/mailhook.conf"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\nrules = rules\n' > "$MAILHOOK_CONF"
mkdir "$T/rules"
printf 'on("ping", function() assert(mh.enqueue { to = "ops@example.com", subject = "ping", text = "x" }) end)\n' \
  > "$T/rules/ping.lua"

pickup_eml() { find "$1/pickup" -maxdepth 1 -type f -name '*.eml' | wc -l; }
tmp_files() { find "$1/tmp" -mindepth 1 | wc -l; }

# A spool per lock, each with one message queued and retried once (so state.lock
# and sidecars exist, made by mailhook itself with its modes)
declare -A ID
for l in seq state.lock sidecars; do
  S=$T/s-$l
  ID[$l]=$(echo "message before" | "$MAILHOOK" -s "$S" enqueue --to ops@example.com 2>&1)
  like "${ID[$l]}" '^[0-9a-f]{16}$' "$l: a message is queued first (${ID[$l]})"
  out=$("$MAILHOOK" -s "$S" queue retry "${ID[$l]}" 2>&1); ok $? "$l: queue retry of it ($out)"
  [ -f "$S/$l" ]; ok $? "$l: $S/$l exists"
done

# hold FILE: a process holding an exclusive flock on FILE until killed; its pid in HOLDER
hold() {
  rm -f "$T/ready"
  "$PY" -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(600)' \
    "$1" "$T/ready" &
  HOLDER=$!
  on_exit "kill $HOLDER"
  wait_for 10 test -e "$T/ready"
}
declare -A HELD
for l in seq state.lock sidecars; do
  hold "$T/s-$l/$l"; ok $? "$l: held from outside (pid $HOLDER)"
  HELD[$l]=$HOLDER
done
# the state.lock holder stopped, as a Ctrl-Z'd or debugged one would be: the message says so
kill -STOP "${HELD[state.lock]}"

# timed NAME CMD...: CMD in the background under `timeout $LIMIT`, stdin empty but for
# the body; its status and wall time in ms into $T/NAME.res, its output into $T/NAME.out
timed() {
  local name=$1; shift
  ( t0=${EPOCHREALTIME//[!0-9]/}
    echo body | timeout "$LIMIT" "$@" >"$T/$name.out" 2>&1; rc=$?
    echo "$rc $(( (${EPOCHREALTIME//[!0-9]/} - t0) / 1000 ))" > "$T/$name.res" ) &
  RUNS+=($!)
}
RUNS=()
timed enqueue "$MAILHOOK" -s "$T/s-seq" enqueue --to ops@example.com
timed sendmail "$MAILHOOK" -s "$T/s-seq" sendmail ops@example.com
timed hook "$MAILHOOK" -s "$T/s-seq" hook ping
timed retry-state "$MAILHOOK" -s "$T/s-state.lock" queue retry "${ID[state.lock]}"
timed retry-sidecars "$MAILHOOK" -s "$T/s-sidecars" queue retry "${ID[sidecars]}"
wait "${RUNS[@]}"

# check NAME FILE STATUS: the run ended by itself after the bound, exit STATUS, naming FILE
check() {
  local rc ms out
  read -r rc ms < "$T/$1.res"
  out=$(cat "$T/$1.out")
  is "$rc" "$3" "$1 with $2 held: exit $3, not a hang (124: killed after $LIMIT s) ($(tail -1 "$T/$1.out"))"
  [ "$ms" -ge $((BOUND * 1000 - 100)) ] && [ "$ms" -lt $(((BOUND + 8) * 1000)) ]
  ok $? "$1: ended after the bound of $BOUND s, not much later ($ms ms)"
  like "$out" "$(printf '%s' "$2" | sed 's/[.]/[.]/g'): held by process $4 for more than $BOUND s$5" \
    "$1: the message names $2 and its holder, pid $4${5:+ (stopped)}"
}
STOPPED=", and it is stopped \(kill -CONT it, or end it\)"
check enqueue "$T/s-seq/seq" 1 "${HELD[seq]}"
check sendmail "$T/s-seq/seq" 75 "${HELD[seq]}"     # EX_TEMPFAIL: try again
check hook "$T/s-seq/seq" 1 "${HELD[seq]}"          # (a rule failed: the application is told)
check retry-state "$T/s-state.lock/state.lock" 1 "${HELD[state.lock]}" "$STOPPED"
check retry-sidecars "$T/s-sidecars/sidecars" 1 "${HELD[sidecars]}"
unlike "$(cat "$T/enqueue.out")" "stopped" "a holder that runs is not said stopped"
is "$(pickup_eml "$T/s-seq"):$(tmp_files "$T/s-seq")" "1:0" "seq: nothing queued meanwhile, nothing left in tmp/"

# the holders go: the same commands succeed, and what was queued before is still there
kill -CONT "${HELD[state.lock]}"
for l in seq state.lock sidecars; do kill "${HELD[$l]}"; wait "${HELD[$l]}" 2>/dev/null; done
out=$(echo body | timeout "$LIMIT" "$MAILHOOK" -s "$T/s-seq" enqueue --to ops@example.com 2>&1)
like "$out" '^[0-9a-f]{16}$' "seq free again: enqueue queues ($out)"
out=$(echo body | timeout "$LIMIT" "$MAILHOOK" -s "$T/s-seq" sendmail ops@example.com 2>&1)
ok $? "sendmail queues ($out)"
out=$(timeout "$LIMIT" "$MAILHOOK" -s "$T/s-seq" hook ping 2>&1)
ok $? "hook ping queues ($out)"
is "$(pickup_eml "$T/s-seq")" 4 "seq: the message queued before and the three new ones are in pickup/"
for l in state.lock sidecars; do
  out=$(timeout "$LIMIT" "$MAILHOOK" -s "$T/s-$l" queue retry "${ID[$l]}" 2>&1)
  ok $? "$l free again: queue retry succeeds ($out)"
  is "$(pickup_eml "$T/s-$l")" 1 "$l: the message queued before is still in pickup/"
done
done_testing
