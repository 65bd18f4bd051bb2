# Herald: a multi-stage build. The builder runs the same setup script as the README's commands,
# so the image builds from the package registries alone; the runtime holds only the server
# binary and the site folder, and runs as an unprivileged user.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN scripts/setup.sh \
    && PATH="/src/tools/node_modules/.bin:$PATH" cargo leptos build --release

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin herald
WORKDIR /app
COPY --from=builder /src/target/release/herald /app/herald
COPY --from=builder /src/target/site /app/site
ENV LEPTOS_SITE_ADDR=0.0.0.0:8080 \
    LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_ENV=PROD \
    RUST_LOG=herald=info
EXPOSE 8080
USER herald
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["/app/herald"]
