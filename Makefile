# tapline: `make run` starts the single-machine pipeline with a demo account,
# `make test` runs every check. Both set up a private PostgreSQL under .data/
# unless DATABASE_URL is set.

SHELL       := /bin/bash
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PG          := scripts/postgres.sh

.PHONY: all run build test lint unit bench soak test-integration screenshots pg-stop clean help

all: build

include bench/bench.mk

help:
	@echo "make run               start tapline (collector :8080, dashboard :8081) with the demo seed"
	@echo "make test              formatting, vet, staticcheck and every test (private PostgreSQL)"
	@echo "make bench             benchmarks against nginx, the Tapstream 1.0 baseline, PostgreSQL and DuckDB (about 8 minutes)"
	@echo "make bench-micro       the hot paths' microbenchmarks, BENCH_MICRO_BASE (default HEAD~1) against the working tree (benchstat)"
	@echo "make soak              tapline under steady load for DURATION (default 30m), sampled, judged and plotted into docs/soak.png"
	@echo "make chaos             the fault campaign: real processes, kill -9, broker and PostgreSQL outages, disk full, overload (under 15 minutes; CHAOS_FLAGS)"
	@echo "make test-integration  the Kafka and Cassandra suites against TAPLINE_KAFKA_BROKERS / TAPLINE_CASSANDRA_HOSTS"
	@echo "make screenshots       the browser tests, saving their screenshots into docs/screenshots/"
	@echo "make build             binaries into bin/"
	@echo "make pg-stop           stop the private PostgreSQL"
	@echo "make clean             stop it and delete .data/ and bin/"

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	@url=$$($(PG)) || exit 1; \
	DATABASE_URL="$$url" exec bin/tapline run -demo

test: lint unit

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	@scripts/chromium.sh
	@url=$$($(PG)) || exit 1; \
	DATABASE_URL="$$url" $(GO) test -count=1 -timeout 15m ./...

test-integration:
	@url=$$($(PG)) || exit 1; \
	[ -n "$$TAPLINE_KAFKA_BROKERS" ] || echo "TAPLINE_KAFKA_BROKERS not set: the real-Kafka suites will skip"; \
	[ -n "$$TAPLINE_CASSANDRA_HOSTS" ] || echo "TAPLINE_CASSANDRA_HOSTS not set: the Cassandra suites will skip"; \
	set -o pipefail; DATABASE_URL="$$url" $(GO) test -count=1 -timeout 30m -v ./kafka/... ./cassandra/... \
		| grep -E '^(--- |ok|FAIL|PASS)|SKIP|skipping|not set'

screenshots:
	@scripts/chromium.sh
	@mkdir -p docs/screenshots
	@url=$$($(PG)) || exit 1; \
	TAPLINE_SCREENSHOTS="$(CURDIR)/docs/screenshots" DATABASE_URL="$$url" $(GO) test -count=1 -run 'Browser' ./dashboard/ ./cmd/tapline/

pg-stop:
	@$(PG) stop

clean:
	@$(PG) purge
	rm -rf .data bin
