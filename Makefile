# Rampart build, test and development entry points. See README.md.
SHELL := /bin/bash
GO        ?= go
BIN       := bin
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: build test unit e2e dev bench lint clean packages console-player

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

# .deb and .rpm of rampartd and rampart-agent in dist/, built with nfpm (a Go
# tool dependency in go.mod: go tool nfpm). PKG_ARCH picks the architecture
# (a GOARCH name); docs/install.md lists what each package installs.
PKG_VERSION ?= $(shell sed -n 's/^const Version = "\(.*\)"$$/\1/p' api/version.go)
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
DIST        := dist

packages:
	rm -rf $(DIST) && mkdir -p $(DIST)/stage
	CGO_ENABLED=0 GOOS=linux GOARCH=$(PKG_ARCH) $(GO) build -trimpath -o $(DIST)/stage/rampartd ./cmd/rampartd
	CGO_ENABLED=0 GOOS=linux GOARCH=$(PKG_ARCH) $(GO) build -trimpath -o $(DIST)/stage/rampart-agent ./cmd/rampart-agent
	@# The packaged node serves the agent it ships (packaging/rampartd.nfpm.yaml).
	sed 's|^  binary_dir: ""$$|  binary_dir: /usr/lib/rampart/agents   # where the rampartd package puts the agent|' configs/rampartd.yaml >$(DIST)/stage/rampartd.yaml
	grep -q '^  binary_dir: /usr/lib/rampart/agents ' $(DIST)/stage/rampartd.yaml
	for pkg in rampartd rampart-agent; do for fmt in deb rpm; do \
	  PKG_VERSION=$(PKG_VERSION) PKG_ARCH=$(PKG_ARCH) $(GO) tool nfpm package --config packaging/$$pkg.nfpm.yaml --packager $$fmt --target $(DIST)/ || exit 1; \
	done; done

# The console's asciinema-player (gateway/console/assets), rebuilt from npm at
# the version gateway/console/player/package-lock.json pins.
console-player:
	gateway/console/player/build.sh

clean:
	rm -rf $(BIN) $(DIST) e2e.out
