# `make bench`: the benchmark of package tapline/bench (see bench/doc.go).
# Included from the Makefile. Starts tapline, nginx (installed when absent
# and possible) and the Tapstream 1.0 baseline on loopback against the
# private PostgreSQL, prints one table and writes bench/results/*.json.
# About eight minutes on two cores (the funnel scenario, with 5 million raw
# rows, is a third of it); BENCH_FLAGS passes flags to bench/cmd/bench, -only
# picks scenarios.

.PHONY: bench bench-micro

BENCH_FLAGS ?=

bench:
	@bench/nginx.sh
	$(GO) build -o bin/ ./cmd/tapline ./bench/cmd/tapstream1 ./bench/cmd/funnelbackfill ./bench/cmd/go302 ./bench/cmd/bench
	@url=$$($(PG)) || exit 1; \
	DATABASE_URL="$$url" bin/bench -bin bin -out bench/results $(BENCH_FLAGS)

# `make bench-micro`: the hot paths' go test benchmarks (-benchmem) of
# BENCH_MICRO_BASE (default HEAD~1) against the working tree, compared by
# benchstat; BENCH_MICRO_PATTERN and BENCH_MICRO_COUNT narrow them.
BENCH_MICRO_BASE ?= HEAD~1

bench-micro:
	@scripts/bench-micro.sh $(BENCH_MICRO_BASE)

# `make soak`: tapline's all-in-one under steady load for DURATION (default
# 30m), sampled every minute (duration/30 for shorter runs), judged and
# plotted (package tapline/bench/soak, docs/soak.md). It writes
# bench/results/soak.csv and soak.json and docs/soak.png, and fails when the
# verdict does; SOAK_FLAGS passes flags to bench/cmd/soak (-rate, -load, ...).
DURATION   ?= 30m
SOAK_FLAGS ?=

.PHONY: soak

soak:
	$(GO) build -o bin/ ./cmd/tapline ./bench/cmd/soak
	@url=$$($(PG)) || exit 1; \
	DATABASE_URL="$$url" bin/soak -bin bin/tapline -duration $(DURATION) -plot docs/soak.png $(SOAK_FLAGS)

# `make chaos`: the fault campaign of package tapline/bench/chaos (see its
# doc.go and the README's "Reliability" section). Builds the binaries and
# the kfake broker into bin/, runs the default campaign (at least 1,000,000
# acknowledged events and 20 faults, under 15 minutes on two cores) and
# writes bench/results/chaos-latest.json. CHAOS_FLAGS passes flags to
# bench/cmd/chaos (-seed, -short, -only, -cassandra-hosts ...).

.PHONY: chaos

CHAOS_FLAGS ?=

chaos:
	$(GO) build -o bin/ ./cmd/... ./bench/cmd/kfakebroker ./bench/cmd/chaos
	bin/chaos -bin bin -result bench/results/chaos-latest.json $(CHAOS_FLAGS)
