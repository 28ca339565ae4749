#!/usr/bin/env bash
# The linux-arm64 prebuilt binary (CPU only), cross-compiled on x86-64 with Debian's g++-aarch64-linux-gnu into
# prebuilds/linux-arm64/, named as prebuildify names the x64 one (<package>.glibc.node) for node-gyp-build to find.
# The Node-API headers come with cmake-js (node-api-headers): building needs no Node of the target.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile --out build-arm64 --CDCMAKE_TOOLCHAIN_FILE="$PWD/scripts/aarch64-linux-gnu.cmake" \
  --CDDNFT_CUDA=OFF --CDDNFT_BUILD_TESTS=OFF
mkdir -p prebuilds/linux-arm64
aarch64-linux-gnu-strip --strip-unneeded -o prebuilds/linux-arm64/diffusion-nft.glibc.node \
  build-arm64/Release/diffusion_nft.node
