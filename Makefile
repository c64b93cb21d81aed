# Rampart build, test and development entry points. See README.md.
SHELL := /bin/bash
GO        ?= go
BIN       := bin
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: build test unit e2e dev bench lint clean

build:
	$(GO) build -o $(BIN)/rampartd ./cmd/rampartd
	$(GO) build -o $(BIN)/rampart-agent ./cmd/rampart-agent
	$(GO) build -o $(BIN)/rampart ./cmd/rampart

# Everything CI runs: unit and integration tests with the race detector, then
# the end-to-end tests that drive the real binaries as separate processes.
test: unit e2e

unit:
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)

e2e: build
	@RAMPART_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -v ./e2e/... 2>&1 | tee e2e.out | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' ; \
	rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then \
	  echo "== e2e failed; the output of each failed test (all of it in e2e.out):"; \
	  awk -f scripts/failed-tests.awk e2e.out | tail -400; fi; exit $$rc

# One self-contained node on the embedded defaults, data under ./data, and a
# demo target to reach through it (scripts/dev.sh, docs/quickstart.md).
# Addresses and the data dir are make variables: make dev DEV_IP=127.0.0.5.
dev: build
	BIN=$(BIN) scripts/dev.sh

# Benchmarks; results and the commands that made them go to docs/benchmarks.md.
bench: build
	RAMPART_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./raftstore/ ./e2e/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf $(BIN) e2e.out
