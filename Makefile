# Covey — build, test, demo, bench, asan, lint, install.
#
#   make            build libcovey, covey-coordinator, covey-agent (warnings are errors)
#   make test       unit tests (cmocka) + integration tests (real processes, 127.0.0.1)
#   make demo       install dependencies if missing, build, run the demo
#   make bench      benchmarks: figures and ratios against baselines measured in the same run
#   make asan       unit + integration tests under AddressSanitizer + UBSan (build-asan/)
#   make lint       clang-tidy + cppcheck
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean
#
# Libraries are found with pkg-config; a missing one is named with the Debian
# package that provides it (deploy/install-deps.sh installs them all).

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= cc
OPT ?= -O3

# pkg-config module -> Debian package
PKG_MODULES := libzmq libsodium openblas msgpack sqlite3 zlib jansson inih
PKG_DEB_libzmq := libzmq3-dev
PKG_DEB_libsodium := libsodium-dev
PKG_DEB_openblas := libopenblas-dev
PKG_DEB_msgpack := libmsgpack-dev
PKG_DEB_sqlite3 := libsqlite3-dev
PKG_DEB_zlib := zlib1g-dev
PKG_DEB_jansson := libjansson-dev
PKG_DEB_inih := libinih-dev
PKG_DEB_cmocka := libcmocka-dev

NEED_DEPS := $(filter-out clean help demo deps,$(or $(MAKECMDGOALS),all))
ifneq ($(NEED_DEPS),)
  ifeq ($(shell command -v pkg-config),)
    $(error pkg-config not found: install it with 'apt-get install pkg-config' or run deploy/install-deps.sh)
  endif
  $(foreach m,$(PKG_MODULES) cmocka,$(if $(shell pkg-config --exists $(m) && echo y),,$(error library '$(m)' not found by pkg-config: install the Debian package $(PKG_DEB_$(m)) (or run deploy/install-deps.sh))))
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_MODULES) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKG_MODULES) 2>/dev/null) -lm -lpthread
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wconversion -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla -Wcast-qual -Wpointer-arith -Wundef -Wwrite-strings \
        -Wnull-dereference -Werror
HARDEN := -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=3
CFLAGS_BASE := -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -fno-math-errno $(WARN) -Icommon $(PKG_CFLAGS)
CFLAGS ?= $(OPT) $(HARDEN) -march=x86-64-v2 -mtune=native
LDFLAGS ?= -pie -Wl,-z,relro,-z,now
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) $(EXTRA_CFLAGS)

LIB_SRCS := $(sort $(wildcard common/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libcovey.a
COORD_SRCS := $(sort $(wildcard coordinator/*.c))
AGENT_SRCS := $(sort $(wildcard agent/*.c))
BINS := $(BUILD)/covey-coordinator $(BUILD)/covey-agent
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
# helper programs of the integration tests and benchmarks (e.g. a misbehaving agent)
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all test unit integration demo bench asan lint install clean deps help fuzz
all: $(BINS)

help:
	@sed -n '3,12p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@deploy/install-deps.sh

Q := $(if $(V),,@)

.SECONDARY:

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/covey-coordinator: $(COORD_SRCS:%.c=$(BUILD)/%.o) $(LIB)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/covey-agent: $(AGENT_SRCS:%.c=$(BUILD)/%.o) $(LIB)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests: every cmocka binary; integration tests: tests/integration/run.
test: unit integration

unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

integration: $(BINS) $(TOOL_BINS)
	@COVEY_BIN=$(abspath $(BUILD)) tests/integration/run

demo:
	@deploy/install-deps.sh
	@$(MAKE) --no-print-directory all
	@deploy/demo.sh $(BUILD)

bench: $(BINS) $(BENCH_BINS) $(TOOL_BINS)
	@COVEY_BIN=$(abspath $(BUILD)) tests/bench/run

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    CFLAGS="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" COVEY_ASAN=1 test

# libFuzzer targets for every decoder of outside input (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(CFLAGS_BASE) \
	    -Wno-unknown-warning-option $$f $(LIB_SRCS) -o build/fuzz/$$n $(PKG_LIBS) || exit 1; \
	  mkdir -p build/fuzz/$$n.corpus; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) \
	    $$( [ -f tests/fuzz/$$n.dict ] && echo -dict=tests/fuzz/$$n.dict ) build/fuzz/$$n.corpus || exit 1; \
	done

lint:
	clang-tidy --quiet $(LIB_SRCS) $(COORD_SRCS) $(AGENT_SRCS) -- $(CFLAGS_BASE) -Wno-unknown-warning-option
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --suppress=missingIncludeSystem -Icommon common coordinator agent

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/covey
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(PREFIX)/share/doc/covey/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
