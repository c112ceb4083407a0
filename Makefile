# mailhook — one GNU Makefile.  make · make test · make run · make bench · make asan · make install
#
# Knobs: CC, CFLAGS, LDFLAGS, PREFIX, BUILD, SANITIZER (e.g. address,undefined), NDEBUG;
# for `make install`: DESTDIR, SYSCONFDIR, LOCALSTATEDIR, MANDIR, SYSTEMDUNITDIR.
# The C core (runtime/*.c but l_*.c and main.c) never includes lua.h; the Lua
# bindings are runtime/l_*.c, registered automatically from their file names.

CC        ?= cc
PREFIX    ?= /usr/local
# Where the settings (SYSCONFDIR/mailhook/mailhook.conf) and the spool
# (LOCALSTATEDIR/spool/mailhook) go, as autoconf and the FHS have them: under
# PREFIX, except for the distribution's own PREFIX /usr (/etc and /var).
override PREFIX := $(patsubst %/,%,$(PREFIX))
ifeq ($(PREFIX),/usr)
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
else
SYSCONFDIR    ?= $(PREFIX)/etc
LOCALSTATEDIR ?= $(PREFIX)/var
endif
# The account the service runs as (the package's `mailhook`): root becomes it, and
# only it, when the spool belongs to it (runtime/privdrop.h).
SERVICE_USER   ?= mailhook
MANDIR         ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# Where `make install` puts the Lua library, as Debian's lua5.4 looks for it
# (`lua5.4 -e 'print(package.path, package.cpath)'`): PREFIX/share/lua/5.4 for
# the modules; the C module in PREFIX/lib/lua/5.4, or, for PREFIX=/usr, in the
# multiarch folder Debian's lua-* packages use (/usr/lib/x86_64-linux-gnu/lua/5.4).
LUA_LMOD  ?= $(PREFIX)/share/lua/5.4
ifeq ($(PREFIX),/usr)
LUA_CMOD  ?= $(PREFIX)/lib/$(shell $(CC) -print-multiarch)/lua/5.4
else
LUA_CMOD  ?= $(PREFIX)/lib/lua/5.4
endif
BUILD     ?= build
CFLAGS    ?= -O2 -g
SANITIZER ?=
# Every library, its flags and its link line come from pkg-config (Debian's .pc files).
PKGS      := lua5.4 libuv libssl libcrypto readline
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# OpenSSL is linked shared by default, as Debian policy requires of a package: a security
# update of libssl3 then reaches mailhook without a rebuild.  OPENSSL_STATIC=1 links
# libssl.a and libcrypto.a instead, with the rest of `pkg-config --static` for what they
# need (Debian 13's libcrypto.a needs zlib and zstd), those still shared.  Start-up both
# ways on Debian 12 and 13: docs/perf-hook.md.
OPENSSL_STATIC ?= 0
ifeq ($(OPENSSL_STATIC),1)
SSL_LIBS := $(patsubst -lssl,-l:libssl.a,$(patsubst -lcrypto,-l:libcrypto.a,$(shell pkg-config --static --libs libssl libcrypto 2>/dev/null)))
else
SSL_LIBS := $(shell pkg-config --libs libssl libcrypto 2>/dev/null)
endif
PKG_LIBS  := $(shell pkg-config --libs lua5.4 libuv 2>/dev/null) $(SSL_LIBS)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# The knobs LuaRocks passes (rockspecs/) (LUA_INCDIR, LIBUV_INCDIR/LIBDIR, OPENSSL_INCDIR/LIBDIR) are
# honoured when set; pkg-config finds everything otherwise.
LUA_INCDIR ?=
LIBUV_INCDIR ?=
LIBUV_LIBDIR ?=
OPENSSL_INCDIR ?=
OPENSSL_LIBDIR ?=
EXT_CFLAGS := $(addprefix -I,$(LUA_INCDIR) $(LIBUV_INCDIR) $(OPENSSL_INCDIR))
EXT_LDFLAGS := $(addprefix -L,$(LIBUV_LIBDIR) $(OPENSSL_LIBDIR))
# -fPIC: the Lua module links the same objects (see "The Lua C module").
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXT_CFLAGS) $(PKG_CFLAGS) -Iruntime -I$(BUILD) -MMD -MP \
              -fPIC -DMH_PREFIX='"$(PREFIX)"'
