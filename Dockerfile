# users-service container image.
#
#   docker build -t users-service:$(git rev-parse --short HEAD) \
#     --build-arg VERSION=1.0.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
#   Serve:   docker run -p 8080:8080 -e DATABASE_URL=... users-service:<tag>
#   Migrate: docker run -e DATABASE_URL=... users-service:<tag> dist/service/migrate.js
#            (the same image; ENTRYPOINT is `node`, so the argument replaces only the script.
#             The Helm chart's migration Job runs `node dist/service/migrate.js`.)
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend already handles the cache and secret mounts
# below, and a syntax line would make every build pull a frontend image.
#
# Three stages on one pinned base, the official Node.js image (Debian bookworm slim; glibc, and /bin/sleep
# for the pod's preStop hook), named once in NODE_IMAGE by tag and digest: the tag says which Node.js
# (the same exact version as .nvmrc, engines and CI), the digest fixes the bytes.
#   build  - all dependencies, `npm run build` -> dist/
#   deps   - production dependencies only (`npm ci --omit=dev`), no build tooling
#   (final)- dist/ + production node_modules + package.json, owned by root and read-only for the app user.

# The digest is the official multi-platform index of node:24.21.0-bookworm-slim (Dependabot moves tag and
# digest together). Refresh by hand with
#   docker buildx imagetools inspect node:24.21.0-bookworm-slim --format '{{json .Manifest.Digest}}'
# Builds without a registry (`npm run image`, the container suite) pass a local stand-in here.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6

FROM ${NODE_IMAGE} AS base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

FROM base AS build
COPY package.json package-lock.json ./
# The optional BuildKit secret `ca` (a CA bundle, e.g. --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
# lets npm reach the registry through a TLS-inspecting proxy; it is mounted for this command only and never
# lands in a layer.
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/ca; fi; \
    npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-assets.mjs scripts/copy-assets.mjs
COPY service service
COPY migrations migrations
RUN npm run build

FROM base AS deps
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/ca; fi; \
    npm ci --omit=dev

FROM ${NODE_IMAGE} AS runtime
ARG NODE_IMAGE
ARG VERSION=1.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="users-service" \
      org.opencontainers.image.description="Users API: Koa, PostgreSQL, Redis rate limiting, Prometheus metrics" \
      org.opencontainers.image.source="https://github.com/example/users-service" \
      org.opencontainers.image.licenses="UNLICENSED" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
WORKDIR /app
ENV NODE_ENV=production \
    PORT=8080
# Files stay owned by root: the app user can read but never modify its own code or dependencies.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Numeric UID:GID so Kubernetes can verify runAsNonRoot without resolving /etc/passwd.
# The process writes nothing to disk; only /tmp is expected to be writable (an emptyDir under a
# read-only root filesystem in Kubernetes).
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: Kubernetes ignores the image's HEALTHCHECK and uses the pod's startup/liveness/readiness
# probes (GET /health, GET /ready) instead; a Docker healthcheck would only add a second, unused prober.
# `node` is PID 1 directly (exec form, no npm, no shell), so SIGTERM reaches the service's graceful
# shutdown handler. No init (tini) is needed: the service spawns no child processes to reap.
ENTRYPOINT ["node"]
CMD ["dist/service/main.js"]
