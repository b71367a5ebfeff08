#!/bin/sh
# Builds the Dockerfile for real with buildah on a machine that cannot pull images, then runs
# the image on a spool volume and enqueues a task into it from the host.
#
# The base image is made here: a Debian rootfs (debootstrap, from the Debian mirror) with this
# machine's node and npm copied in, standing in for node:20-bookworm-slim. The build itself
# reaches the npm registry (npm ci). Needs root, buildah and debootstrap
# (apt-get install -y buildah debootstrap).
set -eu
cd "$(dirname "$0")/.."
ROOTFS=${ROOTFS:-/var/tmp/spoolerd-rootfs}
BASE=localhost/spoolerd-node-base
IMAGE=localhost/spoolerd
BUILDAH="buildah --storage-driver vfs"

if ! [ -x "$ROOTFS/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian
fi
node=$(command -v node)
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
echo "base: $ROOTFS + $node ($(node --version)) + $npm_dir"
cp "$node" "$ROOTFS/usr/bin/node"
rm -rf "$ROOTFS/usr/lib/node_modules/npm" && mkdir -p "$ROOTFS/usr/lib/node_modules"
cp -a "$npm_dir" "$ROOTFS/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/bin/npx"

# Where HTTPS goes through an intercepting proxy, npm in the build needs the CA this machine trusts.
ca=${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}
ca_env=""
if [ -n "$ca" ] && [ -f "$ca" ]; then
  mkdir -p "$ROOTFS/etc/ssl/certs" && cp "$ca" "$ROOTFS/etc/ssl/certs/host-ca.pem"
  ca_env="--env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.pem"
fi

ctr=$($BUILDAH from scratch)
$BUILDAH copy "$ctr" "$ROOTFS" / >/dev/null
$BUILDAH config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $ca_env --cmd node "$ctr"
$BUILDAH commit --rm "$ctr" "$BASE" >/dev/null
echo "base image: $BASE"

$BUILDAH build --isolation chroot --network host --build-arg NODE_IMAGE=$BASE -t "$IMAGE" .
echo "image: $IMAGE"

# Run it: the image's ENTRYPOINT and CMD, as its USER, with a host folder as the spool volume.
work=$(mktemp -d)
ctr=$($BUILDAH from "$IMAGE")
trap '$BUILDAH rm "$ctr" >/dev/null; rm -rf "$work"' EXIT
command=$($BUILDAH inspect --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$IMAGE")
volume=$($BUILDAH inspect --format '{{range $v, $_ := .OCIv1.Config.Volumes}}{{$v}}{{end}}' "$IMAGE")
owner=$($BUILDAH run --isolation chroot "$ctr" -- id -u):$($BUILDAH run --isolation chroot "$ctr" -- id -g)
install -d -o "${owner%:*}" -g "${owner#*:}" -m 0700 "$work/spool"
echo "running: $command  (as $owner, $work/spool on $volume)"
SPOOLERD_LOG_FORMAT=json $BUILDAH run --isolation chroot --env SPOOLERD_LOG_FORMAT=json -v "$work/spool:$volume" "$ctr" -- $command >"$work/out" 2>"$work/log" &
runner=$!
until grep -q '"serving spool"' "$work/log" 2>/dev/null; do kill -0 $runner 2>/dev/null || { cat "$work/log"; exit 1; }; sleep 0.2; done
node dist/cli/spool.js add greet '"from the host"' --dir "$work/spool"
until grep -q 'from the host' "$work/out" "$work/log" 2>/dev/null; do kill -0 $runner 2>/dev/null || { cat "$work/log"; exit 1; }; sleep 0.2; done
grep -h 'from the host' "$work/out" "$work/log"
# SIGTERM to the daemon (as `docker stop` sends it): the first node process under the runner.
descendants() { for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
for pid in $(descendants $runner); do [ "$(cat /proc/"$pid"/comm)" = node ] && break; done
kill -TERM "$pid"
wait $runner && echo "daemon in the container stopped with status 0 on SIGTERM"
grep -h '"stopped"' "$work/log"
