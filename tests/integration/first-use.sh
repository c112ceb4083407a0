# A newcomer's CLI (issue 11, point 7): usage errors, a missing admin script, an
# explicit settings file that does not exist, queue subcommands and hostile ids,
# flush's counts, log timestamps.  Each error is one line naming what was wrong.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
S=$T/spool
mh() { "$MAILHOOK" -s "$S" "$@"; }

# --- no command: a usage error --------------------------------------------------------
"$MAILHOOK" >"$T/out" 2>"$T/err"; rc=$?
is "$rc" 2 "mailhook with no arguments exits 2"
like "$(cat "$T/err")" "^usage: mailhook " "with the usage on stderr"
is "$(cat "$T/out")" "" "and nothing on stdout"
out=$("$MAILHOOK" help 2>/dev/null); rc=$?
is "$rc" 0 "mailhook help exits 0"
like "$out" "^usage: mailhook " "with the usage on stdout"
like "$out" "run       \[--connections N\]" "the help names run's --connections"
like "$out" "hook      \[--rules PATH\]" "and hook's --rules"
# on an 80-column terminal, and naming nothing an installed binary lacks (docs/)
is "$(printf '%s\n' "$out" | awk 'length($0) > 80')" "" "no help line is over 80 columns"
unlike "$out" "docs/" "the help names no file of the source tree"
# every command answers --help with its usage, exit 0 (update, settings, hook and
# sendmail took it for a KEY=VALUE, an option or a flag: exit 2 or 64)
for c in run test update settings enqueue sendmail hook queue flush status repl; do
  out=$(mh "$c" --help 2>&1 </dev/null); rc=$?
  is "$rc" 0 "mailhook $c --help exits 0"
  like "$out" "^usage: mailhook $c" "and prints $c's usage"
done

# --- a tree of one's own: the binary finds lua/ and scripts/ beside its folder ----------
U=$T/tree
mkdir -p "$U/build"
cp "$MAILHOOK" "$U/build/mailhook"
cp -r "$ROOT/lua" "$ROOT/scripts" "$U/"
out=$(cd "$U" && build/mailhook settings 2>&1); rc=$?
is "$rc" 0 "the default settings file missing: defaults (exit 0)"
like "$out" "^# $U/mailhook.conf" "naming the default file"
like "$out" "enabled = false" "with the defaults"
rm "$U/scripts/test.lua"
out=$(cd "$U" && build/mailhook test 2>&1); rc=$?
is "$rc" 1 "a missing scripts/test.lua: exit 1"
like "$out" "^mailhook: the 'test' command is the script $U/scripts/test.lua, which is missing" \
  "naming the missing script"
unlike "$out" "unknown command" "not 'unknown command'"
is "$(printf '%s\n' "$out" | wc -l)" 1 "on one line"
out=$(cd "$U" && build/mailhook frobnicate 2>&1); rc=$?
is "$rc" 2 "an unknown command is still exit 2"
like "$out" "unknown command 'frobnicate'" "named as such"

# --- an explicit settings file must exist ---------------------------------------------
for cmd in settings test run flush "enqueue --to a@example.org"; do
  # shellcheck disable=SC2086
  out=$(echo body | timeout 20 "$MAILHOOK" -c /nonexistent.conf -s "$S" $cmd 2>&1); rc=$?
  ok "$([ "$rc" -ne 0 ]; echo $?)" "-c /nonexistent.conf $cmd fails (exit $rc)"
  like "$out" "/nonexistent.conf: no such settings file \(named by -c" "naming the file and -c"
done
out=$(MAILHOOK_CONF=$T/typo.conf "$MAILHOOK" settings 2>&1); rc=$?
is "$rc" 1 "\$MAILHOOK_CONF naming no file: exit 1"
like "$out" "typo.conf: no such settings file \(named by \\\$MAILHOOK_CONF" "naming the variable"
out=$("$MAILHOOK" -c "$T/new.conf" update port=2525 2>&1); rc=$?
is "$rc" 0 "update creates the file -c names"
out=$("$MAILHOOK" -c "$T/new.conf" settings 2>&1); rc=$?
is "$rc" 0 "then settings reads it"
like "$out" "port = 2525" "with the value saved"
out=$("$MAILHOOK" -c "" settings 2>&1); rc=$?
is "$rc" 2 "-c with an empty value is a usage error"

