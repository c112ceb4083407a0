# make deps-check (scripts/deps-check): the packages the build and the suite were seen using
# (tests/deps/RELEASE.list, from `make deps-trace`) must each be named in scripts/deps or pulled in by
# one named there. A scratch copy of scripts/deps that forgets one must fail, naming it: swaks (the
# reference client), tmux (the REPL's terminal) and strace, which nothing else pulls in. (swaks' TLS
# module, libnet-ssleay-perl, the original bug, is now also pulled in by lintian's dependencies and by
# libmailtools-perl, which git send-email needs for the callers' tests.)
. "$ROOT/tests/lib/tap.sh"
rel=$(. /etc/os-release 2>/dev/null && echo "$VERSION_CODENAME")
if [ ! -f "$ROOT/tests/deps/$rel.list" ]; then
  echo "1..0 # SKIP no record of the packages used on '$rel' (tests/deps/$rel.list): run make deps-trace there"
  exit 0
fi
out=$("$ROOT/scripts/deps-check" 2>&1); rc=$?
is "$rc" 0 "deps-check passes with scripts/deps as committed"
like "$out" "packages used" "and says what it checked"

without() {   # without PKG: a copy of scripts/deps that does not name PKG; prints its path
  mkdir -p "$T/scratch-$1/scripts"
  sed -E "s/(^|[ \"])$1([ \"]|$)/\1\2/" "$ROOT/scripts/deps" > "$T/scratch-$1/scripts/deps"
  echo "$T/scratch-$1/scripts/deps"
}
for p in swaks tmux strace; do
  grep -q "^$p " "$ROOT/tests/deps/$rel.list" || { ok 0 "# SKIP $p is not in the record on $rel"; ok 0 "# SKIP"; ok 0 "# SKIP"; continue; }
  d=$(without "$p")
  sh "$d" --list | grep -qx "$p"; is "$?" 1 "the scratch scripts/deps does not name $p"
  out=$("$ROOT/scripts/deps-check" --deps "$d" 2>&1); rc=$?
  is "$rc" 1 "deps-check fails without $p"
  like "$out" "^  $p +\(seen using /" "naming $p and a file the suite used from it"
done

# scripts/deps takes --list and nothing else: `scripts/deps --help` or a misspelt
# `--lsit` ran the installer (as root: apt-get install).  Stubs of the Debian tools
# first in PATH record any call, so an old scripts/deps installs nothing here.
mkdir -p "$T/stub"
for tool in apt-get dpkg-query dpkg-deb; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/stub.calls"\nexit 1\n' "$tool" "$T" > "$T/stub/$tool"
  chmod +x "$T/stub/$tool"
done
for a in --lsit "--list extra" -x; do
  # shellcheck disable=SC2086
  out=$(PATH="$T/stub:$PATH" timeout 60 sh "$ROOT/scripts/deps" $a 2>&1); rc=$?
  is "$rc" 2 "scripts/deps $a: a usage error (exit 2)"
  like "$out" "^scripts/deps: unexpected argument '${a##* }' \(usage: scripts/deps \[--list\]\)$" "naming it, one line"
done
out=$(PATH="$T/stub:$PATH" timeout 60 sh "$ROOT/scripts/deps" --help 2>&1); rc=$?
is "$rc" 0 "scripts/deps --help: exit 0"
like "$out" "scripts/deps --list +print this release's package list" "with the usage"
is "$(cat "$T/stub.calls" 2>/dev/null)" "" "and none of them ran apt-get, dpkg-query or dpkg-deb"
done_testing
