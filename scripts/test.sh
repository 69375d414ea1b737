#!/usr/bin/env bash
# The project's test command (README.md): vet, the whole suite under the race
# detector, a bounded fuzzing run of each decoder, and a one-shot run of the
# in-process benchmarks so that they cannot rot. Bounded: a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

fuzztime="${FUZZTIME:-20s}"

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 10m ./...
echo "== allocation counts, without the race detector (it changes them)"
go test -count=1 -run='Garbage|Allocate' ./...
for pkg in ./codec/websocket ./codec/binary; do
  echo "== fuzz $pkg for $fuzztime"
  # New inputs are minimized for at most 5 s (60 s by default): a fuzz
  # target that runs each input several ways makes minimizing slow, and the
  # bounded time is better spent exploring.
  go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg"
done
echo "== benchmarks compile and run once"
go test -run='^$' -bench=. -benchtime=1x ./...
