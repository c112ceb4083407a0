# Message builder memory: build a message with 200 MB of attachments (four of 50 MB: one
# attachment is limited to 64 MiB, docs/spool.md) into a file (msg:save streams them:
# 57 KiB reads, 64 KiB writes) and print the peak RSS
# (/usr/bin/time's %M) next to the runtime's own baseline (`mailhook -e ''`).
# Goal: <= 20 MB.
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench-msg.XXXXXX")
trap 'rm -rf "$dir"' EXIT
for i in 1 2 3 4; do head -c $((50 * 1024 * 1024)) /dev/urandom > "$dir/big$i.wav"; done
base=$(/usr/bin/time -f %M "$MAILHOOK" -e '' 2>&1 >/dev/null | tail -1)
script="local mh = require 'mailhook'
local m = assert(mh.message{from = 'a@example.com', to = 'b@example.com', text = 'voicemail attached',
                            attachments = {'$dir/big1.wav', '$dir/big2.wav',
                                           '$dir/big3.wav', '$dir/big4.wav'}})
assert(m:save('$dir/out.eml'))"
start=$(date +%s%N)
peak=$(/usr/bin/time -f %M "$MAILHOOK" -e "$script" 2>"$dir/err" >/dev/null; tail -1 "$dir/err")
end=$(date +%s%N)
[ -f "$dir/out.eml" ] || { echo "message  building the message failed: $(grep -v '^[[:space:]]' "$dir/err" | head -1)"; exit 0; }
size=$(( $(stat -c %s "$dir/out.eml") / 1048576 ))
/usr/bin/python3 -c "
import sys
peak, base, ns, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = ns / 1e9
print('message  4 x 50 MB attachments -> %d MB message in %.2f s (%.0f MB/s of attachment)  peak RSS %.1f MB'
      '  (baseline mailhook -e \'\' %.1f MB; goal <= 20 MB)' % (size, s, 200 / s, peak / 1024, base / 1024))
" "$peak" "$base" "$((end - start))" "$size"
