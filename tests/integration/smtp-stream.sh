# A message sent from its file, piece by piece (Session:submit{path=}, core.smtp
# c:submit_file), against scripted peers: a server that stops reading in the
# middle of the data is cut off by data_timeout (the session deadline restarts
# with each piece that leaves, so it is not what ends it); a file that shrinks
# while it is sent ends the session rather than letting half a message look
# complete; the bytes before offset never leave; and a 6 MB message from the spool
# through STARTTLS + AUTH arrives byte for byte.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

OPEN='send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250-PIPELINING
send 250 SIZE 100000000
expect ^MAIL FROM:<s@example.test> SIZE=
expect ^RCPT TO:<r@example.test>
expect ^DATA$
send 250 ok
send 250 ok
send 354 go ahead'

# the peer stops reading right after its 354
printf '%s\nsleep 30\n' "$OPEN" > "$T/stall.script"
start_fault STALL "$T/stall.script"
# the peer reads the data and waits (the file shrinks meanwhile: no dot may come)
printf '%s\nstall\n' "$OPEN" > "$T/shrink.script"
start_fault SHRINK "$T/shrink.script"

# 24 MB: more than the socket buffers on both sides hold
head -c $((24 * 1024 * 1024)) /dev/zero | tr '\0' 'x' | fold -w 78 | sed 's/$/\r/' > "$T/big"
printf 'X-Not-Sent: before offset\r\nSubject: big\r\n\r\n' | cat - "$T/big" > "$T/msg"

out=$(PORT1=$STALL PORT2=$SHRINK MSG=$T/msg "$MAILHOOK" -e '
  local smtp, mh = require "mailhook.smtp", require "mailhook"
  local function cfg(port)
    return { server = { "127.0.0.1" }, port = tonumber(port), tls = "none", tls_required = false,
             connect_timeout = 5, command_timeout = 5, data_timeout = 1, session_deadline = 2 }
  end
  local path, off = os.getenv("MSG"), #"X-Not-Sent: before offset\r\n"
  -- 1. the stall
  local s = assert(smtp.connect(cfg(os.getenv("PORT1"))))
  local t0 = mh.monotonic()
  assert(s:submit{ from = "s@example.test", to = { "r@example.test" }, path = path, offset = off })
  local r, err, info = s:result()
  print("stall", r == nil, info and info.code, info and info.stage, info and info.connection,
        string.format("%.1f", mh.monotonic() - t0), err)
  s:close()
  -- 2. the file shrinks while it is sent
  local copy = path .. ".2"
  os.execute("cp " .. path .. " " .. copy)
  s = assert(smtp.connect(cfg(os.getenv("PORT2"))))
  assert(s:submit{ from = "s@example.test", to = { "r@example.test" }, path = copy, offset = off })
  os.execute("truncate -s 1000000 " .. copy)   -- after its size was taken, before any piece is read
  r, err, info = s:result()
  print("shrink", r == nil, info and info.stage, info and info.connection, err)
  s:close()
' 2>&1)
diag "$out"
stall=$(grep '^stall' <<<"$out")
shrink=$(grep '^shrink' <<<"$out")
like "$stall" "^stall	true	ETIMEDOUT	data	true	" "a server that stops reading mid-data: a timeout at stage data, the session gone"
secs=$(awk -F'\t' '{print $6}' <<<"$stall")
/usr/bin/python3 -c "import sys; sys.exit(0 if 0.9 <= float('${secs:-99}') < 5 else 1)"
ok $? "after data_timeout (1 s) without progress, not the 2 s session deadline nor a hang (${secs} s)"
like "$shrink" "^shrink	true	file	true	.*(shorter|reading the message failed)" \
     "a file that shrinks mid-send ends the session, saying why (stage file: the message's file, not the server)"
wait_for 10 grep -q "^END" "$SHRINK_OUT"; ok $? "the peer saw the connection end"
! grep -q '^\.\r\?$' "$SHRINK_REC"; ok $? "no final dot was sent for the truncated message"
! grep -q 'X-Not-Sent' "$STALL_REC" "$SHRINK_REC"; ok $? "the bytes before offset never left"

# over STARTTLS with AUTH, through the delivery service: a 6 MB message from the
# spool (streamed, so the pieces go through TLS as the socket drains) arrives
# byte for byte, and a small one behind it rides the same session
make_certs "$T/certs" || exit 1
start_smtpd TLSP --tls starttls --require-starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
  --auth user:s3cret --maildir "$T/tlsmail" --log "$T/tls.log"
export MAILHOOK_CONF=$T/tls.conf MAILHOOK_SPOOL=$T/tlsspool
write_conf "$MAILHOOK_CONF" enabled=true from=fax@example.org server=127.0.0.1 port="$TLSP" tls=starttls \
  tls_ca_file="$T/certs/ca.crt" auth=true username=user password=s3cret connect_timeout=5
head -c $((6 * 1024 * 1024)) /dev/urandom | base64 -w 76 | sed 's/$/\r/' > "$T/b64"
printf 'From: fax@example.org\r\nTo: ops@example.net\r\nSubject: fax\r\n\r\n' | cat - "$T/b64" > "$T/fax.eml"
"$MAILHOOK" -e '
  local f = assert(io.open(..., "rb")); local bytes = f:read("a"); f:close()
  local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
  assert(sp:enqueue(bytes, { from = "fax@example.org", to = { "ops@example.net" } }))
  assert(sp:enqueue("Subject: small\r\n\r\nafter the fax\r\n", { from = "fax@example.org", to = { "ops@example.net" } }))' "$T/fax.eml"
"$MAILHOOK" flush >"$T/tlsflush.out" 2>&1; ok $? "flush over STARTTLS + AUTH: $(tail -1 "$T/tlsflush.out")"
cmp -s "$T/fax.eml" "$T/tlsmail/000001.eml"; ok $? "the 6 MB message arrived byte for byte through TLS"
like "$(cat "$T/tlsmail/000001.json")" '"tls": "TLSv1.[23]"' "over TLS"
like "$(cat "$T/tlsmail/000002.eml")" "after the fax" "the small one behind it too"
is "$(grep -c '^starttls' "$T/tls.log")" 1 "both on one session"
done_testing
