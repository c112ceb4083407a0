# scripts/run-demo (what `make run` runs) in a copy of the tree, as a user would meet it:
# the capture server starts, the demo writes its own settings and spool under .run/,
# a sample message is delivered and shown.  Then the user configures the real server
# with `mailhook update` and queues a message in ./spool, and runs the demo again:
# the user's settings and queued mail stay byte for byte as they were and nothing of
# theirs lands in .run/mail.  The real checkout's files are never touched (the copy
# is under $T), and no process is left behind.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
export RUN_DEMO_STOP_WAIT=5

# The tree: the binary copied (it finds lua/ and scripts/ beside its folder, and its
# default settings and spool at the top: ./mailhook.conf, ./spool), the rest copied
# or linked.
U=$T/tree
mkdir -p "$U/build" "$U/tests"
cp "$MAILHOOK" "$U/build/mailhook"
# the TLS module beside it, as in a built tree (the console password's scrypt is in it)
[ -e "$(dirname "$MAILHOOK")/mailhook-tls.so" ] && cp "$(dirname "$MAILHOOK")/mailhook-tls.so" "$U/build/"
cp -r "$ROOT/lua" "$ROOT/scripts" "$U/"
ln -s "$ROOT/tests/peers" "$U/tests/peers"
UMH=$U/build/mailhook
has() { [ -f "$U/scripts/$1.lua" ] || [ -f "$U/lua/mailhook/cmd/$1.lua" ]; }
demo() { (cd "$U" && unset MAILHOOK RUN_DIR && timeout 150 scripts/run-demo </dev/null 2>&1); }
# why a demo run failed, on stderr (prove shows it), with the service's log
why() { [ "$1" = 0 ] || { printf '%s\n' "$2" | sed 's/^/#   demo: /'; tail -15 "$U/.run/mailhook.log" | sed 's/^/#   log: /'; } >&2; }
snapshot() {   # every file of the user's (settings, spool) with its sha256, sorted
  (cd "$U" && find mailhook.conf mailhook.secrets spool -type f 2>/dev/null | sort | xargs -r sha256sum)
}

out=$(demo); rc=$?
like "$out" "capture SMTP server on 127.0.0.1:[0-9]+" "the capture server starts"
like "$out" "demo settings: .run/mailhook.conf" "the demo names its own settings file"
like "$out" "your ./mailhook.conf and ./spool are not used" "and says the user's are not used"
like "$(cat "$U/.run/mailhook.conf")" "port = [0-9]+" "its settings point at the capture server's port"
is "$(stat -c %a "$U/.run/mailhook.conf")" 600 "mode 0600, as the demo wrote it (an update keeps a settings file's mode)"
unlike "$(cat "$U/.run/mailhook.conf")" "^(auth|allow_plaintext_auth|username|password)" \
  "the demo needs no AUTH and no allow_plaintext_auth"
