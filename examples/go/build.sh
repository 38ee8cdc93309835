#!/usr/bin/env bash
# Builds the Go example offline, in GOPATH mode, from Debian's Go packages only:
#   apt-get install -y golang-go golang-google-grpc-dev golang-goprotobuf-dev \
#     golang-github-prometheus-client-golang-dev protoc-gen-go-1-3 protobuf-compiler
# Usage: examples/go/build.sh OUT_DIR   ->  OUT_DIR/promproxy-go-example
# The stubs are generated from proto/ into OUT_DIR/gopath, never into the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "${1:?usage: build.sh OUT_DIR}" && cd "$1" && pwd)"
src="$out/gopath/src/promproxy-example"
rm -rf "$src" && mkdir -p "$src/promproxyv1"
cp "$here/main.go" "$src/" && cp -r "$here/promproxy" "$src/"

# Debian's gRPC 1.33 runs on golang/protobuf 1.3: use that generator (protoc-gen-go-1-3, plugins=grpc) and
# that runtime's Duration (ptypes/duration); the .proto's own import would point at the newer runtime.
protoc -I "$here/../../proto" -I /usr/include --plugin=protoc-gen-go=/usr/bin/protoc-gen-go \
  --go_out="plugins=grpc,paths=source_relative,Mgoogle/protobuf/duration.proto=github.com/golang/protobuf/ptypes/duration:$out/gopath" \
  promproxy/v1/scrape.proto
mv "$out/gopath/promproxy/v1/scrape.pb.go" "$src/promproxyv1/" && rm -rf "$out/gopath/promproxy"

cd "$src"
# CGO_ENABLED=0: a static binary, and no C compiler needed (Go 1.19 would insist on one otherwise).
CGO_ENABLED=0 GO111MODULE=off GOPATH="$out/gopath:/usr/share/gocode" go build -o "$out/promproxy-go-example" .
echo "built $out/promproxy-go-example"
