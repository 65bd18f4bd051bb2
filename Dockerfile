# Herald: a multi-stage build whose dependency layers stay cached while only the source changes.
#
#   planner  reduces the source tree to a recipe (the manifests and Cargo.lock) with cargo-chef
#   lockfile keeps only the wasm-bindgen entry of Cargo.lock, the one setup.sh reads
#   builder  runs scripts/setup.sh (the same setup as the README's commands), cooks the recipe
#            (builds every dependency of the server and of the wasm bundle), then copies the
#            source and builds Herald and its job worker
#   runtime  debian:bookworm-slim with the two binaries and the site folder, as an unprivileged user
#
# Everything comes from the package registries. `make lint` runs hadolint on this file, then
# scripts/check-dockerfile.sh, which checks that these steps stay those of the setup script and
# the release build.

ARG CARGO_CHEF_VERSION=0.1.78

# The planner and the builder start with the same four lines, which the build runs once for both.
# RUSTUP_TOOLCHAIN: the image's own toolchain. rust-toolchain.toml says "stable", which would make
# rustup download another toolchain in the planner on every source change; setup.sh adds the wasm
# target to this one.
FROM rust:1.95-bookworm AS planner
ARG CARGO_CHEF_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked
WORKDIR /src
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# setup.sh reads only the wasm-bindgen entry of Cargo.lock (the CLI must match it), so the setup
# layer gets just that entry and stays cached when other dependencies change.
FROM debian:bookworm-slim AS lockfile
COPY Cargo.lock /full/Cargo.lock
RUN mkdir /setup \
    && { echo '[[package]]'; grep -x -A1 'name = "wasm-bindgen"' /full/Cargo.lock; } > /setup/Cargo.lock

FROM rust:1.95-bookworm AS builder
ARG CARGO_CHEF_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked
WORKDIR /src
# The Makefile's PATH: setup's Node.js (where Debian's is too old), then the npm tools (wasm-opt).
ENV PATH=/src/tools/node/node_modules/.bin:/src/tools/node_modules/.bin:$PATH
COPY scripts/setup.sh scripts/setup.sh
COPY tools/package.json tools/package-lock.json tools/
COPY tools/node/package.json tools/node/package-lock.json tools/node/
COPY --from=lockfile /setup/Cargo.lock Cargo.lock
RUN scripts/setup.sh
# Dependencies, with cargo-leptos's own flags: the server (bin-features) into target/release,
# the wasm bundle (lib-features, lib-profile-release) into target/front, cargo-leptos's target-dir.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --recipe-path recipe.json --release --no-default-features --features ssr \
        --bin herald --bin worker \
    && cargo chef cook --recipe-path recipe.json --profile wasm-release \
        --target wasm32-unknown-unknown --target-dir target/front --no-default-features --features hydrate
COPY . .
RUN cargo leptos build --release \
    && cargo build --release --no-default-features --features ssr --bin worker

FROM debian:bookworm-slim AS runtime
# Unpinned: bookworm's security updates replace a package's version, and a pinned one then fails to install.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin herald
WORKDIR /app
COPY --from=builder /src/target/release/herald /app/herald
COPY --from=builder /src/target/release/worker /app/worker
COPY --from=builder /src/target/site /app/site
# The content hashes of the asset names: beside the binary, the server uses the hashed names.
# RUST_LOG is left to the binary's default, which keeps the per-request lines (docs/operations.md).
COPY --from=builder /src/target/release/hash.txt /app/hash.txt
ENV LEPTOS_SITE_ADDR=0.0.0.0:8080 \
    LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_ENV=PROD
EXPOSE 8080
# By number (the herald user's), which a host or Kubernetes can check is not root without /etc/passwd.
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
CMD ["/app/herald"]
