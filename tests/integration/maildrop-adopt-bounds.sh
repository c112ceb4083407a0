# What one local user's drop costs the service that adopts it (docs/sendmail.md,
# "Unprivileged submission"): the record's recipients are the caller's word, so the
# work and the log lines they make at adoption must be bounded, or one user's
# drop floods the service's log (journald's rate limit then drops everyone's
# lines).  Needs root (a group, a setgid program, nobody); skipped else.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"
if [ "$(id -u)" != 0 ]; then
  ok 0 "# SKIP unprivileged submission needs root to set up users, a group and a setgid program"
  done_testing; exit 0
fi
stage_install || { echo "Bail out! the staged install failed"; exit 1; }
MH=$P/bin/mailhook
root_mh() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$MH" "$@"; }
root_mh update enabled=true server=127.0.0.1 port=1 tls=none tls_required=false from=pbx@example.com \
  auth=false username=pbx password=Top-Secret-7 >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
adopt() { MAILHOOK_LOG_LEVEL=info root_mh flush >"$T/flush.out" 2>&1; }

# --- 300 items that are no address in the record's "to" lines (mailhook-drop run by
# hand: sendmail would have left them out itself), one good recipient
bad=$(printf '@,%.0s' $(seq 299))@
printf 'Subject: x\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- ok@example.net "$bad"
is "$?" 0 "nobody's drop with 300 bad items: stored"
adopt
like "$(root_mh queue 2>&1)" "nobody +ok@example.net" "adopted, queued to the one good recipient"
n=$(grep -c "maildrop: .* from uid 65534: recipient: '@'" "$T/flush.out")
is "$n" 20 "the log names 20 items left out, not 300 (one line each flooded it)"
like "$(cat "$T/flush.out")" "from uid 65534: and 280 more recipient item\(s\) left out" "and counts the rest in one line"
done_testing
