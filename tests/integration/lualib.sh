# mailhook as a Lua library: Debian's stock /usr/bin/lua5.4 (not the mailhook binary)
# loads BUILD/lua/mailhook/core.so and lua/mailhook/*.lua through LUA_CPATH and
# LUA_PATH, as a user's program would (docs/lua-library.md).  The Lua programs are
# tests/lualib/*.lua; real peers from tests/lib/peers.sh.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/lualib.sh"

[ -f "$LUAMOD" ] || { echo "Bail out! $LUAMOD is not built (make)"; exit 1; }

# --- the module as a file -------------------------------------------------------------
needed=$(readelf -d "$LUAMOD" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
like "$needed" "libuv\.so" "core.so is linked to the shared libuv"
like "$needed" "libssl\.so.*libcrypto\.so|libcrypto\.so.*libssl\.so" "and to the shared OpenSSL"
unlike "$needed" "liblua" "and to no Lua library (the interpreter is Lua)"
exported=$(readelf --dyn-syms -W "$LUAMOD" | awk '$7 != "UND" && $5 != "LOCAL" && $4 == "FUNC" {print $8}' | tr '\n' ' ')
is "$exported" "luaopen_mailhook_core " "it exports luaopen_mailhook_core alone"
# A stock lua5.4 exports no mh_* (the binary does, for its TLS module): core.so holds
# the whole core, TLS client included, and needs nothing of mailhook's from outside.
undef=$(nm -D --undefined-only "$LUAMOD" | awk '$2 ~ /^mh_/ {print $2}' | tr '\n' ' ')
is "$undef" "" "core.so calls no mh_* it does not hold itself"
grep -q 'mailhook-tls' "$LUAMOD"; ok $((! $?)) "and never names the binary's TLS module"

# --- another Lua refuses it by name ------------------------------------------------------
if [ -x /usr/bin/lua5.3 ]; then
  out=$(lua_with /usr/bin/lua5.3 -e 'require "mailhook.core"' 2>&1)
  like "$out" "mailhook.core was built for Lua 5\.4, but this interpreter is Lua 5\.3" \
    "lua5.3 loading core.so: an error naming both versions (not 'undefined symbol')"
  out=$(lua_with /usr/bin/lua5.3 -e 'require "mailhook"' 2>&1)
  like "$out" "mailhook needs Lua 5\.4.*this is Lua 5\.3" "require 'mailhook' in lua5.3: the same, from init.lua"
else
  ok 1 "lua5.3 is missing: scripts/deps installs it (the version check is tested with it)"
fi

# --- the issue's own line, in a checkout: LUA_PATH alone, core.so where make built it --------
mkdir -p "$T/co"; cp -R "$ROOT/lua" "$T/co/lua"; ln -s "$BUILD" "$T/co/build"
out=$(cd "$T/co" && LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="" lua54 -e '
  local mh = require "mailhook"; print(mh.wait_mode(), package.loaded["mailhook.core"] == mh.core, mh.paths.lua)' 2>&1)
is "$out" "block	true	lua" "LUA_PATH=\"lua/?.lua;lua/?/init.lua;;\" lua5.4 -e 'require \"mailhook\"' in a checkout loads build/'s core.so"
rm "$T/co/build"
out=$(cd "$T/co" && LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="" lua54 -e 'require "mailhook"' 2>&1)
like "$out" "mailhook/core\.so was not found: run .make.*LUA_CPATH=.*make install.*luarocks" \
  "not built: the error says to make it, or how to point at it"

# --- require, waiting, mh.run, paths ----------------------------------------------------
MAILHOOK_CONF=$T/basics.conf MAILHOOK_SPOOL=$T/basics-spool lua_tap basics.lua "$T"

# --- bad input to mh.enqueue: nil, message, info, or a raise at the caller's line --------
write_conf "$T/bad.conf" enabled=true server=127.0.0.1 from=pbx@example.com
MAILHOOK_CONF=$T/bad.conf lua_tap badinput.lua "$T"

# a host that spawns an enqueue and never runs the loop: lua_close says the work was abandoned
out=$(MAILHOOK_CONF=$T/bad.conf MAILHOOK_SPOOL=$T/never-spool lua54 -e '
  local mh = require "mailhook"
  mh.spawn(mh.enqueue, { to = "ops@example.com", subject = "s", text = "t" })' 2>&1)
like "$out" "lua_close: 1 mailhook task never ran .*its work is abandoned" \
  "a spawned task the loop never ran is not dropped without a word"
out=$(MAILHOOK_CONF=$T/bad.conf MAILHOOK_SPOOL=$T/never-spool lua54 -e '
  local mh = require "mailhook"
  local t = mh.spawn(mh.enqueue, { to = "ops@example.com", subject = "s", text = "t" })
  assert(t:wait())' 2>&1)
is "$out" "" "waited for, it runs and nothing is said"

# --- a durable enqueue that survives SIGKILL right after it returns -------------------
write_conf "$T/mailhook.conf" enabled=true server=127.0.0.1 from=pbx@example.com
export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
head -c 300000 /dev/urandom > "$T/fax.pdf"
mkfifo "$T/hold"
( exec 3<>"$T/hold"; lua54 "$ROOT/tests/lualib/enqueue.lua" "Fax from +33123" "$T/fax.pdf" <&3 >"$T/enq.out" 2>"$T/enq.err" ) &
enq=$!
wait_for 30 grep -q '^ID ' "$T/enq.out"
ok $? "mh.enqueue returns an id in lua5.4 (blocking, no task)"
# the process is alive, its state open: it holds no spool lock (only `mailhook run`,
# or a program that asks with Spool:lock(), does) and wrote nothing to stderr
{ [ ! -e "$T/spool/lock" ] || flock -n "$T/spool/lock" true; }
ok $? "a require and an enqueue take no spool lock (flock -n on SPOOL/lock succeeds meanwhile)"
is "$(cat "$T/enq.err")" "" "and write nothing to stderr"
kill -KILL $(pgrep -P "$enq" -x lua5.4 || echo "$enq") 2>/dev/null
wait "$enq" 2>/dev/null
id=$(sed -n 's/^ID //p' "$T/enq.out")
[ -f "$T/spool/pickup/$id.eml" ]; ok $? "after SIGKILL the message is in pickup/ ($id)"
ls -A "$T/spool/tmp" 2>/dev/null | grep -q . ; ok $((! $?)) "and nothing is left in tmp/"
like "$(cat "$T/spool/pickup/$id.eml")" "Subject: Fax from \+33123" "it is whole: headers"
b64=$(base64 -w 76 < "$T/fax.pdf" | tail -1)
grep -qF "$b64" "$T/spool/pickup/$id.eml"; ok $? "and the attachment to its last line"
out=$(MAILHOOK_SPOOL=$T/spool "$MAILHOOK" queue 2>&1)
like "$out" "$id" "mailhook queue lists it"

# --- rules: mh.on / mh.emit --------------------------------------------------------------
MAILHOOK_SPOOL=$T/rules-spool lua_tap rules.lua

# --- the SMTP engine against a real server: STARTTLS + AUTH ---------------------------
make_certs "$T/certs" || exit 1
start_smtpd P --tls starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
  --auth "pbx:s3cret-pass" --maildir "$T/inbox" --log "$T/smtpd.log" || exit 1
write_conf "$T/tls.conf" enabled=true server=127.0.0.1 port="$P" from=pbx@example.com tls=starttls \
  tls_ca_file="$T/certs/ca.crt" auth=true username=pbx password=s3cret-pass \
  connect_timeout=10 command_timeout=10 session_deadline=60
MAILHOOK_CONF=$T/tls.conf MAILHOOK_SPOOL=$T/tls-spool lua_tap smtp.lua "$T/inbox"
grep -q '^starttls' "$T/smtpd.log"; ok $? "the server saw STARTTLS"
grep -q '^auth ok' "$T/smtpd.log"; ok $? "and a successful AUTH"

# --- a host's own loop drives mailhook's: socket.select on mh.pollfd, mh.step -----------
write_conf "$T/host.conf" enabled=true server=127.0.0.1 port="$P" from=pbx@example.com tls=starttls \
  tls_ca_file="$T/certs/ca.crt" auth=true username=pbx password=s3cret-pass \
  connect_timeout=120 command_timeout=120 session_deadline=300
MAILHOOK_CONF=$T/host.conf MAILHOOK_SPOOL=$T/host-spool lua_tap hostloop.lua
# ... and luv's (lua-luv): a poll handle on mh.pollfd, a timer for mh.timeout
MAILHOOK_CONF=$T/host.conf MAILHOOK_SPOOL=$T/host-spool lua_tap hostloop-luv.lua

# --- two lua_States in one process (a C host embedding liblua5.4) ------------------------
SAN=""
[ -n "$_san_preload" ] && SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O1 -g $SAN $(pkg-config --cflags lua5.4) \
   "$ROOT/tests/lualib/two-states.c" -o "$T/two-states" $(pkg-config --libs lua5.4) -lpthread 2>"$T/cc.err"
ok $? "the C host (liblua5.4) compiles"
[ -s "$T/cc.err" ] && sed 's/^/#   /' "$T/cc.err"
mkdir -p "$T/two"
MAILHOOK_CONF=$T/mailhook.conf tap_cmd two-states "$T/two-states" "$T/two"

# --- fork() after require: parent and child enqueue at once (tests/lualib/fork.c) --------
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O1 -g $SAN $(pkg-config --cflags lua5.4) \
   "$ROOT/tests/lualib/fork.c" -o "$T/fork" $(pkg-config --libs lua5.4) 2>"$T/cc.err"
ok $? "the forking C host (liblua5.4) compiles"
[ -s "$T/cc.err" ] && sed 's/^/#   /' "$T/cc.err"
MAILHOOK_CONF=$T/mailhook.conf tap_cmd fork "$T/fork" "$T/fork-spool"

done_testing
