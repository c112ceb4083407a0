# CHUNKING (RFC 3030) faults no real server produces on demand, through the delivery
# (`mailhook flush`) against the scripted peer (tests/peers/fault.lua): a 5xx to BDAT
# fails the message, a 4xx defers it, a connection cut in the middle of a chunk defers
# it (never delivered, never failed); and the wire itself: BDAT <n> LAST, the bytes
# unstuffed, no DATA, no final dot.  Real servers with CHUNKING: mta-exim.sh sc_chunking.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"
need_engine

greet() {   # the greeting and an EHLO reply with CHUNKING and PIPELINING
  printf '%s\n' 'send 220 fault.example ESMTP' 'expect ^EHLO' 'send 250-fault.example' \
    'send 250-PIPELINING' 'send 250-8BITMIME' 'send 250 CHUNKING'
}
queue_dots() {   # a message with dot lines, tagged $1
  printf 'From: app@example.org\nTo: a@x.example\nSubject: %s\nMessage-ID: <%s@test>\n\n.one dot\n..two dots\n.\nend\n' \
    "$1" "$1" | MH sendmail -i -f app@example.org a@x.example
}

# 1. accepted: the wire
start_fault F "$( { greet; printf '%s\n' 'expect ^MAIL FROM' 'expect ^RCPT TO' 'chunk LAST' \
  'send 250 2.1.0 ok' 'send 250 2.1.5 ok' 'send 250 2.0.0 queued' 'read' 'send 221 bye'; } | fault_script)"
mta_mh ok "$F"
queue_dots wire-1
md() { "$PY" "$MAILDIR_PY" "$@"; }
md wire "$(spool_file wire-1@test)" > "$T/wire.want"
mta_flush
is "$FLUSH_RC" 0 "accepted by the reply to BDAT LAST (${FLUSH_OUT##*$'\n'})"
is "$(pickup_n) $(failed_n)" "0 0" "nothing left"
rec=$(cat "$F_REC")
like "$rec" $'^BDAT [0-9]+ LAST\r$' "sent as BDAT <n> LAST"
unlike "$rec" $'^DATA\r$' "no DATA command"
# the chunk: the n bytes after "BDAT n LAST"; then the next command, nothing else
"$PY" - "$F_REC" "$T/wire.got" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
m = re.search(rb"BDAT (\d+) LAST\r\n", data)
n = int(m.group(1))
chunk, rest = data[m.end():m.end() + n], data[m.end() + n:]
open(sys.argv[2], "wb").write(chunk)
sys.exit(0 if chunk.endswith(b"\nend\r\n") and rest == b"QUIT\r\n" else 1)
PY
ok $? "the chunk is as long as its size says, ends with the last line's CRLF (no final dot), QUIT follows"
md strip "$T/wire.got" > "$T/wire.got.lf"
same() { if [ -s "$1" ] && cmp -s "$1" "$2"; then ok 0 "$3"; else ok 1 "$3"; diff "$1" "$2" | head -5 | sed 's/^/#   /'; fi; }
same "$T/wire.want" "$T/wire.got.lf" "the bytes as queued: dot lines not stuffed"
stop_peer F

# s:info() says CHUNKING is offered (and so BDAT used)
start_fault F "$( { greet; printf '%s\n' 'expect ^QUIT' 'send 221 bye'; } | fault_script)"
chunking=$("$MAILHOOK" -e '
  local s = assert(require("mailhook.smtp").connect{ server = { "127.0.0.1" }, port = tonumber(arg[1]),
    from = "a@example.org", tls = "none", tls_required = false, connect_timeout = 5, command_timeout = 5 })
  io.write(tostring(s:info().chunking)); s:quit()' "$F" 2>&1)
is "$chunking" true "s:info().chunking is true where the server offers CHUNKING"
stop_peer F

# 2. and 3. a 5xx, a 4xx to BDAT
for reply in '554 5.6.0 content refused' '451 4.3.0 try again later'; do
  code=${reply%% *}
  start_fault F "$( { greet; printf '%s\n' 'expect ^MAIL FROM' 'expect ^RCPT TO' 'chunk LAST' \
    'send 250 2.1.0 ok' 'send 250 2.1.5 ok' "send $reply" 'read' 'send 221 bye'; } | fault_script)"
  mta_mh "r$code" "$F"
  queue_dots "refused-$code"
  mta_flush
  if [ "$code" = 554 ]; then
    is "$(pickup_n) $(failed_n)" "0 1" "$code to BDAT: the message goes to failed/"
    f=$(spool_file "refused-$code@test" failed)
    like "$(cat "${f%.eml}.state" 2>/dev/null)" "554 5.6.0 content refused" "with the server's reply"
  else
    is "$(pickup_n) $(failed_n)" "1 0" "$code to BDAT: the message is deferred (kept in pickup/)"
    like "$FLUSH_OUT" "deferred.*451 4.3.0 try again later" "with the server's reply"
  fi
  stop_peer F
done

# 4. the connection cut in the middle of a chunk (a 300 KB message, streamed in chunks)
start_fault F "$( { greet; printf '%s\n' 'expect ^MAIL FROM' 'expect ^RCPT TO' \
  'send 250 2.1.0 ok' 'send 250 2.1.5 ok' 'expect ^BDAT' 'close'; } | fault_script)"
mta_mh cut "$F"
{ printf 'From: app@example.org\nTo: a@x.example\nSubject: cut\nMessage-ID: <cut-1@test>\n\n'
  for _ in $(seq 4000); do echo "a line of seventy-odd ASCII characters, repeated until the message is big"; done
} | MH sendmail -i -f app@example.org a@x.example
mta_flush
isnt() { [ "$1" != "$2" ]; }
isnt "$FLUSH_RC" 0; ok $? "cut mid-chunk: the flush does not report it delivered"
is "$(pickup_n) $(failed_n)" "1 0" "the message is kept for a retry, not failed"
like "$(cat "$F_REC")" $'^BDAT [0-9]+\r$' "it was going as BDAT chunks"
unlike "$FLUSH_OUT" "status=sent" "never logged as sent"
stop_peer F
done_testing
