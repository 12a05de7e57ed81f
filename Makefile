# tmap: the targets a user and CI need. Everything installs what it needs.
#
#   make demo     set up, build, run the main job on the bundled GSM8K
#   make test     set up, build, run the whole ctest suite
#   make setup    Debian packages + llama.cpp (cached in ~/.cache/tmap)
#   make build    build/tmap
#   make asan     every test under AddressSanitizer + UBSan
#   make release  a Release (-O3) build, as packagers make it; CI builds it with warnings as errors
#   make minimal  a build without the optional MPI and FAISS (what a machine without them gets); CI builds it
#   make bench    the benchmarks under bench/
#   make fidelity the closed loop: tmap's selection fine-tuned against random (SEED=1, or SEEDS="1 2 3" pooled)
#   make install  the CLI, libtmap (.so, .a), tmap.h, a CMake package and tmap.pc (PREFIX=/usr/local)
#   make fuzz     libFuzzer on every input parser (FUZZ_RUNS=10000000 FUZZ_TIME=1800 each;
#                 FUZZ_SEED=N repeats a run's mutations, 0 draws a new seed)
#
# GPU=cuda builds llama.cpp with CUDA; TMAP_LLAMA_DIR=/prefix uses your own
# llama.cpp install instead. CI=true turns warnings into errors.

MAKEFLAGS += --no-print-directory

GPU      ?= cpu
BUILD    ?= build
JOBS     ?= $(shell nproc)
WERROR   ?= $(if $(CI),ON,OFF)
PREFIX_FILE = $(BUILD)/.llama-prefix

# Only the test targets install the test-only packages (chromium), only
# make fuzz clang; a target-specific value reaches their setup prerequisite too.
test asan: SETUP_FLAGS = --test
fuzz: SETUP_FLAGS = --fuzz

.PHONY: all setup build test demo bench fidelity asan release minimal fuzz install clean

# One build folder: configure it against the cached llama.cpp (the log is
# shown only when configuring fails), then build.
#   $(call cmake_build,DIR,EXTRA CMAKE ARGS,ENVIRONMENT FOR CMAKE)
define cmake_build
	@mkdir -p $(1)
	@$(3) cmake -S . -B $(1) -DCMAKE_PREFIX_PATH="$$(cat $(PREFIX_FILE))" -DTMAP_WERROR=$(WERROR) $(2) \
	    >$(1)/cmake-configure.log || { cat $(1)/cmake-configure.log; exit 1; }
	@cmake --build $(1) -j $(JOBS)
endef

all: build

setup:
	@mkdir -p $(BUILD)
	@scripts/setup.sh $(GPU) $(SETUP_FLAGS) | tail -n 1 > $(PREFIX_FILE).new
	@mv $(PREFIX_FILE).new $(PREFIX_FILE)

build: setup
	$(call cmake_build,$(BUILD))

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@scripts/bench.sh $(BUILD)

# The closed loop (docs/fidelity.md): SEED picks the corruption and the
# random arms; run it on a second seed before trusting a change of default.
# MODEL picks the base model (docs/base-model.md for the 2,048-token one).
# SEEDS="1 2 3" runs each seed in turn (a seed already run costs little:
# its folder keeps what it fine-tuned), then pools them into one
# difference per arm (bench_fidelity_pool; a page of it beside the
# folders, ...-pooled.html). FIDELITY_ARGS reach
# bench_fidelity (say --indicators support,coverage); FIDELITY_TAG names
# their folders apart.
SEED  ?= 1
MODEL ?= models/gsm8k-base.gguf
SEEDS ?=
FIDELITY_ARGS ?=
FIDELITY_TAG ?=
fidelity_dir = $(BUILD)/fidelity-$(basename $(notdir $(MODEL)))$(FIDELITY_TAG)-seed$(1)
fidelity: build
ifeq ($(strip $(SEEDS)),)
	$(BUILD)/bench/bench_fidelity --model $(MODEL) --data data/gsm8k/train.jsonl \
	    --test data/gsm8k/test.jsonl --out $(call fidelity_dir,$(SEED)) --seed $(SEED) $(FIDELITY_ARGS)
else
	@for s in $(SEEDS); do \
	    $(BUILD)/bench/bench_fidelity --model $(MODEL) --data data/gsm8k/train.jsonl \
	        --test data/gsm8k/test.jsonl --out $(call fidelity_dir,$$s) --seed $$s $(FIDELITY_ARGS) || exit 1; \
	done
	$(BUILD)/bench/bench_fidelity_pool --html $(BUILD)/fidelity-$(basename $(notdir $(MODEL)))$(FIDELITY_TAG)-pooled.html \
	    $(foreach s,$(SEEDS),$(call fidelity_dir,$(s)))
endif

asan: setup
	$(call cmake_build,$(BUILD)-asan,-DCMAKE_BUILD_TYPE=Debug -DTMAP_SANITIZE=ON)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS) -LE nosan

# gcc's -O3 inlines across test helpers and warns where -O2 does not (a
# NULL reaching printf's %s once broke only this build), so CI compiles it.
release: setup
	$(call cmake_build,$(BUILD)-release,-DCMAKE_BUILD_TYPE=Release)

# MPI and FAISS are optional (docs/distributed.md, docs/scoring.md): the
# code without them is another set of #ifdef branches, which only this
# build compiles (an unused constant there once broke it for days unseen).
minimal: setup
	$(call cmake_build,$(BUILD)-minimal,-DTMAP_MPI=OFF -DTMAP_FAISS=OFF)

PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# Fuzzing (docs/reliability.md): clang with ASan+UBSan and libFuzzer; new
# corpus entries and crash reproducers land in fuzz/, to be committed.
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?= 1800
FUZZ_SEED ?= 0
fuzz: setup
	$(call cmake_build,$(BUILD)-fuzz,-DCMAKE_BUILD_TYPE=Debug -DTMAP_SANITIZE=ON -DTMAP_FUZZ=ON -DTMAP_TESTS=OFF,CC=clang CXX=clang++)
	FUZZ_SEED=$(FUZZ_SEED) scripts/fuzz.sh $(BUILD)-fuzz $(FUZZ_RUNS) $(FUZZ_TIME) $(FUZZERS)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-release $(BUILD)-minimal $(BUILD)-fuzz
