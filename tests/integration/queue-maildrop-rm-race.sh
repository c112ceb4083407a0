# `queue rm NAME` of a file of maildrop/ that the service adopts in the meantime: the
# service renames it aside (NAME -> ID.adopted) and queues its copy, while rm, having
# found NAME in its listing, unlinks it.  That unlink found nothing, and rm said
# "removed maildrop/NAME (it was not adopted: never queued, never sent)", exit 0: the
# administrator was told the message was gone while it was queued and then sent.  Now
# rm says it is no longer there (adopted meanwhile: `mailhook queue` lists it), exit 1.
# The adoption is made to happen between rm's listing and its unlink (the listing
# function wrapped: the rename the service makes), not left to timing.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
spool_make
mkdir -m 1730 "$T/spool/maildrop"
drop() { printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\n\nSubject: %s\n\nbody\n' \
           "$(id -u)" "$(id -g)" "$2" > "$T/spool/maildrop/$1"; }
# race.lua NAME api|cli: the service adopts NAME right after rm lists maildrop/
cat > "$T/race.lua" <<'LUA'
local core = require "mailhook.core"
local name, how = arg[1], arg[2]
local real = core.maildrop.list
core.maildrop.list = function(dir, ...)
  local names, stale = real(dir, ...)
  core.maildrop.list = real
  assert(os.rename(dir .. "/maildrop/" .. name, dir .. "/maildrop/00000000000000aa.adopted"))
  return names, stale
end
if how == "api" then
  local ok, err, info = require("mailhook").queue.remove(name)
  print(tostring(ok) .. "|" .. tostring(err) .. "|" .. tostring(info and info.code))
else
  os.exit(require("mailhook.cmd.queue")("rm", name))
end
LUA

drop 0000000000000001.00000001 one
out=$("$MAILHOOK" "$T/race.lua" 0000000000000001.00000001 api 2>&1)
like "$out" "^nil\|" "mh.queue.remove: not true when the file was adopted meanwhile ($out)"
like "$out" "no longer in maildrop/" "it says the file is no longer there"
like "$out" "\|ENOTFOUND$" "info.code ENOTFOUND"
is "$(ls "$T/spool/maildrop")" "00000000000000aa.adopted" "the adoption's file is left alone"

rm -f "$T/spool/maildrop/"*
drop 0000000000000002.00000001 two
out=$("$MAILHOOK" "$T/race.lua" 0000000000000002.00000001 cli 2>&1); rc=$?
is "$rc" 1 "queue rm: exit 1 ($out)"
unlike "$out" "removed maildrop/" "never says it removed it"
like "$out" "adopted it meanwhile" "says it was adopted meanwhile"

# the plain case still works: rm removes a file that is there
rm -f "$T/spool/maildrop/"*
drop 0000000000000003.00000001 three
out=$("$MAILHOOK" queue rm 0000000000000003 2>&1); rc=$?
is "$rc" 0 "queue rm of a file that stays: exit 0 ($out)"
like "$out" "removed maildrop/0000000000000003\.00000001" "removed"
is "$(ls -A "$T/spool/maildrop")" "" "gone"

# ID.adopted, the original of an adoption in progress (renamed aside, its copy being
# queued from the adopter's open descriptor): while a process holds the spool's lock,
# rm would stop nothing (the copy is queued and sent) and said "removed ... never
# sent"; it is refused, naming the id.  With no lock holder (an adoption a kill
# stopped) it goes.
drop 00000000000000bb.adopted aside
cat > "$T/held.lua" <<'LUA'
local sp = assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")))
assert(sp:lock())
local ok, err, info = require("mailhook").queue.remove("00000000000000bb.adopted")
print(tostring(ok) .. "|" .. tostring(info and info.code) .. "|" .. tostring(err))
LUA
out=$("$MAILHOOK" "$T/held.lua" 2>&1)
like "$out" "^nil\|EBUSY\|" "ID.adopted while the lock is held: not removed ($out)"
like "$out" "queued as 00000000000000bb in a moment" "says it is being queued, and its id"
is "$(ls "$T/spool/maildrop")" "00000000000000bb.adopted" "the file stays"
out=$("$MAILHOOK" queue rm 00000000000000bb.adopted 2>&1); rc=$?
is "$rc" 0 "ID.adopted with no lock holder (a stopped adoption): removed ($out)"
is "$(ls -A "$T/spool/maildrop")" "" "gone"

# the other order: rm unlinks NAME after the service opened it and before it renames
# it aside.  rm wins (nothing is queued); the service said "cannot adopt NAME: ...
# (tried again at the next scan)", a warning of something that is no fault and has
# nothing to try again.  Now one info line saying it was removed before its adoption.
drop 0000000000000004.00000001 four
cat > "$T/adopt.lua" <<'LUA'
local core = require "mailhook.core"
local dir = os.getenv("MAILHOOK_SPOOL")
local sp = assert(require("mailhook.spool").open(dir))
assert(sp:lock())
local real = core.maildrop.aside
core.maildrop.aside = function(d, name, ...)
  os.remove(d .. "/maildrop/" .. name)   -- `mailhook queue rm NAME` between the open and the rename
  return real(d, name, ...)
end
print("adopted " .. require("mailhook.maildrop").adopt(sp, dir))
LUA
out=$(MAILHOOK_LOG_LEVEL=info "$MAILHOOK" "$T/adopt.lua" 2>&1)
like "$out" "adopted 0" "removed between the open and the rename: not adopted ($out)"
is "$(ls -A "$T/spool/pickup" | grep -c eml)" 0 "nothing queued"
like "$out" "info +maildrop: 0000000000000004\.00000001 was removed before its adoption" "said as what happened"
unlike "$out" "cannot adopt|tried again" "not a warning that it is tried again"

# a message whose adoption left its original behind (maildrop/ID.adopted beside the
# queued ID: a kill between the copy and the unlink).  `queue rm ID` removed the copy
# and left the original, which the next adopter, finding no copy of ID, queued again
# as ID: the message removed was sent.  Now both go.  And `queue rm ID.adopted` said
# "removed ... never queued, never sent" of a message queued as ID: now it names ID.
id=$(printf 'Subject: kept\n\nbody\n' | "$MAILHOOK" enqueue --to ops@example.net)
drop "$id.adopted" kept
out=$("$MAILHOOK" queue rm "$id.adopted" 2>&1); rc=$?
is "$rc" 1 "queue rm ID.adopted of a message queued as ID: exit 1 ($out)"
like "$out" "queued as $id: \`mailhook queue rm $id\` removes both" "names the queued id"
is "$(ls "$T/spool/maildrop")" "$id.adopted" "nothing removed"
drop "$id.adopted" kept   # (there still, or again)
out=$("$MAILHOOK" queue rm "$id" 2>&1); rc=$?
is "$rc" 0 "queue rm ID: exit 0 ($out)"
is "$(ls -A "$T/spool/maildrop")" "" "the original left behind goes with it"
out=$(MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -e 'local sp = assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))); assert(sp:lock()); print("adopted " .. require("mailhook.maildrop").adopt(sp, os.getenv("MAILHOOK_SPOOL")))' 2>&1)
like "$out" "adopted 0" "the next adoption brings nothing back ($out)"
is "$(ls "$T/spool/pickup" | grep -c "$id")" 0 "the message removed stays removed"
done_testing
