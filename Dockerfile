# Portcullis container image (C33): a multi-stage build, a final image with
# no shell and no package manager, a non-root user, and a root file system
# that can be mounted read-only.
#
#   docker build -t portcullis .
#   docker run --read-only --cap-drop=ALL -p 8080:8080 \
#     -v "$PWD/portcullis.toml:/etc/portcullis/portcullis.toml:ro" \
#     -v portcullis-state:/var/lib/portcullis portcullis
#
# The configuration is mounted at /etc/portcullis/portcullis.toml; the
# identity database (sqlite://, when [identity] is on) lives in the
# /var/lib/portcullis volume, the only writable path. Reload with
# `docker kill --signal=HUP <container>`. See docs/operations.md.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# The allocator build setting (issue 16: memory per connection).
COPY .cargo ./.cargo
COPY crates ./crates
RUN cargo build --release --locked -p portcullis \
 && install -D -m 0755 target/release/portcullis /out/usr/bin/portcullis \
 && install -d -m 0700 /out/var/lib/portcullis /out/etc/portcullis

# distroless "cc": glibc and libgcc only; "nonroot": uid and gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/bin/portcullis /usr/bin/portcullis
COPY --from=build --chown=65532:65532 /out/var/lib/portcullis /var/lib/portcullis
USER 65532:65532
WORKDIR /var/lib/portcullis
VOLUME ["/var/lib/portcullis"]
# The gateway, and the admin listener (/healthz, /readyz, /metrics): set
# admin.listen = "0.0.0.0:9901" in the mounted file so probes can reach it.
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.toml"]
