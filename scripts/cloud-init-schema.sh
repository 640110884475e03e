#!/bin/bash
# Validate cloud-init user-data (or network-config) with cloud-init's OWN schema checker, using the
# cloud-init release Raspberry Pi OS Trixie runs (25.x from Debian trixie) rather than the host's.
#
#   scripts/cloud-init-schema.sh [--type cloud-config|network-config] FILE...
#   scripts/cloud-init-schema.sh --version
#   PI_IMAGE_CLOUD_INIT_SUITE=sid scripts/cloud-init-schema.sh --print-dir   # another suite's cloud-init, unpacked
#
# On first use it downloads trixie's cloud-init .deb with apt-get (a private sources list, lists and
# cache, so the host's apt state is untouched) and unpacks it with dpkg-deb under
# ${PI_IMAGE_TOOLS:-/var/cache/pi-image-tools}/cloud-init-<suite> (its control fields in .control);
# later runs reuse it. --print-dir sets it up and prints that directory.
# Its Python dependencies come from the host (bookworm): python3-yaml python3-jsonschema
# python3-jinja2 python3-configobj python3-requests python3-jsonpatch python3-oauthlib
# python3-netifaces (all in scripts/apt-packages.txt).
# Exit status: 0 every file valid, 1 a file is invalid, 3 the checker could not be set up.
set -euo pipefail

readonly TOOLS="${PI_IMAGE_TOOLS:-/var/cache/pi-image-tools}"
readonly MIRROR="${PI_IMAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SUITE="${PI_IMAGE_CLOUD_INIT_SUITE:-trixie}"
readonly DEST="$TOOLS/cloud-init-$SUITE"
# Debian's interpreter, where the apt-installed dependencies live (not a pyenv/venv python3 on PATH)
readonly PYTHON="${PI_IMAGE_PYTHON:-/usr/bin/python3}"

die_env() {
  echo "cloud-init-schema: $1" >&2
  echo "hint: $2" >&2
  exit 3
}

setup() {
  [ -f "$DEST/.complete" ] && return 0
  command -v apt-get >/dev/null || die_env "apt-get not found" "run on Debian/Ubuntu, or unpack a cloud-init 25.x .deb into $DEST yourself"
  command -v dpkg-deb >/dev/null || die_env "dpkg-deb not found" "apt-get install dpkg"
  mkdir -p "$TOOLS" || die_env "cannot create $TOOLS" "set PI_IMAGE_TOOLS to a writable directory"
  local tmp
  tmp="$(mktemp -d "$TOOLS/.cloud-init-setup.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/deb"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die_env "$keyring missing" "apt-get install debian-archive-keyring"
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$MIRROR" "$SUITE" >"$tmp/sources.list"
  local apt_opts=(
    -o "Dir::Etc::sourcelist=$tmp/sources.list"
    -o "Dir::Etc::sourceparts=$tmp/parts"
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache=$tmp/cache"
    -o "APT::Get::List-Cleanup=0"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  echo "cloud-init-schema: fetching cloud-init from Debian $SUITE into $DEST (once)" >&2
  apt-get -qq "${apt_opts[@]}" update >&2 ||
    die_env "apt-get update for $SUITE failed" "check that $MIRROR is reachable"
  (cd "$tmp/deb" && apt-get -qq "${apt_opts[@]}" download cloud-init >&2) ||
    die_env "apt-get download cloud-init ($SUITE) failed" "check that $MIRROR is reachable"
  rm -rf "$DEST.new"
  local deb
  for deb in "$tmp"/deb/cloud-init_*.deb; do
    dpkg-deb -x "$deb" "$DEST.new"
    basename "$deb" >"$DEST.new/.deb-name"
    dpkg-deb -f "$deb" >"$DEST.new/.control"
  done
  [ -d "$DEST.new/usr/lib/python3/dist-packages/cloudinit" ] ||
    die_env "the downloaded cloud-init package has no Python module" "remove $DEST* and retry"
  touch "$DEST.new/.complete"
  rm -rf "$DEST"
  mv "$DEST.new" "$DEST"
}

run_cloud_init() {
  PYTHONPATH="$DEST/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m cloudinit.cmd.main "$@"
}

main() {
  local type=cloud-config
  if [ "${1:-}" = "--print-dir" ]; then
    setup
    echo "$DEST"
    return 0
  fi
  if [ "${1:-}" = "--version" ]; then
    setup
    run_cloud_init --version
    return 0
  fi
  if [ "${1:-}" = "--type" ]; then
    type="${2:?--type needs cloud-config or network-config}"
    shift 2
  fi
  [ "$#" -gt 0 ] || { echo "usage: $0 [--type cloud-config|network-config] FILE..." >&2; exit 2; }
  [ -x "$PYTHON" ] || die_env "$PYTHON not found" "apt-get install python3 (or set PI_IMAGE_PYTHON)"
  setup
  "$PYTHON" -c 'import yaml, jsonschema, jinja2, configobj' 2>/dev/null ||
    die_env "cloud-init's Python dependencies are missing" \
      "apt-get install python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-requests python3-jsonpatch python3-oauthlib python3-netifaces"
  local rc=0 f
  for f in "$@"; do
    if ! run_cloud_init schema --schema-type "$type" --config-file "$f"; then
      rc=1
    fi
  done
  return "$rc"
}

main "$@"
