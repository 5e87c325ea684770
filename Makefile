# docker-dtr: a Docker CLI plugin that backs up, verifies and restores DTR.

GO         ?= go
PKG        := github.com/docker-dtr/docker-dtr
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT)
PLUGIN_DIR ?= $(HOME)/.docker/cli-plugins
BIN        := bin/docker-dtr
# Time each fuzz target runs (.ci/run: 20s); 0 skips fuzzing.
FUZZTIME   ?= 15s
# Each new input is shrunk for at most this many runs (Nx) or this long:
# Go's default of 60s would take a short run's whole time.
FUZZMINIMIZE ?= 1000x
# Fuzz targets as "package target" pairs, run one after another for
# FUZZTIME each: go test fuzzes one target of one package per run.
FUZZ_TARGETS := \
	./pkg/jsonl FuzzManifest \
	./pkg/archive FuzzVerify \
	./pkg/archive FuzzVerifyFast \
	./pkg/archive FuzzValidJSON \
	./pkg/archive FuzzEntryLine \
	./pkg/archive FuzzTarHeader \
	./pkg/imagearchive FuzzVerify \
	./pkg/crypt FuzzDecrypt

.PHONY: build cross install test bench fuzz lint clean docs

# The plugin runs on operators' machines; its linux builds also run as the
# tunnel agent on DTR nodes (--agent-binary).
CROSS := linux/amd64 linux/arm64 linux/ppc64le linux/s390x darwin/amd64 darwin/arm64 windows/amd64

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/docker-dtr

cross:
	@for p in $(CROSS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  echo "bin/docker-dtr-$$os-$$arch$$ext"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
	    -o bin/docker-dtr-$$os-$$arch$$ext ./cmd/docker-dtr || exit 1; \
	done

install: build
	install -d -m 0755 $(PLUGIN_DIR)
	install -m 0755 $(BIN) $(PLUGIN_DIR)/docker-dtr
	@echo "installed $(PLUGIN_DIR)/docker-dtr: try 'docker dtr --help'"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: lint
	$(GO) test -count=1 -timeout 30m ./...

# Three iterations each: the end-to-end benchmarks pair every run of ours
# with a run of the limit, alternating which goes first (one would not).
BENCHTIME ?= 3x

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem -timeout 90m ./...

# Crashers are written to the package's testdata/fuzz/<target>/: check them
# in once fixed, and plain `go test` runs them from then on.
fuzz:
	@case "$(FUZZTIME)" in 0|0s|0x) echo "FUZZTIME=$(FUZZTIME): fuzzing skipped"; exit 0;; esac; \
	set -- $(FUZZ_TARGETS); \
	while [ $$# -ge 2 ]; do \
	  echo "fuzz $$2 in $$1 for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$2\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$1 || exit 1; \
	  shift 2; \
	done

# docs/reference: one page per command, from the command tree; a test
# (internal/refdocs) fails when the pages are stale.
docs:
	$(GO) run ./internal/refdocs/cmd -o docs/reference

clean:
	rm -rf bin
