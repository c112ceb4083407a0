# `mailhook run` loads the same rules as `hook`: it sends the throttle summary
# at the end of a window that `hook` processes recorded (even when the service
# itself was restarted in the middle of the window), delivers it to a real SMTP
# server, and its `failed` event reaches the rules.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/service.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
start_smtpd P --maildir "$T/inbox" --reply-rcpt "dead@example.org=550 5.1.1 no such user"
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$P" from=pbx@example.com tls=none \
  tls_required=false rules=rules retry_interval=1
mkdir -p "$T/rules"
cat > "$T/rules/flap.lua" <<'LUA'
on("flap", function(ev)
  if throttle { key = "flap", max = 1, per = 5, summary = true, to = "ops@example.com" } then
    assert(mh.enqueue { to = "ops@example.com", subject = "flap " .. ev.n, text = "x" })
  end
end)
on("failed", function(ev)
  assert(mh.enqueue { to = "postmaster@example.com", subject = "failed: " .. tostring(ev.id), text = tostring(ev.reason) })
end)
on("failed", function(ev)   -- a notice sent the way the mail failed: it fails too
  if ev.subject == "loop me" then
    assert(mh.enqueue { to = "dead@example.org", subject = "notice of " .. tostring(ev.id), text = "x" })
  end
end)
on("failed", function(ev)   -- the notice queued by a task it spawned, after the handler returned
  if ev.subject == "loop from a task" then
    mh.spawn(function()
      mh.sleep(0.2)
      assert(mh.enqueue { to = "dead@example.org", subject = "task notice of " .. tostring(ev.id), text = "x" })
    end)
  end
end)
on("failed", function(ev)   -- the notice queued by an every() timer it started: each tick is a rule of its own
  if ev.subject == "loop from every" then
    local h
    h = every(0.2, function()
      h:stop()
      assert(mh.enqueue { to = "dead@example.org", subject = "every notice of " .. tostring(ev.id), text = "x" })
    end)
  end
end)
on("failed", function(ev)   -- the notice held for later: the sweep, a rule of its own, queues it
  if ev.subject == "loop from hold" then
    assert(hold({ to = "dead@example.org", subject = "held notice of " .. tostring(ev.id), text = "x" }, os.time() + 1))
  end
end)
on("failed", function(ev)   -- failures counted, one summary at the window's end, queued by the sweep
  if ev.subject == "loop from throttle" then
    throttle { key = "failures", max = 0, per = 1, summary = true, to = "dead@example.org" }
  end
end)
LUA
# notice_unlooped SUBJECT SECS DESC: a message to the refused recipient with SUBJECT fails,
# a `failed` handler's notice about it fails too, and the log says no `failed` followed
notice_unlooped() {
  local id
  id=$("$MAILHOOK" enqueue --to dead@example.org --subject "$1" </dev/null 2>/dev/null)
  wait_for "$2" grep -q "no \`failed\` event: it is the notice a \`failed\` rule queued about $id" "$T/run.log"
  ok $? "$3"
}
inbox_has() { grep -qs "$1" "$T"/inbox/*.eml; }
start_run() { "$MAILHOOK" run >>"$T/run.log" 2>&1 & RUN=$!; on_exit "kill $RUN"; }

# four `mailhook hook` in one 5 s window (an ASan build on a loaded machine takes 0.7 s
# each: the fourth fell past the 3 s window this had, and was allowed)
for n in 1 2 3 4; do "$MAILHOOK" hook flap n=$n; done
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 1 "hook: one mail, three suppressed (recorded on disk)"
start_run
wait_for 10 inbox_has "Subject: flap 1"; ok $? "run delivers the allowed mail"
kill "$RUN"; wait "$RUN" 2>/dev/null
start_run                                   # a restart in the middle of the window
wait_for 15 inbox_has "3 more suppressed: flap"; ok $? "the restarted service sends the summary at the window end"
sleep_until_quiet() { [ "$(ls "$T/spool/pickup" | grep -c '\.eml$')" = 0 ]; }
wait_for 10 sleep_until_quiet
is "$(grep -l "more suppressed: flap" "$T"/inbox/*.eml | wc -l)" 1 "exactly one summary"
# a message the server refuses for good: the service emits `failed`, the rule tells the postmaster
"$MAILHOOK" enqueue --to dead@example.org --subject doomed </dev/null >/dev/null
wait_for 15 inbox_has "Subject: failed: "; ok $? "the failed event reached the rule, its mail delivered"
like "$(grep -l "Subject: failed: " "$T"/inbox/*.eml | xargs cat)" "5.1.1|no such user|550" "with the server's reason"
# A `failed` rule whose notice fails too: that failure emits no `failed` event
# (each one queued another notice, hundreds a second, failed/ filling up)
"$MAILHOOK" enqueue --to dead@example.org --subject "loop me" </dev/null >/dev/null
wait_for 15 grep -q 'no `failed` event: it is the notice a `failed` rule queued about' "$T/run.log"
ok $? "the notice's own failure: no failed event, said in the log"
notice=$(grep -o 'delivery: [0-9a-f]*: no `failed` event' "$T/run.log" | head -1 | cut -d' ' -f2 | tr -d :)
ok "$([ -n "$notice" ] && ! inbox_has "Subject: failed: $notice"; echo $?)" "the postmaster's rule did not run for it"
# the notice queued by a task the handler spawned (mh.spawn: part of the rule),
# once the handler had returned: it was not marked, and its failure looped
notice_unlooped "loop from a task" 15 "a notice queued by the handler's task after it returned: its failure emits no failed event either"
# the notice queued by a tick of an every() timer the handler started: the tick ran
# under a fresh budget, its notice was not marked, and each failure started another timer
notice_unlooped "loop from every" 15 "a notice queued by a tick of the handler's every() timer: its failure emits no failed event either"
# the notice a handler held for a second (hold(): quiet hours), queued by the sweep
notice_unlooped "loop from hold" 20 "a notice a handler held, queued later by the sweep: its failure emits no failed event either"
# the summary of a throttle a handler counts failures in (the same for a digest's mail)
notice_unlooped "loop from throttle" 20 "a handler's throttle summary, queued later by the sweep: its failure emits no failed event either"
kill "$RUN"; wait "$RUN" 2>/dev/null
# a clean stop by a signal to the whole process group (systemctl stop's default
# KillMode, Ctrl-C in a terminal): the service stops its worker itself; the
# worker killed by the signal first made it log an error ("the rules worker ... was
# killed by signal 15 ... restarting") at every stop
for sig in TERM INT; do
  : > "$T/stop.log"
  MAILHOOK_LOG_LEVEL=info setsid "$MAILHOOK" run >>"$T/stop.log" 2>&1 & RUN=$!
  on_exit "kill -9 -- -$RUN"
  wait_for 15 grep -q "rules worker: [0-9]* rule file" "$T/stop.log"; ok $? "the service and its rules worker are up"
  kill -"$sig" -- -"$RUN"; wait "$RUN"; rc=$?
  is "$rc" 0 "SIG$sig to the service's process group: exit 0"
  like "$(cat "$T/stop.log")" "mailhook run: stopped" "stopped"
  unlike "$(cat "$T/stop.log")" " error |killed by signal|restarting" "no error about the rules worker"
done

# log = journal: the rules worker's lines and a rule's mh.log go there too (they always
# went to stderr: rule errors never reached the journal's fields or syslog's mail.log)
start_unixgram J journal "$T/journal.sock" || { echo "Bail out! unixgram.py did not start"; exit 1; }
cp "$MAILHOOK_CONF" "$T/journal.conf"; printf 'log = journal\n' >> "$T/journal.conf"
mkdir -p "$T/jrules"; printf 'on("ping", function() end)\nmh.log.warn("jrule loaded here")\n' > "$T/jrules/j.lua"
: > "$T/j.err"
MAILHOOK_LOG_LEVEL=info MAILHOOK_JOURNAL_SOCKET=$T/journal.sock "$MAILHOOK" -c "$T/journal.conf" run "$T/jrules/j.lua" 2>"$T/j.err" & RUN=$!
on_exit "kill $RUN"
MSGS='[r["fields"].get("MESSAGE", "") for r in recs]'
wait_for 15 has "$J_OUT" "any('rule file(s) loaded' in m for m in $MSGS)"
ok $? "the worker's 'rule file(s) loaded' line in the journal"
wait_for 5 has "$J_OUT" "any('jrule loaded here' in m for m in $MSGS)"; ok $? "a rule's mh.log.warn in the journal"
unlike "$(cat "$T/j.err")" "jrule loaded here|rule file\(s\) loaded" "not on stderr"
kill "$RUN"; wait "$RUN" 2>/dev/null

# the binary replaced on disk while the service runs (an upgrade before its restart): a
# rules worker killed then is started again from the running image ("cannot start
# .../mailhook (deleted)" was retried for ever, rules and timers gone)
B=$(mailhook_for_others "$T/up")
: > "$T/up.log"
MAILHOOK_LOG_LEVEL=info "$B" run >>"$T/up.log" 2>&1 & RUN=$!
on_exit "kill $RUN"
wait_for 15 grep -q "rules worker: [0-9]* rule file" "$T/up.log"; ok $? "a service run from a copy, with its worker"
rm "$B"; cp "$MAILHOOK" "$B"                  # a new file at the same path, the old one deleted
worker=$(pgrep -P "$RUN" | head -1)
kill -9 "$worker"
wait_for 15 eval '[ "$(grep -c "rules worker: [0-9]* rule file" "$T/up.log")" -ge 2 ]'
ok $? "the killed worker starts again ($(grep -E "cannot start|restarting" "$T/up.log" | head -2))"
unlike "$(cat "$T/up.log")" "cannot start" "no 'cannot start ... (deleted)'"
kill "$RUN"; wait "$RUN" 2>/dev/null
done_testing
