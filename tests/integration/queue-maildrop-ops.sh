# `queue show/rm/retry NAME` of a file waiting in maildrop/ (a local user's, not adopted
# yet), as `mailhook queue` and `mailq` list it: by its ID column (the id part of its
# name) or its whole name (--json's "name").  show: the entry as the listing shows it,
# then the message; rm: removed (never adopted, never sent); retry: said that it waits
# for the service to adopt it (exit 0, nothing moved).  --json too.  Before, all three
# said "no such message" of what the listing had just shown.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
spool_make
mkdir -m 1730 "$T/spool/maildrop"
drop() { printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\nleftout Some Name\twhy\n\nSubject: %s\n\nbody of %s\n' \
           "$(id -u)" "$(id -g)" "$2" "$2" > "$T/spool/maildrop/$1"; }
drop 0000000000000001.00000001 one
drop 0000000000000002.00000001 two
like "$("$MAILHOOK" queue)" "0000000000000001 .* maildrop " "listed with its id part, NEXT maildrop"

out=$("$MAILHOOK" queue show 0000000000000001 2>&1); rc=$?
is "$rc" 0 "queue show ID-PART of a maildrop file: exit 0 ($out)"
like "$out" "state: +maildrop" "state maildrop"
like "$out" "waits: +in maildrop/ for the service" "says it waits for the service"
like "$out" "to: +ops@example\.net" "its recipients"
like "$out" "refused: +Some Name: why" "the item left out"
like "$out" $'\nSubject: one\n\nbody of one' "then the message"
like "$("$MAILHOOK" queue show 0000000000000002.00000001)" "Subject: two" "queue show NAME (the whole name) too"
j=$("$MAILHOOK" queue --json show 0000000000000001 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["state"], d["name"], d["to"][0], d["refused"][0]["rcpt"])')
is "$j" "maildrop 0000000000000001.00000001 ops@example.net Some Name" "--json show: the listing's entry"

out=$("$MAILHOOK" queue retry 0000000000000001 2>&1); rc=$?
is "$rc" 0 "queue retry of it: exit 0"
like "$out" "maildrop/0000000000000001\.00000001 is not queued yet: it waits in $T/spool/maildrop/ for the service" \
  "says it waits for the service to adopt it ($out)"
is "$(ls "$T/spool/maildrop" | wc -l):$(ls "$T/spool/pickup" | wc -l)" "2:0" "nothing moved, nothing adopted"
like "$("$MAILHOOK" queue --json retry 0000000000000001)" '"maildrop":"0000000000000001.00000001".*"queued":false' \
  "--json retry: queued false, its name"

out=$("$MAILHOOK" queue rm 0000000000000001 2>&1); rc=$?
is "$rc" 0 "queue rm of it: exit 0 ($out)"
like "$out" "removed maildrop/0000000000000001\.00000001" "says so"
is "$(ls "$T/spool/maildrop")" "0000000000000002.00000001" "the file is gone, the other one stays"
like "$("$MAILHOOK" queue --json rm 0000000000000002.00000001)" '"maildrop":"0000000000000002.00000001".*"removed":true' \
  "--json rm by the whole name"
is "$(ls -A "$T/spool/maildrop")" "" "maildrop/ empty"
out=$("$MAILHOOK" queue show 0000000000000001 2>&1); rc=$?
is "$rc" 1 "show of a removed one: exit 1"
like "$out" "no such message" "no such message"
done_testing
