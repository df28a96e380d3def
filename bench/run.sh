#!/usr/bin/env bash
# make bench: the xDS load tool at N=100 and N=1,000, in state-of-the-world and in
# delta mode, against the bookinfo example (route changes) and a generated mesh of
# 1,000 services (file mode: route changes and endpoint changes), then the
# Kubernetes-mode run (BenchmarkKubeConvergence in e2e/, both modes; BENCH_KUBE=0
# skips it). Prints one line per run and a side-by-side table of the modes, and keeps
# the JSON reports in bench/out/ so the next run can be compared as ratios.
#
#   BENCH_N="100 1000"      proxies per run
#   BENCH_MODES="sotw delta" xDS modes of the load tool (and of the Kubernetes run)
#   BENCH_CHANGES=5          changes per run (file mode)
#   BENCH_KUBE_CHANGES=5     rounds of each change kind (Kubernetes mode)
#   BENCH_PPROF=1            also save CPU profiles of mizzen during the changes
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
NS=${BENCH_N:-"100 1000"}
MODES=${BENCH_MODES:-"sotw delta"}
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
prof=""
cleanup() {
  [ -n "$prof" ] && kill "$prof" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT

run() { # name config-dir change-file variant-a variant-b n mode
  local name=$1 dir=$2 change=$3 va=$4 vb=$5 n=$6 mode=$7
  local port=$((25000 + RANDOM % 5000))
  local tag="$name-$mode-$n"
  # Each run starts from variant b, so its first change (to a) really changes something.
  cp "$vb" "$change"
  ./bin/mizzen serve --config-dir "$dir" --xds-addr "127.0.0.1:$port" --monitoring-addr "127.0.0.1:$((port + 1))" \
    --log-level warn 2>"$OUT/mizzen-$tag.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$((port + 1))/ready" >/dev/null && break; sleep 0.1; done
  local rc=0 load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  ./bin/xdsload --xds-addr "127.0.0.1:$port" -n "$n" --mode "$mode" --pid "$pid" \
    --change-file "$change" --change-file-a "$va" --change-file-b "$vb" \
    --change-count "$CHANGES" --change-interval 2s --timeout 30s --json >"$OUT/$tag.json" 2>"$OUT/xdsload-$tag.log" &
  local xl=$!
  if [ "${BENCH_PPROF:-0}" = 1 ]; then
    # A CPU profile of mizzen over the changes (they start 2 s after the initial config).
    (until grep -q "initial config" "$OUT/xdsload-$tag.log" 2>/dev/null; do sleep 0.2; done
     sleep 1.5
     curl -fs -o "$OUT/prof-$stamp-$tag.pprof" "http://127.0.0.1:$((port + 1))/debug/pprof/profile?seconds=$((CHANGES * 3))") &
    prof=$!
  fi
  wait "$xl" || rc=$?
  [ -n "$prof" ] && { wait "$prof" 2>/dev/null || true; prof=""; }
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  python3 - "$name" "$mode" "$n" "$OUT/$tag.json" "$rc" "$load" <<'PY' | tee -a "$results.txt"
import json, sys
name, mode, n, path, rc, load = sys.argv[1:]
r = json.load(open(path))
fmt = lambda v: "-" if v is None else f"{v:.0f}"
cpc = r.get('cpu_seconds_per_change')
print(f"{name:12} {mode:5} N={n:>5}  initial={fmt(r.get('initial_convergence_ms'))}ms  change p50={fmt(r.get('p50_ms'))}ms p99={fmt(r.get('p99_ms'))}ms  "
      f"cpu/change={'-' if cpc is None else f'{cpc:.3f}'}s cpu={r.get('cpu_seconds', 0):.2f}s  "
      f"rss_peak={r.get('rss_bytes_peak', 0)/2**20:.0f}MiB rss_final={r.get('rss_bytes_final', 0)/2**20:.0f}MiB rss/proxy={(r.get('rss_bytes_per_proxy') or 0)/1024:.0f}KiB  "
      f"client_cpu={r.get('client_cpu_seconds', 0):.1f}s  converged={'yes' if r.get('all_converged') else 'NO'} exit={rc}  (load {load})")
PY
  jq -c --arg name "$name" --argjson n "$n" --arg load "$load" '. + {run: $name, proxies: $n, loadavg: $load}' "$OUT/$tag.json" >>"$results" 2>/dev/null || true
}

echo "mizzen bench $(git rev-parse --short HEAD) $(date -u)  ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for n in $NS; do
  for mode in $MODES; do
    run bookinfo "$OUT/bookinfo" "$OUT/bookinfo/reviews-vs.yaml" bench/bookinfo-variants/a.yaml bench/bookinfo-variants/b.yaml "$n" "$mode"
    run mesh1000 "$OUT/mesh" "$OUT/mesh/vs-svc-0.yaml" "$OUT/variants/a.yaml" "$OUT/variants/b.yaml" "$n" "$mode"
    run mesh1000-eds "$OUT/mesh" "$OUT/mesh/eps-svc-1.yaml" "$OUT/variants/eds-a.yaml" "$OUT/variants/eds-b.yaml" "$n" "$mode"
  done
done

# The modes side by side: the generated mesh at the largest N.
python3 - "$OUT" "${NS##* }" $MODES <<'PY' | tee -a "$results.txt"
import json, os, sys
out, n, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
if len(modes) < 2:
    sys.exit(0)
def load(name, mode):
    try:
        return json.load(open(os.path.join(out, f"{name}-{mode}-{n}.json")))
    except OSError:
        return {}
vs = {m: load("mesh1000", m) for m in modes}
eds = {m: load("mesh1000-eds", m) for m in modes}
f0 = lambda v: "-" if v is None else f"{v:.0f}"
f3 = lambda v: "-" if v is None else f"{v:.3f}"
mib = lambda v: "-" if v is None else f"{v/2**20:.0f}"
rows = [
    ("initial convergence (ms)", lambda m: f0(vs[m].get("initial_convergence_ms"))),
    ("EDS change p50/p99 (ms)", lambda m: f"{f0(eds[m].get('p50_ms'))}/{f0(eds[m].get('p99_ms'))}"),
    ("VS change p50/p99 (ms)", lambda m: f"{f0(vs[m].get('p50_ms'))}/{f0(vs[m].get('p99_ms'))}"),
    ("mizzen cpu-s per EDS change", lambda m: f3(eds[m].get("cpu_seconds_per_change"))),
    ("mizzen cpu-s per VS change", lambda m: f3(vs[m].get("cpu_seconds_per_change"))),
    ("mizzen cpu-s until initial", lambda m: f"{vs[m].get('cpu_seconds_initial', 0):.2f}"),
    ("mizzen rss peak/final (MiB)", lambda m: f"{mib(vs[m].get('rss_bytes_peak'))}/{mib(vs[m].get('rss_bytes_final'))}"),
    ("load client cpu-s (VS run)", lambda m: f"{vs[m].get('client_cpu_seconds', 0):.1f}"),
    ("load client rss peak (MiB)", lambda m: mib(vs[m].get("client_rss_bytes_peak"))),
]
print(f"\nmesh1000, file mode, N={n}: " + " vs ".join(modes))
print(f"  {'':30}" + "".join(f"{m:>14}" for m in modes))
for label, f in rows:
    print(f"  {label:30}" + "".join(f"{f(m):>14}" for m in modes))
PY

# Kubernetes mode: a real kube-apiserver (built once into ~/.cache/mizzen-e2e) filled
# through the API with 1,000 Services / 5,000 endpoints, N=1,000 simulated proxies, each
# mode in turn against a fresh mizzen. BENCH_KUBE=0 skips it; MIZZEN_BENCH_SERVICES /
# MIZZEN_BENCH_PROXIES scale it.
if [ "${BENCH_KUBE:-1}" != 0 ]; then
  set +e
  MIZZEN_BIN="$PWD/bin/mizzen" MIZZEN_BENCH_STAMP="$stamp" MIZZEN_BENCH_MODES="$MODES" \
    MIZZEN_BENCH_CHANGES="${BENCH_KUBE_CHANGES:-5}" MIZZEN_BENCH_PPROF="${BENCH_PPROF:-0}" \
    go test -run '^$' -bench BenchmarkKubeConvergence -benchtime 1x -timeout 60m ./e2e/ 2>&1 |
    tee "$OUT/kube-$stamp.log" | grep --line-buffered -E '^(kube-bench |Benchmark|--- FAIL|FAIL)' | tee -a "$results.txt"
  kube_rc=${PIPESTATUS[0]}
  set -e
  echo "kube: exit=$kube_rc, $OUT/results-kube-$stamp.jsonl, full log: $OUT/kube-$stamp.log"
  [ "$kube_rc" = 0 ] || { tail -40 "$OUT/kube-$stamp.log"; exit "$kube_rc"; }
fi
echo "reports: $OUT/*.json, summary: $results.txt"
