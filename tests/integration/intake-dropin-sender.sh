# The sender of a message that names none: a drop-in in pickup/ with neither From nor
# X-Sender, or `sendmail` input without From, on a system whose settings have no `from`.
# Before, such a drop-in went out from the null sender (MAIL FROM:<>, the sender of
# bounces: some servers refuse it, and it can never bounce back) and without a From
# header, while sendmail gave the caller's login at default_domain.  Now both are the
# submitter's login (the file's owner for a drop-in) at default_domain, else at the host
# name, as sendmail intake, msmtp and nullmailer do (docs/spool.md, docs/sendmail.md); one
# whose From holds no address is sent so too, its header as written (it went to corrupt/).
# And the running service follows a changed `from` (mailhook update, then SIGHUP): before,
# the `from` given to such drop-ins was read once per spool handle, until a restart.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
peer_start "$PORT" "$T/peer" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
# no `from`, no default_domain: the settings of a machine whose admin set only the server
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$PORT" tls=none tls_required=false \
  retry_interval=1 retry_max=2 >/dev/null || { echo "Bail out! update failed"; exit 1; }
spool_make   # the spool folders
login=$(id -un) host=$(hostname)

# dropin NAME BYTES(printf format): written elsewhere, renamed into pickup/ (the convention)
dropin() { printf "$2" > "$T/$1.tmp"; mv "$T/$1.tmp" "$SPOOL/pickup/$1"; }
# sender_of RCPT: the envelope sender the server got for the message to RCPT (its index)
sender_of() { awk -v r="$1" '$3 ~ r { print $2 }' "$T/peer/log" | tail -1; }
# header_of RCPT FIELD: that field of the message to RCPT as the server got it
header_of() {
  local f
  f=$(grep -l "^To: $1" "$T"/peer/*.eml 2>/dev/null | tail -1)
  [ -n "$f" ] && grep -m1 -i "^$2:" "$f" | tr -d '\r'
}

dropin bare.eml 'To: bare@example.net\nSubject: no sender at all\n\nb\n'
printf 'To: sm@example.net\nSubject: sendmail without From\n\ns\n' | "$MAILHOOK" sendmail -t -i
is $? 0 "sendmail without From and without a from setting: queued"
"$MAILHOOK" flush >"$T/flush" 2>&1; is $? 0 "flushed ($(tail -1 "$T/flush"))"
is "$(sender_of bare@example.net)" "$login@$host" \
   "a drop-in naming no sender goes from its owner at the host name, not from <>"
is "$(header_of bare@example.net From)" "From: <$login@$host>" "and gets that From header"
is "$(sender_of sm@example.net)" "$login@$host" "sendmail's sender is the same address (consistent)"
is "$(header_of sm@example.net From)" "From: $login@$host" "and so is its From"

# a From that names no usable address (a script's cron-like `From: Cron Daemon`, a bare
# local name): before, the drop-in was moved to corrupt/ and never sent, where sendmail
# carries such a header as written and takes the sender from the caller; now the same
dropin garbage.eml 'From: Cron Daemon\nTo: garbage@example.net\nSubject: garbage From\n\ng\n'
dropin local.eml 'From: root\nTo: local@example.net\nSubject: local From\n\nl\n'
"$MAILHOOK" flush >"$T/flush" 2>&1; is $? 0 "From without an address: flushed ($(tail -1 "$T/flush"))"
is "$(ls "$SPOOL/corrupt" | wc -l)" 0 "neither was set aside to corrupt/"
for c in garbage:'Cron Daemon' local:root; do
  is "$(sender_of "${c%%:*}@example.net")" "$login@$host" "${c%%:*}: sent from the owner"
  is "$(header_of "${c%%:*}@example.net" From)" "From: ${c#*:}" "${c%%:*}: its From header as written"
done

# default_domain qualifies the owner, as it qualifies sendmail's caller
"$MAILHOOK" update default_domain=example.org >/dev/null
dropin dom.eml 'To: dom@example.net\nSubject: default_domain\n\nd\n'
printf 'To: smdom@example.net\n\ns\n' | "$MAILHOOK" sendmail -t -i
"$MAILHOOK" flush >"$T/flush" 2>&1
is "$(sender_of dom@example.net)" "$login@example.org" "with default_domain: the owner at it"
is "$(sender_of smdom@example.net)" "$login@example.org" "sendmail: the caller at it"

# the service follows `from`: set, reload (SIGHUP), drop a file; change it, reload, drop
svc_start
wait_for 10 grep -q "delivering" "$T/svc.log"; ok $? "the service started"
dropin before.eml 'To: before@example.net\nSubject: before\n\nb\n'
wait_for 10 grep -q before@example.net "$T/peer/log"
is "$(sender_of before@example.net)" "$login@example.org" "running service, no from: the owner"
# (a function: `wait_for 10 test "$(grep -c ...)" -gt N` counted once, before the wait,
# and either passed at once or waited its 10 s out, the reload not looked for)
reloaded_past() { [ "$(grep -c 'settings reloaded' "$T/svc.log")" -gt "$1" ]; }
for f in first@example.com second@example.com; do
  "$MAILHOOK" update from="$f" >/dev/null 2>&1
  n=$(grep -c 'settings reloaded' "$T/svc.log")
  kill -HUP "$SVC"
  wait_for 10 reloaded_past "$n"
  dropin "${f%@*}.eml" "To: ${f%@*}@example.net\nSubject: after\n\na\n"
  wait_for 10 grep -q "${f%@*}@example.net" "$T/peer/log"
  is "$(sender_of "${f%@*}@example.net")" "$f" "update from=$f and SIGHUP: the next drop-in goes from it, no restart"
  is "$(header_of "${f%@*}@example.net" From)" "From: <$f>" "and its From is that"
done
svc_stop; is $? 0 "stopped"
done_testing
