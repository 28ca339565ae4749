#!/usr/bin/env bash
# The reliability checks of CI (docs/reliability.md), after the main build (build/, dist/) of scripts/dev.sh test:
# the checkpoint, native-call and surfaces fuzzers, the C++ suites under AddressSanitizer + UndefinedBehaviorSanitizer, and the
# fuzzers and a vitest subset against an ASan build of the addon (node with libasan preloaded). The crash-consistency
# test is a vitest file (test/reliability-crash.test.ts) of the main run. Last line: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
check() {
  local name=$1 started=$SECONDS
  shift
  if "$@" >ci-reliability.log 2>&1; then
    passed=$((passed + 1))
    echo "ok $name ($((SECONDS - started)) s): $(tail -n 1 ci-reliability.log | cut -c 1-300)"
  else
    failed=$((failed + 1))
    echo "FAILED $name ($((SECONDS - started)) s)"
    tail -n 40 ci-reliability.log
  fi
}

check "checkpoint fuzzer, 5000 inputs" node test/fuzz/checkpoint-fuzz.mjs --inputs 5000
check "native-call fuzzer, 5000 calls" node test/fuzz/native-fuzz.mjs --inputs 5000
for surface in adapter peft state-dict image-folder; do
  check "surfaces fuzzer ($surface), 2000 inputs" node test/fuzz/surfaces-fuzz.mjs --surface "$surface" --inputs 2000
done

# One sanitizer build holds both the C++ suites and the addon (CPU backend).
check "ASan + UBSan build (gcc)" npx cmake-js compile --out build-asan --CDDNFT_CUDA=OFF --CDDNFT_BUILD_TESTS=ON \
  --CDCMAKE_BUILD_TYPE=RelWithDebInfo \
  "--CDCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
for suite in test_core test_gemm test_dit test_cuda_launch; do
  check "ASan + UBSan $suite" env ASAN_OPTIONS=detect_leaks=1 "build-asan/tests/$suite"
done

# Node itself is not instrumented: preload the sanitizer runtime, and leave out leak checks (node exits without
# freeing its heap). Children of these runs inherit the environment.
asan_node() {
  env LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
    DNFT_ADDON="$PWD/build-asan/Release/diffusion_nft.node" "$@"
}
check "ASan addon: native-call fuzzer, 2000 calls" asan_node node test/fuzz/native-fuzz.mjs --inputs 2000 --seed 7
check "ASan addon: checkpoint fuzzer, 500 inputs" asan_node node test/fuzz/checkpoint-fuzz.mjs --inputs 500 --seed 7
check "ASan addon: surfaces fuzzer (adapter), 300 inputs" asan_node node test/fuzz/surfaces-fuzz.mjs --surface adapter \
  --inputs 300 --seed 7
# Every native entry point at least once: the model's methods (net, trainers, checkpoints into/out of a model),
# the stateless functions through the fuzzer above, setThreads and worker threads through the scenarios.
check "ASan addon: vitest subset" asan_node npx vitest run test/reliability-errors.test.ts \
  test/reliability-checkpoint.test.ts test/reliability-scenarios.test.ts test/net.test.ts test/safetensors.test.ts

rm -f ci-reliability.log
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
