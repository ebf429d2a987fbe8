#!/usr/bin/env bash
# The goals of "Your workload on ferry", measured in one run, as ratios
# against a baseline in the same run (this machine is shared: absolute
# times drift, ratios much less).
#
#   scripts/workloads.sh [ROUNDS] [DOCS_REPEAT]
#
#   1. Lines of user code of each example's main.go (neither blank nor
#      comment): at most 30.
#   2. Exec workers running the minhash example's logic (`minhash exec-serve`)
#      against the same workload compiled into the workers, processes mode,
#      batch 100, same documents: per-batch overhead (every stage but
#      compute, summed) exec / compiled, goal at most 1.3x; the pipe's own
#      time; and bridge's Go benchmark, the pipe alone (no NATS). At
#      --inflight 1 (one batch per worker at a time: transport is the round
#      trip alone) and 2 (the default: transport also holds the wait behind
#      the batch computing, which the report counts as overhead).
#   3. The Python example: ferry's processes mode with worker.py as exec
#      workers against ProcessPoolExecutor at each chunksize (pool.py), on the
#      same documents, the same function and as many workers as cores:
#      docs/s ferry / best pool, goal at least 1.0x, and where ferry's time
#      goes (its split) next to the function's own cost (serial Python).
#
# Each round runs every side once, interleaved; the table gives medians over
# ROUNDS (default 3). Documents: the paragraphs of examples/testdata (real
# text, 255 of them) repeated DOCS_REPEAT times (default 80: 20,400).
# Needs Go, and for part 3 a python3 with msgpack (examples/python/python.sh
# finds one or says what to install).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
repeat=${2:-80}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
go build -o "$tmp/minhash" ./examples/minhash
go build -o "$tmp/ferry" ./cmd/ferry
awk 'BEGIN{RS=""} {gsub(/[ \t\n]+/," "); print}' examples/testdata/{GPL-1,GPL-2,LGPL-2,LGPL-2.1} >"$tmp/paras.txt"
for _ in $(seq "$repeat"); do cat "$tmp/paras.txt"; done >"$tmp/docs.txt"
cores=$(nproc)

echo
echo "## 1. lines of user code"
for d in examples/*/; do
  [[ -f $d/main.go ]] || continue
  echo "$(basename "$d"): $(grep -v '^\s*//' "$d/main.go" | grep -cv '^\s*$') lines (main.go, neither blank nor comment)"
done

echo "(measuring: $rounds rounds of 2. and 3.)"
common=(run -q --format json --modes processes --workers "$cores" --batch-size 100 --input "$tmp/docs.txt" --log-level warn)
for r in $(seq "$rounds"); do
  for inflight in 1 2; do
    "$tmp/minhash" "${common[@]}" --inflight $inflight --workload minhash >"$tmp/compiled.$inflight.$r.json"
    "$tmp/minhash" "${common[@]}" --inflight $inflight --workload exec --exec "$tmp/minhash exec-serve --workload minhash" >"$tmp/exec.$inflight.$r.json"
  done
done
go test -run '^$' -bench 'BenchmarkExec/.*/batch=100' -benchtime 2000x -count "$rounds" ./bridge | grep Benchmark >"$tmp/bench.txt" || true

if py=$(examples/python/python.sh); then
  for r in $(seq "$rounds"); do
    "$tmp/ferry" "${common[@]}" --workload exec --exec "$py $PWD/examples/python/worker.py" --out "$tmp/py.npy" >"$tmp/py.$r.json"
    # the same batches and result sizes with no Python and no compute: what ferry and the pipe cost alone
    "$tmp/ferry" "${common[@]}" --workload exec --exec "$tmp/ferry exec-serve --workload noop" --out-bytes 1536 >"$tmp/noop.$r.json"
    (cd examples/python && "$py" pool.py --input "$tmp/docs.txt" --workers "$cores" --chunksizes 1,10,100,1000 --serial --npy "$tmp/py.npy") >"$tmp/pool.$r.jsonl"
  done
else
  echo "(skipped: no python3 with msgpack)"
fi

python3 - "$tmp" "$rounds" "$cores" <<'EOF'
import json, statistics as st, sys, os
tmp, rounds, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = st.median

def mode(path):
    return json.load(open(path))["modes"][0]

def overhead(m, q="mean_us"):
    return sum(s[q] for k, s in m["stages"].items() if k != "compute")

