# Parlor: a multi-stage build. The builder compiles the release binary; the runtime image
# holds only that binary (and CA certificates, for LLM providers and SMTP over TLS).
#   docker build -t parlor .
#   docker run -p 1337:1337 -e PARLOR_DATABASE=postgres://… -e PARLOR_MASTER_KEY=… parlor

FROM rust:1.95 AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crates crates
COPY bench bench
COPY template template
COPY web web
RUN cargo build --release --locked -p parlor_server --bin parlor

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/parlor --create-home parlor
COPY --from=builder /src/target/release/parlor /usr/local/bin/parlor
USER parlor
WORKDIR /var/lib/parlor
# Without PARLOR_DATABASE the server keeps a SQLite file here (mount a volume to keep it).
ENV PARLOR_DATABASE=sqlite:///var/lib/parlor/data/parlor.db
EXPOSE 1337
ENTRYPOINT ["parlor"]
CMD ["serve", "--host", "0.0.0.0", "--port", "1337"]
