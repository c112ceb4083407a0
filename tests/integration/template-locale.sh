# A template's {{#each}} over a map walks its string keys in byte order whatever
# the locale: Lua's < on strings is strcoll(3), so a rule that called
# os.setlocale (for its own os.date, a sort of names) reordered every map a
# template walked.  Shown with a locale that collates otherwise (en_US.UTF-8:
# "a" before "B", "_" ignored), compiled here with localedef into $T (LOCPATH:
# the machine's locales are not touched); skipped where localedef or its
# sources are missing (Debian's locales package holds them).
. "$ROOT/tests/lib/tap.sh"

if ! command -v localedef >/dev/null 2>&1 || [ ! -f /usr/share/i18n/locales/en_US ]; then
  ok 0 "# SKIP no localedef or no locale sources (/usr/share/i18n/locales) to build en_US.UTF-8 from"
  done_testing; exit 0
fi
mkdir -p "$T/locales"
localedef -i en_US -f UTF-8 "$T/locales/en_US.UTF-8" >"$T/localedef.log" 2>&1
[ -d "$T/locales/en_US.UTF-8" ] || { ok 0 "# SKIP localedef failed: $(head -c 200 "$T/localedef.log")"; done_testing; exit 0; }

out=$(LOCPATH="$T/locales" "$MAILHOOK" -e '
  local mh = require "mailhook"
  local r = mh.template("{{#each m}}{{@key}} {{/each}}")
  local m = { a = 1, B = 1, _x = 1, b = 1, A = 1 }
  print(assert(os.setlocale("en_US.UTF-8", "collate")))
  print(("a" < "B") and "strcoll: a < B" or "strcoll: B < a")   -- the locale does collate otherwise
  io.write(r { m = m }, "\n")
  os.setlocale("C", "collate")
  io.write(r { m = m }, "\n")' 2>&1)
is "$(printf '%s\n' "$out" | sed -n 1,2p | tr '\n' '|')" "en_US.UTF-8|strcoll: a < B|" \
   "the locale is set, and its collation puts a before B"
is "$(printf '%s\n' "$out" | sed -n 3p)" "A B _x a b " "under en_US.UTF-8: the keys in byte order"
is "$(printf '%s\n' "$out" | sed -n 4p)" "A B _x a b " "under C: the same"
done_testing
