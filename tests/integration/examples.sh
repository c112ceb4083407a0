# The shipped examples (examples/*.lua) as a site would install them: each
# event through `mailhook hook`, checked in the spool files (envelope, headers,
# attachments); then, when the delivery engine is present, the queue is
# flushed to a real SMTP server (aiosmtpd) and checked there.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
mkdir -p "$T/rules" "$T/media"
cp "$ROOT"/examples/{voicemail,fax,alarm,admin}.lua "$T/rules/"
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port=25 from=pbx@example.com tls=none \
  tls_required=false rules=rules
n_eml() { ls "$T/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }
newest() { ls -t "$T"/spool/pickup/*.eml | head -1; }
hook() { "$MAILHOOK" hook "$@" 2>"$T/hook.err"; }

# voicemail: WAV attached, caller, duration, mailbox -> owner
printf 'RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00' > "$T/media/msg0001.wav"
hook voicemail mailbox=200 caller=+33123456789 "caller_name=J. Doe" duration=42 file="$T/media/msg0001.wav"
is "$?" 0 "voicemail: hook exits 0"
is "$(n_eml)" 1 "voicemail: one message queued"
V=$(newest)
like "$(cat "$V")" "X-Receiver: <?alice@example.com>?" "voicemail: mailbox 200 goes to its owner"
like "$(cat "$V")" "Subject: New voicemail from \+33123456789 \(42 s\) for mailbox 200" "voicemail: subject"
like "$(cat "$V")" "Duration: 42 seconds" "voicemail: duration in the body"
like "$(cat "$V")" "J. Doe" "voicemail: caller name"
like "$(cat "$V")" "Content-Type: audio/wav" "voicemail: WAV attachment"
like "$(cat "$V")" "msg0001.wav" "voicemail: with its file name"
like "$(tr -d '\r\n' < "$V")" "$(base64 -w0 < "$T/media/msg0001.wav" | cut -c1-40)" "voicemail: the recording's bytes, base64"
# a caller name in Latin-1 (a PBX's, not UTF-8): sent as UTF-8, never raw under charset=utf-8
hook voicemail mailbox=200 caller=+33123 "caller_name=$(printf 'J\xe9r\xf4me M\xfcller')" duration=5
like "$(tr -d '\r' < "$(newest)" | /usr/bin/python3 -c '
import email, sys
m = email.message_from_binary_file(sys.stdin.buffer)
for p in m.walk():
    if p.get_content_type() == "text/plain":
        print(p.get_payload(decode=True).decode("utf-8"))')" "Jérôme Müller" \
  "voicemail: a Latin-1 caller name reads right in UTF-8"
hook voicemail mailbox=999 caller=+1555 duration=3
like "$(cat "$(newest)")" "X-Receiver: <?reception@example.com>?" "voicemail: unknown mailbox to the fallback"
like "$(cat "$(newest)")" "could not be attached" "voicemail: no recording, said so"

# fax: PDF and TIFF, pages, sender
printf '%%PDF-1.4\n%%fake\n' > "$T/media/fax0042.pdf"
printf 'II*\x00\x08\x00\x00\x00' > "$T/media/fax0043.tif"
hook fax sender=+33198765432 sender_name=ACME pages=3 file="$T/media/fax0042.pdf" to=accounts@example.com
is "$?" 0 "fax: hook exits 0"
F=$(newest)
like "$(cat "$F")" "Subject: Fax from \+33198765432 \(3 pages\)" "fax: subject with pages"
like "$(cat "$F")" "X-Receiver: <?accounts@example.com>?" "fax: to the named recipient"
like "$(cat "$F")" "Content-Type: application/pdf" "fax: PDF attached"
hook fax sender=+33100000000 pages=1 file="$T/media/fax0043.tif"
like "$(cat "$(newest)")" "Content-Type: image/tiff" "fax: TIFF attached"
like "$(cat "$(newest)")" "Subject: Fax from \+33100000000 \(1 page\)" "fax: one page, singular"
like "$(cat "$(newest)")" "X-Receiver: <?fax@example.com>?" "fax: no to=: to the fax mailbox"
hook fax sender=+33100000001 pages=1 to=
is "$?" 0 "fax: an empty to= (a script's unset variable): hook exits 0"
like "$(cat "$(newest)")" "X-Receiver: <?fax@example.com>?" "fax: to the fax mailbox, not lost"

# alarm: critical bypass, severity routing, throttle + summary state, quiet hours
before=$(n_eml)
hook alarm severity=critical source=ups1 "message=on battery"
C=$(newest)
like "$(cat "$C")" "X-Receiver: <?oncall@example.com>?" "alarm: critical goes to on-call"
like "$(cat "$C")" "X-Receiver: <?ops@example.com>?" "alarm: and to ops"
like "$(cat "$C")" "Subject: \[critical\] ups1: on battery" "alarm: subject"
# the example's quiet hours against what its header says (weeknights 20:00-07:00
# and weekends, Paris time), at every 10 minutes of three weeks: the check below
# depends on the hour it runs at, and "mon-fri 20:00-07:00" left Monday 00:00-07:00
# out (a range across midnight belongs to the day it starts on), which showed
# only in a run on a Monday night
out=$("$MAILHOOK" -e '
local rs = require "mailhook.rule_state"
local core = require "mailhook.core"
local src = assert(io.open(arg[1])):read("a")
local function def(name) return assert(load("return " .. src:match("local " .. name .. " = (period %b{})"), "=" .. name, "t", { period = rs.period }))() end
local quiet, weekend = def("quiet"), def("weekend")
local bad, first = 0, nil
for t = 1796000000, 1796000000 + 21 * 86400, 600 do
  local lt = core.rstate.localtime(t, "Europe/Paris")
  local want = lt.wday == 1 or lt.wday == 7 or lt.hour >= 20 or lt.hour < 7
  if (quiet:contains(t) or weekend:contains(t)) ~= want then bad = bad + 1; first = first or os.date("!%a %H:%M UTC", t) end
end
print(bad, first)' "$ROOT/examples/alarm.lua" 2>&1)
is "$out" "0	nil" "alarm: quiet hours are weeknights 20:00-07:00 and weekends, at every hour of the week"
quiet=$(/usr/bin/python3 -c '
import datetime, zoneinfo
n = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Paris"))
print(1 if n.weekday() >= 5 or n.hour >= 20 or n.hour < 7 else 0)')
for i in 1 2 3 4 5; do hook alarm severity=major source=ups2 "message=flap $i"; done
is "$(( $(n_eml) - before ))" 4 "alarm: 1 critical + 3 of 5 major (throttled to 3 per 10 min)"
like "$(cat "$T/spool/state/rules/throttle/alarm%3Aups2.lua")" '\["suppressed"\]=2' "alarm: the 2 others counted for the summary"
want=ops; [ "$quiet" = 1 ] && want=night-desk
like "$(cat "$(newest)")" "X-Receiver: <?$want@example.com>?" "alarm: major routed by quiet hours (quiet=$quiet)"
hook alarm severity=critical source=ups2 "message=critical still passes"
is "$(( $(n_eml) - before ))" 5 "alarm: critical bypasses the throttle"
hook alarm severity=minor source=door "message=left open"
if [ "$quiet" = 1 ]; then
  is "$(ls "$T/spool/state/rules/held" | wc -l)" 1 "alarm: minor held during quiet hours"
else
  like "$(cat "$T/spool/state/rules/digest/minor-alarms.lua")" "left open" "alarm: minor collected for the hourly digest"
fi
is "$(( $(n_eml) - before ))" 5 "alarm: minor is not sent at once"

# admin: failed, queue_stuck, disk_full
hook failed id=00042 reason=rejected "reply=550 5.1.1 no such user" to=bob@example.org "subject=Hi"
A=$(newest)
like "$(cat "$A")" "X-Receiver: <?postmaster@example.com>?" "admin: failed to the postmaster"
like "$(cat "$A")" "Subject: \[mailhook\] message 00042 failed: rejected" "admin: failed subject"
like "$(cat "$A")" "550 5.1.1 no such user" "admin: server reply in the body"
hook queue_stuck "reason=connect: refused" since=1700000000
like "$(cat "$(newest)")" "Subject: \[mailhook\] queue stuck: connect: refused" "admin: queue stuck"
hook disk_full path=/var/spool/mailhook percent=93
like "$(cat "$(newest)")" "Subject: \[mailhook\] disk nearly full: /var/spool/mailhook at 93%" "admin: disk nearly full"
is "$(cat "$T/hook.err")" "" "no warnings or errors from the examples"

# examples/mailhook.conf (README: "Examples: ... examples/mailhook.conf"): a site copies
# it as its settings; every line of it must load, as written, with no warning
out=$("$MAILHOOK" -c "$ROOT/examples/mailhook.conf" settings 2>"$T/conf.err"); rc=$?
is "$rc" 0 "examples/mailhook.conf: settings reads it (exit 0)"
is "$(cat "$T/conf.err")" "" "with no warning"
for kv in "server = smtp.example.com, smtp2.example.com" "port = 587" "auth = true" \
  "password_command = cat /etc/mailhook/smtp-password" "retry_interval = 30s" "rule_timeout = 10s"; do
  like "$out" "(^|
)$kv(
|$)" "examples/mailhook.conf: $kv"
done

# Delivery: the example mail reaches a real SMTP server.
start_smtpd P --maildir "$T/inbox"
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$P" from=pbx@example.com tls=none \
  tls_required=false rules=rules
queued=$(n_eml)
timeout 60 "$MAILHOOK" flush >"$T/flush.out" 2>&1; rc=$?
is "$rc" 0 "flush delivers the queue"
is "$(count_mail "$T/inbox")" "$queued" "every example mail reached the SMTP server"
vm=$(grep -l "New voicemail from +33123456789" "$T"/inbox/*.eml | head -1)
ok "$([ -n "$vm" ]; echo $?)" "the voicemail arrived"
like "$(cat "$vm" 2>/dev/null)" "Content-Type: audio/wav" "with its recording"
like "$(cat "${vm%.eml}.json" 2>/dev/null | tr -d '\n ')" '"to":\["alice@example.com"\]' "to the mailbox owner"

done_testing
