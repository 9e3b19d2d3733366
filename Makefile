# Boxscore: ingest -> Kinesis -> transform -> load. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

SERVICES     := ingest-gateway shard-consumer transformer loader
MODULES      := pkg cmd/boxscore services/ingest-gateway services/shard-consumer services/transformer services/loader test charts/test
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -X github.com/boxscore-dev/boxscore/pkg/buildinfo.Version=$(VERSION)
BIN          := bin
STACK        := k8s/local/stack.sh
KINESALITE   := k8s/local/kinesalite
# Local stack settings, shared by the stack script and the services it starts.
export BOXSCORE_STREAM ?= boxscore-stats
export BOXSCORE_SHARDS ?= 4
export BOXSCORE_DB     ?= boxscore
export KINESIS_PORT    ?= 4567
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
# The cross-service packages (test/) start whole stacks: one package at a time keeps them
# from starving each other of the two cores CI has.
TEST_MODULE_FLAGS ?= -p 1

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the four services and the boxscore CLI (replay, extract, report, s3) into bin/.
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do \
		echo "go build $$s"; \
		go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/$$s ./services/$$s; \
	done
	@echo "go build boxscore"; go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/boxscore ./cmd/boxscore

.PHONY: deps
deps: $(KINESALITE)/node_modules/.package-lock.json ## Install what tests and the local stack need (kinesalite, PostgreSQL).
	@bash .ci/ensure-postgres.sh

$(KINESALITE)/node_modules/.package-lock.json: $(KINESALITE)/package-lock.json
	cd $(KINESALITE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# The cross-service packages of test/ (by import path): they build the services and start
# them as processes.
CROSS_SERVICE := /test/(e2e|chaos|group|league)(/|$$)

# go-test runs go test over the modules $(1); in test/, over its cross-service packages when
# $(2) is "only", over the others when it is "skip", over all of it otherwise. It ends with
# the count of packages that passed and failed, and fails if any did.
define go-test
	@log=$$(mktemp); status=0; \
	for m in $(1); do \
		flags="$(GO_TEST_FLAGS)"; pkgs=./...; \
		if [[ $$m == test ]]; then \
			flags="$$flags $(TEST_MODULE_FLAGS)"; \
			case "$(2)" in \
			only) pkgs=$$(cd test && go list ./... | grep -E '$(CROSS_SERVICE)');; \
			skip) pkgs=$$(cd test && go list ./... | grep -vE '$(CROSS_SERVICE)');; \
			esac; \
		fi; \
		echo "== go test $$m"; \
		(cd $$m && go test $$flags $$pkgs) 2>&1 | tee -a "$$log" || status=1; \
	done; \
	passed=$$(grep -c '^ok ' "$$log" || true); failed=$$(grep -c '^FAIL\s' "$$log" || true); rm -f "$$log"; \
	echo "packages: $$passed passed, $$failed failed"; \
	exit $$status
endef

# Fuzzing: every Go native fuzz test (func FuzzXxx(f *testing.F)) in the modules, found by
# scripts/fuzz.sh, each run alone for FUZZTIME (`go test -fuzz` takes one package and one
# target at a time). make test runs each for TEST_FUZZTIME after the tests (empty: skipped).
FUZZTIME      ?= 10s
TEST_FUZZTIME ?= 10s
FUZZ          ?= .

.PHONY: test
test: deps ## Run every test (unit, component on kinesalite/PostgreSQL, end-to-end) with -race, then each fuzz test for TEST_FUZZTIME (10s), as CI does.
	$(call go-test,$(MODULES),all)
	@if [[ -n "$(TEST_FUZZTIME)" ]]; then FUZZTIME='$(TEST_FUZZTIME)' FUZZ='$(FUZZ)' bash scripts/fuzz.sh $(MODULES); fi

.PHONY: fuzz
fuzz: ## Run every fuzz test of the modules for FUZZTIME each (10s; FUZZ=<regexp> selects targets by name, FUZZ_FLAGS adds go test flags).
	@FUZZTIME='$(FUZZTIME)' FUZZ='$(FUZZ)' bash scripts/fuzz.sh $(MODULES)

.PHONY: fuzz-list
fuzz-list: ## List the fuzz tests make fuzz runs (package directory and name).
	@FUZZ='$(FUZZ)' bash scripts/fuzz.sh --list $(MODULES)

.PHONY: test-short
test-short: deps ## Unit and component tests of every module, without the cross-service packages of test/: the loop while you work.
	$(call go-test,$(MODULES),skip)

