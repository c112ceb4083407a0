# DSN (issue 12.1): sendmail -N, -R, -V (and -bs's MAIL/RCPT parameters) are carried in the
# spool file's envelope lines and sent as NOTIFY=, RET=, ENVID= only where the server
# announces DSN (aiosmtpd with --dsn records them); a server without DSN gets none (it
# would refuse them: aiosmtpd answers 555 to an unknown parameter) and the message goes.
# Bad values are warned about and ignored, as Postfix does.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
start_smtpd D --maildir "$T/dsn" --dsn --log "$T/dsn.log" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
start_smtpd N --maildir "$T/plain" --log "$T/plain.log" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$D" tls=none tls_required=false \
  from=pbx@example.com >/dev/null || { echo "Bail out! update failed"; exit 1; }
# json FILE KEY: the server's record of the MAIL or RCPT options, SIZE= left out
json() { /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(" ".join(o for o in j[sys.argv[2]] if not o.startswith("SIZE=")))' "$1" "$2"; }

printf 'Subject: dsn\n\nbody\n' | "$MAILHOOK" sendmail -N success,delay -R hdrs -V 'env id+1' a@example.net b@example.net
f=$(ls "$T/spool/pickup/"*.eml)
is "$(grep -a '^X-' "$f" | grep -av '^X-Spool-Size: ' | tr -d '\r' | tr '\n' '|')" \
   "X-Sender: pbx@example.com RET=HDRS ENVID=env+20id+2B1|X-Receiver: a@example.net NOTIFY=SUCCESS,DELAY|X-Receiver: b@example.net NOTIFY=SUCCESS,DELAY|X-Submitter-Uid: $(id -u)|" \
   "-N -R -V on the envelope lines (ENVID in xtext: space and + encoded)"
"$MAILHOOK" flush >/dev/null 2>&1
is "$(json "$T/dsn/000001.json" mail_options)" "RET=HDRS ENVID=env+20id+2B1" "a server with DSN gets RET and ENVID with MAIL FROM"
is "$(json "$T/dsn/000001.json" rcpt_options)" "NOTIFY=SUCCESS,DELAY NOTIFY=SUCCESS,DELAY" "and NOTIFY with each RCPT TO"

"$MAILHOOK" update port="$N" >/dev/null
printf 'Subject: dsn\n\nbody\n' | "$MAILHOOK" sendmail -N never -R full a@example.net
out=$("$MAILHOOK" flush 2>&1); rc=$?
is "$rc" 0 "a server without DSN: delivered ($out)"
is "$(json "$T/plain/000001.json" mail_options):$(json "$T/plain/000001.json" rcpt_options)" ":" "with no DSN parameter at all"
unlike "$(cat "$T/plain.log")" "NOTIFY|RET=" "none was ever sent to it"

out=$(printf 'Subject: x\n\ny\n' | "$MAILHOOK" sendmail -N sometimes -R most -V "$(printf 'a\tb')" a@example.net 2>&1); rc=$?
is "$rc" 0 "bad -N/-R/-V values: still queued (Postfix ignores them too)"
like "$out" "bad -N value 'sometimes'.*ignored" "-N warned about"
like "$out" "bad -R value 'most'.*ignored" "-R warned about"
like "$out" "bad -V value.*ignored" "-V warned about"
f=$(ls -t "$T/spool/pickup/"*.eml | head -1)
is "$(grep -a '^X-' "$f" | grep -av '^X-Spool-Size: ' | tr -d '\r' | tr '\n' '|')" "X-Sender: pbx@example.com|X-Receiver: a@example.net|X-Submitter-Uid: $(id -u)|" "and none of them stored"
"$MAILHOOK" update port="$D" >/dev/null
"$MAILHOOK" flush >/dev/null 2>&1
is "$(json "$T/dsn/000002.json" mail_options):$(json "$T/dsn/000002.json" rcpt_options)" ":" "nothing sent to the DSN server for it either"

# -bs: per-recipient NOTIFY and ORCPT, MAIL's RET and ENVID
printf 'EHLO c\r\nMAIL FROM:<pbx@example.com> RET=FULL ENVID=QQ314159\r\nRCPT TO:<x@example.net> NOTIFY=FAILURE ORCPT=rfc822;x@example.net\r\nRCPT TO:<y@example.net>\r\nDATA\r\nSubject: bs\r\n\r\nz\r\n.\r\nQUIT\r\n' |
  "$MAILHOOK" sendmail -bs >/dev/null
"$MAILHOOK" flush >/dev/null 2>&1
is "$(json "$T/dsn/000003.json" mail_options)" "RET=FULL ENVID=QQ314159" "-bs: MAIL's DSN parameters reach the server"
is "$(json "$T/dsn/000003.json" rcpt_options)" "NOTIFY=FAILURE ORCPT=rfc822;x@example.net" "the first RCPT's NOTIFY and ORCPT, the second none"
# an ENVID holding '<', '>' or '=' (xtext allows the first two as they are): queued, each
# encoded (it was refused whole, exit 65, "the sender: invalid mail address")
out=$(printf 'Subject: x\n\ny\n' | "$MAILHOOK" sendmail -V 'ticket<42> a=b' a@example.net 2>&1); rc=$?
is "$rc" 0 "-V 'ticket<42> a=b': queued ($out)"
f=$(ls -t "$T/spool/pickup/"*.eml | head -1)
like "$(grep -a '^X-Sender' "$f" | tr -d '\r')" "ENVID=ticket\+3C42\+3E\+20a\+3Db$" "ENVID in xtext, '<' '>' ' ' '=' encoded"
"$MAILHOOK" flush >/dev/null 2>&1
is "$(json "$(ls -t "$T/dsn/"*.json | head -1)" mail_options)" "ENVID=ticket+3C42+3E+20a+3Db" "sent so to the DSN server"

done_testing
