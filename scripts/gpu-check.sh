#!/usr/bin/env bash
# GPU verification, run ON the GPU machine (nvcc, cmake and PyTorch there, no Node) over a build made elsewhere for
# its architecture and carried along (docs/gpu.md). Writes everything under $OUT (default ./gpu-check-out):
#   device.txt            nvidia-smi and the CUDA device the tests see
#   parity.txt            build/tests/test_cuda_parity: every kernel and whole steps, CPU vs GPU, FP32 and TF32
#   launch.txt            build/tests/test_cuda_launch (host logic, for completeness)
#   memcheck.txt          compute-sanitizer --tool memcheck over the parity test
#   racecheck.txt         compute-sanitizer --tool racecheck over the parity test (shared-memory hazards)
#   nccl.txt              build/tests/test_nccl: the NCCL communicator over a fake library (failures, stream order)
#                         and, where libnccl.so.2 is found, one rank over the real NCCL
#   bench.txt             the speed rows on the GPU, when DNFT_NODE names a node binary and the bench supports it
#   summary.txt           one line per step: ok / FAILED / skipped
# Exit status: 0 when every step that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
BUILD="${DNFT_BUILD_DIR:-build}"
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
status=0

note() { echo "$*" | tee -a "$summary"; }

# run NAME FILE COMMAND...: runs the command into $OUT/FILE, records ok/FAILED.
run() {
  local name="$1" file="$2"
  shift 2
  local start=$SECONDS
  if "$@" >"$OUT/$file" 2>&1; then
    note "ok      $name ($((SECONDS - start)) s) -> $file"
  else
    note "FAILED  $name (exit $?, $((SECONDS - start)) s) -> $file"
    status=1
  fi
}

{ nvidia-smi || true; echo; nvcc --version || true; } >"$OUT/device.txt" 2>&1

parity="$BUILD/tests/test_cuda_parity"
if [ ! -x "$parity" ]; then
  note "FAILED  $parity is missing: build with CUDA for this GPU first (docs/gpu.md)"
  exit 1
fi

run "parity (CPU vs GPU)" parity.txt "$parity"
if grep -q '^SKIPPED ' "$OUT/parity.txt"; then
  note "FAILED  the parity test saw no CUDA device: $(grep '^SKIPPED ' "$OUT/parity.txt")"
  status=1
fi
run "host launch logic" launch.txt "$BUILD/tests/test_cuda_launch"

# NCCL: $DNFT_NCCL_LIBRARY, else the copy PyTorch's wheels install (site-packages/nvidia/nccl/lib), else the
# loader's search path. One GPU runs one rank only: the two-rank path stays unverified (docs/distributed.md).
if [ -z "${DNFT_NCCL_LIBRARY:-}" ] && command -v python3 >/dev/null; then
  DNFT_NCCL_LIBRARY=$(python3 -c '
import glob, os, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
found = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "nvidia/nccl/lib/libnccl.so.2")))
print(found[0] if found else "")
' 2>/dev/null)
fi
echo "DNFT_NCCL_LIBRARY=${DNFT_NCCL_LIBRARY:-} (empty: libnccl.so.2 on the loader's path)" >>"$OUT/device.txt"
run "NCCL communicator" nccl.txt env DNFT_NCCL_LIBRARY="${DNFT_NCCL_LIBRARY:-}" "$BUILD/tests/test_nccl"
if grep -q '^SKIPPED test_nccl device' "$OUT/nccl.txt"; then
  note "FAILED  the NCCL test saw no CUDA device: $(grep '^SKIPPED ' "$OUT/nccl.txt")"
  status=1
elif grep -q '^SKIPPED ' "$OUT/nccl.txt"; then
  note "skipped one rank over the real NCCL: $(grep '^SKIPPED ' "$OUT/nccl.txt")"
fi

sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ -x "$sanitizer" ]; then
  # --error-exitcode makes a reported hazard fail the step even when the tests themselves pass.
  run "compute-sanitizer memcheck" memcheck.txt timeout "${DNFT_SANITIZER_TIMEOUT:-240}" "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 "$parity"
  run "compute-sanitizer racecheck" racecheck.txt timeout "${DNFT_SANITIZER_TIMEOUT:-240}" "$sanitizer" --tool racecheck --racecheck-report all --error-exitcode 3 "$parity"
else
  note "skipped compute-sanitizer: not found"
fi

# The speed rows need Node (not installed on the GPU machine: carry one, docs/gpu.md) and a bench that knows the GPU
# (dist/bench/run.js reading DNFT_BENCH_DEVICE); until both are there the step is skipped, never run on the CPU.
node_bin="${DNFT_NODE:-}"
if [ -n "$node_bin" ] && [ -x "$node_bin" ] && grep -qs DNFT_BENCH_DEVICE dist/bench/run.js; then
  run "GPU speed rows (bench)" bench.txt env DNFT_BENCH_DEVICE=cuda "$node_bin" dist/bench/run.js
else
  note "skipped GPU speed rows: needs DNFT_NODE=<node binary> and a bench with DNFT_BENCH_DEVICE support"
fi

exit $status
