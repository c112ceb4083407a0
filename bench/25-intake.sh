# One-shot intake next to its floor (issue 16): `mailhook enqueue` and
# `mailhook sendmail -t`, one process per 1 KB message into a scratch spool,
# next to bench/floor.c (a C program doing only the same durable write:
# write, fsync, rename, fsync of the folder), `lua5.4 -e ''` and /bin/true,
# alternately, pinned to one CPU.  Medians with their quartiles and the load;
# then the figures that do not depend on the load: instructions (callgrind)
# and system calls (strace -f) of one run of each.
# Goal: enqueue <= 1.3 x the floor program.
. "$(dirname "$0")/lib.sh"
set -u
: "${ROOT:=$(cd "$(dirname "$0")/.." && pwd)}" "${BUILD:=$ROOT/build}" "${MAILHOOK:=$BUILD/mailhook}"
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
FLOOR=$BUILD/bench-floor
if [ ! -x "$FLOOR" ] || [ "$ROOT/bench/floor.c" -nt "$FLOOR" ]; then
  ${CC:-cc} -O2 -o "$FLOOR" "$ROOT/bench/floor.c" || { echo "   (cannot build bench/floor.c)"; exit 1; }
fi
hook_setup "$T" 9
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
head -c 1000 /dev/zero | tr '\0' 'x' | fold -w 72 > "$T/body"
{ printf 'From: pbx@example.com\nTo: ops@example.com\nSubject: hi\n\n'; cat "$T/body"; } > "$T/msg"
# each command once, checked
STDIN_FILE=$T/body "$FLOOR" "$T/floor" < "$T/body" > /dev/null || echo "   (floor failed)"
"$MAILHOOK" enqueue --to ops@example.com --subject hi < "$T/body" > /dev/null || echo "   (enqueue failed)"
"$MAILHOOK" sendmail -t < "$T/msg" || echo "   (sendmail failed)"
[ "$(ls "$T/spool/pickup" | grep -c '\.eml$')" = 2 ] || echo "   (not queued: the figures are not meaningful)"
N=${INTAKE_BENCH_N:-100}
res=$(STDIN_FILE=$T/body alternate_spread "$N" floor "$FLOOR" "$T/floor" -- \
        enqueue "$MAILHOOK" enqueue --to ops@example.com --subject hi -- lua lua5.4 -e '' -- true /bin/true \
        -- mhe "$MAILHOOK" -e '')
res2=$(STDIN_FILE=$T/msg alternate_spread "$N" floor "$FLOOR" "$T/floor" -- sendmail "$MAILHOOK" sendmail -t)
/usr/bin/python3 - "$res" "$res2" <<'PY'
import sys
r = {}; load = {}
for i, block in enumerate(sys.argv[1:]):
    for line in block.splitlines():
        f = line.split()
        if f[0] == "load": load[i] = " ".join(f[1:])
        else: r[(i, f[0])] = tuple(map(float, f[1:]))
def s(k): m, a, b = r[k]; return "%.2f ms (quartiles %.2f-%.2f)" % (m, a, b)
fl, en, lu, tr = r[(0, "floor")], r[(0, "enqueue")], r[(0, "lua")], r[(0, "true")]
print("intake   floor program (write, fsync, rename, fsync dir)  %s" % s((0, "floor")))
print("intake   mailhook enqueue                                 %s" % s((0, "enqueue")))
print("intake   lua5.4 -e ''  %s   /bin/true  %s" % (s((0, "lua")), s((0, "true"))))
print("ratio    enqueue / floor = %.2f   (goal <= 1.3)   load %s" % (en[0] / fl[0], load[0]))
print("bound    floor + (lua5.4 -e '' - /bin/true) = %.2f ms (%.2f x the floor): any intake in a Lua interpreter; enqueue / that = %.2f"
      % (fl[0] + lu[0] - tr[0], (fl[0] + lu[0] - tr[0]) / fl[0], en[0] / (fl[0] + lu[0] - tr[0])))
# the same with this binary's own empty start (mailhook -e ''): what enqueue cannot go
# below however little it did beyond the floor's write
me = r[(0, "mhe")]
b2 = fl[0] + me[0] - tr[0]
print("bound    mailhook -e '' %s; floor + (mailhook -e '' - /bin/true) = %.2f ms (%.2f x the floor): "
      "enqueue / that = %.2f" % (s((0, "mhe")), b2, b2 / fl[0], en[0] / b2))
print("intake   mailhook sendmail -t  %s   floor %s" % (s((1, "sendmail")), s((1, "floor"))))
print("ratio    sendmail -t / floor = %.2f   load %s" % (r[(1, "sendmail")][0] / r[(1, "floor")][0], load[1]))
PY
# load-independent: instructions and system calls of one run each
printf 'count    %-28s %14s %10s\n' "command" "instructions" "syscalls"
count() {
  local label=$1; shift
  printf 'count    %-28s %14s %10s\n' "$label" "$(instructions "$@")" "$(syscalls "$@")"
}
STDIN_FILE=$T/body count "floor program" "$FLOOR" "$T/floor"
STDIN_FILE=$T/body count "mailhook enqueue" "$MAILHOOK" enqueue --to ops@example.com --subject hi
STDIN_FILE=$T/msg  count "mailhook sendmail -t" "$MAILHOOK" sendmail -t
count "mailhook hook alarm" "$MAILHOOK" hook alarm severity=major source=ups1 message=on-battery
count "mailhook -e ''" "$MAILHOOK" -e ''
count "lua5.4 -e ''" lua5.4 -e ''
