
# rules_env [KEY=VALUE...]: the settings of a rules or hook test, in $T: MAILHOOK_CONF
# ($T/mailhook.conf: enabled, server 127.0.0.1, from pbx@example.com, rules in $T/rules,
# then one line per KEY=VALUE given) and MAILHOOK_SPOOL ($T/spool), exported; $T/rules made.
rules_env() {
  local kv
  export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
  {
    printf 'enabled = true\nserver = 127.0.0.1\nfrom = pbx@example.com\nrules = rules\n'
    for kv in "$@"; do printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"; done
  } > "$MAILHOOK_CONF"
  mkdir -p "$T/rules"
}
# tests/lib/tap.sh — TAP for shell integration tests (sourced).
#   . "$ROOT/tests/lib/tap.sh"
#   ok "$cond_exit_status" "description"  |  is "$got" "$want" "description"
#   like "$got" "regex" "description"     |  done_testing
# A scratch folder $T is made and removed at exit; register extra clean-up with
# `on_exit "cmd"` (peers are killed there).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUILD:=$ROOT/build}"
: "${MAILHOOK:=$BUILD/mailhook}"
_tap_n=0; _tap_failed=0; _tap_exit=()
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-test.XXXXXX")
on_exit() { _tap_exit+=("$1"); }
_tap_pid=$BASHPID
_tap_cleanup() {
  local c
  # only the test's own shell: a child it forked (`cmd &`) that is signalled before
  # it runs its command inherits these traps, and removed $T under the test
  [ "$BASHPID" = "$_tap_pid" ] || return 0
  for c in "${_tap_exit[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  rm -rf "$T"
}
trap _tap_cleanup EXIT
trap "exit 143" TERM INT HUP   # so the clean-up runs when a time limit kills the test
# A failure's diagnostics go to stderr, as Test::More's do: prove shows them without -v,
# so a CI log says why a test failed, not only which.
ok() {   # ok STATUS DESC  (STATUS 0 = pass)
  _tap_n=$((_tap_n + 1))
  if [ "$1" = 0 ]; then echo "ok $_tap_n - $2"
  else
    echo "not ok $_tap_n - $2"; _tap_failed=$((_tap_failed + 1))
    printf '#   Failed test %d - %s (%s)\n' "$_tap_n" "$2" "${0##*/}" >&2
  fi
}
is() {
  if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; printf '#   got:  %s\n#   want: %s\n' "$1" "$2" | head -20 >&2; fi
}
# _tap_match TEXT REGEX: whether the extended regex matches TEXT.  A regex of one
# line is grep -E's, line by line.  grep reads a regex holding a newline as several
# regexes, any of which may match (an empty one matches everything), so such a
# regex is matched as one, across the lines of TEXT, by perl: ^ and $ at each line,
# `.` within a line.
_tap_match() {
  case $2 in
    *$'\n'*) printf '%s' "$1" | TAP_RE=$2 perl -e 'local $/; my $s = <STDIN> // ""; exit($s =~ /$ENV{TAP_RE}/m ? 0 : 1)' ;;
    *) printf '%s' "$1" | grep -Eq -- "$2" ;;
  esac
}
like() {
  if _tap_match "$1" "$2"; then ok 0 "$3"; else ok 1 "$3"; printf '#   got: %s\n#   want /%s/\n' "$1" "$2" | head -20 >&2; fi
}
unlike() {
  if _tap_match "$1" "$2"; then ok 1 "$3"; printf '#   got: %s\n#   must not match /%s/\n' "$1" "$2" | head -20 >&2; else ok 0 "$3"; fi
}
diag() { echo "# $*"; }
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # SKIP $1"; }   # skip WHY: one check not run, and why
# tap_merge FILE RC NAME: the TAP another producer wrote to FILE (a Python checker), renumbered
# into this file's plan (its diagnostics kept), then one check that NAME exited RC = 0.
tap_merge() {
  local line failing=0
  while IFS= read -r line; do
    case $line in
      "ok "*) ok 0 "${line#ok * - }"; failing=0 ;;
      "not ok "*) ok 1 "${line#not ok * - }"; failing=1 ;;
      "#"*) echo "$line"; [ $failing = 0 ] || echo "$line" >&2 ;;   # a failure's why, shown by prove
    esac
  done < "$1"
  [ "$2" = 0 ] || diag "$3 exit $2"
  ok "$2" "$3 ran to its end"
}
done_testing() { echo "1..$_tap_n"; [ "$_tap_failed" = 0 ]; }
# wait_for TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds; 1 on timeout.
# The clock and the pause are the shell's own (EPOCHREALTIME; a read that times out on a
# FIFO of $T nobody writes, opened for the read only, so no child inherits it): a `date`
# and a `sleep` process per poll cost ~20 ms of CPU on the loaded 2-core machine, which
# the suite's polls (20 a second, in every file) took from the tests running beside them.
mkfifo "$T/.tick" 2>/dev/null || :
_tap_pause() {   # _tap_pause SECONDS
  local _tap_line
  if [ -p "$T/.tick" ]; then read -r -t "$1" _tap_line <>"$T/.tick"; else sleep "$1"; fi
  return 0
}
wait_for() {
  local limit=$1; shift
  local end=$(( ${EPOCHREALTIME//[!0-9]/} + limit * 1000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "${EPOCHREALTIME//[!0-9]/}" -gt "$end" ] && return 1
    _tap_pause 0.05
  done
}
# strace_joined FILE: an `strace -f -o FILE` trace, each call that another thread's line cut
# in two ("PID call(args <unfinished ...>", then "PID <... call resumed>rest") put back on
# one line, where it ended: a check that reads a call's arguments with its result (or its
# "(INJECTED)") sees both.  A thread's own calls stay in their order.
strace_joined() {
  awk '/ <unfinished \.\.\.>$/ { cut[$1] = substr($0, 1, length($0) - 17); next }
    match($0, /^[0-9]+ +<\.\.\. [^ ]+ resumed>/) && ($1 in cut) {
      print cut[$1] substr($0, RLENGTH + 1); delete cut[$1]; next }
    { print }' "$1"
}
# strace_inject_require: the test skips (a plan of 0, with the reason) unless strace is
# there and may inject faults (ptrace permitted: not in every container)
strace_inject_require() {
  command -v strace >/dev/null || { echo "1..0 # SKIP strace not installed"; exit 0; }
  if ! strace -f -qq -o /dev/null -e trace=getppid -e inject=getppid:error=EIO:when=1 true 2>"$T/probe"; then
    echo "1..0 # SKIP strace cannot inject faults here (ptrace not permitted?): $(head -1 "$T/probe")"; exit 0
  fi
}
# proc_gone PID: PID has ended (no process, or a zombie its parent has not reaped:
# kill -0 succeeds on one, so a child's end is never seen by it).
proc_gone() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0; [[ $st == Z* ]]; }
# term_wait PID [SECONDS]: SIGTERM to a child (a service), its exit status once it ended
# within SECONDS (default 30); one that did not end is said, SIGKILLed and 124: a
# service that ignores SIGTERM fails a check instead of hanging the file on `wait`.
term_wait() {
  kill -TERM "$1" 2>/dev/null
  if ! wait_for "${2:-30}" proc_gone "$1"; then
    echo "# pid $1 did not end within ${2:-30} s of SIGTERM: killed" >&2
    kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
    return 124
  fi
  wait "$1" 2>/dev/null
}
# stage_install_build STAGE TARGET [VAR=VALUE...]: `make TARGET` (install, install-sendmail)
# of the suite's own build, staged into STAGE (DESTDIR) at the build's own PREFIX; the
# staged prefix is left in $STAGED.  Never another PREFIX: it changes BUILD/instpaths.stamp,
# and the next `make` of this build (another test's install, running beside) relinks
# BUILD/mailhook and remakes BUILD/luac under the tests using them (`make test` fails when
# the suite changed its build).  -o: the binary, its TLS module and the Lua module are
# installed as built, never relinked (an ASan build stays one).  One at a time (a lock).
stage_install_build() {
  local stage=$1 target=$2; shift 2
  STAGED=$stage$(sed -n 's/^PREFIX *?= *//p' "$ROOT/Makefile" | head -1)
  ( flock 9
    make -C "$ROOT" --no-print-directory -s -o "$BUILD/mailhook" -o "$BUILD/mailhook-tls.so" \
         -o "$BUILD/lua/mailhook/core.so" BUILD="$BUILD" DESTDIR="$stage" "$@" "$target"
  ) 9>"$BUILD/.install-lock"
}
# mailhook_for_others DIR: copies what another user needs to run $MAILHOOK (the binary, its TLS module,
# the precompiled modules, lua/ and scripts/) into DIR, readable by all, and prints the copy's path.
# For tests that drop to `nobody`: the checkout may be closed to other users (root's clone in /root is
# mode 700). DIR is best under $T, which is then opened to others (711: they enter, not list). Run the copy with `env -u LD_LIBRARY_PATH` (run-one points it into the checkout, and a
# search folder the user may not enter stops the dynamic loader).
mailhook_for_others() {
  local d=$1 up
  mkdir -p "$d/build"
  cp "$MAILHOOK" "$d/build/mailhook"
  [ -e "$BUILD/mailhook-tls.so" ] && cp "$BUILD/mailhook-tls.so" "$d/build/"
  [ -d "$BUILD/luac" ] && cp -R "$BUILD/luac" "$d/build/"
  cp -R "$ROOT/lua" "$ROOT/scripts" "$d/"
  chmod -R a+rX "$d"
  case $d in "$T"/*) chmod a+x "$T" ;; esac   # the scratch folder is mktemp's 0700
  echo "$d/build/mailhook"
}
# spool_make [DIR]: makes the spool (default: $MAILHOOK_SPOOL) with its folders, empty, as the
# service's start does.  `mailhook queue` did it before it became a look that makes nothing.
spool_make() {
  "$MAILHOOK" ${1:+-s "$1"} -e 'local sp, err = require("mailhook.spool").open() assert(sp, err) sp:close()' >/dev/null
}
