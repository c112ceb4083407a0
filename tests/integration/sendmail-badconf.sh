# A settings file with problems in keys intake does not use (a typo'd key, a
# bad tls value, a broken server line) no longer loses mail (DESIGN.md:
# "Intake accepts, delivery decides"; cron and PHP never read the exit
# status): sendmail, enqueue, hook's mh.enqueue queue the message, warn on
# stderr naming FILE:LINE and the key; the service and `status` still refuse
# the file; once it is fixed, a real server (aiosmtpd) receives the mail.  A
# problem in a key intake needs (enabled, from, default_domain...) or a line
# that names no key still refuses (78), queueing nothing.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/lualib.sh"

plain_smtpd_env
cp "$T/mailhook.conf" "$T/good.conf"
n_pickup() { find "$T/spool/pickup" -maxdepth 1 -type f -name '*.eml' 2>/dev/null | wc -l; }
msg() { printf 'From: root (Cron Daemon)\nTo: root\nSubject: %s\n\nbody\n' "$1"; }

# --- a typo'd key: cron's mail is queued, the warning names file, line and key
echo "sever = 10.0.0.1" >> "$T/mailhook.conf"
L=$(wc -l < "$T/mailhook.conf")
out=$(msg typo | "$MAILHOOK" sendmail -FCronDaemon -i root 2>&1); rc=$?
is "$rc" 0 "sendmail with a typo'd key (sever): exit 0"
is "$(n_pickup)" 1 "the message is queued"
like "$out" "mailhook.conf:$L: unknown setting 'sever' \(did you mean 'server'\?\).*queued" \
  "stderr names FILE:LINE, the key and its fix ($out)"
out=$(echo body | "$MAILHOOK" enqueue --to ops@example.net --subject enq 2>&1); rc=$?
is "$rc" 0 "mailhook enqueue: queued too"
like "$out" "mailhook.conf:$L: unknown setting 'sever'" "with the same warning"
is "$(n_pickup)" 2 "two queued"
# the settings name a log sink nothing listens on: the warning is said once on
# stderr, not twice (the sink fell back to stderr and wrote it again)
cp "$T/mailhook.conf" "$T/typo.conf"
echo "log = journal" >> "$T/mailhook.conf"
out=$(echo body | MAILHOOK_JOURNAL_SOCKET="$T/no-journal.sock" "$MAILHOOK" -s "$T/spool-l" enqueue --to ops@example.net --subject enq2 2>&1)
is "$(printf '%s\n' "$out" | grep -c "unknown setting 'sever'")" 1 "log = journal without a journal: said once ($out)"
cp "$T/typo.conf" "$T/mailhook.conf"
"$MAILHOOK" status >/dev/null 2>&1; rc=$?
ok "$([ "$rc" != 0 ]; echo $?)" "mailhook status still says the settings are wrong"
out=$("$MAILHOOK" run 2>&1 </dev/null); rc=$?
ok "$([ "$rc" != 0 ]; echo $?)" "the service refuses the file"
like "$out" "sever" "naming the key"

# --- the Lua layer: a rule's mh.enqueue (mailhook hook), and a script's
mkdir -p "$T/rules"
cat > "$T/rules/10-mail.lua" <<'LUA'
on("ev", function(ev) assert(mh.enqueue { to = "hook@example.net", subject = "hook", text = "t" }) end)
LUA
out=$("$MAILHOOK" hook ev 2>&1); rc=$?
is "$rc" 0 "mailhook hook: the rule's mh.enqueue queued ($out)"
is "$(n_pickup)" 3 "three queued"
cat > "$T/lib.lua" <<'LUA'
local mh = require "mailhook"
print(assert(mh.enqueue { to = "lib@example.net", subject = "lib", text = "t" }))
LUA
out=$("$MAILHOOK" "$T/lib.lua" 2>&1); rc=$?
is "$rc" 0 "mh.enqueue in a script: queued ($out)"
is "$(n_pickup)" 4 "four queued"

