# syntax=docker/dockerfile:1
# ConduitLLM Core API (ConduitLLM.Http): the OpenAI-compatible gateway, which also runs every
# background worker. Build context: a ConduitLLM source checkout. Named build context
# `healthprobe`: docker/healthprobe of this repository (scripts/build.ts passes both).
#
#   docker buildx build -f docker/api.Dockerfile --build-context healthprobe=docker/healthprobe SRC
#
# Base images are pinned by digest (see docs/images.md for where each digest comes from and how
# to refresh it); override them with --build-arg DOTNET_SDK_IMAGE=... / ASPNET_IMAGE=...
ARG DOTNET_SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:9.0-noble@sha256:64c94a5a8fac55f965e0fb74b0e6a46b73b7323257c492170befbe5537dfafef
ARG ASPNET_IMAGE=mcr.microsoft.com/dotnet/aspnet:9.0.20-noble-chiseled-extra@sha256:c7c53c7bb1e5bdcf216677c6b8e97cda49f4f3351b3c870556024bb800450ddd

# The runtime image: distroless (no shell, no package manager) with ICU and tzdata ("extra").
FROM ${ASPNET_IMAGE} AS runtime-base

FROM ${DOTNET_SDK_IMAGE} AS build
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_PACKAGES=/cache/nuget
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=nuget,target=/cache/nuget \
    dotnet restore ConduitLLM.Http/ConduitLLM.Http.csproj \
 && dotnet publish ConduitLLM.Http/ConduitLLM.Http.csproj -c Release --no-restore -o /out/app -p:UseAppHost=false
COPY --from=healthprobe . /probe/
RUN --mount=type=cache,id=nuget,target=/cache/nuget \
    dotnet publish /probe/HealthProbe.csproj -c Release -o /out/probe

# The runtime has no shell, so its user and home directory are prepared here and copied over.
FROM ${DOTNET_SDK_IMAGE} AS rootfs
COPY --from=runtime-base /etc/passwd /etc/group /rootfs/etc/
RUN ! grep -qE '^[^:]*:[^:]*:1000:' /rootfs/etc/passwd \
 && echo 'appuser:x:1000:1000:ConduitLLM:/home/appuser:/usr/sbin/nologin' >> /rootfs/etc/passwd \
 && echo 'appuser:x:1000:' >> /rootfs/etc/group \
 && mkdir -p /rootfs/home/appuser && chown 1000:1000 /rootfs/home/appuser && chmod 0750 /rootfs/home/appuser

FROM runtime-base AS final
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/knnlabs/Conduit
LABEL org.opencontainers.image.title="ConduitLLM API" \
      org.opencontainers.image.description="OpenAI-compatible LLM gateway (ConduitLLM.Http)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=rootfs /rootfs/etc/passwd /rootfs/etc/group /etc/
COPY --from=rootfs --chown=1000:1000 /rootfs/home/appuser /home/appuser
# Application files stay owned by root: the app can read them, not change them.
COPY --from=build /out/app /app/
COPY --from=build /out/probe /opt/healthprobe/
WORKDIR /app
ENV ASPNETCORE_HTTP_PORTS=8080 \
    ASPNETCORE_ENVIRONMENT=Production \
    DOTNET_RUNNING_IN_CONTAINER=true \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    HOME=/home/appuser
EXPOSE 8080
USER 1000:1000
# /health/ready answers once Kestrel listens. Migrations run before that and may wait up to ~5 minutes
# for the advisory lock, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["dotnet", "/opt/healthprobe/HealthProbe.dll", "http://127.0.0.1:8080/health/ready"]
ENTRYPOINT ["dotnet", "/app/ConduitLLM.Http.dll"]
