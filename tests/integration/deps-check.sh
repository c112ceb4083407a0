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
done_testing
