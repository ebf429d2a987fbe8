#!/usr/bin/env bash
# The capacity goals of issue 16 in one command: rerun it on a quiet machine.
#
#   scripts/capacity.sh [OUT_DIR] [-- extra ferry capacity flags...]
#   RUNS=3 scripts/capacity.sh /tmp/capacity
#
# Builds ferry, prints the machine and its load, then runs RUNS times
# (default 1)
#
#   ferry capacity --spin-cost 2ms --out-bytes 1536 --batch-size 100
#
# which calibrates the model on emulated fleets (one broker process, then a
# 3-node cluster), validates it at 1, 4, 16 and 64 emulated workers for the
# job and for a knee series, predicts the default layouts and checks the
# goals. Each run's text report goes to stdout and OUT_DIR/capacity-N.txt,
# its HTML report (charts) to OUT_DIR/capacity-N.html. Other work on the
# machine moves the figures: the load average is printed before each run
# and in each report.
set -euo pipefail
cd "$(dirname "$0")/.."

out=capacity-out
if [[ $# -gt 0 && $1 != -- ]]; then out=$1; shift; fi
[[ ${1:-} == -- ]] && shift
extra=("$@")
runs=${RUNS:-1}
mkdir -p "$out"

bin=$(mktemp -d)/ferry
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/ferry

echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(go version | cut -d' ' -f3)"
for i in $(seq 1 "$runs"); do
  echo "run $i of $runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin" capacity -q --log-level warn --spin-cost 2ms --out-bytes 1536 --batch-size 100 \
    --report "$out/capacity-$i.html" "${extra[@]}" | tee "$out/capacity-$i.txt"
  echo
done
