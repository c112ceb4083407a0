# --json on the admin commands (issue 15): `test`, `settings`, `update`, `queue`
# print one JSON document holding the same facts as their text, with the same
# exit status; the password never appears; `update admin_password=-` stores a
# salted hash only.  Against a real aiosmtpd with STARTTLS + AUTH.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
PW='pw-Secret-7781'
start_smtpd S --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --auth "user:$PW" --maildir "$T/mail" --log "$T/smtpd.log" || exit 1
"$MAILHOOK" update enabled=true from=app@example.org server=localhost port="$S" tls=starttls \
  tls_ca_file="$C/ca.crt" auth=true username=user "password=$PW" connect_timeout=5 >/dev/null
ok $? "settings written"


# --- test --json: stages in order with their outcome, what was negotiated
out=$("$MAILHOOK" test --json); rc=$?
is "$rc" 0 "test --json: exit 0 when everything passed"
is "$(printf '%s\n' "$out" | wc -l)" 1 "one line"
is "$(echo "$out" | J 'd["ok"]')" true "ok: true"
is "$(echo "$out" | J '" ".join(s["name"] + "=" + s["state"] for s in d["stages"])')" \
   "dns=ok connect=ok tls=ok auth=ok sender=ok recipient=skipped" "every stage in order with its outcome"
is "$(echo "$out" | J 'all(isinstance(s.get("at_ms"), int) for s in d["stages"] if s["state"] == "ok")')" true \
   "each stage passed has its time"
text=$("$MAILHOOK" test)
like "$text" "security +STARTTLS \($(echo "$out" | J 'd["connection"]["tls_version"]'), $(echo "$out" | J 'd["connection"]["cipher"]')\)" \
  "the TLS version and cipher are the text's"
like "$text" "subject $(echo "$out" | J 'd["connection"]["certificate"]["subject"]')" "the certificate's subject too"
is "$(echo "$out" | J 'd["connection"]["certificate"]["verified"]')" true "certificate verified"
is "$(echo "$out" | J 'd["connection"]["auth_mechanism"]')" plain "the mechanism used"
is "$(echo "$out" | J 'd["from_accepted"]')" true "From accepted"
unlike "$out" "$PW" "no password in it"

# a usage error: JSON too (was nothing on stdout), exit 2, the line on stderr still
# (every command with --json: test, update, settings, queue, status)
for a in "test --to bad" "test --timeout x" "test --bogus" "test extra" "update --bogus" "settings --bogus" \
         "queue --bogus" "queue show" "status --timeout x"; do
  out=$("$MAILHOOK" $a --json 2>"$T/err"); rc=$?
  is "$rc:$(echo "$out" | J '[d["ok"], d["usage"], d["error"]]')" \
    "2:$(echo "[false, true, \"$(sed 's/^mailhook [a-z ]*: //' "$T/err")\"]")" "$a --json: a JSON usage error ($out)"
done
out=$("$MAILHOOK" update --json 2>/dev/null); rc=$?
is "$rc:$(echo "$out" | J '[d["ok"], d["usage"]]')" "2:[false, true]" "update --json with no KEY=VALUE: JSON ($out)"
out=$("$MAILHOOK" test --json --to rcpt@example.org); rc=$?
is "$rc" 0 "test --json --to: exit 0"
is "$(echo "$out" | J 'd["stages"][-1]["state"]')" ok "the recipient stage passed"
like "$(echo "$out" | J 'd["test_reply"]')" "^250 " "with the server's reply"
wait_for 5 mail_count_is "$T/mail" 1; ok $? "the message arrived"

# --- a wrong password: the failing stage, the server's reply, the hint (as the text says)
# a refused connect: the name was resolved (dns ok), the connect failed
printf 'enabled = true\nfrom = app@example.org\nserver = localhost\nport = %s\ntls = none\ntls_required = false\n' \
  "$(free_port)" > "$T/refused.conf"
out=$("$MAILHOOK" -c "$T/refused.conf" test --json); rc=$?
is "$rc:$(echo "$out" | J '" ".join(s["name"] + "=" + s["state"] for s in d["stages"][:2])')" \
  "1:dns=ok connect=failed" "a refused connect: dns ok, connect failed (dns read 'not reached')"

"$MAILHOOK" update password=wrong-one >/dev/null
out=$("$MAILHOOK" test --json); rc=$?
text=$("$MAILHOOK" test)
is "$rc" 1 "a wrong password: exit 1"
is "$(echo "$out" | J 'd["failed_stage"]')" auth "failed at auth"
is "$(echo "$out" | J '[s["state"] for s in d["stages"]]')" '["ok", "ok", "ok", "failed", "not reached", "not reached"]' \
   "stages after it not reached"
is "$(echo "$out" | J 'd["reply"]["smtp"]')" 535 "the server's 535"
hint=$(echo "$out" | J 'd["hint"]')
like "$text" "hint +$(printf '%s' "$hint" | sed 's/[][()*.^$|+?{}\\]/\\&/g')" "the same hint as the text"
like "$hint" "password" "which names the password"
unlike "$out" "wrong-one" "the wrong password is not echoed either"

# --- settings --json: the values of `mailhook settings`, the password only as set/unset
out=$("$MAILHOOK" settings --json); rc=$?
is "$rc" 0 "settings --json: exit 0"
is "$(echo "$out" | J 'd["password_set"]')" true "password_set"
unlike "$out" "wrong-one|\*\*\*\*" "the password is neither shown nor masked: absent"
is "$(echo "$out" | J 'd["settings"]["server"]')" '["localhost"]' "server is a list"
text=$("$MAILHOOK" settings)
for k in from port tls username tls_ca_file retry_interval; do
  v=$(echo "$out" | J "d['settings']['$k']")
  case $k in retry_interval) v="${v}s" ;; esac
  printf '%s\n' "$text" | grep -qxF "$k = $v"; ok $? "settings: $k is the same in both ($v)"
