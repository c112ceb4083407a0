# Start-up: `mailhook -e ''` next to `lua5.4 -e ''`, alternately, pinned to one CPU,
# median of 300 runs each.  Goal: ratio <= 2.
. "$(dirname "$0")/lib.sh"
read -r mh lua < <(alternate 300 "$MAILHOOK" -e '' -- lua5.4 -e '')
echo "startup  mailhook -e ''  ${mh} ms   lua5.4 -e ''  ${lua} ms   ratio $(/usr/bin/python3 -c "print('%.2f' % ($mh/$lua))")  (goal <= 2)"
read -r mh2 lua2 < <(alternate 300 "$MAILHOOK" -e 'require "mailhook"' -- lua5.4 -e '')
echo "startup  mailhook -e 'require \"mailhook\"'  ${mh2} ms   ratio $(/usr/bin/python3 -c "print('%.2f' % ($mh2/$lua2))")"
