#!/usr/bin/env bash
# The project's two entry points, each doing its own set-up on a fresh machine (idempotent, quick when done):
#   scripts/dev.sh demo   build, then the main job: DiffusionNFT on shapes from the shipped base (lib/jobs/demo-shapes.ts)
#   scripts/dev.sh test   install what the tests need, lint, build both native builds, run every test suite
#   scripts/dev.sh bench  build, then run the benchmark rows beside PyTorch (`bench efficiency ...`: row B4)
set -euo pipefail
cd "$(dirname "$0")/.."
command="${1:-test}"
shift || true

log() { printf '\n== %s\n' "$*"; }

ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_node_modules() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    # `npm install` rather than `npm ci`: it installs the locked versions too, and tolerates a registry mirror that
    # lacks the optional platform binaries of other systems (biome, rollup), which `npm ci` rejects.
    log "npm install (locked versions)"
    npm install --no-audit --no-fund
  fi
}

build() {
  log "native build (cmake-js, DNFT_CUDA=${DNFT_CUDA:-AUTO})"
  # configure (not just compile): a prebuild configures the same tree with the tests off.
  { npx cmake-js configure --CDDNFT_CUDA="${DNFT_CUDA:-AUTO}" --CDDNFT_BUILD_TESTS=ON &&
    npx cmake-js build; } >build.log 2>&1 || { cat build.log; exit 1; }
  tail -n 3 build.log
  log "TypeScript build"
  npx tsc -p tsconfig.build.json
}

