#!/usr/bin/env bash
# Installs the Debian packages telegram-assistant needs, when they are missing. Safe to run again.
#
#   deploy/install-deps.sh            to build it: libcurl4-openssl-dev, libsqlite3-dev (and the
#                                     runtime packages, which they pull in)
#   deploy/install-deps.sh --runtime  to run a binary built elsewhere: libcurl4, libsqlite3-0, ca-certificates
set -euo pipefail
case "${1:-}" in
  "") packages=(libcurl4-openssl-dev libsqlite3-dev ca-certificates) ;;
  --runtime) packages=(libcurl4 libsqlite3-0 ca-certificates) ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
