# Service, issue 14: `log = stderr | syslog | journal`, and the mail log — one line per message
# and recipient once its fate is known (lua/mailhook/maillog.lua):
#   ID: to=<rcpt>, from=<sender>, uid=N, size=N, relay=host[addr]:port, delay=S, attempts=N,
#       dsn=X.Y.Z, status=sent|deferred|failed (reply)
# against a real aiosmtpd (STARTTLS, AUTH, per-recipient 451 and 550).  stderr: the lines;
# journal: the native protocol to a socket of the test's (MAILHOOK_JOURNAL_SOCKET), with the
# MAILHOOK_* fields, priorities and a multi-line value framed by length; syslog: syslog(3) to
# /dev/log, bound by the test in a private mount namespace (an overlay on /dev: the machine's
# /dev is never touched), with the facility of the settings.  No sink ever carries the
# password (nor its base64 forms).  A sink with nothing listening falls back to stderr, saying so.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/service.sh"

make_certs "$T/certs" || exit 1
PASS="Pw-$RANDOM-s3cret#x"
B64=$("$PY" -c 'import base64,sys; u,p=sys.argv[1:]; print(base64.b64encode(b"\0"+u.encode()+b"\0"+p.encode()).decode(), base64.b64encode(p.encode()).decode())' user "$PASS")
start_smtpd SMTP --tls starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" --auth "user:$PASS" \
  --maildir "$T/mail" --reply-rcpt "soft@example.net=451 4.2.0 mailbox busy" \
  --reply-rcpt "hard@example.net=550 5.1.1 no such user" || exit 1

# conf FILE [key=value...]: the server above, with AUTH over STARTTLS
conf() {
  local f=$1; shift
  write_conf "$f" enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" tls=starttls \
    tls_ca_file="$T/certs/ca.crt" auth=true username=user password="$PASS" retry_interval=30 "$@"
}
# queue3 CONF SPOOL: one message each to ok@, soft@ (451) and hard@ (550); sets ID_ok, ID_soft, ID_hard
queue3() {
  local r
  for r in ok soft hard; do
    printf -v "ID_$r" '%s' "$(echo "body for $r" | "$MAILHOOK" -c "$1" -s "$2" enqueue --to "$r@example.net" --subject "to $r")"
  done
}
# The mail log line format, per status.
LINE='^([0-9a-f]{16}): to=<([^>]*)>, from=<app@example.com>, uid='"$(id -u)"', size=[0-9]+, relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+, delay=[0-9.]+, attempts=1, dsn=[245]\.[0-9]\.[0-9]+, status=(sent|deferred|failed) \((.*)\)$'
no_password() {   # no_password FILE DESC
  local f=$1 hit=0 s
  for s in "$PASS" $B64; do grep -qF -- "$s" "$f" && hit=1; done
  ok $hit "$2"
}