.PHONY: test-e2e
test-e2e: deps ## Only the cross-service tests of test/ (e2e, chaos, group, league): the services built and run as processes, one package at a time.
	$(call go-test,test,only)

# make chaos: the long fault soak of test/chaos (TestChaosSoak), not part of make test, which
# runs the same test at a small size. Sizes and seed by variable; the report (markdown) is
# also written to CHAOS_REPORT.
CHAOS_EVENTS   ?= 100000
CHAOS_FAULTS   ?= 200
CHAOS_DURATION ?= 12m
CHAOS_SEED     ?= 0
CHAOS_REPORT   ?= $(CURDIR)/.run/chaos-report.md

.PHONY: chaos
chaos: deps ## The long fault soak (not in make test, ~15-20 min): >=100,000 events through >=200 random faults of every kind; prints lost, duplicated, dead letters, recovery p50/p99/max. CHAOS_EVENTS, CHAOS_FAULTS, CHAOS_DURATION, CHAOS_SEED size it.
	@mkdir -p $(dir $(CHAOS_REPORT))
	cd test && go test -race -count=1 -timeout 90m -v -run '^TestChaosSoak$$' ./chaos/ -args \
		-chaos.events=$(CHAOS_EVENTS) -chaos.faults=$(CHAOS_FAULTS) -chaos.duration=$(CHAOS_DURATION) \
		-chaos.seed=$(CHAOS_SEED) -chaos.report=$(CHAOS_REPORT)

# make bench: the pipeline measured with default settings, and its ceilings (raw Kinesis
# PutRecords/GetRecords, raw PostgreSQL COPY+upsert, Kinesis's read limit) in the same run
# (test/bench/cmd/bench; docs/performance.md). Not part of make test: it asserts nothing.
# BENCH_REV=HEAD measures that commit, exported clean, instead of the working tree.
BENCH_EVENTS ?= 200000
BENCH_OUT    ?= $(CURDIR)/out/bench.json
BENCH_REV    ?=
BENCH_FLAGS  ?=

.PHONY: bench
bench: deps ## Measure the pipeline (default settings, 4 shards) and its ceilings in one run, a few minutes: one table, also out/bench.json. BENCH_EVENTS (200000) sizes it.
	go run ./test/bench/cmd/bench -events $(BENCH_EVENTS) -shards $(BOXSCORE_SHARDS) -out $(BENCH_OUT) $(if $(BENCH_REV),-rev $(BENCH_REV)) $(BENCH_FLAGS)

.PHONY: generate
generate: ## Regenerate pkg/gen from proto/ with the pinned buf and plugins.
	cd proto && go tool buf generate

.PHONY: generate-check
generate-check: generate ## Fail when the committed generated code differs from what proto/ generates.
	git diff --exit-code -- pkg/gen
	@test -z "$$(git status --porcelain -- pkg/gen)" || { git status --porcelain -- pkg/gen; exit 1; }

# buf breaking compares proto/ with this input: main's last commit by default (on a fresh clone
# of main that is the tree itself, so it passes; on a branch it is the contract being changed).
# Override with any buf input, e.g. BUF_BREAKING_AGAINST='https://github.com/o/r.git#branch=main,subdir=proto'.
BUF_BREAKING_AGAINST ?= $(shell git rev-parse --path-format=absolute --git-common-dir 2>/dev/null)\#branch=main,subdir=proto
# golangci-lint is pinned in its own module, .ci/tools, outside go.work (see its go.mod).
GOLANGCI_LINT := $(BIN)/golangci-lint

$(GOLANGCI_LINT): .ci/tools/go.mod .ci/tools/go.sum
	GOWORK=off go build -C .ci/tools -o $(CURDIR)/$@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: lint
lint: build-modules $(GOLANGCI_LINT) ## buf lint, format and breaking (against main); gofmt, go vet and golangci-lint over every module; each module built alone.
	cd proto && go tool buf lint
	cd proto && go tool buf format -d --exit-code
	@if git show-ref --quiet --verify refs/heads/main || [[ "$(origin BUF_BREAKING_AGAINST)" != file ]]; then \
		echo "cd proto && go tool buf breaking --against '$(BUF_BREAKING_AGAINST)'"; \
		cd proto && go tool buf breaking --against '$(BUF_BREAKING_AGAINST)'; \
	else \
		echo "buf breaking: skipped, no local branch main to compare with (fetch it or set BUF_BREAKING_AGAINST)"; \
	fi
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); exit 1; }
	@for m in $(MODULES); do (cd $$m && go vet ./...); done
	@status=0; for m in $(MODULES); do \
		echo "== golangci-lint $$m"; (cd $$m && $(CURDIR)/$(GOLANGCI_LINT) run ./...) || status=1; \
	done; exit $$status

