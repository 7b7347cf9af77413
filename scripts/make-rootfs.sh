#!/usr/bin/env bash
# make-rootfs.sh DIR PROBE: a minimal busybox root filesystem for tests, the demo and the
# benchmarks, made from Debian's busybox-static (never committed as a binary).
set -euo pipefail
dir=$1
probe=$2
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ! $busybox --list >/dev/null 2>&1; then
  echo "make-rootfs: $busybox missing: install busybox-static (scripts/install-deps.sh)" >&2
  exit 1
fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run,home}
chmod 1777 "$tmp/tmp"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
  [[ $applet == busybox ]] && continue
  ln -sf busybox "$tmp/bin/$applet"
done
cp "$probe" "$tmp/bin/probe"
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
daemon:x:1:
nogroup:x:65534:
G
echo strata > "$tmp/etc/hostname"
touch "$tmp/.stamp"
rm -rf "$dir"
mv "$tmp" "$dir"
