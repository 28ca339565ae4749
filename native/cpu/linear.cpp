#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

void CpuBackend::linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N) {
  sgemm(false, true, B, N, K, 1.0f, in, K, w, K, 0.0f, out, N, b);
}

void CpuBackend::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                                 int B, int K, int N) {
  if (din != nullptr) sgemm(false, false, B, K, N, 1.0f, dout, N, w, K, 0.0f, din, K);
  if (dw != nullptr) sgemm(true, false, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw, K);
  if (db == nullptr) return;
  global_pool().parallel_for(
      N,
      [&](int64_t begin, int64_t end, int) {
        std::vector<double> sum(static_cast<size_t>(end - begin), 0.0);
        for (int r = 0; r < B; ++r) {
          const float* row = dout + static_cast<size_t>(r) * N;
          for (int64_t n = begin; n < end; ++n) sum[n - begin] += row[n];
        }
        for (int64_t n = begin; n < end; ++n) db[n] += static_cast<float>(sum[n - begin]);
      },
      64);
}

}  // namespace dnft::cpu
