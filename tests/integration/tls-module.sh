# The TLS client is a module loaded on the first TLS session (runtime/tls_load.c): the one-shot
# commands never map OpenSSL (its BIND_NOW relocations were most of their start-up), a TLS session
# loads it from beside the binary, an installed binary finds it in PREFIX/lib/mailhook, and a binary
# whose module is missing says so at the tls stage instead of failing to start.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

# Lua that prints the mapped OpenSSL and TLS-module files of its own process.
MAPS='for l in io.lines("/proc/self/maps") do
  if l:find("libssl", 1, true) or l:find("libcrypto", 1, true) or l:find("mailhook-tls", 1, true) then
    io.stderr:write(l, "\n") end end'

# The module holds tls.c alone: what it calls of the core (mh_fsutil_read, mh_error...) is the
# binary's own copy, which the binary exports (-Wl,--export-dynamic-symbol='mh_*').
TLSMOD=$(dirname "$MAILHOOK")/mailhook-tls.so
tls_undef=$(nm -D --undefined-only "$TLSMOD" | awk '$2 ~ /^mh_/ {print $2}')
tls_def=$(nm -D --defined-only "$TLSMOD" | awk '$3 ~ /^mh_fsutil|^mh_error/ {print $3}' | tr '\n' ' ')
is "$tls_def" "" "the TLS module carries no copy of the core's fsutil/error"
bin_def=$(nm -D --defined-only "$MAILHOOK" | awk '{print $3}')
missing=""; for s in $tls_undef; do printf '%s\n' "$bin_def" | grep -qx "$s" || missing="$missing $s"; done
is "$missing" "" "every mh_* it calls is exported by the binary ($(echo $tls_undef))"

out=$("$MAILHOOK" -e "$MAPS" 2>&1); rc=$?
is "$rc" 0 "mailhook -e runs"
is "$out" "" "start-up maps neither OpenSSL nor the TLS module"

mkdir -p "$T/rules"
cat > "$T/rules/probe.lua" <<LUA
on("probe", function(ev)
  assert(mh.enqueue { to = "ops@example.com", subject = "probe", text = "x" })
  $MAPS
end)
LUA
write_conf "$T/hook.conf" enabled=true server=127.0.0.1 port=25 from=pbx@example.com rules="$T/rules"
out=$(MAILHOOK_SPOOL=$T/spool "$MAILHOOK" -c "$T/hook.conf" hook probe 2>&1); rc=$?
is "$rc" 0 "hook runs its rule and enqueues"
is "$out" "" "a hook that enqueued maps neither OpenSSL nor the TLS module"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 1 "and its message is queued"

# A real TLS session, and what it mapped.
make_certs "$T/certs" || exit 1
start_smtpd P --tls implicit --cert "$T/certs/server.crt" --key "$T/certs/server.key" || exit 1
write_conf "$T/tls.conf" enabled=true from=mailhook@example.org server=127.0.0.1 port="$P" tls=implicit \
  tls_ca_file="$T/certs/ca.crt" connect_timeout=5 command_timeout=5
mh_test "$T/tls.conf"
is "$RC" 0 "mailhook test over implicit TLS passes (the module was loaded)"
ilike "$OUT" "TLSv1\.[23]" "and reports the TLS version"

# An install (DESTDIR staging, moved prefix) carries its module; a copy of the binary without its
# module fails at the tls stage, naming the module, and still runs everything else.
# (tests/lib/tap.sh stage_install_build: the build's own PREFIX, staged, then moved; the
# binary, its module and the Lua module installed as built, never relinked)
sum_before=$(cksum "$BUILD/lua/mailhook/core.so" "$BUILD/mailhook" "$BUILD/instpaths.stamp" 2>/dev/null)
stage_install_build "$T/stage" install >"$T/make.out" 2>&1
ok $? "make install DESTDIR=..."
is "$(cksum "$BUILD/lua/mailhook/core.so" "$BUILD/mailhook" "$BUILD/instpaths.stamp" 2>/dev/null)" "$sum_before" \
  "the install changed nothing of this build (a sanitizer build stays one)"
mv "$STAGED" "$T/moved"
ok "$([ -f "$T/moved/lib/mailhook/mailhook-tls.so" ]; echo $?)" "the module is installed in PREFIX/lib/mailhook"
MAILHOOK_SPOOL=$T/spool2 timeout 60 "$T/moved/bin/mailhook" -c "$T/tls.conf" test >"$T/inst.out" 2>&1
is "$?" 0 "the installed binary (moved prefix) finds its module and passes the TLS test"

mkdir -p "$T/bare/build"
cp "$MAILHOOK" "$T/bare/build/mailhook"
ln -s "$ROOT/lua" "$T/bare/lua"
ln -s "$ROOT/scripts" "$T/bare/scripts"
out=$("$T/bare/build/mailhook" -e 'print("runs")' 2>&1)
is "$out" "runs" "a binary without its TLS module starts"
MAILHOOK_SPOOL=$T/spool3 timeout 60 "$T/bare/build/mailhook" -c "$T/tls.conf" test >"$T/bare.out" 2>&1; rc=$?
if [ -e /usr/local/lib/mailhook/mailhook-tls.so ]; then
  ok 0 "# SKIP a module installed in /usr/local/lib/mailhook (the default PREFIX) is found by any copy"
  ok 0 "# SKIP same"
  ok 0 "# SKIP same"
else
  is "$rc" 1 "without its module, the TLS test fails"
  ilike "$(cat "$T/bare.out")" "stage[: ]+tls" "at the tls stage"
  like "$(cat "$T/bare.out")" "TLS module mailhook-tls\.so was not found" "naming the missing module"
fi

done_testing
