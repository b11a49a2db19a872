# tapline: `make run` starts the single-machine pipeline with a demo account,
# `make test` runs every check. Unless DATABASE_URL is set, each sets up a
# private PostgreSQL: make run's under .data/, the tests' in memory where it
# can (scripts/postgres.sh).

SHELL       := /bin/bash
GO          ?= go
STATICCHECK_VERSION := v0.8.2
# staticcheck is built once into .data/bin and reused. Its analysis cache is
# staticcheck's default, in the user cache directory beside Go's build cache:
# keyed by content like Go's, so every clone shares it. Most of a cold run's
# work is the facts of the dependencies (the standard library and the
# modules), which no clone changes: a fresh clone on a machine that has run
# it before takes a quarter of the CPU.
STATICCHECK := .data/bin/staticcheck-$(STATICCHECK_VERSION)
PG          := scripts/postgres.sh
# The tests' cluster: in memory where /dev/shm allows, no fsync (see the
# script); `make run` and the benchmarks keep the one on disk.
PG_TEST     := scripts/postgres.sh --test
# FUZZTIME is how long `make fuzz` runs each fuzz target; `make test` runs
# each for TEST_FUZZTIME. FUZZ, when set, is a grep -E pattern over
# "./pkg FuzzX" that picks the targets to run.
FUZZTIME      ?= 30s
TEST_FUZZTIME ?= 3s
# FUZZ_WORKERS is how many fuzzing workers each target runs (empty: one a
# core; make test sets 1).
FUZZ_WORKERS ?=
# go test runs a few vet checks before each package's tests; `make test`
# runs the whole of go vet in lint, so there it sets TEST_VET=-vet=off
# rather than vet every package again in unit, race and fuzz.
TEST_VET ?=
# The packages `make race` tests with the race detector.
RACE_PKGS := ./matcher ./collector ./pebble ./kafka

.PHONY: all run build test checks compile lint unit race fuzz bench soak chaos test-integration screenshots pg-stop clean help

all: build

include bench/bench.mk

help:
	@echo "make run               start tapline (collector :8080, dashboard :8081) with the demo seed"
	@echo "make test              formatting, vet, staticcheck, every test, the race run and a short fuzz of every target"
	@echo "make race              the race detector over matcher, collector, pebble and kafka (-short)"
	@echo "make fuzz              each fuzz target in turn for FUZZTIME (default 30s), e.g. make fuzz FUZZTIME=60s"
	@echo "make bench             benchmarks against nginx, the Tapstream 1.0 baseline, PostgreSQL and DuckDB (about 8 minutes)"
	@echo "make bench-micro       the hot paths' microbenchmarks, BENCH_MICRO_BASE (default HEAD~1) against the working tree (benchstat)"
	@echo "make soak              tapline under steady load for DURATION (default 30m), sampled, judged and plotted into docs/soak.png"
	@echo "make chaos             the fault campaign: real processes, kill -9, broker and PostgreSQL outages, disk full, overload (under 15 minutes; CHAOS_FLAGS)"
	@echo "make test-integration  the Kafka and Cassandra suites against TAPLINE_KAFKA_BROKERS / TAPLINE_CASSANDRA_HOSTS"
	@echo "make screenshots       the browser tests, saving their screenshots into docs/screenshots/"
	@echo "make build             binaries into bin/"
	@echo "make pg-stop           stop the private PostgreSQL clusters (make run's and the tests')"
	@echo "make clean             stop it and delete .data/ and bin/"

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	@url=$$($(PG)) || exit 1; \
	DATABASE_URL="$$url" exec bin/tapline run -demo

