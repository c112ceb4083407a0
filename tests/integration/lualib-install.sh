# mailhook as a Lua library, installed: LuaRocks builds the rock offline from a clean
# copy of the checkout into a temporary tree (rockspecs/mailhook-scm-1.rockspec) and
# stock lua5.4 and busted use it from there; `make install` puts it where Debian's
# lua5.4 looks, so that `require "mailhook"` needs no LUA_PATH/LUA_CPATH at all.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/lualib.sh"
unset LUA_PATH LUA_CPATH
# The copies below are built as a user builds them, in their own build folder:
# without a sanitizer, and without the variables of the `make test`/`make asan`
# that runs this test (tests/run-one exports BUILD, the worktree's build folder,
# which the Makefile would take; MAKEFLAGS carries BUILD=, SANITIZER=, CFLAGS=).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES BUILD CFLAGS LDFLAGS SANITIZER PREFIX DESTDIR
_san_preload=""

command -v luarocks >/dev/null || { echo "Bail out! luarocks is missing: run scripts/deps"; exit 1; }

# a clean copy of the checkout: what is committed, plus what is new and not ignored
mkdir -p "$T/src"
( cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null ) | tar -C "$T/src" -xf -
[ -f "$T/src/rockspecs/mailhook-scm-1.rockspec" ]; ok $? "the copy has the rockspec"

# --- LuaRocks, offline ------------------------------------------------------------------
( cd "$T/src" && luarocks --lua-version 5.4 lint rockspecs/mailhook-scm-1.rockspec ) >"$T/lint.out" 2>&1
ok $? "luarocks lint accepts the rockspec"
# (CFLAGS=-O0: the rock's objects are for this test only; make install below reuses them)
nonet=""; unshare -n true 2>/dev/null && nonet="unshare -n"     # no network at all, where possible
( cd "$T/src" && $nonet luarocks --lua-version 5.4 make --tree "$T/tree" rockspecs/mailhook-scm-1.rockspec \
    CFLAGS="-O0 -fPIC" ) >"$T/rocks.out" 2>&1
rc=$?
is "$rc" 0 "luarocks make --tree builds and installs the rock (with no network where a namespace can say so)"
[ "$rc" = 0 ] || tail -30 "$T/rocks.out" | sed 's/^/#   /'
[ -f "$T/tree/lib/lua/5.4/mailhook/core.so" ]; ok $? "core.so in the tree's lib/lua/5.4"
[ -f "$T/tree/share/lua/5.4/mailhook/init.lua" ]; ok $? "the modules in its share/lua/5.4"
[ -f "$T/tree/share/lua/5.4/mailhook/templates/voicemail.txt" ]; ok $? "with the shipped templates"
out=$(luarocks --lua-version 5.4 --tree "$T/tree" list 2>&1)
like "$out" "mailhook" "luarocks list names it"
# --local, as the docs and the issue have it: the user's own tree (HOME is a scratch one)
# luarocks refuses --local to root ($USER=root: "meant for operating in a user's home
# directory"), so as root the step runs as nobody, in a copy nobody owns
local_src=$T/src user=""
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  cp -a "$T/src" "$T/src-user" && mkdir -p "$T/home" && chown -R nobody "$T/src-user" "$T/home" && chmod a+x "$T"
  local_src=$T/src-user user="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups env USER=nobody"
fi
( cd "$local_src" && HOME=$T/home $nonet $user luarocks --lua-version 5.4 make --local \
    rockspecs/mailhook-scm-1.rockspec CFLAGS="-O0 -fPIC" ) >"$T/rocks-local.out" 2>&1
