# The promproxy server (and forwarder) as an image:
#
#   docker build -t promproxy:0.1.0 .
#   docker run --rm -p 8080:8080 promproxy:0.1.0                      # promproxy server --listen=0.0.0.0:8080
#   docker run --rm promproxy:0.1.0 server --help                      # any command and flags instead
#
# Kept honest by test/deploy/deploy-docker.test.ts, which replays these steps into a folder (no Docker needed), runs the
# result as user 65532 and checks deploy/kubernetes/ against the user, port and health check below.

# Build: every dependency, then the JavaScript in dist/ (no declarations or source maps: nothing in the image
# reads them). --ignore-scripts: no dependency needs an install script to build (the node@22 devDependency's
# would only fetch a second Node; this image has one).
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY gen ./gen
RUN node node_modules/typescript/bin/tsc -p tsconfig.json --declaration false --sourceMap false

# Run: production dependencies (and prom-client, the server's peer dependency) from the same lock file, the built
# JavaScript, nothing else: no sources, tests, compilers or npm cache.
FROM node:22-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# Not root, and numeric, so that Kubernetes' runAsNonRoot can check it (deploy/kubernetes/ runs the same uid).
# The server writes no file: it runs on a read-only root file system.
USER 65532:65532
EXPOSE 8080
# Liveness, for Docker and Compose (Kubernetes ignores this and probes /healthz itself). The slim image has no
# curl: node asks. /healthz stays 200 while the server drains; /readyz is the readiness signal. With
# --tls-cert-file, or another --listen port, change the URL here or switch the check off (`docker run
# --no-healthcheck`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
# Exec form, node itself as PID 1: SIGTERM reaches the server, which drains (/readyz 503 at once, scrapes still
# served for --drain-delay, then in-flight ones finish) and exits 0. Not `npm start`, not a shell: either would
# stand between the signal and Node. --max-semi-space-size=8: V8's young generation held to 8 MiB semi-spaces (16 MiB by
# default): against the server's small heap, the default young generation keeps V8 starting a full mark-compact
# every 100-200 ms under scrape load; held at 8 MiB, about a sixth less server CPU per small scrape.
# --initial-old-space-size=64: V8 lets the old generation reach 64 MiB before it starts marking (instead of limits
# drawn from a heap of 12-15 MB): a full mark-compact per 20 MB scrape otherwise, a fifth to a third of the server's
# CPU for large scrapes. Both in docs/performance.md. NODE_OPTIONS refuses the second: outside the image, give both
# on node's command line. The bench runs its servers with the same flags (bench/server-flags.ts).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--initial-old-space-size=64", "/app/dist/src/cli/main.js"]
CMD ["server", "--listen=0.0.0.0:8080"]
