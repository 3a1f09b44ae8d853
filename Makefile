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

# Programs hw carries inside its binary, built from source here, never fetched.
RUNC_VERSION := v1.5.2
CNI_VERSION  := v1.9.1
CNI_PLUGINS  := main/bridge ipam/host-local main/loopback meta/portmap meta/bandwidth
CRICTL_VERSION := v1.37.0
ASSETS       := pkg/assets/files
BUILD        := build

# Run `hw server` with these extra flags: make run ARGS="--debug".
ARGS ?=

.PHONY: all build assets run test test-unit test-e2e bench vet fmt clean dist image host-packages-run host-packages-test

all: build

build: assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hw

# runc is linked statically (with libseccomp) so hw needs no runc or
# libseccomp on the host. `go install pkg@version` builds each tool against its
# own go.mod, so hw's dependency graph is untouched.
assets:
	@mkdir -p $(BUILD)/bin
	GOBIN=$(abspath $(BUILD)/bin) CGO_ENABLED=1 $(GO) install -tags "seccomp netgo osusergo" \
		-ldflags "-s -w -extldflags -static" github.com/opencontainers/runc@$(RUNC_VERSION)
	GOBIN=$(abspath $(BUILD)/bin) CGO_ENABLED=0 $(GO) install -ldflags "-s -w" \
		$(foreach p,$(CNI_PLUGINS),github.com/containernetworking/plugins/plugins/$(p)@$(CNI_VERSION))
	# crictl, against its own go.mod like runc: `hw crictl` runs it.
	GOBIN=$(abspath $(BUILD)/bin) CGO_ENABLED=0 $(GO) install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(CRICTL_VERSION)" \
		sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(BUILD)/bin/pause ./scripts/images/pause
	# containerd's runc shim, from the containerd module hw links (a `tool` in
	# go.mod): one runs per pod, so it must be small and quick to start.
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)" \
		-o $(BUILD)/bin/containerd-shim-runc-v2 \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	$(GO) run ./scripts/buildtool image -ref hw.local/pause:1 -entrypoint /pause -out $(BUILD)/pause.tar $(BUILD)/bin/pause:pause
	$(GO) run ./scripts/buildtool pack -out $(ASSETS) $(BUILD)/bin/runc $(BUILD)/bin/containerd-shim-runc-v2 $(BUILD)/bin/crictl \
		$(foreach p,$(CNI_PLUGINS),$(BUILD)/bin/$(notdir $(p))) $(BUILD)/pause.tar

# A release in the layout install.sh downloads from (GitHub's):
# download/<version>/hw-<arch> and latest/download/hw-<arch>, each with its
# .sha256, and install.sh beside them.
ARCH ?= $(shell $(GO) env GOARCH)
DIST := dist
dist: build
	rm -rf $(DIST)
	mkdir -p $(DIST)/download/$(VERSION) $(DIST)/latest
	cp $(BIN) $(DIST)/download/$(VERSION)/hw-$(ARCH)
	cp install.sh $(DIST)/download/$(VERSION)/
	cd $(DIST)/download/$(VERSION) && sha256sum hw-$(ARCH) >hw-$(ARCH).sha256
	cp -r $(DIST)/download/$(VERSION) $(DIST)/latest/download

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t hw:$(VERSION) .

# `make run` and `make test` first install missing apt packages (as root), so
# a fresh Debian/Ubuntu machine needs nothing else; see scripts/host-packages.sh.
host-packages-run host-packages-test: host-packages-%:
	scripts/host-packages.sh $*

run: host-packages-run
	$(MAKE) build
	./$(BIN) server $(ARGS)

test: host-packages-test
	$(MAKE) test-unit test-e2e

test-unit:
	$(GO) test -count=1 -timeout 45m ./...

# End-to-end tests run real hw processes in network namespaces; they need root.
test-e2e: build
	HW_BIN=$(abspath $(BIN)) $(GO) test -tags e2e -count=1 -timeout 40m -v ./tests/e2e/ 2>&1 | tee e2e.log; \
		exit $${PIPESTATUS[0]}

# Benchmarks (root, like the e2e tests): prints a table and writes it to
# docs/benchmarks.md. See that file for how to measure another distribution.
bench: build host-packages-test
	HW_BIN=$(abspath $(BIN)) $(GO) test -tags 'e2e bench' -count=1 -timeout 60m -v -run TestBench ./tests/e2e/

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	$(GO) vet -tags 'e2e bench' ./tests/...

fmt:
	gofmt -l -w cmd pkg tests

clean:
	rm -rf bin $(BUILD) $(DIST) e2e.log
	find $(ASSETS) -type f ! -name README.md -delete
