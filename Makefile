# Common tasks. `make help` lists them.
IMAGE ?= customer-worker
TAG ?= dev
CONF ?= customer-worker/configs/config-dev.yaml
MODE ?= all

.PHONY: help build build-worker test test-daprd daprd chaos restarts lint run replay docker deploy-check bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## Build the whole workspace (debug)
	cargo build --workspace

build-worker: ## Build the customer worker (release)
	cargo build --release -p customer-worker

test: ## Run the tests (PostgreSQL too when TEST_DATABASE_URL is set)
	cargo test --workspace --all-features

daprd: ## Build daprd from its Go module into target/daprd/daprd (tools/daprd)
	bash tools/daprd/build.sh

test-daprd: daprd ## The end-to-end suite under the real daprd (needs redis-server; the worker's cases need TEST_DATABASE_URL)
	DAPRD=$(CURDIR)/target/daprd/daprd EVENTBUS_REQUIRE_DAPRD=1 cargo test --workspace --all-features --test 'daprd*'

restarts: daprd ## The shipped deploy/dapr files under the real daprd: kill -9, database outage, rolling restart (RESTART_EVENTS, RESTART_RATE; needs TEST_DATABASE_URL)
	DAPRD=$(CURDIR)/target/daprd/daprd EVENTBUS_REQUIRE_DAPRD=1 EVENTBUS_REQUIRE_POSTGRES=1 \
	  cargo test --release -p customer-worker --test restarts -- --nocapture --test-threads 1

chaos: ## The chaos and fuzz suite (kill -9, database outages, two replicas, gRPC fuzzer); RELIABILITY.md
	bash chaos/run.sh

lint: ## Format check and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

run: ## Run the worker with CONF and MODE (cron | events | all)
	cargo run -p customer-worker -- --conf $(CONF) --mode $(MODE)

replay: ## Feed the sample events through the worker (SQLite, no Dapr)
	cargo run -p customer-worker -- replay customer-worker/samples/events.jsonl

docker: ## Build the worker's image
	docker build -f deploy/Dockerfile -t $(IMAGE):$(TAG) .

deploy-check: ## Render and validate the chart and manifests, lint the Dockerfile and scripts
	python3 deploy/check.py
	hadolint --config deploy/.hadolint.yaml deploy/Dockerfile
	shellcheck .ci/run bench/*.sh tools/daprd/build.sh chaos/run.sh

bench: ## The load driver's side-by-side baselines (writes BENCHMARKS.md)
	bash bench/run.sh