ok "$([ ! -e "$U/mailhook.conf" ]; echo $?)" "no ./mailhook.conf is written"
ok "$([ ! -e "$U/spool" ]; echo $?)" "no ./spool is created"
if has run && has enqueue; then
  why "$rc" "$out"; is "$rc" 0 "the demo succeeds"
  like "$out" "delivered: it landed in .run/mail/000001.eml" "and says where the message landed"
  unlike "$out" "did not stop" "the service and the capture server stop on SIGTERM"
  grep -q "^Subject: mailhook demo" "$U/.run/mail/000001.eml"; ok $? "the sample message is there"
  ok "$([ -d "$U/.run/spool/pickup" ]; echo $?)" "it went through the demo's own spool"

  # The user sets up the real server, as the README says, and queues a message.
  out=$(cd "$U" && printf 'S3cret-pw\n' | "$UMH" update enabled=true from=pbx@example.com \
        server=smtp.example.invalid port=587 auth=true username=pbx password=- 2>&1); rc=$?
  is "$rc" 0 "the user's update succeeds"
  id=$(cd "$U" && printf 'the quarterly figures\n' | "$UMH" enqueue --to boss@example.com --subject figures 2>&1)
  like "$id" "^[0-9a-f]{16}$" "the user's message is queued in ./spool"
  before=$(snapshot)
  like "$before" "mailhook.conf" "(the snapshot holds the settings)"
  like "$before" "spool/pickup/$id.eml" "(and the queued message)"
  touch -d '2001-01-01' "$U/mailhook.conf"; mtime=$(stat -c %Y "$U/mailhook.conf")

  out=$(demo); rc=$?
  why "$rc" "$out"; is "$rc" 0 "the demo runs again"
  like "$out" "landed in .run/mail/000002.eml" "and delivers its own sample message"
  is "$(snapshot)" "$before" "the user's settings and queued mail are byte for byte as they were"
  is "$(stat -c %Y "$U/mailhook.conf")" "$mtime" "the settings file was not even rewritten"
  grep -qx "server = smtp.example.invalid" "$U/mailhook.conf"; ok $? "the real server is still set"
  grep -qx "password = S3cret-pw" "$U/mailhook.secrets"; ok $? "and the password (in mailhook.secrets)"
  unlike "$(cat "$U"/.run/mail/*.eml "$U"/.run/mail/*.json 2>/dev/null)" "boss@example.com|quarterly" \
    "nothing of the user's was delivered into .run/mail"
  is "$(count_mail "$U/.run/mail")" 2 "the capture folder holds the two demo messages only"

  # $MAILHOOK_CONF / $MAILHOOK_SPOOL of the user's environment are not used either
  mkdir -p "$T/elsewhere"
  cp "$U/mailhook.conf" "$T/elsewhere/mine.conf"
  env_before=$(sha256sum "$T/elsewhere/mine.conf")
  out=$(cd "$U" && MAILHOOK_CONF=$T/elsewhere/mine.conf MAILHOOK_SPOOL=$T/elsewhere/spool \
        timeout 150 scripts/run-demo </dev/null 2>&1); rc=$?
  why "$rc" "$out"; is "$rc" 0 "with \$MAILHOOK_CONF and \$MAILHOOK_SPOOL set, the demo still runs on its own files"
  is "$(sha256sum "$T/elsewhere/mine.conf")" "$env_before" "the file \$MAILHOOK_CONF names is untouched"
  ok "$([ ! -e "$T/elsewhere/spool" ]; echo $?)" "the spool \$MAILHOOK_SPOOL names is not created"
  is "$(snapshot)" "$before" "and ./mailhook.conf, ./spool are still as they were"
else
  is "$rc" 0 "without run/enqueue it exits 0"
  like "$out" "not built yet in this tree: .*(run|enqueue)" "and names what is missing"
fi
# Port 8025 held by another program (MailHog's and Mailpit's web pages are there): the
# demo said "admin console: http://127.0.0.1:8025" all the same, while the service had
# logged "console not started: ... address already in use": someone else's page.
if has run && has enqueue; then
  lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 8025)
    io.stdout:write(s and "held\n" or "taken\n"); io.stdout:flush()
    if s then s:settimeout(170); s:accept() end' > "$T/hold8025" 2>&1 &
  HOLD=$!
  on_exit "kill $HOLD"
  wait_for 10 grep -q . "$T/hold8025"
  out=$(demo); rc=$?
  kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null
  why "$rc" "$out"; is "$rc" 0 "with port 8025 taken, the demo runs"
  like "$out" "port 8025 is taken by another program: the console uses [0-9]+" "it says 8025 is taken"
  port=$(printf '%s\n' "$out" | sed -n 's/.*admin console: http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p')
  ok "$([ -n "$port" ] && [ "$port" != 8025 ]; echo $?)" "and gives the console's real address (port ${port:-none})"
  grep -qx "admin_listen = 127.0.0.1:$port" "$U/.run/mailhook.conf"; ok $? "the port the demo's settings give the console"
fi
# A tree whose TLS module is missing: setting the console's password says so
# (it said "admin_password: invalid argument", and the demo died on it).
B=$T/bare; mkdir -p "$B/build"; cp "$MAILHOOK" "$B/build/"; cp -r "$ROOT/lua" "$ROOT/scripts" "$B/"
out=$(printf 'pw\n' | "$B/build/mailhook" -c "$B/x.conf" -s "$B/spool" update admin_password=- 2>&1); rc=$?
# (an installed PREFIX/lib/mailhook/mailhook-tls.so, which another test may put there at any
# moment, is found and used: then it succeeds, which is right too)
if [ "$rc" = 0 ]; then ok 0 "(the installed TLS module was found and used)"
else like "$out" "admin_password: cannot load the TLS module|admin_password: .*mailhook-tls.so" \
  "without the TLS module, update admin_password=- names the missing module"; fi
pgrep -f "$U/" >/dev/null; is $? 1 "no capture server and no service left running"
done_testing