# --- stderr
conf "$T/stderr.conf" log=stderr
queue3 "$T/stderr.conf" "$T/sp1"
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -c "$T/stderr.conf" -s "$T/sp1" run 2>"$T/stderr.log" &
RUN=$!
on_exit "kill -9 $RUN"
wait_for 20 sh -c "grep -c ' status=' '$T/stderr.log' | grep -qx 3"
ok $? "stderr: three outcome lines (sent, deferred, failed)"
kill -TERM "$RUN"; wait "$RUN"
body() { sed -E 's/^[0-9T:.+-]+ +[a-z]+ +//' "$1"; }      # the line without timestamp and level
for st in ok:sent soft:deferred hard:failed; do
  r=${st%%:*} s=${st#*:}; id_var=ID_$r
  line=$(body "$T/stderr.log" | grep "to=<$r@example.net>")
  like "$line" "$LINE" "stderr: the $s line has every field ($r@example.net)"
  like "$line" "^${!id_var}: .* status=$s \(" "stderr: queue id ${!id_var}, status=$s"
done
like "$(body "$T/stderr.log" | grep 'to=<ok@')" "dsn=2\.0\.0, status=sent \(250 " "sent: with the server's 250 reply"
like "$(body "$T/stderr.log" | grep 'to=<soft@')" "dsn=4\.2\.0, status=deferred \(451 4\.2\.0 mailbox busy\)" "deferred: the 451 reply"
like "$(body "$T/stderr.log" | grep 'to=<hard@')" "dsn=5\.1\.1, status=failed \(550 5\.1\.1 no such user\)" "failed: the 550 reply"
like "$(grep 'to=<hard@' "$T/stderr.log")" "^[0-9T:.+-]+ +warn " "a failure is a warning, the others info"
no_password "$T/stderr.log" "stderr: the password appears nowhere (nor AUTH's base64)"

# --- journal: the native protocol to the test's socket
start_unixgram J journal "$T/journal.sock"
conf "$T/journal.conf" log=journal
queue3 "$T/journal.conf" "$T/sp2"
# and one message to both soft@ (451) and hard@ (550): hard@ is failed at once
ID_mix=$(echo "body for both" | "$MAILHOOK" -c "$T/journal.conf" -s "$T/sp2" enqueue --to soft@example.net \
  --cc hard@example.net --subject "to both")
MAILHOOK_JOURNAL_SOCKET=$T/journal.sock MAILHOOK_LOG_LEVEL=info \
  "$MAILHOOK" -c "$T/journal.conf" -s "$T/sp2" run 2>"$T/journal.err" &
RUN=$!
on_exit "kill -9 $RUN"
OUTCOMES='[r for r in recs if "MAILHOOK_STATUS" in r.get("fields", {})]'
wait_for 20 has "$J_OUT" "len($OUTCOMES) >= 5"
ok $? "journal: five outcome entries"
kill -TERM "$RUN"; wait "$RUN"
is "$(q "$J_OUT" '[r["error"] for r in recs if "error" in r]')" "[]" "every datagram is well-formed native protocol"
for st in ok:sent:6 soft:deferred:6 hard:failed:4; do
  IFS=: read -r r s prio <<<"$st"; id_var=ID_$r
  e="[r['fields'] for r in recs if r['fields'].get('MAILHOOK_RECIPIENT') == '$r@example.net'][0]"
  is "$(q "$J_OUT" "$e['MAILHOOK_STATUS']")" "$s" "journal: MAILHOOK_STATUS=$s for $r@example.net"
  is "$(q "$J_OUT" "$e['MAILHOOK_QUEUE_ID']")" "${!id_var}" "MAILHOOK_QUEUE_ID is the id enqueue printed"
  is "$(q "$J_OUT" "$e['PRIORITY']")" "$prio" "PRIORITY=$prio"
  like "$(q "$J_OUT" "$e['MESSAGE']")" "$LINE" "MESSAGE is the mail log line"
  like "$(q "$J_OUT" "$e['MAILHOOK_MESSAGE_ID']")" '^<[^<>@ ]+@[^<> ]+>$' "MAILHOOK_MESSAGE_ID is the message's Message-ID"
  is "$(q "$J_OUT" "[$e[k] for k in ('SYSLOG_IDENTIFIER', 'MAILHOOK_SENDER', 'MAILHOOK_ATTEMPTS', 'MESSAGE_ID')]")" \
    '["mailhook", "app@example.com", "1", "8d1c7e52a4f34b0f9b6e2d71c05a3e96"]' \
    "SYSLOG_IDENTIFIER, MAILHOOK_SENDER, MAILHOOK_ATTEMPTS and the catalog MESSAGE_ID"
  is "$(q "$J_OUT" "$e.get('MAILHOOK_UID')")" "$(id -u)" "MAILHOOK_UID: who submitted it"
done
is "$(q "$J_OUT" "[[r['fields'].get(k) for k in ('MAILHOOK_RECIPIENT', 'MAILHOOK_STATUS', 'MAILHOOK_DSN', 'MAILHOOK_SMTP_REPLY')] for r in recs if r['fields'].get('MAILHOOK_QUEUE_ID') == '$ID_mix']")" \
  '[["soft@example.net", "deferred", "4.2.0", "451 4.2.0 mailbox busy"], ["hard@example.net", "failed", "5.1.1", "550 5.1.1 no such user"]]' \
  "journal: in a message with a deferred recipient, the one refused for good has MAILHOOK_STATUS=failed"
is "$(q "$J_OUT" "[r['fields'] for r in recs if r['fields'].get('MAILHOOK_RECIPIENT') == 'soft@example.net'][0]['MAILHOOK_SMTP_REPLY']")" \
  "451 4.2.0 mailbox busy" "MAILHOOK_SMTP_REPLY: the server's reply"
is "$(q "$J_OUT" "[r['fields'] for r in recs if r['fields'].get('MAILHOOK_RECIPIENT') == 'hard@example.net'][0]['MAILHOOK_DSN']")" \
  "5.1.1" "MAILHOOK_DSN: its enhanced code"
# the stderr run delivered 000001.eml, this run 000002.eml
mid=$(grep -m1 -i '^Message-ID:' "$T/mail/000002.eml" | sed 's/^[^:]*: *//' | tr -d '\r')
is "$(q "$J_OUT" "[r['fields'] for r in recs if r['fields'].get('MAILHOOK_STATUS') == 'sent'][0]['MAILHOOK_MESSAGE_ID']")" \
  "$mid" "the sent one's MAILHOOK_MESSAGE_ID is the Message-ID the server received"
like "$(q "$J_OUT" "[r['fields']['MESSAGE'] for r in recs if 'delivering' in r['fields'].get('MESSAGE', '')][0]")" \
  "mailhook run: delivering" "the service's other lines go to the journal too"
unlike "$(cat "$T/journal.err")" "status=" "and not to stderr"
no_password "$J_OUT" "journal: the password appears nowhere (nor AUTH's base64)"
# a value holding a newline is framed by its length (the binary form of the protocol)
MAILHOOK_JOURNAL_SOCKET=$T/journal.sock "$MAILHOOK" -e '
  local core = require "mailhook.core"
  assert(core.logsink.set("journal"))
  core.logsink.entry("warn", "first line\nsecond line", { MAILHOOK_TEST = "a=b\nc" })'
wait_for 10 has "$J_OUT" "any(r['fields'].get('MAILHOOK_TEST') == 'a=b\nc' for r in recs)"
ok $? "a multi-line field arrives whole (NAME, 64-bit length, bytes)"
is "$(q "$J_OUT" "[r['fields']['MESSAGE'] for r in recs if 'MAILHOOK_TEST' in r['fields']][0] == 'first line\nsecond line'")" \
  True "and a multi-line MESSAGE"

# an entry's MESSAGE and its fields follow the rule of every log line (runtime/text.h): an
# ESC, a C1 CSI, a direction override as '?', lines kept (they went to the journal raw)
MAILHOOK_JOURNAL_SOCKET=$T/journal.sock "$MAILHOOK" -e '
  local core = require "mailhook.core"
  assert(core.logsink.set("journal"))
  core.logsink.entry("warn", "esc\27[2J c1\194\155\50J rlo\226\128\174x\nnext", { MAILHOOK_TEST2 = "a\27]0;t\7b\tc" })'
wait_for 10 has "$J_OUT" "any('MAILHOOK_TEST2' in r['fields'] for r in recs)"
ok $? "journal: the entry with control characters arrives"
is "$(q "$J_OUT" "[r['fields']['MESSAGE'] for r in recs if 'MAILHOOK_TEST2' in r['fields']][0] == 'esc?[2J c1?2J rlo?x\nnext'")" \
  True "journal: its MESSAGE holds no ESC, C1 or override, its lines kept"
is "$(q "$J_OUT" "[r['fields']['MAILHOOK_TEST2'] for r in recs if 'MAILHOOK_TEST2' in r['fields']][0] == 'a?]0;t?b\tc'")" \
  True "journal: nor its fields (a tab kept)"

# nothing listens: the service says so and logs to stderr
conf "$T/nojournal.conf" log=journal
echo x | "$MAILHOOK" -c "$T/nojournal.conf" -s "$T/sp3" enqueue --to ok@example.net >/dev/null
MAILHOOK_JOURNAL_SOCKET=$T/nothing.sock MAILHOOK_LOG_LEVEL=info \
  "$MAILHOOK" -c "$T/nojournal.conf" -s "$T/sp3" run 2>"$T/nojournal.err" &
RUN=$!
on_exit "kill -9 $RUN"
wait_for 20 grep -q "status=sent" "$T/nojournal.err"
ok $? "no journal listening: the outcome line goes to stderr"
kill -TERM "$RUN"; wait "$RUN"
like "$(cat "$T/nojournal.err")" "log = journal is not possible here .*nothing.sock" "saying why, naming the socket"

# --- syslog: syslog(3) to /dev/log in a private mount namespace
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
  conf "$T/syslog.conf" log=syslog syslog_facility=local3
  queue3 "$T/syslog.conf" "$T/sp4"
  mkdir -p "$T/devup" "$T/devwork"
  cat > "$T/inner.sh" <<'EOF'
# runs in a private mount namespace: /dev is an overlay, so /dev/log is the test's own
set -u
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$T/devup,workdir=$T/devwork" /dev || exit 3
rm -f /dev/log                                 # a whiteout in the overlay only
poll() { local i; for i in $(seq 400); do eval "$1" && return 0; sleep 0.05; done; return 1; }
# first nothing listens: the service must say so
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -c "$T/syslog.conf" -s "$T/sp5" run 2>"$T/nosyslog.err" &
pid=$!
poll "grep -q 'delivering' '$T/nosyslog.err'"; kill -TERM $pid; wait $pid
"$PY" "$ROOT/tests/peers/unixgram.py" --mode syslog --socket /dev/log --out "$T/syslog.jsonl" >"$T/syslogd.log" 2>&1 &
lp=$!
poll "grep -q Bound '$T/syslogd.log'" || { kill $lp; exit 4; }
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -c "$T/syslog.conf" -s "$T/sp4" run 2>"$T/syslog.err" &
pid=$!
echo "$pid" > "$T/syslog.pid"
poll "[ \$(cat '$T/syslog.jsonl' 2>/dev/null | grep -c 'status=') -ge 3 ]"; rc=$?
kill -TERM $pid; wait $pid
kill $lp; wait $lp
exit $rc
EOF
  T=$T MAILHOOK=$MAILHOOK PY=$PY ROOT=$ROOT unshare --mount --propagation private bash "$T/inner.sh"; rc=$?
  is "$rc" 0 "syslog: three outcome lines reach /dev/log"
  [ ! -e /dev/log ] || [ -S /dev/log ]; ok $? "(the machine's /dev is as it was)"
  like "$(cat "$T/nosyslog.err")" "log = syslog is not possible here .*/dev/log" "nothing on /dev/log: the service says so, on stderr"
  S=$T/syslog.jsonl
  is "$(q "$S" '[r["error"] for r in recs if "error" in r]')" "[]" "every datagram is a syslog(3) line"
  pid=$(cat "$T/syslog.pid")
  # (the rules worker, a process of its own, logs there too: its own pid, a child of the service)
  is "$(q "$S" "sorted(set(r['ident'] for r in recs))")" '["mailhook"]' "ident mailhook"
  is "$(q "$S" "$pid in set(r['pid'] for r in recs) and len(set(r['pid'] for r in recs)) <= 2")" True \
    "with the service's pid (and its rules worker's)"
  for st in ok:sent:158 soft:deferred:158 hard:failed:156; do
    IFS=: read -r r s pri <<<"$st"; id_var=ID_$r
    e="[r for r in recs if 'to=<$r@example.net>' in r['msg']][0]"
    like "$(q "$S" "$e['msg']")" "$LINE" "syslog: the $s line for $r@example.net"
    like "$(q "$S" "$e['msg']")" "^${!id_var}: .*status=$s " "with its queue id"
    is "$(q "$S" "$e['pri']")" "$pri" "facility local3, severity $([ "$s" = failed ] && echo warning || echo info) (<$pri>)"
  done
  no_password "$S" "syslog: the password appears nowhere (nor AUTH's base64)"
  unlike "$(cat "$T/syslog.err")" "status=" "nothing of it on stderr"
else
  for d in "syslog: three outcome lines reach /dev/log" "(the machine's /dev is as it was)" "nothing on /dev/log: fallback" \
           "every datagram is a syslog(3) line" "ident and pid" "sent line" "queue id" "priority" "deferred line" \
           "queue id" "priority" "failed line" "queue id" "priority" "no password" "nothing on stderr"; do
    ok 0 "$d # SKIP needs root and unshare --mount (a private /dev/log)"
  done
fi
done_testing
