# `mailhook flush` while a service runs on a spool that is not the default one
# (-s DIR, $MAILHOOK_SPOOL, mh.queue.flush{spool_dir =}): the flush asks that
# service (SIGUSR1, SPOOL/flush.done) and says what became of the messages, a
# partly delivered one (some recipients got it, the others were refused for
# good) counted from that spool's failed/ and sidecars, never the default
# spool's (mh.queue.flush{spool_dir =} read the default one's: 0 partly
# delivered).  The service's own counters of them: `status --json`, the
# console's /api/status and /metrics (mailhook_partial_total, ..._delivered_,
# ..._recipients_total: /metrics had none).  Real server: aiosmtpd
# (tests/peers/smtpd.py --reply-rcpt).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

C=$T/mailhook.conf MD=$T/maildir LOG=$T/smtpd.log
DEF=$T/default-spool OTHER=$T/other-spool
export MAILHOOK_CONF=$C MAILHOOK_SPOOL=$DEF
start_smtpd P --maildir "$MD" --log "$LOG" \
  --reply-rcpt "a550@example.net=550 5.1.1 no such user" \
  --reply-rcpt-once "b451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt-once "c451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt-once "e451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt "d451@example.net=451 4.2.1 mailbox busy for good" \
  || { echo "Bail out! aiosmtpd did not start"; exit 1; }
AP=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false \
  from=app@example.com retry_interval=600 admin_listen="127.0.0.1:$AP" admin_token_file="$T/token" >/dev/null
