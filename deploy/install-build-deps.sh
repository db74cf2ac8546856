#!/usr/bin/env bash
# Installs the two system packages the build needs (libcurl4-openssl-dev, libsqlite3-dev) when they
# are missing. Safe to run again: it does nothing when both are present.
set -euo pipefail
missing=()
for package in libcurl4-openssl-dev libsqlite3-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
