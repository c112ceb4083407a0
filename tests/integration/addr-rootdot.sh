# A domain written absolute, with the root's trailing dot (ops@example.com.), is the
# address without it in the envelope, as Postfix's trivial-rewrite makes it, by every
# way an address comes in: sendmail's arguments, -t, -f and -bs, `mailhook update from=`,
# `mailhook enqueue --to`, mh.enqueue, `mailhook test --to`, the console's Test
# recipient and drop-ins (X-Sender/X-Receiver, To/Cc): the real server (aiosmtpd)
# records MAIL FROM and RCPT TO without the dot, and the header keeps what the writer
# wrote.  Two dots or an empty label (a@example..com, a@.example.com, a@example.com..)
# stay an error naming the address, by every way in.  Before, the builder, settings
# and drop-ins refused ops@example.com. ("empty label in domain") and -f dropped it
# silently for `from`; only sendmail's recipients took it (runtime/msg.c
# mh_msg_addr_unroot is now the one rule).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
spool_make   # the spool folders
# dropin NAME BYTES(printf format): written elsewhere, renamed into pickup/ (the convention)
dropin() { printf "$2" > "$T/$1.tmp"; mv "$T/$1.tmp" "$MAILHOOK_SPOOL/pickup/$1"; }

# --- sendmail
out=$(printf 'Subject: arg\n\nx\n' | "$MAILHOOK" sendmail ops@example.com. 2>&1); rc=$?
is "$rc" 0 "sendmail ops@example.com.: queued ($out)"
flush_next
is "$E" "pbx@example.com | ops@example.com" "RCPT TO without the root's dot"

printf 'To: ops@example.com.\nCc: Ann <ann@example.net.>\nSubject: t\n\nx\n' | "$MAILHOOK" sendmail -t; rc=$?
is "$rc" 0 "sendmail -t with To: ops@example.com.: queued"
flush_next
is "$E" "pbx@example.com | ops@example.com ann@example.net" "RCPT TO without the dots"
like "$M" "To: ops@example.com\.$" "the header as the writer wrote it"
like "$M" "Cc: Ann <ann@example.net\.>" "the Cc too"

printf 'Subject: f\n\nx\n' | "$MAILHOOK" sendmail -f bench@example.com. ops@example.com; rc=$?
is "$rc" 0 "-f bench@example.com.: queued"
flush_next
is "$E" "bench@example.com | ops@example.com" "MAIL FROM without the dot (the account's domain: kept, from_rewrite=envelope)"

