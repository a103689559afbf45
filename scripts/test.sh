#!/usr/bin/env bash
# The test command: builds (Release, into build/) if needed, then runs the CPU test suite
# (everything except the `gpu` label) with CTest.
#
#   scripts/test.sh            build + fast suite
#   scripts/test.sh -R regex   extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "$jobs"
cd build
ctest -LE gpu -j "$jobs" --output-on-failure --timeout 600 "$@"
