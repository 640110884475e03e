#!/usr/bin/env bash
# Build a Raspberry-Pi-OS-shaped arm64 test base image from Debian trixie packages.
#
#   sudo tests/e2e/base/build-base.sh            # build (or reuse) and print the image path
#   tests/e2e/base/build-base.sh --print-path    # print where the image for this recipe lives
#
# Layout (as pi-gen makes it): MBR; p1 FAT32 "bootfs" at 8 MiB (512 MiB) with vmlinuz, initrd.img,
# config.txt, cmdline.txt and the commented-out NoCloud seed (meta-data, user-data,
# network-config); p2 ext4 "rootfs" made with `mkfs.ext4 -d` (no loop mounts anywhere).
#
# Speed: the kernel's initramfs is NOT generated in the arm64 chroot (that took >20 min under
# qemu-user). update-initramfs is diverted to a no-op while packages install, and a tiny busybox
# initramfs (virtio + ext4 modules, an /init that mounts root= and switch_root's) is built on
# the host in a second.
#
# Caching: the result is ${PI_IMAGE_TEST_CACHE:-/var/cache/pi-image-test}/base-<hash>.img
# (+ base-<hash>.json), <hash> = sha256 of this file (which holds the whole recipe, package list
# included) and of PI_IMAGE_TEST_ROOT_MIB / PI_IMAGE_TEST_MIRROR. The package download/install stage is cached on its own as rootfs-<hash1>.tar
# (<hash1> covers only the mmdebstrap recipe), so changing the image assembly part is quick.
# Everything is built in a temp dir and renamed into place; an interrupted run leaves no result.
# A flock on the cache dir serialises concurrent runs. Needs: mmdebstrap, qemu-user-static,
# binfmt-support, fdisk, dosfstools, mtools, e2fsprogs, cpio, xz-utils, zstd, openssh-client.
#
# cloud-init NoCloud on /boot/firmware (cloud-init 25.1.4 from trixie, checked by booting):
# - `datasource: {NoCloud: {seedfrom: file:///boot/firmware/}}` alone is enough: the seed is found
#   with or without `ds=nocloud;i=<id>` on the kernel command line (status detail then reads
#   "seed=ds_config_seedfrom,file:///boot/firmware/" or "seed=cmdline,ds_config_seedfrom,…").
#   ds-identify enables cloud-init because datasource_list has a single entry (+ None).
# - cloud-init-local.service is not ordered after local-fs.target, so reading the seed races the
#   /boot/firmware mount; it won in every boot here, but a drop-in (RequiresMountsFor=
#   /boot/firmware) makes it deterministic.
# - network-config (netplan v2) is applied: cloud-init writes /etc/netplan/50-cloud-init.yaml,
#   netplan hands it to NetworkManager (renderer from /usr/lib/netplan/00-network-manager-all.yaml).
set -euo pipefail
# the whole script is one compound command: bash parses it completely before running it, so
# editing this file while a build runs cannot derail that build
{

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
CACHE_DIR="${PI_IMAGE_TEST_CACHE:-/var/cache/pi-image-test}"

# ---- recipe -------------------------------------------------------------------------------------
SUITE=trixie
ARCH=arm64
MIRROR="${PI_IMAGE_TEST_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=(
  systemd-sysv udev dbus kmod libpam-systemd
  cloud-init cloud-guest-utils
  openssh-server openssh-sftp-server
  systemd-timesyncd sudo locales tzdata console-setup keyboard-configuration
  network-manager netplan.io
  curl ca-certificates iproute2 iputils-ping netbase procps less
  dosfstools e2fsprogs fdisk xz-utils
  linux-image-arm64 initramfs-tools
)
LOCALES=("en_GB.UTF-8 UTF-8" "en_US.UTF-8 UTF-8")
DEFAULT_LANG=en_GB.UTF-8
BOOT_START_MIB=8
BOOT_SIZE_MIB=512
ROOT_SIZE_MIB="${PI_IMAGE_TEST_ROOT_MIB:-3072}"
# modules the host-built initramfs loads (plus their dependencies), if not built in
INITRD_MODULES=(virtio_mmio virtio_pci virtio_blk virtio_net virtio_rng crc32c_generic crc32c-arm64 ext4)
STAGE1_VERSION=1

