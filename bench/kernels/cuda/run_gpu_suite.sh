#!/usr/bin/env bash
# The MoE kernel GPU suite (issue 9): the CPU index-math tests, the gpu-labelled kernel tests
# against the CPU reference, and the kernel benchmarks, with their results written to one
# directory (at most 7 files; commit the benchmark JSON/table under bench/results/).
#
# Usage:
#   run_gpu_suite.sh [--quick] RESULTS_DIR
#       On a machine with a GPU and the project's build dependencies: configures and builds the
#       suite's targets in $BUILD_DIR (default <repo>/build-cuda) if needed, then runs it.
#   run_gpu_suite.sh --bundle BUNDLE_DIR
#       On a machine without a GPU (no run): builds the suite and copies its binaries plus the
#       non-CUDA shared libraries they need (abseil) into BUNDLE_DIR, for a GPU machine that has
#       the CUDA 13 toolkit but not the project's C++ dependencies.
#   run_gpu_suite.sh --prebuilt BUNDLE_DIR [--quick] RESULTS_DIR
#       Runs a bundle made with --bundle.
#   --only tests | --only bench runs one half (e.g. to stay under a per-command time limit);
#   --quick runs fewer benchmark shapes.
#
# Exit status: 0 when every test passed (benchmarks do not affect it).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
build_dir="${BUILD_DIR:-$repo/build-cuda}"
targets=(cuda_index_math_test cuda_kernels_test moe_kernels_bench cuda_backend_test)

mode=run
bundle=""
quick=()
only=all
results=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) mode=bundle; bundle="${2:?--bundle needs a directory}"; shift 2 ;;
    --prebuilt) mode=prebuilt; bundle="${2:?--prebuilt needs a directory}"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --only) only="${2:?--only needs tests or bench}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | grep '^#'; exit 0 ;;
    *) results="$1"; shift ;;
  esac
done

build() {
  if [[ ! -f "$build_dir/build.ninja" && ! -f "$build_dir/Makefile" ]]; then
    local generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    cmake -S "$repo" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DMOESERVE_CUDA=ON -DMOESERVE_BUILD_BENCH=ON -DMOESERVE_BUILD_TESTS=ON || return 1
  fi
  cmake --build "$build_dir" --target "${targets[@]}" -j "$(nproc)" || return 1
}

if [[ "$mode" == bundle ]]; then
  build || { echo "build failed" >&2; exit 1; }
  mkdir -p "$bundle/bin" "$bundle/lib"
  cp "$build_dir/tests/cuda_index_math_test" "$build_dir/tests/cuda_kernels_test" \
     "$build_dir/bin/moe_kernels_bench" "$bundle/bin/"
  # Shared libraries other than the C runtime and CUDA's (the GPU machine has its own).
  for bin in "$bundle"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}'
  done | sort -u | grep -vE '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|/libcu|/libnv' |
    while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  cp "$0" "$bundle/"
  du -sh "$bundle"
  echo "bundle ready: carry '$bundle' and run: bench/kernels/cuda/run_gpu_suite.sh --prebuilt $bundle RESULTS_DIR"
  exit 0
fi

[[ -n "$results" ]] || { echo "usage: $0 [--bundle DIR | --prebuilt DIR] [--quick] RESULTS_DIR" >&2; exit 2; }
mkdir -p "$results"
results="$(cd "$results" && pwd)"

if [[ "$mode" == prebuilt ]]; then
  bin_dir="$(cd "$bundle/bin" && pwd)"
  index_test="$bin_dir/cuda_index_math_test"
  gpu_test="$bin_dir/cuda_kernels_test"
  bench="$bin_dir/moe_kernels_bench"
  export LD_LIBRARY_PATH="$(cd "$bundle/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  build || { echo "build failed" >&2; exit 1; }
  index_test="$build_dir/tests/cuda_index_math_test"
  gpu_test="$build_dir/tests/cuda_kernels_test"
  bench="$build_dir/bin/moe_kernels_bench"
fi
for cuda_lib in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [[ -d "$cuda_lib" ]] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cuda_lib"
done

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  echo "mode: $mode"
  (cd "$repo" && git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null | head -20) || true
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  nvcc --version 2>/dev/null | tail -2 || true
} >"$results/env.txt"

status=0
if [[ "$only" != bench ]]; then
echo "== index math tests (CPU)"
"$index_test" --gtest_output="xml:$results/index_math_tests.xml" >"$results/index_math_tests.log" 2>&1 || status=1
tail -3 "$results/index_math_tests.log"

echo "== GPU kernel tests (label gpu)"
if [[ "$mode" == run ]] && command -v ctest >/dev/null; then
  # Every gpu-labelled test of the build, this suite's and any other folder's.
  ctest --test-dir "$build_dir" -L gpu --output-on-failure --output-junit "$results/gpu_tests.xml" \
    >"$results/gpu_tests.log" 2>&1 || status=1
else
  "$gpu_test" --gtest_output="xml:$results/gpu_tests.xml" >"$results/gpu_tests.log" 2>&1 || status=1
fi
tail -5 "$results/gpu_tests.log"
if grep -q "SKIPPED\|Skipped" "$results/gpu_tests.log" && ! grep -q "Failed\|FAILED" "$results/gpu_tests.log"; then
  echo "note: GPU tests reported skips (no device?)"
fi

fi

if [[ "$only" != tests ]]; then
echo "== benchmarks"
"$bench" "${quick[@]}" --json "$results/moe_kernels_bench.json" 2>&1 | tee "$results/moe_kernels_bench.txt"
[[ ${PIPESTATUS[0]} -eq 0 ]] || echo "benchmark failed (tests status unaffected)"
fi

echo "results in $results; tests $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
exit $status
