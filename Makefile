# The two commands a newcomer needs (see README): `make run` and `make test`.
.PHONY: run test bench fmt lint

## Run flashcore with the embedded defaults and the demo catalog on :8080.
run:
	cargo run --release --locked -p flashcore-http --bin flashcore

## Run every test (fmt, clippy, unit, property, black-box, loom).
test:
	./scripts/test.sh

## Criterion benchmarks (not part of `make test`).
bench:
	cargo bench --locked -p flashcore-persistence --bench sku_actor --bench durability

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
