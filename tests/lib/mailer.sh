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
