# syntax=docker/dockerfile:1
# Palisade agent image. Build from the repository root:
#   docker build -t palisade:0.1.0 .
# (add `target` to .dockerignore to keep the build context small)

# --- builder: Rust toolchain + what the eBPF build script needs (clang, llvm, libbpf headers,
#     gcc-multilib for <asm/types.h> under -target bpf) ---
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev gcc-multilib \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Manifests and every workspace member: cargo loads the whole workspace even for `-p palisade`.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY policy policy
COPY httpmatch httpmatch
COPY bpf bpf
COPY proxy proxy
COPY dnsproxy dnsproxy
COPY lab lab
COPY api api
COPY agent agent
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p palisade

# --- runtime: the binary, iproute2 (the agent drives `ip rule`/`ip route` for the proxy
#     routing table), and the default config (a ConfigMap replaces it under Kubernetes) ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/palisade /usr/local/bin/palisade
COPY config/palisade.yaml /etc/palisade/palisade.yaml
ENTRYPOINT ["/usr/local/bin/palisade"]
CMD ["run", "--config", "/etc/palisade/palisade.yaml"]
