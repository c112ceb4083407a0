# The REPL's admin functions against the real modules: settings(), update{},
# enqueue{}, queue(), test() — on a scratch settings file and spool.  The
# password must never appear in anything the REPL prints.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool" MAILHOOK_HISTORY="$T/history"
PW='Hunter2-s3cret#pw'
cat > "$MAILHOOK_CONF" <<EOF
enabled = true
server = 127.0.0.1
port = 2525
from = pbx@example.com
auth = true
username = pbx
password = $PW
tls = none
tls_required = false
EOF
chmod 600 "$MAILHOOK_CONF"
repl() { timeout 30 "$MAILHOOK" repl "$@"; }
have() { [ -f "$ROOT/lua/mailhook/$1.lua" ]; }

if have settings; then
  out=$(printf 'settings()\n' | repl 2>&1)
  like "$out" 'password = "\*\*\*\*\*\*\*\*"' "settings() shows the password masked"
  like "$out" 'server = \{ "127\.0\.0\.1" \}' "and the settings"
  unlike "$out" "$PW" "never the password itself"

  out=$(printf 'update{port = 587, helo_name = "pbx.example.com"}\n' | repl 2>&1); rc=$?
  is "$rc" 0 "update{} succeeds"
  like "$out" "port = 587" "it returns the saved settings"
  like "$out" 'password = "\*\*\*\*\*\*\*\*"' "password masked"
  unlike "$out" "$PW" "never the password itself"
  like "$(grep '^port' "$MAILHOOK_CONF")" "587" "the file was rewritten"
  like "$(grep '^helo_name' "$MAILHOOK_CONF")" "pbx.example.com" "with every change"
  is "$(stat -c %a "$MAILHOOK_CONF")" 600 "its mode kept (0600 as made here: docs/settings.md, Secrets)"
  out=$(printf 'update{enabled = false}\nupdate{enabled = true}\n' | repl 2>&1)
  like "$out" "warning: outgoing mail is disabled .*: new mail is refused \(sendmail exits 69\)" \
    "update{enabled = false} warns that mail stops, as the CLI does"
  grep -q "$PW" "$MAILHOOK_CONF"; ok $((! $?)) "the password moved out of it"

  cp "$MAILHOOK_CONF" "$T/before"
  out=$(printf 'update{port = "x"}\n"next"\n' | repl 2>&1)
  like "$out" 'nil.*port' "an invalid value: nil and a message naming the key"
  like "$out" '"next"' "the REPL goes on"
  ok "$(cmp -s "$MAILHOOK_CONF" "$T/before"; echo $?)" "nothing written"

  out=$(printf 'update{password = "N3w-pw-value"}\nsettings()\n' | repl 2>&1)
  unlike "$out" "N3w-pw-value|$PW" "updating the password never prints it"
  like "$(grep '^password' "${MAILHOOK_CONF%.conf}.secrets")" "N3w-pw-value" "but saves it (in the secrets file)"

  out=$(printf 'mh.settings.load()\n' | repl 2>&1)
  unlike "$out" "N3w-pw-value" "a loaded cfg printed at the prompt holds no password"
fi

if have queue && "$MAILHOOK" -e 'os.exit(type(require("mailhook").enqueue) == "function" and 0 or 1)'; then
  out=$(printf 'id = enqueue{to = "ops@example.com", subject = "from the repl", text = "hello"}\nid\n' | repl 2>&1); rc=$?
  is "$rc" 0 "enqueue{} succeeds"
  id=$(printf '%s' "$out" | tr -d '"')
  like "$id" '^[0-9a-f]+$' "and returns the id ($id)"
  ok "$([ -f "$MAILHOOK_SPOOL/pickup/$id.eml" ]; echo $?)" "the message is in the spool's pickup folder"
  like "$(cat "$MAILHOOK_SPOOL/pickup/$id.eml" 2>/dev/null)" "Subject: from the repl" "with its subject"

  out=$(printf 'queue()\n' | repl 2>&1)
  like "$out" "id = \"$id\"" "queue() lists it"
  like "$out" 'state = "pickup"' "with its state"
  like "$out" 'to = \{ "ops@example\.com" \}' "and its recipients"
  is "$(printf 'queue "failed"\n' | repl 2>&1)" "{}" "queue \"failed\": none failed"

  out=$(printf 'enqueue{to = "not an address", subject = "x", text = "y"}\n' | repl 2>&1)
  like "$out" "^nil" "enqueue with a bad address returns nil and a message"
fi

