# make OPENSSL_STATIC=1: the TLS module linked with OpenSSL's static libraries, from
# `pkg-config --static` (Debian 13's libcrypto.a needs zlib and zstd too), loads no shared
# OpenSSL and serves a real TLS session. Built into the test's own folder: only the module
# (tls.c) is compiled, the binary under test is reused beside it.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

S=$T/static
make -s --no-print-directory -C "$ROOT" BUILD="$S" OPENSSL_STATIC=1 "$S/mailhook-tls.so" >"$T/make.out" 2>&1
rc=$?
is "$rc" 0 "make OPENSSL_STATIC=1 links the TLS module"
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/make.out" | tail -20
grep -q -- '-l:libcrypto.a' "$S/link-line"; ok $? "with libcrypto.a, as pkg-config --static gives it"
for w in $(pkg-config --static --libs-only-l libcrypto | tr ' ' '\n' | grep -v -e '^-lcrypto$' -e '^$'); do
  grep -q -- " $w\b" "$S/link-line"; ok $? "and what libcrypto.a needs: $w"
done
deps=$(LD_TRACE_LOADED_OBJECTS=1 /lib64/ld-linux-x86-64.so.2 "$S/mailhook-tls.so" 2>&1 || true)
unlike "$deps" "libssl|libcrypto" "the module needs no shared OpenSSL"

cp "$MAILHOOK" "$S/mailhook"          # the module is found beside the binary,
ln -s "$ROOT/lua" "$T/lua"             # and the Lua modules above it, as in a build tree
ln -s "$ROOT/scripts" "$T/scripts"
make_certs "$T/certs" || exit 1
start_smtpd P --tls implicit --cert "$T/certs/server.crt" --key "$T/certs/server.key" || exit 1
write_conf "$T/tls.conf" enabled=true from=mailhook@example.org server=127.0.0.1 port="$P" tls=implicit \
  tls_ca_file="$T/certs/ca.crt" connect_timeout=5 command_timeout=5
MAILHOOK=$S/mailhook mh_test "$T/tls.conf"
is "$RC" 0 "a TLS session through the static module passes"
ilike "$OUT" "TLSv1\.[23]" "and reports the TLS version"
done_testing
