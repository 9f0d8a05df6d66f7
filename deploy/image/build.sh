#!/usr/bin/env bash
# Builds an OCI image archive from this machine's own packages, with no
# registry: buildah, from scratch, holding /usr/bin/node and exactly the shared
# libraries `ldd` lists for it (copied at their paths), plus
#   trellis: /opt/trellis/{package.json,dist/{daemon,src,cni}} and the
#            production node_modules, /usr/bin/ip (iproute2) and
#            /usr/bin/nft (nftables) with their libraries; entrypoint
#            trellisd; trellisctl at /usr/local/bin/trellisctl
#   pause:   nothing more; the command sleeps forever (a pod sandbox image
#            for the lab's containerd)
# Usage: deploy/image/build.sh trellis|pause OUT.tar [NAME]
# Needs root (buildah with the vfs driver in a private storage directory,
# removed afterwards) and `npm run build` done first for `trellis`.
set -euo pipefail

kind=${1:?usage: build.sh trellis|pause OUT.tar [NAME]}
out=${2:?usage: build.sh trellis|pause OUT.tar [NAME]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=$(node -p "require('$root/package.json').version")
case $kind in
  trellis) name=${3:-localhost/trellis:$version} ;;
  pause) name=${3:-localhost/trellis-lab-pause:1} ;;
  *) echo "build.sh: unknown image kind $kind (trellis or pause)" >&2; exit 2 ;;
esac
if [[ $kind == trellis && ! -f $root/dist/daemon/trellisd.js ]]; then
  echo "build.sh: $root/dist is missing: run npm run build first" >&2
  exit 2
fi

storage=$(mktemp -d "${TMPDIR:-/tmp}/trellis-buildah-XXXXXX")
bah=(buildah --storage-driver vfs --root "$storage/root" --runroot "$storage/run")
# buildah creates /etc/cni/net.d/cni.lock on first use; remove it if it was not there before.
lock=/etc/cni/net.d/cni.lock
had_lock=0; [[ -e $lock ]] && had_lock=1
ctr=''
cleanup() {
  if [[ -n $ctr ]]; then "${bah[@]}" umount "$ctr" >/dev/null 2>&1 || true; "${bah[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$storage"
  if [[ $had_lock == 0 ]]; then rm -f "$lock"; rmdir /etc/cni/net.d /etc/cni 2>/dev/null || true; fi
}
trap cleanup EXIT

ctr=$("${bah[@]}" from --quiet scratch)
mnt=$("${bah[@]}" mount "$ctr")

# A program at /usr/bin/NAME and the shared libraries ldd lists for it, at their paths.
add_program() {
  local src
  src=$(readlink -f "$(command -v "$1")")
  install -D -m 0755 "$src" "$mnt/usr/bin/$1"
  for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
    mkdir -p "$mnt$(dirname "$lib")"
    cp -L "$lib" "$mnt$lib"
  done
}
add_program node
node_bin=$(readlink -f "$(command -v node)")
mkdir -p "$mnt/tmp" && chmod 1777 "$mnt/tmp"

if [[ $kind == pause ]]; then
  "${bah[@]}" config --entrypoint '["/usr/bin/node","-e","setInterval(()=>{},1<<30)"]' --cmd '' "$ctr"
else
  # trellisd reads the host's routes and links with `ip -j` (iproute2), and
  # keeps its egress masquerade table with `nft` (nftables).
  add_program ip
  add_program nft
  app=$mnt/opt/trellis
  mkdir -p "$app/dist"
  cp "$root/package.json" "$app/"
  cp -a "$root/dist/daemon" "$root/dist/src" "$root/dist/cni" "$app/dist/"
  # Production dependencies only, each package directory copied where npm put it.
  (cd "$root" && npm ls --omit=dev --all --parseable 2>/dev/null) | tail -n +2 | while read -r pkg; do
    rel=${pkg##*/node_modules/}
    [[ $pkg == */node_modules/*/node_modules/* ]] && rel=${pkg#*/node_modules/}
    mkdir -p "$app/node_modules/$rel"
    cp -a "$pkg/." "$app/node_modules/$rel/"
  done
  # What only developers read: source maps, type declarations, docs.
  find "$app" \( -name '*.map' -o -name '*.d.ts' -o -name '*.md' -o -name 'dist-types' -o -name 'dist-es' \) -prune -exec rm -rf {} +
  # The node runtime trellisd copies beside the CNI plugin on the host (cni.install).
  {
    echo "# node runtime for the trellis CNI plugin: kind path"
    echo "node /usr/bin/node"
    ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print "lib " $3 } $1 ~ /^\// { print "loader " $1 }'
  } >"$app/runtime.list"
  install -D -m 0755 /dev/stdin "$mnt/usr/local/bin/trellisctl" <<'SCRIPT'
#!/usr/bin/node
import('/opt/trellis/dist/src/cli/trellisctl.js');
SCRIPT
  "${bah[@]}" config --entrypoint '["/usr/bin/node","--max-semi-space-size=1","/opt/trellis/dist/daemon/trellisd.js"]' --cmd '' \
    --workingdir /opt/trellis --env NODE_ENV=production --env PATH=/usr/local/bin:/usr/bin \
    --label org.opencontainers.image.title=trellis --label "org.opencontainers.image.version=$version" "$ctr"
fi

"${bah[@]}" umount "$ctr" >/dev/null
"${bah[@]}" commit --quiet "$ctr" "$name" >/dev/null
mkdir -p "$(dirname "$out")"
rm -f "$out"
"${bah[@]}" push --quiet "$name" "oci-archive:$out:$name"
echo "$out $(du -k "$out" | cut -f1) KiB $name"
