// Host tests of the CUDA backend's CPU-side logic, built in every configuration (no GPU, no nvcc needed): launch
// geometry, the GEMM tiling index math replayed as a whole tiled product against the CPU GEMM, the GEMM kernel
// choice, and the resolution of device requests.
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "core/device.h"
#include "cpu/gemm.h"
#include "cuda/gemm_tiling.h"
#include "cuda/launch.h"
#include "tests/check.h"

using namespace dnft;
using namespace dnft::cuda;

namespace {

void elementwise_geometry_covers_every_index() {
  for (size_t n :
       {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{1} << 20, size_t{1} << 26, (size_t{1} << 34) + 3}) {
    const Geometry g = elementwise_geometry(n);
    CHECK(g.threads == kElementwiseThreads, "threads %d", g.threads);
    CHECK(g.blocks >= 1 && g.blocks <= kMaxElementwiseBlocks, "n %zu: %u blocks", n, g.blocks);
    // One pass when it fits, otherwise the grid-stride loop covers the rest.
    const size_t per_pass = grid_stride_step(g);
    CHECK(per_pass >= n || g.blocks == kMaxElementwiseBlocks, "n %zu not covered", n);
    if (n <= size_t{kMaxElementwiseBlocks} * kElementwiseThreads) CHECK(per_pass < n + kElementwiseThreads, "waste");
  }
  // Every index is visited exactly once by the grid-stride loops of a small grid.
  const size_t n = 70001;
  const Geometry g = elementwise_geometry(n);
  std::vector<int> seen(n, 0);
  for (unsigned b = 0; b < g.blocks; ++b) {
    for (int t = 0; t < g.threads; ++t) {
      for (size_t i = grid_stride_first(b, g.threads, t); i < n; i += grid_stride_step(g)) ++seen[i];
    }
  }
  bool once = true;
  for (int s : seen) once = once && s == 1;
  CHECK(once, "grid-stride loop visits every index once");
}

void reduction_geometry_depends_on_size_only() {
  for (size_t n : {size_t{1}, size_t{1023}, size_t{1024}, size_t{1025}, size_t{1} << 22, size_t{1} << 30}) {
    const Geometry g = reduction_geometry(n);
    CHECK(g.threads == kReduceThreads && g.blocks >= 1 && g.blocks <= kMaxReduceBlocks, "n %zu", n);
    const Geometry again = reduction_geometry(n);
    CHECK(again.blocks == g.blocks, "deterministic");
  }
  CHECK(reduction_geometry(1).blocks == 1, "one block for one term");
  CHECK(reduction_geometry(size_t{1} << 30).blocks == kMaxReduceBlocks, "capped");
}

void row_threads_fit_the_row() {
  CHECK(row_threads(1, 1) == kMinRowThreads && row_threads(0, 4) == kMinRowThreads, "a warp at least");
  CHECK(row_threads(64, 1) == 64 && row_threads(65, 1) == 128, "one item a thread, rounded up to a power of two");
  CHECK(row_threads(192, 4) == 64 && row_threads(193, 4) == 64 && row_threads(257, 4) == 128, "four items a thread");
  CHECK(row_threads(100000, 1) == kRowThreads, "longer rows loop over the largest block");
  for (int work = 1; work <= 3000; ++work) {
    for (int per_thread : {1, 4}) {
      const int t = row_threads(work, per_thread);
      CHECK((t & (t - 1)) == 0 && t >= kMinRowThreads && t <= kRowThreads, "a power of two within the limits");
      CHECK(t == kRowThreads || t * per_thread >= work, "the block covers the row");
      CHECK(t == kMinRowThreads || (t / 2) * per_thread < work, "the smallest block that covers it");
    }
  }
}

void tile_coords_are_a_coalesced_bijection() {
  for (bool trans : {false, true}) {
    for (auto [rows, cols] : {std::pair{kTileM, kTileK}, std::pair{kTileK, kTileN}}) {
      std::set<std::pair<int, int>> seen;
      for (int e = 0; e < rows * cols; ++e) {
        const TileCoord c = tile_coord(e, rows, cols, trans);
        CHECK(c.row >= 0 && c.row < rows && c.col >= 0 && c.col < cols, "in range");
        seen.insert({c.row, c.col});
        // Consecutive elements (threads of a warp) read consecutive floats of op(X)'s storage.
        if (e % 32 != 0 && (e % (trans ? rows : cols)) != 0) {
          const TileCoord p = tile_coord(e - 1, rows, cols, trans);
          const int ld = 1000;
          CHECK(op_offset(c.row, c.col, ld, trans) == op_offset(p.row, p.col, ld, trans) + 1,
                "coalesced at e=%d trans=%d", e, trans);
        }
      }
      CHECK(static_cast<int>(seen.size()) == rows * cols, "bijection rows %d cols %d trans %d", rows, cols, trans);
    }
  }
  CHECK(op_offset(2, 3, 10, false) == 23 && op_offset(2, 3, 10, true) == 32, "op offsets");
}

void gemm_grid_covers_c() {
  for (int M : {1, 63, 64, 65, 1000}) {
    for (int N : {1, 17, 64, 129}) {
      const GemmGrid g = gemm_grid(M, N);
      CHECK(static_cast<int>(g.tiles_m) * kTileM >= M && static_cast<int>(g.tiles_m - 1) * kTileM < M, "M %d", M);
      CHECK(static_cast<int>(g.tiles_n) * kTileN >= N && static_cast<int>(g.tiles_n - 1) * kTileN < N, "N %d", N);
    }
  }
}

// The CUDA kernels' algorithm on the host: the same tile loads (zero padded) and epilogue, a plain product of the
// staged tiles in place of the WMMA/SIMT inner loop.
void tiled_gemm_on_host(const GemmArgs& g) {
  std::vector<float> As(kTileM * kLdA), Bs(kTileK * kLdB), Cs(kTileM * kLdC);
  const GemmGrid grid = gemm_grid(g.M, g.N);
  for (unsigned tm = 0; tm < grid.tiles_m; ++tm) {
    for (unsigned tn = 0; tn < grid.tiles_n; ++tn) {
      const int m0 = static_cast<int>(tm) * kTileM, n0 = static_cast<int>(tn) * kTileN;
      std::fill(Cs.begin(), Cs.end(), 0.0f);
      for (int k0 = 0; k0 < g.K; k0 += kTileK) {
        // Several "threads": the loads must cover the tile whatever the stride.
        for (int t = 0; t < kWmmaThreads; ++t) {
          load_tile(As.data(), kLdA, g.A, g.lda, g.transA, m0, k0, g.M, g.K, kTileM, kTileK, t, kWmmaThreads);
          load_tile(Bs.data(), kLdB, g.B, g.ldb, g.transB, k0, n0, g.K, g.N, kTileK, kTileN, t, kWmmaThreads);
        }
        for (int r = 0; r < kTileM; ++r) {
          for (int c = 0; c < kTileN; ++c) {
            float acc = Cs[r * kLdC + c];
            for (int k = 0; k < kTileK; ++k) acc += As[r * kLdA + k] * Bs[k * kLdB + c];
            Cs[r * kLdC + c] = acc;
          }
        }
      }
      for (int t = 0; t < kSimtThreads; ++t) store_tile(g, Cs.data(), m0, n0, t, kSimtThreads);
    }
  }
}

void tiled_gemm_matches_cpu_gemm() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  struct Shape {
    int M, N, K;
  };
  for (const Shape s : {Shape{1, 1, 1}, Shape{37, 23, 19}, Shape{65, 129, 33}, Shape{100, 3, 70}, Shape{5, 70, 0}}) {
    for (int variant = 0; variant < 8; ++variant) {
      const bool ta = variant & 1, tb = variant & 2, accumulate = variant & 4;
      const int lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
      std::vector<float> A(static_cast<size_t>(s.M) * s.K + 1), B(static_cast<size_t>(s.K) * s.N + 1), bias(s.N);
      for (float& v : A) v = uni(rng);
      for (float& v : B) v = uni(rng);
      for (float& v : bias) v = uni(rng);
      std::vector<float> C0(static_cast<size_t>(s.M) * s.N);
      for (float& v : C0) v = accumulate ? uni(rng) : NAN;  // beta = 0 must never read C
      std::vector<float> ours = C0, ref = C0;
      const float beta = accumulate ? 1.0f : 0.0f;
      const float* b = accumulate ? nullptr : bias.data();
      tiled_gemm_on_host({ta, tb, s.M, s.N, s.K, 0.5f, A.data(), lda, B.data(), ldb, beta, ours.data(), s.N, b});
      cpu::sgemm(ta, tb, s.M, s.N, s.K, 0.5f, A.data(), lda, B.data(), ldb, beta, ref.data(), s.N, b);
      double err = 0, norm = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        err += (ours[i] - ref[i]) * (ours[i] - ref[i]);
        norm += ref[i] * ref[i];
      }
      CHECK(std::isfinite(err) && std::sqrt(err) <= 1e-6 * std::sqrt(norm) + 1e-30, "M %d N %d K %d ta %d tb %d acc %d",
            s.M, s.N, s.K, ta, tb, accumulate);
    }
  }
}