# the recipe is this file plus the knobs the environment may turn
RECIPE_HASH="$( { cat "$SCRIPT_PATH"; echo "root=$ROOT_SIZE_MIB mirror=$MIRROR"; } | sha256sum | cut -c1-16)"
OUT_IMG="$CACHE_DIR/base-$RECIPE_HASH.img"
OUT_JSON="$CACHE_DIR/base-$RECIPE_HASH.json"

log() { printf '[build-base %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$OUT_IMG"
  exit 0
fi

if [[ -s "$OUT_IMG" && -s "$OUT_JSON" ]]; then
  echo "$OUT_IMG"
  exit 0
fi

[[ $EUID -eq 0 ]] || die "must run as root (mmdebstrap chroot, device nodes in the rootfs)"
for tool in mmdebstrap sfdisk mkfs.vfat mcopy mmd mkfs.ext4 cpio zstd sha256sum flock update-binfmts dpkg-deb xz; do
  command -v "$tool" >/dev/null || die "missing tool: $tool (install scripts/apt-packages.txt)"
done

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.build.lock"
flock 9
# someone else may have finished it while we waited for the lock
if [[ -s "$OUT_IMG" && -s "$OUT_JSON" ]]; then
  echo "$OUT_IMG"
  exit 0
fi

T0=$(date +%s)
WORK="$(mktemp -d "$CACHE_DIR/.work.XXXXXX")"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- binfmt for arm64 ---------------------------------------------------------------------------
setup_binfmt() {
  if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    # binfmt-support not registered (e.g. systemd-binfmt only): register from the packaged rule
    local rule=/usr/lib/binfmt.d/qemu-aarch64.conf
    [[ -r $rule ]] || die "qemu-user-static (qemu-aarch64) is not installed"
    cat "$rule" >/proc/sys/fs/binfmt_misc/register
  fi
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt qemu-aarch64 is not enabled"
}

# ---- stage 1: packages (mmdebstrap, cached as a tarball) ----------------------------------------
# Everything stage 1 depends on is in MMDEBSTRAP_ARGS, so its hash keys the rootfs tarball. Hooks
# are shell snippets mmdebstrap runs on the host with $1 = the new root; they reach this run's
# work dir through $PI_IMAGE_WORK (kept out of the arguments so the hash is stable).
LOCALE_GEN="$(printf '%s\n' "${LOCALES[@]}")"
# shellcheck disable=SC2016
MMDEBSTRAP_ARGS=(
  --mode=root --variant=apt --arch="$ARCH" --format=tar
  --include="$(IFS=,; echo "${PACKAGES[*]}")"
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='force-unsafe-io'
  # no initramfs generation under qemu-user (>20 min): update-initramfs is a no-op while
  # packages install, the real one is put back afterwards; stage 2 builds a small initrd natively
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.distrib --add /usr/sbin/update-initramfs'
  --essential-hook='printf "#!/bin/sh\necho \"update-initramfs: skipped (pi-image test base builds its initrd on the host)\"\n" >"$1/usr/sbin/update-initramfs"; chmod 0755 "$1/usr/sbin/update-initramfs"'
  # host keys made natively so openssh-server's postinst does not run ssh-keygen under emulation
  # (stage 2 deletes them again: every booted copy makes its own)
  --essential-hook='mkdir -p "$1/etc/ssh" && for t in rsa ecdsa ed25519; do ssh-keygen -q -t "$t" -N "" -C "" -f "$1/etc/ssh/ssh_host_${t}_key"; done'
  --customize-hook='rm -f "$1/usr/sbin/update-initramfs"; chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs'
  --customize-hook="printf '%s\\n' '$LOCALE_GEN' >\"\$1/etc/locale.gen\""
  --customize-hook='chroot "$1" locale-gen'
  --customize-hook="chroot \"\$1\" update-locale LANG=$DEFAULT_LANG"
  # the arm64 busybox for the host-built initrd (kept outside the image by stage 2)
  --customize-hook='mkdir -p "$1/opt/pi-image-initrd" && chroot "$1" sh -c "cd /opt/pi-image-initrd && apt-get download -q busybox-static 2>&1"'
  --customize-hook='cp "$1/var/log/dpkg.log" "$PI_IMAGE_WORK/dpkg.log" || true'
  "$SUITE" "$MIRROR"
)
STAGE1_HASH="$(printf '%s\n' "v$STAGE1_VERSION" "${MMDEBSTRAP_ARGS[@]}" | sha256sum | cut -c1-16)"
ROOTFS_TAR="$CACHE_DIR/rootfs-$STAGE1_HASH.tar"

stage1() {
  local t0 tmp_tar n
  t0=$(date +%s)
  setup_binfmt
  tmp_tar="$WORK/rootfs.tar"
  # build in RAM when there is plenty of it (24 GiB here; the tree is ~1.3 GiB)
  if [[ -z "${TMPDIR:-}" && -d /dev/shm ]] && (( $(df -Pk /dev/shm | awk 'NR==2 {print $4}') > 6 * 1024 * 1024 )); then
    export TMPDIR=/dev/shm
  fi
  log "stage 1: mmdebstrap $SUITE/$ARCH with ${#PACKAGES[@]} packages (slow part: dpkg under qemu-user; tmp ${TMPDIR:-/tmp})"
  n=$(( ${#MMDEBSTRAP_ARGS[@]} - 2 ))
  PI_IMAGE_WORK="$WORK" mmdebstrap "${MMDEBSTRAP_ARGS[@]:0:n}" "$SUITE" "$tmp_tar" "$MIRROR" >&2
  mv "$tmp_tar" "$ROOTFS_TAR"
  if [[ -s "$WORK/dpkg.log" ]]; then mv "$WORK/dpkg.log" "$CACHE_DIR/rootfs-$STAGE1_HASH.dpkg.log"; fi
  printf '{"seconds": %d, "builtAt": "%s"}\n' "$(( $(date +%s) - t0 ))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    >"$CACHE_DIR/rootfs-$STAGE1_HASH.json"
  log "stage 1 done in $(( $(date +%s) - t0 )) s -> $ROOTFS_TAR"
}

if [[ -s "$ROOTFS_TAR" ]]; then
  log "stage 1: reusing $ROOTFS_TAR"
else
  stage1
fi
T1=$(date +%s)

# ---- stage 2: configure the rootfs like Raspberry Pi OS (host only, no chroot) ------------------
ROOT="$WORK/root"
mkdir -p "$ROOT"
log "stage 2: unpacking rootfs"
tar -C "$ROOT" --numeric-owner -xpf "$ROOTFS_TAR"

# deterministic disk identifier (MBR signature), PARTUUIDs are <id>-01 / <id>-02
DISK_ID="${RECIPE_HASH:0:8}"
FAT_SERIAL="${RECIPE_HASH:8:8}"

KVER="$(basename "$(find "$ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort | tail -n1)")"
[[ -n "$KVER" && -e "$ROOT/boot/vmlinuz-$KVER" ]] || die "no kernel found in the rootfs"
log "kernel $KVER"

mkdir -p "$ROOT/boot/firmware"
# as Raspberry Pi OS, plus a longer device timeout than systemd's 90 s: under emulation on a loaded
# machine udev's coldplug alone took longer than that, and the boot fell into emergency mode
# waiting for the boot partition's by-partuuid link (a boot-time artefact of QEMU, not of the image)
cat >"$ROOT/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$DISK_ID-01  /boot/firmware  vfat    defaults,x-systemd.device-timeout=10min          0       2
PARTUUID=$DISK_ID-02  /               ext4    defaults,noatime,x-systemd.device-timeout=10min  0       1
EOF
echo raspberrypi >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1		raspberrypi
EOF

# cloud-init as Raspberry Pi OS configures it
cat >"$ROOT/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg" <<'EOF'
# as in Raspberry Pi OS: the NoCloud seed lives on the FAT boot partition
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    seedfrom: file:///boot/firmware/
ssh_deletekeys: false
ssh_genkeytypes: []
system_info:
  network:
    renderers: [ netplan, network-manager, networkd ]
EOF
cat >"$ROOT/etc/cloud/cloud.cfg.d/99_default.cfg" <<'EOF'
# like pi-gen's generated first-user config
system_info:
  default_user:
    name: pi
    groups: [adm, dialout, cdrom, audio, users, sudo, video, games, plugdev, input, gpio, spi, i2c, netdev, render, lpadmin]
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: true
ssh_pwauth: false
EOF
# cloud-init-local must see the seed: order it after the FAT partition is mounted
mkdir -p "$ROOT/etc/systemd/system/cloud-init-local.service.d"
cat >"$ROOT/etc/systemd/system/cloud-init-local.service.d/10-boot-firmware.conf" <<'EOF'
[Unit]
RequiresMountsFor=/boot/firmware
EOF

# netplan hands every device to NetworkManager, as Raspberry Pi OS does
mkdir -p "$ROOT/usr/lib/netplan"
cat >"$ROOT/usr/lib/netplan/00-network-manager-all.yaml" <<'EOF'
# Let NetworkManager manage all devices on this system
network:
  version: 2
  renderer: NetworkManager
EOF
chmod 0600 "$ROOT/usr/lib/netplan/00-network-manager-all.yaml"

# groups pi-gen creates (raspberrypi-sys-mods) so the default user's group list resolves
for g in gpio spi i2c lpadmin render netdev; do
  grep -q "^$g:" "$ROOT/etc/group" || groupadd --root "$ROOT" --system "$g"
done

# the first user as pi-gen makes it (stage1/01-sys-tweaks: adduser --disabled-password, then the
# groups of stage2): `pi`, UID 1000, password locked; cloud-init's user: creates the admin next to it
if ! grep -q '^pi:' "$ROOT/etc/passwd"; then
  useradd --root "$ROOT" --uid 1000 --user-group --create-home --shell /bin/bash \
    --groups adm,dialout,cdrom,audio,users,sudo,video,games,plugdev,input,gpio,spi,i2c,netdev,render pi
  passwd --root "$ROOT" --lock pi >/dev/null
fi

# userconf-pi as Raspberry Pi OS ships it (RPi-Distro/userconf-pi: debian/userconf-pi.userconfig.service,
# rename-user, cancel-rename), in the state pi-gen's export leaves it: export-image/01-user-rename
# runs `rename-user -f -s` (or, with cloud-init, `systemctl enable userconfig.service`), so
# userconfig.service is enabled, getty@tty1 disabled and sshd shows a rename banner.
# userconfig.service is a oneshot WantedBy=multi-user.target: the target waits for it (a target is
# ordered after the units it wants), and its program waits for an answer on tty8. The stand-in
# below does just that: unless the image is guarded (cancel-rename's effect, baked by pi-image
# build), multi-user.target never finishes, cloud-final never runs, and the node never provisions.
mkdir -p "$ROOT/usr/lib/userconf-pi" "$ROOT/usr/share/userconf-pi" "$ROOT/etc/ssh/sshd_config.d"
printf '%s\n' '[Unit]' 'Description=User configuration dialog' 'After=systemd-user-sessions.service' \
  'Before=lightdm.service' '[Service]' 'Type=oneshot' 'ExecStart=/usr/lib/userconf-pi/userconf-service' \
  'StandardInput=tty' 'TTYPath=/dev/tty8' 'TTYReset=yes' 'TTYVHangup=yes' 'TTYVTDisallocate=yes' \
  '[Install]' 'WantedBy=multi-user.target' >"$ROOT/usr/lib/systemd/system/userconfig.service"
printf '%s\n' '#!/bin/sh' \
  "# STAND-IN for userconf-pi's userconf-service (pi-image test base): the real one shows a dialog on" \
  '# tty8 asking for a new user name and waits for the answer. So does this one.' \
  'echo "Please enter a new user name (userconf-pi stand-in on tty8):"' \
  'read -r answer' \
  'echo "userconf-pi stand-in: renaming nothing"' >"$ROOT/usr/lib/userconf-pi/userconf-service"
printf '%s\n' '#!/bin/sh' \
  "# STAND-IN for userconf-pi's cancel-rename on a console system (pi-image test base)" \
  'rm -f /var/lib/userconf-pi/autologin /etc/ssh/sshd_config.d/rename_user.conf' \
  'systemctl --quiet reload ssh 2>/dev/null || true' \
  'systemctl --quiet disable userconfig' \
  'systemctl --quiet enable getty@tty1 --now --no-block' >"$ROOT/usr/bin/cancel-rename"
chmod 0755 "$ROOT/usr/lib/userconf-pi/userconf-service" "$ROOT/usr/bin/cancel-rename"
echo 'Banner /usr/share/userconf-pi/sshd_banner' >"$ROOT/etc/ssh/sshd_config.d/rename_user.conf"
echo 'Please run "sudo rename-user" to change your user name (userconf-pi stand-in banner)' >"$ROOT/usr/share/userconf-pi/sshd_banner"
[[ -n "$ROOT" && "$ROOT" != / ]] || die "internal: ROOT is not set"
systemctl --root="$ROOT" --quiet enable userconfig.service
systemctl --root="$ROOT" --quiet disable getty@tty1.service

# SSH: no host keys in the image, regenerated on first boot (Pi OS' regenerate_ssh_host_keys);
# sshd disabled until user-data enables it (Pi OS ships with SSH off)
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat >"$ROOT/etc/systemd/system/regenerate_ssh_host_keys.service" <<'EOF'
[Unit]
Description=Regenerate SSH host keys
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStart=/bin/sh -c "/bin/rm -f -v /etc/ssh/ssh_host_*_key*"
ExecStart=/usr/bin/ssh-keygen -A -v
ExecStartPost=/bin/systemctl disable regenerate_ssh_host_keys

[Install]
WantedBy=multi-user.target
EOF
systemctl --root="$ROOT" --quiet enable regenerate_ssh_host_keys.service
systemctl --root="$ROOT" --quiet disable ssh.service ssh.socket 2>/dev/null || true
systemctl --root="$ROOT" --quiet enable systemd-timesyncd.service NetworkManager.service

# fresh identity per boot of a copy: empty machine-id, no cloud-init state, no apt lists
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
rm -rf "$ROOT/var/lib/cloud" "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin
mkdir -p "$ROOT/var/lib/apt/lists/partial"
# /etc and /var are up to date with /usr: skip ldconfig/journal-catalog/hwdb "update" units at boot
touch "$ROOT/etc/.updated" "$ROOT/var/.updated"

# ---- stage 2b: tiny initramfs, built on the host ------------------------------------------------
BB_DEB="$(find "$ROOT/opt/pi-image-initrd" -maxdepth 1 -name 'busybox-static_*.deb' | head -n1)"
[[ -n "$BB_DEB" ]] || die "busybox-static .deb missing from stage 1"
mv "$BB_DEB" "$WORK/"
BB_DEB="$WORK/$(basename "$BB_DEB")"
rm -rf "$ROOT/opt/pi-image-initrd"

build_initrd() {
  local ird="$WORK/initrd" moddir="$ROOT/lib/modules/$KVER"
  mkdir -p "$ird"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,root,run,etc,lib/modules/"$KVER"}
  dpkg-deb -x "$BB_DEB" "$WORK/bb"
  local bb="" c
  for c in usr/bin/busybox bin/busybox; do
    if [[ -f "$WORK/bb/$c" && "$(head -c4 "$WORK/bb/$c" | od -An -c | tr -d ' ')" == '177ELF' ]]; then bb="$WORK/bb/$c"; break; fi
  done
  [[ -n "$bb" ]] || die "no busybox binary in $BB_DEB"
  install -m0755 "$bb" "$ird/bin/busybox"

  # resolve module dependencies with modules.dep
  declare -A seen=()
  local order=()
  resolve() {
    local name="$1" norm line path deps d
    norm="${name//-/_}"
    [[ -n "${seen[$norm]:-}" ]] && return 0
    seen[$norm]=1
    line="$(awk -v n="$norm" -F: '{p=$1; sub(/.*\//,"",p); sub(/\.ko(\.(xz|zst|gz))?$/,"",p); gsub(/-/,"_",p); if (p==n) {print; exit}}' "$moddir/modules.dep")"
    if [[ -z "$line" ]]; then
      return 0 # built in or does not exist on this kernel
    fi
    path="${line%%:*}"
    deps="${line#*:}"
    for d in $deps; do
      d="$(basename "$d")"; d="${d%%.ko*}"
      resolve "$d"
    done
    order+=("$path")
  }
  local m
  for m in "${INITRD_MODULES[@]}"; do resolve "$m"; done
  local p dest
  : >"$ird/etc/modules.order"
  for p in "${order[@]}"; do
    dest="$ird/lib/modules/$KVER/$(basename "${p%%.ko*}").ko"
    case "$p" in
      *.ko.xz) xz -dc "$moddir/$p" >"$dest" ;;
      *.ko.zst) zstd -qdc "$moddir/$p" >"$dest" ;;
      *.ko.gz) gzip -dc "$moddir/$p" >"$dest" ;;
      *) cp "$moddir/$p" "$dest" ;;
    esac
    basename "$dest" >>"$ird/etc/modules.order"
  done
  log "initrd modules: $(tr '\n' ' ' <"$ird/etc/modules.order")"

  cat >"$ird/init" <<EOF
