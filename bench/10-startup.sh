# Start-up: `mailhook -e ''` next to `lua5.4 -e ''`, alternately, pinned to one CPU,
# median of 300 runs each (with their quartiles and the load), then the instructions
# of one run of each (callgrind: the same however loaded the machine is).
# Goal: ratio <= 1.5 (issue 16).
. "$(dirname "$0")/lib.sh"
ratio() { /usr/bin/python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
res=$(alternate_spread 300 mh "$MAILHOOK" -e '' -- lua lua5.4 -e '')
read -r _ mh mq1 mq3 < <(grep '^mh ' <<<"$res"); read -r _ lua lq1 lq3 < <(grep '^lua ' <<<"$res")
echo "startup  mailhook -e ''  ${mh} ms (quartiles ${mq1}-${mq3})   lua5.4 -e ''  ${lua} ms (quartiles ${lq1}-${lq3})   ratio $(ratio "$mh" "$lua")  (goal <= 1.5)   $(grep '^load' <<<"$res")"
read -r mh2 lua2 < <(alternate 300 "$MAILHOOK" -e 'require "mailhook"' -- lua5.4 -e '')
echo "startup  mailhook -e 'require \"mailhook\"'  ${mh2} ms   ratio $(ratio "$mh2" "$lua2")"
a=$(instructions "$MAILHOOK" -e ''); b=$(instructions lua5.4 -e '')
[ "$a" != - ] && echo "startup  instructions: mailhook -e '' $a, lua5.4 -e '' $b, ratio $(ratio "$a" "$b")"
