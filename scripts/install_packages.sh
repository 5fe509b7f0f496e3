#!/usr/bin/env bash
# scripts/install_packages.sh PACKAGE...: installs the Debian packages that are missing
# (apt-get, as root, or through sudo), quietly; does nothing when all are present. Shared
# by test.sh and fuzz.sh so that each command of the quick start installs what it needs.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "== installing: ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
