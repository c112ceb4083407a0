# AUTH against a real Exim (STARTTLS, AUTH PLAIN and LOGIN offered only under TLS and
# required before MAIL; tests/lib/mta.sh): a long password with non-ASCII characters goes
# through both mechanisms (flush and `mailhook test`), with tls = auto too (AUTH appears
# only after STARTTLS); a wrong password (535) fails no message: the service logs once
# that the server refuses the login, retries less and less often (Exim's log counts the
# attempts), and delivers at once after `mailhook update password=...` and a SIGHUP.
# AUTH CRAM-MD5 against Exim's cram_md5 authenticator, the only mechanism it offers:
# under STARTTLS and in plain text (allow_plaintext_auth), Exim checking the HMAC; a
# wrong password is Exim's 535; the password is in no log, -v's included.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

PW="pässwörd €-ünïcödé $(printf 'z%.0s' $(seq 150))"
auth_fails() { grep -c 'authenticator failed' "$E_LOG"; }
# exim_up: one Exim, with one set of certificates, for both scenarios (they start it with
# the same options): the first call makes them, later calls find it running.  The
# scenario with the wrong password runs last: sc_auth_passwords counts no failed login.
exim_up() {
  [ -n "${E_PID:-}" ] && return 0
  make_certs "$T/certs" || { ok 1 "certificates"; return 1; }
  start_exim E --tls "$T/certs" --auth "mh-user:$PW" || { ok 1 "exim starts"; return 1; }
}

sc_auth_passwords() {
  exim_up || return
  local mech tls
  for tls in starttls auto; do
    for mech in plain login; do
      mta_mh "pw-$tls-$mech" "$E" tls="$tls" tls_required=true tls_ca_file="$T/certs/ca.crt" auth=true \
        username=mh-user password="$PW" auth_mechanism="$mech"
      mh_test "$CONF"
      is "$RC" 0 "tls=$tls, AUTH $mech with a 170-character non-ASCII password: mailhook test passes${ERR:+ ($ERR)}"
      mta_queue "pw-$tls-$mech" 2 a@x.example
      mta_flush
      is "$FLUSH_RC" 0 "tls=$tls, AUTH $mech: flush delivers (${FLUSH_OUT##*$'\n'})"
      wait_for 30 mta_idle E
      mta_once E "pw-$tls-$mech" 2 a@x.example
      like "$(grep "id=pw-$tls-$mech-1@test" "$E_LOG")" " X=TLS1\.[23][^ ]* .*A=$mech:mh-user " \
        "tls=$tls: exim received it under TLS, authenticated with $mech"
    done
  done
  is "$(auth_fails)" 0 "exim saw no failed login"
  unlike "$(cat "$T/flush.log" "$E_DIR"/log/* 2>/dev/null)" "pässwörd|zzzzzzzzzz" "the password is in no log"
}

sc_auth_refused() {
  exim_up || return
  mta_mh bad "$E" tls=starttls tls_required=true tls_ca_file="$T/certs/ca.crt" auth=true \
    username=mh-user password=wrong-password retry_interval=1 retry_max=3600
  mta_queue bad 3 a@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "flush fails (rc $FLUSH_RC)"
  like "$FLUSH_OUT" "authentication failed: 535" "and says authentication failed, with the server's 535"
  mh_test "$CONF"
  is "$RC" 1 "mailhook test fails"
  like "$OUT" "FAILED at stage auth" "at stage auth"
  is "$(pickup_n) $(failed_n)" "3 0" "no message failed over a password"
  local svc before
  before=$(auth_fails)   # (before the start: counted after it, the service's first attempt could be in it)
  MAILHOOK_LOG_LEVEL=info MAILHOOK_SPOOL=$SPOOL "$MAILHOOK" -c "$CONF" run >"$T/svc.log" 2>&1 &
  svc=$!
  on_exit "kill -9 $svc 2>/dev/null"
  # four attempts, 1, 2 and 4 s apart (x0.75-1.25): the next one is 6 s away at least
  _fails_past() { [ "$(auth_fails)" -ge $((before + 4)) ]; }
  wait_for 40 _fails_past; ok $? "the service retries the login (exim counts $(auth_fails) failures)"
  is "$(grep -c 'server refuses the login (auth: authentication failed: 535' "$T/svc.log")" 1 \
    "the service logs once that the server refuses the login"
  like "$(cat "$T/svc.log")" "less and less often .* until the settings change" "and that it backs off"
  unlike "$(cat "$T/svc.log")" "server unreachable" "it does not call the server unreachable"
  is "$(pickup_n) $(failed_n)" "3 0" "the queue waits, nothing failed"
  MH update password="$PW" >/dev/null 2>&1; ok $? "mailhook update password=..."
  kill -HUP "$svc"
  _drained() { [ "$(pickup_n)" = 0 ]; }
  # the backoff's next attempt is 6 s away or more: only the reload makes it this fast
  wait_for 5 _drained; ok $? "after the SIGHUP the queue goes at once, not after the backoff"
  wait_for 30 mta_idle E
  mta_once E bad 3 a@x.example
  term_wait "$svc"
  unlike "$(cat "$T/svc.log" "$E_DIR"/log/* 2>/dev/null)" "pässwörd|zzzzzzzzzz|wrong-password" "no password in any log"
  stop_mta E
}

