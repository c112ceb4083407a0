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
  is "$(stat -c %a "$MAILHOOK_CONF")" 600 "still mode 0600"

  cp "$MAILHOOK_CONF" "$T/before"
  out=$(printf 'update{port = "x"}\n"next"\n' | repl 2>&1)
  like "$out" 'nil.*port' "an invalid value: nil and a message naming the key"
  like "$out" '"next"' "the REPL goes on"
  ok "$(cmp -s "$MAILHOOK_CONF" "$T/before"; echo $?)" "nothing written"

  out=$(printf 'update{password = "N3w-pw-value"}\nsettings()\n' | repl 2>&1)
  unlike "$out" "N3w-pw-value|$PW" "updating the password never prints it"
  like "$(grep '^password' "$MAILHOOK_CONF")" "N3w-pw-value" "but saves it"

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
  diag "mailhook.smtp is present: test() is exercised by tests/integration/repl-admin-test.sh"
else
  out=$(printf 'test()\n' | repl 2>&1); rc=$?
  is "$out" "test() is not available in this build (no mailhook.smtp)" "test() without the SMTP module: one clear line"
  is "$rc" 1 "counted as a failed line"
fi

done_testing
