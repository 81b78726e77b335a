# The container image of the local server: the one `make image` builds and
# `make container-test` tests. It is FROM scratch and needs no base image
# from any registry: `make image` builds the static binary with the Go
# toolchain on this host and stages it, with the CA certificates and the
# user files, in build/image, the build context:
#
#   make image                      # impression-counter:latest
#   docker build -f Dockerfile build/image   # what make image runs
#
# Dockerfile.multistage builds the same image inside golang: instead, for
# hosts that can pull from Docker Hub; the tests do not cover it.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/adcount/impression-counter
LABEL org.opencontainers.image.title="impression-counter" \
      org.opencontainers.image.description="Ad impression counter: exact, deduplicated counts per campaign over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

# The binary, /etc/ssl/certs/ca-certificates.crt (for DynamoDB over TLS)
# and /etc/passwd and /etc/group naming the unprivileged user.
COPY rootfs/ /
# DATA_DIR, owned by that user, so that a named volume mounted here starts
# out writable by it.
COPY --chown=65532:65532 data/ /data/

# The memory store keeps its log and snapshots in /data: mount a volume
# there and the counts outlive the container. STORE=dynamodb ignores it.
ENV DATA_DIR=/data PORT=8080
USER 65532:65532
EXPOSE 8080

# The server drains requests in flight and syncs the log on SIGTERM, for
# up to SHUTDOWN_TIMEOUT (10s): give the engine's stop a longer grace
# (docker run --stop-timeout 30, compose's stop_grace_period).
STOPSIGNAL SIGTERM
# Healthy means ready: GET /readyz answers 200 (the store can be reached).
# A scratch image has no shell or curl, so the binary asks its own server.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/impression-counter", "healthcheck"]

ENTRYPOINT ["/impression-counter"]
