# An administrator's commands against what a local user can put in the queue:
# `mailhook queue show` prints the message on the administrator's terminal, and
# anyone who may run sendmail writes its bytes (a Subject or a body holding
# ESC [ ... sequences, a UTF-8 C1 CSI).  They are shown as \xNN, never sent to the
# terminal raw; lines, tabs and 8-bit text stay as they are.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/lualib.sh"
rules_env
mh() { "$MAILHOOK" "$@"; }
# bytes FILE PYEXPR: evaluate PYEXPR with b = FILE's bytes, print the result
bytes() { /usr/bin/python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); print(eval(sys.argv[2]))' "$1" "$2"; }

# --- a hostile Subject and body -------------------------------------------------------------
printf 'Subject: red \033[31mALERT\033]0;owned\007 \302\233 2J caf\303\251\r\n\r\nbody\033[2J\tend\rCR\x7f\n' \
  | mh sendmail ops@example.com; rc=$?
is "$rc" 0 "sendmail queues a message with escape sequences in its Subject and body"
id=$(ls "$T/spool/pickup" | sed -n 's/\.eml$//p' | head -1)
mh queue show "$id" > "$T/show"; rc=$?
is "$rc" 0 "queue show exits 0"
is "$(bytes "$T/show" 'sum(b.count(bytes([c])) for c in list(range(0, 9)) + list(range(11, 32)) + [127])')" 0 \
  "queue show writes no control byte but LF and TAB (no ESC, BEL, CR, DEL)"
is "$(bytes "$T/show" 'sum(b.count(bytes([0xc2, c])) for c in range(0x80, 0xa0))')" 0 \
  "nor a C1 control written in UTF-8 (U+009B is a CSI)"
like "$(cat "$T/show")" 'Subject: red \\x1b\[31mALERT\\x1b\]0;owned\\x07 \\xc2\\x9b 2J café' \
  "the Subject shows its control bytes as \\xNN and its UTF-8 text as it is"
like "$(cat "$T/show")" "body\\\\x1b\[2J	end" "so does the body: a TAB kept"
like "$(cat "$T/show")" "^CR\\\\x7f\$" "a CR (the intake made it a line end) ends the line, DEL shown"

