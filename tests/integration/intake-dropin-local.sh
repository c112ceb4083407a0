# A drop-in naming a local user (`To: root`, `To: admin, ops`, `Cc: x@localhost`): before,
# it went to corrupt/ and was never sent ("'root'"), while `sendmail -t` reading the same
# file resolved the names (aliases, their default:, admin_address, NAME@default_domain).
# Now adoption gives it the recipients sendmail gives: each file is both dropped into
# pickup/ and piped to `sendmail -t -i`, and the server must get the same recipients for
# both.  A name that cannot be resolved is a logged corrupt/ naming why.  And `mailhook
# queue` lists a drop-in naming no sender with the sender it will go from (it said
# MAILER-DAEMON / "" before its adoption).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
peer_start "$PORT" "$T/peer" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
cat > "$T/aliases" <<'AL'
root: sysadmin@example.org, ops
ops: ops-team@example.org
AL
conf_for "$PORT" from_rewrite=never default_domain=example.org aliases="$T/aliases" admin_address=admin@example.org
spool_make   # the spool folders

# rcpts_of ID: the recipients the server got for Message-ID <ID@test>, sorted
rcpts_of() { awk -v m="<$1@test>" '$4 == m { print $3 }' "$T/peer/log" | tr ',' '\n' | sort | paste -sd' '; }
# side NAME HEADERS: the same message dropped into pickup/ (renamed, the convention) and
# piped to sendmail -t; then both are sent and the server's recipients compared
n=0
side() {
  n=$((n + 1))
  printf "$2Subject: $1\nMessage-ID: <d$n@test>\n\nbody\n" > "$T/d$n.tmp"
  printf "$2Subject: $1\nMessage-ID: <s$n@test>\n\nbody\n" | "$MAILHOOK" sendmail -t -i
  mv "$T/d$n.tmp" "$SPOOL/pickup/case$n.eml"
  "$MAILHOOK" flush >"$T/flush" 2>&1
  local want got
  want=$(rcpts_of "s$n") got=$(rcpts_of "d$n")
  is "$got" "$want" "$1: the drop-in goes to what sendmail -t gives ($want)"
  [ -n "$want" ] || ok 1 "$1: sendmail gave no recipient at all"
}
side "alias expanded again" 'To: root\n'
side "two names" 'To: root, ops\n'
side "no alias: admin_address" 'To: www-data\nCc: Ann <ann@example.net>\n'
side "@localhost is local" 'To: ops@localhost\nBcc: root\n'
"$MAILHOOK" update admin_address= >/dev/null && ! grep -q admin_address "$CONF"; ok $? "admin_address unset"
side "no alias, no admin_address: default_domain" 'To: cron\n'
printf 'default: catchall@example.org\n' >> "$T/aliases"
side "the aliases' default:" 'To: nobody-here, ops\n'
is "$(ls "$SPOOL/corrupt" | wc -l)" 0 "none of them went to corrupt/"
is "$(ls "$SPOOL/pickup" | wc -l)" 0 "all of them were sent"

# a name that is no address: a clear, logged corrupt/, never a silent drop
printf 'To: Cron Daemon\nSubject: bad\n\nb\n' > "$T/bad.tmp"; mv "$T/bad.tmp" "$SPOOL/pickup/bad.eml"
"$MAILHOOK" flush >"$T/flush" 2>&1
ok "$(test -f "$SPOOL/corrupt/bad.eml"; echo $?)" "an unresolvable name: moved to corrupt/" 
like "$(cat "$T/flush")" "bad.eml.*no usable recipient: 'Cron Daemon': not an address" "and the log says why"

# the listing of a drop-in naming no sender, before its adoption: the sender it will get
"$MAILHOOK" update from=app@example.com >/dev/null
printf 'To: root\nSubject: list\n\nl\n' > "$T/l.tmp"; mv "$T/l.tmp" "$SPOOL/pickup/list.eml"
json=$("$MAILHOOK" queue --json)
like "$json" '"from":"app@example.com"' "queue --json: the drop-in's sender is from, not \"\""
like "$json" '"sysadmin@example.org"' "and its recipients are root's"
like "$("$MAILHOOK" queue)" "list\.eml .*sysadmin@example\.org" "mailhook queue lists it with root's recipients"
show=$("$MAILHOOK" queue show list.eml 2>&1)
like "$show" "from: +app@example\.com" "queue show: its sender is from, not <>"
like "$show" "to: +sysadmin@example\.org, ops-team@example\.org" "and its recipients are root's"
ok "$(test -f "$SPOOL/pickup/list.eml"; echo $?)" "and it stays in pickup/ (was moved to corrupt/ by queue show)"
unlike "$("$MAILHOOK" sendmail -bp)" "MAILER-DAEMON" "nor does sendmail -bp"

# the running service follows an edited aliases file as sendmail does (it reads it at
# each call): no reload needed
svc_start
wait_for 10 grep -q "delivering" "$T/svc.log"; ok $? "the service started"
printf 'root: changed@example.org\n' > "$T/aliases.new"; mv "$T/aliases.new" "$T/aliases"
printf 'To: root\nSubject: edited\nMessage-ID: <edited@test>\n\ne\n' > "$T/e.tmp"; mv "$T/e.tmp" "$SPOOL/pickup/edited.eml"
wait_for 30 grep -q "<edited@test>" "$T/peer/log"
is "$(rcpts_of edited)" "changed@example.org" "a drop-in to root after the aliases file was edited: its new entry"
svc_stop; is $? 0 "stopped"
done_testing
