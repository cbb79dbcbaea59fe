# djct: data-parallel training toolkit. See README.md; knobs below are all `?=`.
#   make                      libdjct.a, libdjct.so, apps, benchmarks -> $(BUILD)/
#   make run [RUN_NP=2] [ARGS=...]  the main job: djct_train on the embedded default, 2 ranks
#   make test [T=pattern]     build + run every test (MPI tests with 2 and 4 ranks); non-zero on failure
#   make test-mpi NP=2        only the MPI tests, with NP ranks
#   make SAN=1 test           AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/
#   make fuzz FUZZ_SECONDS=60 run every fuzz target longer than the test suite does
#   make install PREFIX=/opt/djct DESTDIR=...
#   make config               re-detect dependencies and print the summary

VERSION     := 0.1.0
SOVERSION   := 0
PREFIX      ?= /usr/local
DESTDIR     ?=
SAN         ?= 0
WITH_TORCH  ?= auto
WITH_CUDA   ?= auto
CUDA_HOME   ?= /usr/local/cuda
NCCL_HOME   ?=
LIBTORCH    ?=
TORCH_PYTHON ?=
INSTALL_DEPS ?= 1
CC          ?= cc
CXX         ?= g++
MPICC       ?= mpicc
CLANG       ?= clang
NP          ?= 2 4
FUZZ_SECONDS ?= 10
MPIRUN      ?= mpirun --allow-run-as-root --oversubscribe --bind-to none
OPT         ?= -O2
T           ?=

ifeq ($(CC),cc)
  CC := gcc
endif

bad_knob = $(error $(1)=$($(1)) is not allowed; use one of: $(2))
ifeq ($(filter $(SAN),0 1),)
  $(call bad_knob,SAN,0 1)
endif
ifeq ($(filter $(WITH_TORCH),auto 0 1),)
  $(call bad_knob,WITH_TORCH,auto 0 1)
endif
ifeq ($(filter $(WITH_CUDA),auto 0 1),)
  $(call bad_knob,WITH_CUDA,auto 0 1)
endif
ifeq ($(filter $(INSTALL_DEPS),0 1),)
  $(call bad_knob,INSTALL_DEPS,1 0)
endif

ifeq ($(SAN),1)
  BUILD   ?= build-san
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  # libtorch does not export the typeinfo UBSan's vptr check needs (e.g. c10::DynamicType)
  SANCXXFLAGS := -fno-sanitize=vptr
else
  BUILD   ?= build
  SANFLAGS :=
endif

.DEFAULT_GOAL := all

# build with every core unless the caller chose (-j N); the README's two commands rely on it
ifeq ($(filter -j%,$(MAKEFLAGS)),)
  MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

# ---- dependency detection (once; re-run when a knob changes or with `make config`) ----------
# libtorch: Debian's by default, LIBTORCH=DIR (an unpacked libtorch zip) or TORCH_PYTHON=PY (the
# torch package that interpreter imports); NCCL from NCCL_HOME, else beside that torch, else CUDA_HOME
KNOBS := WITH_TORCH=$(WITH_TORCH) WITH_CUDA=$(WITH_CUDA) CUDA_HOME=$(CUDA_HOME) MPICC=$(MPICC) CXX=$(CXX) \
         LIBTORCH=$(LIBTORCH) TORCH_PYTHON=$(TORCH_PYTHON) NCCL_HOME=$(NCCL_HOME) INSTALL_DEPS=$(INSTALL_DEPS)
NOCONFIG_GOALS := clean distclean help
ifeq ($(filter $(NOCONFIG_GOALS),$(MAKECMDGOALS)),)
  $(shell mkdir -p $(BUILD) && (echo '$(KNOBS)' | cmp -s - $(BUILD)/knobs || echo '$(KNOBS)' > $(BUILD)/knobs))
  include $(BUILD)/config.mk
endif

$(BUILD)/config.mk: $(BUILD)/knobs scripts/configure.sh scripts/install-deps.sh
	@$(KNOBS) scripts/configure.sh $@

