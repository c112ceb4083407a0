# `mailhook update password=-` on a terminal, stopped with Ctrl-Z half-way and taken back
# with `fg` in an interactive bash (job control): the rest of the password is not shown,
# what was typed before the stop is dropped (said, with the prompt again) and the password
# saved is the one typed after it.  Before, the process stopped with the echo off, bash set
# the terminal for itself, and `fg` gave the job no settings back: the rest of the password
# showed on the screen as it was typed, and the line saved began with what was typed before
# the stop.  (runtime/l_fsutil.c, quiet_on_stop.)  Checked through a pseudo-terminal, by
# what the terminal shows and by `stty`, never by a clock: each step waits, bounded, for
# the words that say the one before it happened.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
command -v bash >/dev/null || { echo "1..0 # SKIP no bash"; exit 0; }
write_conf "$T/tty.conf" enabled=true server=127.0.0.1 port=2525 from=pbx@example.org

cat > "$T/stop.py" <<'PY'
import os, pty, select, sys, time
conf, mh, key = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:   # an interactive bash: it runs the command as a job, so Ctrl-Z stops it
    os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"],
              {"TERM": "dumb", "PATH": "/usr/bin:/bin", "PS1": "PROMPT> ", "HOME": "/"})
out = b""
def until(pred, t=20):
    """reads the terminal until pred(out) holds (True) or t seconds pass (False)"""
    global out
    end = time.time() + t
    while not pred(out):
        if time.time() > end: return False
        if select.select([fd], [], [], 0.2)[0]:
            try: d = os.read(fd, 4096)
            except OSError: return pred(out)
            if not d: return pred(out)
            out += d
    return True
def step(name, ok):
    print("STEP %s %s" % (name, "ok" if ok else "missed"))
step("shell", until(lambda o: o.count(b"PROMPT> ") >= 1))
os.write(fd, ('"%s" -c "%s" update %s=- >/dev/null\n' % (mh, conf, key)).encode())
step("prompt", until(lambda o: b"Enter ends it" in o))
mark = len(out)
os.write(fd, b"Before-Stop-")           # half a password, no Enter yet
os.write(fd, b"\x1a")                   # Ctrl-Z
step("stopped", until(lambda o: b"Stopped" in o[mark:]))
step("shell again", until(lambda o: o.count(b"PROMPT> ") >= 2))
os.write(fd, b"stty -a | grep -ow -- '-\\?echo'\n")   # the terminal while the job is stopped
until(lambda o: o.count(b"PROMPT> ") >= 3)
os.write(fd, b"fg\n")
mark = len(out)
step("again", until(lambda o: b"type it again" in o[mark:], 10))
os.write(fd, b"After-Stop-99\n")
step("done", until(lambda o: o.count(b"PROMPT> ") >= 4))
os.write(fd, b"stty -a | grep -ow -- '-\\?echo'; exit\n")
until(lambda o: False, 5)               # to the end (the shell exits: EOF)
for _ in range(100):
    if os.waitpid(pid, os.WNOHANG)[0]: break
    time.sleep(0.1)
else:
    os.kill(pid, 9); os.waitpid(pid, 0)
print("OUTPUT-BEGIN")
sys.stdout.write(out.decode("utf-8", "replace"))
PY
out=$(timeout 120 "$PY" "$T/stop.py" "$T/tty.conf" "$MAILHOOK" password 2>&1)
screen=$(printf '%s\n' "$out" | sed -n '/^OUTPUT-BEGIN/,$p' | tr -d '\r')
for s in shell prompt stopped "shell again"; do
  like "$out" "STEP $s ok" "step '$s' seen on the terminal"
done
# the first stty ran while the job was stopped, the second after it ended
echoes=$(printf '%s\n' "$screen" | grep -xE -- '-?echo' | tr '\n' ' ')
is "$echoes" "echo echo " "the terminal echoes while the job is stopped, and after it ended"
like "$out" "STEP again ok" "after fg: the prompt again, saying what was typed before the stop is dropped"
unlike "$screen" "After-Stop-99" "after fg, the rest of the password is not shown as it is typed"
unlike "$screen" "Before-Stop" "nor what was typed before the stop"
grep -qx 'password = After-Stop-99' "$T/tty.secrets"; ok $? "the password saved is the one typed after the stop"
[ -n "${MH_DEBUG:-}" ] && diag "$screen"
done_testing
