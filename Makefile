SHELL := /bin/bash
# hw: build, run and test. `make` builds bin/hw; `make run` starts a
# single-node cluster; `make test` runs every test (root needed for e2e).

GO      ?= go
BIN     := bin/hw
PKG     := github.com/hw-k8s/hw

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Versions of the embedded components, read from go.mod so they cannot drift.
modver   = $(shell awk '$$1 == "$(1)" { print $$2; exit }' go.mod)
K8S_VERSION        := $(call modver,k8s.io/kubernetes)
ETCD_VERSION       := $(call modver,go.etcd.io/etcd/server/v3)
CONTAINERD_VERSION := $(call modver,github.com/containerd/containerd/v2)
K8S_MAJOR := $(word 1,$(subst ., ,$(patsubst v%,%,$(K8S_VERSION))))
K8S_MINOR := $(word 2,$(subst ., ,$(patsubst v%,%,$(K8S_VERSION))))

LDFLAGS := -s -w \
	-X $(PKG)/pkg/version.Version=$(VERSION) \
	-X $(PKG)/pkg/version.GitCommit=$(COMMIT) \
	-X $(PKG)/pkg/version.Kubernetes=$(K8S_VERSION) \
	-X $(PKG)/pkg/version.Etcd=$(ETCD_VERSION) \
	-X $(PKG)/pkg/version.Containerd=$(CONTAINERD_VERSION) \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(K8S_MAJOR) \
	-X k8s.io/component-base/version.gitMinor=$(K8S_MINOR) \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=$(K8S_MAJOR) \
	-X k8s.io/client-go/pkg/version.gitMinor=$(K8S_MINOR) \
	-X k8s.io/client-go/pkg/version.gitTreeState=clean \
	-X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)

# Run `hw server` with these extra flags: make run ARGS="--debug".
ARGS ?=

.PHONY: all build run test test-unit test-e2e vet fmt clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hw

run: build
	./$(BIN) server $(ARGS)

test: test-unit test-e2e

test-unit:
	$(GO) test -count=1 ./...

# End-to-end tests run real hw processes in network namespaces; they need root.
test-e2e: build
	HW_BIN=$(abspath $(BIN)) $(GO) test -tags e2e -count=1 -timeout 40m -v ./tests/e2e/ 2>&1 | tee e2e.log; \
		exit $${PIPESTATUS[0]}

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...

fmt:
	gofmt -l -w cmd pkg tests

clean:
	rm -rf bin e2e.log
