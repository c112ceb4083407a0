# The Date (and the Received line's date) that `mailhook sendmail` adds to a message
# without one, in a time zone RFC 5322's +hhmm cannot say: an offset in seconds
# (TZ=XXX+0:44:30, as Africa/Monrovia's -00:44:30 before 1972) or one of 24 hours or
# more (TZ=XXX-24:30).  mh.message wrote those in UTC (c252e73), but sendmail's intake
# (submit.lua, also the maildrop adoption) formatted its own with os.date("%z"):
# "-0044", 30 seconds off, and "+2430", which readers refuse.  Now both use the core's
# rule (core.msg.date): the instant exact, the zone a valid +hhmm.
. "$ROOT/tests/lib/tap.sh"

C=$T/mailhook.conf; S=$T/spool
"$MAILHOOK" -c "$C" update enabled=true server=127.0.0.1 from=noreply@ex.org >/dev/null
# check.py FILE T0 T1: the Date and the Received date of FILE, each "ok" when its zone is
# +hhmm with hh < 24 and mm < 60 and the instant it says is within [T0, T1]
cat > "$T/check.py" <<'PY'
import email.utils, re, sys
head = open(sys.argv[1], "rb").read().split(b"\r\n\r\n", 1)[0].decode().replace("\r\n\t", " ")
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
out = []
for name, pat in (("Date", r"^Date: (.*)$"), ("Received", r"^Received: .*; (.*)$")):
    m = re.search(pat, head, re.M)
    if not m:
        out.append(name + " missing"); continue
    v = m.group(1).strip()
    z = re.search(r"([+-])(\d\d)(\d\d)$", v)
    if not z or int(z.group(2)) > 23 or int(z.group(3)) > 59:
        out.append("%s bad zone (%s)" % (name, v)); continue
    t = email.utils.parsedate_to_datetime(v).timestamp()
    out.append("%s ok" % name if t0 <= t <= t1 else "%s off by %ds (%s)" % (name, t - t0, v))
print(", ".join(out))
PY
for tz in XXX+0:44:30 XXX-24:30 XXX-5:30 UTC; do
  rm -f "$S"/pickup/*.eml
  t0=$(date +%s)
  printf 'To: ops@ex.org\nSubject: zone\n\nbody\n' | TZ=$tz "$MAILHOOK" -c "$C" -s "$S" sendmail -t; rc=$?
  t1=$(date +%s)
  is "$rc" 0 "TZ=$tz: sendmail -t queued it"
  f=$(ls "$S"/pickup/*.eml 2>/dev/null | head -1)
  is "$(/usr/bin/python3 "$T/check.py" "$f" "$t0" "$t1" 2>&1)" "Date ok, Received ok" \
    "TZ=$tz: the Date and the Received date say the instant, with a valid zone"
done
like "$(grep -h "^Date:" "$S"/pickup/*.eml | tr -d "\r")" "\+0000$" "UTC: +0000"
done_testing