# ---- flags ----------------------------------------------------------------------------------
CPPFLAGS_ALL := -Iinclude -Isrc -D_GNU_SOURCE $(MPI_CFLAGS) $(HDF5_CFLAGS) $(DEP_CFLAGS) $(CUDA_CFLAGS) \
                -DDJCT_HAVE_TORCH=$(HAVE_TORCH) -DDJCT_VERSION_STRING='"$(VERSION)"'
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS_ALL   := -std=c11 $(OPT) -g -pthread -fPIC -fvisibility=hidden $(WARN) $(SANFLAGS) $(CFLAGS)
CXXFLAGS_ALL := -std=$(or $(TORCH_CXXSTD),c++17) $(OPT) -g -pthread -fPIC -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter \
                $(TORCH_CXXFLAGS) $(SANFLAGS) $(SANCXXFLAGS) $(CXXFLAGS)
LIBS_ALL     := $(TORCH_LIBS) $(HDF5_LIBS) $(DEP_LIBS) $(CUDA_LIBS) $(MPI_LIBS) -ldl
LDFLAGS_ALL  := -pthread -Wl,--as-needed $(SANFLAGS) $(LDFLAGS)

# ---- sources (discovered: adding a module needs no Makefile edit) ---------------------------
C_SRCS   := $(wildcard src/*.c)
ifeq ($(HAVE_TORCH),1)
  CXX_SRCS := $(wildcard src/torch/*.cpp)
  LINKER   := $(CXX)
else
  CXX_SRCS :=
  C_SRCS   += $(wildcard src/torch/*_stub.c)
  LINKER   := $(CXX)
endif
OBJS     := $(C_SRCS:%.c=$(BUILD)/obj/%.o) $(CXX_SRCS:%.cpp=$(BUILD)/obj/%.o)
LIB_A    := $(BUILD)/lib/libdjct.a
LIB_SO   := $(BUILD)/lib/libdjct.so
APPS     := $(patsubst apps/%.c,$(BUILD)/bin/%,$(wildcard apps/djct_*.c))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
ifeq ($(HAVE_TORCH),1)
  BENCHES  += $(patsubst bench/%.cpp,$(BUILD)/bench/%,$(wildcard bench/*.cpp))
endif
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c)) $(BUILD)/tests/test_headers_cxx
HEADERS  := $(wildcard include/djct/*.h)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_C_SRCS  := $(filter-out %_stub.c,$(wildcard src/*.c)) $(wildcard src/torch/*_stub.c)

.PHONY: run all lib apps bench tests fuzz-build fuzz test test-mpi install uninstall clean distclean config help
all: lib apps bench
lib: $(LIB_A) $(LIB_SO)
apps: $(APPS)
bench: $(BENCHES)
tests: $(TESTS) $(if $(filter 1,$(HAVE_FUZZER)),$(if $(filter 0,$(SAN)),$(FUZZ_TARGETS)))

config:
	@rm -f $(BUILD)/config.mk && $(MAKE) --no-print-directory $(BUILD)/config.mk

help:
	@sed -n '2,10p' Makefile | sed 's/^# *//'

# ---- compile ----------------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# the fused Adam pass: sqrtf without errno, so the compiler can vectorise it (src/adam.c)
$(BUILD)/obj/src/adam.o: CFLAGS_ALL += -fno-math-errno

$(BUILD)/obj/%.o: %.cpp $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS_ALL) $(CXXFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB_A): $(OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(OBJS)
	@mkdir -p $(dir $@)
	$(LINKER) -shared -Wl,-soname,libdjct.so.$(SOVERSION) $(LDFLAGS_ALL) -o $@.$(VERSION) $^ $(LIBS_ALL)
	ln -sf libdjct.so.$(VERSION) $@.$(SOVERSION)
	ln -sf libdjct.so.$(VERSION) $@

# apps, benchmarks and tests link the static library (no LD_LIBRARY_PATH needed). A program
# apps/djct_<name>.c also links apps/app_common.c (what the programs share) and its own parts,
# apps/<name>_*.c (djct_train: apps/train_*.c)
APP_COMMON := $(BUILD)/obj/apps/app_common.o
app_parts   = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard apps/$(patsubst djct_%,%,$(1))_*.c))
# kept after the link (not intermediate files), so a rebuild recompiles only what changed
.SECONDARY: $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out apps/djct_%,$(wildcard apps/*.c)))
.SECONDEXPANSION:
$(BUILD)/bin/%: apps/%.c $(APP_COMMON) $$(call app_parts,$$*) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(filter $(BUILD)/obj/apps/%.o,$^) $(LIB_A) $(LIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_A) $(LIBS_ALL)

# C++ baselines (plain libtorch loops), built only with libtorch
$(BUILD)/bench/%: bench/%.cpp $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS_ALL) $(CXXFLAGS_ALL) -MMD -MP -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_A) $(LIBS_ALL)

$(BUILD)/tests/%: tests/%.c tests/harness.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -Itests -MMD -MP -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_A) $(LIBS_ALL)

# the public headers must compile cleanly as C11 (above, plus -Werror here) and as C++17
$(BUILD)/tests/test_headers: tests/test_headers.c $(HEADERS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Werror -Wall -Wextra -Wpedantic -Iinclude -Itests $(SANFLAGS) -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_A) $(LIBS_ALL)

$(BUILD)/tests/test_headers_cxx: tests/test_headers.c $(HEADERS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -std=c++17 -Werror -Wall -Wextra -Wpedantic -Iinclude -Itests $(SANFLAGS) -c $< -o $@.o
	$(LINKER) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_A) $(LIBS_ALL)

# ---- fuzz targets: clang + libFuzzer + ASan over the C sources (torch stubbed) -------------------
FUZZ_OBJS := $(FUZZ_C_SRCS:%.c=$(BUILD)/fuzzobj/%.o)
FUZZ_LIB  := $(BUILD)/fuzz/libdjct_fuzz.a
FUZZ_CPPFLAGS := $(subst -DDJCT_HAVE_TORCH=1,-DDJCT_HAVE_TORCH=0,$(CPPFLAGS_ALL))
FUZZFLAGS := -std=c11 -O1 -g -pthread -fsanitize=fuzzer-no-link,address,undefined -DDJCT_FUZZING=1
$(BUILD)/fuzzobj/%.o: %.c $(BUILD)/config.mk
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CPPFLAGS) $(FUZZFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_LIB): $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	$(CLANG) $(FUZZ_CPPFLAGS) -Itests $(FUZZFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB) \
	    $(HDF5_LIBS) $(DEP_LIBS) $(CUDA_LIBS) $(MPI_LIBS) -ldl -o $@
fuzz-build: $(FUZZ_TARGETS)
fuzz: fuzz-build
	@for f in $(FUZZ_TARGETS); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -timeout=10 -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$$n \
	    2>&1 | tail -n 3 || exit 1; done

# ---- run tests --------------------------------------------------------------------------------
export BUILD MPIRUN FUZZ_SECONDS HAVE_TORCH HAVE_CUDA HAVE_FUZZER SAN
test: all tests
	@scripts/run-tests.sh --np "$(NP)" --filter "$(T)"

# the README's main command: the embedded default job with 2 ranks
RUN_NP ?= 2
ARGS   ?=
run: all
	$(MPIRUN) -np $(RUN_NP) $(BUILD)/bin/djct_train $(ARGS)

test-mpi: all tests
	@scripts/run-tests.sh --np "$(NP)" --filter "$(T)" --mpi-only

# ---- install ----------------------------------------------------------------------------------
install: lib apps
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/djct $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO).$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libdjct.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libdjct.so.$(SOVERSION)
	ln -sf libdjct.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libdjct.so
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/djct/
	$(if $(APPS),install -m 755 $(APPS) $(DESTDIR)$(PREFIX)/bin/)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(strip $(LIBS_ALL))|g' djct.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/djct.pc
	@if [ -d python/djct ]; then install -d $(DESTDIR)$(PREFIX)/share/djct/python/djct && \
	  install -m 644 python/djct/*.py $(DESTDIR)$(PREFIX)/share/djct/python/djct/; fi
	@echo "installed djct $(VERSION) into $(DESTDIR)$(PREFIX)"

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/djct $(DESTDIR)$(PREFIX)/share/djct
	rm -f $(DESTDIR)$(PREFIX)/lib/libdjct.* $(DESTDIR)$(PREFIX)/lib/pkgconfig/djct.pc
	rm -f $(patsubst $(BUILD)/bin/%,$(DESTDIR)$(PREFIX)/bin/%,$(APPS))

clean:
	rm -rf build build-san $(BUILD)

distclean: clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
