// The fused AWM loss: one block per row sums the row's terms (core/math/awm_loss.h) in double, writes the gradient
// and the row's terms; the host adds them in row order, as the CPU does.
#include "core/math/awm_loss.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

struct AddAwmSums {
  __device__ AwmRowSums operator()(const AwmRowSums& a, const AwmRowSums& b) const {
    AwmRowSums s;
    s.sq = a.sq + b.sq;
    s.sq_kl = a.sq_kl + b.sq_kl;
    s.sq_ema = a.sq_ema + b.sq_ema;
    return s;
  }
};

__global__ void __launch_bounds__(kRowThreads)
    awm_loss_kernel(AwmRowTerms* rows, float* dv_theta, const float* v_theta, const float* v_ref, const float* v_ema,
                    const float* target, const float* t, const float* advantages, int B, int D, AwmLossParams p,
                    bool kl, bool ema, float scale) {
  const size_t b = blockIdx.x, row = b * D;
  AwmRowSums local;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    awm_accumulate(&local, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f, ema ? v_ema[row + d] : 0.0f);
  }
  const AwmRowSums sums = block_reduce<kRowThreads>(local, AddAwmSums{});
  const AwmRowTerms terms = awm_row_terms(sums, t[b], advantages[b], p, kl, ema, D, B, scale);
  if (threadIdx.x == 0) rows[b] = terms;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    dv_theta[row + d] =
        awm_grad(terms, v_theta[row + d], target[row + d], kl ? v_ref[row + d] : 0.0f, ema ? v_ema[row + d] : 0.0f);
  }
}

}  // namespace

double CudaBackend::awm_loss(float* dv_theta, const float* v_theta, const float* v_ref, const float* v_ema,
                             const float* target, const float* t, const float* advantages, int B, int D,
                             const AwmLossParams& p, float scale, AwmStats* stats) {
  if (B <= 0) return 0.0;
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr, ema = p.ema_coef != 0.0f && v_ema != nullptr;
  auto* rows = static_cast<AwmRowTerms*>(ctx_.scratch->get(static_cast<size_t>(B) * sizeof(AwmRowTerms)));
  launch_rows(ctx_, B, awm_loss_kernel, "awm_loss", rows, dv_theta, v_theta, v_ref, v_ema, target, t, advantages, B, D,
              p, kl, ema, scale);
  const std::vector<AwmRowTerms> host = download(ctx_, rows, static_cast<size_t>(B));
  return sum_awm_rows(host.data(), B, stats);
}

}  // namespace dnft::cuda
