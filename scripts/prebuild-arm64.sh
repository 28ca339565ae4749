#!/usr/bin/env bash
# The linux-arm64 prebuilt binary (CPU only), cross-compiled on x86-64 with Debian's g++-aarch64-linux-gnu into
# prebuilds/linux-arm64/, named as prebuildify names the x64 one so that node-gyp-build finds it. Node-API headers
# come from cmake-js (node-api-headers): no Node of the target is needed to build.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile --out build-arm64 --CDCMAKE_TOOLCHAIN_FILE="$PWD/scripts/aarch64-linux-gnu.cmake" \
  --CDDNFT_CUDA=OFF --CDDNFT_BUILD_TESTS=OFF
mkdir -p prebuilds/linux-arm64
aarch64-linux-gnu-strip --strip-unneeded -o prebuilds/linux-arm64/node.napi.glibc.node \
  build-arm64/Release/diffusion_nft.node
