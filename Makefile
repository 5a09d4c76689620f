# connectord developer tasks. Recipes use tabs.
SHELL := /bin/bash

BIN     := bin/connectord
PKG     := ./cmd/connectord
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE   ?= connectord
LDFLAGS := -X main.version=$(VERSION)

# Go files to check with gofmt: everything except hidden dirs (.git, .devdb,
# .dev), vendor/ and testdata/.
GOFILES_CMD := find . -type d \( -name '.?*' -o -name vendor -o -name testdata \) -prune -o -type f -name '*.go' -print

.PHONY: all build test run fmt lint docker clean devdb-stop

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN) $(PKG)

# devdb.sh finds or starts PostgreSQL and prints export lines; the assignment
# makes a devdb.sh failure stop the recipe (a bare eval "$(...)" would not).
# openapi-check.sh validates api/openapi.yaml with a second, npm validator
# (it runs npm ci in tools/openapi-check itself). chromium.sh finds the
# headless Chromium the console's browser test drives, installs Debian's
# package when run as root with apt-get, or stops saying what to install.
test:
	scripts/openapi-check.sh
	exports="$$(scripts/devdb.sh)" && eval "$$exports" && \
	browser="$$(scripts/chromium.sh)" && eval "$$browser" && \
	go vet ./... && go test -race -count=1 ./...

run:
	scripts/devrun.sh

fmt:
	go fmt ./...

lint:
	@out="$$($(GOFILES_CMD) | xargs -r gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

docker:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

devdb-stop:
	scripts/devdb.sh stop

clean:
	rm -rf bin
