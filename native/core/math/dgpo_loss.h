// The DGPO loss of docs/algorithms.md §8 (group preference), per row of D elements. The group weights are computed
// on the host from every row's flow-matching errors (core/model_dgpo.cpp); given the row's weight w = σ(S_g)·A and
// whether its PPO-style clip keeps the gradient (keep = 1) or stops it (keep = 0):
//   row loss   w·l + kl·mean_d (v_θ − v_ref)²,   l = mean_d (v_θ − v)²,  v = eps − x0
//   gradient   ∂/∂v_θ = (2/D)·[keep·w·(v_θ − v) + kl·(v_θ − v_ref)]
// The CPU loop and the CUDA kernel share these functions.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/common.h"

namespace dnft {

struct DgpoRowSums {
  double sq = 0;     // Σ (v_θ − v)²
  double sq_kl = 0;  // Σ (v_θ − v_ref)²
};

DNFT_HD void dgpo_accumulate(DgpoRowSums* s, float v_theta, float target, float v_ref) {
  const double fm = static_cast<double>(v_theta) - target, kl = static_cast<double>(v_theta) - v_ref;
  s->sq += fm * fm;
  s->sq_kl += kl * kl;
}

struct DgpoRowTerms {
  double loss;
  float g_fm, g_kl;
};

DNFT_HD DgpoRowTerms dgpo_row_terms(const DgpoRowSums& s, double weight, double keep, double kl_coef, bool kl, int D,
                                    int B, float scale) {
  const double inv_D = 1.0 / D, g = scale * 2.0 * inv_D / B;
  DgpoRowTerms r;
  r.loss = weight * s.sq * inv_D + (kl ? kl_coef * s.sq_kl * inv_D : 0.0);
  r.g_fm = static_cast<float>(g * keep * weight);
  r.g_kl = kl ? static_cast<float>(g * kl_coef) : 0.0f;
  return r;
}

DNFT_HD float dgpo_grad(const DgpoRowTerms& r, float v_theta, float target, float v_ref) {
  return r.g_fm * (v_theta - target) + r.g_kl * (v_theta - v_ref);
}

// The group preference of the official loss: S_g = (β_dpo/G)·Σ_{i in g} A_i·(l_i − l_ref,i) per (group, time),
// w = σ(S_g), and the PPO-style clip of exp(l_old − l), on the host in double.
struct DgpoParams {
  double beta_dpo{};
  double clip_range{};  // c of the clip on exp(l_old − l)
  double kl_coef{};     // weight of mean (v_θ − v_ref)², the KL to the base
  int group_size{};     // G
  bool ema_ref{};       // S_g compares with θ_old (the fast EMA) instead of the base
};

// Adds A·(l − l_ref) of rows (sample row / M, time row % M) into S[group · M + time]; l_ref is l_old with ema_ref.
inline void dgpo_group_sums(double* S, const double* l, const double* l_ref, const double* l_old,
                            const float* advantages, const int32_t* groups, int rows, int M, const DgpoParams& p) {
  for (int row = 0; row < rows; ++row) {
    const int b = row / M;
    const double reference = p.ema_ref ? l_old[row] : l_ref[row];
    S[static_cast<size_t>(groups[b]) * M + row % M] += advantages[b] * (l[row] - reference);
  }
}

struct DgpoWeightSums {
  double clipped = 0;     // rows whose gradient the clip stops
  double weight_sum = 0;  // Σ σ(S_g) over the rows
};

// weight = σ(S_g)·A and keep = 0 where the clip stops the row's gradient: a row whose ratio exp(l_old − l) is
// already past 1 ± c in its advantage's direction (A = 0 counts as negative, as the code).
inline DgpoWeightSums dgpo_row_weights(float* weight, float* keep, const double* S, const double* l,
                                       const double* l_old, const float* advantages, const int32_t* groups, int rows,
                                       int M, const DgpoParams& p) {
  DgpoWeightSums sums;
  for (int row = 0; row < rows; ++row) {
    const int b = row / M;
    const double A = advantages[b];
    const double s = p.beta_dpo / p.group_size * S[static_cast<size_t>(groups[b]) * M + row % M];
    const double sigmoid = 1.0 / (1.0 + std::exp(-s));
    const double ratio = std::exp(l_old[row] - l[row]);
    const bool stop = A > 0 ? ratio > 1.0 + p.clip_range : ratio < 1.0 - p.clip_range;
    weight[row] = static_cast<float>(sigmoid * A);
    keep[row] = stop ? 0.0f : 1.0f;
    sums.clipped += stop ? 1.0 : 0.0;
    sums.weight_sum += sigmoid;
  }
  return sums;
}

}  // namespace dnft
