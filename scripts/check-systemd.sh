#!/usr/bin/env bash
# check-systemd.sh: check deploy/systemd/ the way systemd would read it.
#
#  1. systemd-analyze verify must print nothing and exit 0. It loads the unit
#     from a throw-away root (--root) holding a copy of this host's unit tree
#     (for the targets it names), the unit at /usr/lib/systemd/system and a
#     freshly built posbridge at /usr/bin/posbridge: verify fails when
#     ExecStart's binary is missing, and on systemd 252 --root needs a full
#     unit tree ("Unit sysinit.target not found" otherwise). An unknown key
#     only warns with exit 0, hence the check that the output is empty.
#  2. systemd-sysusers must create the posbridge user from posbridge.sysusers
#     (in the same throw-away root).
#  3. systemd-analyze security --offline=true must report an exposure of at
#     most 2.0. On systemd 252 --threshold is on a 0-100 scale (exposure x 10).
#
# The unit files are checked as they are in the working tree; the binary is
# built from HEAD (POSBRIDGE_BIN=path uses an already built one instead).
#
# Usage: scripts/check-systemd.sh
# Needs: systemd-analyze and systemd-sysusers (Debian: systemd), go unless
# POSBRIDGE_BIN is set. No systemd PID 1 is needed. Exit 0 when all pass.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit=$repo/deploy/systemd/posbridge.service
sysusers=$repo/deploy/systemd/posbridge.sysusers
max_exposure=20 # 2.0 on the 0-100 scale of --threshold

fail() {
	echo "check-systemd: FAIL: $*" >&2
	exit 1
}

for tool in systemd-analyze systemd-sysusers; do
	command -v "$tool" >/dev/null || fail "$tool not found (apt-get install systemd)"
done
[[ -f $unit ]] || fail "$unit not found"
[[ -f $sysusers ]] || fail "$sysusers not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/check-systemd.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
install -m 0644 "$unit" "$root/usr/lib/systemd/system/posbridge.service"

if [[ -n ${POSBRIDGE_BIN:-} ]]; then
	install -m 0755 "$POSBRIDGE_BIN" "$root/usr/bin/posbridge"
else
	command -v go >/dev/null || fail "go not found: install Go or set POSBRIDGE_BIN"
	# Built from the committed tree (git archive HEAD) when there is one, so
	# that files others are editing in a shared working tree cannot break it.
	src=$repo
	if git -C "$repo" rev-parse --verify -q HEAD >/dev/null; then
		src=$work/src
		mkdir -p "$src"
		git -C "$repo" archive HEAD | tar -x -C "$src"
	fi
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$root/usr/bin/posbridge" ./cmd/posbridge) ||
		fail "could not build posbridge from $src"
fi
echo "check-systemd: ExecStart binary: $("$root/usr/bin/posbridge" version)"

echo "== systemd-analyze verify --root=<tmp> --man=no --generators=no posbridge.service"
rc=0
out=$(systemd-analyze verify --root="$root" --man=no --generators=no posbridge.service 2>&1) || rc=$?
if [[ -n $out ]]; then
	printf '%s\n' "$out"
fi
[[ $rc -eq 0 ]] || fail "systemd-analyze verify exited $rc"
[[ -z $out ]] || fail "systemd-analyze verify printed warnings (see above)"
echo "check-systemd: verify: no warnings, exit 0"

echo "== systemd-sysusers --root=<tmp> posbridge.sysusers"
systemd-sysusers --root="$root" "$sysusers" >/dev/null 2>&1 || fail "systemd-sysusers rejected $sysusers"
grep -q '^posbridge:' "$root/etc/passwd" || fail "systemd-sysusers did not create the posbridge user"
grep -q '^posbridge:' "$root/etc/group" || fail "systemd-sysusers did not create the posbridge group"
echo "check-systemd: sysusers: creates user and group posbridge"

echo "== systemd-analyze security --offline=true --threshold=$max_exposure posbridge.service"
rc=0
out=$(systemd-analyze security --no-pager --offline=true --threshold="$max_exposure" "$unit" 2>&1) || rc=$?
# What is still exposed, then the overall figure.
printf '%s\n' "$out" | grep -E '^(✗|→)' || printf '%s\n' "$out"
[[ $rc -eq 0 ]] || fail "exposure above $((max_exposure / 10)).$((max_exposure % 10)) (systemd-analyze security exited $rc)"
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || fail "no overall exposure level in the output of systemd-analyze security"
echo "check-systemd: PASS: verify clean, exposure $score (limit 2.0)"
