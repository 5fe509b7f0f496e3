#!/usr/bin/env bash
# Checks the installed package the way a user consumes it:
#   1. configure and build cmr (library only) in a temporary build directory;
#   2. cmake --install it into a temporary prefix;
#   3. configure, build and run tests/package (find_package(cmr CONFIG REQUIRED),
#      target_link_libraries(app PRIVATE cmr::cmr)) against that prefix only.
# Any failure stops the script with a message and a non-zero status. The temporary
# directory is removed afterwards unless CMR_KEEP_PACKAGE_CHECK=1.
# Usage: scripts/check_package.sh [extra cmake arguments for the cmr build, e.g. -DBUILD_SHARED_LIBS=ON]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/cmr-package-check.XXXXXX")"
cleanup() {
  if [[ "${CMR_KEEP_PACKAGE_CHECK:-0}" == 1 ]]; then
    echo "check_package: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
fail() {
  echo "check_package: FAILED: $*" >&2
  exit 1
}
jobs="$(nproc 2>/dev/null || echo 2)"
build_type="${CMAKE_BUILD_TYPE:-Release}"

echo "== check_package: building cmr in $work/build"
cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMR_BUILD_TESTS=OFF -DCMR_BUILD_BENCHMARKS=OFF -DCMR_BUILD_EXAMPLES=OFF "$@" \
  || fail "configuring cmr"
cmake --build "$work/build" -j"$jobs" || fail "building cmr"

echo "== check_package: installing into $work/prefix"
cmake --install "$work/build" --prefix "$work/prefix" || fail "cmake --install"
config="$(find "$work/prefix" -name cmrConfig.cmake -print -quit)"
[[ -n "$config" ]] || fail "no cmrConfig.cmake under the install prefix"
[[ -f "$work/prefix/include/cmr/cmr.hpp" ]] || fail "cmr/cmr.hpp was not installed"
if [[ -d "$work/prefix/include/cmr/detail" ]]; then :; else fail "cmr/detail was not installed"; fi

echo "== check_package: building the consumer against the prefix"
# Only the temporary prefix is searched: the build tree and the system are not.
cmake -S "$root/tests/package" -B "$work/consumer" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  || fail "configuring the consumer (find_package(cmr CONFIG))"
grep -q "cmr_DIR:PATH=$work/prefix" "$work/consumer/CMakeCache.txt" \
  || fail "the consumer found cmr outside the install prefix: $(grep cmr_DIR "$work/consumer/CMakeCache.txt")"
cmake --build "$work/consumer" -j"$jobs" || fail "building the consumer"

echo "== check_package: running the consumer"
"$work/consumer/app" || fail "the consumer exited with status $?"
echo "== check_package: OK"
