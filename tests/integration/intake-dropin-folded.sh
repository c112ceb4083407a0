# A header folded inside an address, or with blanks and comments around its '@' and dots
# (RFC 5322's obsolete CFWS), read by both ways in that take recipients from the header:
# `sendmail -t` (lua/mailhook/submit.lua) and a drop-in in pickup/ (runtime/spool.c).
# Both give the same recipients, and neither ever makes one of a piece of what was
# written (nor of a group whose name is an address: "e@x<CRLF> : d@y" sent to d@y
# before, and `ab"q"@x` to "q"@x by sendmail -t, "a>b@x" to ab@x by the drop-in).  Before, the drop-in side sent "c@exa<CRLF> mple.org" to c@exa and
# "c@example . org" to c@example, left <b @example.org> out, and took "a@exa(x)mple.org"
# for a@example.org (a comment vanished instead of being a blank).
. "$ROOT/tests/lib/tap.sh"

S1=$T/drop; S2=$T/sm; C=$T/mailhook.conf
mh() { "$MAILHOOK" -c "$C" "$@"; }
mh update enabled=true from=noreply@example.com server=127.0.0.1 default_domain=example.com >/dev/null
mkdir -p "$S1/pickup" "$S2/pickup"
# the drop-in's recipients, before adoption, as the queue listing reads it: "to | refused"
dropin_rcpts() {
  mh -s "$S1" queue --json | /usr/bin/python3 -c 'import json,sys
for e in json.load(sys.stdin):
    if e["id"] == sys.argv[1]: print(",".join(e["to"]) + " | " + " / ".join(r["rcpt"] + ": " + r["reply"] for r in e["refused"]))' "$1"
}
sm_rcpts() {   # sendmail -t's: the newest file's X-Receiver lines, or "refused"
  local before after
  before=$(ls "$S2/pickup" | wc -l)
  printf '%s\r\nSubject: s\r\n\r\nbody\r\n' "$1" | mh -s "$S2" sendmail -t -i 2>/dev/null
  after=$(ls "$S2/pickup" | wc -l)
  [ "$after" = "$before" ] && { echo "refused"; return; }
  grep -a '^X-Receiver:' "$(ls -t "$S2"/pickup/*.eml | head -1)" | tr -d '\r' | sed 's/^X-Receiver: //' | paste -sd,
}

# header | recipients | a pattern the drop-in's refused items match ("" for none)
n=0
while IFS='|' read -r hdr want left; do
  [ -z "$hdr" ] && continue
  n=$((n + 1))
  h=$(printf '%b' "$hdr")
  printf '%s\r\nSubject: s\r\nMessage-ID: <f%d@test>\r\n\r\nbody\r\n' "$h" "$n" > "$T/m"
  mv "$T/m" "$S1/pickup/f$n.eml"
  got=$(dropin_rcpts "f$n.eml")
  shown=$(printf '%s' "$hdr" | sed 's/\\r\\n/<CRLF>/g')
  if [ -z "$want" ]; then
    unlike "$got" '^[^|]*@' "drop-in $shown: no recipient ($got)"
  else
    like "$got" "^$(printf '%s' "$want" | sed 's/\./\\./g') \|" "drop-in $shown: to $want ($got)"
  fi
  if [ -n "$left" ]; then like "$got" "$left" "  and the item left out, saying why"
  else like "$got" '\| $' "  nothing left out"; fi
  s=$(sm_rcpts "$h")
  is "$s" "${want:-refused}" "  sendmail -t: the same recipients"
  rm -f "$S1/pickup/f$n.eml"
