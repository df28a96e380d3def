#!/usr/bin/env bash
# make bench-istiod: mizzen and istiod side by side on one kube-apiserver (issue 12).
# BenchmarkKubeConvergence (e2e/kubebench_test.go) creates the mesh once (1,000
# Services × 5 endpoints, DestinationRules, VirtualServices, some with sourceLabels),
# then for each xDS mode runs the same load — N simulated sidecars, replicas of N/2
# distinct workloads in 5 namespaces — against a fresh mizzen, then against a fresh
# istiod (pilot-discovery built from istio.io/istio by the rig, cached), and prints the
# ratios mizzen/istiod with the issue's acceptance bounds. Not part of `make test`.
#
#   BENCH_MODES=delta        xDS modes (istio-agent speaks delta by default)
#   BENCH_KUBE_CHANGES=1     rounds of each change kind
#   MIZZEN_BENCH_SERVICES / MIZZEN_BENCH_PROXIES / MIZZEN_BENCH_WORKLOADS /
#   MIZZEN_BENCH_NAMESPACES / MIZZEN_BENCH_SOURCE_LABEL_VS  scale it (bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
go build -o bin/mizzen ./cmd/mizzen
stamp=istiod-$(date -u +%Y%m%dT%H%M%SZ)
echo "mizzen vs istiod $(git rev-parse --short HEAD) $(date -u)  ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
set +e
MIZZEN_BIN="$PWD/bin/mizzen" MIZZEN_BENCH_STAMP="$stamp" MIZZEN_BENCH_CONTROL_PLANES="mizzen istiod" \
  MIZZEN_BENCH_MODES="${BENCH_MODES:-delta}" MIZZEN_BENCH_CHANGES="${BENCH_KUBE_CHANGES:-1}" \
  go test -run '^$' -bench BenchmarkKubeConvergence -benchtime 1x -timeout 90m ./e2e/ 2>&1 |
  tee "$OUT/kube-$stamp.log" | grep --line-buffered -E '^(kube-bench |Benchmark|--- FAIL|FAIL)' | tee "$OUT/results-kube-$stamp.txt"
rc=${PIPESTATUS[0]}
set -e
echo "exit=$rc; $OUT/results-kube-$stamp.jsonl (one line per control plane × mode), control plane logs $OUT/kube-$stamp-*.log, full output $OUT/kube-$stamp.log"
[ "$rc" = 0 ] || { tail -40 "$OUT/kube-$stamp.log"; exit "$rc"; }