# test compiles every package once (compile), then runs lint, unit, race and
# the short fuzz at the same time (their outputs are printed whole, one
# target after another, as each finishes).
# The fuzz runs one fuzzing worker a target (FUZZ_WORKERS=1), filling the cores
# the other three leave idle while their tests wait on PostgreSQL, Chromium
# and the clock. Chromium and PostgreSQL are set up first so the parallel
# targets do not race to install or start them. Test binaries (and the
# binaries tests build) are linked without DWARF: a third less link time,
# and panics and race reports still name their functions and lines.
test:
	@scripts/chromium.sh
	@$(PG_TEST) >/dev/null
	@$(MAKE) --no-print-directory compile
	@GOFLAGS="$$GOFLAGS -ldflags=-w" $(MAKE) --no-print-directory -j4 --output-sync=target checks fuzz TEST_VET=-vet=off \
		FUZZTIME=$(TEST_FUZZTIME) FUZZ_WORKERS=1

checks: lint unit race

# compile builds every package and test variant once (as go vet,
# staticcheck's go list and go test all would), so that lint and unit,
# which need the same compiled packages, do not compile them side by side
# under make -j. make test runs it alone first: the tests of unit are the
# longest part of the run, and they start as soon as it is done.
compile:
	@$(GO) list -e -export -deps -test ./... >/dev/null

lint unit: compile

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Built the same way every time (no GOFLAGS): staticcheck keys its cache
# by its own binary, so another build of it would start from nothing.
$(STATICCHECK):
	@mkdir -p .data/bin
	@tmp=$$(mktemp -d .data/bin/build.XXXXXX) && \
	GOFLAGS= GOBIN="$(CURDIR)/$$tmp" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && \
	mv "$$tmp/staticcheck" $@ && rmdir "$$tmp"

# UNIT_FIRST are the packages whose tests spend the longest waiting (on
# child processes, Chromium, the broker and the clock): go test starts
# packages in the order it is given them, two at a time on two cores, and
# these waits overlap best with other packages' work when they start
# first rather than leave the cores idle at the end.
UNIT_FIRST := ./bench/chaos ./bench ./cmd/tapline ./internal/node ./dashboard ./kafka ./bench/soak ./export ./matcher

unit:
	@scripts/chromium.sh
	@url=$$($(PG_TEST)) || exit 1; \
	DATABASE_URL="$$url" $(GO) test $(TEST_VET) -count=1 -timeout 15m $(UNIT_FIRST) ./...

race:
	@url=$$($(PG_TEST)) || exit 1; \
	DATABASE_URL="$$url" $(GO) test $(TEST_VET) -race -short -count=1 -timeout 15m $(RACE_PKGS)

fuzz:
	@url=$$($(PG_TEST)) || exit 1; \
	DATABASE_URL="$$url" GOTESTFLAGS="$(TEST_VET)" FUZZ_WORKERS="$(FUZZ_WORKERS)" scripts/fuzz.sh $(FUZZTIME) $(FUZZ)

test-integration:
	@url=$$($(PG_TEST)) || exit 1; \
	[ -n "$$TAPLINE_KAFKA_BROKERS" ] || echo "TAPLINE_KAFKA_BROKERS not set: the real-Kafka suites will skip"; \
	[ -n "$$TAPLINE_CASSANDRA_HOSTS" ] || echo "TAPLINE_CASSANDRA_HOSTS not set: the Cassandra suites will skip"; \
	set -o pipefail; DATABASE_URL="$$url" $(GO) test -count=1 -timeout 30m -v ./kafka/... ./cassandra/... \
		| grep -E '^(--- |ok|FAIL|PASS)|SKIP|skipping|not set'

screenshots:
	@scripts/chromium.sh
	@mkdir -p docs/screenshots
	@url=$$($(PG_TEST)) || exit 1; \
	TAPLINE_SCREENSHOTS="$(CURDIR)/docs/screenshots" DATABASE_URL="$$url" $(GO) test -count=1 -run 'Browser' ./dashboard/ ./cmd/tapline/

pg-stop:
	@$(PG) stop
	@$(PG_TEST) stop

clean:
	@$(PG) purge
	@$(PG_TEST) purge
	rm -rf .data bin
