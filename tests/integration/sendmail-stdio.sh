# Closed standard descriptors (issue 12.4): mailutils' mail(1) runs sendmail with stdout
# and stderr closed; libuv then got 1 or 2 for its first descriptor and aborted (SIGABRT)
# after the message was already queued, so mail(1) saw a failure, wrote dead.letter, and a
# user who sent again got it twice.  Every command now opens 0-2 on /dev/null first: exit
# 0, exactly one message, no dead.letter; with stdin closed too, stdin is /dev/null: an
# empty message, queued with the headers intake adds (as Postfix's sendmail, which opens
# /dev/null the same way), no abort; and hook works as usual.
. "$ROOT/tests/lib/tap.sh"

rules_env
mkdir -p "$T/home"
cat > "$T/rules/10-test.lua" <<'LUA'
on("alarm", function(ev) assert(mh.enqueue { to = "ops@example.com", subject = "alarm", text = "x" }) end)
LUA
spool_make
n() { find "$T/spool/pickup" -name '*.eml' | wc -l; }
MSG='To: ops@example.net\nSubject: closed stdio\n\nbody\n'

# mailutils' way: the message on a pipe, stdout and stderr closed; a failure (a non-zero
# exit) writes dead.letter in $HOME, as mail(1) does
cat > "$T/mailutils-like" <<SH
#!/bin/sh
# runs sendmail as mailutils' mail(1) does, and keeps the message when it fails
printf '$MSG' > "\$HOME/msg"
"\$@" < "\$HOME/msg" >&- 2>&-
rc=\$?
[ \$rc = 0 ] || cp "\$HOME/msg" "\$HOME/dead.letter"
exit \$rc
SH
chmod +x "$T/mailutils-like"
HOME=$T/home "$T/mailutils-like" "$MAILHOOK" sendmail -oi -t; rc=$?
is "$rc" 0 "sendmail with stdout and stderr closed: exit 0 (no SIGABRT: 134)"
is "$(n)" 1 "exactly one message queued"
[ ! -e "$T/home/dead.letter" ]; ok $? "no dead.letter (the caller saw success)"

# all three closed, in a subshell (cron-like daemons, a broken init script)
( exec 0<&- 1>&- 2>&-; "$MAILHOOK" sendmail ops@example.net; echo $? > "$T/rc3" )
is "$(cat "$T/rc3")" 0 "sendmail with 0, 1 and 2 closed: stdin is /dev/null, an empty message: queued (as Postfix), no abort"
is "$(n)" 2 "one message more: the headers intake adds"
is "$(find "$T/spool/tmp" -type f | wc -l)" 0 "nothing left in tmp/"

( exec 1>&- 2>&-; printf "$MSG" | "$MAILHOOK" sendmail -t; echo $? > "$T/rc4" )
is "$(cat "$T/rc4")" 0 "stdout and stderr closed in a subshell, the message on a pipe: exit 0"
is "$(n)" 3 "one more message"

# a spool file must never become fd 1 or 2: what the process prints would land in it
( exec 1>&- 2>&-; printf "$MSG" | "$MAILHOOK" sendmail -v -t; echo $? > "$T/rc5" )
is "$(cat "$T/rc5")" 0 "-v (prints on stderr) with stderr closed: exit 0"
bad=$(grep -l "queued as" "$T"/spool/pickup/*.eml 2>/dev/null)
is "$bad" "" "no spool file received the -v line"

# hook: the rules' mail, with every standard descriptor closed
( exec 0<&- 1>&- 2>&-; "$MAILHOOK" hook alarm; echo $? > "$T/rc6" )
is "$(cat "$T/rc6")" 0 "hook with 0, 1 and 2 closed: exit 0"
is "$(n)" 5 "its message queued"

# a settings error with stderr closed still exits with the code (no abort, no hang)
( exec 2>&-; printf "$MSG" | MAILHOOK_CONF=$T/none.conf "$MAILHOOK" sendmail -t; echo $? > "$T/rc7" )
is "$(cat "$T/rc7")" 78 "a missing settings file with stderr closed: EX_CONFIG"
done_testing
