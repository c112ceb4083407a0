# mailhook queue (and --json, mh.queue.list, spool:list) lists oldest first:
# enqueue order by id, across pickup/ and failed/, whatever order readdir
# gives; drop-ins not adopted yet come last, by name.
. "$ROOT/tests/lib/tap.sh"

C=$T/mailhook.conf; S=$T/spool
mh() { "$MAILHOOK" -c "$C" -s "$S" "$@"; }
"$MAILHOOK" -c "$C" update enabled=true server=127.0.0.1 from=noreply@ex.org >/dev/null

# 300 messages in enqueue order (one batch: ids ascending in item order), two
# of them then failed; prints the ids in enqueue order
"$MAILHOOK" -s "$S" -e '
  local sp = assert(require("mailhook.spool").open(...))
  local items = {}
  for i = 1, 300 do
    items[i] = { ("Subject: msg %d\r\n\r\nbody %d\r\n"):format(i, i), { from = "a@ex.org", to = { ("r%d@ex.org"):format(i) } } }
  end
  local ids = assert(sp:enqueue_many(items))
  assert(sp:fail(ids[7], { reason = "550 test" }))
  assert(sp:fail(ids[250], { reason = "550 test" }))
  for _, id in ipairs(ids) do print(id) end' "$S" > "$T/want"
is "$(wc -l < "$T/want")" 300 "300 messages enqueued"
is "$(sort "$T/want")" "$(cat "$T/want")" "ids sort in enqueue order"
ok $([ "$(ls -U "$S/pickup" | grep '\.eml$' | head -50)" != "$(ls "$S/pickup" | grep '\.eml$' | head -50)" ] && echo 0 || echo 1) \
   "readdir gives the files in another order (so this test can fail)"

# drop-ins: listed after every id, by name
printf 'From: app@ex.org\r\nTo: z@ex.org\r\n\r\nzz\r\n' > "$S/pickup/zz-app.eml"
printf 'From: app@ex.org\r\nTo: a@ex.org\r\n\r\naa\r\n' > "$S/pickup/aa-app.eml"
{ cat "$T/want"; echo aa-app.eml; echo zz-app.eml; } > "$T/want-all"

mh queue | awk 'NR > 1 { print $1 }' > "$T/got"
is "$(cat "$T/got")" "$(cat "$T/want-all")" "mailhook queue: oldest first, failed ones in their place, drop-ins last"
like "$(mh queue | grep "^$(sed -n 7p "$T/want") ")" "failed +550 test" "a failed message listed in its place shows its state"
mh queue --json | /usr/bin/python3 -c 'import json,sys; [print(e["id"]) for e in json.load(sys.stdin)]' > "$T/got"
is "$(cat "$T/got")" "$(cat "$T/want-all")" "mailhook queue --json: the same order"
"$MAILHOOK" -s "$S" -e 'for e in require("mailhook").queue.list() do print(e.id) end' > "$T/got"
is "$(cat "$T/got")" "$(cat "$T/want-all")" "mh.queue.list(): the same order"
"$MAILHOOK" -s "$S" -e 'local sp = require("mailhook.spool").open(...); for e in sp:list("failed") do print(e.id) end' "$S" > "$T/got"
is "$(cat "$T/got")" "$(sed -n '7p;250p' "$T/want")" "spool:list(\"failed\"): failed/ only, oldest first"
"$MAILHOOK" -s "$S" -e 'local sp = require("mailhook.spool").open(...); for e in sp:list("pickup") do print(e.id) end' "$S" > "$T/got"
is "$(cat "$T/got")" "$(grep -vxF -e "$(sed -n 7p "$T/want")" -e "$(sed -n 250p "$T/want")" "$T/want-all")" \
   "spool:list(\"pickup\"): pickup/ only, oldest first"

# a message retried back into pickup/ keeps its place
mh queue retry "$(sed -n 7p "$T/want")" >/dev/null
mh queue | awk 'NR > 1 { print $1 }' > "$T/got"
is "$(cat "$T/got")" "$(cat "$T/want-all")" "after a retry: still in enqueue order"

done_testing