.PHONY: build-modules
build-modules: ## Build every module alone (GOWORK=off), as its image does: each go.mod and go.sum must be complete.
	@status=0; for m in $(MODULES); do \
		echo "== GOWORK=off go build $$m"; \
		(cd $$m && GOWORK=off go build ./... && GOWORK=off go list -test -deps ./... >/dev/null) || status=1; \
	done; exit $$status

# The local gateway authenticates producers like a deployed one: `make up` makes the key of
# producer `local` once (scripts/local-api-key.sh) and starts the gateway with its keys file.
LOCAL_API_KEY  := .run/api-key
LOCAL_API_KEYS := .run/api-keys.yaml

.PHONY: up
up: build deps ## Start the local stack: PostgreSQL, kinesalite (or KINESIS_ENDPOINT=<a Kinesis that runs>) and the four services (logs in .run/logs); the gateway takes the API key in .run/api-key, made once.
	@KINESIS_ENDPOINT='$(KINESIS_ENDPOINT)' bash $(STACK) deps
	@bash scripts/local-api-key.sh $(BIN)/boxscore
	@export BOXSCORE_KINESIS_ENDPOINT='$(or $(KINESIS_ENDPOINT),http://127.0.0.1:$(KINESIS_PORT))' \
		BOXSCORE_DATABASE_URL='postgres://postgres@127.0.0.1:5432/$(BOXSCORE_DB)?sslmode=disable'; \
	export BOXSCORE_LEASE_DATABASE_URL=$$BOXSCORE_DATABASE_URL; \
	bash $(STACK) start-service --admin-port 9103 loader $(BIN)/loader && \
	bash $(STACK) start-service --admin-port 9102 transformer $(BIN)/transformer && \
	bash $(STACK) start-service --admin-port 9104 shard-consumer $(BIN)/shard-consumer && \
	BOXSCORE_API_KEYS_FILE='$(CURDIR)/$(LOCAL_API_KEYS)' bash $(STACK) start-service --admin-port 9101 ingest-gateway $(BIN)/ingest-gateway
	@echo "Boxscore is up: POST events to http://127.0.0.1:8080/v1/stats with the API key of producer 'local' in $(LOCAL_API_KEY):"
	@echo "  export BOXSCORE_API_KEY=\$$(cat $(LOCAL_API_KEY))"
	@echo "  curl -H \"Authorization: Bearer \$$BOXSCORE_API_KEY\" -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson http://127.0.0.1:8080/v1/stats"
	@echo "  bin/boxscore replay|extract --post|retract|dlq replay use \$$BOXSCORE_API_KEY, else $(LOCAL_API_KEY) of this checkout"

.PHONY: down
down: ## Stop the local stack (services, then kinesalite). Data in PostgreSQL and .run/ stays.
	@bash $(STACK) stop

.PHONY: status
status: ## Show what the local stack runs.
	@bash $(STACK) status

.PHONY: demo
demo: up ## The season demo: stack up, the CSV into local S3, replayed day by day (with the local API key), the report and chart.
	@BOXSCORE_API_KEY="$$(cat $(LOCAL_API_KEY))" bash k8s/local/demo.sh

.PHONY: demo-league
demo-league: up ## The league demo: stack up, a generated month of a 30-team season into local S3, replayed through the pipeline, the league leaderboards.
	@BOXSCORE_API_KEY="$$(cat $(LOCAL_API_KEY))" bash k8s/local/demo-league.sh

.PHONY: images
images: ## Build and push the four service images and the boxscore CLI's (the extractor CronJob's) with ko (needs ko and a registry: KO_DOCKER_REPO=<registry/prefix>).
	@command -v ko >/dev/null || { echo "ko is not installed: https://ko.build/install/"; exit 1; }
	@test -n "$${KO_DOCKER_REPO:-}" || { echo "set KO_DOCKER_REPO to the registry to push to, e.g. KO_DOCKER_REPO=123456789012.dkr.ecr.us-east-1.amazonaws.com/boxscore"; exit 1; }
	VERSION=$(VERSION) ko build --base-import-paths --tags $(VERSION) $(addprefix ./services/,$(SERVICES)) ./cmd/boxscore

.PHONY: helm-lint
helm-lint: ## helm lint --strict and helm template of charts/boxscore over every CI value file, objects decoded strictly (pinned Helm SDK).
	cd charts/test && go test -count=1 -run 'TestLintStrict|TestRenderedObjectsHoldPolicies|TestSchemaRejectsTypos|TestSkaffoldConfig' ./...