void gemm_kernel_choice() {
  CHECK(choose_gemm_kernel(Precision::kTf32, 9) == GemmKernel::kTf32Wmma, "H100 TF32");
  CHECK(choose_gemm_kernel(Precision::kTf32, 8) == GemmKernel::kTf32Wmma, "A100 TF32");
  CHECK(choose_gemm_kernel(Precision::kTf32, 7) == GemmKernel::kFp32Simt, "Turing has no TF32");
  CHECK(choose_gemm_kernel(Precision::kFp32, 9) == GemmKernel::kFp32Simt, "exact mode");
}

void device_requests_resolve() {
  DeviceInfo none;
  none.reason = "no CUDA device is visible";
  DeviceInfo gpu;
  gpu.compiled_with_cuda = gpu.cuda_available = true;
  gpu.device_count = 1;
  CHECK(choose_device("cpu", gpu) == DeviceChoice::kCpu, "cpu");
  CHECK(choose_device("auto", gpu) == DeviceChoice::kCuda, "auto with a GPU");
  CHECK(choose_device("auto", none) == DeviceChoice::kCpu, "auto without");
  CHECK(choose_device("cuda", gpu) == DeviceChoice::kCuda, "cuda");
  try {
    choose_device("cuda", none);
    CHECK(false, "cuda without a GPU must throw");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::kBackend, "kind");
    CHECK(std::string(e.what()).find(none.reason) != std::string::npos, "names the reason: %s", e.what());
    CHECK(std::string(e.what()).find("device 'auto'") != std::string::npos, "suggests 'auto': %s", e.what());
  }
  try {
    choose_device("tpu", gpu);
    CHECK(false, "unknown device must throw");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::kRange, "kind");
  }
  CHECK(parse_precision("tf32") == Precision::kTf32 && parse_precision("fp32") == Precision::kFp32, "precision");
  CHECK(std::string(precision_name(Precision::kFp32)) == "fp32", "name");
  try {
    parse_precision("bf16");
    CHECK(false, "bf16 is not offered");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::kRange, "kind");
  }
  // Without a usable device, opening a CUDA backend fails with the reason (this machine, or a CPU-only build).
  const DeviceInfo here = device_info();
  if (!here.cuda_available) {
    try {
      create_cuda_backend({});
      CHECK(false, "create_cuda_backend must throw without a device");
    } catch (const Error& e) {
      CHECK(e.kind() == Error::Kind::kBackend && std::string(e.what()).find(here.reason) != std::string::npos, "%s",
            e.what());
    }
  }
}

