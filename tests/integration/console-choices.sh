# GET /api/settings gives `choices`, the values of each enumerated key the console
# may change (docs/console.md).  The console kept a list of its own, which lacked
# cram-md5 (that `mailhook update` and a Save take: docs/settings.md), from_rewrite
# and log_level: a script building its form from `choices` could not offer them.
# Now the lists come from the settings' schema.  Real parts: `mailhook run` with
# its console, asked with a bearer token; each choice saved through the console.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

AP=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
# no SMTP server: nothing is queued, so nothing connects
conf_for "$(free_port)" admin_listen="127.0.0.1:$AP" admin_token_file="$T/token"
svc_start
up() { curl -s -o /dev/null "http://127.0.0.1:$AP/login"; }
wait_for 10 up; ok $? "the console listens"
api() { curl -s -m 5 -H "Authorization: Bearer $TOKEN" "$@"; }

api "http://127.0.0.1:$AP/api/settings" > "$T/settings.json"
choices() { J "' '.join(d['choices'].get('$1') or [])" < "$T/settings.json"; }
is "$(choices auth_mechanism)" "auto plain login cram-md5 xoauth2 oauthbearer" \
  "auth_mechanism's choices are every mechanism the settings take, cram-md5 included"
is "$(choices from_rewrite)" "never envelope always" "from_rewrite's choices"
is "$(choices log_level)" "debug info warn error" "log_level's choices"
is "$(choices tls)" "auto implicit starttls none" "tls's choices"
is "$(choices tls_min_version)" "1.0 1.1 1.2 1.3" "tls_min_version's choices"
is "$(J "sorted(k for k in d['choices'] if k not in d['editable'])" < "$T/settings.json")" "[]" \
  "choices names only keys the console may change"

# every choice offered is one a Save takes
bad=
for m in $(choices auth_mechanism); do
  code=$(api -o "$T/save.out" -w '%{http_code}' -H 'Content-Type: application/json' \
           -d "{\"changes\": {\"auth_mechanism\": \"$m\"}}" "http://127.0.0.1:$AP/api/settings")
  [ "$code" = 200 ] || bad="$bad $m($code: $(cat "$T/save.out"))"
done
is "$bad" "" "each auth_mechanism offered is saved by the console"
grep -Eq '^auth_mechanism *= *oauthbearer$' "$CONF"; ok $? "and written"

svc_stop; is $? 0 "the service stops cleanly"
done_testing