rc=$?
ok $rc "luarocks make --local installs it into HOME's tree"
[ "$rc" = 0 ] || tail -30 "$T/rocks-local.out" | sed 's/^/#   /'
[ -f "$T/home/.luarocks/lib/lua/5.4/mailhook/core.so" ] && [ -f "$T/home/.luarocks/share/lua/5.4/mailhook/init.lua" ]
ok $? "core.so and the modules in ~/.luarocks/{lib,share}/lua/5.4"
out=$(eval "$(HOME=$T/home luarocks --lua-version 5.4 path)"; cd "$T" && lua54 -e '
  print(package.searchpath("mailhook.core", package.cpath), require "mailhook".wait_mode())' 2>&1)
is "$out" "$T/home/.luarocks/lib/lua/5.4/mailhook/core.so	block" "lua5.4 loads it from there (luarocks path)"

eval "$(luarocks --lua-version 5.4 --tree "$T/tree" path)"
write_conf() { local f=$1; shift; ( umask 077; printf '%s\n' "$@" > "$f" ); }
write_conf "$T/mailhook.conf" "enabled = true" "server = 127.0.0.1" "from = rock@example.com"
out=$(MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/rock-spool lua54 -e '
  local mh = require "mailhook"
  print(package.searchpath("mailhook.core", package.cpath))
  print(mh.paths.lua)
  print(mh.enqueue { to = "x@example.org", subject = "from the rock", text = "t" })
  local text = mh.template("{{a}} and {{b|none}}")({ a = "one" })
  print(text)' 2>&1)
like "$out" "$T/tree/lib/lua/5.4/mailhook/core.so" "lua5.4 finds core.so in the rock tree (luarocks path)"
like "$out" "$T/tree/share/lua/5.4" "and the modules there"
like "$out" "[0-9a-f]{16}" "an enqueue from the rock"
like "$out" "one and none" "templates work"
[ "$(ls "$T/rock-spool/pickup" | grep -c '\.eml$')" = 1 ]; ok $? "the message is in the spool"

# --- busted, the way Lua users test ------------------------------------------------------
if command -v busted >/dev/null; then
  out=$(cd "$T" && MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spec-spool \
        lua54 "$(command -v busted)" --output=TAP "$ROOT/tests/lualib/mailhook_spec.lua" 2>&1); rc=$?
  is "$rc" 0 "busted runs tests/lualib/mailhook_spec.lua under lua5.4"
  like "$out" "ok 5 " "its five tests"
  unlike "$out" "not ok" "all pass"
  [ "$rc" = 0 ] || printf '%s\n' "$out" | sed 's/^/#   /' | head -30
else
  ok 1 "busted is missing: scripts/deps installs lua-busted"
fi

# --- make install: no LUA_PATH, no LUA_CPATH ---------------------------------------------
( cd "$T/src" && make -s install DESTDIR="$T/root" PREFIX=/usr/local CFLAGS=-O0 ) >"$T/install.out" 2>&1
rc=$?
is "$rc" 0 "make install DESTDIR=... PREFIX=/usr/local"
[ "$rc" = 0 ] || tail -20 "$T/install.out" | sed 's/^/#   /'
lpath=$(lua5.4 -e 'print(package.path)'); cpath=$(lua5.4 -e 'print(package.cpath)')
like ";$lpath;" ";/usr/local/share/lua/5\.4/\?/init\.lua;" "lua5.4 looks in /usr/local/share/lua/5.4 by default"
like ";$cpath;" ";/usr/local/lib/lua/5\.4/\?\.so;" "and in /usr/local/lib/lua/5.4"
[ -f "$T/root/usr/local/share/lua/5.4/mailhook/init.lua" ]; ok $? "init.lua installed there (a link to the binary's copy)"
[ -f "$T/root/usr/local/lib/lua/5.4/mailhook/core.so" ]; ok $? "core.so installed there"
# PREFIX=/usr: Debian's own places (multiarch for C modules)
( cd "$T/src" && make -s -n install DESTDIR="$T/usr-root" PREFIX=/usr CFLAGS=-O0 ) >"$T/install-usr.out" 2>&1
grep -q "/usr/lib/$(cc -print-multiarch)/lua/5.4/mailhook/core.so" "$T/install-usr.out"
ok $? "PREFIX=/usr: core.so goes to /usr/lib/$(cc -print-multiarch)/lua/5.4, where lua5.4 looks"
like ";$cpath;" ";/usr/lib/$(cc -print-multiarch)/lua/5\.4/\?\.so;" "(it does)"

# The real thing: the staged tree mounted on /usr/local in a private mount namespace,
# lua5.4 run with no Lua variables; the settings and spool are the installed defaults.
if unshare -m true 2>/dev/null; then
  write_conf "$T/root/usr/local/etc/mailhook/mailhook.conf" "enabled = true" "server = 127.0.0.1" "from = inst@example.com"
  out=$(env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u MAILHOOK_CONF -u MAILHOOK_SPOOL \
        unshare -m sh -c 'mount --bind "$1" /usr/local && exec lua5.4 -e "
          local mh = require \"mailhook\"
          print(package.searchpath(\"mailhook.core\", package.cpath))
          print(mh.paths.conf, mh.paths.spool)
          print(mh.enqueue { to = \"x@example.org\", subject = \"installed\", text = \"t\" })"' sh "$T/root/usr/local" 2>&1)
  like "$out" "^/usr/local/lib/lua/5\.4/mailhook/core\.so" "installed: require needs no variable (core.so from /usr/local)"
  like "$out" "/usr/local/etc/mailhook/mailhook\.conf	/usr/local/var/spool/mailhook" "the installed service's settings and spool by default"
  like "$out" "[0-9a-f]{16}" "an enqueue into the installed spool"
  [ "$(ls "$T/root/usr/local/var/spool/mailhook/pickup" 2>/dev/null | grep -c '\.eml$')" = 1 ]
  ok $? "the message is in PREFIX/var/spool/mailhook"
else
  ok 0 "installed module used with no variable # SKIP no mount namespace here (unshare -m)"
fi

done_testing
