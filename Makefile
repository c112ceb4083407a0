# mailhook — one GNU Makefile.  make · make test · make run · make bench · make asan · make install
#
# Knobs: CC, CFLAGS, LDFLAGS, PREFIX, BUILD, SANITIZER (e.g. address,undefined).
# The C core (runtime/*.c but l_*.c and main.c) never includes lua.h; the Lua
# bindings are runtime/l_*.c, registered automatically from their file names.

CC        ?= cc
PREFIX    ?= /usr/local
BUILD     ?= build
CFLAGS    ?= -O2 -g
SANITIZER ?=
PKGS      := lua5.4 libuv openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# OpenSSL is linked statically by default: loading and relocating the shared
# libcrypto doubled the start-up of every `mailhook hook` (bench/10-startup.sh).
# The price: rebuild after an OpenSSL security update, or build OPENSSL_STATIC=0.
OPENSSL_STATIC ?= 1
ifeq ($(OPENSSL_STATIC),1)
SSL_LIBS := -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic
else
SSL_LIBS := -lssl -lcrypto
endif
PKG_LIBS   := $(shell pkg-config --libs lua5.4 libuv 2>/dev/null) $(SSL_LIBS) -ldl -lpthread

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -Iruntime -I$(BUILD) -MMD -MP \
              -DMH_PREFIX='"$(PREFIX)"'
ALL_LDFLAGS := $(LDFLAGS)
ifneq ($(SANITIZER),)
ALL_CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZER)
endif
LIBS := $(PKG_LIBS) -lreadline -lm

CORE_SRC := $(filter-out runtime/l_%.c runtime/main.c runtime/drop.c,$(wildcard runtime/*.c))
BIND_SRC := $(wildcard runtime/l_*.c)
CORE_OBJ := $(CORE_SRC:runtime/%.c=$(BUILD)/obj/%.o)
BIND_OBJ := $(BIND_SRC:runtime/%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/main.o
UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
# lua/ precompiled beside the binary: loaded instead of parsed when it still
# matches the source (runtime/main.c, bc_searcher; scripts/build-luac).
LUA_SRC  := $(shell find lua -name '*.lua')
LUAC_OUT := $(LUA_SRC:lua/%.lua=$(BUILD)/luac/%.luac)

.PHONY: all deps test run bench asan valgrind fuzz install uninstall clean peers

all: $(BUILD)/mailhook $(BUILD)/mailhook-drop $(BUILD)/libmailhook.a $(UNIT_BIN) $(LUAC_OUT)

# The list of binding modules, generated so that adding runtime/l_foo.c is enough.
$(BUILD)/l_modules.h: $(BIND_SRC) Makefile
	@mkdir -p $(@D)
	@printf '/* generated from runtime/l_*.c */\n' > $@.tmp
	@for f in $(sort $(filter-out l_core,$(BIND_SRC:runtime/%.c=%))); do echo "MH_MODULE($$f)" >> $@.tmp; done
	@mv $@.tmp $@

$(BIND_OBJ) $(MAIN_OBJ): $(BUILD)/l_modules.h

$(BUILD)/obj/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Core only: what the unit tests, fuzzers and embedders link without Lua.
$(BUILD)/libmhcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Everything an embedding host needs (core + bindings), see runtime/mailhook.h.
$(BUILD)/libmailhook.a: $(CORE_OBJ) $(BIND_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mailhook: $(MAIN_OBJ) $(BIND_OBJ) $(CORE_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The setgid drop program of unprivileged submission (runtime/drop.c, docs/sendmail.md):
# libc only, no Lua, its spool and size limit compiled in.
DROP_SPOOL ?= $(PREFIX)/var/spool/mailhook
DROP_GROUP ?= mailhook
$(BUILD)/mailhook-drop: runtime/drop.c runtime/maildrop.h Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMH_DROP_SPOOL='"$(DROP_SPOOL)"' $(ALL_LDFLAGS) -o $@ runtime/drop.c

$(BUILD)/luac/%.luac: lua/%.lua $(BUILD)/mailhook scripts/build-luac
	@mkdir -p $(@D)
	@ASAN_OPTIONS=detect_leaks=0 $(BUILD)/mailhook scripts/build-luac $< $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(BUILD)/libmhcore.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMH_TESTS -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmhcore.a $(LIBS)

deps:
	@scripts/deps

# The whole TAP suite: unit (C), lua, integration (real SMTP peers started by the tests).
PROVE_JOBS ?= 2
TEST_FILES = $(wildcard tests/unit/test-*.c tests/lua/test-*.lua tests/integration/*.sh)
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory fuzz-smoke
	prove -j$(PROVE_JOBS) --exec tests/run-one $(TEST_FILES)

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZER=address,undefined CFLAGS="-O1 -g" test-built

# The suite against an already configured BUILD (used by asan).
test-built: deps
	@$(MAKE) --no-print-directory all
	MAILHOOK_BUILD=$(BUILD) ASAN_OPTIONS=detect_leaks=1 prove -j$(PROVE_JOBS) --exec tests/run-one $(TEST_FILES)

valgrind: all
	@for t in $(UNIT_BIN); do valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 $$t >/dev/null || exit 1; done; echo "valgrind: unit tests clean"

# Fuzzers (clang libFuzzer): bounded runs; fuzz-smoke is the few seconds make test spends.
FUZZ_SECONDS ?= 60
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
build-fuzz/%: tests/fuzz/%.c $(CORE_SRC)
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) -Iruntime -o $@ $< $(CORE_SRC) $(PKG_LIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do echo "== $$f ($(FUZZ_SECONDS)s)"; $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 2>&1 | tail -2 || exit 1; done
fuzz-smoke: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do $$f -max_total_time=3 >build-fuzz/$$(basename $$f).log 2>&1 || { tail -30 build-fuzz/$$(basename $$f).log; exit 1; }; done

run: deps all
	@scripts/run-demo

bench: deps all
	@scripts/bench

# The precompiled modules go to PREFIX/lib/mailhook/luac, where the installed
# binary looks (runtime/main.c find_paths); used only while they match the
# installed sources, like BUILD/luac in the build tree.
install: $(BUILD)/mailhook $(LUAC_OUT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mailhook/lua/mailhook $(DESTDIR)$(PREFIX)/share/mailhook/scripts \
	           $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/etc $(DESTDIR)$(PREFIX)/var/spool/mailhook \
	           $(DESTDIR)$(PREFIX)/lib/mailhook/luac
	install -m 0755 $(BUILD)/mailhook $(DESTDIR)$(PREFIX)/bin/mailhook
	cp -R lua/mailhook/. $(DESTDIR)$(PREFIX)/share/mailhook/lua/mailhook/
	cp -R $(BUILD)/luac/. $(DESTDIR)$(PREFIX)/lib/mailhook/luac/
	cp scripts/*.lua $(DESTDIR)$(PREFIX)/share/mailhook/scripts/ 2>/dev/null || true
	-install -m 0644 $(BUILD)/libmailhook.a $(DESTDIR)$(PREFIX)/lib/ 2>/dev/null
	-install -m 0644 runtime/mailhook.h $(DESTDIR)$(PREFIX)/include/ 2>/dev/null

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/mailhook $(DESTDIR)$(PREFIX)/share/mailhook $(DESTDIR)$(PREFIX)/lib/mailhook

clean:
	rm -rf build build-asan build-fuzz

-include $(wildcard $(BUILD)/obj/*.d)
