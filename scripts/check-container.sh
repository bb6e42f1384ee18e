#!/usr/bin/env bash
# check-container.sh: prove that the Dockerfile builds and that its image
# runs, with no registry and no Docker engine.
#
# No registry is reachable in CI, so the Dockerfile's build base
# (docker.io/library/golang:…) is replaced by a local stand-in tagged with
# that exact name: this host's Go toolchain (go env GOROOT, at /usr/local/go
# as in the official image) plus busybox-static from Debian for RUN's
# /bin/sh. FROM scratch needs no image. Modules come from this host's module
# cache served as a file:// GOPROXY, and the image build runs with
# --network none. Every piece of container state lives in a temporary
# directory removed on exit; pulls are refused (--pull=never, and the public
# registries are marked blocked in a private registries.conf).
#
# What it proves, in order:
#   1. the Dockerfile builds (buildah bud, Docker format so HEALTHCHECK is kept);
#   2. the image config: non-root USER, ENTRYPOINT, CMD, VOLUME, EXPOSE,
#      HEALTHCHECK; the file system: the state directory owned by the user
#      with mode 0700, CA certificates, no shell;
#   3. "posbridge version" runs in the image and prints the VERSION build arg;
#   4. the process is not root (a root-only file cannot be read);
#   5. the HEALTHCHECK command, read from the image, run with a mounted
#      configuration (listen 0.0.0.0:8740 plus a bearer token file): exit 1
#      when nothing listens, exit 0 against a stand-in /readyz answering
#      {"ready": true}, exit 1 when it answers {"ready": false}.
#
# Usage: scripts/check-container.sh
# Needs (Debian 12): buildah podman runc, go, and either BUSYBOX=path to a
# static busybox or apt-get (the busybox-static package is downloaded, not
# installed). Run as root (rootful podman with runc and cgroupfs: crun
# fails on hybrid cgroups here, and nofile/nproc ulimits must be explicit
# because rlimits cannot be raised).
# Exit 0: all proved. 1: a check failed. 2: cannot check here (says why).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=localhost/posbridge:check
start=$SECONDS

say() { echo "check-container: $*"; }
fail() {
	echo "check-container: FAIL: $*" >&2
	exit 1
}
cannot() {
	echo "check-container: CANNOT CHECK: $*" >&2
	exit 2
}

# ---- preconditions -----------------------------------------------------------
[[ $(id -u) -eq 0 ]] || cannot "needs root (rootful podman/buildah with runc)"
for tool in buildah podman runc go findmnt; do
	command -v "$tool" >/dev/null || cannot "$tool not found (apt-get install buildah podman runc; Go from go.dev)"
done
if [[ -z ${BUSYBOX:-} ]] && ! { command -v apt-get && command -v dpkg-deb; } >/dev/null; then
	cannot "no BUSYBOX=path and no apt-get/dpkg-deb to fetch busybox-static"
fi

goroot=$(go env GOROOT)
gomodcache=$(go env GOMODCACHE)
gocache=$(go env GOCACHE)

# ---- private container state -------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/check-container.XXXXXX")
store=(--root "$work/storage" --runroot "$work/run" --storage-driver "${STORAGE_DRIVER:-overlay}")
bh=(buildah "${store[@]}")
pm=(podman "${store[@]}" --cgroup-manager cgroupfs --runtime runc --events-backend none
	--tmpdir "$work/libpod" --network-config-dir "$work/cni")
