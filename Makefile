# Run `make help` for the targets. Every target runs from the repository root.
SHELL := /bin/bash
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help build test bench lint demo fuzz clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-7s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)

build: ## Build bin/profile-controller (version from git describe)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/profile-controller ./cmd/profile-controller

test: ## Everything CI runs: vet, lint, unit + e2e tests with -race, fuzzing; ends "N passed, M failed"
	./hack/test.sh

bench: ## Benchmarks of ./pkg/... (6 runs each), with a table of medians
	./hack/bench.sh

lint: ## gofmt, go vet and golangci-lint (each also with -tags e2e), shellcheck, go mod tidy -diff
	source hack/lib.sh && check_gofmt
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	source hack/lib.sh && run_lint
	source hack/lib.sh && ensure_tool shellcheck shellcheck && run_shellcheck
	$(GO) mod tidy -diff

demo: ## Self-contained demo on a temp HERMES_HOME with a real s6-svscan and a fake gateway
	./hack/demo.sh

fuzz: ## Run every Fuzz* target for its execution-count budget (FUZZTIME=30s or 50000x overrides)
	./hack/fuzz.sh

clean: ## Remove bin/
	rm -rf bin
