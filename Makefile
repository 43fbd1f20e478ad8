# surge: `make run` brings the pipeline up locally; `make test` runs the suite.
SHELL := /bin/bash
GO ?= go
PORT ?= 8080
BIN := .surge/bin

.PHONY: chaos run test deps test-deps build unit clean image test-stack

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./web ./worker ./result ./stack

deps:
	@./stack/deps.sh etcd-server patroni

# The servers, Chromium for the browser tests, prometheus (its promtool
# checks and unit-tests stack/monitoring/rules.yml), etcd-server and patroni
# (the Postgres failover tests), and what test-stack needs: ruby and vagrant
# (the Vagrant checks), debootstrap (the stand-in images). One apt-get
# update and one install of all that is missing.
test-deps:
	@./stack/deps.sh chromium prometheus etcd-server patroni ruby vagrant debootstrap

# ARGS adds flags: make run ARGS='--postgres-members 1' (see stack run --help).
run: deps build
	@$(BIN)/stack run --port $(PORT) --dir .surge --bin $(BIN) $(ARGS)

# The whole suite: unit, integration (real Redis, Postgres, HAProxy), end to
# end, then the deployment (test-stack). Everything is compiled as the image
# is (static, -trimpath), so the image build in test-stack finds every
# package in Go's build cache and only links. Each phase prints its time.
test: export CGO_ENABLED := 0
test: export GOFLAGS := $(strip $(GOFLAGS) -trimpath)
test:
	@t=$$SECONDS; $(MAKE) --no-print-directory test-deps && echo "make test: deps in $$((SECONDS - t))s"
	@t=$$SECONDS; echo "$(GO) vet ./..." && $(GO) vet ./... && echo "make test: go vet in $$((SECONDS - t))s"
	@t=$$SECONDS; echo "$(GO) test -count=1 -timeout 20m ./..." && $(GO) test -count=1 -timeout 20m ./... && \
		echo "make test: go test in $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory test-stack && echo "make test: test-stack in $$((SECONDS - t))s"

# Pure unit tests only (no servers).
unit:
	$(GO) test -count=1 -short ./...

# Every fuzz target (a func FuzzXxx in a _test.go file), one after another,
# each for FUZZTIME: go test takes one -fuzz target per package run. A failing
# input lands in the package's testdata/fuzz/<FuzzName>/, which plain
# `go test` then replays. FuzzAdminItem needs Postgres, hence deps.
FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: deps
	@failed=; \
	for file in $$(grep -rl --include='*_test.go' --exclude-dir=.surge --exclude-dir=.git '^func Fuzz' . | sort); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$target in $$(dirname $$file) for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$(dirname $$file) || failed="$$failed $$target"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

clean:
	rm -rf .surge

# The container image: static binaries built here, then FROM scratch (no pull).
IMAGE ?= surge
TAG ?= latest
DIST := .surge/dist
image:
	@mkdir -p $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(DIST)/ ./web ./worker ./result ./stack/healthcheck
	docker build --pull=false -t $(IMAGE):$(TAG) \
		--build-arg VERSION=$$(git describe --always --dirty 2>/dev/null || echo dev) .
	@v=$$(git describe --always --dirty 2>/dev/null) && [ -n "$$v" ] && docker tag $(IMAGE):$(TAG) $(IMAGE):$$v && echo "tagged $(IMAGE):$(TAG) $(IMAGE):$$v" || true

# docker-stack.yml on a real three-node Swarm of Docker-in-Docker nodes (SKIP
# without a Docker engine),
# plus the offline Vagrant checks.
test-stack:
	@./stack/deploy/test-stack.sh

.PHONY: bench load

# The performance ratios, side by side in one run (7 to 12 minutes on 2 cores;
# not part of `make test`): bench/results.json and the table in bench/README.md.
bench: deps build
	$(GO) build -o $(BIN)/ ./bench/bare
	$(GO) run ./bench --bin $(BIN)

# Load the stack that `make run` started, e.g.
#   make load ARGS='--rate 2000 --duration 20s --verify'
load: build
	@$(BIN)/stack load $(ARGS)

# The chaos suite at full size: every schedule under >=100k votes and >=10k
# orders, verified; prints the table (also in .surge/chaos/table.md).
chaos: test-deps
	$(GO) test -count=1 -v -timeout 60m -run TestChaos ./internal/chaos/ -args -chaos.full
