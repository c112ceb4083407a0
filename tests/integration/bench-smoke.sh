# make bench must keep running as the product changes: bench/20-spool.sh and
# bench/30-message.sh built a 200 MB attachment for two days after one attachment
# was limited to 64 MiB, and printed "file 0 MB" and a Python traceback instead
# of figures.  This runs the message builder's bench (four 50 MB attachments,
# ~3 s) and checks that it printed its figure; the figure itself is memory, not
# time: the builder streams the attachments, so its peak RSS stays far under
# the 20 MB goal whatever the machine's load.
. "$ROOT/tests/lib/tap.sh"
out=$(TMPDIR=$T MAILHOOK=$MAILHOOK bash "$ROOT/bench/30-message.sh" 2>&1)
printf '%s\n' "$out" | sed 's/^/# /'
like "$out" "^message  4 x 50 MB attachments -> 2[0-9][0-9] MB message in " "bench/30-message.sh builds its message"
unlike "$out" "Traceback|failed|error" "and prints no failure"
rss=$(printf '%s\n' "$out" | sed -n 's/.*peak RSS \([0-9.]*\) MB .*/\1/p')
case $BUILD in
  *asan*) ok 0 "# SKIP peak RSS under ASan (shadow memory) is not the program's (${rss:-?} MB)" ;;
  *) ok "$(/usr/bin/python3 -c 'import sys; sys.exit(not (0 < float(sys.argv[1]) <= 20))' "${rss:-0}"; echo $?)" \
        "the builder streams 200 MB of attachments in at most 20 MB of memory (peak RSS ${rss:-?} MB)" ;;
esac
is "$(ls "$T" | grep -c '^mh-bench-msg')" 0 "the bench removed its scratch folder"
done_testing