# --as-needed: no library the code does not call is loaded at start.
ALL_LDFLAGS := -Wl,-O1 -Wl,--as-needed $(LDFLAGS)
# assert(): the invariants of the state machines (smtp.c, client.c, transport.c,
# the spool) are checked in every build by default, release ones included: a
# broken one means the engine is about to send, settle or remove the wrong
# thing, and stopping there is the safe outcome (the service is restarted, the
# spool is durable: a message is sent at least once, never lost).  They are cheap
# checks on the event path, not in byte loops (bench/40-smtp.sh shows no cost).
# NDEBUG=1 compiles them out.  Each states what must hold, never does work.
NDEBUG ?= 0
ifeq ($(NDEBUG),1)
ALL_CFLAGS += -DNDEBUG
endif
ifneq ($(SANITIZER),)
ALL_CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZER)
endif
LIBS := $(PKG_LIBS) $(shell pkg-config --libs readline 2>/dev/null)
# The binary does not link OpenSSL: its TLS client (tls.c) is BUILD/mailhook-tls.so,
# loaded on the first TLS session (runtime/tls_load.c says why: Debian's libssl and
# libcrypto are BIND_NOW: their relocations were two thirds of the instructions of every start).
# Nor readline: the REPL loads it when it first needs it (runtime/l_repl.c: linking it
# cost 0.49 M instructions of every start).
# Lua and libuv are linked into the binary, from their archives, where installed
# (Debian's liblua5.4-dev ships liblua5.4.a; libuv1-dev ships libuv_a.a on Debian 12,
# none on 13): loading them shared cost every start ~0.4 ms of a ~7 ms hook (two more
# files opened and mapped, ~1,070 relocations, more page faults: docs/perf-hook.md).
# With Lua linked in, the binary exports Lua's API (lua_*, luaL_*, luaopen_*) as
# liblua5.4.so did, so a site's Lua C module (package.cpath) still finds it.
# LUA_UV_STATIC=0 links both shared, as debian/rules does (a security update of either
# then reaches the package without a rebuild).
LUA_UV_STATIC ?= 1
ifeq ($(LUA_UV_STATIC),1)
LUA_ARCHIVE := $(wildcard $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)/liblua5.4.a)
UV_LIBDIR := $(shell pkg-config --variable=libdir libuv 2>/dev/null)
UV_ARCHIVE := $(firstword $(wildcard $(UV_LIBDIR)/libuv_a.a $(UV_LIBDIR)/libuv.a))
endif
# -lm: libm's floor() (l_msg.c) is inlined at -O2 but a call at -O1 (make asan) and -O0 (the deb's noopt)
BIN_LIBS := $(or $(LUA_ARCHIVE),$(shell pkg-config --libs lua5.4 2>/dev/null)) \
            $(or $(UV_ARCHIVE),$(shell pkg-config --libs libuv 2>/dev/null)) \
            $(filter-out -luv,$(shell pkg-config --static --libs libuv 2>/dev/null)) -lm -ldl
ifneq ($(LUA_ARCHIVE),)
BIN_LUA_EXPORTS := -Wl,--export-dynamic-symbol='lua_*' -Wl,--export-dynamic-symbol='luaL_*' \
                   -Wl,--export-dynamic-symbol='luaopen_*'
endif