#!/bin/busybox sh
# pi-image test initramfs: load virtio/ext4 modules, mount root=, switch_root to its init.
KVER=$KVER
EOF
  cat >>"$ird/init" <<'EOF'
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "initramfs: pi-image test base (busybox)"
while read -r m; do insmod "/lib/modules/$KVER/$m" 2>/dev/null; done </etc/modules.order

root="" fstype="" flags="" mode=ro init=/sbin/init
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${arg#root=}" ;;
    rootfstype=*) fstype="${arg#rootfstype=}" ;;
    rootflags=*) flags="${arg#rootflags=}" ;;
    init=*) init="${arg#init=}" ;;
    rw) mode=rw ;;
    ro) mode=ro ;;
  esac
done

# resolve PARTUUID=<mbr-id>-<nn> / LABEL= / UUID= / a device path
find_root() {
  case "$root" in
    PARTUUID=*)
      want="${root#PARTUUID=}"; id="${want%-*}"; nr="${want##*-}"; nr=$((10#$nr))
      for d in /sys/block/*; do
        dev="/dev/${d##*/}"; [ -b "$dev" ] || continue
        sig="$(od -An -tx4 -j440 -N4 "$dev" 2>/dev/null | tr -d ' ')"
        if [ "$sig" = "$id" ]; then
          for p in "$dev$nr" "${dev}p$nr"; do [ -b "$p" ] && { echo "$p"; return 0; }; done
        fi
      done
      return 1 ;;
    LABEL=*|UUID=*) findfs "$root" 2>/dev/null ;;
    /dev/*) [ -b "$root" ] && echo "$root" ;;
    *) return 1 ;;
  esac
}
dev=""
i=0
while [ $i -lt 300 ]; do
  dev="$(find_root)" && [ -n "$dev" ] && break
  sleep 0.1; i=$((i + 1))
done
if [ -z "$dev" ]; then
  echo "initramfs: root device '$root' not found; dropping to a shell"
  ls /dev; exec sh
fi
opts="$mode"; [ -n "$flags" ] && opts="$opts,$flags"
if ! mount ${fstype:+-t "$fstype"} -o "$opts" "$dev" /root; then
  echo "initramfs: cannot mount $dev on /root; dropping to a shell"; exec sh
fi
echo "initramfs: root $dev mounted ($opts), switching to $init"
umount /proc /sys 2>/dev/null
mount --move /dev /root/dev 2>/dev/null || umount /dev
exec switch_root /root "$init"
EOF
  chmod 0755 "$ird/init"
  (cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible) | gzip -n -9 >"$WORK/initrd.img"
  log "initrd: $(du -h "$WORK/initrd.img" | cut -f1)"
}
build_initrd

# ---- stage 3: assemble the disk image -----------------------------------------------------------
IMG="$WORK/base.img"
BOOT_START=$(( BOOT_START_MIB * 1024 * 1024 ))
ROOT_START=$(( (BOOT_START_MIB + BOOT_SIZE_MIB) * 1024 * 1024 ))
TOTAL_MIB=$(( BOOT_START_MIB + BOOT_SIZE_MIB + ROOT_SIZE_MIB ))
truncate -s "${TOTAL_MIB}M" "$IMG"
sfdisk --quiet "$IMG" <<EOF
label: dos
label-id: 0x$DISK_ID
unit: sectors

start=$(( BOOT_START / 512 )), size=$(( BOOT_SIZE_MIB * 2048 )), type=c
start=$(( ROOT_START / 512 )), size=$(( ROOT_SIZE_MIB * 2048 )), type=83
EOF

log "stage 3: FAT32 bootfs"
# (mkfs.fat warns about the lower-case label, which is what Raspberry Pi OS uses, and that the
# file is larger than the filesystem, which is the point of --offset)
mkfs.vfat -F 32 -n bootfs -i "$FAT_SERIAL" --offset=$(( BOOT_START / 512 )) "$IMG" $(( BOOT_SIZE_MIB * 1024 )) 2>&1 >/dev/null \
  | { grep -v -e 'lowercase labels' -e 'block count mismatch' >&2 || true; }
BOOTDIR="$WORK/bootfs"
mkdir -p "$BOOTDIR"
cp "$ROOT/boot/vmlinuz-$KVER" "$BOOTDIR/vmlinuz"
cp "$WORK/initrd.img" "$BOOTDIR/initrd.img"
printf '%s\n' "console=serial0,115200 console=tty1 root=PARTUUID=$DISK_ID-02 rootfstype=ext4 fsck.repair=yes rootwait resize" >"$BOOTDIR/cmdline.txt"
cat >"$BOOTDIR/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
# (pi-image test base: Debian's arm64 kernel, booted by QEMU -M virt, not by Pi firmware)

dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[all]
kernel=vmlinuz
initramfs initrd.img followkernel
EOF
cat >"$BOOTDIR/meta-data" <<'EOF'
# This is the meta-data configuration file for cloud-init. Please refer to the
# cloud-init documentation for more information:
#
# https://cloudinit.readthedocs.io/

# Set the datasource mode to "local". This ensures that user-data is acted upon
# prior to bringing up the network (because everything about the datasource is
# assumed to be local). If you wish to use an HTTP datasource instead, you can
# change this to "net" or override it on the kernel cmdline (see README).

#dsmode: local

# Specifies the "unique" identifier of the instance. Typically in cloud-init
# this is generated by the owning cloud and is actually unique (to some
# degree). Here our data-source is local, so this is just a fixed string.
# Warning: changing this will cause cloud-init to assume it is running on a
# "new" instance, and to go through first time setup again (the value is
# compared to a cached copy).

#instance-id: rpi-os-image
EOF
cat >"$BOOTDIR/user-data" <<'EOF'
#cloud-config

# This is the user-data configuration file for cloud-init. By default this sets
# up an initial user called "ubuntu" with password "ubuntu", which must be
# changed at first login. However, many additional actions can be initiated on
# first boot from this file. The cloud-init documentation has more details:
#
# https://cloudinit.readthedocs.io/
#
# Please note that the YAML format employed by this file is sensitive to
# differences in whitespace; if you are editing this file in an editor (like
# Nano, Vim, or Emacs) take care to use spaces rather than tabs to indent.

#hostname: raspberrypi
#manage_etc_hosts: true
#users:
#- name: pi
#  groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo
#  shell: /bin/bash
#  lock_passwd: true
#  ssh_authorized_keys:
#    - ssh-ed25519 AAAA... user@host
EOF
cat >"$BOOTDIR/network-config" <<'EOF'
# This file contains a netplan-compatible configuration which cloud-init will
# apply on first-boot (note: it will *not* update the config after the first
# boot). Please refer to the cloud-init documentation and the netplan reference
# for full details:
#
# https://netplan.io/reference
# https://cloudinit.readthedocs.io/en/latest/topics/network-config.html
#
#network:
#  version: 2
#  ethernets:
#    eth0:
#      dhcp4: true
#      optional: true
EOF
chmod 0755 "$BOOTDIR"/*
mcopy -o -i "$IMG@@$BOOT_START" "$BOOTDIR"/* ::/

log "stage 3: ext4 rootfs (mkfs.ext4 -d)"
mkfs.ext4 -q -F -L rootfs -E "offset=$ROOT_START" -d "$ROOT" "$IMG" "${ROOT_SIZE_MIB}M"
e2fsck -fn "$IMG?offset=$ROOT_START" >/dev/null 2>&1 || die "e2fsck found problems in the new rootfs"

T2=$(date +%s)
ROOT_USED_KIB="$(du -sk "$ROOT" | cut -f1)"
IMG_ALLOC_KIB="$(du -k "$IMG" | cut -f1)"
STAGE1_BUILD_S="$(sed -n 's/.*"seconds": *\([0-9]*\).*/\1/p' "$CACHE_DIR/rootfs-$STAGE1_HASH.json" 2>/dev/null || true)"
cat >"$WORK/base.json" <<EOF
{
  "recipe": "$RECIPE_HASH",
  "stage1": "$STAGE1_HASH",
  "suite": "$SUITE",
  "arch": "$ARCH",
  "kernel": "$KVER",
  "diskId": "$DISK_ID",
  "bootPartition": {"startBytes": $BOOT_START, "sizeMiB": $BOOT_SIZE_MIB, "label": "bootfs"},
  "rootPartition": {"startBytes": $ROOT_START, "sizeMiB": $ROOT_SIZE_MIB, "label": "rootfs"},
  "imageSizeBytes": $(( TOTAL_MIB * 1024 * 1024 )),
  "imageAllocatedKiB": $IMG_ALLOC_KIB,
  "rootfsUsedKiB": $ROOT_USED_KIB,
  "stage1Seconds": $(( T1 - T0 )),
  "stage1BuildSeconds": ${STAGE1_BUILD_S:-null},
  "assembleSeconds": $(( T2 - T1 )),
  "totalSeconds": $(( T2 - T0 )),
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
mv "$IMG" "$OUT_IMG"
mv "$WORK/base.json" "$OUT_JSON"
# keep the cache small: the two newest images and stage-1 tarballs stay (e.g. for two branches)
prune() {
  local pattern="$1" f
  find "$CACHE_DIR" -maxdepth 1 -name "$pattern" -printf '%T@ %p\n' | sort -rn | tail -n +3 | cut -d' ' -f2- |
    while read -r f; do
      log "pruning old cache entry $(basename "$f")"
      rm -f "$f" "${f%.*}.json" "${f%.*}.dpkg.log"
    done
}
prune 'base-*.img'
prune 'rootfs-*.tar'
log "done in $(( T2 - T0 )) s: $OUT_IMG ($(( IMG_ALLOC_KIB / 1024 )) MiB allocated of ${TOTAL_MIB} MiB)"
echo "$OUT_IMG"
exit 0
}