done

# --- update --json: saved, or refused with the key; nothing written then
before=$(cat "$MAILHOOK_CONF")
out=$("$MAILHOOK" update --json port=99999); rc=$?
is "$rc" 2 "update --json with a bad value: exit 2"
is "$(echo "$out" | J 'd["ok"]')" false "ok: false"
is "$(echo "$out" | J 'd["key"]')" port "naming the key"
like "$(echo "$out" | J 'd["error"]')" "port.*1-65535" "and why"
is "$(cat "$MAILHOOK_CONF")" "$before" "nothing written"
out=$("$MAILHOOK" update --json retry_interval=45s "password=$PW"); rc=$?
is "$rc" 0 "update --json: exit 0"
is "$(echo "$out" | J 'd["settings"]["retry_interval"]')" 45 "the new value (seconds)"
unlike "$out" "$PW" "the new password is not echoed"

# --- admin_password=-: a salted hash on disk, never the password
echo 'console-Pass-1' | "$MAILHOOK" update admin_password=- >/dev/null; rc=$?
is "$rc" 0 "update admin_password=- (stdin)"
SECRETS=${MAILHOOK_CONF%.conf}.secrets   # the secrets live apart (docs/settings.md, "Secrets")
like "$(grep '^admin_password' "$SECRETS")" '^admin_password = \$scrypt\$ln=[0-9]+,r=[0-9]+,p=[0-9]+\$' "stored as a scrypt hash (in the secrets file)"
unlike "$(cat "$MAILHOOK_CONF" "$SECRETS")" "console-Pass-1" "the password itself is nowhere in the files"
h1=$(grep '^admin_password' "$SECRETS")
echo 'console-Pass-1' | "$MAILHOOK" update admin_password=- >/dev/null
h2=$(grep '^admin_password' "$SECRETS")
[ "$h1" != "$h2" ]; ok $? "salted: the same password twice gives two hashes"
is "$("$MAILHOOK" settings | grep '^admin_password')" "admin_password = ********" "settings masks it"
is "$("$MAILHOOK" settings --json | J 'd["admin_password_set"]')" true "settings --json says it is set"
out=$("$MAILHOOK" update admin_password=not-a-hash-in-the-file 2>&1); rc=$?
is "$rc" 0 "a password given inline is hashed as well"
unlike "$(cat "$MAILHOOK_CONF" "$SECRETS")" "not-a-hash-in-the-file" "and not stored"
printf 'admin_password = plain-text\n' >> "$T/bad.conf"
out=$("$MAILHOOK" -c "$T/bad.conf" settings 2>&1); rc=$?
is "$rc" 1 "a settings file with a plain admin_password is refused"
like "$out" "admin_password: must be a password hash" "saying it must be a hash"

# --- queue --json: the entries `queue` lists
"$MAILHOOK" update enabled=true >/dev/null
echo hi | "$MAILHOOK" enqueue --to a@example.org --subject one >/dev/null
echo hi | "$MAILHOOK" enqueue --to b@example.org --subject two >/dev/null
out=$("$MAILHOOK" queue --json); rc=$?
is "$rc" 0 "queue --json: exit 0"
is "$(echo "$out" | J '[e["to"][0] for e in d]')" '["a@example.org", "b@example.org"]' "both messages, oldest first"
ids=$("$MAILHOOK" queue | awk 'NR > 1 {print $1}' | tr '\n' ' ')
is "$(echo "$out" | J '" ".join(e["id"] for e in d) + " "')" "$ids" "the ids the text lists"
# queue show / rm / retry with --json: one JSON document each (they printed
# text, exit 0, whatever --json said)
first=${ids%% *}
out=$("$MAILHOOK" queue show "$first" --json); rc=$?
is "$rc" 0 "queue show ID --json: exit 0"
is "$(echo "$out" | J 'd["id"] + " " + d["to"][0] + " " + d["state"]')" "$first a@example.org pickup" \
  "queue show --json: the entry, as the listing's"
like "$(echo "$out" | J 'd["path"]')" "/pickup/$first\.eml\$" "with its file"
out=$("$MAILHOOK" queue --json show 0000000000000bad); rc=$?
is "$rc:$(echo "$out" | J 'd["ok"]')" "1:false" "queue --json show of no such message: exit 1, ok false"
out=$("$MAILHOOK" queue rm "$first" --json); rc=$?
is "$rc:$(echo "$out" | J 'str(d["ok"]) + " " + d["id"] + " " + str(d["removed"])')" "0:True $first True" \
  "queue rm --json: {ok, id, removed}"
out=$("$MAILHOOK" queue retry "$first" --json); rc=$?
is "$rc:$(echo "$out" | J 'd["ok"]')" "1:false" "queue retry --json of a message not in failed/: exit 1, ok false"
# bytes that are not UTF-8 (a drop-in's file name, its sender, a server's reply) still make
# valid JSON: queue had its own string encoder, which passed them through raw
printf 'From: caf\xe9@example.org\r\nTo: c@example.org\r\nSubject: x\r\n\r\nx\r\n' \
  > "$MAILHOOK_SPOOL/pickup/drop-caf"$'\xe9'".eml"
out=$("$MAILHOOK" queue --json | /usr/bin/python3 -c 'import json, sys
d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
print(ascii([e["id"] for e in d if e["id"].startswith("drop-")]))' 2>&1)
is "$out" "['drop-caf\ufffd.eml']" "queue --json with a drop-in named in Latin-1: valid UTF-8 JSON, the stray byte as U+FFFD"

done_testing
