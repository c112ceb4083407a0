# tests/lib/mailer.sh — a staged install with the MTA names and unprivileged submission set
# up, for the sendmail and callers tests (sourced after tap.sh and peers.sh; needs root).
#
#   stage_install          `make install-sendmail` into a stage in /var/tmp (DESTDIR) with a test group
#                          for mailhook-drop (created here, removed at exit); sets STAGE,
#                          P (= $STAGE/usr/local: bin/ sbin/ etc/ var/), SPOOL, CONF, DROPGROUP.
#                          The suite's own build is only read (PREFIX unchanged: nothing
#                          rebuilds), and two tests never install at once (a lock in BUILD).
#   as USER CMD...         CMD as USER (its own groups), with no mailhook variable and no
#                          LD_LIBRARY_PATH (run-one points it into the checkout)
#   new_user NAME          a throw-away login user (useradd), removed at exit: its name in NEW_USER
#   callers_env            the callers' tests' setup (needs root: skips the test otherwise):
#                          stage_install, SM the sendmail link, a recording aiosmtpd on $S
#                          (its mailbox $T/mail), the account pbx@example.com and
#                          admin_address admin@example.org, HOST, n=0
#   check                  after a caller ran: root's `$SM -q`, then message n+1 of the recording
#                          server's $T/mail read: M its headers, E its envelope, $T/got its body
#   body_is FILE DESC      the body received ($T/got) is FILE byte for byte
#   nfield NAME            how many NAME fields M has
#   unprivileged_install   the set-up of the unprivileged-submission tests: skipped (one
#                          counted skip) unless root, else stage_install or a bail-out;
#                          MH and SM the staged mailhook and sendmail
#   root_mh ARGS...        the staged mailhook as root, with no MAILHOOK_CONF/SPOOL of the suite
: "${T:?source tests/lib/tap.sh first}"

stage_install() {
  DROPGROUP=mhd$$
  groupadd -r "$DROPGROUP" || return 1
  on_exit "groupdel $DROPGROUP"
  # the stage must honour setgid: /tmp may be a nosuid tmpfs (Debian 13 mounts it so, and
  # there mailhook-drop ran without its group: "maildrop: Permission denied"); /var/tmp is
  # on the root file system
  STAGE=$(mktemp -d /var/tmp/mailhook-stage.XXXXXX 2>/dev/null) || STAGE=$T/stage
  case $STAGE in /var/tmp/*) on_exit "rm -rf '$STAGE'"; chmod 755 "$STAGE" ;; esac
  chmod 755 "$T"
  stage_install_build "$STAGE" install-sendmail DROP_GROUP="$DROPGROUP" DROP_PERMS=yes \
    >"$T/install.log" 2>&1 || { sed 's/^/# /' "$T/install.log"; return 1; }
  P=$STAGED
  SPOOL=$P/var/spool/mailhook
  CONF=$P/etc/mailhook/mailhook.conf
  [ -x "$P/sbin/sendmail" ] && [ -u "$P/sbin/mailhook-drop" -o -g "$P/sbin/mailhook-drop" ]
}

unprivileged_install() {
  if [ "$(id -u)" != 0 ]; then
    ok 0 "# SKIP unprivileged submission needs root to set up users, a group and a setgid program"
    done_testing; exit 0
  fi
  stage_install || { echo "Bail out! the staged install failed"; exit 1; }
  MH=$P/bin/mailhook SM=$P/sbin/sendmail
}
root_mh() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$P/bin/mailhook" "$@"; }

as() {
  local user=$1; shift
  setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
    env -u LD_LIBRARY_PATH -u MAILHOOK_CONF -u MAILHOOK_SPOOL -u MAILHOOK_DROP HOME=/ "$@"
}

new_user() {
  NEW_USER=$1$$
  useradd -M -N -g nogroup -s /usr/sbin/nologin -c "test user $1" "$NEW_USER" >/dev/null 2>&1 || return 1
  on_exit "userdel $NEW_USER"
}

# check: deliver what waits (root's `sendmail -q`) and read message n: M its header block,
# E its envelope (from | to...), and its body as received, CRLF made LF, in $T/got
check() {
  env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$SM" -q >"$T/q.out" 2>&1 || diag "sendmail -q: $(cat "$T/q.out")"
  n=$((n + 1))
  local f=$T/mail/$(printf %06d $n)
  M=$(sed -n '1,/^\r\?$/p' "$f.eml" 2>/dev/null | tr -d '\r')
  /usr/bin/python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); i = b.find(b"\r\n\r\n")
open(sys.argv[2], "wb").write(b[i + 4:].replace(b"\r\n", b"\n") if i >= 0 else b"")' "$f.eml" "$T/got" 2>/dev/null ||
    : > "$T/got"
  E=$(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' "$f.json" 2>/dev/null)
}
# body_is EXPECTED DESC: the body received is the file EXPECTED byte for byte
body_is() {
  if cmp -s "$1" "$T/got"; then ok 0 "$2"
  else ok 1 "$2"; diag "expected: $(od -c "$1" | head -5)"; diag "got: $(od -c "$T/got" | head -5)"; fi
}
# count of the header field NAME in M
nfield() { printf '%s\n' "$M" | grep -ci "^$1:"; }

callers_env() {
  if [ "$(id -u)" != 0 ]; then
    ok 0 "# SKIP the callers' tests need root (a group for the drop program, test users)"
    done_testing; exit 0
  fi
  stage_install || { echo "Bail out! the staged install failed"; exit 1; }
  SM=$P/sbin/sendmail
  start_smtpd S --maildir "$T/mail" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
  env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$P/bin/mailhook" update enabled=true server=127.0.0.1 port="$S" \
    tls=none tls_required=false from=pbx@example.com admin_address=admin@example.org >/dev/null ||
    { echo "Bail out! update failed"; exit 1; }
  HOST=$(hostname)
  chmod 755 "$T"
  n=0
}
