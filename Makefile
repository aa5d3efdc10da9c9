# The two commands a newcomer needs (see README): `make run` and `make test`.
.PHONY: run frontend test coverage bench bench-criterion bench-sidebyside bench-cluster bench-scale bench-instructions bench-cpu loadtest loadtest-smoke fmt lint

## Run flashcore with the embedded defaults and the demo catalog on :8080, the
## storefront at / and the operator console at /ops.
run: frontend
	cargo run --release --locked -p flashcore-http --bin flashcore

## Build the storefront and console into frontend/dist (npm ci from the lockfile
## when node_modules is older than it), which the binary serves.
frontend:
	cd frontend && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build

## Run every test (fmt, clippy, unit, property, black-box, loom, k6 smoke, API contract, frontend and browser tests).
test:
	./scripts/test.sh

## Line coverage of the Rust workspace (the instrumented release binary and tests,
## `cargo test --workspace`) and of the frontend's unit tests: the summary table with
## its thresholds, target/coverage/summary.md, and target/coverage/html/index.html.
coverage:
	./scripts/coverage.sh

## Every benchmark (not part of `make test`): criterion, the side-by-side, then the cluster bench.
bench: bench-criterion bench-sidebyside bench-cluster

## Criterion: domain operations, the SKU actor against a bare actor, the durable journal.
bench-criterion:
	cargo bench --locked -p flashcore-domain --bench inventory
	cargo bench --locked -p flashcore-persistence --bench sku_actor --bench durability

## DESIGN §7 side by side: hello-world, Postgres hot row, Redis Lua, flashcore reserve and
## durable checkout (DURATION=10 seconds each), RUNS=3 runs in a row; the two target
## ratios as medians with their spread in loadtests/results/sidebyside-runs.md
## (one run alone: ./scripts/sidebyside.sh).
bench-sidebyside:
	./scripts/sidebyside-runs.sh

## Cluster mode on this machine: the black-friday mix against 1 node, then NODES=3 nodes on
## one Postgres (DURATION=20 s, RATE=900 shoppers/s), the journal checked for oversell; hot-SKU
## reserve through the SKU's owner and through a non-owner (RESERVE_DURATION=8 s); the
## forwarded calls by op. Report in loadtests/results/bench-cluster.md.
bench-cluster:
	./scripts/bench-cluster.sh

## Instructions per hot-SKU reserve request, counted by callgrind (steady on a
## loaded machine, unlike requests per second): BIN=path compares another build.
bench-instructions:
	./scripts/bench-instructions.sh $${BIN:-}

## CPU time per request, server and wrk (kernel included), for the hello-world and the
## hot-SKU reserve of the side-by-side, and how often the server is preempted (DURATION=10 s).
bench-cpu:
	./scripts/bench-cpu.sh

## Issue 13's scale benchmark: seeds SKUS=100000 products, ORDERS=1000000 orders and
## CARTS=1000000 carts into Postgres and SQLite, times start-up to /ready (first,
## after SIGTERM, after kill -9) and reads RSS per cold SKU and per active cart
## (CARTS_RSS=100000); report in loadtests/results/bench-scale.md.
bench-scale:
	./scripts/bench-scale.sh

## A k6 suite against a fresh release flashcore on Postgres + Redis:
## SUITE=flash-sale (default) | black-friday | soak | smoke; report in loadtests/results/.
loadtest:
	./scripts/loadtest.sh $${SUITE:-flash-sale}

## The k6 smoke suite (also the last step of `make test`).
loadtest-smoke:
	./scripts/loadtest.sh smoke

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
