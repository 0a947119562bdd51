# syntax=docker/dockerfile:1
# Plannt's container image, as the Helm chart (deploy/helm/plannt) runs it: non-root (65532), no shell,
# NODE_ENV=production (which refuses the dev invoice backend), production dependencies only.
#   docker build -t plannt:0.1.0 .
# Not built in this repository's CI: its machine has no container engine. test/deploy/image-layout.test.ts
# runs the final stage's file layout, as this file lists it, the way the chart's Deployment starts it.

ARG NODE_VERSION=20

# Compile TypeScript (needs the dev dependencies).
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

# Production dependencies only.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Runtime: distroless Node.js, no shell, no package manager.
FROM gcr.io/distroless/nodejs${NODE_VERSION}-debian12:nonroot AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY proto ./proto
COPY package.json ./
USER 65532:65532
# grpc (ext_authz + grpc.health.v1), http (HTTP ext_authz / forward auth), metrics (admin: /metrics, /healthz, /readyz)
EXPOSE 9001 9002 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/src/cli.js"]
CMD ["serve", "--config", "/etc/plannt/plannt.yaml"]
