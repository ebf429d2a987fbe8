#!/usr/bin/env bash
# Every measured figure in README.md and docs/, in one command:
#
#   scripts/figures.sh [SET...]          # all sets: auth capacity docker faults lab matrix run shm wire
#   FIGURES_QUICK=1 scripts/figures.sh   # small sizes, one round: checks the machinery, not a measurement
#   FIGURES_REPEATS=5 scripts/figures.sh matrix
#
# Builds ferry once, runs the commands behind each set of figures (ferry's
# with --format json, Go tests and benchmarks, scripts/scale.sh;
# internal/figures names them all) FIGURES_REPEATS rounds where a figure is
# a median (default 3, interleaved), writes what they printed to
# docs/figures/SET.json and the machine to docs/figures/machine.json, then
# rewrites every <!-- figure:NAME --> block of README.md and docs/*.md from
# that data. Each block ends with the machine, the date and the command to
# rerun it. Run it on a quiet machine: other work moves the figures (the
# load average before and after is in each block). The docker set needs a
# Docker engine, docker compose or docker-compose, and jq.
#
# Time measured on the 2-core development machine at load average 8 to 30
# (a quiet machine is faster): matrix 595 s, capacity 165 s, run 12 s, shm
# 25 s (load 5), wire 409 s, auth 28 s, faults 196 s, lab 422 s, docker about
# 8 min (311 s in quick mode): about 39 minutes for all. FIGURES_REPEATS=1 cuts matrix and
# wire to a third. Quick mode: about 15 minutes for all.
#
#   scripts/figures.sh --render          # only rewrite the blocks from the committed data
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --render ]]; then
  shift
  exec go run ./internal/figures/tool render "$@"
fi

quick=()
repeats=${FIGURES_REPEATS:-3}
if [[ ${FIGURES_QUICK:-0} != 0 ]]; then
  quick=(-quick)
  repeats=${FIGURES_REPEATS:-1}
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/ferry" ./cmd/ferry
go build -o "$tmp/figures" ./internal/figures/tool
start=$(date +%s)
"$tmp/figures" run -bin "$tmp/ferry" -repeats "$repeats" "${quick[@]}" "$@"
echo "figures: done in $(( $(date +%s) - start )) s; git diff README.md docs/ shows what moved" >&2
