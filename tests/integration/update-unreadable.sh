# `mailhook update` on settings it cannot read: exit 1 (the disk or the system refused), not
# 2 (DESIGN.md: "2 invalid, nothing written" is for what the administrator gave or wrote
# wrong).  A script or the console's caller tells the two apart: fix the input, or look at
# the machine.  Before, an EIO on the settings file, or a secrets file this user may not
# read, was exit 2 as if a value were wrong.  Nothing is written either way.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
strace_inject_require
write_conf "$T/m.conf" enabled=true server=127.0.0.1 port=2525 from=pbx@example.org
before=$(cat "$T/m.conf")

# an I/O error reading the settings file (strace turns its read into EIO)
eio() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
  strace -f -qq -o /dev/null -P "$T/m.conf" -e trace=read -e inject=read:error=EIO "$MAILHOOK" -c "$T/m.conf" "$@"; }
out=$(eio update port=26 2>&1); rc=$?
is "$rc" 1 "update: the settings file cannot be read (EIO): exit 1, not 2"
like "$out" "m\.conf: cannot read: Input/output error" "  the error names the file and the reason"
is "$(cat "$T/m.conf")" "$before" "  nothing written"
out=$(eio update --json port=26 2>/dev/null); rc=$?
is "$rc" 1 "update --json: the same, exit 1"
like "$out" '"ok":false' "  a JSON result that says it failed ($out)"

# what the administrator wrote wrong stays exit 2
printf 'bogus line\n' > "$T/bad.conf"
out=$("$MAILHOOK" -c "$T/bad.conf" update port=26 2>&1); rc=$?
is "$rc" 2 "a line of the file that is not 'key = value': exit 2 (invalid)"
like "$out" "bad\.conf:1: expected 'key = value'" "  naming the line"
out=$("$MAILHOOK" -c "$T/m.conf" update port=http 2>&1); rc=$?
is "$rc" 2 "a bad value: exit 2"

# a secrets file this user may not read (root's, 0600): exit 1, nothing written
M=$(mailhook_for_others "$T/inst")
D=$T/pub; mkdir -p "$D"; chmod 755 "$D"
write_conf "$D/m.conf" enabled=true server=127.0.0.1 port=2525 from=pbx@example.org
printf 'password = s3cret\n' > "$D/m.secrets"; chmod 600 "$D/m.secrets"
chmod 644 "$D/m.conf"
out=$(cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/bin:/bin \
      "$M" -c "$D/m.conf" update port=26 2>&1); rc=$?
is "$rc" 1 "update as a user who may not read the secrets file: exit 1, not 2"
like "$out" "m\.secrets: cannot read: Permission denied" "  saying which file and why"
grep -q '^port = 2525$' "$D/m.conf"; ok $? "  nothing written"
done_testing
