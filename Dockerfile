# syntax=docker/dockerfile:1
# The functions' image: the esbuild bundles on Node 24 and nothing else (no node_modules, no sources, no shell).
# One image, four entry points, chosen by the Knative Service's `args`:
#   dist/ingest.mjs (Service ingest) · dist/query.mjs (Service query) · dist/relay.mjs (optional separate outbox
#   relay) · dist/migrate.mjs (migration Job).
# Base: distroless rather than node:24-alpine — glibc (Node's tier-1 platform; Alpine/musl builds are
# "experimental"), no shell or package manager to exploit, no npm/yarn/corepack, a built-in non-root user.
# Settings come from the environment at run time (ConfigMap + Secret); none is baked in.
# Measured size, start time and memory: docs/image.md.
#
# With a Docker engine and a registry:  docker build -t data-service .
# Without either (`npm run image`, scripts/image/build.ts): buildah builds this same file with
#   --build-arg BASE=<a base assembled locally from node_modules/node and Debian's libc6/libstdc++6/ca-certificates>
#   --build-context build=<a folder holding src/dist/*.mjs from `npm run build`>
# A named build context replaces the stage of the same name (BuildKit and buildah alike), so the image then ships
# exactly the bundles the tests ran, and the build stage below, which would need a registry, is never built.

ARG NODE_VERSION=24.21.0
ARG BASE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: esbuild finds its platform binary without one, and this stage already is Node 24 (the
# `node` devDependency's download is for machines that are not).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json esbuild.config.mjs ./
COPY functions ./functions
COPY lib ./lib
COPY scripts ./scripts
RUN node esbuild.config.mjs

FROM ${BASE}
WORKDIR /app
# Root-owned and read-only for the process; the pod also mounts the root filesystem read-only
# (securityContext.readOnlyRootFilesystem in knative/base). Source maps stay in CI artefacts: 4–5 MB each.
COPY --from=build /src/dist/ingest.mjs /src/dist/query.mjs /src/dist/relay.mjs /src/dist/migrate.mjs ./dist/
# The API page's renderer (swagger-ui-dist's script, style sheet and licence), served by query at /docs.
COPY --from=build /src/dist/docs/ ./dist/docs/
# V8's code cache of the ingest and query bundles, written by esbuild.config.mjs with the build stage's Node (the runtime's
# version): a start skips compiling the bundle. A cache of another Node version is ignored, never wrong.
COPY --from=build /src/dist/.compile-cache/ ./dist/.compile-cache/
# distroless' nonroot user, numeric so that the kubelet can verify runAsNonRoot.
USER 65532:65532
# V8 sizes its young generation from the memory it sees (the node's, not the pod's 512Mi limit). 8 MB semi-spaces
# keep both functions under the 256Mi they request in every npm run bench case (ingest 246 MiB peak against 280 with
# 16 MB, on 100-record POSTs; query 256 against 272 on list pages); the price is ~1.5 % more of a POST's CPU in GC
# (npm run bench:profile -- post-one: 7.9–8.2 % against 5.9–7.0 %). 4 MB would save ~15 MiB more and cost list pages
# far more in scavenges.
ENV NODE_OPTIONS=--max-semi-space-size=8
ENV NODE_COMPILE_CACHE=/app/dist/.compile-cache NODE_COMPILE_CACHE_PORTABLE=1
EXPOSE 8080
# distroless' own entrypoint, stated here so that the manifests' `args` mean the same on any base with Node there.
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["dist/ingest.mjs"]