if have smtp; then
  # test() against a real aiosmtpd: STARTTLS with our CA, AUTH, From accepted.
  . "$ROOT/tests/lib/peers.sh"
  make_certs "$T/certs" || exit 1
  start_smtpd SMTPD --tls starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
    --auth "pbx:$PW" --maildir "$T/mail" || exit 1
  write_conf "$T/smtp.conf" enabled=true server=127.0.0.1 port="$SMTPD" tls=starttls \
    tls_ca_file="$T/certs/ca.crt" auth=true username=pbx password="$PW" from=pbx@example.com
  out=$(printf 'r = test()\nr.from_accepted, r.info.security\nr.stages\nr.ok, r.info.auth_mechanism\nr\n' |
        MAILHOOK_CONF="$T/smtp.conf" repl 2>&1); rc=$?
  like "$out" '^true	"starttls"' "test() passes against aiosmtpd: STARTTLS, AUTH, From accepted"
  like "$out" $'\nmailhook test: 127.0.0.1 port [0-9]+, tls = starttls' "the result shows as the report"
  like "$out" '\{ "connect", "tls", "auth", "sender" \}' "the report lists the stages"
  like "$out" $'\ntrue\t"plain"' "r.ok, and the mechanism as the session reports it (lower case)"
  unlike "$out" "$PW" "the report never shows the password"
  is "$rc" 0 "exit 0"
  is "$(count_mail "$T/mail")" 0 "test() without to sends nothing"

  out=$(printf 'test{to = "ops@example.com"}\n' | MAILHOOK_CONF="$T/smtp.conf" repl 2>&1)
  like "$out" 'test message +sent to ops@example.com: 250' "test{to = ...} sends a test message"
  step_mail() { [ "$(count_mail "$T/mail")" -ge 1 ]; }
  wait_for 10 step_mail; ok $? "the server received it"
  like "$(cat "$T"/mail/*.eml 2>/dev/null)" "Subject: mailhook test message" "it is the test message"

  out=$(printf 'test "ops2@example.com"\n' | MAILHOOK_CONF="$T/smtp.conf" repl 2>&1)
  like "$out" 'test message +sent to ops2@example.com: 250' "test \"ADDR\" is the same as test{to = ADDR}"

  # the REPL's test() and the CLI's `mailhook test` give the same report, line for line
  repl_out=$(printf 'test()\n' | MAILHOOK_CONF="$T/smtp.conf" repl 2>/dev/null)
  cli_out=$(MAILHOOK_CONF="$T/smtp.conf" MAILHOOK_SPOOL=$T/spool "$MAILHOOK" test 2>/dev/null)
  is "$repl_out" "$cli_out" "test() at the REPL prints exactly what mailhook test prints"
  # docs/repl.md's example is this report: the same rows, in the same order
  labels() { sed -n '2,/^result:/p' | cut -c1-17 | sed 's/ *$//'; }
  doc=$(sed -n '/^> test()$/,/^result: OK$/p' "$ROOT/docs/repl.md" | sed 1d)
  is "$(printf '%s
' "$doc" | labels)" "$(printf '%s
' "$repl_out" | labels)"     "docs/repl.md's test() example has the real report's rows"
  out=$(printf 'r = test()
r.info.auth_mechanism, r.info.starttls_offered
r.info.capabilities
' |
        MAILHOOK_CONF="$T/smtp.conf" repl 2>&1)
  like "$out" '^"plain"	true' "the mechanism in lower case, starttls_offered true after STARTTLS (as the doc says)"
  like "$out" '"AUTH,LOGIN,PLAIN"' "capabilities: keyword and parameters joined by commas (as the doc says)"
  grep -q 'r.info.auth_mechanism' "$ROOT/docs/repl.md" && ! grep -q 'auth_mechanism = "PLAIN"' "$ROOT/docs/repl.md"
  ok $? "the doc puts the fields under r.info, mechanism in lower case"

  write_conf "$T/bad.conf" enabled=true server=127.0.0.1 port="$SMTPD" tls=starttls \
    tls_ca_file="$T/certs/ca.crt" auth=true username=pbx password="wrong-$PW" from=pbx@example.com
  out=$(printf 'r = test()\nr\nr.ok, r.stage\n"next"\n' | MAILHOOK_CONF="$T/bad.conf" repl 2>&1)
  like "$out" 'result: FAILED at stage auth' "a wrong password: the report names the failed stage"
  like "$out" 'hint +authentication failed' "with the CLI's hint"
  like "$out" $'\nfalse\t"auth"' "r.ok is false, r.stage names the auth stage"
  unlike "$out" "wrong-$PW" "and not the password"
  like "$out" '"next"' "the REPL goes on"
else
  out=$(printf 'test()\n' | repl 2>&1); rc=$?
  is "$out" "test() is not available in this build (no mailhook.smtp)" "test() without the SMTP module: one clear line"
  is "$rc" 1 "counted as a failed line"
fi

done_testing
