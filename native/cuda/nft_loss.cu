// The fused DiffusionNFT loss: one block per row sums the row's terms (core/math/nft_loss.h) in double, writes the
// gradient and the row's loss; the host adds the row losses in row order, as the CPU does.
#include "core/math/nft_loss.h"
#include "cuda/cuda_backend.cuh"
#include "cuda/reduce.cuh"

namespace dnft::cuda {

namespace {

struct AddRowSums {
  __device__ NftRowSums operator()(const NftRowSums& a, const NftRowSums& b) const {
    NftRowSums s;
    s.abs_pos = a.abs_pos + b.abs_pos;
    s.abs_neg = a.abs_neg + b.abs_neg;
    s.sq_pos = a.sq_pos + b.sq_pos;
    s.sq_neg = a.sq_neg + b.sq_neg;
    s.sq_kl = a.sq_kl + b.sq_kl;
    return s;
  }
};

__global__ void __launch_bounds__(kRowThreads)
    nft_loss_kernel(double* row_loss, float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref,
                    const float* target, const float* t, const float* r, int B, int D, NftLossParams p, bool kl,
                    float scale) {
  const size_t b = blockIdx.x, row = b * D;
  NftRowSums local;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
    nft_accumulate(&local, res, kl, v_theta[row + d], kl ? v_ref[row + d] : 0.0f);
  }
  const NftRowSums sums = block_reduce<kRowThreads>(local, AddRowSums{});
  const NftRowTerms terms = nft_row_terms(sums, t[b], r[b], p, kl, D, B, scale);
  if (threadIdx.x == 0) row_loss[b] = terms.loss;
  for (int d = threadIdx.x; d < D; d += kRowThreads) {
    const NftResiduals res = nft_residuals(v_theta[row + d], v_old[row + d], target[row + d], p.beta);
    dv_theta[row + d] =
        nft_grad(res, terms.g_pos, terms.g_neg, terms.kl_grad, v_theta[row + d], kl ? v_ref[row + d] : 0.0f);
  }
}

}  // namespace

double CudaBackend::nft_loss(float* dv_theta, const float* v_theta, const float* v_old, const float* v_ref,
                             const float* target, const float* t, const float* r, int B, int D, const NftLossParams& p,
                             float scale) {
  if (B <= 0) return 0.0;
  const bool kl = p.kl_coef != 0.0f && v_ref != nullptr;
  auto* row_loss = static_cast<double*>(ctx_.scratch->get(static_cast<size_t>(B) * sizeof(double)));
  launch_rows(ctx_, B, nft_loss_kernel, "nft_loss", row_loss, dv_theta, v_theta, v_old, v_ref, target, t, r, B, D, p,
              kl, scale);
  double loss = 0;
  for (double value : download(ctx_, row_loss, static_cast<size_t>(B))) loss += value;
  return loss * (1.0 / B);
}

}  // namespace dnft::cuda
