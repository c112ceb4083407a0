# The items sendmail left out of a local user's message read the same in the
# queue before and after the service adopts the file from maildrop/: kept
# escaped by sendmail (a typed backslash \x5C, an ESC \x1B), escaped once more
# by mailhook-drop -l for its record, decoded by the reader.  The adoption
# escaped the decoded text again (submit.printable: its backslash too), so
# "Ops\x5Cx1bName" listed in maildrop/ became "Ops\x5Cx5Cx1bName" once queued.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$(free_port)" tls=none tls_required=false \
  from=app@example.com
spool_make "$MAILHOOK_SPOOL"
mkdir -m 1730 "$MAILHOOK_SPOOL/maildrop"
NAME=0000000000000001.00000001
printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\nleftout %s\twhy\nleftout %s\twhy\n\nSubject: s\n\nbody\n' \
  "$(id -u)" "$(id -g)" 'Ops\x5Cx5Cx1bName' 'Esc\x5Cx1BName' > "$MAILHOOK_SPOOL/maildrop/$NAME"
before=$("$MAILHOOK" queue)
like "$before" "maildrop .*refused:Ops\\\\x5Cx1bName,Esc\\\\x1BName" "listed in maildrop/ as sendmail kept them"
"$MAILHOOK" flush --timeout 5 >"$T/flush.out" 2>&1   # adopts it (the server is not there: it waits)
[ ! -e "$MAILHOOK_SPOOL/maildrop/$NAME" ]; ok $? "adopted out of maildrop/ ($(cat "$T/flush.out"))"
after=$("$MAILHOOK" queue)
like "$after" "refused:Ops\\\\x5Cx1bName,Esc\\\\x1BName" "queued, the same text: escaped once ($after)"
unlike "$after" 'x5Cx5C' "no escape of an escape"
done_testing
