# Tandem build. `make` builds ./tandem; `make test` runs every suite (with
# AddressSanitizer and UndefinedBehaviorSanitizer); `make run` starts the demo.
# Options: DEVELOPER=1 (warnings are errors), SANITIZE=address,undefined,
# CC=clang, O=<build dir>.

CC       ?= cc
PKGS     := libmicrohttpd jansson sqlite3 libcurl openssl libxml-2.0 libpq zlib
O        ?= build
SANITIZE ?=

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread \
            -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wold-style-definition -Wvla -Wwrite-strings -Wimplicit-fallthrough -fno-common \
            -Isrc -I$(O)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lopendkim -lpthread -lm
ifeq ($(DEVELOPER),1)
CFLAGS   += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o) $(O)/gen/migrations.o
MIGRATIONS := $(sort $(wildcard src/store/migrations/*/*.sql))
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:%.c=$(O)/%)
FUZZ_SRC := $(filter-out fuzz/replay.c,$(wildcard fuzz/*.c))
FUZZ_REPLAY := $(FUZZ_SRC:fuzz/%.c=$(O)/fuzz/replay_%)

.PHONY: all deps deps-build deps-run deps-test run test test-unit test-blackbox test-fuzz test-browser fuzz bench \
        format format-check clean
all: tandem

tandem: $(O)/tandem
	ln -sf $(O)/tandem tandem

$(O)/tandem: $(O)/src/main.o $(O)/libtandem.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/libtandem.a: $(LIB_OBJ)
	@rm -f $@ && ar rcs $@ $^

$(O)/%.o: %.c $(O)/gen/migrations.h
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/gen/migrations.c $(O)/gen/migrations.h: $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(O)/gen
	sh scripts/embed-sql.sh $(O)/gen/migrations $(MIGRATIONS)

$(O)/gen/migrations.o: $(O)/gen/migrations.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(O)/tests/unit/%: tests/unit/%.c $(O)/libtandem.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(O)/libtandem.a $(LDLIBS) -lcmocka

$(O)/fuzz/replay_%: fuzz/%.c fuzz/replay.c $(O)/libtandem.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< fuzz/replay.c $(O)/libtandem.a $(LDLIBS)

-include $(shell find $(O) -name '*.d' 2>/dev/null)

# Install the Debian (and npm) packages needed (idempotent, quick when done).
deps:
	sh scripts/deps.sh all
deps-build:
	sh scripts/deps.sh build
deps-run:
	sh scripts/deps.sh run
deps-test:
	sh scripts/deps.sh test

# The main job: the server on embedded SQLite with the demo (shop, journeys,
# mailbox) on https://localhost:8443/demo/.
run: deps-run
	$(MAKE) tandem
	./tandem demo --data ./data

# The whole suite, as CI runs it: sanitized build, unit, black-box, fuzz
# corpora replay, browser tests.
test: deps-test
	$(MAKE) O=build/san SANITIZE=address,undefined DEVELOPER=1 tandem-san-all
	sh tests/run.sh build/san

tandem-san-all: $(O)/tandem $(UNIT_BIN) $(FUZZ_REPLAY)

test-unit: $(UNIT_BIN)
	sh tests/run.sh $(O) unit

# Coverage-guided fuzzing with libFuzzer (clang), FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz:
	sh fuzz/run.sh $(FUZZ_SECONDS)

bench: tandem
	sh bench/ingest

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build tandem
