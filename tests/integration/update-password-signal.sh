# `update password=-` on a terminal turns the echo off while it reads: Ctrl-C,
# SIGTERM, SIGHUP or SIGQUIT at the prompt must leave the terminal echoing again
# (the process died with the echo off: under sh, or a script, every command typed
# afterwards was invisible until `stty sane`).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
cat > "$T/sig.py" <<'PY'
import os, select, signal, subprocess, sys, termios, time
mh, conf, key, sig = sys.argv[1:5]
master, slave = os.openpty()
p = subprocess.Popen([mh, "-c", conf, "-s", os.path.dirname(conf) + "/spool", "update", key + "=-"],
                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
out, end = b"", time.time() + 20          # bounded: no prompt fails the checks
while time.time() < end and b"Enter ends it" not in out:
    if select.select([master], [], [], 0.2)[0]:
        try: out += os.read(master, 4096)
        except OSError: break
off = not termios.tcgetattr(slave)[3] & termios.ECHO
p.send_signal(getattr(signal, "SIG" + sig))
try: rc = p.wait(timeout=20)
except subprocess.TimeoutExpired: p.kill(); rc = p.wait()
on = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
print("prompt" if b"Enter ends it" in out else "no prompt", "off" if off else "on",
      "rc=%d" % rc, "echo" if on else "-echo")
PY
write_conf "$T/mailhook.conf" server=127.0.0.1 port=2525 from=pbx@example.org
for sig in INT TERM HUP QUIT; do
  out=$("$PY" "$T/sig.py" "$MAILHOOK" "$T/mailhook.conf" password "$sig" 2>&1)
  n=$(kill -l "$sig")
  like "$out" "^prompt off " "SIG$sig: the prompt is shown, the echo off while it reads"
  like "$out" " rc=-$n " "SIG$sig: update dies of it, as before"
  like "$out" " echo$" "SIG$sig at the password prompt: the terminal echoes again"
done
out=$("$PY" "$T/sig.py" "$MAILHOOK" "$T/mailhook.conf" admin_password INT 2>&1)
like "$out" "^prompt off .* echo$" "admin_password=-: Ctrl-C at its prompt leaves the echo on too"
ls "$T"/mailhook.secrets >/dev/null 2>&1; ok $(( ! $? )) "nothing saved by an interrupted update"
done_testing