done <<'EOF'
To: <b @example.org>|b@example.org|
To: c@example . org|c@example.org|
To: Bee <b . c @ example . org>|b.c@example.org|
To: <b\r\n @example.org>, d@example.org|b@example.org,d@example.org|
To: c@example.\r\n org|c@example.org|
To: a@example.org, c@exa\r\n mple.org|a@example.org|c@exa mple\.org: not an address \(a line break inside it
To: c@exa\r\n mple.org d@example.org|d@example.org|c@exa mple\.org: not an address
To: ab\r\n c@example.org, d@example.org|d@example.org|ab c@example\.org: not an address \(a line break inside it
To: Some Body\r\n a@example.org, d@example.org|d@example.org|Some Body a@example\.org: not an address
To: a@exa(x)mple.org, d@example.org|d@example.org|a@exa mple\.org: not an address \(a comment inside it
To: ab(x)c@example.org, d@example.org|d@example.org|ab c@example\.org: not an address \(a comment inside it
To: a(x\r\n y)@example.org|a@example.org|
To: a@example.org, wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww|a@example.org|wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww: .*local part longer than 64 characters
To: "a\r\n b"@example.org|"a b"@example.org|
To: team: c@exa\r\n mple.org;\r\nCc: d@example.org|d@example.org|c@exa mple\.org
To: undisclosed-recipients:\r\n ;\r\nCc: d@example.org|d@example.org|
To: Name\r\n <a@example.org>|a@example.org|
To: "Doe,\r\n John" <a@example.org>, b@example.org|a@example.org,b@example.org|
To: a1@example.org\r\n a2@example.org|a1@example.org,a2@example.org|
To: John Doe j@example.org|j@example.org|John Doe: not an address: left out
To: e@example.org\r\n\t:\r\n d@example.org\r\nCc: f@example.org|f@example.org|: d@example\.org: not an address \(a ':' after an address
To: c@example.org c@example.org\r\n :d@exa\r\nCc: f@example.org|f@example.org|c@example\.org c@example\.org :d@exa: not an address \(a ':' after an address
To: a@example.org:b@example.org, c@example.org|c@example.org|a@example\.org:b@example\.org: not an address \(a ':'
To: Name <a@example.org>: b@example.org\r\nCc: d@example.org|d@example.org|Name <a@example\.org>: b@example\.org: not an address \(a ':'
To: team: a@example.org: b@example.org; c@example.org|c@example.org|a@example\.org: b@example\.org: not an address \(a ':'
To: "a@b": c@example.org;|c@example.org|
To: ab"q"@example.org\r\nCc: f@example.org|f@example.org|ab"q"@example\.org: not an address
To: c@example.org"a b"d@example.org, e@example.org|e@example.org|c@example\.org"a b"d@example\.org: not an address
To: a>b@example.org\r\nCc: f@example.org|f@example.org|a>b@example\.org: not an address
To: <a@example.org> <b@example.org>|a@example.org,b@example.org|
To: Ann <a@example.org> Bob <b@example.org>|a@example.org,b@example.org|
To: <a@example.org> b@example.org|a@example.org,b@example.org|
To: <a@example.org> "b"@example.org|a@example.org,"b"@example.org|
To: <a@example.org> (Bob)\r\n <b@example.org>|a@example.org,b@example.org|
To: <a@example.org> root|a@example.org|root: not an address
To: <a@example.org> b@example.org Bob <c@example.org>|a@example.org,c@example.org|b@example\.org Bob: not an address
To: <a@example.org> <b@example.org>: c@example.org|a@example.org|<b@example\.org>: c@example\.org: not an address \(a ':'
To: <mple.org<c@example.org>, d@example.org|d@example.org|mple\.org<c@example\.org: not an address
EOF

# An item left out holding a backslash and a control byte: both parsers keep the
# same text, a control byte as \xNN and a backslash as \x5C (submit.printable), so
# a typed "\x1b" and an ESC byte never read the same in the spool, the queue and
# --json.  Before, the drop-in kept the backslash as it was ("Ops\x1bName" for both)
# and an ESC as \x1b; a why quoting the item (a local name's) must not escape it twice.
kept() {   # spool S, entry id (or "" for the newest): its refused items, "|"-joined
  mh -s "$1" queue --json | /usr/bin/python3 -c 'import json,sys
es = json.load(sys.stdin)
e = [e for e in es if e["id"] == sys.argv[1]] if sys.argv[1] else es[-1:]
print("|".join(r["rcpt"] for r in e[0]["refused"]))
print("\n".join(r["reply"] for r in e[0]["refused"]), file=sys.stderr)' "$2"
}
h=$(printf 'To: d@example.org, Ops\\x1bName, Esc\033Name, Bel\\Q\007')
printf '%s\r\nSubject: s\r\n\r\nbody\r\n' "$h" > "$T/m"
mv "$T/m" "$S1/pickup/bs.eml"
got=$(kept "$S1" bs.eml 2>"$T/why")
is "$got" 'Ops\x5Cx1bName|Esc\x1BName|Bel\x5CQ\x07' "drop-in: the items kept, backslash \\x5C, control bytes \\xNN"
unlike "$(cat "$T/why")" 'x5Cx5C|x5Cx1B|x5Cx07' "  and why quotes each once, never escaped twice ($(head -1 "$T/why"))"
printf '%s\r\nSubject: s\r\n\r\nbody\r\n' "$h" | mh -s "$S2" sendmail -t -i 2>/dev/null
is "$(kept "$S2" "" 2>/dev/null)" "$got" "  sendmail -t keeps the same text"
rm -f "$S1/pickup/bs.eml"

# A long item left out: both parsers keep the same text, cut the same way (at 200
# bytes of what was written, then "...", as every quoted value: submit.shown), and a
# cut never splits an escape (before, the drop-in cut its shown text at 297 bytes:
# "N<ESC>" 120 times kept as "...N\x1BN\..." with a bare backslash, a 249-byte
# item kept whole where sendmail -t kept 200).
for item in "$(printf 'Name%.0s\\' $(seq 150))" "$(printf 'Ann %.0s' $(seq 62))x" \
            "$(printf 'N%.0s\033' $(seq 120))"; do
  printf 'To: d@example.org, %s\r\nSubject: s\r\n\r\nbody\r\n' "$item" > "$T/m"
  mv "$T/m" "$S1/pickup/long.eml"
  got=$(kept "$S1" long.eml 2>/dev/null)
  printf 'To: d@example.org, %s\r\nSubject: s\r\n\r\nbody\r\n' "$item" | mh -s "$S2" sendmail -t -i 2>/dev/null
  is "$(kept "$S2" "" 2>/dev/null)" "$got" "a ${#item}-byte item: sendmail -t keeps the drop-in's text (${got:0:24}...${got: -12})"
  unlike "$got" '\\(x?[0-9A-F]?)?\.\.\.$' "  its cut splits no escape"
  rm -f "$S1/pickup/long.eml"
done

# A reason too long for the spool's 256-byte message ("no usable recipient: 'AAA\x1B..."):
# cut with "...", never inside an escape (before, it ended "\x1B\x1" or "\x": a stray
# backslash, and no sign that it was cut).
for k in 0 1 2 3; do
  printf 'To: %s%s\r\nSubject: s\r\n\r\nbody\r\n' "$(printf '%*s' $k '' | tr ' ' A)" "$(printf '\033%.0s' $(seq 70))" \
    > "$T/m"
  mv "$T/m" "$S1/pickup/nr$k.eml"
  r=$(mh -s "$S1" queue --json | /usr/bin/python3 -c 'import json,sys
print([e for e in json.load(sys.stdin) if e["id"] == sys.argv[1]][0].get("reason") or "")' "nr$k.eml")
  like "$r" "^no usable recipient: 'A{$k}(\\\\x1B)+\\.\\.\\.\$" "a long reason ($k A): cut after a whole escape, with ... (${r: -16})"
  rm -f "$S1/pickup/nr$k.eml"
done
done_testing
