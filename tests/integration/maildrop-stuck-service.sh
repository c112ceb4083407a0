# A file of maildrop/ the service cannot adopt (here its owner is unseen from the
# service's user namespace, systemd's PrivateUsers=: EUNSAFE; a mode 000 file of its
# user's is the same path, EACCES) stays there, tried again quietly at each scan: the
# service logs it once (its name and why), not at every scan, and `mailhook status`
# names it with why (before, status counted it "waiting for the service" and only the
# log said the service could not take it), until it is gone.  It is never deleted.
# `mailhook queue` and mailq run by a user who can read it (root, outside the service's
# namespace) say the service cannot adopt it, with its reason (they said it waited).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
if ! unshare -r true 2>/dev/null; then echo "1..0 # SKIP no user namespaces here (unshare -r)"; exit 0; fi
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
start_sink SINK || exit 1   # (a server that takes the mail: a service in an outage scans nothing)
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$SINK" tls=none tls_required=false from=pbx@example.com
spool_make
mkdir -m 1730 "$T/spool/maildrop"
drop() {   # NAME UID: a drop of that user's, as mailhook-drop writes it
  printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\n\nSubject: s\n\nbody\n' \
    "$2" "$2" > "$T/drop.tmp"
  chown "$2:$2" "$T/drop.tmp"
  mv "$T/drop.tmp" "$T/spool/maildrop/$1"   # (whole at once: the service watches maildrop/)
}
STUCK=0000000000000001.00000001
drop $STUCK 4242
MAILHOOK_LOG_LEVEL=info unshare -r "$MAILHOOK" run >"$T/run.out" 2>&1 &
svc=$!
on_exit "kill $svc 2>/dev/null; wait $svc"
wait_for 20 grep -q "maildrop/$STUCK: its owner shows as uid 65534" "$T/run.out"
ok $? "the service says why it leaves $STUCK in maildrop/ ($(cat "$T/run.out"))"
# two more scans (each adoption of a new drop is one; the stuck file is tried at each)
adopted() { [ "$(grep -c "from uid 0 (root) queued as" "$T/run.out")" -ge "$1" ]; }
for i in 2 3; do
  drop 000000000000000$i.00000001 0
  wait_for 20 adopted $((i - 1))
  ok $? "scan $i: the new drop $i adopted"
done
is "$(grep -c "$STUCK" "$T/run.out")" 1 "the stuck file is logged once, not at each scan"
[ -f "$T/spool/maildrop/$STUCK" ]; ok $? "it stays in maildrop/ (never deleted)"
out=$("$MAILHOOK" status 2>&1); rc=$?
like "$out" "1 file of maildrop/ the service cannot adopt \(tried again at each scan" \
  "status says the service cannot adopt it ($out)"
# a message that never leaves until someone acts: exit 1 (a monitoring check reads only that)
is "$rc" 1 "status exits 1 while a file of maildrop/ is stuck (it was 0)"
like "$out" "^mail is flowing, but 1 file of maildrop/ the service cannot adopt never leaves until it is fixed" \
  "its first line says the rest flows, and what waits on a human"
is "$("$MAILHOOK" status --json 2>/dev/null | J '[d["flowing"], d.get("maildrop_stuck")]')" "[false, true]" \
  "--json: flowing false, maildrop_stuck true"
like "$out" "  $STUCK since [-0-9]+ [:0-9]+: maildrop/$STUCK: its owner shows as uid 65534 \(nobody\)" \
  "  naming the file and why"