runflags=(--rm --pull=never --no-healthcheck --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

cleanup() {
	set +e
	"${pm[@]}" rm --all --force >/dev/null 2>&1
	"${bh[@]}" rm --all >/dev/null 2>&1
	"${pm[@]}" rmi --all --force >/dev/null 2>&1
	# The overlay driver leaves its home bind-mounted; unmount innermost first.
	findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/cni" "$work/libpod"
cat >"$work/registries.conf" <<'EOF'
unqualified-search-registries = []
[[registry]]
prefix = "docker.io"
location = "docker.io"
blocked = true
[[registry]]
prefix = "quay.io"
location = "quay.io"
blocked = true
[[registry]]
prefix = "gcr.io"
location = "gcr.io"
blocked = true
[[registry]]
prefix = "ghcr.io"
location = "ghcr.io"
blocked = true
EOF
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf

# The build context is the committed tree (git archive HEAD), so that files
# others are editing in a shared working tree cannot break or change it;
# CONTEXT=worktree builds the working tree as it is.
if [[ ${CONTEXT:-head} == worktree ]] || ! git -C "$repo" rev-parse --verify -q HEAD >/dev/null; then
	ctx=$repo
	version=check-worktree
else
	ctx=$work/context
	mkdir -p "$ctx"
	git -C "$repo" archive HEAD | tar -x -C "$ctx"
	version="check-$(git -C "$repo" rev-parse --short HEAD)"
fi

golang_ref=$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' "$ctx/Dockerfile")
[[ $golang_ref == docker.io/library/golang:* ]] ||
	fail "Dockerfile: no 'FROM docker.io/library/golang:… AS build' line (found '$golang_ref')"
golang_tag=${golang_ref#docker.io/library/golang:}
go_version=$(go env GOVERSION)
[[ $go_version == go${golang_tag%%-*}* ]] ||
	cannot "host Go is $go_version; the stand-in for $golang_ref needs go${golang_tag%%-*}"

# ---- 0. the stand-in build base -----------------------------------------------
say "stand-in for $golang_ref: $go_version from $goroot + busybox-static"
sg=$work/golang
mkdir -p "$sg/rootfs/bin" "$sg/rootfs/usr/local" "$sg/rootfs/etc/ssl/certs" "$sg/rootfs/tmp" "$sg/rootfs/root"
if [[ -n ${BUSYBOX:-} ]]; then
	install -m 0755 "$BUSYBOX" "$sg/rootfs/bin/busybox"
else
	mkdir -p "$work/deb"
	(cd "$work/deb" && apt-get download -q -o APT::Sandbox::User=root busybox-static >/dev/null) ||
		cannot "apt-get download busybox-static failed (run apt-get update?)"
	dpkg-deb -x "$work"/deb/busybox-static_*.deb "$work/deb/x"
	install -m 0755 "$work/deb/x/bin/busybox" "$sg/rootfs/bin/busybox"
fi
for applet in $("$sg/rootfs/bin/busybox" --list); do
	[[ -e $sg/rootfs/bin/$applet ]] || ln -s busybox "$sg/rootfs/bin/$applet"
done
chmod 1777 "$sg/rootfs/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' >"$sg/rootfs/etc/passwd"
echo 'root:x:0:' >"$sg/rootfs/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$sg/rootfs/etc/ssl/certs/"
cp -a "$goroot" "$sg/rootfs/usr/local/go"
cat >"$sg/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    GOLANG_VERSION=${go_version#go} GOTOOLCHAIN=local GOPATH=/go
WORKDIR /go
EOF
"${bh[@]}" bud --quiet --pull=never --cni-config-dir "$work/cni" --format docker -t "$golang_ref" "$sg" >/dev/null ||
	fail "could not build the stand-in base image"

# ---- 1. the Dockerfile builds ---------------------------------------------------
# The host's module cache, served read-only as a GOPROXY, holds what the
# Dockerfile's "go mod download" asks for once the host has run it too.
(cd "$ctx" && go mod download) || cannot "go mod download failed on the host (no module proxy?)"
volumes=(-v "$gomodcache/cache/download:/goproxy:ro")
# The host's build cache, when there is one, saves recompiling every
# dependency (-trimpath cache entries do not depend on the source path).
[[ -d $gocache ]] && volumes+=(-v "$gocache:/root/.cache/go-build")
say "buildah bud $ctx (VERSION=$version, --network none, GOPROXY=file:///goproxy)"
if ! "${bh[@]}" bud --pull=never --cni-config-dir "$work/cni" --format docker --isolation oci --runtime runc --network none \
	--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "${volumes[@]}" \
	--build-arg VERSION="$version" --build-arg GOPROXY=file:///goproxy --build-arg GOSUMDB=off \
	-t "$image" -f "$ctx/Dockerfile" "$ctx" >"$work/build.log" 2>&1; then
	cat "$work/build.log" >&2
	fail "the Dockerfile does not build"
fi
say "PROVED: the Dockerfile builds ($((SECONDS - start)) s so far)"

# ---- 2. image configuration and file system ---------------------------------------
cfg() { "${pm[@]}" image inspect --format "$1" "$image"; }
expect() { # expect WHAT GOT WANT
	[[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
	say "  $1: $2"
}
say "image config:"
expect User "$(cfg '{{.Config.User}}')" "65532:65532"
expect Entrypoint "$(cfg '{{range .Config.Entrypoint}}{{.}} {{end}}')" "/usr/bin/posbridge "
expect Cmd "$(cfg '{{range .Config.Cmd}}{{.}} {{end}}')" "serve --config /etc/posbridge/posbridge.yaml "
# shellcheck disable=SC2016 # $k and $v are Go template variables
expect Volumes "$(cfg '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}')" "/var/lib/posbridge "
# shellcheck disable=SC2016 # $k and $v are Go template variables
expect ExposedPorts "$(cfg '{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}')" "8740/tcp "
health=$(cfg '{{range .HealthCheck.Test}}{{.}} {{end}}')
expect Healthcheck "$health" "CMD /usr/bin/posbridge health --config /etc/posbridge/posbridge.yaml "
say "  size: $(cfg '{{.Size}}') bytes"

root=$("${pm[@]}" image mount "$image")
expect "/var/lib/posbridge owner and mode" "$(stat -c '%u:%g %a' "$root/var/lib/posbridge")" "65532:65532 700"
expect "/var/lib owner" "$(stat -c '%u:%g' "$root/var/lib")" "0:0"
expect "/etc/passwd" "$(cat "$root/etc/passwd")" "posbridge:x:65532:65532:posbridge:/var/lib/posbridge:/sbin/nologin"
[[ -s $root/etc/ssl/certs/ca-certificates.crt ]] || fail "no CA certificates in the image"
[[ ! -e $root/bin/sh ]] || fail "the runtime image has a shell"
say "  files: $(cd "$root" && find . -mindepth 1 -not -type d | sort | tr '\n' ' ')"
"${pm[@]}" image unmount "$image" >/dev/null
say "PROVED: non-root user, entrypoint, volume, port, HEALTHCHECK, state directory 65532:65532 0700, CA certificates, no shell"

# ---- 3. posbridge version ------------------------------------------------------------
out=$("${pm[@]}" run "${runflags[@]}" --network none "$image" version) || fail "posbridge version did not run"
[[ $out == "posbridge $version ($go_version, linux/amd64)" ]] ||
	fail "posbridge version: got '$out', want 'posbridge $version ($go_version, linux/amd64)'"
say "PROVED: podman run $image version -> $out"

# ---- 4. not root ----------------------------------------------------------------------
conf=$work/etc-posbridge
mkdir -p "$conf"
cat >"$conf/posbridge.yaml" <<'EOF'
listen: 0.0.0.0:8740
api:
  token_file: /etc/posbridge/api.token
terminals:
  - name: lane1
    serial: P3SN0001
    lan_address: 192.0.2.10:6868
    auth: hmac
    credential_file: /etc/posbridge/lane1.credential
    currency: PEN
discovery:
  enabled: false
EOF
printf 'check-container-token\n' >"$conf/api.token"
cp "$conf/posbridge.yaml" "$conf/root-only.yaml"
chown 65532:65532 "$conf/api.token"
chmod 0600 "$conf/api.token" "$conf/root-only.yaml"
chmod 0644 "$conf/posbridge.yaml"
chmod 0755 "$conf"
mount=(-v "$conf:/etc/posbridge:ro")

rc=0
out=$("${pm[@]}" run "${runflags[@]}" --network none "${mount[@]}" "$image" \
	health --config /etc/posbridge/root-only.yaml 2>&1) || rc=$?
[[ $rc -eq 1 && $out == *"permission denied"* ]] ||
	fail "reading a root-only 0600 file: got exit $rc '$out', want exit 1 and permission denied"
say "PROVED: the process is not root (a root-only 0600 file: $out)"

# ---- 5. the HEALTHCHECK command ------------------------------------------------------
read -r -a hc <<<"$health"
hc_bin=${hc[1]}
hc_args=("${hc[@]:2}")

rc=0
out=$("${pm[@]}" run "${runflags[@]}" --network none "${mount[@]}" --entrypoint "$hc_bin" "$image" \
	"${hc_args[@]}" 2>&1) || rc=$?
[[ $rc -eq 1 && $out == *"not reachable"* ]] ||
	fail "HEALTHCHECK with nothing listening: got exit $rc '$out', want exit 1 and not reachable"
say "PROVED: HEALTHCHECK, nothing listening -> exit 1: $out"

# A stand-in daemon: busybox httpd serving /readyz on 127.0.0.1:8740 in its
# own network namespace (--network none), which the health check joins.
mkdir -p "$work/www"
printf '{"ready": true, "checks": {"journal": "ok"}}\n' >"$work/www/readyz"
chmod -R a+rX "$work/www"
fake=$("${pm[@]}" run -d --pull=never --no-healthcheck --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
	--network none -v "$work/www:/www:ro" "$golang_ref" httpd -f -p 127.0.0.1:8740 -h /www) ||
	fail "could not start the stand-in /readyz server"
for _ in $(seq 50); do
	"${pm[@]}" exec "$fake" wget -q -O /dev/null http://127.0.0.1:8740/readyz 2>/dev/null && break
	sleep 0.2
done
healthcheck() {
	"${pm[@]}" run "${runflags[@]}" --network "container:$fake" "${mount[@]}" --entrypoint "$hc_bin" "$image" \
		"${hc_args[@]}" 2>&1
}
rc=0
out=$(healthcheck) || rc=$?
[[ $rc -eq 0 && $out == '{"ready":true,"checks":{"journal":"ok"}}' ]] ||
	fail "HEALTHCHECK against a ready /readyz: got exit $rc '$out', want exit 0 and the JSON answer"
say "PROVED: HEALTHCHECK, /readyz ready -> exit 0: $out"

printf '{"ready": false, "checks": {"route": "no terminal reachable"}}\n' >"$work/www/readyz"
rc=0
out=$(healthcheck) || rc=$?
[[ $rc -eq 1 && $out == *'"ready":false'* ]] ||
	fail "HEALTHCHECK against a not-ready /readyz: got exit $rc '$out', want exit 1"
say "PROVED: HEALTHCHECK, /readyz not ready -> exit 1: $(tr '\n' ' ' <<<"$out")"

say "PASS: Dockerfile builds; image runs 'posbridge version' and its HEALTHCHECK as uid 65532 ($((SECONDS - start)) s)"
