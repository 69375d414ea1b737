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

fuzztime="${FUZZTIME:-20s}"

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
# Every decoder has a fuzz target: package:target.
for pt in ./codec/websocket:FuzzDecode ./codec/binary:FuzzDecode .:FuzzDecodeTarget .:FuzzProxyHeader ./cluster:FuzzDecodeMessage ./cluster:FuzzDecodePresence ./cluster:FuzzDecodeRosters; do
  pkg=${pt%%:*} target=${pt##*:}
  echo "== fuzz $pkg $target for $fuzztime"
  # New inputs are minimized for at most 5 s (60 s by default): a fuzz
  # target that runs each input several ways makes minimizing slow, and the
  # bounded time is better spent exploring.
  go test -run='^$' -fuzz="^$target\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg"
done
echo "== fuzz ./internal/tlsconn (the TLS record path) for $fuzztime"
go test -run='^$' -fuzz='^FuzzInput$' -fuzztime="$fuzztime" -fuzzminimizetime=5s ./internal/tlsconn
echo "== fuzz the permessage-deflate inflater against compress/flate for $fuzztime"
go test -run='^$' -fuzz='^FuzzInflate$' -fuzztime="$fuzztime" -fuzzminimizetime=5s ./codec/websocket
echo "== fuzz the small-message compressor (its output inflated by compress/flate and by tio's inflater) for $fuzztime each"
go test -run='^$' -fuzz='^FuzzMsgEncoder$' -fuzztime="$fuzztime" -fuzzminimizetime=5s ./codec/websocket
go test -run='^$' -fuzz='^FuzzMsgEncoderCopies$' -fuzztime="$fuzztime" -fuzzminimizetime=5s ./codec/websocket
echo "== benchmarks compile and run once"
go test -run='^$' -bench=. -benchtime=1x ./...
(cd bench && TIO_BENCH_IMPLS=tio go test -run='^$' -bench=. -benchtime=1x ./...)
