# `mailhook hook alarm ...` from process start to durable enqueue (the rule
# builds the mail and mh.enqueue fsyncs it into the spool), next to
# `lua5.4 -e ''`, one msmtp invocation sending to the same sink (Postfix's
# smtp-sink) and, as root, one Postfix `sendmail` into a private Postfix instance
# (its postdrop writes and fsyncs the message into the instance's maildrop: the
# same promise as the hook's; bench/lib.sh pf_start), run alternately in the same
# run, pinned to one CPU, median of 200.
# Goals: hook <= 3 x lua5.4 -e '' plus one durable write; hook <= 1/5 of msmtp;
# hook <= 1/3 of Postfix's sendmail.
. "$(dirname "$0")/lib.sh"
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
SINK=${ROOT:-.}/.deps/postfix/usr/sbin/smtp-sink
PORT=$(free_port)
USER_OPT=""; [ "$(id -u)" = 0 ] && USER_OPT="-u nobody"   # smtp-sink refuses to run as root
# shellcheck disable=SC2086
"$SINK" $USER_OPT -c 127.0.0.1:"$PORT" 256 >/dev/null 2>&1 &
SINK_PID=$!
trap 'pf_stop; kill $SINK_PID 2>/dev/null; rm -rf "$T"' EXIT
hook_setup "$T" $PORT
# Postfix's sendmail, into a private instance that discards what it queues (its smtpd is
# not used; pf_start waits for it as the sign that the instance is up).
PF_SENDMAIL=""
if pf_ready sendmail postdrop; then
  chmod 711 "$T"   # Postfix's daemons (nobody) reach their queue below it
  pf_start "$T/pf" 1 "$(free_port)" <<EOF && PF_SENDMAIL=$PF/sendmail
default_transport = discard
EOF
fi
printf 'From: pbx@example.com\nTo: ops@example.com\nSubject: [major] ups1: on battery\n\nAlarm from ups1\n' > "$T/msg"
for i in $(seq 50); do /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1]))).close()' "$PORT" 2>/dev/null && break; sleep 0.05; done
# one check that each command does what is measured
MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool" "$MAILHOOK" hook alarm severity=major source=ups1 message=on-battery \
  || echo "   (hook failed: the figures below are not meaningful)"
ls "$T/spool/pickup" | grep -q '\.eml$' || echo "   (nothing was queued)"
msmtp --host=127.0.0.1 --port="$PORT" --auth=off --tls=off --from=pbx@example.com ops@example.com < "$T/msg" \
  || echo "   (msmtp failed)"
MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool" /usr/bin/python3 - "$MAILHOOK" "$PORT" "$T" "$PF_SENDMAIL" <<'PY'
import os, subprocess, sys, time, statistics
mh, port, tdir, pf_sendmail = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
os.sched_setaffinity(0, {0})
N = 200
cmds = {
  "hook":  ([mh, "hook", "alarm", "severity=major", "source=ups1", "message=on battery"], None),
  "lua":   (["lua5.4", "-e", ""], None),
  "msmtp": (["msmtp", "--host=127.0.0.1", "--port=" + port, "--auth=off", "--tls=off",
             "--from=pbx@example.com", "ops@example.com"], tdir + "/msg"),
}
if pf_sendmail:
    cmds["postfix"] = ([pf_sendmail, "-C", tdir + "/pf/etc", "-f", "pbx@example.com", "ops@example.com"],
                       tdir + "/msg")
    r = subprocess.run(cmds["postfix"][0], stdin=open(tdir + "/msg", "rb"), capture_output=True)
    if r.returncode != 0:
        print("postfix  (Postfix's sendmail failed, not measured: %s)" % r.stderr.decode(errors="replace").strip()[-200:])
        del cmds["postfix"]
ts = {k: [] for k in cmds}
failed = {k: 0 for k in cmds}
def durable_write(i):
    p = os.path.join(tdir, "w%d" % i)
    t = time.perf_counter()
    fd = os.open(p + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"x" * 600); os.fsync(fd); os.close(fd)
    os.rename(p + ".tmp", p)
    d = os.open(tdir, os.O_RDONLY); os.fsync(d); os.close(d)
    return (time.perf_counter() - t) * 1000
wr = []
for i in range(N):
    for k, (cmd, stdin) in cmds.items():
        f = open(stdin, "rb") if stdin else subprocess.DEVNULL
        t = time.perf_counter()
        rc = subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        ts[k].append((time.perf_counter() - t) * 1000)
        failed[k] += rc != 0
        if stdin: f.close()
    wr.append(durable_write(i))
m = {k: statistics.median(v) for k, v in ts.items()}
w = statistics.median(wr)
print("hook     mailhook hook alarm (start -> durable enqueue)  %.3f ms" % m["hook"])
print("lua      lua5.4 -e ''                                   %.3f ms" % m["lua"])
print("write    one durable write (tmp, fsync, rename, fsync dir) %.3f ms" % w)
print("msmtp    one msmtp invocation to smtp-sink              %.3f ms" % m["msmtp"])
print("ratio    hook / (3 x lua + write) = %.2f   (goal <= 1)" % (m["hook"] / (3 * m["lua"] + w)))
print("ratio    hook / msmtp = %.2f   (goal <= 0.20)" % (m["hook"] / m["msmtp"]))
if "postfix" in m:
    print("postfix  one Postfix sendmail (postdrop into a private instance) %.3f ms" % m["postfix"])
    print("ratio    hook / Postfix sendmail = %.2f   (goal <= 0.33)" % (m["hook"] / m["postfix"]))
queued = len([n for n in os.listdir(tdir + "/spool/pickup") if n.endswith(".eml")])
print("check    %d messages queued by %d hook runs" % (queued, N + 1))
for k, n in failed.items():
    if n: print("check    %s failed %d of %d runs: its figure is not meaningful" % (k, n, N))
PY
[ -n "$PF_SENDMAIL" ] ||
  echo "postfix  (no private Postfix here: ${PF_WHY:-it did not start}; hook / Postfix sendmail (goal <= 0.33) not measured)"
