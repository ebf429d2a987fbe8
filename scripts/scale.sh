#!/usr/bin/env bash
# Throughput against the number of worker containers, with the ideal line.
#
#   scripts/scale.sh [MAX_WORKERS] [-- coordinator flags...]
#   scripts/scale.sh 4 -- --workload infer --docs 2000 --batch-size 20
#
# For each N in 1..MAX_WORKERS (default: 2 x cores) it runs, on a fresh
# compose project:
#   1. FERRY_EXPECT_WORKERS=N compose up --scale worker=N --exit-code-from coordinator
#      (the default job, timed from `up` to the finished report: up_s), then
#   2. the job given after -- (default: the default job) on the same N
#      workers with `compose run --rm coordinator`, for docs/s.
# It prints a markdown table: ideal = the 1-worker rate x N, efficiency =
# docs/s over ideal, busy = mean fraction of wall time workers computed.
# Needs the image (make image, or SKIP_BUILD=0 to let this script build it)
# and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

max=$(( 2 * $(nproc) ))
if [[ $# -gt 0 && $1 != -- ]]; then max=$1; shift; fi
[[ ${1:-} == -- ]] && shift
job=("$@")

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "scale.sh: needs docker compose or docker-compose" >&2; exit 1
fi
if [[ ${SKIP_BUILD:-1} == 0 ]]; then make image >&2; fi
export FERRY_IMAGE=${FERRY_IMAGE:-ferry:dev}
docker image inspect "$FERRY_IMAGE" >/dev/null 2>&1 || { echo "scale.sh: no image $FERRY_IMAGE: run make image" >&2; exit 1; }

# The broker requires auth (docs/auth.md): passwords from .env, or throwaway ones.
[[ -f .env ]] && { set -a; . ./.env; set +a; }
rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export FERRY_WORKER_PASSWORD=${FERRY_WORKER_PASSWORD:-$(rand)}
export FERRY_COORDINATOR_PASSWORD=${FERRY_COORDINATOR_PASSWORD:-$(rand)}

project=ferryscale$$
dc() { "${compose[@]}" -p "$project" -f docker-compose.yml "$@"; }
trap 'dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true' EXIT

echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg), image $FERRY_IMAGE"
echo "job: ${job[*]:-(default: embed, 20000 docs)}"
echo
echo "| workers | up_s | docs/s | ideal docs/s | efficiency | busy |"
echo "|--------:|-----:|-------:|-------------:|-----------:|-----:|"
base=""
for n in $(seq 1 "$max"); do
  dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  start=$(date +%s.%N)
  FERRY_EXPECT_WORKERS=$n dc up --scale worker="$n" --exit-code-from coordinator >/dev/null 2>&1 \
    || { echo "scale.sh: up --scale worker=$n failed" >&2; dc logs --tail 20 >&2; exit 1; }
  up_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')

  dc up -d --scale worker="$n" broker worker >/dev/null 2>&1
  out=$(dc run --rm -T coordinator --expect-workers "$n" --format json "${job[@]}" 2>/dev/null)
  rate=$(jq -r '.modes[-1].docs_per_s' <<<"$out")
  busy=$(jq -r '.modes[-1].busy_mean' <<<"$out")
  failed=$(jq -r '.modes[-1].failed_docs' <<<"$out")
  [[ $failed == 0 ]] || { echo "scale.sh: $failed documents failed at N=$n" >&2; exit 1; }
  base=${base:-$rate}
  awk -v n="$n" -v up="$up_s" -v r="$rate" -v b="$base" -v busy="$busy" \
    'BEGIN { printf "| %d | %.1f | %.0f | %.0f | %.2f | %.0f%% |\n", n, up, r, b * n, r / (b * n), busy * 100 }'

done
