#!/usr/bin/env bash
# The project's test command (README.md): vet and staticcheck, cross-builds,
# the whole suite under the race detector, a bounded fuzzing run of each
# decoder and of the TLS record path, and a one-shot run of the in-process
# benchmarks so that they cannot rot. Bounded: a few minutes.
#
# The benchmarks are a module of their own (bench/, with the peers tio is
# compared with: gws, gorilla, a gnet+gobwas floor). It is vetted, linted and
# built here, and its tests and benchmarks run against tio's servers only
# (TIO_BENCH_IMPLS=tio): a peer's code never runs in this command.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Fuzzing budgets are counts of executions, about 20 s each here, not
# durations: with a duration, Go's fuzzing coordinator (go1.26) can fail a
# target with a bare "context deadline exceeded" at the deadline, having
# found nothing (golang/go#75804, fixed in go1.27). FUZZTIME (a count such
# as 5000x, or a duration) overrides every budget.
fuzz() { # package target count
  local budget="${FUZZTIME:-$3x}"
  # New inputs are minimized for at most 2,000 runs (60 s by default): a
  # target that runs each input several ways makes minimizing slow, and
  # the budget is better spent exploring.
  go test -run='^$' -fuzz="^$2\$" -fuzztime="$budget" -fuzzminimizetime=2000x "$1"
}

echo "== go vet"
go vet ./...
(cd bench && go vet ./...)

echo "== staticcheck"
gobin="$(go env GOBIN)"
PATH="$PATH:${gobin:-$(go env GOPATH)/bin}"
if command -v staticcheck >/dev/null; then
  staticcheck ./...
  (cd bench && staticcheck ./...)
elif [ -n "${CI:-}" ]; then
  echo "staticcheck is not installed (.ci/run installs it)"; exit 1
else
  echo "skipped: staticcheck is not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"
fi

echo "== cross-builds: darwin, freebsd, 32-bit"
for target in darwin/arm64 freebsd/amd64 linux/386; do
  echo "   $target"
  GOOS="${target%/*}" GOARCH="${target#*/}" go build ./...
  GOOS="${target%/*}" GOARCH="${target#*/}" go vet ./...
done
(cd bench && GOOS=darwin GOARCH=arm64 go build ./...)

echo "== go test -race"
go test -race -count=1 -timeout 10m ./...
(cd bench && TIO_BENCH_IMPLS=tio go test -race -count=1 -timeout 5m ./...)
echo "== allocation counts, without the race detector (it changes them)"
go test -count=1 -run='Garbage|Allocate|IdleMemory' ./...
# Every decoder has a fuzz target.
for ptc in ./codec/websocket:FuzzDecode:60000 ./codec/binary:FuzzDecode:150000 .:FuzzDecodeTarget:100000 .:FuzzProxyHeader:100000 ./cluster:FuzzDecodeMessage:60000 ./cluster:FuzzDecodePresence:60000 ./cluster:FuzzDecodeRosters:60000; do
  IFS=: read -r pkg target count <<<"$ptc"
  echo "== fuzz $pkg $target, ${FUZZTIME:-$count runs}"
  fuzz "$pkg" "$target" "$count"
done
echo "== fuzz ./internal/tlsconn (the TLS record path), ${FUZZTIME:-6000 runs}"
fuzz ./internal/tlsconn FuzzInput 6000
echo "== fuzz the permessage-deflate inflater against compress/flate, ${FUZZTIME:-60000 runs}"
fuzz ./codec/websocket FuzzInflate 60000
echo "== fuzz the small-message compressor (its output inflated by compress/flate and by tio's inflater), ${FUZZTIME:-100000 runs} each"
fuzz ./codec/websocket FuzzMsgEncoder 100000
fuzz ./codec/websocket FuzzMsgEncoderCopies 100000
echo "== benchmarks compile and run once"
go test -run='^$' -bench=. -benchtime=1x ./...
(cd bench && TIO_BENCH_IMPLS=tio go test -run='^$' -bench=. -benchtime=1x ./...)
