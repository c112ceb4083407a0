# Debian packages, issue 14: `make deb` (debian/, debhelper) builds mailhook_VERSION_ARCH.deb
# and mailhook-mta_VERSION_all.deb; their metadata and contents; the package's binary unpacked
# with `dpkg -x` delivers to aiosmtpd from the unpacked tree; both packages installed with
# `dpkg -i` into a throwaway root — an overlay of this machine's / in a private mount
# namespace, chrooted into, so the machine's own system (its MTA, users, dpkg database)
# never changes: the postinst's user, modes and overrides, the conffile, root's sendmail
# queueing as the service's user, the service run as the unit runs it reporting READY=1 and
# delivering, mailq, then purge.
# In `make test` the packages are built quickly (DEB_BUILD_OPTIONS=nocheck noopt: the unit
# tests run in the suite anyway) and without lintian; `make test-long` (MH_DEB_FULL=1) builds
# them as Debian would and requires lintian to find no error nor warning.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/service.sh"

for tool in dpkg-buildpackage dh scdoc; do
  command -v "$tool" >/dev/null || { echo "Bail out! $tool missing: run scripts/deps"; exit 1; }
done
V=$(sed -n 's/^#define MH_VERSION "\(.*\)"$/\1/p' "$ROOT/runtime/version.h")
A=$(dpkg --print-architecture)
D=$T/b/deb
if [ "${MH_DEB_FULL:-0}" = 1 ]; then
  opts="parallel=2" lint=1
else
  opts="nocheck noopt parallel=2" lint=0
fi
t0=$(date +%s)
DEB_BUILD_OPTIONS=$opts make -C "$ROOT" --no-print-directory -s deb BUILD="$T/b" LINTIAN=$lint >"$T/deb.out" 2>&1; rc=$?
is "$rc" 0 "make deb succeeds ($(( $(date +%s) - t0 )) s, DEB_BUILD_OPTIONS=$opts, lintian $([ $lint = 1 ] && echo on || echo off))"
[ "$rc" = 0 ] || { sed 's/^/#   /' "$T/deb.out" | tail -30; }
DEB=$D/mailhook_${V}_$A.deb MTA=$D/mailhook-mta_${V}_all.deb
[ -f "$DEB" ]; ok $? "mailhook_${V}_$A.deb"
[ -f "$MTA" ]; ok $? "mailhook-mta_${V}_all.deb"
if [ "$lint" = 1 ]; then
  is "$(grep -E '^[EW]: ' "$D/lintian.log" 2>/dev/null)" "" "lintian: no error nor warning"
else
  ok 0 "lintian: no error nor warning # SKIP make test-long runs lintian (about 30 s more)"
fi

# --- metadata and contents
f() { dpkg-deb -f "$1" "$2"; }
is "$(f "$DEB" Package):$(f "$DEB" Version):$(f "$DEB" Architecture)" "mailhook:$V:$A" "mailhook: name, version, architecture"
like "$(f "$DEB" Depends)" "adduser" "depends on adduser (the postinst's)"
like "$(f "$DEB" Depends)" "libssl3" "links Debian's libssl3 (security updates reach it)"
like "$(f "$DEB" Depends)" "liblua5.4-0.*libuv1|libuv1.*liblua5.4-0" "and liblua5.4, libuv1"
is "$(f "$MTA" Provides):$(f "$MTA" Conflicts):$(f "$MTA" Replaces)" \
  "mail-transport-agent:mail-transport-agent:mail-transport-agent" "mailhook-mta provides, conflicts with and replaces mail-transport-agent"
