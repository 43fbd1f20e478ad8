# surge: `make run` brings the pipeline up locally; `make test` runs the suite.
SHELL := /bin/bash
GO ?= go
PORT ?= 8080
BIN := .surge/bin

.PHONY: run test deps build unit clean

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./web ./worker ./result ./stack

deps:
	@./stack/deps.sh

run: deps build
	@$(BIN)/stack run --port $(PORT) --dir .surge --bin $(BIN)

# The whole suite: unit, integration (real Redis, Postgres, HAProxy) and end to end.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# Pure unit tests only (no servers).
unit:
	$(GO) test -count=1 -short ./...

clean:
	rm -rf .surge
