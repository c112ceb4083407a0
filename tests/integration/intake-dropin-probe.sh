# Drop-ins as real programs write them (docs/spool.md, *Drop-in*): written in place and
# still open for writing (waits, adopted whole once closed), a UTF-8 BOM first (PowerShell
# 5, Notepad: before, `line 1 is not a header` sent it to corrupt/ and sendmail -t found
# no recipient), only headers, an empty file, another user's file (mode 0600), a hard
# link, a symbolic link, a folder, a FIFO (flush must not block), and a 50 MB message.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
peer_start "$PORT" "$T/peer" --size 104857600 || { echo "Bail out! aiosmtpd did not start"; exit 1; }
conf_for "$PORT"
spool_make   # the spool folders
P=$SPOOL/pickup
flush() { timeout 60 "$MAILHOOK" flush >"$T/flush" 2>&1; }
# got RCPT: the message the server got for RCPT (its file), else nothing
got() { grep -l "^To: $1" "$T"/peer/*.eml 2>/dev/null | tail -1; }

# a writer still at work: the file is left alone while it is open for writing
exec 3>"$P/inplace.eml"
printf 'To: inplace@example.net\nSubject: written in place\n\nfirst half\n' >&3
flush
[ -f "$P/inplace.eml" ] && [ -z "$(got inplace@example.net)" ]; ok $? "open for writing: neither adopted nor sent"
like "$(cat "$T/flush")" "pickup/inplace.eml is still being written" "and that is said"
printf 'second half\n' >&3
exec 3>&-
flush
f=$(got inplace@example.net)
ok "$(test -n "$f" && grep -q 'second half' "$f"; echo $?)" "closed: sent whole"

# a UTF-8 BOM first: the same through sendmail -t and as a drop-in
printf '\xef\xbb\xbfTo: bom@example.net\r\nSubject: bom drop-in\r\n\r\nb\r\n' > "$T/bom"; mv "$T/bom" "$P/bom.eml"
printf '\xef\xbb\xbfTo: smbom@example.net\r\nSubject: bom sendmail\r\n\r\nb\r\n' | "$MAILHOOK" sendmail -t -i
is $? 0 "sendmail -t: a BOM before the first field is no obstacle"
# the BOM cut over reads (a pipe read while its writer is at work: `printf '\xef'; sleep;
# printf '\xbb\xbf...'`): each write to a packet pipe (O_DIRECT) is one read of sendmail's,
# so it gets EF, then BB, then the rest, with no timing involved
/usr/bin/python3 -c '
import os, subprocess, sys
r, w = os.pipe2(os.O_DIRECT)
for b in (b"\xef", b"\xbb", b"\xbfTo: split@example.net\r\nSubject: bom split\r\n\r\nb\r\n"):
    os.write(w, b)
os.close(w)
sys.exit(subprocess.run([os.environ["MAILHOOK"], "sendmail", "-t", "-i"], stdin=r).returncode)'
is $? 0 "sendmail -t: a BOM read byte by byte is no obstacle either"
printf 'To: hdr@example.net\nSubject: only headers' > "$T/hdr"; mv "$T/hdr" "$P/hdr.eml"
flush
for r in bom smbom split hdr; do
  f=$(got "$r@example.net")
  ok "$(test -n "$f"; echo $?)" "$r: sent"
done
ok "$(grep -q $'\xef\xbb\xbf' "$(got bom@example.net)"; test $? = 1; echo $?)" "without its BOM"
ok "$(f=$(got split@example.net); test -n "$f" && ! LC_ALL=C grep -q $'[\xef\xbb\xbf]' "$f" && grep -q '^Subject: bom split' "$f"; echo $?)" \
  "the BOM read byte by byte: dropped, the Subject kept as a field"
like "$(grep -m1 '^Subject' "$(got hdr@example.net)")" "only headers" "a file of only headers keeps them"

# what is no message: set aside to corrupt/, each with its reason, and nothing blocks
: > "$P/empty.eml"
printf 'To: l@example.net\n\nl\n' > "$T/l.eml"; ln "$T/l.eml" "$P/hard.eml"; ln -s "$T/l.eml" "$P/sym.eml"
mkdir "$P/dir.eml"; mkfifo "$P/fifo.eml"
reasons=("empty:no header lines" "hard:2 names" "sym:symbolic link" "dir:a folder" "fifo:a FIFO")
if [ "$(id -u)" = 0 ]; then
  printf 'To: other@example.net\n\no\n' > "$T/o"; chown 65534 "$T/o"; chmod 600 "$T/o"; mv "$T/o" "$P/other.eml"
  reasons+=("other:belongs to uid 65534")
fi
flush; is $? 0 "flush returns (a FIFO is never opened)"
for c in "${reasons[@]}"; do
  n=${c%%:*} why=${c#*:}
  ok "$(test -e "$SPOOL/corrupt/$n.eml" -o -L "$SPOOL/corrupt/$n.eml"; echo $?)" "$n: moved to corrupt/"
  like "$(cat "$T/flush")" "pickup/$n.eml moved to corrupt/.*${why//./\\.}" "$n: the log says why ($why)"
done
is "$(ls "$P")" "" "pickup/ is empty"

# 50 MB
{ printf 'To: big@example.net\nSubject: big\n\n'; head -c 50000000 /dev/zero | tr '\0' 'Q' | fold -w 76; } > "$T/big"
mv "$T/big" "$P/big.eml"
flush; like "$(tail -1 "$T/flush")" "1 delivered, 0 deferred, 0 failed, 0 left" "a 50 MB drop-in: delivered"
f=$(got big@example.net)

ok "$(test -n "$f" && [ "$(tr -cd Q < "$f" | wc -c)" = 50000000 ]; echo $?)" "and the server got all of it"
done_testing