# --- tls_ca_file given relative: from the settings file's folder, as aliases and rules --
# (it was from the current folder: saved when run beside the file, then every command
# run elsewhere, and the service, refused the settings: "cannot read ca.pem")
CA=$T/cadir
mkdir -p "$CA" "$T/elsewhere"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=first-use-ca -days 2 \
  -keyout "$CA/ca.key" -out "$CA/ca.pem" >/dev/null 2>&1
out=$(cd "$CA" && "$MAILHOOK" -c "$CA/m.conf" update tls_ca_file=ca.pem 2>&1); rc=$?
is "$rc" 0 "update tls_ca_file=ca.pem run beside the settings: saved"
grep -qx 'tls_ca_file = ca.pem' "$CA/m.conf"; ok $? "as typed"
out=$(cd "$T/elsewhere" && "$MAILHOOK" -c "$CA/m.conf" settings 2>&1); rc=$?
is "$rc" 0 "settings read from another folder: still fine"
like "$out" "tls_ca_file = $CA/ca.pem" "the CA file found beside the settings file"
out=$(cd "$T/elsewhere" && "$MAILHOOK" -c "$CA/m.conf" update tls_ca_file=ca.pem 2>&1); rc=$?
is "$rc" 0 "and update from another folder takes the same relative name"
out=$(cd "$CA" && "$MAILHOOK" -c "$CA/m.conf" update tls_ca_file=nothere.pem 2>&1); rc=$?
is "$rc" 2 "a relative name that is not beside the settings: refused"
like "$out" "tls_ca_file: cannot read $CA/nothere.pem" "naming the path it looked at"

# --- queue subcommands and hostile ids ------------------------------------------------
write_conf "$T/q.conf" enabled=true server=127.0.0.1 from=pbx@example.org
id=$(echo hello | "$MAILHOOK" -c "$T/q.conf" -s "$S" enqueue --to ops@example.org --subject hi)
like "$id" "^[0-9a-f]{16}$" "a message queued"
snap() { (cd "$S" && find . -type f | sort | xargs sha256sum); }
before=$(snap)

out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue bogus 2>&1); rc=$?
is "$rc" 2 "queue bogus: exit 2"
like "$out" "unknown subcommand 'bogus'" "says unknown subcommand"
unlike "$out" "needs a message id" "not that it needs an id"
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue bogus "$id" 2>&1)
like "$out" "unknown subcommand 'bogus'" "also with an id after it"
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue show 2>&1); rc=$?
is "$rc" 2 "queue show without an id: exit 2"
like "$out" "needs a message id" "says so"

long=$(head -c 5000 /dev/zero | tr '\0' a)
for sub in show rm retry; do
  for bad in .. / ../seq "../pickup/$id.eml" "" "$long" "$(printf 'a\tb')" "$id.state" "x/../../etc/passwd"; do
    out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue "$sub" -- "$bad" 2>&1); rc=$?
    what=${bad:0:20}
    is "$rc" 2 "queue $sub '$what': exit 2"
    ok "$([ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && ! printf '%s' "$out" | grep -q 'traceback\|\.lua:'; echo $?)" \
      "queue $sub '$what': one line, no traceback ($out)"
    like "$out" "^mailhook queue $sub: .* is not a message id" "queue $sub '$what': says it is not a message id"
  done
done
is "$(snap)" "$before" "the spool is byte for byte as it was"
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue show "$id" 2>&1); rc=$?
is "$rc" 0 "a real id still works"
like "$out" "queued: +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00" "queue show's times are ISO 8601 UTC"
# retry with no service: it said only "queued ID for delivery", and nothing came
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue retry "$id" 2>&1); rc=$?
is "$rc" 0 "queue retry of a waiting message: exit 0"
like "$out" "^queued $id for delivery; no service runs on this spool: \`mailhook flush\` sends it now \(or start \`mailhook run\`\)$" \
  "with no service, it says what will send it"
