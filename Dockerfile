# syntax=docker/dockerfile:1
# cloudflare-aop-exporter: multi-stage build, distroless runtime, non-root.
#
#   docker build -t cloudflare-aop-exporter --build-arg CF_AOP_GIT_REVISION="$(git rev-parse --short HEAD)" .
#   docker run --rm -p 9793:9793 cloudflare-aop-exporter demo --listen 0.0.0.0:9793
#   docker run -d -p 9793:9793 \
#     -v "$PWD/config.toml:/etc/cloudflare-aop-exporter/config.toml:ro" \
#     -v "$PWD/cloudflare_api_token:/run/secrets/cloudflare_api_token:ro" \
#     cloudflare-aop-exporter
#
# The default command is `run --config /etc/cloudflare-aop-exporter/config.toml`; the state
# directory (alert state, undelivered notifications, status history) is a volume owned by the
# image's user. The health check runs the binary itself (`healthcheck`), so no shell is needed.

FROM rust:1-bookworm AS builder
# The `revision` label of cloudflare_aop_build_info.
ARG CF_AOP_GIT_REVISION=unknown
WORKDIR /src
COPY . .
# BuildKit caches keep the registry and the target dir between builds; the binary is copied
# out of the cached target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cloudflare-aop-exporter \
    && install -D -m 0755 target/release/cloudflare-aop-exporter /out/cloudflare-aop-exporter \
    && install -d -m 0700 /out/state

# glibc, libgcc and CA certificates, no shell, no package manager; uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="cloudflare-aop-exporter" \
      org.opencontainers.image.description="Prometheus exporter and alerter for Cloudflare Authenticated Origin Pulls certificates" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cloudflare-aop-exporter/cloudflare-aop-exporter"
COPY --from=builder /out/cloudflare-aop-exporter /usr/local/bin/cloudflare-aop-exporter
COPY --from=builder --chown=65532:65532 /out/state /var/lib/cloudflare-aop-exporter
USER 65532:65532
VOLUME ["/var/lib/cloudflare-aop-exporter"]
EXPOSE 9793
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/cloudflare-aop-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cloudflare-aop-exporter"]
CMD ["run", "--config", "/etc/cloudflare-aop-exporter/config.toml"]
