# Files dropped into pickup/ by other programs (DESIGN.md, the IIS pickup convention) get
# intake's line-end rule, the one `mailhook sendmail` applies to its stdin (runtime/intake.h):
# CR* LF is one line end, a bare CR ends its line, everything is stored and sent as CRLF.
# Before, a drop-in was read by eol.h's rule alone: a PHP/Windows file's CR CR LF was a
# bare CR then an empty line, so the header block ended at the first field, every field
# after it (a Bcc included) went out as body text, and each body line gained an empty
# line.  Sent to a real aiosmtpd: what arrives has no bare CR, its fields are fields, no
# Bcc, and the Bcc's address still got it.  A drop-in without Date or Message-ID gets
# them at adoption (RFC 5322 requires a Date; Gmail refuses a message without a
# Message-ID), as `mailhook sendmail` and Postfix's pickup add them; one with its own
# keeps it.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
mkdir -p "$T/mail"
spool_make   # the spool folders

# dropin NAME BYTES(printf format): written elsewhere, renamed into pickup/ (the convention)
dropin() { printf "$2" > "$T/$1.tmp"; mv "$T/$1.tmp" "$MAILHOOK_SPOOL/pickup/$1"; }
dropin crcrlf.eml 'From: app@example.com\r\r\nTo: crcrlf@example.net\r\r\nSubject: crcrlf\r\r\nBcc: hidden1@example.net\r\r\nX-After: kept\r\r\n\r\r\nline one\r\r\nline two\r\r\n'
dropin barecr.eml 'From: app@example.com\rTo: barecr@example.net\rSubject: bare\rBcc: hidden2@example.net\r\rbody one\rbody two\r'
dropin mixed.eml 'From: app@example.com\nTo: mixed@example.net\r\nSubject: mixed\r\r\nBcc: hidden3@example.net\rX-Mixed: yes\r\r\r\n\r\nl1\nl2\r\nl3\r\r\nl4\rl5'
# the envelope given (X- lines), the message Windows-made: its Bcc is not sent either
dropin canon.eml 'X-Sender: app@example.com\r\r\nX-Receiver: canon@example.net\r\r\nX-Receiver: hidden4@example.net\r\r\nFrom: app@example.com\r\r\nTo: canon@example.net\r\r\nSubject: canon\r\r\nBcc: hidden4@example.net\r\r\n\r\r\nc1\r\r\n'

# listed before adoption (no service holds the lock: nothing adopts them) by the same rule
# adoption reads them with: before, the listing's own reader saw "no recipients" in a
# CR CR LF drop-in, as its header block ended at the first field
"$MAILHOOK" queue >"$T/queue" 2>&1
like "$(grep '^crcrlf.eml ' "$T/queue")" 'crcrlf@example.net' "queue: a CR CR LF drop-in not adopted yet is listed with its recipients"
unlike "$(cat "$T/queue")" 'no recipients' "queue: no drop-in listed as 'no recipients'"
"$MAILHOOK" flush >"$T/flush" 2>&1; is $? 0 "one flush delivers the four drop-ins ($(tail -1 "$T/flush"))"
is "$(ls "$MAILHOOK_SPOOL"/corrupt 2>/dev/null | wc -l)" 0 "none was set aside to corrupt/"