print("\n## 2. exec workers vs the workload compiled in (minhash, processes, batch 100)")
stages = ["encode", "transport", "worker_decode", "pipe", "compute", "worker_encode", "decode"]
for inflight in (1, 2):
    c = [mode(f"{tmp}/compiled.{inflight}.{r}.json") for r in range(1, rounds + 1)]
    e = [mode(f"{tmp}/exec.{inflight}.{r}.json") for r in range(1, rounds + 1)]
    print(f"\n--inflight {inflight}, medians over {rounds} rounds; stages p50 / mean in us per batch")
    print("\n| minhash, batch 100 | compiled in | exec (minhash exec-serve) |")
    print("|---|---|---|")
    print(f"| docs/s | {med(m['docs_per_s'] for m in c):.0f} | {med(m['docs_per_s'] for m in e):.0f} |")
    for k in stages:
        f = lambda ms: f"{med(m['stages'].get(k, {}).get('p50_us', 0) for m in ms):.0f} / {med(m['stages'].get(k, {}).get('mean_us', 0) for m in ms):.0f}"
        print(f"| {k} | {f(c)} | {f(e)} |")
    print(f"| per-batch overhead: all but compute | {med(overhead(m, 'p50_us') for m in c):.0f} / {med(overhead(m) for m in c):.0f}"
          f" | {med(overhead(m, 'p50_us') for m in e):.0f} / {med(overhead(m) for m in e):.0f} |")
    print(f"| cpu_us/doc | {med(m['cpu_us_per_doc'] for m in c):.1f} | {med(m['cpu_us_per_doc'] for m in e):.1f} |")
    for q, name in (("mean_us", "means"), ("p50_us", "p50s")):
        r = [overhead(b, q) / overhead(a, q) for a, b in zip(c, e)]
        print(f"\nper-batch overhead exec / compiled from the stages' {name}: median {med(r):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in r)}); goal <= 1.3x", end="")
    print()
    same = all(a["digest"] == b["digest"] for a, b in zip(c, e))
    print(f"identical results compiled vs exec: {'yes' if same else 'NO'}")
bench = open(f"{tmp}/bench.txt").read().strip()
if bench:
    print("\nthe pipe alone (go test -bench BenchmarkExec ./bridge, embed, no NATS):\n" + bench)

print("\n## 3. Python: ferry with worker.py exec workers vs ProcessPoolExecutor")
if not os.path.exists(f"{tmp}/py.1.json"):
    print("(skipped: no python3 with msgpack; examples/python/python.sh says what to install)")
    sys.exit(0)
f = [mode(f"{tmp}/py.{r}.json") for r in range(1, rounds + 1)]
pools = [[json.loads(l) for l in open(f"{tmp}/pool.{r}.jsonl")] for r in range(1, rounds + 1)]
serial = [next(p for p in run if p.get("how") == "serial") for run in pools]
sizes = sorted({p["chunksize"] for run in pools for p in run if p.get("how") == "ProcessPoolExecutor"})
print("\n| Python, same documents and function | docs/s | cpu_us/doc |")
print("|---|---|---|")
print(f"| serial Python, one process | {med(s['docs_per_s'] for s in serial):.0f} | {med(s['cpu_us_per_doc'] for s in serial):.0f} |")
for cs in sizes:
    runs = [p for run in pools for p in run if p.get("chunksize") == cs and p["how"] != "serial"]
    print(f"| ProcessPoolExecutor, chunksize {cs} | {med(p['docs_per_s'] for p in runs):.0f} | {med(p['cpu_us_per_doc'] for p in runs):.0f} |")
print(f"| ferry processes, worker.py exec workers, batch 100 | {med(m['docs_per_s'] for m in f):.0f} | {med(m['cpu_us_per_doc'] for m in f):.0f} |")
best = [max(p["docs_per_s"] for p in run if p.get("how") == "ProcessPoolExecutor") for run in pools]
ratios = [m["docs_per_s"] / b for m, b in zip(f, best)]
print(f"\nferry / best ProcessPoolExecutor, docs/s: median {med(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}); goal >= 1.0x")
cheapest = [min(p["cpu_us_per_doc"] for p in run if p.get("how") == "ProcessPoolExecutor") for run in pools]
cpu = [b / m["cpu_us_per_doc"] for m, b in zip(f, cheapest)]
print(f"the same from CPU per document (docs/s that {cores} idle cores would give, a busy machine skews it less):"
      f" median {med(cpu):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in cpu)})")
print(f"vectors identical to ferry's: {all(any('identical_to' in p for p in run) for run in pools)}")
per_doc = med(1e6 / s["docs_per_s"] for s in serial)
m = f[len(f) // 2]
print(f"\nwhere ferry's time goes (median round's split, mean us per batch of 100):")
for k in ["encode", "transport", "worker_decode", "pipe", "compute", "worker_encode", "decode"]:
    print(f"  {k:14s} {m['stages'].get(k, {}).get('mean_us', 0):9.0f}")
print(f"  the function alone (serial Python): {per_doc:.0f} us/doc = {100 * per_doc:.0f} us per 100 documents")
noop = [mode(f"{tmp}/noop.{r}.json") for r in range(1, rounds + 1)]
fn, total, rest = med(s["cpu_us_per_doc"] for s in serial), med(x["cpu_us_per_doc"] for x in f), med(x["cpu_us_per_doc"] for x in noop)
print(f"\nCPU per document, medians: ferry with worker.py {total:.0f} us = the function in one Python process {fn:.0f}"
      f" + ferry and the pipe moving the same bytes with no compute {rest:.0f} (exec-serve --workload noop --out-bytes 1536)"
      f" + the rest {total - fn - rest:.0f} (msgpack and frames in Python, the function slowed by sharing the cores)")
print(f"best ProcessPoolExecutor: {med(cheapest):.0f} us = the function {fn:.0f} + pickling, pipes and the pool {med(cheapest) - fn:.0f}")
EOF
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (other jobs share these cores: read the ratios)"
