// Linear layers on our GEMM; the bias gradient is a column sum in double in row order (the CPU's order).
#include "cuda/cuda_backend.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm.cuh"

namespace dnft::cuda {

void CudaBackend::linear_forward(float* out, const float* in, const float* w, const float* b, int B, int K, int N) {
  sgemm(ctx_, {false, true, B, N, K, 1.0f, in, K, w, K, 0.0f, out, N, b});
}

void CudaBackend::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                                  int B, int K, int N) {
  if (din != nullptr) sgemm(ctx_, {false, false, B, K, N, 1.0f, dout, N, w, K, 0.0f, din, K, nullptr});
  if (dw != nullptr) sgemm(ctx_, {true, false, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw, K, nullptr});
  if (db == nullptr) return;
  for_each_index(
      ctx_, static_cast<size_t>(N),
      [=] __device__(size_t n) {
        double sum = 0.0;
        for (int r = 0; r < B; ++r) sum += dout[static_cast<size_t>(r) * N + n];
        db[n] += static_cast<float>(sum);
      },
      "linear_backward bias");
}

}  // namespace dnft::cuda
