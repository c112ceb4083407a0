# NUL bytes in a message (a script's `printf` of a C string, a binary pasted into a text
# body): neither 7bit nor 8bit data may hold one (RFC 5321 §4.5.2, RFC 2045 §2.7-2.8,
# RFC 6152), and servers refuse such a message or cut it at the NUL.  Before, mailhook sent
# them raw to a server offering 8BITMIME.  Now the part holding them is encoded
# (quoted-printable or base64, the long-line path's conversion: mime7.h), whatever the
# server offers, so it decodes to exactly the bytes queued; a NUL where nothing can be
# encoded (a header field, a part that says it is base64 already) is dropped (Postfix's
# message_strip_characters = \0).  Against aiosmtpd (8BITMIME) and Postfix's smtp-sink
# -8 (no 8BITMIME): no NUL ever arrives, and Python's email package decodes the text.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
setup() { "$MAILHOOK" update enabled=true server=127.0.0.1 port="$1" tls=none tls_required=false \
            from=app@example.com retry_interval=1 >/dev/null; }

# decode FILE: one line per leaf part: TYPE CTE HEX(decoded body); then "nul N" (raw NULs)
decode() {
  /usr/bin/python3 - "$1" <<'PY'
import email, email.policy, sys
data = open(sys.argv[1], "rb").read()
if data.startswith(b"X-"):   # smtp-sink's dump: after its own X- and Received lines
    raw = data.split(b"\n"); i = next(k for k, l in enumerate(raw) if l.startswith(b"Received: ")) + 1
    while raw[i].startswith(b"\t"): i += 1
    data = b"\r\n".join(raw[i:])
m = email.message_from_bytes(data, policy=email.policy.default)
print("subject", repr(str(m["subject"])))
for p in m.walk():
    if p.is_multipart(): continue
    print("part", p.get_content_type(), p.get("Content-Transfer-Encoding", "-"), p.get_payload(decode=True).rstrip(b"\r\n").hex())
print("nul", data.count(b"\0"))
PY
}
hex() { od -An -tx1 | tr -d ' \n'; }

# the three messages, queued through `mailhook sendmail`
queue() {   # queue TAG
  printf 'From: app@example.com\nTo: plain@example.net\nSubject: plain %s\n\nfirst\0line\n\0\nend\n' "$1" |
    "$MAILHOOK" sendmail -t -i
  printf 'From: app@example.com\nTo: multi@example.net\nSubject: multi %s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain; charset=us-ascii\n\nclean part\n--B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nnul\0here é\n--B\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\0AwQF\n--B--\n' "$1" |
    "$MAILHOOK" sendmail -t -i
  printf 'From: app@example.com\nTo: head@example.net\nSubject: head %s\0tail\nX-Nul: a\0b\n\nbody\n' "$1" |
    "$MAILHOOK" sendmail -t -i
}

check() {   # check NAME DIR-GLOB
  local name=$1 f out; shift
  for f in "$@"; do
    out=$(decode "$f")
    is "$(echo "$out" | grep '^nul')" "nul 0" "$name: no NUL reached the server ($(echo "$out" | sed -n 's/^subject //p'))"
    case $out in
      *"'plain "*)
        is "$(echo "$out" | grep '^part' | cut -d' ' -f2,4)" "text/plain $(printf 'first\0line\r\n\0\r\nend' | hex)" \
           "$name: a message that is not MIME: its text encoded, decoding to exactly the bytes queued"
        like "$(echo "$out" | grep '^part' | cut -d' ' -f3)" 'quoted-printable|base64' "$name: with its Content-Transfer-Encoding" ;;
      *"'multi "*)
        is "$(echo "$out" | grep '^part' | sed -n 1p | cut -d' ' -f2-)" "text/plain - $(printf 'clean part' | hex)" \
           "$name: multipart: the part without a NUL as it was"
        is "$(echo "$out" | grep '^part' | sed -n 2p | cut -d' ' -f2,4)" "text/plain $(printf 'nul\0here é' | hex)" \
           "$name: multipart: the part with a NUL encoded, decoding to exactly its bytes"
        is "$(echo "$out" | grep '^part' | sed -n 3p | cut -d' ' -f2-)" "application/octet-stream base64 $(printf '\0\1\2\3\4\5' | hex)" \
           "$name: multipart: a NUL inside a base64 part (cannot be encoded again) is dropped, the rest decodes" ;;
      *"'head "*)
        like "$out" "subject 'head [^ ]*tail'" "$name: a NUL in a header field is dropped, the field kept (no RFC 2047 word decoding to a NUL)"
        like "$(tr -d '\r' < "$f")" 'X-Nul: ab' "$name: the same in another field"
        like "$out" "part text/plain - $(printf 'body' | hex)" "$name: its body as it was" ;;
      *) ok 1 "$name: an unexpected message: $out" ;;
    esac
  done
}

# --- aiosmtpd: 8BITMIME offered -------------------------------------------------
start_smtpd A --maildir "$T/a" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
setup "$A"
queue 8bitmime
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "aiosmtpd (8BITMIME): the three delivered ($(tail -1 "$T/f"))"
is "$(ls "$T"/a/*.eml 2>/dev/null | wc -l)" 3 "aiosmtpd: three messages arrived"
check aiosmtpd "$T"/a/*.eml
stop_peer A

# --- smtp-sink -8: no 8BITMIME ------------------------------------------------------
mkdir -p "$T/d" && chmod 777 "$T/d" "$T"
start_sink K -8 -d "$T/d/%Y%m%d%H%M%S." || { echo "Bail out! smtp-sink did not start"; exit 1; }
setup "$K"
queue 7bit
"$MAILHOOK" flush >"$T/f" 2>&1; is $? 0 "smtp-sink -8 (no 8BITMIME): the three delivered ($(tail -1 "$T/f"))"
is "$(ls "$T"/d/* 2>/dev/null | wc -l)" 3 "smtp-sink: three messages arrived"
check smtp-sink "$T"/d/*
is "$(ls "$MAILHOOK_SPOOL"/failed/ 2>/dev/null | wc -l)" 0 "nothing in failed/"
done_testing
