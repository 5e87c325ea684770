# docker-dtr: a Docker CLI plugin that backs up, verifies and restores DTR.

GO         ?= go
PKG        := github.com/docker-dtr/docker-dtr
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT)
PLUGIN_DIR ?= $(HOME)/.docker/cli-plugins
BIN        := bin/docker-dtr
# Fuzz budget: empty runs each target for its own number of executions
# (below, about 15 s each on 2 CPUs); any -fuzztime value (5000x, 1m) runs
# every target for that; 0 skips fuzzing. Counts rather than durations: Go's
# fuzz coordinator up to 1.26 can fail a run at a -fuzztime deadline with a
# bare "context deadline exceeded" (go.dev/issue/75804), and a count has no
# deadline to race.
FUZZTIME   ?=
# Each new input is shrunk for at most this many runs (Nx) or this long:
# Go's default of 60s would take a short run's whole time.
FUZZMINIMIZE ?= 1000x
# Fuzz targets as "package target executions" triples, run one after another:
# go test fuzzes one target of one package per run. The counts differ because
# the targets' speeds do (1.3k to 40k executions a second).
FUZZ_TARGETS := \
	./pkg/jsonl FuzzManifest 300000x \
	./pkg/archive FuzzVerify 20000x \
	./pkg/archive FuzzVerifyFast 30000x \
	./pkg/archive FuzzValidJSON 200000x \
	./pkg/archive FuzzDocumentRules 100000x \
	./pkg/archive FuzzEntryLine 300000x \
	./pkg/archive FuzzTarHeader 400000x \
	./pkg/imagearchive FuzzVerify 20000x \
	./pkg/imagearchive FuzzBlobDigest 200000x \
	./pkg/agent FuzzListLine 30000x \
	./pkg/crypt FuzzDecrypt 350000x \
	./pkg/zstdstream FuzzReader 100000x

.PHONY: build cross install test bench fuzz lint clean docs sandbox sandbox-down

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

# A DTR-shaped cluster on the local engine to rehearse the runbook on
# (internal/sandbox): the real RethinkDB with DTR's TLS, a real registry
# with a few images, DTR's names, volumes and network, and the Docker
# context dtr-sandbox. REPLICAS=3 for three replicas. 'make sandbox-down'
# removes all of it; 'make test' does too (its fixture sweeps the engine).
REPLICAS ?= 1

sandbox:
	REPLICAS=$(REPLICAS) $(GO) run ./internal/sandbox up

sandbox-down:
	$(GO) run ./internal/sandbox down

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# The plugin ships for darwin and windows too ('make cross'): every
	@# package, test-only ones included, must build there.
	GOOS=windows $(GO) build ./...
	GOOS=darwin $(GO) build ./...

test: lint
	$(GO) test -count=1 -timeout 60m ./...

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
	while [ $$# -ge 3 ]; do \
	  budget="$(FUZZTIME)"; budget="$${budget:-$$3}"; \
	  echo "fuzz $$2 in $$1 for $$budget"; \
	  $(GO) test -run '^$$' -fuzz "^$$2\$$" -fuzztime "$$budget" -fuzzminimizetime $(FUZZMINIMIZE) $$1 || exit 1; \
	  shift 3; \
	done

# docs/reference: one page per command, from the command tree; a test
# (internal/refdocs) fails when the pages are stale.
docs:
	$(GO) run ./internal/refdocs/cmd -o docs/reference

clean:
	rm -rf bin
