# posbridge container image: a static Go binary on an empty base, run as a
# numeric non-root user.
#
#   docker build --build-arg VERSION=v1.2.3 -t posbridge:v1.2.3 .
#
# Running it. The daemon reads /etc/posbridge/posbridge.yaml (mount it, with
# the credential files it names, read-only) and keeps its journal in the
# /var/lib/posbridge volume. Stopping may take up to 150 s: a payment in
# flight blocks up to 120 s and must be journaled, so raise the stop timeout
# from Docker's 10 s (docker run --stop-timeout 150; compose:
# stop_grace_period: 150s). Files mounted in must be readable by uid 65532.
#
# Either (recommended on a register PC) share the host's network, so the API
# stays on the host's loopback and DNS-SD discovery reaches the LAN:
#
#   docker run -d --name posbridge --network host --stop-timeout 150 \
#     -v /etc/posbridge:/etc/posbridge:ro -v posbridge-data:/var/lib/posbridge \
#     posbridge:v1.2.3                  # posbridge.yaml: listen: 127.0.0.1:8740
#
# or use a bridge network. The API must then listen on 0.0.0.0 to be
# reachable, which the daemon refuses without a bearer token, and multicast
# DNS-SD does not cross the bridge, so terminals need a static lan_address:
#
#   # posbridge.yaml: listen: 0.0.0.0:8740
#   #                 api: {token_file: /etc/posbridge/api.token}
#   #                 terminals: [{..., lan_address: "192.0.2.10:6868"}]
#   docker run -d --name posbridge -p 127.0.0.1:8740:8740 --stop-timeout 150 \
#     -v /etc/posbridge:/etc/posbridge:ro -v posbridge-data:/var/lib/posbridge \
#     posbridge:v1.2.3
#
# The POS then calls http://127.0.0.1:8740 with "Authorization: Bearer
# <token>". HEALTHCHECK runs "posbridge health", which asks /readyz on
# 127.0.0.1 with that token; "docker inspect" shows its JSON answer.
#
# scripts/check-container.sh builds this file with buildah against local
# stand-ins of the base image (no registry is reachable in CI).

# ---- build: a static binary ------------------------------------------------
FROM docker.io/library/golang:1.26-bookworm AS build

# Stamped into the binary: "posbridge version" prints it.
ARG VERSION=dev
# Module download settings, e.g. a local proxy (GOPROXY=file:///… with a
# mounted module cache, as the CI check does); empty means Go's defaults.
ARG GOPROXY=""
ARG GOSUMDB=""
ARG GOFLAGS=""

WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: no libc, so the binary runs on an empty base.
# -trimpath and -buildvcs=false: the same source gives the same binary.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/rootfs/usr/bin/posbridge ./cmd/posbridge

# The runtime file system: a user and group for uid/gid 65532 (the usual
# "nonroot" id), the CA certificates for the cloud route (HTTPS), the
# configuration mount point, /tmp, and (apart, to be copied with its owner)
# the state directory, mode 0700. No time zone data: the binary embeds it
# (time/tzdata).
RUN mkdir -p /out/rootfs/etc/ssl/certs /out/rootfs/etc/posbridge /out/rootfs/var/lib /out/rootfs/tmp /out/state/posbridge \
    && chmod 1777 /out/rootfs/tmp \
    && echo 'posbridge:x:65532:65532:posbridge:/var/lib/posbridge:/sbin/nologin' > /out/rootfs/etc/passwd \
    && echo 'posbridge:x:65532:' > /out/rootfs/etc/group \
    && cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ \
    && chmod 0700 /out/state/posbridge

# ---- runtime: nothing but the binary and the files above -------------------
FROM scratch
COPY --from=build /out/rootfs/ /
# /var/lib exists (root's); only posbridge inside it belongs to the user.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/
USER 65532:65532
# The journal. A new named volume takes the directory's owner and mode.
VOLUME ["/var/lib/posbridge"]
# The local REST API (listen in posbridge.yaml).
EXPOSE 8740
# Ready means 200 from /readyz with {"ready": true}: journal open, a
# terminal route usable, nothing in needs_attention.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/bin/posbridge", "health", "--config", "/etc/posbridge/posbridge.yaml"]
ENTRYPOINT ["/usr/bin/posbridge"]
CMD ["serve", "--config", "/etc/posbridge/posbridge.yaml"]
