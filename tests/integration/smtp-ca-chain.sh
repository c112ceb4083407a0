# tls_ca_file with a company PKI's chain (root -> issuing CA -> server), made here with
# the openssl CLI, against aiosmtpd with STARTTLS: the issuing (intermediate) CA in
# tls_ca_file is trusted as it is, whether the server sends its chain or its leaf alone
# (msmtp's tls_trust_file does the same; OpenSSL wanted a self-signed root, refused with
# "unable to get issuer certificate", and the hint said to give the issuing CA, which
# was given); the server's own certificate there pins it.  The host name and the dates
# are still checked; the root given while the server sends no intermediate is refused,
# the hint naming the missing intermediate, the service's log saying the certificate is
# refused (it said "server unreachable"); another CA's root trusts nothing.  Nor does
# "trusted as it is" widen anything: an expired certificate, one for client
# authentication only, and one signed by a server certificate (no CA) are refused
# whether the CA or the certificate itself is in tls_ca_file.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

C=$T/pki
mkdir -p "$C" && cd "$C" || exit 1
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>>"$C/log"; }
ca() {   # ca NAME CN [SIGNER]: a CA certificate, self-signed or signed by SIGNER
  key "$1"
  if [ -z "${3:-}" ]; then
    openssl req -new -x509 -key "$1.key" -out "$1.crt" -days 3650 -subj "/O=mailhook tests/CN=$2" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>>"$C/log"
  else
    printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > "$1.ext"
    openssl req -new -key "$1.key" -subj "/O=mailhook tests/CN=$2" 2>>"$C/log" |
      openssl x509 -req -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 3650 -extfile "$1.ext" \
        -out "$1.crt" 2>>"$C/log"
  fi
}
leaf() {   # leaf NAME SAN SIGNER [DAYS]
  key "$1"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$2" > "$1.ext"
  openssl req -new -key "$1.key" -subj "/CN=${2#DNS:}" 2>>"$C/log" |
    openssl x509 -req -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days "${4:-30}" -extfile "$1.ext" \
      -out "$1.crt" 2>>"$C/log"
}
ca root "Example Corp Root CA" && ca issuing "Example Corp Issuing CA" root && ca other "Someone Else Root CA" &&
  leaf server "DNS:localhost,IP:127.0.0.1" issuing && leaf wrong "DNS:wrong.example.net" issuing &&
  cat server.crt issuing.crt > chain.crt || { echo "Bail out! openssl: $(cat "$C/log")"; exit 1; }
# what tls_ca_file's "trusted as it is" (X509_V_FLAG_PARTIAL_CHAIN) must not widen: a
# certificate for client authentication only, and a server certificate (no CA) that
# signed another one, each given in tls_ca_file
cd "$C" && key client && printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > client.ext &&
  { openssl req -new -key client.key -subj "/CN=localhost" 2>>"$C/log" |
    openssl x509 -req -CA issuing.crt -CAkey issuing.key -CAcreateserial -days 30 -extfile client.ext \
      -out client.crt 2>>"$C/log"; } &&
  leaf byleaf "DNS:localhost,IP:127.0.0.1" server || { echo "Bail out! openssl: $(cat "$C/log")"; exit 1; }
# and one that expired in 2020, signed by the issuing CA (openssl ca: x509 -req cannot
# set past dates)
printf '[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\nnew_certs_dir = .\nserial = ca.serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n' > ca.conf &&
  : > index.txt && echo 01 > ca.serial && key expired &&
  openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>>"$C/log" &&
  openssl ca -batch -config ca.conf -cert issuing.crt -keyfile issuing.key -in expired.csr -out expired.crt \
    -startdate 20200101000000Z -enddate 20200201000000Z -extfile server.ext -notext >>"$C/log" 2>&1 ||
  { echo "Bail out! openssl ca: $(cat "$C/log")"; exit 1; }
cd "$T" || exit 1

export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
BASE=(enabled=true from=mailhook@example.org server=localhost tls=starttls connect_timeout=5
      command_timeout=5 session_deadline=20)
hint() { printf '%s\n' "$OUT" | sed -n 's/^  hint  *//p'; }
# tcase CA SERVED KEY: mailhook test with tls_ca_file=CA against a server sending SERVED
tcase() {
  start_smtpd S --tls starttls --cert "$C/$2.crt" --key "$C/$3.key" || exit 1
  mh_test "$(new_conf port="$S" tls_ca_file="$C/$1.crt")"
  stop_peer S
}

tcase root chain server
is "$RC" 0 "the root in tls_ca_file, the server sends its chain: passes${ERR:+ ($ERR)}"
tcase issuing chain server
is "$RC" 0 "the issuing CA in tls_ca_file, the server sends its chain: passes${ERR:+ ($ERR)}"
like "$OUT" "verified yes \(ok\)" "and the report says verified"
tcase issuing server server
is "$RC" 0 "the issuing CA in tls_ca_file, the server sends its leaf alone: passes${ERR:+ ($ERR)}"
tcase server server server
is "$RC" 0 "the server's own certificate in tls_ca_file: passes${ERR:+ ($ERR)}"

tcase issuing wrong wrong
is "$RC" 1 "the issuing CA trusted, a certificate for another name: refused"
like "$OUT" "verified NO \(hostname mismatch\)" "the host name is still checked"
tcase root server server
is "$RC" 1 "the root in tls_ca_file, the server sends no intermediate: refused"
like "$OUT" "verified NO \(unable to get local issuer certificate\)" "the reason"
like "$(hint)" "the server does not send its intermediate certificate .*add the intermediate, the issuer above, to \`tls_ca_file\`" \
  "the hint names the missing intermediate"
tcase other chain server
is "$RC" 1 "another CA's root in tls_ca_file: refused"
tcase issuing expired expired
is "$RC" 1 "the issuing CA in tls_ca_file, the server's certificate expired: refused"
like "$OUT" "verified NO \(certificate has expired\)" "the dates are still checked"
tcase expired expired expired
is "$RC" 1 "an expired certificate, itself in tls_ca_file: refused (trusted as it is, dates and all)"
like "$OUT" "verified NO \(certificate has expired\)" "the reason"
tcase client client client
is "$RC" 1 "a certificate for client authentication only, itself in tls_ca_file: refused (the purpose is still checked)"
like "$OUT" "verified NO \(unsuitable certificate purpose\)" "the reason"
tcase server byleaf byleaf
is "$RC" 1 "a server certificate (CA:FALSE) in tls_ca_file, the server's signed by it: refused"
like "$OUT" "verified NO \((invalid CA certificate|key usage does not include certificate signing)\)" "the reason"

# the service, the intermediate missing: the queue waits, and the log says the
# certificate was refused, not that the server is unreachable
start_smtpd S --tls starttls --cert "$C/server.crt" --key "$C/server.key" || exit 1
conf=$(new_conf port="$S" tls_ca_file="$C/root.crt" retry_interval=1)
printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject chain >/dev/null
out=$("$MAILHOOK" -c "$conf" flush 2>&1)
like "$out" "delivery: the server's certificate is refused \(tls: localhost:[0-9]+: certificate verification failed: unable to get local issuer" \
  "flush: the log says the certificate is refused, and why"
unlike "$out" "unreachable" "not 'server unreachable'"
is "$(find "$MAILHOOK_SPOOL/pickup" -name '*.eml' | wc -l)" 1 "the message waits in pickup/"
stop_peer S
done_testing
