# The `stratos` binary in a small runtime image. Built by compose/docker-compose.yml; on its own:
#   docker build -t stratos .
#   docker run --rm -p 3100:3100 -e STRATOS_LISTEN=0.0.0.0:3100 -v stratos-data:/data stratos up

FROM rust:1.95-slim-bookworm AS build
# librdkafka (built by rdkafka-sys) needs a C toolchain, OpenSSL and zlib headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stratos \
    && cp target/release/stratos /usr/local/bin/stratos

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home stratos \
    && mkdir -p /data/blobs && chown -R stratos /data
COPY --from=build /usr/local/bin/stratos /usr/local/bin/stratos
USER stratos
# `stratos up` keeps its embedded log, database, blobs and master key under ./data.
WORKDIR /data
ENV STRATOS_LISTEN=0.0.0.0:3100 \
    STRATOS_LOG_FORMAT=json
EXPOSE 3100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD curl -fsS "http://127.0.0.1:${STRATOS_LISTEN##*:}/ready" || exit 1
ENTRYPOINT ["stratos"]
CMD ["up"]