js=$("$MAILHOOK" status --json 2>/dev/null | python3 -c 'import json,sys
s=json.load(sys.stdin)["service"]; print(s.get("maildrop_stuck_total"), s["maildrop_stuck"][0]["name"])')
is "$js" "1 $STUCK" "status --json: service.maildrop_stuck names it"
# the listing, from the service's side (its namespace), says the same cause
q=$(unshare -r "$MAILHOOK" queue --json | python3 -c 'import json,sys
for e in json.load(sys.stdin): print(e.get("name"), e.get("reason") or "-")')
like "$q" "$STUCK maildrop/$STUCK: its owner shows as uid 65534" "mailhook queue lists it with the same cause ($q)"
# root's, outside that namespace, can check its owner: it listed the file as waiting for
# the service, which cannot take it; now it says so, with the service's reason
out=$("$MAILHOOK" queue 2>&1)
like "$out" "0000000000000001 .* maildrop +the service cannot adopt it +" "root's queue: the service cannot adopt it ($out)"
js=$("$MAILHOOK" queue --json | python3 -c 'import json,sys
for e in json.load(sys.stdin): print(e.get("name"), e.get("stuck"))')
like "$js" "$STUCK maildrop/$STUCK: its owner shows as uid 65534" "  --json: its stuck field says why"
like "$("$MAILHOOK" sendmail -bp 2>&1)" "in maildrop/: the service cannot adopt it: maildrop/$STUCK: its owner shows" \
  "  mailq too"
# show and retry say the same (they said it waited for the service, which had given up)
like "$("$MAILHOOK" queue show "$STUCK" 2>&1)" "waits: +in maildrop/: the service cannot adopt it: maildrop/$STUCK: its owner shows as uid 65534" \
  "  queue show NAME too"
out=$("$MAILHOOK" queue retry "$STUCK" 2>&1); rc=$?
is "$rc" 1 "  queue retry NAME: exit 1"
like "$out" "is not queued: the service cannot adopt it \(maildrop/$STUCK: its owner shows as uid 65534.*\); fix the file \(its owner, its mode\), or remove it \(.mailhook queue rm $STUCK.\)" \
  "  and says why, and the way out ($out)"
# removed: the service forgets it, status no longer names it
"$MAILHOOK" queue rm "$STUCK" >/dev/null 2>&1
drop 0000000000000004.00000001 0   # (a scan at once, as a new drop makes one)
wait_for 20 adopted 3
gone() { ! "$MAILHOOK" status 2>&1 | grep -q "cannot adopt"; }
wait_for 20 gone; ok $? "once removed, status no longer names it"
"$MAILHOOK" status >/dev/null 2>&1; is "$?" 0 "and exits 0 again"
kill -TERM $svc; wait $svc

# --- a file its owner made unreadable (mode 000), the service running as another user
# (nobody here): EACCES, logged once, named by status, listed with why; once its mode
# is fixed, the next scan adopts it
MH=$(mailhook_for_others "$T/o")
spool2=$T/spool2
"$MH" -s "$spool2" -e 'assert(require("mailhook.spool").open())' >/dev/null
mkdir -m 1730 "$spool2/maildrop"
chown -R nobody "$spool2"; chmod 644 "$MAILHOOK_CONF"; chmod a+x "$T"
HIDDEN=0000000000000005.00000001
printf 'MAILHOOK-DROP 1\nuid 0\ngid 0\npid 1\ntime 1\nto ops@example.net\n\nSubject: s\n\nbody\n' > "$T/drop.tmp"
chmod 000 "$T/drop.tmp"; mv "$T/drop.tmp" "$spool2/maildrop/$HIDDEN"
setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups env -u LD_LIBRARY_PATH HOME=/ MAILHOOK_LOG_LEVEL=info \
  "$MH" -s "$spool2" run >"$T/run2.out" 2>&1 &
svc2=$!
on_exit "kill $svc2 2>/dev/null; wait $svc2"
wait_for 20 grep -q "cannot read $HIDDEN: maildrop/$HIDDEN: Permission denied" "$T/run2.out"
ok $? "the service (nobody) says it cannot read $HIDDEN ($(cat "$T/run2.out"))"
out=$(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups env -u LD_LIBRARY_PATH HOME=/ \
      "$MH" -s "$spool2" queue --json 2>&1)
like "$out" "\"reason\":\"maildrop/$HIDDEN: Permission denied" "its user's queue lists it with why"
out=$(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups env -u LD_LIBRARY_PATH HOME=/ \
      "$MH" -s "$spool2" status 2>&1)
like "$out" "  $HIDDEN since .*Permission denied" "  status names it"
chmod 644 "$spool2/maildrop/$HIDDEN"
gone2() { [ ! -e "$spool2/maildrop/$HIDDEN" ]; }
wait_for 20 gone2; ok $? "its mode fixed: adopted at the next scan"
like "$(grep -c "$HIDDEN" "$T/run2.out")" "^1$" "  logged once until then"
done_testing
