# Install, issue 14: `make install` places files as autoconf and the FHS have them.
# PREFIX=/usr -> settings in /etc/mailhook, spool in /var/spool/mailhook (not /usr/etc,
# /usr/var); another PREFIX keeps both under it; SYSCONFDIR/LOCALSTATEDIR override; DESTDIR
# stages the tree, and the staged binary finds its own settings and spool in the stage
# (compiled-in defaults, relative to where the tree was staged) and delivers from there; a
# changed PREFIX rebuilds the compiled-in paths; an existing settings file is never
# replaced; a step that fails makes `make install` fail (nothing is ignored); the unit
# gets this install's paths and passes `systemd-analyze verify`; uninstall keeps the
# site's data.  Builds in its own folder ($T/build, -O0) so the suite's build is untouched.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

B=$T/build
mk() { make -C "$ROOT" --no-print-directory -s BUILD="$B" CFLAGS="-O0" "$@"; }
clean_env() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL -u MAILHOOK_ROOT "$@"; }

# --- PREFIX=/usr, staged with DESTDIR
S=$T/stage
mk install PREFIX=/usr DESTDIR="$S" >"$T/make1.log" 2>&1; rc=$?
is "$rc" 0 "make install PREFIX=/usr DESTDIR=STAGE succeeds"
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/make1.log" | tail -20
perm() { stat -c %a "$1" 2>/dev/null; }
is "$(perm "$S/usr/bin/mailhook")" 755 "the binary in STAGE/usr/bin, mode 755"
is "$(perm "$S/etc/mailhook/mailhook.conf")" 644 "the settings in STAGE/etc/mailhook/mailhook.conf, mode 644 (no secret in it: docs/settings.md)"
is "$(perm "$S/usr/sbin/mailhook-drop")" 755 "the drop program in STAGE/usr/sbin (setgid only with its group: docs/sendmail.md)"
is "$(perm "$S/var/spool/mailhook")" 700 "the spool folder STAGE/var/spool/mailhook, mode 700"
[ ! -e "$S/usr/etc" ] && [ ! -e "$S/usr/var" ]; ok $? "nothing in /usr/etc nor /usr/var"
[ -f "$S/usr/share/mailhook/lua/mailhook/init.lua" ] && [ -f "$S/usr/share/mailhook/lua/mailhook/cmd/run.lua" ]
ok $? "the Lua modules in STAGE/usr/share/mailhook/lua"
[ -f "$S/usr/share/mailhook/scripts/test.lua" ]; ok $? "the admin scripts in STAGE/usr/share/mailhook/scripts"
[ -f "$S/usr/lib/mailhook/luac/mailhook/init.luac" ]; ok $? "the precompiled modules in STAGE/usr/lib/mailhook/luac"
[ -f "$S/usr/lib/libmailhook.a" ] && [ -f "$S/usr/include/mailhook.h" ]; ok $? "the embedding library and header"
# the MTA's names (issue 12): links to the binary, which argv[0] makes sendmail or mailq
for l in sbin/sendmail bin/mailq bin/newaliases lib/sendmail; do
  is "$(readlink -f "$S/usr/$l")" "$(readlink -f "$S/usr/bin/mailhook")" "STAGE/usr/$l is a link to the mailhook binary"
done
for m in man1/mailhook.1 man5/mailhook.conf.5 man3/mailhook-lua.3; do
  [ -s "$S/usr/share/man/$m" ]; ok $? "the manual page STAGE/usr/share/man/$m"
done
# and the pages of those names, with them: `man sendmail` after `make install` found nothing
for m in man8/sendmail.8 man1/mailq.1 man1/newaliases.1; do
  n=$(basename "$m"); n=${n%.*}
  [ -s "$S/usr/share/man/$m" ] && head -c 2000 "$S/usr/share/man/$m" | grep -q "^\.TH \"\?$n"
  ok $? "the manual page STAGE/usr/share/man/$m, installed with the $n link"
done
U=$S/usr/lib/systemd/system/mailhook.service
like "$(grep '^ExecStart=' "$U")" '^ExecStart=/usr/bin/mailhook run$' "the unit runs /usr/bin/mailhook"
is "$(grep '^ReadWritePaths=' "$U" | tr '\n' ' ')" "ReadWritePaths=/var/spool/mailhook ReadWritePaths=-/etc/mailhook " \
  "and may write the spool, /var/spool/mailhook, and the settings' folder /etc/mailhook, nothing else"
