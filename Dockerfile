# syntax=docker/dockerfile:1
# Plannt's container image, as the Helm chart (deploy/helm/plannt) runs it: non-root (65532), no shell,
# NODE_ENV=production (which refuses the dev invoice backend), production dependencies only.
#   docker build -t plannt:0.1.0 .
# Not built in this repository's CI: its machine has no container engine. test/deploy/image-layout.test.ts
# runs the final stage's file layout, as this file lists it, the way the chart's Deployment starts it.

# Node.js 24 LTS, the supported runtime (package.json engines). Pin both images by digest for a reproducible
# build:
#   docker build --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot@sha256:<digest> -t plannt:0.1.0 .
# with the digests from `docker buildx imagetools inspect <image>`. The defaults carry no digest because none
# could be read where this file was written: that machine has no container engine and no access to Docker Hub
# or gcr.io. Record them here (image:tag@sha256:…) from a machine that has.
ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# Compile TypeScript (needs the dev dependencies).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

# Production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Runtime: distroless Node.js 24, no shell, no package manager.
FROM ${RUNTIME_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production
# V8's heap held near what a worker uses: the young generation to 4 MB a semi-space (NODE_OPTIONS, which the
# chart's nodeOptions replaces) and the old generation let grow by half its live size between full GCs (on the
# command line below: NODE_OPTIONS refuses that flag). At saturation a worker on LND peaks near 165 MB instead
# of 265 MB, for 0-20 % more CPU a check (docs/benchmarks.md). Workers inherit both.
ENV NODE_OPTIONS=--max-semi-space-size=4
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY proto ./proto
COPY package.json ./
USER 65532:65532
# grpc (ext_authz + grpc.health.v1), http (HTTP ext_authz / forward auth), metrics (admin: /metrics, /healthz, /readyz)
EXPOSE 9001 9002 9090
ENTRYPOINT ["/nodejs/bin/node", "--heap-growing-percent=50", "/app/dist/src/cli.js"]
CMD ["serve", "--config", "/etc/plannt/plannt.yaml"]
