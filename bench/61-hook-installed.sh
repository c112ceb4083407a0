# `mailhook hook alarm ...` of an installed binary (`make install PREFIX=`),
# with the precompiled modules `make install` puts in PREFIX/lib/mailhook/luac
# next to the same install without them (every module parsed from source),
# run alternately, pinned to one CPU, median of 100 each.  Same rule and mail
# as 60-hook.sh, enqueued into a scratch spool; then the instructions of one
# run of each under callgrind.
. "$(dirname "$0")/lib.sh"
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
make -C "$ROOT" -s --no-print-directory -o "$BUILD/mailhook" BUILD="$BUILD" PREFIX="$T/with" install >/dev/null 2>&1 \
  || { echo "   (make install failed)"; exit 1; }
cp -R "$T/with" "$T/without"
rm -rf "$T/without/lib/mailhook/luac"
hook_setup "$T" 9
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
for v in with without; do
  "$T/$v/bin/mailhook" hook alarm severity=major source=ups1 message=on-battery || echo "   ($v: hook failed)"
done
[ "$(ls "$T/spool/pickup" | grep -c '\.eml$')" = 2 ] || echo "   (the hooks did not queue: figures not meaningful)"
read -r a b < <(alternate 100 "$T/with/bin/mailhook" hook alarm severity=major source=ups1 message=on-battery -- \
                               "$T/without/bin/mailhook" hook alarm severity=major source=ups1 message=on-battery)
echo "installed hook, precompiled modules (PREFIX/lib/mailhook/luac)  $a ms"
echo "installed hook, sources parsed (no luac)                        $b ms"
/usr/bin/python3 -c 'import sys; a, b = map(float, sys.argv[1:]); print("ratio    precompiled / parsed = %.2f" % (a / b))' "$a" "$b"
# instructions of one run each (callgrind), steadier than wall time on a busy machine
if command -v valgrind >/dev/null; then
  for v in with without; do
    n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$T/$v/bin/mailhook" hook alarm severity=major \
          source=ups1 message=on-battery 2>&1 | sed -n 's/.*Collected : *//p')
    echo "instructions of one installed hook run, $v precompiled modules: $n"
  done
fi