# got RCPT: the message that reached RCPT, by aiosmtpd's .json
got() { grep -l "\"$1\"" "$T"/mail/*.json 2>/dev/null | head -1 | sed 's/\.json$/.eml/'; }
rcpts() { /usr/bin/python3 -c 'import json,sys; print(",".join(sorted(json.load(open(sys.argv[1]))["to"])))' "${1%.eml}.json"; }
# the received bytes with their line ends shown: CRLF as "|", any other CR as "<CR>"
show() { /usr/bin/python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.replace(b"\r\n",b"|").replace(b"\r",b"<CR>").replace(b"\n",b"<LF>").decode())' "$1"; }

for c in crcrlf:hidden1:'From: app@example.com|To: crcrlf@example.net|Subject: crcrlf|X-After: kept||line one|' \
         barecr:hidden2:'From: app@example.com|To: barecr@example.net|Subject: bare||body one|' \
         mixed:hidden3:'From: app@example.com|To: mixed@example.net|Subject: mixed|X-Mixed: yes||l1|' \
         canon:hidden4:'From: app@example.com|To: canon@example.net|Subject: canon||c1|'; do
  name=${c%%:*} rest=${c#*:}; hid=${rest%%:*} want=${rest#*:}
  f=$(got "$name@example.net")
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "$name: arrived"
  [ -n "$f" ] || continue
  s=$(show "$f")
  unlike "$s" '<CR>|<LF>' "$name: no bare CR or LF reached the server"
  # (a field: "Bcc:" at a line's start; a bare "bcc" also turns up in a Message-ID's hex)
  unlike "$s" '(^|[|>])[Bb][Cc][Cc][[:blank:]]*:|hidden' "$name: no Bcc field and no Bcc address in what was sent"
  is "$(rcpts "$f")" "$(printf '%s\n' "$name@example.net" "$hid@example.net" | sort | paste -sd,)" "$name: the Bcc address got it by the envelope"
  like "$s" '\|Date: [^|]+\|Message-ID: <[^|]+@[^|]+>\|\|' "$name: a Date and a Message-ID added at adoption (it had none)"
  s=$(printf '%s' "$s" | sed -E 's/\|Date: [^|]*//; s/\|Message-ID: [^|]*//')
  is "${s:0:${#want}}" "$want" "$name: every field before the empty line is a field, as written"
done
dropin own.eml 'From: app@example.com\nTo: own@example.net\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <own@example.com>\nSubject: own'
dropin hdronly.eml 'To: ho@example.net\nSubject: ho'
"$MAILHOOK" flush >"$T/flush" 2>&1
like "$(show "$(got ho@example.net)")" '^To: ho@example.net\|Subject: ho\|From: <pbx@example.com>\|Date: [^|]+\|Message-ID: <[^|]+@example.com>\|$' \
     "hdronly: all header, no final line end: its last field ended before the From, Date and Message-ID added"
s=$(show "$(got own@example.net)")
is "$s" 'From: app@example.com|To: own@example.net|Date: Mon, 1 Jan 2024 00:00:00 +0000|Message-ID: <own@example.com>|Subject: own|' \
   "own: its Date and Message-ID kept, none added; all header and no final line end: ended"
like "$(show "$(got crcrlf@example.net)")" '\|\|line one\|line two\|$' "crcrlf: CR CR LF in the body is one line end each"
like "$(show "$(got barecr@example.net)")" '\|\|body one\|body two\|$' "barecr: a bare CR ends its line, stored and sent as CRLF"
like "$(show "$(got mixed@example.net)")" '\|\|l1\|l2\|l3\|l4\|l5\|$' "mixed: LF, CRLF, CR CR LF, a bare CR and no final line end: one line each"

# a file written straight into pickup/ under an id's name (16 hex digits + .eml, as mailhook
# names its own): before, it was taken for one of the spool's files and sent as it stood,
# Bcc field and bare LFs included; now, having no X-Sender/X-Receiver lines (every file
# mailhook writes starts with them), it is adopted like any drop-in, and said
printf 'From: app@example.com\nTo: named@example.net\nBcc: hidden5@example.net\nSubject: named\n\nn1\n' \
  > "$MAILHOOK_SPOOL/pickup/00000000000000aa.eml"
"$MAILHOOK" flush >"$T/flush" 2>&1; is $? 0 "named: flushed ($(tail -1 "$T/flush"))"
f=$(got named@example.net)
ok "$([ -n "$f" ] && echo 0 || echo 1)" "named: arrived"
s=$(show "$f" 2>/dev/null || echo '<not received: no Bcc check possible>')   # fails the two below
unlike "$s" '<CR>|<LF>' "named: no bare LF reached the server"
unlike "$s" '(^|[|>])[Bb][Cc][Cc][[:blank:]]*:|hidden' "named: no Bcc field sent"
is "$(rcpts "$f")" "hidden5@example.net,named@example.net" "named: the Bcc address got it by the envelope"
like "$s" '\|Date: [^|]+\|Message-ID: <[^|]+>\|' "named: a Date and a Message-ID added at adoption"
like "$(cat "$T/flush")" 'pickup/00000000000000aa.eml was not in the spool.s form .*adopted as a drop-in, as [0-9a-f]{16}' \
     "named: the adoption is logged, naming the file and its new id"

# a drop-in without From (RFC 5322 §3.6 requires one): it gets one at adoption, as Postfix's
# pickup/cleanup adds the envelope sender's: the X-Sender the drop-in gives, else the settings'
# `from` (then its envelope sender too: before, it went from the null sender <>, no From)
dropin nofrom.eml 'To: nofrom@example.net\r\nSubject: nofrom\r\n\r\nnf\r\n'
dropin nofromx.eml 'X-Sender: app2@example.org\r\nX-Receiver: nofromx@example.net\r\nTo: nofromx@example.net\r\nSubject: x\r\n\r\nnx\r\n'
"$MAILHOOK" flush >"$T/flush" 2>&1; is $? 0 "nofrom: flushed ($(tail -1 "$T/flush"))"
f=$(got nofrom@example.net)
like "$(show "$f")" '^To: nofrom@example.net\|Subject: nofrom\|From: <pbx@example.com>\|Date: ' "nofrom: From is the settings' from"
is "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["from"])' "${f%.eml}.json")" pbx@example.com \
   "nofrom: and so is the envelope sender (not the null sender)"
f=$(got nofromx@example.net)
like "$(show "$f")" '^To: nofromx@example.net\|Subject: x\|From: <app2@example.org>\|Date: ' "nofromx: From is the X-Sender it gives"
is "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["from"])' "${f%.eml}.json")" app2@example.org \
   "nofromx: its envelope sender kept"
done_testing
