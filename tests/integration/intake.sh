# Intake from the command line: mailhook enqueue, mailhook sendmail, drop-ins,
# and mailhook queue.  Every refusal is a clear error, a non-zero exit, queues
# nothing and loses nothing already queued.
. "$ROOT/tests/lib/tap.sh"

C=$T/mailhook.conf; S=$T/spool
mh() { "$MAILHOOK" -c "$C" -s "$S" "$@"; }
n_pickup() { find "$S/pickup" -type f -name '*.eml' 2>/dev/null | wc -l; }
snapshot() { (cd "$S" && find pickup failed -type f -name '*.eml' | sort | xargs -r sha1sum) 2>/dev/null; }

# --- a settings file named with -c must exist (a typo never means "defaults")
out=$(echo body | mh enqueue --to a@ex.org 2>&1); rc=$?
is "$rc" 1 "enqueue with -c naming no file: refused"
like "$out" "no such settings file" "naming the missing file"
out=$(printf 'To: a@ex.org\n\nx\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 78 "sendmail refused too (EX_CONFIG)"
is "$(n_pickup)" 0 "nothing written"

# --- the seed's rule: nothing is generated while disabled or without a server
mh update log_level=info >/dev/null      # a settings file of defaults: enabled = false
out=$(echo body | mh enqueue --to a@ex.org 2>&1); rc=$?
is "$rc" 1 "enqueue with the default settings: refused"
like "$out" "enabled" "naming the setting to change"
out=$(printf 'To: a@ex.org\n\nx\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 69 "sendmail refused too (EX_UNAVAILABLE)"
is "$(n_pickup)" 0 "nothing written"
mh update enabled=true from=noreply@ex.org >/dev/null
out=$(echo body | mh enqueue --to a@ex.org 2>&1); rc=$?
is "$rc" 1 "enabled but no server: refused"
like "$out" "server" "naming server"
is "$(n_pickup)" 0 "nothing written"
mh update server=127.0.0.1 >/dev/null

# --- mailhook enqueue
echo "hello body" > "$T/body"
id=$(mh enqueue --to "Ann <ann@ex.org>" --cc cc@ex.org --bcc hidden@ex.org --subject "Report" \
       --attach "$ROOT/tests/lib/tap.sh" < "$T/body"); rc=$?
is "$rc" 0 "enqueue exits 0"
like "$id" "^[0-9a-f]{16}$" "and prints the id"
f=$S/pickup/$id.eml
ok $([ -f "$f" ] && echo 0 || echo 1) "the id names a file in pickup/"
like "$(head -4 "$f" | tr -d '\r' | tr '\n' ' ')" "^X-Sender: noreply@ex.org X-Receiver: ann@ex.org X-Receiver: cc@ex.org X-Receiver: hidden@ex.org" \
     "envelope lines: sender from the settings, To, Cc, Bcc"
unlike "$(tail -n +5 "$f")" "hidden@ex.org" "Bcc is not in the message that is sent"
like "$(cat "$f")" "hello body" "the body came from stdin"
like "$(cat "$f")" "filename=\"tap.sh\"" "the attachment is there"
is "$(stat -c %a "$f")" 600 "mode 0600"
before=$(snapshot)

# --- bad input: clear error, non-zero, nothing queued, nothing lost
out=$(echo x | mh enqueue --to a@ex.org --attach "$T/no-such-file.pdf" 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "missing attachment: non-zero exit ($rc)"
like "$out" "no-such-file.pdf" "names the file"
out=$(echo x | mh enqueue --to "not an address" 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "invalid address: non-zero exit ($rc)"
like "$out" "not an address" "names the address"
out=$(echo x | mh enqueue --to a@ex.org --subject "$(printf 'hi\r\nBcc: evil@ex.org')" 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "CR/LF in the subject: non-zero exit ($rc)"
like "$out" "[Ss]ubject|CR|LF" "says what was wrong: $out"
out=$(echo x | mh enqueue 2>&1); rc=$?
is "$rc" 2 "no recipient: usage error"
out=$(echo x | mh enqueue --to a@ex.org --bogus 2>&1); rc=$?
is "$rc" 2 "unknown option: usage error"
like "$out" "--bogus" "naming it"
is "$(snapshot)" "$before" "nothing queued, nothing lost by the refusals"
is "$(find "$S/tmp" -type f | wc -l)" 0 "nothing left in tmp/"

# --- an unwritable spool (as an unprivileged user; needs root to set up)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 711 "$T"; chmod 644 "$C"
  U=$T/uspool; mkdir -p "$U/tmp" "$U/pickup" "$U/failed" "$U/corrupt"
  chown nobody "$U" "$U/tmp" "$U/failed" "$U/corrupt"   # pickup/ stays root's, 0755
  NB=$(mailhook_for_others "$T/others")   # the checkout may be closed to nobody (a clone in /root)
  run_nobody() { env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$NB" -c "$C" -s "$U" "$@"; }
  out=$(echo x | run_nobody enqueue --to a@ex.org 2>&1); rc=$?
  is "$rc" 1 "unwritable pickup/: enqueue fails"
  like "$out" "pickup/: Permission denied" "with a clear error ($out)"
  out=$(printf 'To: a@ex.org\n\nx\n' | run_nobody sendmail -t 2>&1); rc=$?
  is "$rc" 73 "sendmail: EX_CANTCREAT"
  is "$(find "$U" -type f -name '*[0-9a-f]' -path '*tmp*' | wc -l)" 0 "no temporary file left behind"
  out=$(echo x | "$MAILHOOK" -c "$C" -s /proc/mailhook-spool enqueue --to a@ex.org 2>&1); rc=$?
  is "$rc" 1 "a spool that cannot be created: enqueue fails"
  like "$out" "/proc/mailhook-spool" "naming the folder"
else
  ok 0 "# SKIP unwritable spool needs root to set up"
fi

# --- mailhook sendmail
printf 'From: App <app@ex.org>\nTo: ops@ex.org\nCc: "Team, A" <team@ex.org>\nBcc: audit@ex.org,\n  more@ex.org\nSubject: alarm\n\nline 1\n.\nnot read\n' \
  | mh sendmail -t; rc=$?
is "$rc" 0 "sendmail -t exits 0"
f=$(ls -t "$S"/pickup/*.eml | head -1)
env=$(grep -a '^X-' "$f" | grep -av '^X-Spool-Size: ' | tr -d '\r' | tr '\n' ' ')
is "$env" "X-Sender: noreply@ex.org X-Receiver: ops@ex.org X-Receiver: team@ex.org X-Receiver: audit@ex.org X-Receiver: more@ex.org X-Submitter-Uid: $(id -u) " \
   "-t: recipients from To, Cc and Bcc (folded); sender from the settings"
unlike "$(grep -av '^X-' "$f")" "audit@|more@|^Bcc" "Bcc stripped from the sent copy, continuation too"
like "$(cat "$f")" "line 1" "body kept"
unlike "$(cat "$f")" "not read" "a lone dot ends the message (no -i)"
like "$(grep -a '^Date:' "$f")" "^Date: " "Date added at enqueue"
like "$(grep -a '^Message-ID:' "$f")" "^Message-ID: <.+@ex.org>" "Message-ID added at enqueue"
is "$(grep -c $'\r$' "$f")" "$(wc -l < "$f")" "every line CRLF"

printf 'Subject: x\n\nbody\n.\nmore\n' | mh sendmail -i -f sender@ex.org r1@ex.org "R2 <r2@ex.org>"; rc=$?
is "$rc" 0 "sendmail with recipients as arguments"
f=$(ls -t "$S"/pickup/*.eml | head -1)
is "$(grep -a '^X-' "$f" | grep -av '^X-Spool-Size: ' | tr -d '\r' | tr '\n' ' ')" "X-Sender: sender@ex.org X-Receiver: r1@ex.org X-Receiver: r2@ex.org X-Submitter-Uid: $(id -u) " "-f sender and argument recipients"
like "$(cat "$f")" "more" "-i: a dot line does not end the message"

before=$(snapshot)
out=$(printf 'this is not a header\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 64 "a first line that is no header starts the body (as Postfix): -t finds no recipient, EX_USAGE"
like "$out" "no recipients in To, Cc or Bcc" "says why"
out=$(printf 'To: broken address here\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 65 "bad address in To, no recipient left: EX_DATAERR"
like "$out" "no usable recipient.*'broken address here'" "naming the item: $out"
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 64 "-t without recipients: EX_USAGE"
out=$(printf 'To: a@ex.org\n\nbody\n' | mh sendmail -Q 2>&1); rc=$?
is "$rc" 64 "unknown option: EX_USAGE"
out=$(printf 'To: a@ex.org\n\nbody\n' | mh sendmail "bad rcpt" 2>&1); rc=$?
is "$rc" 65 "bad recipient argument: EX_DATAERR"
is "$(snapshot)" "$before" "refused messages queued nothing and lost nothing"
# one bad item among good ones costs only itself (tests/integration/sendmail-items.sh has more)
out=$(printf 'To: ok@ex.org, broken address here\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 0 "a bad item in To beside a good one: queued for the good one (as Postfix)"
is "$(grep -a '^X-Receiver' "$(ls -t "$S"/pickup/*.eml | head -1)" | tr -d '\r')" "X-Receiver: ok@ex.org" "the good one only"
like "$out" "To header: 'broken address here' is not an address" "the bad one named on stderr"
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail ok@ex.org "bad rcpt" 2>&1); rc=$?
is "$rc" 0 "a bad recipient argument beside a good one: queued for the good one"
like "$out" "recipient: 'bad rcpt' is not an address" "the bad one named"
out=$(: | mh sendmail a@ex.org 2>&1); rc=$?
is "$rc" 0 "an empty message is queued (as Postfix: the headers intake adds)"

# --- drop-in and mailhook queue
printf 'From: app@ex.org\r\nTo: drop@ex.org\r\nSubject: dropped\r\n\r\nhi\r\n' > "$T/d.tmp"
mv "$T/d.tmp" "$S/pickup/app-123.eml"
out=$(mh queue)
like "$out" "app-123.eml .* drop@ex.org" "a drop-in is listed before adoption, its recipients parsed"
like "$out" "$id .* ann@ex.org,cc@ex.org,hidden@ex.org" "one line per message: id ... recipients"
json=$(mh queue --json)
is "$(printf '%s' "$json" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), all("id" in e and "attempts" in e for e in d))')" \
   "$(( $(n_pickup) )) True" "--json is a valid JSON array of every message"
out=$(mh queue show "$id")
like "$out" "attempts: +0" "queue show: state"
like "$out" "Subject: Report" "and the message"
"$MAILHOOK" -s "$S" -e "local sp = require('mailhook.spool').open('$S'); assert(sp:fail('$id', {reason = '550 5.1.1 unknown user'}))"
like "$(mh queue)" "$id .*failed .*550 5.1.1" "a failed message shows its reason"
out=$(mh queue retry "$id"); rc=$?
is "$rc" 0 "queue retry"
ok $([ -f "$S/pickup/$id.eml" ] && [ ! -f "$S/failed/$id.eml" ] && echo 0 || echo 1) "back in pickup/"
out=$(mh queue rm "$id"); rc=$?
is "$rc" 0 "queue rm"
ok $([ ! -f "$S/pickup/$id.eml" ] && echo 0 || echo 1) "gone"
out=$(mh queue rm "$id" 2>&1); rc=$?
is "$rc" 1 "rm of an unknown id fails"
like "$out" "no such message" "clearly"
out=$(mh queue show ../../etc/passwd 2>&1); rc=$?
ok $([ $rc != 0 ] && echo 0 || echo 1) "an id with a slash is refused"

done_testing