CORE_SRC := $(filter-out runtime/l_%.c runtime/main.c runtime/tls_load.c runtime/drop.c,$(wildcard runtime/*.c))
BIND_SRC := $(wildcard runtime/l_*.c)
CORE_OBJ := $(CORE_SRC:runtime/%.c=$(BUILD)/obj/%.o)
BIND_OBJ := $(BIND_SRC:runtime/%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/main.o
# The binary's core: tls.c's place taken by its loader.
BIN_CORE_OBJ := $(filter-out $(BUILD)/obj/tls.o $(BUILD)/obj/pwhash.o,$(CORE_OBJ)) $(BUILD)/obj/tls_load.o
TLS_MODULE := $(BUILD)/mailhook-tls.so
# The Lua C module and its objects (see "The Lua C module" below).
LUAMOD      := $(BUILD)/lua/mailhook/core.so
LUAMOD_BIND := $(filter-out runtime/l_repl.c runtime/l_embed.c,$(BIND_SRC))
LUAMOD_OBJ  := $(CORE_SRC:runtime/%.c=$(BUILD)/obj/lualib/%.o) \
               $(filter-out $(BUILD)/obj/lualib/l_core.o,$(LUAMOD_BIND:runtime/%.c=$(BUILD)/obj/lualib/%.o)) \
               $(BUILD)/obj/lualib/l_core.o
LUAMOD_LIBS := $(shell pkg-config --libs libuv libssl libcrypto 2>/dev/null) -lpthread -lm
UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
# lua/ precompiled beside the binary: loaded instead of parsed when it still
# matches the source (runtime/main.c, bc_searcher; scripts/build-luac).
LUA_SRC  := $(shell find lua -name '*.lua')
LUAC_OUT := $(LUA_SRC:lua/%.lua=$(BUILD)/luac/%.luac)
# scripts/*.lua too, into BUILD/luac/scripts/ (runtime/main.c, core.loadscript)
LUAC_OUT += $(patsubst scripts/%.lua,$(BUILD)/luac/scripts/%.luac,$(wildcard scripts/*.lua))
MAN_SRC  := $(wildcard man/*.scd)
MAN_OUT  := $(MAN_SRC:man/%.scd=$(BUILD)/man/%)
# The pages of the MTA's names (sendmail(8), mailq(1), newaliases(1)): installed
# with the links (install-mta-links, install-sendmail), and shipped by mailhook-mta
MTA_MAN_SRC := $(wildcard packaging/*.scd)
MTA_MAN_OUT := $(MTA_MAN_SRC:packaging/%.scd=$(BUILD)/man-mta/%)

.PHONY: all pkg-check FORCE deps deps-check deps-trace test test-fresh test-long run bench asan valgrind fuzz install uninstall clean peers \
        lualib install-lualib

all: pkg-check $(BUILD)/mailhook $(BUILD)/mailhook-drop $(TLS_MODULE) $(BUILD)/libmailhook.a $(UNIT_BIN) $(LUAC_OUT) \
     $(BUILD)/tests/fsync-gate.so $(MAN_OUT) $(MTA_MAN_OUT) $(LUAMOD)

# A clear message instead of missing headers when the -dev packages are not there.
pkg-check:
	@pkg-config --exists $(PKGS) || { echo "make: pkg-config does not find $(PKGS): run scripts/deps (as root), or make deps" >&2; exit 1; }

# The list of binding modules, generated so that adding runtime/l_foo.c is enough.
$(BUILD)/l_modules.h: $(BIND_SRC) Makefile
	@mkdir -p $(@D)
	@printf '/* generated from runtime/l_*.c */\n' > $@.tmp
	@for f in $(sort $(filter-out l_core,$(BIND_SRC:runtime/%.c=%))); do echo "MH_MODULE($$f)" >> $@.tmp; done
	@mv $@.tmp $@

$(BIND_OBJ) $(MAIN_OBJ): $(BUILD)/l_modules.h

$(BUILD)/obj/%.o: runtime/%.c $(BUILD)/obj/.pic
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Made once per build folder: objects older than it predate -fPIC (a build folder
# from before the Lua module) and are remade once.  Never remade itself, so a
# `make install` a test runs on a sanitizer's folder rebuilds nothing.
$(BUILD)/obj/.pic:
	@mkdir -p $(@D)
	@touch $@

# Core only: what the unit tests, fuzzers and embedders link without Lua.
$(BUILD)/libmhcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Everything an embedding host needs (core + bindings), see runtime/mailhook.h.
$(BUILD)/libmailhook.a: $(CORE_OBJ) $(BIND_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The link line, kept in a file that changes only when the line does, so that a
# change of link mode (OPENSSL_STATIC, LDFLAGS) relinks.
BIN_LDFLAGS := -Wl,--export-dynamic-symbol='mh_*' $(BIN_LUA_EXPORTS)
LINK_LINE := $(ALL_LDFLAGS) $(BIN_LDFLAGS) $(LIBS) | $(SSL_LIBS) | $(BIN_LIBS)
$(BUILD)/link-line: FORCE
	@mkdir -p $(@D)
	@echo '$(LINK_LINE)' | cmp -s - $@ 2>/dev/null || echo '$(LINK_LINE)' > $@
FORCE:

# The core's mh_* functions are exported so that the modules it loads (TLS,
# console) use the binary's own copy of what they call (mh_fsutil_read, ...).
$(BUILD)/mailhook: $(MAIN_OBJ) $(BIND_OBJ) $(BIN_CORE_OBJ) $(BUILD)/link-line
	$(CC) $(ALL_LDFLAGS) $(BIN_LDFLAGS) -o $@ $(filter %.o,$^) $(BIN_LIBS)

# The TLS module: tls.c position-independent, with OpenSSL (shared, or its archives
# with OPENSSL_STATIC=1, their symbols kept inside).
$(BUILD)/obj/pic/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -c -o $@ $<
# What tls.c calls of the core (mh_fsutil_read, mh_error, ...) is the binary's own
# copy, exported to it (BIN_LDFLAGS).  The Lua module (core.so) does not load this
# module: it links tls.o and the whole core itself, as a stock lua5.4 exports no mh_*.
$(TLS_MODULE): $(BUILD)/obj/pic/tls.o $(BUILD)/obj/pic/pwhash.o $(BUILD)/link-line
	$(CC) $(ALL_LDFLAGS) -shared -Wl,--exclude-libs,ALL -o $@ $(filter %.o,$^) $(SSL_LIBS)

# The setgid drop program of unprivileged submission (runtime/drop.c, docs/sendmail.md):
# libc only, no Lua, its spool and size limit compiled in.
DROP_SPOOL ?= $(LOCALSTATEDIR)/spool/mailhook
DROP_GROUP ?= mailhook
$(BUILD)/mailhook-drop: runtime/drop.c runtime/maildrop.h Makefile $(BUILD)/instpaths.stamp
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMH_DROP_SPOOL='"$(DROP_SPOOL)"' $(ALL_LDFLAGS) -o $@ runtime/drop.c

# The Lua C module (docs/lua-library.md): BUILD/lua/mailhook/core.so, what
# `require "mailhook.core"` loads in a stock Lua 5.4.  Every object is
# position-independent (ALL_CFLAGS has -fPIC), so the module links the
# binary's objects: PIC cost the binary nothing measurable (callgrind,
# `mailhook -e ''` 2,026,162 instructions non-PIC and 2,028,278 PIC; `hook`
# 5.13 M both; Debian's gcc makes PIE objects anyway).  Its copies in
# BUILD/obj/lualib/ have Lua's API as weak references (runtime/l_core.c says
# why), and l_core its own list of bindings: not the REPL (readline: the
# binary's) nor the C embedding API (it makes its own states).  Linked to the
# shared libuv and OpenSSL and to no Lua library (the interpreter that loads it
# is Lua); only luaopen_mailhook_core exported (runtime/lualib.map).
lualib: $(LUAMOD)

$(BUILD)/obj/lualib/l_modules.h: Makefile $(BIND_SRC)
	@mkdir -p $(@D)
	@printf '/* generated: the bindings of the Lua module */\n' > $@.tmp
	@for f in $(sort $(filter-out l_core,$(LUAMOD_BIND:runtime/%.c=%))); do echo "MH_MODULE($$f)" >> $@.tmp; done
	@mv $@.tmp $@

WEAKEN_LUA = objcopy --wildcard --weaken-symbol='lua_*' --weaken-symbol='luaL_*'
$(BUILD)/obj/lualib/l_core.o: runtime/l_core.c $(BUILD)/obj/lualib/l_modules.h
	$(CC) -I$(BUILD)/obj/lualib $(ALL_CFLAGS) -c -o $@ $<
	@$(WEAKEN_LUA) $@
$(BUILD)/obj/lualib/%.o: $(BUILD)/obj/%.o
	@mkdir -p $(@D)
	@$(WEAKEN_LUA) $< $@

# -z nodelete: never unloaded.  Lua's package library dlcloses a C module with
# the last state that loaded it, but the rules' watchdog thread (l_sched.c)
# lives on in core.so, waiting on a condition variable there: unmapped, it
# would wake in freed memory (tests/lualib/two-states.c).
$(LUAMOD): $(LUAMOD_OBJ) runtime/lualib.map
	@mkdir -p $(@D)
	$(CC) -shared $(ALL_LDFLAGS) $(EXT_LDFLAGS) -Wl,-z,nodelete -Wl,--version-script=runtime/lualib.map -o $@ $(LUAMOD_OBJ) $(LUAMOD_LIBS)

# LuaRocks' install step (rockspecs/mailhook-scm-1.rockspec, build type make):
# the Lua modules into LUADIR and core.so into LIBDIR, the rock tree's folders.
install-lualib: $(LUAMOD)
	@test -n "$(LUADIR)" -a -n "$(LIBDIR)" || { echo "make install-lualib: LUADIR and LIBDIR must be set (LuaRocks sets them)" >&2; exit 1; }
	install -d $(DESTDIR)$(LUADIR)/mailhook $(DESTDIR)$(LIBDIR)/mailhook
	cp -R lua/mailhook/. $(DESTDIR)$(LUADIR)/mailhook/
	install -m 0755 $(LUAMOD) $(DESTDIR)$(LIBDIR)/mailhook/core.so

$(BUILD)/luac/%.luac: lua/%.lua $(BUILD)/mailhook scripts/build-luac
	@mkdir -p $(@D)
	@ASAN_OPTIONS=detect_leaks=0 $(BUILD)/mailhook scripts/build-luac $< $@

$(BUILD)/luac/scripts/%.luac: scripts/%.lua $(BUILD)/mailhook scripts/build-luac
	@mkdir -p $(@D)
	@ASAN_OPTIONS=detect_leaks=0 $(BUILD)/mailhook scripts/build-luac $< $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(BUILD)/libmhcore.a $(BUILD)/link-line
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMH_TESTS -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmhcore.a $(LIBS)

# test-spool-grow counts the reallocs spool.c makes (its own __wrap_realloc)
$(BUILD)/tests/test-spool-grow: tests/unit/test-spool-grow.c tests/unit/tap.h $(BUILD)/libmhcore.a $(BUILD)/link-line
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMH_TESTS -Itests/unit $(ALL_LDFLAGS) -Wl,--wrap=realloc -o $@ $< $(BUILD)/libmhcore.a $(LIBS)

# A test-only LD_PRELOAD library (tests/lib/fsync-gate.c), never sanitized: it is preloaded
# into a child mailhook to hold its fsyncs (tests/lua/test-spool.lua).
$(BUILD)/tests/fsync-gate.so: tests/lib/fsync-gate.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -shared -fPIC -o $@ $<

deps:
	@scripts/deps

# Every package the build and the suite use is named in scripts/deps or pulled in by one
# that is (scripts/deps-check); deps-trace records what they use (tests/deps/RELEASE.list).
deps-check: deps
	@scripts/deps-check
deps-trace: deps
	@scripts/deps-trace

# The whole TAP suite: unit (C), lua, integration (real SMTP peers started by the tests).
# Two files more than the cores: the files wait on peers, timers and browsers for about
# half of their wall time (1,600 s of files, 860 s of CPU), and two more fill it (2 cores,
# quiet: 541 s at -j3, 505 s at -j4, the CPU's floor ~430 s).  The sanitizer run (each
# file 2-3x slower) and CI's two fresh roots at once keep one per core.
NPROC := $(shell nproc 2>/dev/null || echo 2)
PROVE_JOBS ?= $(shell echo $$(($(NPROC) + 2)))
PROVE_FLAGS ?= --timer
# The longest files first (15-60 s each, measured by --timer in CI): with -j2 a long one
# started last keeps one core busy alone at the end (the suite's wall was 40 s above half its sum).
SLOW_TESTS = $(wildcard $(addprefix tests/integration/,deb.sh flush-wait.sh mta-exim.sh console-browser.sh console-hostile.sh install-fhs.sh \
  console-attack.sh console-flowing-but.sh rules-guard-run.sh mta-opensmtpd.sh delivery-faults.sh \
  lualib-install.sh smtp-hostile-text.sh interop-greeting-late.sh console-3am.sh delivery-crash.sh \
  console-outage-live.sh console-login-form.sh spool-hostile.sh sendmail-drop.sh status.sh \
  cli-json.sh delivery-changed.sh interop-auth.sh console-http.sh spool-lock-bounded.sh mta-postfix.sh))
TEST_FILES = $(SLOW_TESTS) $(filter-out $(SLOW_TESTS),$(wildcard tests/unit/test-*.c tests/lua/test-*.lua \
  tests/integration/*.sh))
DEPS_CHECK ?= 1
# The suite must not remake what it tests: a test that rebuilt BUILD/mailhook (an install
# with another PREFIX changing the compiled-in paths) swapped the binary under the tests
# running beside it, which then failed at random.  The build's products are checksummed
# before and after, and a change fails the run, naming them.
SUITE_PRODUCTS = $(BUILD)/mailhook $(TLS_MODULE) $(LUAMOD) $(BUILD)/instpaths.stamp
define run_suite
	@sum=$$(cksum $(SUITE_PRODUCTS)); \
	echo "MAILHOOK_BUILD=$(BUILD) $(1) prove $(PROVE_FLAGS) -j$(PROVE_JOBS) --exec tests/run-one ..."; \
	MAILHOOK_BUILD=$(BUILD) $(1) prove $(PROVE_FLAGS) -j$(PROVE_JOBS) --exec tests/run-one $(TEST_FILES); rc=$$?; \
	if [ "$$(cksum $(SUITE_PRODUCTS))" != "$$sum" ]; then \
	  echo "make: the suite changed this build's own files while it ran (a test rebuilt them):" >&2; \
	  echo "before:" >&2; echo "$$sum" >&2; echo "after:" >&2; cksum $(SUITE_PRODUCTS) >&2; rc=1; fi; \
	exit $$rc
endef


# The build before the suite runs on every core (CI's serial build and fuzz build
# were ~100 s of make test's 10 minutes).
BUILD_JOBS ?= $(NPROC)
test: deps
	@[ "$(DEPS_CHECK)" = 0 ] || scripts/deps-check
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all
	$(call run_suite)

# The fuzzers (ASan builds too) are built and run 3 s each here, not in `make test`:
# their ~30 clang compilations were ~40 s of its 10 minutes (beside the suite they
# slowed its first files by as much: deb.sh 84 s -> 147 s).
asan: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) fuzz-smoke
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZER=address,undefined CFLAGS="-O1 -g" \
	  PROVE_JOBS=$(or $(ASAN_JOBS),$(NPROC)) test-built

# The suite against an already configured BUILD (used by asan).
test-built: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all
	$(call run_suite,ASAN_OPTIONS=detect_leaks=1)

# The slow checks kept out of `make test` (and CI): each fuzzer FUZZ_SECONDS (60 s)
# instead of 3, the delivery crash test with 16 kill points per system call instead
# of 4, the Debian packages built as Debian builds them (optimised, with their
# unit tests) with lintian's verdict (~3 min), the console's queue pages over
# 100,000 messages instead of 20,000, and `mailhook test`'s real 30 s default
# bound waited out (make test checks its value and, lowered, its effect).
test-long: deps all
	@$(MAKE) --no-print-directory fuzz
	MAILHOOK_BUILD=$(BUILD) DELIVERY_CRASH_POINTS=16 prove $(PROVE_FLAGS) --exec tests/run-one tests/integration/delivery-crash.sh
	MAILHOOK_BUILD=$(BUILD) MH_DEB_FULL=1 prove $(PROVE_FLAGS) --exec tests/run-one tests/integration/deb.sh
	MAILHOOK_BUILD=$(BUILD) QUEUE_SCALE_N=100000 prove $(PROVE_FLAGS) --exec tests/run-one tests/integration/console-queue-scale.sh
	MAILHOOK_BUILD=$(BUILD) MH_TEST_BOUNDS_DEFAULT=1 prove $(PROVE_FLAGS) --exec tests/run-one tests/integration/smtp-test-bounds.sh

# `make test` from a clean clone of HEAD in fresh minimal Debian 12 and 13 roots, both at once
# (as root: scripts/fresh-root; FRESH_SUITES="bookworm trixie"). CI runs it after make asan.
test-fresh:
	@.ci/run fresh

valgrind: all
	@for t in $(UNIT_BIN); do valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 $$t >/dev/null || exit 1; done; echo "valgrind: unit tests clean"

# Fuzzers (clang libFuzzer): bounded runs; fuzz-smoke is the few seconds make asan spends.
# The core is compiled once (instrumented, -fsanitize=fuzzer-no-link) and linked into each
# harness; crash reproducers land in FUZZ_BUILD, never in the checkout.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ := $(CORE_SRC:runtime/%.c=$(FUZZ_BUILD)/obj/%.o)
.SECONDARY: $(FUZZ_OBJ)
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=address,undefined $(PKG_CFLAGS) -Iruntime -MMD -MP
$(FUZZ_BUILD)/obj/%.o: runtime/%.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do echo "== $$f ($(FUZZ_SECONDS)s)"; $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 -artifact_prefix=$(FUZZ_BUILD)/ 2>&1 | tail -2 || exit 1; done
fuzz-smoke: $(FUZZ_BIN)
	@printf '%s\n' $(FUZZ_BIN) | xargs -P $(PROVE_JOBS) -I{} sh -c \
	  '{} -max_total_time=3 -artifact_prefix=$(FUZZ_BUILD)/ >{}.log 2>&1 || { tail -30 {}.log; echo "fuzz-smoke: {} failed"; exit 1; }'

run: deps all
	@scripts/run-demo

bench: deps all
	@scripts/bench

# The precompiled modules go to PREFIX/lib/mailhook/luac, where the installed
# binary looks (runtime/main.c find_paths); used only while they match the
# installed sources, like BUILD/luac in the build tree.  Every step fails
# loudly: an install that half happened must not look like one that did.
# The settings file is installed only when there is none (never over an
# administrator's); the spool folder is made, never emptied.
INSTALLABLE := $(BUILD)/mailhook $(BUILD)/mailhook-drop $(TLS_MODULE) $(BUILD)/libmailhook.a $(LUAC_OUT) $(MAN_OUT) $(MTA_MAN_OUT) \
               $(BUILD)/mailhook.service $(LUAMOD)
installable: $(INSTALLABLE)
install: $(INSTALLABLE)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mailhook/lua $(DESTDIR)$(PREFIX)/share/mailhook/scripts \
	           $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/mailhook/luac \
	           $(DESTDIR)$(SYSCONFDIR)/mailhook $(DESTDIR)$(SYSTEMDUNITDIR) \
	           $(addprefix $(DESTDIR)$(MANDIR)/man,1 3 5 8)
	install -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/spool/mailhook
	install -m 0755 $(BUILD)/mailhook $(DESTDIR)$(PREFIX)/bin/mailhook
	install -m 0644 $(TLS_MODULE) $(DESTDIR)$(PREFIX)/lib/mailhook/
	rm -f $(DESTDIR)$(PREFIX)/lib/mailhook/mailhook-http.so   # an older install's console module: nothing loads it now
	cp -R lua/mailhook $(DESTDIR)$(PREFIX)/share/mailhook/lua/
	cp -R $(BUILD)/luac/. $(DESTDIR)$(PREFIX)/lib/mailhook/luac/
	install -m 0644 scripts/*.lua $(DESTDIR)$(PREFIX)/share/mailhook/scripts/
	install -m 0644 $(BUILD)/libmailhook.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 runtime/mailhook.h $(DESTDIR)$(PREFIX)/include/
	for m in $(MAN_OUT); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; done
	install -m 0644 $(BUILD)/mailhook.service $(DESTDIR)$(SYSTEMDUNITDIR)/mailhook.service
	test -e $(DESTDIR)$(SYSCONFDIR)/mailhook/mailhook.conf || \
	  install -m 0644 packaging/mailhook.conf $(DESTDIR)$(SYSCONFDIR)/mailhook/mailhook.conf
	install -d $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BUILD)/mailhook-drop $(DESTDIR)$(PREFIX)/sbin/mailhook-drop
	@$(MAKE) --no-print-directory install-service-user
	@$(MAKE) --no-print-directory install-drop-perms
	@$(MAKE) --no-print-directory install-mta-links
	install -d $(DESTDIR)$(PREFIX)/share/mailhook/console
	cp -R console/. $(DESTDIR)$(PREFIX)/share/mailhook/console/
	@# the Lua library (docs/lua-library.md): where lua5.4 looks with no LUA_PATH/LUA_CPATH;
	@# the modules are the binary's (a relative link), core.so beside them
	install -d $(DESTDIR)$(LUA_LMOD) $(DESTDIR)$(LUA_CMOD)/mailhook
	ln -sfn "$$(realpath -m --relative-to=$(DESTDIR)$(LUA_LMOD) $(DESTDIR)$(PREFIX)/share/mailhook/lua/mailhook)" \
	        $(DESTDIR)$(LUA_LMOD)/mailhook
	install -m 0755 $(LUAMOD) $(DESTDIR)$(LUA_CMOD)/mailhook/core.so

# The service's account (mailhook.service: User=$(SERVICE_USER)), for an install
# as root without DESTDIR (a package's postinst does this itself): the unit could
# not start (no such user, 217/USER), or, the user made by hand, met a spool
# still root's ("Permission denied").  CREATE_USER=1 makes the account when it
# is missing (useradd --system) and gives it the spool and the settings'
# folder (the console's Update saves there by rename), as the package's
# postinst does; without it, install says what to run when the account is
# missing or does not own the spool.
CREATE_USER ?= 0
install-service-user:
	@if [ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ]; then exit 0; fi; \
	u='$(SERVICE_USER)'; sp='$(LOCALSTATEDIR)/spool/mailhook'; \
	if [ "$(CREATE_USER)" = 1 ]; then \
	  if ! getent passwd "$$u" >/dev/null; then \
	    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$$u" \
	      || exit 1; echo "make install: user $$u created"; \
	  fi; \
	  chown -R "$$u:" "$$sp" && chown "$$u:" '$(SYSCONFDIR)/mailhook' '$(SYSCONFDIR)/mailhook/mailhook.conf' || exit 1; \
	  echo "make install: the spool and $(SYSCONFDIR)/mailhook are $$u's (the service's user)"; \
	elif ! getent passwd "$$u" >/dev/null || [ "$$(stat -c %U "$$sp")" != "$$u" ]; then \
	  echo "make install: mailhook.service runs as '$$u': make install CREATE_USER=1 creates that user when" \
	       "missing and gives it $$sp (or: useradd --system $$u; chown -R $$u: $$sp $(SYSCONFDIR)/mailhook)"; \
	fi

# Unprivileged submission (docs/sendmail.md): mailhook-drop setgid to DROP_GROUP,
# SPOOL/maildrop/ mode 1730 of that group and of the spool's owner (the service
# removes what it adopts), and the spool folder 0710 of the group so the
# program can reach maildrop/.  The group is made only when asked
# (CREATE_GROUP=1: groupadd --system); when it is missing, or when install
# cannot change owners (a packager's DESTDIR as a user), the program stays
# without setgid and install says so: then only root and the service's user
# submit (the package's postinst does the rest with dpkg-statoverride).
DROP_GROUP   ?= mailhook
CREATE_GROUP ?= 0
# auto: set the group and modes unless installing into a DESTDIR stage (a
# package's: its postinst does it); yes / no: always / never.
DROP_PERMS   ?= auto
DROP_BIN      = $(DESTDIR)$(PREFIX)/sbin/mailhook-drop
DROP_SPOOLDIR = $(DESTDIR)$(LOCALSTATEDIR)/spool/mailhook
install-drop-perms:
	@if [ "$(DROP_PERMS)" = no ] || { [ "$(DROP_PERMS)" = auto ] && [ -n "$(DESTDIR)" ]; }; then \
	  echo "make install: mailhook-drop installed without setgid (DESTDIR: the package sets its group)"; exit 0; fi; \
	if [ "$(CREATE_GROUP)" = 1 ] && ! getent group '$(DROP_GROUP)' >/dev/null; then \
	  groupadd --system '$(DROP_GROUP)' || exit 1; echo "make install: group $(DROP_GROUP) created"; fi; \
	if getent group '$(DROP_GROUP)' >/dev/null && chgrp '$(DROP_GROUP)' '$(DROP_BIN)' 2>/dev/null; then \
	  chmod 2755 '$(DROP_BIN)' && \
	  install -d -m 1730 -g '$(DROP_GROUP)' '$(DROP_SPOOLDIR)/maildrop' && \
	  chmod 1730 '$(DROP_SPOOLDIR)/maildrop' && \
	  chown "$$(stat -c %u '$(DROP_SPOOLDIR)')" '$(DROP_SPOOLDIR)/maildrop' && \
	  chgrp '$(DROP_GROUP)' '$(DROP_SPOOLDIR)' && chmod 0710 '$(DROP_SPOOLDIR)' || exit 1; \
	  echo "make install: $(PREFIX)/sbin/mailhook-drop setgid $(DROP_GROUP): every local user can send"; \
	else \
	  echo "make install: no group '$(DROP_GROUP)' (or not root): mailhook-drop installed without setgid," \
	       "so only root and the spool's owner can send; CREATE_GROUP=1 makes the group (docs/sendmail.md)"; \
	fi

# The names of an MTA (docs/sendmail.md): PREFIX/sbin/sendmail (and PREFIX/lib/sendmail,
# the old path mdadm and others still use), PREFIX/bin/mailq and
# PREFIX/bin/newaliases, symbolic links to the mailhook binary (argv[0] says
# which it is).  Never over another mail system's files: a name that exists and
# is not already our link is refused, unless FORCE_SENDMAIL=1 (then replaced).
FORCE_SENDMAIL ?= 0
MTA_LINKS := sbin/sendmail:../bin/mailhook lib/sendmail:../sbin/sendmail bin/mailq:mailhook bin/newaliases:mailhook
# `make install` makes these links too, but only where every name is free (or
# already mailhook's link): when one of them is another mail system's, or, for
# an install without DESTDIR, when /usr/sbin/sendmail or /usr/lib/sendmail is
# another's (PREFIX/sbin/sendmail would win over it in root's PATH), it makes
# none and says so: never over an existing MTA's files unless asked, with
# `make install-sendmail`.  SENDMAIL_LINKS=no leaves them out (the Debian
# package: mailhook-mta ships them).
SENDMAIL_LINKS ?= auto
install-mta-links:
	@if [ "$(SENDMAIL_LINKS)" = no ]; then exit 0; fi; \
	me=$$(readlink -f '$(DESTDIR)$(PREFIX)/bin/mailhook'); other=; \
	for l in $(MTA_LINKS); do \
	  name=$(DESTDIR)$(PREFIX)/$${l%%:*}; to=$${l#*:}; \
	  if [ -e "$$name" ] || [ -L "$$name" ]; then \
	    [ -L "$$name" ] && [ "$$(readlink "$$name")" = "$$to" ] || other="$$other $$name"; fi; \
	done; \
	if [ -z "$(DESTDIR)" ]; then for sys in /usr/sbin/sendmail /usr/lib/sendmail; do \
	  if { [ -e "$$sys" ] || [ -L "$$sys" ]; } && [ "$$(readlink -f "$$sys")" != "$$me" ]; then other="$$other $$sys"; fi; \
	done; fi; \
	if [ -n "$$other" ]; then \
	  echo "make install: another mail system's$$other: no sendmail, mailq, newaliases links" \
	       "(make install-sendmail makes them, FORCE_SENDMAIL=1 over its files: docs/sendmail.md)"; exit 0; fi; \
	for l in $(MTA_LINKS); do \
	  name=$(DESTDIR)$(PREFIX)/$${l%%:*}; to=$${l#*:}; \
	  [ -L "$$name" ] && continue; \
	  install -d "$$(dirname "$$name")" && ln -s "$$to" "$$name" || exit 1; \
	  echo "make install: $$name -> $$to"; \
	done; \
	$(MAKE) --no-print-directory install-mta-man

install-sendmail: install
	@for l in $(MTA_LINKS); do \
	  name=$(DESTDIR)$(PREFIX)/$${l%%:*}; to=$${l#*:}; \
	  if [ -e "$$name" ] || [ -L "$$name" ]; then \
	    if [ -L "$$name" ] && [ "$$(readlink "$$name")" = "$$to" ]; then continue; fi; \
	    if [ "$(FORCE_SENDMAIL)" != 1 ]; then \
	      echo "make install-sendmail: $$name exists and is not mailhook's (another mail system?):" \
	           "refusing to replace it (FORCE_SENDMAIL=1 replaces it)" >&2; exit 1; fi; \
	  fi; \
	  install -d "$$(dirname "$$name")" && ln -sfn "$$to" "$$name" || exit 1; \
	  echo "make install-sendmail: $$name -> $$to"; \
	done
	@$(MAKE) --no-print-directory install-mta-man

# The manual pages of the links' names (sendmail(8), mailq(1), newaliases(1): an
# admin who got the links types `man sendmail`), installed wherever the links are
# made, never without them (another mail system owns those pages then).
install-mta-man: $(MTA_MAN_OUT)
	@for m in $(MTA_MAN_OUT); do \
	  d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
	  install -d "$$d" && install -m 0644 "$$m" "$$d/" || exit 1; \
	done

# Only our pages go: those with our links, and the same bytes as ours.
uninstall-mta-man:
	@for m in $(MTA_MAN_OUT); do \
	  f=$(DESTDIR)$(MANDIR)/man$${m##*.}/$$(basename "$$m"); \
	  if [ -f "$$f" ] && [ -f "$$m" ] && cmp -s "$$m" "$$f"; then rm -f "$$f"; fi; \
	done

# Only our own links go, and the pages installed with them.
uninstall-sendmail:
	@$(MAKE) --no-print-directory uninstall-mta-man
	@for l in $(MTA_LINKS); do \
	  name=$(DESTDIR)$(PREFIX)/$${l%%:*}; to=$${l#*:}; \
	  if [ -L "$$name" ] && [ "$$(readlink "$$name")" = "$$to" ]; then rm -f "$$name"; fi; \
	done

# What install put there, but the settings and the spool (they hold the site's data).
uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/mailhook $(DESTDIR)$(PREFIX)/sbin/mailhook-drop \
	       $(DESTDIR)$(PREFIX)/share/mailhook $(DESTDIR)$(PREFIX)/lib/mailhook \
	       $(DESTDIR)$(PREFIX)/lib/libmailhook.a $(DESTDIR)$(PREFIX)/include/mailhook.h \
	       $(DESTDIR)$(SYSTEMDUNITDIR)/mailhook.service \
	       $(foreach m,$(MAN_OUT),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
	       $(DESTDIR)$(LUA_LMOD)/mailhook $(DESTDIR)$(LUA_CMOD)/mailhook
	@$(MAKE) --no-print-directory uninstall-sendmail

# The installed paths are compiled into runtime/instpaths.c alone; the stamp
# changes when they do, so `make install PREFIX=/usr` after a plain `make`
# rebuilds that object instead of installing a binary that looks in /usr/local.
INSTPATHS_DEFS := -DMH_INST_PREFIX='"$(PREFIX)"' -DMH_INST_SYSCONFDIR='"$(SYSCONFDIR)"' \
                  -DMH_INST_LOCALSTATEDIR='"$(LOCALSTATEDIR)"' -DMH_SERVICE_USER='"$(SERVICE_USER)"'
$(BUILD)/obj/instpaths.o: ALL_CFLAGS += $(INSTPATHS_DEFS)
$(BUILD)/obj/instpaths.o: $(BUILD)/instpaths.stamp
$(BUILD)/instpaths.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(INSTPATHS_DEFS)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

# Manual pages: man/NAME.SECTION.scd -> BUILD/man/NAME.SECTION (scdoc, from Debian).
man: $(MAN_OUT)
$(BUILD)/man/%: man/%.scd
	@mkdir -p $(@D)
	scdoc < $< > $@.tmp && mv $@.tmp $@
$(BUILD)/man-mta/%: packaging/%.scd
	@mkdir -p $(@D)
	scdoc < $< > $@.tmp && mv $@.tmp $@

# The systemd unit, with this install's paths.
$(BUILD)/mailhook.service: packaging/mailhook.service.in Makefile $(BUILD)/instpaths.stamp
	@mkdir -p $(@D)
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g' $< > $@.tmp && mv $@.tmp $@

# The Debian packages (debian/): built from a copy of the tree in BUILD/deb, so
# dpkg-buildpackage writes nothing beside the checkout; then lintian, which must
# find no error nor warning.  Result: BUILD/deb/mailhook_VERSION_ARCH.deb and
# BUILD/deb/mailhook-mta_VERSION_all.deb.  LINTIAN=0 skips lintian.
LINTIAN ?= 1
deb:
	@scripts/build-deb $(BUILD)/deb $(LINTIAN)


.PHONY: man deb installable install-service-user install-drop-perms install-mta-links install-sendmail uninstall-sendmail install-mta-man uninstall-mta-man

clean:
	rm -rf build build-asan build-fuzz build-trace build-ci

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/pic/*.d $(BUILD)/obj/lualib/*.d $(FUZZ_BUILD)/obj/*.d $(FUZZ_BUILD)/*.d)