like "$(f "$MTA" Depends)" "mailhook \(>= $V\)" "mailhook-mta depends on mailhook"
C=$(dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|')
for p in /usr/bin/mailhook /etc/mailhook/mailhook.conf /usr/share/mailhook/lua/mailhook/init.lua \
         /usr/share/mailhook/scripts/test.lua /usr/lib/mailhook/luac/mailhook/init.luac \
         /usr/share/man/man1/mailhook.1.gz /usr/share/man/man5/mailhook.conf.5.gz \
         /usr/share/man/man3/mailhook-lua.3.gz /usr/share/doc/mailhook/copyright; do
  like "$C" "^$p$" "mailhook ships $p"
done
# the documents messages cite (docs/NAME.md in lua/ and runtime/ strings) are in the package,
# under the same name (README.md's links too)
for d in $(grep -rhoE '"[^"]*docs/[a-z-]+\.md' "$ROOT/lua" "$ROOT/runtime" | grep -oE 'docs/[a-z-]+\.md' | sort -u) service; do
  d=${d#docs/}; d=${d%.md}
  like "$C" "^/usr/share/doc/mailhook/docs/$d\.md(\.gz)?$" "mailhook ships docs/$d.md (cited by its messages or README)"
done
like "$C" "^(/usr)?/lib/systemd/system/mailhook.service$" "mailhook ships the unit"
like "$C" "^/usr/lib/$(cc -print-multiarch)/lua/5.4/mailhook/core.so$" "and the Lua module where lua5.4 looks (docs/lua-library.md)"
like "$(dpkg-deb -c "$DEB")" "\./usr/share/lua/5.4/mailhook -> \.\./\.\./mailhook/lua/mailhook" "with its Lua modules (a link to the binary's)"
unlike "$C" "^/usr/(etc|var)/|libmailhook\.a|/include/" "nothing in /usr/etc or /usr/var, no embedding library"
unlike "$C" "^/var/spool" "the spool is made by the postinst, not shipped"
is "$(dpkg-deb -I "$DEB" conffiles)" "/etc/mailhook/mailhook.conf" "the settings file is a conffile"
CM=$(dpkg-deb -c "$MTA" | awk '{ print $6 }' | sed 's|^\./|/|')
for p in /usr/sbin/sendmail /usr/bin/mailq /usr/lib/sendmail /usr/bin/newaliases /usr/share/man/man8/sendmail.8.gz \
         /usr/share/man/man1/mailq.1.gz /usr/share/man/man1/newaliases.1.gz; do
  like "$CM" "^$p$" "mailhook-mta ships $p"
done

# --- dpkg -x: the unpacked binary works from the unpacked tree
X=$T/x
dpkg -x "$DEB" "$X"; ok $? "dpkg -x"
like "$(readelf -d "$X/usr/lib/mailhook/mailhook-tls.so" 2>/dev/null | grep NEEDED)" "libssl\.so\.3" \
  "its TLS module needs libssl.so.3 (not a static copy)"
xm() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$X/usr/bin/mailhook" "$@"; }
like "$(xm help)" "now $X/etc/mailhook/mailhook.conf\)" "its settings default to the unpacked /etc/mailhook/mailhook.conf"
out=$(xm settings)
like "$out" "^# $X/etc/mailhook/mailhook.conf$" "mailhook settings reads the unpacked file"
like "$out" "^log = journal$" "the package's settings: log = journal"
if command -v systemd-analyze >/dev/null; then
  U=$(ls "$X"/lib/systemd/system/mailhook.service "$X"/usr/lib/systemd/system/mailhook.service 2>/dev/null | head -1)
  sed "s|^ExecStart=/usr/bin/mailhook|ExecStart=$X/usr/bin/mailhook|" "$U" > "$T/mailhook.service"
  out=$(systemd-analyze verify --man=no "$T/mailhook.service" 2>&1); rc=$?
  is "$rc:$out" "0:" "systemd-analyze verify: the packaged unit has no error nor warning"
  score=$(systemd-analyze security --offline=yes "$T/mailhook.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  diag "systemd-analyze security: exposure $score"
  awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 <= 2.0) }'; ok $? "systemd-analyze security rates the unit 2.0 or better ($score)"
else
  ok 0 "systemd-analyze verify # SKIP no systemd-analyze"
  ok 0 "systemd-analyze security # SKIP no systemd-analyze"
fi
start_smtpd SMTP --maildir "$T/mail"
mkdir -p "$X/var/spool/mailhook"             # what the postinst makes (dpkg -x runs no script)
xm update enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" tls=none tls_required=false log=stderr >/dev/null
ok $? "mailhook update on the unpacked settings"
id=$(echo "from dpkg -x" | xm enqueue --to rcpt@example.net --subject unpacked); rc=$?
is "$rc" 0 "enqueue into the unpacked spool"
xm flush >/dev/null 2>&1; ok $? "flush from the unpacked tree"
wait_for 10 test -e "$T/mail/000001.eml"; ok $? "the message reached the server"

# --- dpkg -i into a throwaway root: an overlay of / in a private mount namespace
if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
  ok 0 "dpkg -i into a throwaway root # SKIP needs root and unshare --mount"
  done_testing; exit
fi
host_user=$(getent passwd mailhook)
withmta=1
if dpkg-query -W -f '${Status} ${Provides}\n' 2>/dev/null | grep -q "installed.*mail-transport-agent"; then
  withmta=0   # this machine has an MTA: mailhook-mta would have to replace it, even in the overlay
fi
mkdir -p "$T/ovl/u" "$T/ovl/w" "$T/ovl/m" "$T/pkgs"
cp "$DEB" "$MTA" "$T/pkgs/"
R=$T/ovl/m
cat > "$T/inner.sh" <<'EOF'
# runs in a private mount namespace; prints "CHECK 0|1 description" lines
set -u
check() { echo "CHECK $([ "$1" = 0 ] && echo 0 || echo 1) $2 [$(( $(date +%s) - T0 )) s]"; }
T0=$(date +%s)
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/ovl/u,workdir=$T/ovl/w" "$R" || { echo "CHECK 1 overlay"; exit 3; }
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
inr() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
pkgs="$T/pkgs/$(basename "$DEB")"
[ "$WITHMTA" = 1 ] && pkgs="$pkgs $T/pkgs/$(basename "$MTA")"
# no fsync per file, triggers (man-db's index) left pending: the root is thrown away
inr dpkg --force-unsafe-io --no-triggers -i $pkgs >"$T/dpkg-i.log" 2>&1; check $? "dpkg -i installs the package(s)"
inr dpkg-query -W -f '${Status}' mailhook | grep -qE "install ok (installed|triggers-pending)"; check $? "mailhook is installed"
pw=$(inr getent passwd mailhook)
echo "$pw" | awk -F: '$3 < 1000 && $7 ~ /nologin$/ { ok = 1 } END { exit !ok }'; check $? "the postinst made the system user mailhook (no login): $pw"
inr getent group mailhook >/dev/null; check $? "and its group"
st() { inr stat -c "%U:%G %a" "$1"; }
[ "$(st /var/spool/mailhook)" = "mailhook:mailhook 710" ]; check $? "/var/spool/mailhook is mailhook's, 710 ($(st /var/spool/mailhook))"
[ "$(st /var/spool/mailhook/maildrop)" = "mailhook:mailhook 1730" ]; check $? "its maildrop/ 1730 ($(st /var/spool/mailhook/maildrop))"
[ "$(st /usr/sbin/mailhook-drop)" = "root:mailhook 2755" ]; check $? "/usr/sbin/mailhook-drop setgid mailhook ($(st /usr/sbin/mailhook-drop))"
[ "$(st /var/spool/mailhook/pickup)" = "mailhook:mailhook 700" ]; check $? "and its pickup/ folder"
[ "$(st /etc/mailhook)" = "mailhook:mailhook 755" ]; check $? "/etc/mailhook is mailhook's, 755 ($(st /etc/mailhook))"
[ "$(st /etc/mailhook/mailhook.conf)" = "mailhook:mailhook 644" ]; check $? "the settings are mailhook's, 644: no secret in them ($(st /etc/mailhook/mailhook.conf))"
inr dpkg-statoverride --list | grep -qE "mailhook mailhook 0?644 /etc/mailhook/mailhook.conf"; check $? "kept by dpkg-statoverride"
inr dpkg-query -W -f '${Conffiles}' mailhook | grep -q "/etc/mailhook/mailhook.conf"; check $? "dpkg knows the conffile"
inr test -L /etc/systemd/system/multi-user.target.wants/mailhook.service; check $? "the unit is enabled (deb-systemd-helper)"
inr mailhook update enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" tls=none tls_required=false >/dev/null 2>"$T/upd.err"
check $? "root's mailhook update works (as the spool's owner) $(cat "$T/upd.err")"
[ "$(st /etc/mailhook/mailhook.conf)" = "mailhook:mailhook 644" ]; check $? "and leaves the settings mailhook's, 644"
if [ "$WITHMTA" = 1 ]; then
  printf 'To: ops@example.net\nSubject: root cron\n\nfrom the installed sendmail\n' | inr /usr/sbin/sendmail -t
  check $? "root's /usr/sbin/sendmail -t queues"
  printf 'To: ops@example.net\nSubject: nobody\n\nfrom a user\n' |
    inr setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/sbin/sendmail -t
  check $? "nobody's /usr/sbin/sendmail -t hands it to maildrop/ (mailhook-drop)"
  f=$(inr sh -c 'ls /var/spool/mailhook/pickup/*.eml' | head -1)
  [ "$(st "$f")" = "mailhook:mailhook 600" ]; check $? "the spool file is mailhook's ($(st "$f"))"
  inr mailq | grep -q "ops@example.net"; check $? "mailq lists it"
  out=$(inr newaliases 2>&1); check $? "newaliases (what package scripts run) exits 0 $out"
else
  echo "body" | inr mailhook enqueue --to ops@example.net --subject "root cron" >/dev/null; check $? "root's enqueue queues"
fi
# the service as the unit runs it: user mailhook, NOTIFY_SOCKET
# started directly (not through the function inr), so that $! is the listener itself
chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/python3 "$ROOT/tests/peers/unixgram.py" --mode notify \
  --socket /run/notify.sock --out /run/notify.jsonl >"$T/notifyd.log" 2>&1 &
lp=$!
for i in $(seq 200); do grep -q Bound "$T/notifyd.log" && break; sleep 0.05; done
chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin NOTIFY_SOCKET=/run/notify.sock \
  setpriv --reuid=mailhook --regid=mailhook --init-groups /usr/bin/mailhook run >"$T/run.out" 2>"$T/run.err" &
sp=$!
for i in $(seq 300); do grep -q '"READY": "1"' "$R/run/notify.jsonl" 2>/dev/null && break; sleep 0.05; done
grep -q '"READY": "1"' "$R/run/notify.jsonl" 2>/dev/null; check $? "the service, run as the unit runs it, says READY=1"
for i in $(seq 300); do [ -e "$T/mail/000002.eml" ] && break; sleep 0.05; done
[ -e "$T/mail/000002.eml" ]; check $? "and delivers what root queued"
if [ "$WITHMTA" = 1 ]; then
  for i in $(seq 300); do [ -e "$T/mail/000003.eml" ] && break; sleep 0.05; done
  cat "$T/mail/000002.eml" "$T/mail/000003.eml" 2>/dev/null | grep -q "from userid 65534"
  check $? "and what nobody handed over (adopted from maildrop/, its uid in the Received line)"
fi
uid=$(inr id -u mailhook)
pid=$(pgrep -u "$uid" -f "/usr/bin/mailhook run" | head -1)
[ -n "$pid" ] && [ "$(awk '/^Uid:/ { print $2 }' /proc/$pid/status)" = "$uid" ]; check $? "as the user mailhook"
kill -TERM $sp; wait $sp; check $? "SIGTERM: exit 0"
kill $lp; wait $lp 2>/dev/null
# what purge must remove (the password) and keep (the site's own rules)
echo "s3cret-pw" | inr mailhook update password=- >/dev/null 2>"$T/upd2.err"
inr test -s /etc/mailhook/mailhook.secrets; check $? "mailhook update password=- wrote mailhook.secrets $(cat "$T/upd2.err")"
inr mkdir -p /etc/mailhook/rules && echo '-- site rule' | inr tee /etc/mailhook/rules/site.lua >/dev/null
inr dpkg --force-unsafe-io --no-triggers --purge mailhook-mta mailhook >"$T/purge.log" 2>&1; check $? "dpkg --purge"
inr test ! -e /var/spool/mailhook; check $? "purge removed the spool (no message waited in it)"
! inr dpkg-statoverride --list | grep -q /etc/mailhook; check $? "and the ownership overrides"
inr test ! -e /etc/mailhook/mailhook.conf; check $? "and the conffile"
inr test ! -e /etc/mailhook/mailhook.secrets; check $? "and mailhook.secrets (a password must not outlive the package)"
inr test -s /etc/mailhook/rules/site.lua; check $? "but not the site's own rules"
grep -q "purge keeps /etc/mailhook: .*rules" "$T/purge.log"; check $? "and it says what it kept"
# the postrm with mail still waiting: the spool is kept (mail is never lost), and said
dpkg-deb -e "$DEB" "$T/ctl"
inr mkdir -p /var/spool/mailhook/pickup /var/spool/mailhook/maildrop
printf 'x' | inr tee /var/spool/mailhook/pickup/000661f945f434b7.eml >/dev/null
printf 'x' | inr tee /var/spool/mailhook/maildrop/000661f945f434b8.92d7632c >/dev/null
cp "$T/ctl/postrm" "$R/tmp/postrm"
inr sh /tmp/postrm purge 2>"$T/postrm.err"; check $? "postrm purge with mail waiting: exit 0"
inr test -e /var/spool/mailhook/pickup/000661f945f434b7.eml; check $? "it keeps the spool and its undelivered mail"
grep -q "purge keeps /var/spool/mailhook: 2 undelivered" "$T/postrm.err"; check $? "and says so: $(cat "$T/postrm.err")"
EOF
ROOT=$ROOT T=$T R=$R DEB=$DEB MTA=$MTA SMTP=$SMTP WITHMTA=$withmta \
  timeout 240 unshare --mount --propagation private bash "$T/inner.sh" >"$T/inner.out" 2>"$T/inner.err"
rc=$?
[ "$withmta" = 1 ] || diag "this machine has an MTA: only mailhook was installed in the throwaway root"
while read -r word st desc; do
  [ "$word" = CHECK ] && ok "$st" "throwaway root: $desc"
done < "$T/inner.out"
is "$rc" 0 "the throwaway-root run ended cleanly"
[ "$rc" = 0 ] || { sed 's/^/#   /' "$T/inner.err" | tail -20; sed 's/^/#   /' "$T/dpkg-i.log" | tail -20; }
# the machine itself did not change
is "$(getent passwd mailhook)" "$host_user" "this machine's users are as they were (the install stayed in the overlay)"
[ ! -e /var/spool/mailhook ] && ! dpkg-query -W mailhook >/dev/null 2>&1; ok $? "it has no mailhook spool nor package"
done_testing