# --- a CRLF or a C1 control cut by the 64 KiB read's end: shown whole ----------------------------
# Bodies of blank lines and of C1 pairs, under Subjects of 1 to 4 bytes: whatever the
# header's length, some message puts a CR or a 0xC2 last in a chunk.
rm -f "$T"/spool/pickup/*
c1=$(printf '\302\233%.0s' $(seq 300))
for s in a ab abc abcd; do
  { printf 'Subject: %s\n\n' "$s"; for i in $(seq 40000); do printf '\n'; done; } | mh sendmail ops@example.com
  { printf 'Subject: %s\n\n' "$s"; for i in $(seq 300); do printf '%s\n' "$c1"; done; } | mh sendmail ops@example.com
done
n=0; bad=""
for f in "$T"/spool/pickup/*.eml; do
  i=$(basename "$f" .eml); n=$((n + 1))
  mh queue show "$i" > "$T/s.$n" || bad="$bad $i:rc"
  r=$(bytes "$T/s.$n" 'b.count(b"\r") + b.count(b"\xc2\x9b") + b.count(b"\\x0d")')
  [ "$r" = 0 ] || bad="$bad $i:raw=$r"
  want=$(bytes "$f" 'b.count(b"\xc2\x9b")')
  got=$(bytes "$T/s.$n" 'b.count(b"\\xc2\\x9b")')
  [ "$got" = "$want" ] || bad="$bad $i:c1=$got/$want"
done
is "$n" 8 "eight messages queued"
is "$bad" "" "each shown with no CR and no raw C1 control, every C1 pair shown as \\xc2\\x9b"

# --- the listing and show's fields: a recipient holding a UTF-8 C1 CSI ----------------------------
rm -f "$T"/spool/pickup/*
printf 'Subject: x\n\nb\n' | mh sendmail "$(printf 'a\302\233b@example.com')"; rc=$?
is "$rc" 0 "sendmail queues a recipient holding U+009B (non-ASCII passes)"
mh queue > "$T/list"; id=$(ls "$T/spool/pickup" | sed -n 's/\.eml$//p')
mh queue show "$id" > "$T/show1"
is "$(bytes "$T/list" 'b.count(b"\xc2\x9b")'):$(bytes "$T/show1" 'b.count(b"\xc2\x9b")')" "0:0" \
  "neither the listing nor queue show writes it raw"
like "$(cat "$T/list")" 'a\\xc2\\x9bb@example.com' "the listing shows it as \\xc2\\x9b"

# --- the REPL fed by a pipe prints values through mailhook.pretty: the same rule ----------------
printf 'x = "a\\27[31mb\\194\\155c\\195\\169"\nx\nload("return " .. pretty(x))() == x\nqueue()\n' \
  | mh repl > "$T/repl" 2>&1; rc=$?
is "$rc" 0 "the REPL reads the lines and exits 0 at the pipe's end"
is "$(bytes "$T/repl" 'b.count(b"\xc2\x9b") + b.count(b"\x1b")')" 0 \
  "it writes neither ESC nor a UTF-8 C1 control raw (a string value, a queued recipient)"
is "$(sed -n 1,2p "$T/repl")" '"a\027[31mb\194\155cé"
true' "a string shows them as Lua escapes, keeps its UTF-8 text, and reads back as the same string"
like "$(cat "$T/repl")" 'to = \{ "a\\194\\155b@example.com" \}' "queue() shows the recipient the same way"

# --- mailhook test --to ADDR: a malformed address is a usage error, found before connecting ------
# (it connected, then reported "FAILED at stage recipient ... the server refused the test
# recipient" and exited 1: the server had refused nothing)
start_smtpd SM --tls none --log "$T/smtpd.log" || echo "Bail out! smtpd.py did not start"
printf 'enabled = true\nserver = 127.0.0.1\nport = %s\nfrom = pbx@example.com\ntls = none\n' "$SM" > "$T/test.conf"
for to in nobody "a@x.com$(printf '\r\n')RCPT TO:<evil@example.com>" "" "a@" "a b@example.com"; do
  out=$(MAILHOOK_CONF="$T/test.conf" timeout 60 "$MAILHOOK" test --to "$to" 2>&1); rc=$?
  shown=$(printf '%q' "$to")
  is "$rc" 2 "test --to $shown: a usage error (exit 2)"
  like "$out" "^mailhook test: --to: '.*' is not a valid address: " "naming --to and why"
done
unlike "$(MAILHOOK_CONF="$T/test.conf" "$MAILHOOK" test --to "$(printf 'a@x.com\r\nb')" 2>&1)" $'\r' \
  "its CR LF shown as \\x0d\\x0a, not written raw"
ok "$(grep -q '^connect' "$T/smtpd.log" 2>/dev/null && echo 1 || echo 0)" "the server saw no connection for any of them"
out=$(MAILHOOK_CONF="$T/test.conf" timeout 60 "$MAILHOOK" test --to ops@example.com 2>&1); rc=$?
is "$rc" 0 "a good --to still sends the test message ($(printf '%s' "$out" | tail -1))"
ok "$(grep -q '^connect' "$T/smtpd.log" && echo 0 || echo 1)" "through the same server"

# --- a one-value option given twice: a usage error naming it (as update's KEY given twice), never
# the last taken unseen (`test --to a --to b` tested b alone); nothing connects, nothing is queued
: > "$T/smtpd.log"
for argv in "test --to a@example.com --to b@example.com" "test --timeout 5 --timeout=9" \
            "flush --timeout 5 --timeout 9" "status --timeout 5 --timeout 9" \
            "enqueue --to a@example.com --subject one --subject two"; do
  out=$(MAILHOOK_CONF="$T/test.conf" timeout 60 "$MAILHOOK" $argv </dev/null 2>&1); rc=$?
  opt=$(printf '%s' "$argv" | grep -o -- '--[a-z]*' | tail -1)
  is "$rc" 2 "$argv: exit 2"
  like "$out" "^mailhook [a-z]+: option '$opt' given twice" "naming $opt"
done
ok "$(grep -q '^connect' "$T/smtpd.log" && echo 1 || echo 0)" "the server saw no connection"

# --- a setting missing (from, server): the hint says so, not "the server refuses the From
# address" / "nothing answers there" (no server was asked)
printf 'server = 127.0.0.1\n' > "$T/nofrom.conf"; printf 'from = a@example.com\n' > "$T/noserver.conf"
for f in nofrom noserver; do
  out=$(MAILHOOK_CONF="$T/$f.conf" timeout 60 "$MAILHOOK" test --timeout 5 2>&1); rc=$?
  is "$rc" 1 "$f: mailhook test fails"
  like "$(printf '%s\n' "$out" | grep '^  hint')" "a setting is missing, so no server was asked" "$f: the hint says a setting is missing"
  unlike "$out" "refuses the From|nothing answers there" "$f: no hint about a server"
done

# --- an update that stops mail (enabled=false, server unset) says so; one that does not, does not
printf 'enabled = true\nserver = 127.0.0.1\nfrom = a@example.com\n' > "$T/stop.conf"
err=$("$MAILHOOK" -c "$T/stop.conf" update port=2525 2>&1 >/dev/null)
unlike "$err" "warning" "a harmless update: no warning"
err=$("$MAILHOOK" -c "$T/stop.conf" update enabled=false 2>&1 >/dev/null); rc=$?
is "$rc" 0 "enabled=false: saved"
like "$err" "warning: outgoing mail is disabled .*: new mail is refused \(sendmail exits 69\) and the queue waits" \
  "warns that mail stops"
"$MAILHOOK" -c "$T/stop.conf" update enabled=true >/dev/null 2>&1
err=$("$MAILHOOK" -c "$T/stop.conf" update server= 2>&1 >/dev/null)
like "$err" "warning: no server is set .*: new mail is refused" "server unset: the same"

# --- server = [::1] (bracketed, as in Postfix's relayhost): the address, not a name to look up
printf 'enabled = true\nserver = [::1]\nport = 1\nfrom = a@example.com\ntls = none\ntls_required = false\n' > "$T/v6.conf"
out=$(MAILHOOK_CONF="$T/v6.conf" timeout 60 "$MAILHOOK" test --timeout 5 2>&1)
like "$out" "FAILED at stage connect" "server = [::1]: connects (refused on port 1), no DNS failure"
unlike "$out" "cannot resolve" "(not 'cannot resolve [::1]')"

# --- the library from a stock lua5.4: misuse raises, naming the function -------------------------
# mh.smtp.test("ops@example.com") indexed the string, found no `to`, and passed a test that
# sent nothing; smtp.connect and queue.flush raised "attempt to index a number value".
out=$(MAILHOOK_CONF="$T/test.conf" lua54 -e '
  local mh = require "mailhook"
  local function raised(f, ...)   -- the message without a position
    local ok, e = pcall(f, ...) return ok and "returned" or (tostring(e):gsub("^%S+:%d+: ", "")) end
  print(raised(mh.smtp.test, "ops@example.com"))
  print(raised(mh.smtp.test, 42))
  print(raised(mh.smtp.connect, nil))
  print(raised(mh.smtp.connect, "smtp.example.com"))
  print(raised(mh.queue.flush, 42))
  local r = assert(mh.smtp.test())                    -- nothing: the settings, no message
  print(r.sent and "sent" or "not sent", #(mh.smtp.test{to = "ops@example.com"}).stages > 0)' 2>&1)
is "$out" "mh.smtp.test: expects a table {to =, cfg =, timeout =} or nothing, got a string
mh.smtp.test: expects a table {to =, cfg =, timeout =} or nothing, got a number
mh.smtp.connect: expects the settings table (mh.settings.get() or settings.load()), got a nil
mh.smtp.connect: expects the settings table (mh.settings.get() or settings.load()), got a string
mh.queue.flush: expects a table of options or nothing, got a number
not sent	true" "smtp.test, smtp.connect, queue.flush given the wrong type raise naming it; nothing and a table still work"

done_testing