sc_auth_cram() {
  local CPW="cr4m-pässwört-$(printf 'k%.0s' $(seq 40))" tls out
  [ -s "$T/certs/ca.crt" ] || make_certs "$T/certs" || { ok 1 "certificates"; return; }
  start_exim X --tls "$T/certs" --auth-cram "mh-user:$CPW" || { ok 1 "exim starts"; return; }
  echo "$X_PID" > "$T/cram.pid"   # (run in a subshell: the file's clean-up stops it, cram_bg)
  # (plain text first: a server once reached with TLS gets no plain text after, tls-seen)
  for tls in none starttls; do
    local more=(tls=starttls tls_required=true)
    [ "$tls" = none ] && more=(tls=none tls_required=false allow_plaintext_auth=true)
    mta_mh "cram-$tls" "$X" "${more[@]}" tls_ca_file="$T/certs/ca.crt" auth=true username=mh-user password="$CPW"
    mh_test "$CONF"
    is "$RC" 0 "Exim offering only CRAM-MD5, tls=$tls: mailhook test passes${ERR:+ ($ERR)}"
    like "$OUT" "auth +CRAM-MD5 as mh-user" "tls=$tls: it logs in with CRAM-MD5"
    mta_queue "cram-$tls" 2 a@x.example
    out=$(MAILHOOK_LOG_LEVEL=debug timeout 120 "$MAILHOOK" -v -c "$CONF" -s "$SPOOL" flush --timeout 90 2>&1)
    is "$?" 0 "tls=$tls: flush delivers (${out##*$'\n'})"
    printf '%s\n' "$out" >> "$T/flush.log"
    wait_for 30 mta_idle X
    mta_once X "cram-$tls" 2 a@x.example
    if [ "$tls" = starttls ]; then
      like "$(grep "id=cram-$tls-1@test" "$X_LOG")" " X=TLS1\.[23][^ ]* .*A=cram:mh-user " \
        "tls=$tls: exim received it under TLS, authenticated with CRAM-MD5"
    else
      like "$(grep "id=cram-$tls-1@test" "$X_LOG")" " A=cram:mh-user " "tls=$tls: exim authenticated it with CRAM-MD5"
    fi
  done
  mta_mh cram-bad "$X" tls=starttls tls_required=true tls_ca_file="$T/certs/ca.crt" auth=true username=mh-user \
    password=wrong-password
  mh_test "$CONF"
  is "$RC" 1 "CRAM-MD5 with a wrong password: mailhook test fails"
  like "$ERR" "authentication failed: 535" "with Exim's 535"
  like "$(cat "$X_LOG")" "cram authenticator failed" "exim saw the failed CRAM-MD5 login"
  unlike "$(cat "$T/flush.log" "$X_DIR"/log/* 2>/dev/null)$OUT" "pässwört|kkkkkkkkkk|wrong-password" \
    "the password is in no log (-v included)"
  stop_mta X
}

# sc_auth_cram (its own Exim) runs in the background while sc_auth_refused waits out the
# login backoff (1, 2 and 4 s); its TAP, kept in a file, is numbered into this file's at the end
cram_bg() {
  on_exit '[ -s "$T/cram.pid" ] && X_PID=$(cat "$T/cram.pid") && stop_mta X KILL'
  ( sc_auth_cram ) > "$T/cram.tap" &
  CRAM=$!
}
cram_done() { wait "$CRAM"; tap_merge "$T/cram.tap" $? sc_auth_cram; }
mta_scenarios sc_auth_passwords cram_bg sc_auth_refused cram_done
done_testing
