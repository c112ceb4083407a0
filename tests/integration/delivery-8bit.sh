# 8-bit and UTF-8 negotiated, never assumed (issue 19 point 3), with real
# servers: Postfix's smtp-sink -8 (no 8BITMIME, no SMTPUTF8) gets every
# message 7-bit (RFC 6152 §3) and Python's email package - a decoder that is
# not ours - reads in what it received exactly the text that was queued;
# aiosmtpd (8BITMIME, SMTPUTF8 on or off) gets SMTPUTF8 declared only when it
# offers it, and a UTF-8 recipient fails by itself without it (RFC 6531); what
# cannot be converted and a message over the advertised SIZE (after conversion)
# fail with a reason that says so.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

S=$T/spool C=$T/mailhook.conf
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C
setup() { "$MAILHOOK" update enabled=true server=127.0.0.1 port="$1" tls=none tls_required=false \
            from=app@example.com retry_interval=1 >/dev/null; }
sidecar() { cat "$S"/failed/*.state 2>/dev/null; }

# decode.py DUMP: the message smtp-sink dumped (after its own X- and Received
# lines), read by Python's email package: one line per fact, values repr()'d
decode() {
  /usr/bin/python3 - "$1" <<'PY'
import email, email.policy, sys
raw = open(sys.argv[1], "rb").read().split(b"\n")
i = next(k for k, l in enumerate(raw) if l.startswith(b"Received: "))
i += 1
while raw[i].startswith(b"\t"): i += 1
data = b"\r\n".join(raw[i:])
print("8bit" if any(b >= 0x80 for b in data) else "7bit")
m = email.message_from_bytes(data, policy=email.policy.default)
print("subject", repr(str(m["subject"])))
print("from", repr(str(m["from"])))
for p in m.walk():
    if p.is_multipart(): continue
    name = p.get_filename()
    body = p.get_payload(decode=True)
    print("part", p.get_content_type(), repr(name), body.hex())
PY
}

# --- smtp-sink -8: no 8BITMIME, no SMTPUTF8 ---------------------------------
mkdir -p "$T/d" && chmod 777 "$T/d" "$T"
start_sink K -8 -d "$T/d/%Y%m%d%H%M%S." || { echo "Bail out! smtp-sink did not start"; exit 1; }
setup "$K"
dumps() { ls "$T"/d/* 2>/dev/null | wc -l; }
last_dump() { ls -t "$T"/d/* | head -1; }

SUBJ='Réunion déplacée à 15 h — ça marche ?'
BODY='Café crème, thé et œufs brouillés.
.une ligne qui commence par un point
Ελληνικά, 日本語, emoji 😀'
printf 'From: Jérôme Dupont <app@example.com>\nTo: to@example.net\nSubject: %s\n\n%s\n' "$SUBJ" "$BODY" |
  "$MAILHOOK" sendmail -t; is $? 0 "an 8-bit message queued through sendmail"
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "delivered to a server without 8BITMIME ($(tail -1 "$T/f"))"
d=$(last_dump)
like "$(grep '^X-Mail-Args' "$d")" '^X-Mail-Args: <app@example.com>$' "MAIL declares neither BODY=8BITMIME nor SMTPUTF8"
out=$(decode "$d")
is "$(echo "$out" | sed -n 1p)" 7bit "what the server received is 7-bit (RFC 6152 §3)"
want_subj=$(/usr/bin/python3 -c 'import sys; print(repr(sys.argv[1]))' "$SUBJ")
is "$(echo "$out" | grep '^subject' | cut -d' ' -f2-)" "$want_subj" "the Subject decodes to exactly the original (RFC 2047)"
like "$(echo "$out" | grep '^from')" "Jérôme Dupont <app@example.com>" "the display name too"
want_body=$(printf '%s\r\n' "$BODY" | sed 's/$/\r/' | sed 's/\r\r$/\r/' | /usr/bin/python3 -c 'import sys; d=sys.stdin.buffer.read().replace(b"\r\n",b"\n").replace(b"\n",b"\r\n"); print(d.hex())')
is "$(echo "$out" | grep '^part text/plain' | cut -d' ' -f4)" "$want_body" "the body decodes to exactly the original text"

# nested multiparts, an 8-bit attachment with a UTF-8 file name, a message/rfc822
/usr/bin/python3 - "$T/multi.eml" <<'PY'
import sys
bin_part = bytes(range(256)) * 4
msg = (b"From: app@example.com\r\nTo: to@example.net\r\nSubject: multi\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\n"
       b"--OUT\r\nContent-Type: multipart/alternative; boundary=\"IN\"\r\n\r\n"
       b"--IN\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       + "Grüße aus Köln\r\n--not a boundary\r\n".encode() +
       b"\r\n--IN\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + "<p>Grüße</p>".encode() +
       b"\r\n--IN--\r\n"
       b"\r\n--OUT\r\nContent-Type: application/octet-stream; name=\"" + "données.bin".encode() + b"\"\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n\r\n" + bin_part.replace(b"\r", b"").replace(b"\n", b"") +
       b"\r\n--OUT\r\nContent-Type: message/rfc822\r\n\r\nSubject: " + "inner é".encode() +
       b"\r\n\r\n" + "inner body ü".encode() + b"\r\n--OUT--\r\n")
open(sys.argv[1], "wb").write(msg)
PY
"$MAILHOOK" -e '
  local f = assert(io.open(..., "rb")); local b = f:read("a"); f:close()
  assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")):enqueue(b, { from = "app@example.com", to = { "to@example.net" } }))' "$T/multi.eml"
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "a nested multipart with 8-bit parts: delivered"
out=$(decode "$(last_dump)")
is "$(echo "$out" | sed -n 1p)" 7bit "7-bit"
is "$(echo "$out" | grep -c '^part')" 4 "four leaf parts read back (the message/rfc822's one included)"
is "$(echo "$out" | grep '^part text/plain' | head -1 | cut -d' ' -f4)" \
   "$(printf 'Grüße aus Köln\r\n--not a boundary\r\n' | od -An -tx1 | tr -d ' \n')" "the text part, exactly"
is "$(echo "$out" | grep '^part text/html' | cut -d' ' -f4)" "$(printf '<p>Grüße</p>' | od -An -tx1 | tr -d ' \n')" \
   "the html part, exactly"
bin=$(/usr/bin/python3 -c 'print((bytes(range(256)) * 4).replace(b"\r", b"").replace(b"\n", b"").hex())')
is "$(echo "$out" | grep '^part application/octet-stream' | cut -d' ' -f3-4)" "'données.bin' $bin" \
   "the 8-bit attachment byte for byte, its UTF-8 name read back (RFC 2231)"
is "$(echo "$out" | grep '^part' | tail -1)" "part text/plain None $(printf 'inner body ü' | od -An -tx1 | tr -d ' \n')" \
     "the message/rfc822 inside, converted too"

# a big message (read from its spool file piece by piece) converted as it streams
/usr/bin/python3 - "$T/big.eml" <<'PY'
import sys
line = "Ligne numéro %06d : àéèùç — ok\r\n"
body = "".join(line % i for i in range(40000)).encode()
open(sys.argv[1], "wb").write(b"From: app@example.com\r\nTo: to@example.net\r\nSubject: big\r\n\r\n" + body)
PY
"$MAILHOOK" -e '
  local f = assert(io.open(..., "rb")); local b = f:read("a"); f:close()
  assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")):enqueue(b, { from = "app@example.com", to = { "to@example.net" } }))' "$T/big.eml"
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "a $(($(stat -c %s "$T/big.eml") / 1024)) KB 8-bit message (streamed): delivered"
out=$(decode "$(last_dump)")
is "$(echo "$out" | sed -n 1p)" 7bit "7-bit"
want=$(/usr/bin/python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d[d.index(b"\r\n\r\n")+4:].hex())' "$T/big.eml")
got=$(echo "$out" | grep '^part' | cut -d' ' -f4)
ok "$([ "$got" = "$want" ] && echo 0 || echo 1)" "and decodes to exactly its text (${#want} hex digits)"

# what cannot be converted fails, saying why
printf 'From: app@example.com\nTo: to@example.net\nMessage-ID: <café@example.com>\nSubject: x\n\nbody\n' |
  "$MAILHOOK" sendmail -t
n=$(dumps)
"$MAILHOOK" flush >"$T/f" 2>&1
is "$(dumps)" "$n" "an 8-bit Message-ID: nothing sent"
like "$(sidecar)" "reason not sent: the server does not offer SMTPUTF8 and the message cannot be converted: the Message-ID header holds 8-bit bytes" \
     "failed/, the reason names the extension missing and the field"
unlike "$(sidecar)" "rejected by the server" "not called a refusal of the server"
stop_peer K
rm -f "$S"/failed/*

# --- SIZE after conversion: a scripted server with SIZE 600, no 8BITMIME ----
cat > "$T/size.script" <<'S'
send 220 size.example ESMTP
expect ^EHLO
send 250-size.example
send 250 SIZE 600
expect ^QUIT
send 221 bye
S
start_fault F "$T/size.script" --idle 5
setup "$F"
printf 'From: app@example.com\nTo: to@example.net\nSubject: s\n\n%s\n' "$(printf 'é%.0s' $(seq 200))" |
  "$MAILHOOK" sendmail -t   # 400 octets of 8-bit text: over 600 once converted
"$MAILHOOK" flush >"$T/f" 2>&1
like "$(sidecar)" "reason message is [0-9]+ bytes, the server accepts at most 600 \(its SIZE\); not sent" \
     "SIZE checked with the converted size, and the reason says it was decided here"
unlike "$(sidecar)" "rejected by the server" "not 'rejected by the server'"
unlike "$(cat "$F_REC")" "MAIL FROM" "no MAIL was sent"
stop_peer F
rm -f "$S"/failed/*

# --- aiosmtpd: 8BITMIME; SMTPUTF8 off, then on --------------------------------
start_smtpd A --maildir "$T/a" --log "$T/a.log" || { echo "Bail out! aiosmtpd"; exit 1; }
setup "$A"
printf 'From: app@example.com\nTo: ascii@example.net\nSubject: café\n\nCafé\n' |
  "$MAILHOOK" sendmail ascii@example.net jérôme@example.net
is $? 0 "a UTF-8 recipient queued (intake accepts, delivery decides)"
"$MAILHOOK" flush >"$T/f" 2>&1
meta=$(cat "$T"/a/000001.json | tr -d ' \n')
like "$meta" '"to":\["ascii@example.net"\]' "without SMTPUTF8: the ASCII recipient gets it"
like "$meta" '"mail_options":\["SIZE=[0-9]+","BODY=8BITMIME"\]' "BODY=8BITMIME declared (8BITMIME offered), no SMTPUTF8"
like "$(tr -d '\r' < "$T"/a/000001.eml)" "Subject: =\?UTF-8\?B\?Y2Fmw6k=\?=" "the UTF-8 Subject as RFC 2047 words (no SMTPUTF8)"
like "$(cat "$T"/a/000001.eml)" "Café" "the 8-bit body as it was (8BITMIME offered)"
like "$(sidecar)" "jérôme@example.net	refused by mailhook \(the server was not asked\): the address is not ASCII and the server does not offer SMTPUTF8" \
     "the UTF-8 recipient failed by itself, saying why"
like "$(sidecar)" "reason not sent: jérôme@example.net: refused by mailhook" "the reason: not sent, by mailhook"
unlike "$(cat "$T/a.log")" "jérôme" "no RCPT was sent for it"
# the mail log: a line of its own, failed, saying mailhook refused it and why
like "$(grep -F 'to=<jérôme@example.net>,' "$T/f")" \
     "relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+, .*status=failed \(refused by mailhook \(the server was not asked\): the address is not ASCII and the server does not offer SMTPUTF8 \(RFC 6531\)\)$" \
     "mail log: the locally refused recipient has its line, status=failed, saying mailhook refused it"
is "$(grep -c 'to=<jérôme@example.net>,' "$T/f")" 1 "once"
unlike "$(cat "$T/f")" "rejected by the server" "the warning does not say the server rejected it"
like "$(tail -1 "$T/f")" "^flush: 0 delivered, 0 deferred, 1 failed \(partly delivered: 1 of 2 recipients\)" \
     "flush: partly delivered"
rm -f "$S"/failed/*
# the only recipient refused by mailhook: no send at all, still its line
printf 'From: app@example.com\nTo: x@example.net\nSubject: x\n\nx\n' | "$MAILHOOK" sendmail zoë@example.net
"$MAILHOOK" flush >"$T/f" 2>&1
like "$(grep -F 'to=<zoë@example.net>,' "$T/f")" "status=failed \(refused by mailhook \(the server was not asked\): the address is not ASCII" \
     "mail log: a message whose one recipient mailhook refused has its line too"
like "$(cat "$T/f")" "moved to failed/: not sent: zoë@example.net: refused by mailhook" "the warning says not sent"
unlike "$(cat "$T/f")" "rejected by the server" "not 'rejected by the server'"
rm -f "$S"/failed/*
# a UTF-8 address in a header field cannot be converted: the whole message fails, saying so
printf 'From: app@example.com\nTo: ascii@example.net, jérôme@example.net\nSubject: x\n\nx\n' |
  "$MAILHOOK" sendmail ascii@example.net
"$MAILHOOK" flush >"$T/f" 2>&1
like "$(sidecar)" "reason not sent: the server does not offer SMTPUTF8 and the message cannot be converted: the To header holds a non-ASCII address" \
     "a non-ASCII address in To: failed/, the reason names the header and SMTPUTF8"
is "$(ls "$T"/a/*.eml | wc -l)" 1 "and nothing more reached the server"
stop_peer A
rm -f "$S"/failed/*

start_smtpd B --smtputf8 --maildir "$T/b" --log "$T/b.log" || { echo "Bail out! aiosmtpd"; exit 1; }
setup "$B"
printf 'From: app@example.com\nTo: jérôme@example.net\nSubject: café\n\nCafé\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "with SMTPUTF8: delivered"
meta=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(d["to"]), " ".join(d["mail_options"]))' "$T"/b/000001.json)
like "$meta" '^jérôme@example.net ' "to the UTF-8 recipient"
like "$meta" 'SMTPUTF8' "SMTPUTF8 declared (RFC 6531)"
like "$(cat "$T"/b/000001.eml)" "Subject: café" "the header as it was (UTF-8 allowed)"
done_testing
