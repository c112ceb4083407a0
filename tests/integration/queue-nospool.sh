# A look at the queue makes no spool (docs/spool.md, "No spool"): `mailhook queue`,
# `queue --json`, `queue show/rm/retry ID`, `sendmail -bp`, `mailq`, `flush`, `sendmail -q` and
# mh.queue.list() on a folder that is no spool (none there, or one without pickup/)
# make nothing and say "no spool at PATH", each with its exit status.  Before, each
# made the spool (tmp/ pickup/ failed/ corrupt/ state/, owned by the caller: root's,
# which the service's user may then not write) and said "queue is empty".  Intake
# (sendmail, enqueue) still makes it.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
NS=$T/nosuch
mkdir -p "$T/bin"; ln -s "$MAILHOOK" "$T/bin/mailq"; ln -s "$MAILHOOK" "$T/bin/sendmail"
run() { OUT=$("$MAILHOOK" -s "$NS" "$@" 2>&1); RC=$?; }
NONE="no spool at $NS: nothing is queued there"

run queue
is "$RC" 1 "queue on no spool: exit 1"
like "$OUT" "^mailhook queue: $NONE" "says there is no spool there, naming it ($OUT)"
unlike "$OUT" "queue is empty" "not 'queue is empty'"
run queue --json
is "$RC" 1 "queue --json: exit 1"
is "$(printf '%s\n' "$OUT" | sed -n 2p | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"], d["error"][:11])')" \
   "False no spool at" "one JSON document: ok false, the error"
for sub in show rm retry; do
  run queue $sub 0000000000000001
  is "$RC" 1 "queue $sub ID on no spool: exit 1"
  like "$OUT" "^mailhook queue $sub: $NONE" "queue $sub says so"
done
run sendmail -bp
is "$RC" 66 "sendmail -bp on no spool: EX_NOINPUT (66)"
like "$OUT" "$NONE" "says so"
OUT=$(MAILHOOK_SPOOL=$NS "$T/bin/mailq" 2>&1); RC=$?
is "$RC" 66 "mailq: the same"
run flush
is "$RC" 0 "flush on no spool: exit 0 (nothing to deliver)"
like "$OUT" "^flush: nothing to deliver: $NONE" "says so"
# sendmail -q (cron's queue run) says it as flush does, on stderr (it said nothing), exit 0
# as flush (Postfix's sendmail -q exits 0)
OUT=$("$MAILHOOK" -s "$NS" sendmail -q 2>/dev/null); RC=$?
is "$RC:$OUT" "0:" "sendmail -q on no spool: exit 0, nothing on stdout"
run sendmail -q
like "$OUT" "^mailhook sendmail: nothing to deliver: $NONE" "and on stderr, that there is no spool there ($OUT)"
OUT=$(MAILHOOK_SPOOL=$NS "$T/bin/sendmail" -q 2>&1); RC=$?
like "$RC:$OUT" "^0:mailhook sendmail: nothing to deliver: $NONE" "the binary called as sendmail, -q: the same"
run -e 'local mh = require "mailhook"; local ok, err = pcall(mh.queue.list); print(ok, err)'
like "$OUT" "false.*$NONE" "mh.queue.list() raises 'no spool at'"
run -e 'local mh = require "mailhook"; print(mh.queue.show("0000000000000001"))'
like "$OUT" "nil	$NONE" "mh.queue.show: nil, 'no spool at'"
ok "$(test ! -e "$NS"; echo $?)" "after all of these, nothing at $NS"

# a folder without pickup/ (made by hand, or the package's maildrop/ alone): no spool, nothing made in it
mkdir -p "$NS"
run queue
like "$OUT" "no spool at $NS \(it has no pickup/ folder\)" "a folder without pickup/: said so"
run sendmail -bp; run flush; run queue show 0000000000000001
is "$(ls -A "$NS")" "" "queue, mailq, flush, show made nothing in it"
run sendmail -q
like "$RC:$OUT" "^0:mailhook sendmail: nothing to deliver: no spool at $NS \(it has no pickup/ folder\)" \
  "sendmail -q there: said so, exit 0"
is "$(ls -A "$NS")" "" "  nothing made"
# one with maildrop/ alone is the spool as installed (make install, the package), the
# service never started: its mail is listed (nothing made), and flush, a deliverer, takes it
mkdir -m 1730 "$NS/maildrop"
printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\n\nSubject: x\n\ny\n' "$(id -u)" "$(id -g)" \
  > "$NS/maildrop/0000000000000001.00000001"
run queue
is "$RC" 0 "maildrop/ alone: queue exits 0"
like "$OUT" "0000000000000001 .* maildrop " "and lists what waits there"
run sendmail -bp
like "$OUT" "in maildrop/: waits for the service" "mailq too"
like "$("$MAILHOOK" -s "$NS" queue show 0000000000000001 2>&1)" "state: +maildrop" "queue show too"
is "$(ls -A "$NS")" "maildrop" "and nothing made"
run flush
is "$(ls "$NS/pickup" | grep -c '\.eml$')" 1 "flush adopts it into pickup/ (no server: it waits there)"
is "$(cd "$NS" && ls -d pickup failed | tr '\n' ' ')" "failed pickup " "making the spool's folders (a deliverer)"

# a spool with pickup/ only (folders removed by hand): read as it is, nothing added
rm -rf "$NS"; mkdir -m 700 -p "$NS/pickup"
run queue
is "$RC:$OUT" "0:queue is empty" "pickup/ alone: a spool, empty"
run queue rm 0000000000000001
like "$OUT" "no such message" "rm: no such message"
is "$(ls -A "$NS")" "pickup" "no folder added (tmp/ failed/ corrupt/ state/ stay missing)"

# intake makes it, as before
echo hi | "$MAILHOOK" -s "$T/new" enqueue --to a@example.com --subject s >/dev/null; RC=$?
is "$RC" 0 "enqueue on no spool: makes it"
is "$(cd "$T/new" && ls -d tmp pickup failed corrupt state | tr '\n' ' ')" "corrupt failed pickup state tmp " "with its folders"
like "$("$MAILHOOK" -s "$T/new" queue)" "a@example.com" "and queue lists it"
done_testing
