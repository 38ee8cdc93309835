#!/usr/bin/env bash
# Installs what the end-to-end tests run against, from Debian's packages:
# Prometheus, node_exporter, nginx, curl and openssl. Needs root (or sudo).
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
[ -x /usr/bin/prometheus-node-exporter ] || need+=(prometheus-node-exporter)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The Debian packages start their services; the tests run their own instances on loopback ports.
for svc in prometheus prometheus-node-exporter nginx; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
echo "test dependencies: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), node_exporter, nginx, curl, openssl"
