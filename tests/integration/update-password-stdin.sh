# `update password=-` and `admin_password=-` read one line of stdin, at most
# 4 KiB: a longer one is refused, nothing saved, and it is not read to its end
# (admin_password=- read it whole with io.read("l"): `< /dev/zero` took memory
# until it ran out, then a Lua traceback; a 100 KB line was saved).
. "$ROOT/tests/lib/tap.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
long() { head -c 100000 /dev/zero | tr '\0' x; }
for key in password admin_password; do
  out=$(long | timeout 20 "$MAILHOOK" -c "$T/$key.conf" -s "$T/spool" update "$key=-" 2>&1); rc=$?
  is "$rc" 2 "$key=-: a line of 100 KB is refused (exit 2)"
  like "$out" "^mailhook update: $key: the line on stdin is over 4 KiB$" "$key=-: saying the line is over 4 KiB"
  ls "$T/$key.conf" "$T/$key.secrets" >/dev/null 2>&1; ok $(( ! $? )) "$key=-: nothing saved"
  # not read to its end: 50 MB of NULs with no newline (a stand-in for /dev/zero, bounded)
  out=$(head -c 50000000 /dev/zero | timeout 20 "$MAILHOOK" -c "$T/$key.conf" -s "$T/spool" update "$key=-" 2>&1); rc=$?
  is "$rc" 2 "$key=-: 50 MB with no newline refused (exit 2), not read whole"
  unlike "$out" "traceback" "$key=-: 50 MB with no newline: no traceback"
  out=$(printf 'Adm1n-Pass-99\n' | "$MAILHOOK" -c "$T/$key.conf" -s "$T/spool" update "$key=-" 2>&1); rc=$?
  is "$rc" 0 "$key=-: a line of 13 bytes is taken"
done
grep -q '^admin_password = \$' "$T/admin_password.secrets"; ok $? "admin_password=-: saved as a hash"
grep -qx 'password = Adm1n-Pass-99' "$T/password.secrets"; ok $? "password=-: saved as typed"
done_testing
