# The tree's spool/ (`make run`'s, the default of a tree's binary) holds only
# what a running service wrote: no file of it is part of the source.  A run's
# status.json and sidecars were committed once (4b45dcc): every checkout, and
# the files taken from `git ls-files` (lualib-install.sh, packaging), carried a
# stopped service's status, pid and all.
. "$ROOT/tests/lib/tap.sh"
if ! git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "1..0 # SKIP not a git work tree"; exit 0
fi
is "$(git -C "$ROOT" ls-files -- spool)" "" "no file under spool/ is tracked"
for f in status.json sidecars flush.done; do
  git -C "$ROOT" check-ignore -q --no-index "spool/$f"; ok $? "spool/$f, written by a service run in the tree, is ignored"
done
# README's first steps run `build/mailhook update ... password=-` at the checkout's
# root: it writes ./mailhook.conf and, beside it, ./mailhook.secrets (the password).
# The settings were ignored, the secrets not: `git add .` took the password along.
for f in mailhook.conf mailhook.secrets; do
  git -C "$ROOT" check-ignore -q --no-index "$f"; ok $? "$f, written by update at the tree's root, is ignored"
done
done_testing
