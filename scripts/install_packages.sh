#!/usr/bin/env bash
# scripts/install_packages.sh: the one package installer of the scripts.
#
# Usage: scripts/install_packages.sh [--help] PACKAGE...
#
# Installs the Debian packages of the list that are missing, with apt-get; does nothing
# (and needs no privilege) when all are present. Every script that needs packages calls
# this unless it is given --no-install. It never asks for a password: installing needs
# root, and a non-root caller gets an error naming the missing packages, so that CI never
# hangs at a sudo prompt. Exit status: 0 all present, 1 they could not be installed,
# 2 usage.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") echo "install_packages.sh: no package given (--help)" >&2; exit 2 ;;
  -*) echo "install_packages.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
esac

hint="install them yourself and pass --no-install to the script that called this"
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install_packages.sh: no dpkg-query/apt-get: this is not a Debian-like system, so" \
       "$* cannot be checked or installed here; $hint" >&2
  exit 1
fi
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "install_packages.sh: missing packages: ${missing[*]}; installing them needs root" \
       "(run as root, or sudo scripts/install_packages.sh ${missing[*]}), or $hint" >&2
  exit 1
fi
echo "== installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "install_packages.sh: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq "${missing[@]}" ||
  { echo "install_packages.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
