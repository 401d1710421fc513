#!/usr/bin/env bash
# Lets this machine run another architecture's programs through QEMU, inside
# containers too: Debian's qemu-user-static handler registered with the
# kernel's binfmt_misc (.ci/run installs qemu-user-static, binfmt-support and
# arch-test). Debian registers it with the F flag: the kernel opens the
# emulator once, so a container's root need not hold it. Idempotent; needs
# root. Usage: binfmt.sh arm64
set -euo pipefail
arch=${1:?usage: binfmt.sh arm64}
case "$arch" in
  arm64) handler=qemu-aarch64 ;;
  *) echo "binfmt.sh: no emulator for $arch (arm64)" >&2; exit 2 ;;
esac
dir=/proc/sys/fs/binfmt_misc
# Not mounted on machines without systemd (and in some containers).
[ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
grep -qx enabled "$dir/$handler" 2>/dev/null || update-binfmts --enable "$handler"
grep -q '^flags: .*F' "$dir/$handler" || {
  echo "binfmt.sh: $handler is registered without the F flag: $arch programs would not run in containers" >&2
  exit 1
}
# A static arm64 program, run for real.
arch-test "$arch" >/dev/null || {
  echo "binfmt.sh: this machine cannot run $arch programs" >&2
  exit 1
}
echo "binfmt: $arch programs run through $(sed -n 's/^interpreter //p' "$dir/$handler")"