out=$(printf 'EHLO x\r\nMAIL FROM:<bs@example.com.>\r\nRCPT TO:<ops@example.com.>\r\nDATA\r\nSubject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1)
like "$out" "250 .*queued" "-bs: MAIL FROM and RCPT TO written absolute: queued"
flush_next
is "$E" "bs@example.com | ops@example.com" "delivered without the dots"

# --- the settings' from
out=$("$MAILHOOK" update from=alerts@example.com. 2>&1); rc=$?
is "$rc" 0 "update from=alerts@example.com.: saved"
like "$("$MAILHOOK" settings)" "from = alerts@example\.com$" "the settings read it without the dot"
printf 'Subject: s\n\nx\n' | "$MAILHOOK" sendmail ops@example.com
flush_next
is "$E" "alerts@example.com | ops@example.com" "MAIL FROM is the from without the dot"
like "$M" "From: alerts@example\.com$" "and so is the From intake adds"

# --- the builder: mailhook enqueue, mh.enqueue
out=$(echo body | "$MAILHOOK" enqueue --to ops@example.com. --cc cc@example.net. --subject enq 2>&1); rc=$?
is "$rc" 0 "mailhook enqueue --to ops@example.com.: queued ($out)"
flush_next
is "$E" "alerts@example.com | ops@example.com cc@example.net" "RCPT TO without the dots"
like "$M" "To: ops@example.com\.$" "the To header as given"
out=$("$MAILHOOK" -e 'local mh = require "mailhook"
  print(mh.enqueue{from = "lua@example.com.", to = "ops@example.com.", subject = "lua", text = "x"})' 2>&1)
like "$out" "^[0-9a-f]{16}$" "mh.enqueue{to = 'ops@example.com.'}: queued ($out)"
flush_next
is "$E" "lua@example.com | ops@example.com" "MAIL FROM and RCPT TO without the dots"
like "$M" "Message-ID: <[^>]*@example\.com>" "the Message-ID's domain without it either"

# --- mailhook test --to (the console's Test recipient: the same mh.smtp.test)
out=$("$MAILHOOK" test --to ops@example.com. 2>&1); rc=$?; [ "$rc" = 0 ] || diag "$out"
is "$rc" 0 "mailhook test --to ops@example.com.: passes"
MAILN=$((MAILN + 1))
E=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
    "$T/mail/$(printf %06d $MAILN).json" 2>/dev/null)
is "$E" "alerts@example.com | ops@example.com" "its RCPT TO without the dot"

# --- drop-ins: X-Sender / X-Receiver, and To/Cc/From
dropin x.eml 'X-Sender: drop@example.com.\nX-Receiver: ops@example.com.\nSubject: x\n\nx\n'
flush_next
is "$E" "drop@example.com | ops@example.com" "a drop-in's X-Sender and X-Receiver written absolute: sent without the dots"
dropin h.eml 'From: hdr@example.com.\nTo: ops@example.com.\nCc: c@example.net.\nSubject: h\n\nx\n'
flush_next
is "$E" "hdr@example.com | ops@example.com c@example.net" "a drop-in's From/To/Cc written absolute: the envelope without the dots"
like "$M" "To: ops@example.com\.$" "its header as written"
is "$(ls "$MAILHOOK_SPOOL/corrupt" 2>/dev/null | wc -l)" 0 "none went to corrupt/"

# --- two dots or an empty label: an error naming the address, by every way in
for bad in a@example..com a@.example.com a@example.com..; do
  out=$(printf 'Subject: bad\n\nx\n' | "$MAILHOOK" sendmail "$bad" 2>&1); rc=$?
  is "$rc" 65 "sendmail $bad: refused (no usable recipient)"
  like "$out" "'$bad': empty label in domain" "naming it ($out)"
  out=$(echo x | "$MAILHOOK" enqueue --to "$bad" --subject x 2>&1); rc=$?
  ok $([ "$rc" != 0 ] && echo 0 || echo 1) "mailhook enqueue --to $bad: refused"
  like "$out" "'$bad' is not a valid address: empty label in domain" "naming it ($out)"
  out=$("$MAILHOOK" update from="$bad" 2>&1); rc=$?
  is "$rc" 2 "update from=$bad: refused"
  like "$out" "'$bad' is not a valid address: empty label in domain" "naming it ($out)"
  out=$("$MAILHOOK" test --to "$bad" 2>&1); rc=$?
  ok $([ "$rc" != 0 ] && echo 0 || echo 1) "mailhook test --to $bad: refused before any connection"
  like "$out" "'$bad' is not a valid address: empty label in domain" "naming it ($out)"
  out=$("$MAILHOOK" -e 'print(require("mailhook").enqueue{to = arg[1], subject = "x", text = "x"})' "$bad" 2>&1)
  like "$out" "^nil.*'$bad' is not a valid address: empty label in domain" "mh.enqueue{to = '$bad'}: nil, naming it"
done
out=$(printf 'EHLO x\r\nMAIL FROM:<a@example..com>\r\nMAIL FROM:<b@x.example>\r\nRCPT TO:<ops@.example.com>\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1)
like "$out" "553 5\.1\.7 'a@example\.\.com': empty label in domain" "-bs: MAIL FROM:<a@example..com> refused, naming it"
like "$out" "553 5\.1\.3 'ops@\.example\.com': empty label in domain" "-bs: RCPT TO:<ops@.example.com> refused, naming it"
# a bare sender that is no local name either: named, not replaced by `from` without a word
out=$(printf 'EHLO x\r\nMAIL FROM:<a b>\r\nMAIL FROM:<.>\r\nMAIL FROM:<www-data>\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1)
like "$out" "553 5\.1\.7 'a b': not an address \(no @\) nor a local name" "-bs: MAIL FROM:<a b> refused, naming it"
like "$out" "553 5\.1\.7 '\.': not an address" "-bs: MAIL FROM:<.> too"
like "$out" "250 2\.1\.0 Ok" "-bs: MAIL FROM:<www-data>, a local name: taken"
out=$(printf 'Subject: f\n\nx\n' | "$MAILHOOK" sendmail -f bench@example.com.. ops@example.com 2>&1); rc=$?
is "$rc" 0 "-f bench@example.com..: queued all the same (a sender costs only itself)"
like "$out" "bad sender address 'bench@example.com..': empty label in domain \(-f ignored\)" "the sender named ($out)"
flush_next
is "$E" "alerts@example.com | ops@example.com" "and sent from the account"
dropin bad.eml 'X-Sender: drop@example.com\nX-Receiver: ops@example.com..\nSubject: x\n\nx\n'
"$MAILHOOK" flush >"$T/flush.out" 2>&1
ok "$(test -f "$MAILHOOK_SPOOL/corrupt/bad.eml"; echo $?)" "a drop-in's X-Receiver ops@example.com..: set aside in corrupt/"
like "$(cat "$T/flush.out")" "bad.eml.*ops@example\.com\.\." "the log names it"
is "$(count_mail "$T/mail")" "$MAILN" "nothing else reached the server"

# --- the console's Test recipient (POST /api/test {to}), through the running service
ADMIN_PW='admin-Rootdot-Pw-4410'
start_console "$P"
"$PY" - "$AP" "$ADMIN_PW" > "$T/console.out" 2>&1 <<'PY'
import http.client, json, re, sys
port, pw = int(sys.argv[1]), sys.argv[2]
def req(method, path, body, h):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, json.dumps(body).encode(), dict(h, **{"Content-Type": "application/json"}))
    r = c.getresponse()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode()
st, h, b = req("POST", "/api/login", {"password": pw}, {})
ck = re.match(r"(mh_session=[0-9a-f]{64});", h.get("set-cookie", "")).group(1)
auth = {"Cookie": ck, "X-CSRF-Token": json.loads(b)["csrf"]}
for to in ("ops@example.com.", "ops@example.com.."):
    st, h, b = req("POST", "/api/test", {"changes": {}, "to": to}, auth)
    last = [json.loads(l) for l in b.splitlines() if l.strip()][-1]
    print(to, st, json.dumps(last.get("result", last)))
PY
out=$(cat "$T/console.out")
like "$out" 'ops@example\.com\. 200 \{[^
]*"ok": true' "console Test to ops@example.com.: passes"
MAILN=$((MAILN + 1))
E=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
    "$T/mail/$(printf %06d $MAILN).json" 2>/dev/null)
is "$E" "app@example.com | ops@example.com" "its RCPT TO without the dot"
like "$out" "ops@example\.com\.\. 422 .*test_to: not an address a test message can go to: empty label in domain" \
  "console Test to ops@example.com..: 422, saying why"

done_testing