out=$(lua54 "$T/lib.lua" 2>&1); rc=$?
is "$rc" 0 "mh.enqueue from the Lua library (stock lua5.4): queued ($out)"
is "$(n_pickup)" 5 "five queued"

# --- a bad value in a delivery key, a key set twice, a broken server line
cp "$T/good.conf" "$T/mailhook.conf"; echo "tls = bogus" >> "$T/mailhook.conf"
out=$(msg twice | "$MAILHOOK" sendmail root 2>&1); rc=$?
is "$rc:$(n_pickup)" "0:6" "tls set twice: queued"
like "$out" "'tls' set twice" "and said ($out)"
cp "$T/good.conf" "$T/mailhook.conf"; sed -i 's/^tls = none/tls = bogus/' "$T/mailhook.conf"
out=$(msg badtls | "$MAILHOOK" sendmail root 2>&1); rc=$?
is "$rc:$(n_pickup)" "0:7" "tls = bogus: queued"
like "$out" "mailhook.conf:[0-9]+: tls: " "naming the line and key ($out)"
cp "$T/good.conf" "$T/mailhook.conf"; sed -i 's/^server = .*/server = bad host!/' "$T/mailhook.conf"
out=$(msg badserver | "$MAILHOOK" sendmail root 2>&1); rc=$?
is "$rc:$(n_pickup)" "0:8" "a broken server line counts as set: queued"
like "$out" "server: " "said ($out)"

cp "$T/good.conf" "$T/mailhook.conf"; for i in $(seq 500); do echo "junk_$i = x"; done >> "$T/mailhook.conf"
out=$(msg manybad | "$MAILHOOK" sendmail root 2>&1); rc=$?
is "$rc:$(n_pickup)" "0:9" "500 unknown keys: queued"
is "$(grep -c warning <<<"$out")" 11 "ten warnings, then one line counting the rest"
like "$out" "and 490 more problems" "counted"
cp "$T/good.conf" "$T/mailhook.conf"; echo "server = 10.0.0.1" > "$T/mailhook.secrets"
out=$(msg badsecrets | "$MAILHOOK" sendmail root 2>&1); rc=$?
is "$rc:$(n_pickup)" "0:10" "a broken secrets file (intake never needs the password): queued"
like "$out" "mailhook.secrets:1: 'server' does not belong" "said, naming it ($out)"
rm -f "$T/mailhook.secrets"

# --- what intake needs: still refused, nothing queued, the reason named
for bad in "enabled = maybe" "from = not an address" "default_domain = bad domain!" \
           "from_rewrite = sometimes" "enable = true" "this is not a setting"; do
  cp "$T/good.conf" "$T/mailhook.conf"
  case $bad in enabled*|from\ *) k=${bad%% *}; sed -i "/^$k = /d" "$T/mailhook.conf" ;; esac
  case $bad in enable\ *) sed -i '/^enabled = /d' "$T/mailhook.conf" ;; esac
  echo "$bad" >> "$T/mailhook.conf"
  out=$(msg refused | "$MAILHOOK" sendmail root 2>&1); rc=$?
  is "$rc:$(n_pickup)" "78:10" "'$bad': refused with 78, nothing queued"
  like "$out" "mailhook.conf:[0-9]+: " "naming the line ($out)"
done
cp "$T/good.conf" "$T/mailhook.conf"; chmod 000 "$T/mailhook.conf"
if [ "$(id -u)" != 0 ]; then
  out=$(msg unreadable | "$MAILHOOK" sendmail root 2>&1); rc=$?
  is "$rc:$(n_pickup)" "78:10" "an unreadable settings file: 78, nothing queued"
  like "$out" "Permission denied" "said ($out)"
else
  ok 0 "# SKIP root reads any file"; ok 0 "# SKIP root reads any file"
fi
chmod 644 "$T/mailhook.conf"

# --- fixed: every queued message reaches the real server
"$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
is "$(ls "$T/mail"/*.eml 2>/dev/null | wc -l)" 10 "once the file is fixed, all 10 are delivered"
is "$(n_pickup)" 0 "the queue is empty"
done_testing
