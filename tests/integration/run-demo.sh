# scripts/run-demo (what `make run` runs), in a scratch folder: the capture server
# starts, the settings point at it, a sample message is delivered and shown — or,
# while the service or enqueue is not built, it says what is missing.  Either way no
# process is left behind.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export RUN_DIR=$T/run MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool RUN_DEMO_STOP_WAIT=5
has() { [ -f "$ROOT/scripts/$1.lua" ] || [ -f "$ROOT/lua/mailhook/cmd/$1.lua" ]; }

out=$(timeout 60 "$ROOT/scripts/run-demo" </dev/null 2>&1); rc=$?
like "$out" "capture SMTP server on 127.0.0.1:[0-9]+" "the capture server starts"
like "$(head -1 "$MAILHOOK_CONF")" "^# written by scripts/run-demo" "the settings file is written"
like "$(cat "$MAILHOOK_CONF")" "port = [0-9]+" "pointing at the capture server's port"
is "$(stat -c %a "$MAILHOOK_CONF")" 600 "mode 0600"
if has run && has enqueue; then
  is "$rc" 0 "the demo succeeds"
  like "$out" "delivered: it landed in .*run/mail/000001.eml" "and says where the message landed"
  unlike "$out" "did not stop" "the service and the capture server stop on SIGTERM"
  grep -q "^Subject: mailhook demo" "$RUN_DIR/mail/000001.eml"; ok $? "the sample message is there"
  out=$(timeout 60 "$ROOT/scripts/run-demo" </dev/null 2>&1)
  like "$out" "landed in .*000002.eml" "a second run rewrites its own settings for the new port and delivers again"
else
  is "$rc" 0 "without run/enqueue it exits 0"
  like "$out" "not built yet in this tree: .*(run|enqueue)" "and names what is missing"
fi
printf 'server = smtp.example.invalid\n' > "$MAILHOOK_CONF"
out=$(timeout 60 "$ROOT/scripts/run-demo" </dev/null 2>&1)
like "$out" "using your mailhook.conf as it is" "a settings file of the user's is left alone"
like "$out" "enqueue failed: .*disabled" "its refusal to enqueue (enabled = false) is shown"
is "$(cat "$MAILHOOK_CONF")" "server = smtp.example.invalid" "untouched"
pgrep -f "$RUN_DIR/mail|$MAILHOOK_CONF" >/dev/null; is $? 1 "no capture server and no service left running"
done_testing
