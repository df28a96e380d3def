#!/usr/bin/env bash
# make bench: the xDS load tool at N=100 and N=1,000 against the bookinfo example
# and a generated mesh of 1,000 services (file mode), then the Kubernetes-mode run
# (BenchmarkKubeConvergence in e2e/; BENCH_KUBE=0 skips it). Prints one line per
# run and keeps the JSON reports in bench/out/ so the next run can be compared as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
NS=${BENCH_N:-"100 1000"}
CHANGES=${BENCH_CHANGES:-5}
mkdir -p "$OUT"
go build -o bin/mizzen ./cmd/mizzen
go build -o bin/xdsload ./cmd/xdsload
go run ./bench/genmesh -n 1000 -out "$OUT" >/dev/null

rm -rf "$OUT/bookinfo" && mkdir -p "$OUT/bookinfo"
cp examples/bookinfo/*.yaml "$OUT/bookinfo/"
cp bench/bookinfo-variants/b.yaml "$OUT/bookinfo/reviews-vs.yaml"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$OUT/results-$stamp.jsonl"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT

run() { # name config-dir change-file variant-dir n
  local name=$1 dir=$2 change=$3 variants=$4 n=$5
  local port=$((25000 + RANDOM % 5000))
  # Each run starts from variant b, so its first change (to a) really changes something.
  cp "$variants/b.yaml" "$change"
  ./bin/mizzen serve --config-dir "$dir" --xds-addr "127.0.0.1:$port" --monitoring-addr "127.0.0.1:$((port + 1))" \
    --log-level warn 2>"$OUT/mizzen-$name-$n.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$((port + 1))/ready" >/dev/null && break; sleep 0.1; done
  local rc=0
  ./bin/xdsload --xds-addr "127.0.0.1:$port" -n "$n" --pid "$pid" \
    --change-file "$change" --change-file-a "$variants/a.yaml" --change-file-b "$variants/b.yaml" \
    --change-count "$CHANGES" --change-interval 2s --timeout 30s --json >"$OUT/$name-$n.json" || rc=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  python3 - "$name" "$n" "$OUT/$name-$n.json" "$rc" <<'PY' | tee -a "$results.txt"
import json, sys
name, n, path, rc = sys.argv[1:]
r = json.load(open(path))
fmt = lambda v: "-" if v is None else f"{v:.0f}"
print(f"{name:9} N={n:>5}  initial={fmt(r.get('initial_convergence_ms'))}ms  change p50={fmt(r.get('p50_ms'))}ms p99={fmt(r.get('p99_ms'))}ms  "
      f"cpu={r.get('cpu_seconds', 0):.2f}s  rss_peak={r.get('rss_bytes_peak', 0)/2**20:.0f}MiB rss_final={r.get('rss_bytes_final', 0)/2**20:.0f}MiB  "
      f"converged={'yes' if r.get('all_converged') else 'NO'} exit={rc}")
PY
  jq -c --arg name "$name" --argjson n "$n" '. + {run: $name, proxies: $n}' "$OUT/$name-$n.json" >>"$results" 2>/dev/null || true
}

echo "mizzen bench $(git rev-parse --short HEAD) $(date -u)  ($(nproc) cores)"
for n in $NS; do
  run bookinfo "$OUT/bookinfo" "$OUT/bookinfo/reviews-vs.yaml" bench/bookinfo-variants "$n"
  run mesh1000 "$OUT/mesh" "$OUT/mesh/vs-svc-0.yaml" "$OUT/variants" "$n"
done

# Kubernetes mode: a real kube-apiserver (built once into ~/.cache/mizzen-e2e) filled
# through the API with 1,000 Services / 5,000 endpoints, N=1,000 simulated proxies.
# BENCH_KUBE=0 skips it; MIZZEN_BENCH_SERVICES / MIZZEN_BENCH_PROXIES scale it.
if [ "${BENCH_KUBE:-1}" != 0 ]; then
  set +e
  MIZZEN_BIN="$PWD/bin/mizzen" MIZZEN_BENCH_STAMP="$stamp" \
    go test -run '^$' -bench BenchmarkKubeConvergence -benchtime 1x -timeout 30m ./e2e/ 2>&1 |
    tee "$OUT/kube-$stamp.log" | grep --line-buffered -E '^(kube-bench |Benchmark|--- FAIL|FAIL)' | tee -a "$results.txt"
  kube_rc=${PIPESTATUS[0]}
  set -e
  echo "kube: exit=$kube_rc, $OUT/results-kube-$stamp.jsonl, full log: $OUT/kube-$stamp.log"
  [ "$kube_rc" = 0 ] || { tail -40 "$OUT/kube-$stamp.log"; exit "$kube_rc"; }
fi
echo "reports: $OUT/*.json, summary: $results.txt"