before=$(snap)
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" queue show "$id.eml" 2>&1); rc=$?
is "$rc" 0 "ID.eml (the file's name) is taken for the id"
# the Lua API: a NUL inside an id, and other hostile ids, are nil + message
out=$("$MAILHOOK" -c "$T/q.conf" -s "$S" -e '
  local q = require "mailhook.queue"
  for _, bad in ipairs { "'"$id"'\0x", "..", "", "/etc/passwd", ("a"):rep(300) } do
    for _, f in ipairs { "show", "remove", "retry" } do
      local ok, r, err = pcall(q[f], bad)
      io.write(ok and r == nil and tostring(err):find("is not a message id", 1, true) and "ok" or
               ("BAD " .. f .. " " .. tostring(r) .. " " .. tostring(err)), "\n")
    end
  end' 2>&1)
is "$(printf '%s\n' "$out" | sort -u)" "ok" "mh.queue.show/remove/retry: every hostile id (NUL inside too) is nil, message"
is "$(snap)" "$before" "and the spool is still as it was"

# --- log timestamps: UTC with the offset, the clock queue shows -------------------------
line=$(TZ=IST-5:30 "$MAILHOOK" -e 'require("mailhook").log.warn("stamp")' 2>&1)
like "$line" "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?\+00:00 warn +stamp$" \
  "a log line starts with an ISO 8601 time and its offset"
logged=$(date -u -d "$(printf '%s' "$line" | cut -d' ' -f1)" +%s)
shown=$(TZ=IST-5:30 "$MAILHOOK" -c "$T/q.conf" -s "$S" queue show "$id" | sed -n 's/^queued: *//p')
queued=$(date -u -d "$shown" +%s)
ok "$([ $((logged - queued)) -ge -5 ] && [ $((logged - queued)) -lt 3600 ]; echo $?)" \
  "with a local zone 5:30 away, the log's time and queue's agree (UTC both: $line / $shown)"

# --- flush: failed messages are counted as failed, never as left or delivered ----------
start_smtpd P --reply-rcpt "bad@example.org=550 5.1.1 no such user" --maildir "$T/mail" || exit 1
F=$T/f.conf
write_conf "$F" enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false from=pbx@example.org \
  retry_interval=600
FS=$T/fspool
fl() { "$MAILHOOK" -c "$F" -s "$FS" "$@"; }
fid=$(echo x | fl enqueue --to bad@example.org --subject a)
echo x | fl enqueue --to good@example.org --subject b >/dev/null
mid=$(echo x | fl enqueue --to good@example.org --cc bad@example.org --subject m)
out=$(fl flush 2>/dev/null); rc=$?
like "$out" "^flush: 1 delivered, 0 deferred, 2 failed \(1 partly delivered: 1 of 2 recipients\), 0 left" \
  "flush: 1 delivered, 2 failed of which 1 partly delivered (good@ got it), 0 left"
is "$rc" 0 "exit 0: nothing is left in pickup/"
# queue show of that dead letter: its only recipient refused, it printed an empty
# "to:" line and, as "next attempt", the time of its last one
out=$(fl queue show "$fid" 2>&1)
like "$out" "refused: +bad@example.org: 550 5.1.1 no such user" "queue show of a failed message names the refusal"
like "$out" "to: +\(none left to send to: accepted and refused below\)" "its to: line says none is left, not blank"
unlike "$out" "next attempt" "and it has no next attempt"
out=$(fl queue show "$mid" 2>&1)
like "$out" "accepted: +good@example.org" "the partly delivered one: accepted good@"
unlike "$out" "next attempt" "no next attempt for it either (its last attempt's time was shown as one)"
# again with the earlier dead letter in failed/, through a running service: the service
# cannot reach the server (it is down) until flush asks, then delivers one and fails one
stop_peer P
echo x | fl enqueue --to bad@example.org --subject c >/dev/null
echo x | fl enqueue --to good@example.org --subject d >/dev/null
echo x | fl enqueue --to good@example.org --cc bad@example.org --subject m2 >/dev/null
# a flush with no service, the server down: nothing retries after it, and its
# warning said "the queue waits, retrying every 600 s"
sum=$(fl flush 2>"$T/fl.err"); rc=$?
out=$sum$'\n'$(cat "$T/fl.err")
is "$rc" 1 "flush with the server down and no service: exit 1"
like "$out" "3 left" "the three messages are left"
# deferred is what the pass left queued (mailhook(1); a service's flush said 3 here,
# a flush of its own said "0 deferred, 3 left" for the same three messages)
is "$sum" "$(printf '%s' "$sum" | sed -n '/^flush: /p' | head -1)" "(the summary is flush's one stdout line)"
like "$sum" "^flush: 0 delivered, 3 deferred, 0 failed, 3 left" "and counted deferred, as a service's flush counts them"
unlike "$out" "retrying every" "its warning promises no retry (nothing retries after a flush)"
like "$out" "this pass stops here: the service \(\`mailhook run\`\) retries every 600 s, \`mailhook test\` shows where it fails" \
  "it says who retries and how to find out why"
"$MAILHOOK" -c "$F" -s "$FS" run 2>"$T/run.log" &
RUNPID=$!
on_exit "kill -9 $RUNPID 2>/dev/null; wait $RUNPID 2>/dev/null"
wait_for 20 grep -q "could not connect\|unreachable\|connect" "$T/run.log"; ok $? "(the service runs and finds the server down)"
start_smtpd AGAIN --port "$P" --reply-rcpt "bad@example.org=550 5.1.1 no such user" --maildir "$T/mail"
ok $? "(the server is back)"
out=$(fl flush --timeout 30 2>/dev/null); rc=$?
like "$out" "^flush: asked the service \(pid $RUNPID\): 1 delivered, 0 deferred, 2 failed \(1 partly delivered: 1 of 2 recipients\), 0 left" \
  "through the service: 1 delivered, 2 failed (1 partly delivered), 0 left (the dead letters of before not counted)"
# SIGTERM: the service stops (an unbounded wait here would hang the suite)
gone() { ! kill -0 "$RUNPID" 2>/dev/null; }
kill "$RUNPID"; wait_for 60 gone; ok $? "the service stops on SIGTERM"
kill -9 "$RUNPID" 2>/dev/null; wait "$RUNPID" 2>/dev/null

# --- `update password=-` typed on a terminal (the README's command): a prompt, no echo ---
# (it waited in silence, and the password showed on the screen as it was typed)
cat > "$T/typepw.py" <<'PY'
import os, pty, select, sys, time
conf, mh, key, pw = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:   # the shell says afterwards whether the terminal echoes again
    os.execv("/bin/sh", ["sh", "-c", '"$0" -c "$1" update "$2=-" >/dev/null; stty -a | grep -ow -- "-\\?echo"',
                         mh, conf, key])
out = b""
def until(pred, t):
    global out
    end = time.time() + t
    while time.time() < end and not pred(out):
        if select.select([fd], [], [], 0.2)[0]:
            try: d = os.read(fd, 4096)
            except OSError: return
            if not d: return
            out += d
until(lambda o: b"Enter ends it" in o, 20)
os.write(fd, pw.encode() + b"\n")
until(lambda o: False, 20)
for _ in range(300):   # bounded: a child still waiting is killed, and the checks fail
    if os.waitpid(pid, os.WNOHANG)[0]: break
    time.sleep(0.1)
else:
    os.kill(pid, 9); os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
PY
out=$("$PY" "$T/typepw.py" "$T/tty.conf" "$MAILHOOK" password 'Typed-S3cret-77' 2>&1)
like "$out" "mailhook update: password \(not shown as you type; Enter ends it\): " "password=- on a terminal: a prompt"
unlike "$out" "Typed-S3cret-77" "the password typed is not shown"
grep -qx 'password = Typed-S3cret-77' "$T/tty.secrets"; ok $? "and it is saved (mailhook.secrets)"
like "$(printf '%s\n' "$out" | tail -1)" "^echo" "the terminal echoes again afterwards"
out=$("$PY" "$T/typepw.py" "$T/tty.conf" "$MAILHOOK" admin_password 'Typed-Adm1n-88' 2>&1)
like "$out" "admin_password \(not shown as you type" "admin_password=- too"
unlike "$out" "Typed-Adm1n-88" "the console's password typed is not shown"

# --- hook before any rule is copied: the warning says where rules are looked for ---------
# (it said only "no rule handles event 'voicemail'", exit 0: where to put the file?)
H=$T/hookdir
mkdir -p "$H"
write_conf "$H/mailhook.conf" enabled=true server=127.0.0.1 port=2525 from=pbx@example.org
hk() { "$MAILHOOK" -c "$H/mailhook.conf" -s "$T/hspool" hook "$@"; }
out=$(hk voicemail mailbox=200 2>&1); rc=$?
is "$rc" 0 "hook with no rules folder yet: exit 0 (the default folder may be missing)"
like "$out" "no rule handles event 'voicemail' \($H/rules does not exist yet: put rule files \(\*\.lua\) there\)" \
  "the warning names the folder the rules are looked for in"
mkdir "$H/rules"
cp "$ROOT/examples/fax.lua" "$H/rules/"
out=$(hk voicemail mailbox=200 2>&1); rc=$?
like "$out" "no rule handles event 'voicemail' \(1 rule file\(s\) loaded from $H/rules\)" \
  "with a rule file there: how many were loaded, and from where"

# --- the docs hold no placeholder (docs/delivery.md had @FIGURES@) ----------------------
left=$(grep -rnE '@[A-Z_]{3,}@' "$ROOT/README.md" "$ROOT/docs" 2>/dev/null)
is "$left" "" "no @PLACEHOLDER@ left in README.md or docs/"
done_testing
