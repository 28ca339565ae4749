// Model::nft_step: one DiffusionNFT optimiser step (docs/algorithms.md §2.3–2.4), and the row loop it shares with
// the other forward-noising steps (model_awm.cpp, model_dgpo.cpp).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/math/philox.h"
#include "core/model.h"
#include "core/model_internal.h"

namespace dnft {

namespace {

// The training times of every (sample, k) row, drawn on the host so that both backends see the same ones.
std::vector<float> nft_training_times(const NftStepOptions& o, int B, int64_t step) {
  const uint64_t first = static_cast<uint64_t>(o.first_sample);
  const int K = o.times_per_sample, N = static_cast<int>(o.times.size());
  if (K < 1 || (N > 0 && K > N)) {
    throw Error(Error::Kind::kRange,
                "times per sample must be at least 1 and at most the " + std::to_string(N) + " candidate times");
  }
  std::vector<float> t(static_cast<size_t>(B) * K);
  std::vector<int> order(N);
  for (int b = 0; b < B; ++b) {
    if (N == 0) {
      // Continuous: t ~ U(0, 1) (philox_uniform never returns 0).
      for (int j = 0; j < K; ++j)
        t[b * K + j] = philox_uniform(o.seed, kStreamTime, step_offset(step) + (first + b) * K + j);
      continue;
    }
    // K distinct grid times: the first K entries of a Fisher–Yates shuffle, as the code's random permutation.
    for (int i = 0; i < N; ++i) order[i] = i;
    for (int j = 0; j < K; ++j) {
      const float u = philox_uniform(o.seed, kStreamTime, step_offset(step) + (first + b) * N + j);
      const int pick = std::min(N - 1, j + static_cast<int>(u * static_cast<float>(N - j)));
      std::swap(order[j], order[pick]);
      t[b * K + j] = static_cast<float>(o.times[order[j]]);
    }
  }
  return t;
}

}  // namespace

double Model::noised_rows(const float* host_x0, const int32_t* host_tokens, const float* host_values, int B, int K,
                          const float* host_times, int micro_batch, uint64_t seed, int64_t first_sample, int64_t step,
                          const NetParams* first, const NetParams* second,
                          const std::function<double(int m, float share)>& loss) {
  const NetConfig& c = net_->config();
  const size_t D = c.data_dim, L = c.cond_slots;
  const int rows = B * K;
  const int micro = micro_batch > 0 && micro_batch < rows ? micro_batch : rows;
  const size_t capacity = static_cast<size_t>(micro);
  for (Buffer<float>* buffer : {&x_, &xt_, &target_, &out_, &dout_, &v_old_, &v_ref_}) {
    ensure(*buffer, backend_, capacity * D);
  }
  ensure(t_, backend_, capacity);
  ensure(r_, backend_, capacity);
  ensure(tokens_, backend_, capacity * L);
  std::vector<float> host_x(capacity * D), host_rows_value(capacity);
  std::vector<int32_t> host_rows_tokens(capacity * L);
  double total = 0.0;
  for (int start = 0; start < rows; start += micro) {
    const int m = std::min(micro, rows - start);
    for (int i = 0; i < m; ++i) {
      const size_t b = static_cast<size_t>(start + i) / K;
      std::copy(host_x0 + b * D, host_x0 + (b + 1) * D, host_x.begin() + i * D);
      std::copy(host_tokens + b * L, host_tokens + (b + 1) * L, host_rows_tokens.begin() + i * L);
      host_rows_value[i] = host_values[b];
    }
    x_.upload(host_x.data(), m * D);
    tokens_.upload(host_rows_tokens.data(), m * L);
    r_.upload(host_rows_value.data(), m);
    t_.upload(host_times + start, m);
    backend_.interpolate(xt_.get(), target_.get(), x_.get(), t_.get(), m, static_cast<int>(D), seed,
                         step_offset(step) + (static_cast<uint64_t>(first_sample) * K + start) * D);
    // The other sets first: the workspace keeps the activations of the last forward, θ's, for the backward.
    if (first != nullptr)
      net_->forward(backend_, *workspace_, *first, xt_.get(), t_.get(), tokens_.get(), m, v_old_.get());
    if (second != nullptr)
      net_->forward(backend_, *workspace_, *second, xt_.get(), t_.get(), tokens_.get(), m, v_ref_.get());
    net_->forward(backend_, *workspace_, weights(), xt_.get(), t_.get(), tokens_.get(), m, out_.get());
    const float share = static_cast<float>(m) / static_cast<float>(rows);
    total += share * loss(m, share);
    net_->backward(backend_, *workspace_, weights(), gradients(), xt_.get(), tokens_.get(), dout_.get(), m, nullptr);
  }
  return total;
}

StepStats Model::nft_step(const float* host_x0, const int32_t* host_tokens, const float* host_r, int B,
                          const NftStepOptions& o) {
  const int D = static_cast<int>(net_->config().data_dim);
  const NetParams old_params = weights(ParamSet::kOld);
  const bool kl = o.loss.kl_coef != 0.0f;
  const NetParams ref_params = kl ? weights(ParamSet::kRef) : NetParams(nullptr);
  const int64_t step = step_ + 1;

  // Every sample is trained at K times, each (sample, time) row with its own noise: rows = B·K.
  const std::vector<float> times = nft_training_times(o, B, step);
  const int K = o.times_per_sample, rows = B * K;
  backend_.fill(grads_.get(), 0.0f, trained_count());
  if (B == 0) return apply_step(0.0, 0, o.optimizer);
  const double loss =
      noised_rows(host_x0, host_tokens, host_r, B, K, times.data(), o.micro_batch, o.seed, o.first_sample, step,
                  &old_params, kl ? &ref_params : nullptr, [&](int m, float share) {
                    return backend_.nft_loss(dout_.get(), out_.get(), v_old_.get(), kl ? v_ref_.get() : nullptr,
                                             target_.get(), t_.get(), r_.get(), m, D, o.loss, share);
                  });
  return apply_step(loss, rows, o.optimizer);
}

}  // namespace dnft
