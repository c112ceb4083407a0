# Root's mailq (sendmail -bp) and `mailhook queue` show a message a local user dropped
# (SPOOL/maildrop/) that no service has adopted yet, with what is known, the same way,
# and as the queue shows it once adopted: the sender adoption gives it (from_rewrite; the
# null sender as MAILER-DAEMON), who dropped it, the recipients, the items sendmail left
# out (refused).  Before, mailq showed "uid 65534" as the sender and no item left out,
# and `mailhook queue` said "queue is empty" while mailq counted the request.
# Needs root (a staged install with its drop group; skipped else).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/mailer.sh"

unprivileged_install
mailq() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$P/bin/mailq"; }
# no server (port 1): what root's flush adopts stays queued
root_mh update enabled=true server=127.0.0.1 port=1 tls=none tls_required=false from=pbx@example.com \
  default_domain=example.com admin_address=admin@example.com >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
# the JSON entries, one line each: state from | to | refused items | uid login
qjson() { root_mh queue --json | /usr/bin/python3 -c 'import json,sys
for e in json.load(sys.stdin):
    print(e["state"], e["from"], "|", ",".join(e["to"]), "|", ",".join(r["rcpt"] for r in e["refused"]), "|",
          e.get("uid"), e.get("login"))'; }

printf 'To: ops@example.net, Some Name, root\nCc: c@exa\n mple.org\nSubject: from nobody\n\nhello\n' | as nobody "$SM" -t
is "$?" 0 "nobody's sendmail -t: exit 0"
printf 'Subject: bounce\n\nhello\n' | as nobody "$SM" -f '<>' x@example.org
is "$?" 0 "nobody's sendmail -f '<>': exit 0"
is "$(find "$SPOOL/maildrop" -type f | wc -l)" 2 "two files wait in maildrop/"

out=$(mailq)
like "$out" $'\n[0-9a-f]{16} +[0-9]+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} pbx@example.com\n' \
  "mailq: the sender adoption gives it (from_rewrite = envelope: the account's from), in the sender column ($out)"
like "$out" "\(in maildrop/: waits for the service; from uid 65534 \(nobody\); refused: Some Name and 1 more\)" \
  "who dropped it, and the items sendmail left out"
like "$out" $'\n {47}ops@example.net\n {47}admin@example.com\n' "its recipients"
like "$out" $'[0-9:]{8} MAILER-DAEMON\n' "the null sender asked for: MAILER-DAEMON, as Postfix"
like "$out" "-- [0-9]+ Kbytes in 2 Requests\." "both counted"

out=$(root_mh queue)
like "$out" "maildrop +waits for the service +nobody +ops@example\.net,admin@example\.com refused:Some Name,c@exa mple\.org" \
  "mailhook queue lists it too, NEXT maildrop, the user, the recipients and refused items ($out)"
unlike "$out" "queue is empty" "and does not say the queue is empty"
is "$(printf '%s\n' "$out" | grep -c ' maildrop ')" 2 "both files"
before=$(qjson | sort)
like "$before" "^maildrop pbx@example.com \| ops@example.net,admin@example.com \| Some Name,c@exa mple.org \| 65534 nobody$" \
  "queue --json: state maildrop, sender, recipients, refused, submitter ($before)"
like "$before" "^maildrop  \| x@example.org \|  \| 65534 nobody$" "the null sender: from \"\""

# adopted (root's flush; no server): the same facts, now of pickup/
root_mh flush >/dev/null 2>&1
is "$(find "$SPOOL/maildrop" -type f | wc -l)" 0 "root's flush adopted both"
after=$(qjson | sort)
is "$(printf '%s\n' "$after" | sed 's/^pickup /maildrop /')" "$before" \
  "what was shown while they waited is what the queue shows once adopted ($after)"

# from_rewrite = never: its own login, qualified
root_mh update from_rewrite=never >/dev/null
printf 'To: ops@example.net\nSubject: never\n\nhello\n' | as nobody "$SM" -t
like "$(mailq)" $'[0-9:]{8} nobody@example.com\n' "from_rewrite = never: mailq shows its own login, qualified"
done_testing
