#!/usr/bin/env bash
# scripts/check_package.sh: checks the installed package the way users consume it.
#
# Usage: scripts/check_package.sh [--help] [CMAKE_ARGS...]
#   CMAKE_ARGS: extra cmake arguments for the cmr build, e.g. -DBUILD_SHARED_LIBS=ON or
#   -DCMR_ALLOCATOR=jemalloc
#
#   1. configure and build cmr (library only) in a temporary build directory;
#   2. cmake --install it into a temporary prefix;
#   3. configure, build and run tests/package (find_package(cmr CONFIG REQUIRED),
#      target_link_libraries(app PRIVATE cmr::cmr cmr::ds)) against that prefix only;
#   4. build tests/package/main.cpp with nothing but
#      g++ -std=c++20 main.cpp $(pkg-config --cflags --libs cmr), the installed cmr.pc
#      the only one pkg-config sees, and run it.
# Needs cmake, g++ and pkg-config, and installs nothing (scripts/test.sh installs them); a
# missing one fails the check. Any failure stops the script with a message and a non-zero
# status. The temporary directory is removed afterwards unless CMR_KEEP_PACKAGE_CHECK=1.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
fail() {
  echo "check_package: FAILED: $*" >&2
  exit 1
}
for tool in cmake g++ pkg-config; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian package: $tool)"
done
work="$(mktemp -d "${TMPDIR:-/tmp}/cmr-package-check.XXXXXX")"
cleanup() {
  if [[ "${CMR_KEEP_PACKAGE_CHECK:-0}" == 1 ]]; then
    echo "check_package: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
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
[[ -d "$work/prefix/include/cmr/detail" ]] || fail "cmr/detail was not installed"
pc="$(find "$work/prefix" -path '*/pkgconfig/cmr.pc' -print -quit)"
[[ -n "$pc" ]] || fail "no pkgconfig/cmr.pc under the install prefix"
# <libdir>/cmake/cmr/cmrConfig.cmake beside <libdir>/pkgconfig/cmr.pc
[[ "${config%/cmake/cmr/cmrConfig.cmake}" == "${pc%/pkgconfig/cmr.pc}" ]] ||
  fail "cmr.pc ($pc) is not in the libdir of the CMake package ($config)"

echo "== check_package: building the CMake consumer against the prefix"
# Only the temporary prefix is searched: the build tree and the system are not.
cmake -S "$root/tests/package" -B "$work/consumer" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  || fail "configuring the consumer (find_package(cmr CONFIG))"
grep -q "cmr_DIR:PATH=$work/prefix" "$work/consumer/CMakeCache.txt" \
  || fail "the consumer found cmr outside the install prefix: $(grep cmr_DIR "$work/consumer/CMakeCache.txt")"
cmake --build "$work/consumer" -j"$jobs" || fail "building the consumer"

echo "== check_package: running the CMake consumer"
"$work/consumer/app" || fail "the CMake consumer exited with status $?"

echo "== check_package: building the pkg-config consumer ($pc)"
# PKG_CONFIG_LIBDIR replaces the default search path: only this prefix's cmr.pc is seen.
PKG_CONFIG_LIBDIR="$(dirname "$pc")"
export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH=""
pc_prefix="$(pkg-config --variable=prefix cmr)" || fail "pkg-config does not read $pc"
[[ "$pc_prefix" == "$work/prefix" ]] || fail "cmr.pc says prefix=$pc_prefix, installed under $work/prefix"
for var in libdir includedir; do
  dir="$(pkg-config --variable="$var" cmr)"
  [[ -d "$dir" ]] || fail "cmr.pc's $var ($dir) does not exist"
done
[[ -f "$(pkg-config --variable=includedir cmr)/cmr/cmr.hpp" ]] || fail "cmr/cmr.hpp is not under cmr.pc's includedir"
# shellcheck disable=SC2046  # pkg-config prints a list of flags
g++ -std=c++20 -Wall -Wextra -Werror "$root/tests/package/main.cpp" -o "$work/pc-app" \
  $(pkg-config --cflags --libs cmr) || fail "g++ \$(pkg-config --cflags --libs cmr): $(pkg-config --cflags --libs cmr)"

# The allocator CMR_ALLOCATOR chose is part of both links: the two consumers must load the
# same one (with a static libcmr nothing else would notice a missing -ljemalloc).
allocators_of() { ldd "$1" | grep -oE 'lib(jemalloc|mimalloc)[^ ]*' | sort -u | paste -sd' ' -; }
# A shared libcmr in a prefix outside the loader's path is found as its users find it.
LD_LIBRARY_PATH="$(pkg-config --variable=libdir cmr)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
[[ "$(allocators_of "$work/pc-app")" == "$(allocators_of "$work/consumer/app")" ]] ||
  fail "the pkg-config consumer loads '$(allocators_of "$work/pc-app")', the CMake one" \
       "'$(allocators_of "$work/consumer/app")' (Libs: $(pkg-config --libs cmr))"

echo "== check_package: running the pkg-config consumer"
"$work/pc-app" || fail "the pkg-config consumer exited with status $?"
echo "== check_package: OK"