spool_make                                 # the default spool exists, with its folders
spool_make "$OTHER"
rcpts_to() { grep -c "^rcpt <$1>" "$LOG"; }
# get PATH: the console's answer to PATH (the bearer token)
get() { curl -s -m 10 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AP$1"; }
# J EXPR: EXPR of the JSON on stdin (d)
J() { "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps(eval(sys.argv[1])))' "$1"; }

# svc DIR: the service on DIR (-s), its log $T/svc.log; SVC its pid.  The log is made
# empty first: the new child's own truncation may come after the wait's first look,
# which then found the last service's console line and returned before this one ran.
svc() {
  : > "$T/svc.log"
  MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -s "$1" run >"$T/svc.log" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
  wait_for 10 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"
}
# queue1 DIR SUBJECT RCPT...: one message through `sendmail` into DIR; its id printed
queue1() {
  local dir=$1 subj=$2; shift 2
  printf 'From: app@example.com\nTo: %s\nSubject: %s\n\nbody\n' "$(IFS=,; echo "$*")" "$subj" |
    "$MAILHOOK" -s "$dir" sendmail "$@" && ls -t "$dir/pickup" | grep -m1 '\.eml$' | sed 's/\.eml$//'
}
refused_recorded() { "$MAILHOOK" -s "$1" queue show "$2" | grep -q "refused: *a550@example.net"; }

# (a) -s OTHER: the service tried once (a550 refused for good, b451 deferred with
# its backoff); the flush asks it, b451 gets it, the message goes to failed/
svc "$OTHER"; ok $? "the service runs on the other spool"
id=$(queue1 "$OTHER" "case a" a550@example.net b451@example.net)
wait_for 20 refused_recorded "$OTHER" "$id"; ok $? "first attempt: a550@ refused for good, b451@ deferred"
"$MAILHOOK" -s "$OTHER" flush --timeout 60 >"$T/f1" 2>&1; rc=$?
is "$rc" 0 "flush -s OTHER: exit 0 ($(cat "$T/f1"))"
like "$(cat "$T/f1")" "^flush: asked the service \(pid $SVC\): 0 delivered, 0 deferred, 1 failed \(partly delivered: 1 of 2 recipients\), 0 left" \
     "flush -s OTHER: the message is said partly delivered, 1 of 2 (read from OTHER's failed/)"
is "$(rcpts_to b451@example.net)" 2 "b451@ tried twice (451, then accepted)"
# the service's counters of it: status --json, /api/status, /metrics
k=$("$MAILHOOK" -s "$OTHER" status --json | J '[d["counters"][k] for k in ("failed", "partial", "partial_delivered", "partial_recipients")]')
is "$k" "[1, 1, 1, 2]" "status -s OTHER --json: failed 1, partial 1, partial_delivered 1 of partial_recipients 2"
like "$("$MAILHOOK" -s "$OTHER" status)" "since start +delivered 0, deferred [0-9]+, failed 1 \(partly delivered: 1 of 2 recipients\)" \
     "status -s OTHER: the partly delivered said as flush says them, with their recipients"
is "$(get /api/status | J '[d["counters"][k] for k in ("partial", "partial_delivered", "partial_recipients")]')" \
   "[1, 1, 2]" "the console's /api/status: the same counters"
m=$(get /metrics)
like "$m" "^# TYPE mailhook_partial_total counter$" "/metrics: mailhook_partial_total is a counter"
is "$(printf '%s\n' "$m" | grep -E '^mailhook_(failed|partial|partial_delivered|partial_recipients)_total ' | tr '\n' ' ')" \
   "mailhook_failed_total 1 mailhook_partial_total 1 mailhook_partial_delivered_total 1 mailhook_partial_recipients_total 2 " \
   "/metrics: 1 failed, 1 of them partly delivered, to 1 of its 2 recipients"
term_wait "$SVC"

# (b) mh.queue.flush{spool_dir = OTHER} from a script whose default spool is DEF
svc "$OTHER"; ok $? "the service runs on the other spool again"
id=$(queue1 "$OTHER" "case b" a550@example.net c451@example.net)
wait_for 20 refused_recorded "$OTHER" "$id"; ok $? "(b) first attempt: a550@ refused, c451@ deferred"
cat > "$T/flush.lua" <<LUA
local mh = require "mailhook"
local s = mh.queue.flush { spool_dir = "$OTHER", timeout = 20 }
print(string.format("via=%s delivered=%d failed=%d left=%d partial=%d got=%d of=%d", s.via, s.delivered, s.failed,
                    s.left, s.partial or -1, s.partial_delivered or -1, s.partial_recipients or -1))
LUA
is "$("$MAILHOOK" "$T/flush.lua" 2>&1)" "via=service delivered=0 failed=1 left=0 partial=1 got=1 of=2" \
   "mh.queue.flush{spool_dir = OTHER}: 1 failed (not delivered: failed was 0 asking a service), partly delivered, read from OTHER"
term_wait "$SVC"

# (c) MAILHOOK_SPOOL=OTHER, no -s: the same
export MAILHOOK_SPOOL=$OTHER
svc "$OTHER"; ok $? "the service runs on the other spool a third time"
id=$(queue1 "$OTHER" "case c" a550@example.net e451@example.net ok1@example.net)
wait_for 20 refused_recorded "$OTHER" "$id"; ok $? "(c) first attempt: a550@ refused, e451@ deferred, ok1@ got it"
"$MAILHOOK" flush --timeout 60 >"$T/f3" 2>&1; rc=$?
is "$rc" 0 "MAILHOOK_SPOOL=OTHER flush: exit 0"
like "$(cat "$T/f3")" "^flush: asked the service \(pid $SVC\): 0 delivered, 0 deferred, 1 failed \(partly delivered: 2 of 3 recipients\), 0 left" \
     "MAILHOOK_SPOOL=OTHER flush: partly delivered, 2 of 3 ($(cat "$T/f3"))"
term_wait "$SVC"
export MAILHOOK_SPOOL=$DEF

# (d) a message the server defers again (451 at every attempt): the flush asks
# the service and says it is still queued, deferred 1 (it said deferred 0, the
# local flush's count of the same pass 1)
svc "$OTHER"; ok $? "the service runs on the other spool a fourth time"
id=$(queue1 "$OTHER" "case d" d451@example.net)
attempted() { "$MAILHOOK" -s "$OTHER" queue show "$id" | grep -Eq "^attempts: +[1-9]"; }
wait_for 20 attempted; ok $? "(d) first attempt: d451@ deferred"
cat > "$T/flush-d.lua" <<LUA
local mh = require "mailhook"
local ok, err, s = mh.queue.flush { spool_dir = "$OTHER", timeout = 20 }
s = s or ok
print(string.format("via=%s delivered=%d deferred=%d failed=%d left=%d total=%d", s.via, s.delivered, s.deferred,
                    s.failed, s.left, s.total))
LUA
out=$("$MAILHOOK" "$T/flush-d.lua" 2>&1)
is "$out" "via=service delivered=0 deferred=1 failed=0 left=1 total=1" \
   "(d) mh.queue.flush asking the service: deferred 1, the message still queued"
"$MAILHOOK" -s "$OTHER" flush --timeout 60 >"$T/f4" 2>&1; rc=$?
is "$rc" 1 "(d) flush -s OTHER: exit 1 (a message left)"
like "$(cat "$T/f4")" "^flush: asked the service \(pid $SVC\): 0 delivered, 1 deferred, 0 failed, 1 left" \
     "(d) flush -s OTHER: 1 deferred ($(cat "$T/f4"))"
term_wait "$SVC"

done_testing