if command -v systemd-analyze >/dev/null; then
  sed "s|^ExecStart=/usr/bin/mailhook|ExecStart=$S/usr/bin/mailhook|" "$U" > "$T/mailhook.service"
  out=$(systemd-analyze verify --man=no "$T/mailhook.service" 2>&1); rc=$?
  is "$rc:$out" "0:" "systemd-analyze verify: the unit has no error nor warning"
else
  ok 0 "systemd-analyze verify # SKIP systemd-analyze missing (scripts/deps installs systemd)"
fi

# the staged binary: its compiled-in defaults (SYSCONFDIR=/etc, LOCALSTATEDIR=/var), found in the stage
out=$(clean_env "$S/usr/bin/mailhook" help)
like "$out" "settings file \(now $S/etc/mailhook/mailhook.conf\)" "the staged binary reads STAGE/etc/mailhook/mailhook.conf"
like "$out" "spool folder \(now $S/var/spool/mailhook\)" "and uses the spool STAGE/var/spool/mailhook"
is "$(clean_env "$S/usr/bin/mailhook" -e 'io.write(package.searchpath("mailhook.settings", package.path))')" \
  "$S/usr/share/mailhook/lua/mailhook/settings.lua" "its Lua modules come from the stage, not the source tree"
like "$(clean_env "$S/usr/bin/mailhook" settings)" "log = journal" "it loads the installed default settings (log = journal)"
start_smtpd SMTP --maildir "$T/mail"
clean_env "$S/usr/bin/mailhook" update enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" \
  tls=none tls_required=false log=stderr >/dev/null; rc=$?
is "$rc" 0 "mailhook update writes the staged settings"
is "$(perm "$S/etc/mailhook/mailhook.conf")" 644 "(still mode 644: the password went to mailhook.secrets)"
like "$(cat "$S/etc/mailhook/mailhook.conf")" "# mailhook.conf — the settings of mailhook" "keeping the shipped comments"
id=$(echo "from the stage" | clean_env "$S/usr/bin/mailhook" enqueue --to rcpt@example.net --subject staged); rc=$?
is "$rc" 0 "enqueue into the staged spool"
[ -f "$S/var/spool/mailhook/pickup/$id.eml" ]; ok $? "the message is in STAGE/var/spool/mailhook/pickup"
clean_env "$S/usr/bin/mailhook" flush >"$T/flush.out" 2>&1; rc=$?
is "$rc" 0 "mailhook flush from the stage"
wait_for 10 test -e "$T/mail/000001.eml"; ok $? "the message reached the server"
like "$(cat "$T/mail/000001.eml" 2>/dev/null)" "from the stage" "its body intact"

# --- an existing settings file is kept; a failing step fails the install
echo "# the site's own" >> "$S/etc/mailhook/mailhook.conf"
mk install PREFIX=/usr DESTDIR="$S" >/dev/null 2>&1; rc=$?
is "$rc" 0 "installing again over the stage"
like "$(cat "$S/etc/mailhook/mailhook.conf")" "# the site's own" "does not replace the site's settings"
mkdir -p "$T/bad/usr/include/mailhook.h"           # a folder where the header goes
mk install PREFIX=/usr DESTDIR="$T/bad" >"$T/make-bad.log" 2>&1; rc=$?
[ "$rc" != 0 ]; ok $? "make install fails when a file cannot be installed (exit $rc)"
like "$(cat "$T/make-bad.log")" "mailhook.h" "naming what failed"

