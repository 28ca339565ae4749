// The fused DGPO loss (core/math/dgpo_loss.h) and the per-row errors its group weights come from: one block per row
// sums in double; the host adds the row losses in row order, as the CPU does.
#include <algorithm>

#include "core/math/dgpo_loss.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

struct AddDgpoSums {
  __device__ DgpoRowSums operator()(const DgpoRowSums& a, const DgpoRowSums& b) const {
    DgpoRowSums s;
    s.sq = a.sq + b.sq;
    s.sq_kl = a.sq_kl + b.sq_kl;
    return s;
  }
};

__global__ void __launch_bounds__(kRowThreads)
    dgpo_loss_kernel(double* row_loss, float* dv_theta, const float* v_theta, const float* v_ref, const float* target,
                     const float* weight, const float* keep, int B, int D, float kl_coef, bool kl, float scale) {
  const size_t b = blockIdx.x, row = b * D;
  DgpoRowSums local;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    dgpo_accumulate(&local, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f);
  }
  const DgpoRowSums sums = block_reduce<kRowThreads>(local, AddDgpoSums{});
  const DgpoRowTerms terms = dgpo_row_terms(sums, weight[b], keep[b], kl_coef, kl, D, B, scale);
  if (threadIdx.x == 0) row_loss[b] = terms.loss;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    dv_theta[row + d] = dgpo_grad(terms, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f);
  }
}

__global__ void __launch_bounds__(kRowThreads) row_mean_sq_kernel(double* out, const float* a, const float* b, int D) {
  const size_t row = static_cast<size_t>(blockIdx.x) * D;
  double acc = 0.0;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    const double diff = static_cast<double>(a[row + d]) - b[row + d];
    acc += diff * diff;
  }
  const double total = row_sum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = total / D;
}

}  // namespace

double CudaBackend::dgpo_loss(float* dv_theta, const float* v_theta, const float* v_ref, const float* target,
                              const float* weight, const float* keep, int B, int D, float kl_coef, float scale) {
  if (B <= 0) return 0.0;
  const bool kl = kl_coef != 0.0f && v_ref != nullptr;
  auto* row_loss = static_cast<double*>(ctx_.scratch->get(static_cast<size_t>(B) * sizeof(double)));
  launch_rows(ctx_, B, dgpo_loss_kernel, "dgpo_loss", row_loss, dv_theta, v_theta, v_ref, target, weight, keep, B, D,
              kl_coef, kl, scale);
  double loss = 0;
  for (double value : download(ctx_, row_loss, static_cast<size_t>(B))) loss += value;
  return loss * (1.0 / B);
}

void CudaBackend::row_mean_sq(double* host_out, const float* a, const float* b, int B, int D) {
  if (B <= 0) return;
  auto* out = static_cast<double*>(ctx_.scratch->get(static_cast<size_t>(B) * sizeof(double)));
  launch_rows(ctx_, B, row_mean_sq_kernel, "row_mean_sq", out, a, b, D);
  const std::vector<double> host = download(ctx_, out, static_cast<size_t>(B));
  std::copy(host.begin(), host.end(), host_out);
}

}  // namespace dnft::cuda
