# syntax=docker/dockerfile:1
# ConduitLLM WebUI (ConduitLLM.WebUI, Next.js). Build context: a ConduitLLM source checkout; the
# WebUI depends on the Node SDK workspace in SDKs/Node (file: dependencies), which is built first.
#
#   docker buildx build -f docker/webui.Dockerfile SRC
#
# The base image is pinned by digest (docs/images.md says where it comes from and how to refresh
# it); override it with --build-arg NODE_IMAGE=...
ARG NODE_IMAGE=node:22.21.1-bookworm-slim@sha256:25b3eb23a00590b7499f2a2ce939322727fcce1b15fdd69754fcd09536a3ae2c

FROM ${NODE_IMAGE} AS build
ENV NEXT_TELEMETRY_DISABLED=1 HUSKY=0 CI=true npm_config_cache=/cache/npm
WORKDIR /src
COPY SDKs/Node ./SDKs/Node
COPY ConduitLLM.WebUI ./ConduitLLM.WebUI
RUN --mount=type=cache,id=npm,target=/cache/npm \
    cd SDKs/Node && npm ci --no-audit --no-fund && npm run build
RUN --mount=type=cache,id=npm,target=/cache/npm \
    cd ConduitLLM.WebUI && npm ci --no-audit --no-fund --ignore-scripts && npm run build
# Keep only what `next start` needs, at the same relative paths (the SDKs are linked as ../SDKs/Node/*).
RUN cd SDKs/Node && npm prune --omit=dev --no-audit --no-fund \
 && cd /src/ConduitLLM.WebUI && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir -p /out/app/ConduitLLM.WebUI /out/app/SDKs \
 && cp -a /src/SDKs/Node /out/app/SDKs/Node \
 && cp -a package.json .next node_modules /out/app/ConduitLLM.WebUI/ \
 && for f in public next.config.js next.config.mjs next.config.ts; do [ ! -e "$f" ] || cp -a "$f" /out/app/ConduitLLM.WebUI/; done \
 && rm -rf /out/app/ConduitLLM.WebUI/.next/cache \
 && find /out/app/SDKs/Node -maxdepth 2 -name src -type d -prune -exec rm -rf {} +

FROM ${NODE_IMAGE} AS final
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/knnlabs/Conduit
LABEL org.opencontainers.image.title="ConduitLLM WebUI" \
      org.opencontainers.image.description="ConduitLLM administration dashboard (Next.js)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}"
# The server needs node and nothing else: drop the package managers, add the app user (UID 1001).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && groupadd --system --gid 1001 nodejs \
 && useradd --system --uid 1001 --gid 1001 --home-dir /home/nextjs --create-home --shell /usr/sbin/nologin nextjs
COPY --from=build /out/app /app/
# Next.js writes its image and fetch cache to .next/cache; everything else stays read-only for the app.
# The upstream image runs the app from /app, so its cache is /app/.next/cache: the one path the chart
# and Compose mount writable. Here the app sits in /app/ConduitLLM.WebUI, and its .next/cache is a link
# to that same directory, so one mount serves both images.
RUN mkdir -p /app/.next/cache \
 && chown 1001:1001 /app/.next/cache \
 && chmod 0750 /app/.next/cache \
 && ln -s /app/.next/cache /app/ConduitLLM.WebUI/.next/cache
WORKDIR /app/ConduitLLM.WebUI
ENV NODE_ENV=production NEXT_TELEMETRY_DISABLED=1 PORT=3000 HOSTNAME=0.0.0.0
EXPOSE 3000
USER 1001:1001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:3000/api/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "node_modules/next/dist/bin/next", "start"]
