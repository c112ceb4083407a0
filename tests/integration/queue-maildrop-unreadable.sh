# A file of maildrop/ the listing cannot read (its owner unseen from a user namespace:
# systemd's PrivateUsers=, EUNSAFE; a file its owner made unreadable, EACCES) waits
# there for good, tried again at each scan: `mailhook queue` and the console's Queue
# page (mh.queue.maildrop) list it with why, so it can be seen and removed.  Before,
# it was left out: the page said "+N in maildrop/" with nothing under it, and such
# files, counted against the page's limit of 100, hid every file after them.
. "$ROOT/tests/lib/tap.sh"
if ! unshare -r true 2>/dev/null; then echo "1..0 # SKIP no user namespaces here (unshare -r)"; exit 0; fi
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
spool_make
mkdir -m 1730 "$T/spool/maildrop"
drop() {   # NAME UID: a drop of that user's, as mailhook-drop writes it
  printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\n\nSubject: s\n\nbody\n' \
    "$2" "$2" > "$T/spool/maildrop/$1"
  chown "$2:$2" "$T/spool/maildrop/$1"
}
for i in 1 2 3; do drop "000000000000000$i.00000001" 4242; done
drop 0000000000000009.00000001 0
# in a user namespace mapping root alone, uid 4242's files show as nobody's
out=$(unshare -r "$MAILHOOK" queue --json | python3 -c 'import json,sys
for e in json.load(sys.stdin): print(e["name"], e["state"], e.get("reason") or "-")')
is "$(printf '%s\n' "$out" | wc -l)" 4 "every file of maildrop/ listed, the 3 unseen ones too ($out)"
like "$out" "0000000000000001\.00000001 maildrop .*user namespace.*left in maildrop/" "  with why: its owner cannot be seen"
like "$out" "0000000000000009\.00000001 maildrop -" "  the readable one as before"
# the console's list (mh.queue.maildrop(dir, limit)): the limit counts what it lists
lst=$(unshare -r "$MAILHOOK" -e 'local l, n = require("mailhook.queue").maildrop(os.getenv("MAILHOOK_SPOOL"), 2)
for _, e in ipairs(l) do print(e.name, e.reason and "why" or "drop") end print("total", n)' 2>&1)
is "$lst" $'0000000000000001.00000001\twhy\n0000000000000002.00000001\twhy\ntotal\t4' \
  "mh.queue.maildrop(dir, 2): the 2 oldest, each with why; total 4"
done_testing
