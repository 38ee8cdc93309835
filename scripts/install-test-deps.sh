#!/usr/bin/env bash
# Installs what the end-to-end tests run against, from Debian's packages:
# Prometheus, node_exporter, nginx, curl and openssl. Needs root (or sudo).
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
[ -x /usr/bin/prometheus-node-exporter ] || need+=(prometheus-node-exporter)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy) # test/e2e/ha.test.ts runs its own
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium) # test/e2e/status-page.test.ts drives it with playwright-core
# The Go example (examples/go, test/e2e/go-client.test.ts), built offline in GOPATH mode from these.
for p in golang-go golang-google-grpc-dev golang-goprotobuf-dev golang-github-prometheus-client-golang-dev protoc-gen-go-1-3 protobuf-compiler libprotobuf-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
# The Python example (examples/python, test/e2e/python-client.test.ts) runs on Debian's /usr/bin/python3 with these.
for p in python3-grpcio python3-grpc-tools python3-prometheus-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The Debian packages start their services; the tests run their own instances on loopback ports.
for svc in prometheus prometheus-node-exporter nginx haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
echo "test dependencies: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), node_exporter, nginx, curl, openssl"
