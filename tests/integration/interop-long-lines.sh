# A queued message with a body line over 998 octets (RFC 5321 §4.5.3.1.6: SMTP carries
# none, 8BITMIME or not): a long plain-text line, a long line of 8-bit text, a long line in
# the HTML part of a multipart; and a header field of 2,300 octets on one line.  Sent to real servers (Exim with and without 8BITMIME,
# OpenSMTPD), each arrives with no line over 998 octets and decodes to exactly the text
# queued: the part is encoded quoted-printable (soft line breaks), never cut by a line
# break that would change the text (a space in a word or a URL of the HTML); the header
# field is folded at its blanks (RFC 5322 §2.2.3), never inside a word.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

md() { "$PY" "$MAILDIR_PY" "$@"; }
copy_of() { mta_list "$1" | awk -F'\t' -v id="<$2>" -v r="$3" '$2 == id && $1 == r { print $4; exit }'; }
longest() { awk '{ sub(/\r$/, ""); if (length($0) > m) m = length($0) } END { print m + 0 }' "$1"; }
# the text a reader sees, headers and parts, without the parts' labels (a part without a
# Content-Type gains one, "charset=us-ascii", when it is encoded)
text_of() { md decoded "$1" | grep -v '^-- part '; }

queue_long() {
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: long ascii\nMessage-ID: <%s-ascii@test>\n\n' "$1"
    printf 'see https://example.org/very/long/'; head -c 3000 /dev/zero | tr '\0' 'x'; echo '?a=1 end of the line'
    echo 'a short line after it'; } | MH sendmail -t -i
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: long 8bit\nMessage-ID: <%s-8bit@test>\n' "$1"
    printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
    for _ in $(seq 700); do printf 'é'; done; echo; echo 'fin'; } | MH sendmail -t -i
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: long html\nMessage-ID: <%s-html@test>\n' "$1"
    printf 'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"\n\n--b\n'
    printf 'Content-Type: text/plain; charset=us-ascii\n\nshort text part\n--b\n'
    printf 'Content-Type: text/html; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n<p><a href="https://example.org/'
    head -c 5000 /dev/zero | tr '\0' 'h'; echo '">link</a></p>'; echo '--b--'; } | MH sendmail -t -i
  # a header field of 2,300 octets in one line (words): folded at blanks, never inside a word
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: long header\nMessage-ID: <%s-header@test>\nX-Long:' "$1"
    for i in $(seq 300); do printf ' word%d' "$i"; done; echo; echo; echo 'body'; } | MH sendmail -t -i
}

check_long() {   # check_long VAR NAME TAG
  local var=$1 name=$2 tag=$3 kind f
  for kind in ascii 8bit html header; do
    md wire "$(spool_file "$tag-$kind@test")" > "$T/$tag-$kind.want"
  done
  mta_flush
  is "$FLUSH_RC" 0 "$name: one flush delivers the four (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle "$var"
  for kind in ascii 8bit html header; do
    f=$(copy_of "$var" "$tag-$kind@test" a@x.example)
    ok "$([ -n "$f" ] && echo 0 || echo 1)" "$name: the long $kind message arrived"
    [ -n "$f" ] || continue
    local n; n=$(longest "$f")
    ok "$([ "$n" -le 998 ] && echo 0 || echo 1)" "$name: $kind: no line over 998 octets ($n)"
    md strip "$f" > "$T/$tag-$kind.got"
    is "$(text_of "$T/$tag-$kind.got")" "$(text_of "$T/$tag-$kind.want")" "$name: $kind: it decodes to the text queued"
  done
  is "$(failed_n)" 0 "$name: nothing in failed/"
}

sc_exim() {
  local opt
  for opt in "" --no-8bitmime; do
    start_exim E $opt || { ok 1 "exim starts"; return; }
    mta_mh "exim$opt" "$E"
    queue_long "exim$opt"
    check_long E "exim${opt:+ $opt}" "exim$opt"
    unlike "$(cat "$E_DIR"/log/* 2>/dev/null)" "overlong|line too long|syntax error" "exim${opt:+ $opt}: no complaint in exim's logs"
    stop_mta E
  done
}

sc_opensmtpd() {
  start_opensmtpd O || { ok 1 "opensmtpd starts"; return; }
  mta_mh osmtpd "$O"
  queue_long osmtpd
  check_long O opensmtpd osmtpd
  stop_mta O
}

mta_scenarios sc_exim sc_opensmtpd
done_testing