# --- the MTA links: never over another mail system's files, none when asked for none
O=$T/other-mta
mkdir -p "$O/usr/sbin"; printf '#!/bin/sh\necho other MTA\n' > "$O/usr/sbin/sendmail"; chmod 755 "$O/usr/sbin/sendmail"
mk install PREFIX=/usr DESTDIR="$O" >"$T/make-other.log" 2>&1; rc=$?
is "$rc" 0 "make install over a stage holding another MTA's sbin/sendmail succeeds"
is "$(cat "$O/usr/sbin/sendmail")" "$(printf '#!/bin/sh\necho other MTA')" "and leaves that sendmail as it was"
[ ! -e "$O/usr/bin/mailq" ] && [ ! -L "$O/usr/bin/mailq" ] && [ ! -L "$O/usr/lib/sendmail" ]
ok $? "and makes no mailq nor lib/sendmail link beside another MTA"
[ ! -e "$O/usr/share/man/man8/sendmail.8" ] && [ ! -e "$O/usr/share/man/man1/mailq.1" ]
ok $? "nor their manual pages (the other mail system's are the ones that apply)"
like "$(cat "$T/make-other.log")" "another mail system's $O/usr/sbin/sendmail: no sendmail, mailq" "saying why"
mk install-sendmail PREFIX=/usr DESTDIR="$O" >/dev/null 2>&1; rc=$?
[ "$rc" != 0 ] && [ "$(cat "$O/usr/sbin/sendmail")" = "$(printf '#!/bin/sh\necho other MTA')" ]
ok $? "make install-sendmail refuses it too (exit $rc)"
mk install-sendmail PREFIX=/usr DESTDIR="$O" FORCE_SENDMAIL=1 >/dev/null 2>&1; rc=$?
is "$rc:$(readlink "$O/usr/sbin/sendmail")" "0:../bin/mailhook" "FORCE_SENDMAIL=1 replaces it, as asked"
[ -s "$O/usr/share/man/man8/sendmail.8" ] && [ -s "$O/usr/share/man/man1/mailq.1" ] && [ -s "$O/usr/share/man/man1/newaliases.1" ]
ok $? "make install-sendmail installs the pages with the links"
N=$T/no-links
mk install PREFIX=/usr DESTDIR="$N" SENDMAIL_LINKS=no >/dev/null 2>&1; rc=$?
[ "$rc" = 0 ] && [ ! -L "$N/usr/sbin/sendmail" ] && [ ! -L "$N/usr/bin/mailq" ] && [ ! -e "$N/usr/share/man/man8/sendmail.8" ]
ok $? "SENDMAIL_LINKS=no (the Debian package's mailhook) makes none, and installs none of their pages"

# --- another PREFIX: everything under it; SYSCONFDIR/LOCALSTATEDIR override; paths rebuilt
P=$T/opt
mk install PREFIX="$P" >/dev/null 2>&1; rc=$?
is "$rc" 0 "make install PREFIX=/some/opt (the same build folder)"
out=$(clean_env "$P/bin/mailhook" help)
like "$out" "now $P/etc/mailhook/mailhook.conf\)" "settings in PREFIX/etc/mailhook"
like "$out" "now $P/var/spool/mailhook\)" "spool in PREFIX/var/spool/mailhook"
[ -d "$P/var/spool/mailhook" ] && [ -f "$P/etc/mailhook/mailhook.conf" ]; ok $? "both made by the install"
P2=$T/opt2
mk install PREFIX="$P2" SYSCONFDIR="$T/conf2" LOCALSTATEDIR="$T/state2" >/dev/null 2>&1; rc=$?
is "$rc" 0 "make install with SYSCONFDIR and LOCALSTATEDIR"
out=$(clean_env "$P2/bin/mailhook" help)
like "$out" "now $T/conf2/mailhook/mailhook.conf\)" "the binary was rebuilt with the new SYSCONFDIR"
like "$out" "now $T/state2/spool/mailhook\)" "and the new LOCALSTATEDIR"
is "$(grep '^ReadWritePaths=' "$P2/lib/systemd/system/mailhook.service" | tr '\n' ' ')" \
  "ReadWritePaths=$T/state2/spool/mailhook ReadWritePaths=-$T/conf2/mailhook " "the unit follows LOCALSTATEDIR and SYSCONFDIR"

# --- uninstall: the program goes, the site's data stays
mk uninstall PREFIX=/usr DESTDIR="$S" >/dev/null 2>&1; rc=$?
is "$rc" 0 "make uninstall"
[ ! -e "$S/usr/bin/mailhook" ] && [ ! -e "$S/usr/share/mailhook" ] && [ ! -e "$S/usr/share/man/man1/mailhook.1" ] \
  && [ ! -e "$U" ]; ok $? "removes the binary, modules, manual pages and unit"
[ ! -L "$S/usr/sbin/sendmail" ] && [ ! -L "$S/usr/bin/mailq" ] && [ ! -L "$S/usr/lib/sendmail" ] \
  && [ ! -L "$S/usr/bin/newaliases" ]; ok $? "and its sendmail, mailq, newaliases links"
[ ! -e "$S/usr/share/man/man8/sendmail.8" ] && [ ! -e "$S/usr/share/man/man1/mailq.1" ] \
  && [ ! -e "$S/usr/share/man/man1/newaliases.1" ]; ok $? "and their manual pages"
[ -f "$S/etc/mailhook/mailhook.conf" ] && [ -d "$S/var/spool/mailhook/pickup" ]; ok $? "keeps the settings and the spool"
done_testing
