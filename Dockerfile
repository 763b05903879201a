# syntax=docker/dockerfile:1
#
# ringtail's image: the release binary `cargo xtask run` builds, on a small Debian.
#
#   docker build -t ghcr.io/ringtail/ringtail:0.1.0 .
#
# Deployed by deploy/ (see deploy/README.md). The image runs as root: the collector reads
# host files that belong to root (every pod's log, /proc/<pid>/fd and /proc/<pid>/root of
# other processes) with the capabilities the DaemonSet grants; a non-root user would need
# the same capabilities through file capabilities and gain nothing.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build: what `cargo xtask setup` installs for the build (xtask/src/main.rs) ----------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG BPF_LINKER_VERSION=0.10.3

# librdkafka's bundled cmake build (the rdkafka crate's `cmake-build`) needs cmake and the
# curl headers.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

# The eBPF programs build with nightly (`-Z build-std=core` for bpfel-unknown-none, hence
# rust-src) and link with bpf-linker 0.10.3, the release that links with nightly's LLVM 22
# (newer ones want LLVM 23). aya-build calls the toolchain named `nightly`, as on a
# developer machine: the nightly of the day the image is built.
RUN rustup toolchain install nightly --profile minimal \
 && rustup component add rust-src --toolchain nightly
RUN cargo install bpf-linker --version "${BPF_LINKER_VERSION}" --locked

WORKDIR /src
COPY . .
# The collector's build script (collector/build.rs) builds the eBPF object through
# xtask::build_ebpf — the code behind `cargo xtask build-ebpf` — and embeds it, so this one
# command builds the whole binary (the command of `cargo xtask run`, plus --locked).
RUN cargo build --release -p ringtail --locked \
 && install -m 0755 target/release/ringtail /usr/local/bin/ringtail

# ---- runtime ----------------------------------------------------------------------------
# The binary links libc, libm, libgcc_s and libz (ldd target/release/ringtail); librdkafka,
# zstd and mimalloc are linked in statically, and librdkafka is built without OpenSSL, SASL
# and curl. debian:bookworm-slim has exactly those libraries (libc6, libgcc-s1 and zlib1g
# are required packages) and matches the build stage's glibc; distroless/cc lacks libz.
FROM debian:${DEBIAN_RELEASE}-slim
COPY --from=build /usr/local/bin/ringtail /usr/local/bin/ringtail
# /metrics and /healthz (api.listen in deploy/base/config.yaml).
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/ringtail"]
# Without --config: the built-in default (pod and host logs to stdout); the DaemonSet passes
# `run --config /etc/ringtail/config.yaml`.
CMD ["run"]
