# redis-appliance. `make help` lists the targets.

GO          ?= go
BIN         := bin/redis-appliance
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
# Pinned so that every machine lints alike.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Debian packages the appliance and its tests run against.
DEB_RUN     := redis-server redis-tools
DEB_TEST    := $(DEB_RUN) redis-sentinel systemd-container python3-redis iproute2 lintian rpm bash-completion tmux

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/redis-appliance (static, CGO off)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/redis-appliance

.PHONY: package
package: ## Build dist/redis-appliance_<version>_amd64.deb and .rpm (nfpm v2.45.2; version: docs/install.md)
	GO=$(GO) ./scripts/package

.PHONY: deps-run
deps-run:
	@./scripts/debian-deps $(DEB_RUN)

.PHONY: deps-test
deps-test:
	@./scripts/debian-deps $(DEB_TEST)

.PHONY: run
run: deps-run build ## Build and run a single-node appliance in the foreground (embedded default config)
	@echo "In another terminal: export PATH=$(CURDIR)/bin:\$$PATH; redis-appliance db create cache --memory 256mb"
	$(BIN) agent

.PHONY: unit
unit: ## Unit and integration tests with the race detector (real redis-server; systemd/ also boots an nspawn host)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /e2e -e /lab$$)

.PHONY: e2e
e2e: build ## End-to-end tests in real systemd (systemd-nspawn; needs root)
	$(GO) test -count=1 -timeout 40m ./lab/ ./e2e/

# Fuzz targets, as package:function. `make test` runs each for a few
# seconds; `make fuzz` for FUZZTIME each.
FUZZ_TARGETS := ./appliance/sizing:FuzzParseSize ./appliance/sentinel:FuzzReadCommand \
	./raftstate:FuzzFSMApply ./raftstate:FuzzCheckName ./raftstate:FuzzCheckInstanceID ./raftstate:FuzzCheckHost
FUZZTIME ?= 2m

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 2m; make test runs them for 5s)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

.PHONY: test
test: deps-test lint unit ## Every test: lint, unit, fuzz (briefly), integration and real-systemd end-to-end
	$(MAKE) fuzz FUZZTIME=5s
	$(MAKE) e2e

.PHONY: lint
lint: ## gofmt, go vet and the pinned staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: bench
bench: deps-test build ## Benchmarks that print figures (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchtime 200x ./appliance/reconcile/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./tui/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 75m ./e2e/

.PHONY: clean
clean: ## Remove build output
	rm -rf bin dist