// The driver each CUDA runtime needs and how versions read; a CUDA build reports its own runtime and requirement.
void cuda_driver_requirements() {
  CHECK(required_driver_branch(13000) == 580 && required_driver_branch(13020) == 580, "13.x needs r580");
  CHECK(required_driver_branch(12080) == 525, "12.x needs r525");
  CHECK(cuda_version_name(13000) == "13.0" && cuda_version_name(12080) == "12.8", "%s",
        cuda_version_name(12080).c_str());
  // No driver at all (the runtime then says its driver is "insufficient"): the reason says there is none.
  DeviceInfo bare;
  bare.runtime_version = 13000;
  bare.required_driver = 580;
  const std::string insufficient = "CUDA driver version is insufficient for CUDA runtime version";
  const std::string missing = cuda_failure_reason(insufficient, true, bare);
  CHECK(missing == "no NVIDIA driver found (this binary's CUDA 13.0 runtime needs an NVIDIA driver r580 or newer)",
        "%s", missing.c_str());
  DeviceInfo old_driver = bare;
  old_driver.driver_cuda_version = 12080;
  old_driver.driver_version = "570.86.15";
  const std::string too_old = cuda_failure_reason(insufficient, true, old_driver);
  CHECK(too_old.find("no usable CUDA device: " + insufficient) == 0 &&
            too_old.find("found 570.86.15") != std::string::npos,
        "%s", too_old.c_str());
  CHECK(cuda_failure_reason("all CUDA-capable devices are busy or unavailable", false, old_driver) ==
            "no usable CUDA device: all CUDA-capable devices are busy or unavailable",
        "another error");
  const DeviceInfo here = device_info();
  if (here.compiled_with_cuda) {
    CHECK(here.runtime_version >= 12000 && here.required_driver == required_driver_branch(here.runtime_version),
          "runtime %d needs r%d", here.runtime_version, here.required_driver);
  } else {
    CHECK(here.runtime_version == 0 && here.required_driver == 0 && here.driver_version.empty(), "no CUDA, no runtime");
  }
}

}  // namespace

int main() {
  return test::run({
      {"elementwise geometry covers every index", elementwise_geometry_covers_every_index},
      {"reduction geometry depends on the size only", reduction_geometry_depends_on_size_only},
      {"row kernel blocks fit the row", row_threads_fit_the_row},
      {"GEMM tile loads are a coalesced bijection", tile_coords_are_a_coalesced_bijection},
      {"GEMM grid covers C", gemm_grid_covers_c},
      {"tiled GEMM index math matches the CPU GEMM", tiled_gemm_matches_cpu_gemm},
      {"GEMM kernel choice", gemm_kernel_choice},
      {"device requests resolve", device_requests_resolve},
      {"CUDA driver requirements", cuda_driver_requirements},
  });
}