case "$command" in
  demo)
    ensure_debian_packages cmake g++
    ensure_node_modules
    build
    node dist/lib/cli.js demo "$@"
    ;;
  test)
    ensure_debian_packages cmake g++ clang-format python3-torch python3-numpy libopenblas0-pthread chromium \
      openmpi-bin libopenmpi-dev mpich libmpich-dev slurmd slurmctld slurm-client munge libboost-context-dev python3-onnx
    ensure_node_modules
    log "lint: biome, the import layers of lib/ (dependency-cruiser), clang-format, tsc --noEmit"
    npx biome check .
    npx depcruise --config .dependency-cruiser.cjs lib
    node scripts/clang-format-check.js
    npx tsc -p tsconfig.json --noEmit
    log "API reference (TypeDoc, warnings as errors)"
    npm run --silent docs:api

    log "node-gyp fallback build (CPU only) and a smoke test of it"
    rm -rf build
    npm run --silent build:gyp >gyp.log 2>&1 || { cat gyp.log; exit 1; }
    node -e "
      const addon = require('./build/Release/diffusion_nft.node');
      const m = new addon.Model({ arch: 'mlp', dataDim: 2, width: 16, depth: 1, mlpRatio: 4, timeFeatures: 8, vocabSize: 4, condSlots: 1 }, 1, 'cpu');
      if (!(m.paramCount() > 0) || typeof addon.backendInfo().threads !== 'number') process.exit(1);
      console.log('node-gyp build loads: ' + m.paramCount() + ' parameters');"
    rm -rf build

    build
    log "prebuilt binary (prebuildify)"
    rm -rf prebuilds
    npm run --silent prebuild >prebuild.log 2>&1 || { cat prebuild.log; exit 1; }
    ls prebuilds/*/
    # prebuildify rebuilt without the C++ tests; restore the full build tree.
    build
    log "libdnft_mpi.so against Open MPI (the default mpicxx) and against MPICH (docs/distributed.md)"
    npm run --silent build:mpi >build-mpi.log 2>&1 || { cat build-mpi.log; exit 1; }
    npm run --silent build:mpi:mpich >build-mpi.log 2>&1 || { cat build-mpi.log; exit 1; }
    log "the addon on the simulated GPU (DNFT_CUDA=SIM into build-sim-addon/, with its libnccl.so.2; docs/gpu.md)"
    { npx cmake-js configure -O build-sim-addon --CDDNFT_CUDA=SIM --CDDNFT_BUILD_TESTS=OFF &&
      npx cmake-js build -O build-sim-addon; } >build-sim-addon.log 2>&1 || { cat build-sim-addon.log; exit 1; }

    log "C++ tests"
    cpp_passed=0; cpp_failed=0
    run_cpp_suite() {
      local rc=0 out line
      out=$("$@" 2>&1) || rc=$?
      # A sanitizer's report starts far above the tail: show its head (the error and its first frames) too.
      if [ "$rc" -ne 0 ]; then echo "$out" | grep -m 1 -A 30 -E '^==[0-9]+==ERROR|runtime error:' || true; fi
      echo "$out" | tail -n 20
      # A suite that needs hardware this machine lacks (test_cuda_parity without a GPU) says so on a SKIPPED line
      # and exits 0: it counts neither as passed nor as failed.
      if [ "$rc" -eq 0 ] && echo "$out" | grep -qE '^SKIPPED ' && ! echo "$out" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then return 0; fi
      line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)  # none: a crash, counted below
      if [ -z "$line" ]; then cpp_failed=$((cpp_failed + 1)); return 0; fi
      cpp_passed=$((cpp_passed + $(echo "$line" | cut -d' ' -f1)))
      cpp_failed=$((cpp_failed + $(echo "$line" | cut -d' ' -f3)))
    }
    # native/cuda on the simulated GPU (docs/gpu.md, "The simulated GPU"): the same sources compiled as C++ against
    # native/cudasim, under ASan + UBSan, each suite in three thread schedules (the random one's seed printed).
    run_simulated_gpu_suites() {
      log "simulated GPU: DNFT_CUDA=SIM build (ASan + UBSan) and its suites"
      { cmake -S . -B build-sim -DDNFT_CUDA=SIM -DDNFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
        cmake --build build-sim -j 2 --target test_cudasim test_cuda_launch test_nccl sim_nccl test_cuda_parity; } \
        >build-sim.log 2>&1 || { cat build-sim.log; cpp_failed=$((cpp_failed + 1)); return 0; }
      local schedule suites
      for schedule in rr reverse "random:$((RANDOM * 32768 + RANDOM))"; do
        echo "CUDASIM_SCHEDULE=$schedule"
        # test_cuda_parity, the slow suite, in rr only, to keep CI's minutes in bounds (docs/gpu.md).
        suites=(test_cudasim test_cuda_launch test_nccl)
        [ "$schedule" = rr ] && suites+=(test_cuda_parity)
        for suite in "${suites[@]}"; do
          # test_nccl's one-rank case over the simulated libnccl.so.2 (native/tests/sim_nccl.cpp).
          CUDASIM_SCHEDULE=$schedule ASAN_OPTIONS=detect_leaks=1 DNFT_NCCL_LIBRARY="$PWD/build-sim/sim-nccl/libnccl.so.2" \
            run_cpp_suite "build-sim/tests/$suite"
        done
      done
    }
    for exe in build/tests/*; do
      if [ -x "$exe" ]; then run_cpp_suite "$exe"; fi
    done
    run_cpp_suite node scripts/binding-gyp.js --check build  # binding.gyp lists the sources CMake finds
    # The CPU suites once more on each kernel path (GEMM, activations, softmax, AdamW), which the run above, on the
    # widest path the CPU has, would never reach; a path this CPU lacks (avx512 on an AVX2 machine) prints a
    # SKIPPED line naming it.
    for kernels in generic avx2 avx512; do
      for suite in test_gemm test_core test_dit test_lora; do
        DNFT_CPU_KERNELS=$kernels run_cpp_suite "build/tests/$suite"
      done
    done
    run_cpp_suite bash scripts/ci-prebuilds.sh
    run_simulated_gpu_suites

    if [ "$cpp_passed" -eq 0 ]; then echo "no C++ test ran" >&2; cpp_failed=$((cpp_failed + 1)); fi
    run_cpp_suite bash scripts/ci-reliability.sh

    # The suites that take a device, again with the models on the simulated GPU (test/helpers.ts, DNFT_TEST_DEVICE):
    # each device test then runs on the CPU and on the GPU in FP32 and TF32 and compares. One schedule and no race
    # check here (test_cuda_parity covers those) but strict frees; the simulator's libnccl.so.2 for the NCCL runs.
    # The simulator runs a stream on one OS thread, so this pass runs beside the CPU pass on the second core (its
    # output shown when both are done); vitest runs the files of a pass one at a time on a 2-core machine.
    log "vitest: the device suites on the simulated GPU, in the background (docs/gpu.md)"
    # The demo from the shipped base (config D): its first DiffusionNFT epoch against the CPU's
    # (test/shapes-base-device.test.ts) and a few epochs that raise the reward (test/shapes-rise-device.test.ts).
    device_suites=(test/shapes-rise-device.test.ts test/device.test.ts test/device-faults.test.ts
      test/distributed-gpu.test.ts test/solvers.test.ts test/lora.test.ts test/state-dict.test.ts test/pretrain.test.ts
      test/diffusion-nft.test.ts test/flowgrpo.test.ts test/awm.test.ts test/dgpo.test.ts test/methods-sde.test.ts
      test/shapes-base-device.test.ts)
    DNFT_TEST_DEVICE=cuda DNFT_ADDON="$PWD/build-sim-addon/Release/diffusion_nft.node" CUDASIM_RACECHECK=0 \
      CUDASIM_STRICT_FREE=1 DNFT_NCCL_LIBRARY="$PWD/build-sim-addon/sim-nccl/libnccl.so.2" npx vitest run \
      --no-cache --testTimeout 3600000 \
      --reporter=default --reporter=json --outputFile=vitest-sim-report.json "${device_suites[@]}" \
      >vitest-sim.log 2>&1 &
    device_pass=$!

    log "vitest"
    status=0
    npx vitest run --reporter=default --reporter=json --outputFile=vitest-report.json "$@" || status=$?
    wait "$device_pass" || status=$?
    log "vitest: the device suites on the simulated GPU (docs/gpu.md)"
    cat vitest-sim.log
    # The counts, and each failed test by file and name just above them: CI's log keeps the tail, where a failure
    # that scrolled past in a 40-minute run is otherwise lost.
    read -r js_passed js_failed < <(node -e "
      let passed = 0, failed = 0;
      for (const file of ['vitest-report.json', 'vitest-sim-report.json']) {
        const r = JSON.parse(require('fs').readFileSync(file, 'utf8'));
        passed += r.numPassedTests;
        failed += r.numFailedTests + (r.numTotalTestSuites && !r.success && !r.numFailedTests ? 1 : 0);
        for (const suite of r.testResults) {
          const name = require('path').relative('.', suite.name);
          if (suite.status === 'failed' && !suite.assertionResults.some((t) => t.status === 'failed'))
            console.error('failed (' + file + '): ' + name + ': ' + (suite.message || 'the file did not run').split('\n')[0]);
          for (const t of suite.assertionResults)
            if (t.status === 'failed')
              console.error('failed (' + file + '): ' + name + ' > ' + t.fullName + ': ' + (t.failureMessages[0] || '').split('\n')[0]);
        }
      }
      console.log(passed, failed);")
    echo
    echo "C++: $cpp_passed passed, $cpp_failed failed; vitest: $js_passed passed, $js_failed failed"
    echo "$((cpp_passed + js_passed)) passed, $((cpp_failed + js_failed)) failed"
    [ "$status" -eq 0 ] && [ "$cpp_failed" -eq 0 ]
    ;;
  bench)
    ensure_debian_packages cmake g++ python3-torch python3-numpy libopenblas0-pthread openmpi-bin libopenmpi-dev
    ensure_node_modules
    build
    # `npm run bench` runs the speed rows; `npm run bench -- efficiency --base CKPT` the B4 head-to-head;
    # `npm run bench -- distributed` the data-parallel epoch times (docs/distributed.md); `npm run bench -- report
    # <folder>` the charts of a results folder, from its records (bench/charts.ts).
    if [ "${1:-}" = efficiency ]; then
      shift
      node dist/bench/efficiency.js "$@"
    elif [ "${1:-}" = distributed ]; then
      shift
      npm run --silent build:mpi >build-mpi.log 2>&1 || { cat build-mpi.log; exit 1; }
      node dist/bench/distributed.js "$@"
    elif [ "${1:-}" = lora ]; then
      shift
      node dist/bench/lora.js "$@"
    elif [ "${1:-}" = soak ]; then
      shift
      node dist/bench/soak.js "$@"
    elif [ "${1:-}" = report ]; then
      shift
      node dist/bench/report.js "$@"
    else
      node dist/bench/run.js "$@"
    fi
    ;;
  *)
    echo "usage: scripts/dev.sh demo|test|bench [args]" >&2
    exit 2
    ;;
esac
