#include "core/model.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/math/philox.h"
#include "core/model_internal.h"

namespace dnft {

const char* param_set_name(ParamSet which) {
  static const char* const names[kParamSetCount] = {"theta", "old", "ref", "ema"};
  return names[static_cast<int>(which)];
}

Model::Model(Backend& backend, const NetConfig& config, uint64_t seed)
    : backend_(backend),
      net_(make_network(config)),
      workspace_(net_->make_workspace()),
      grads_(backend, net_->param_count()) {
  sets_[0] = Buffer<float>(backend_, net_->param_count());
  net_->init_params(backend_, sets_[0].get(), seed);
  backend_.fill(grads_.get(), 0.0f, net_->param_count());
}

float* Model::params(ParamSet which) const {
  const Buffer<float>& set = sets_[static_cast<int>(which)];
  if (set.empty()) {
    throw Error(Error::Kind::kState, std::string("the model has no '") + param_set_name(which) + "' parameters");
  }
  return set.get();
}

float* Model::trained(ParamSet which) const {
  if (!has_lora()) return params(which);
  const Buffer<float>& set = adapters_[static_cast<int>(which)];
  if (set.empty()) {
    throw Error(Error::Kind::kState, std::string("the model has no '") + param_set_name(which) + "' adapter set");
  }
  return set.get();
}

NetParams Model::weights(ParamSet which) const {
  return has_lora() ? NetParams(params(), trained(which)) : NetParams(params(which));
}

NetGrads Model::gradients() const { return has_lora() ? NetGrads(nullptr, grads_.get()) : NetGrads(grads_.get()); }

const LoraLayout& Model::lora() const {
  if (!has_lora()) throw Error(Error::Kind::kState, "the model has no LoRA adapters");
  return *net_->lora();
}

void Model::enable_lora(const LoraConfig& config, uint64_t seed) {
  auto layout = std::make_unique<LoraLayout>(config, net_->layout());
  const size_t n = layout->param_count();
  Buffer<float> adapter(backend_, n), grads(backend_, n);
  layout->init_params(backend_, adapter.get(), seed);
  backend_.fill(grads.get(), 0.0f, n);
  for (int s = 0; s < kParamSetCount; ++s) adapters_[s] = Buffer<float>();
  for (int s = 1; s < kParamSetCount; ++s) sets_[s] = Buffer<float>();
  adapters_[0] = std::move(adapter);
  grads_ = std::move(grads);
  reset_optimizer();
  net_->set_lora(std::move(layout));
}

void Model::get_adapter(float* host, ParamSet which) const {
  backend_.copy_to_host(host, trained(which), lora().param_count() * sizeof(float));
}

void Model::set_adapter(const float* host, ParamSet which) {
  if (which == ParamSet::kTheta) update_sums_.reset();
  Buffer<float>& set = adapters_[static_cast<int>(which)];
  ensure(set, backend_, lora().param_count());
  set.upload(host, lora().param_count());
}

void Model::merge_lora() {
  Buffer<float> grads(backend_, net_->param_count());
  backend_.fill(grads.get(), 0.0f, net_->param_count());
  lora().merge(backend_, params(), trained(ParamSet::kTheta));
  for (Buffer<float>& set : adapters_) set = Buffer<float>();
  grads_ = std::move(grads);
  reset_optimizer();
  net_->set_lora(nullptr);
}

void Model::get_params(float* host, ParamSet which) const {
  backend_.copy_to_host(host, params(which), net_->param_count() * sizeof(float));
}

void Model::set_params(const float* host, ParamSet which) {
  if (has_lora() && which != ParamSet::kTheta) {
    throw Error(Error::Kind::kState, std::string("with LoRA adapters '") + param_set_name(which) +
                                         "' is an adapter set: set it with set_adapter");
  }
  if (which == ParamSet::kTheta) update_sums_.reset();
  Buffer<float>& set = sets_[static_cast<int>(which)];
  ensure(set, backend_, net_->param_count());
  set.upload(host, net_->param_count());
}

void Model::copy_params(ParamSet dst, ParamSet src) {
  const float* from = trained(src);
  if (dst == ParamSet::kTheta) update_sums_.reset();
  Buffer<float>& set = (has_lora() ? adapters_ : sets_)[static_cast<int>(dst)];
  ensure(set, backend_, trained_count());
  if (dst != src) backend_.copy(set.get(), from, trained_count() * sizeof(float));
}

void Model::blend_params(ParamSet dst, double eta, ParamSet src) {
  float* to = trained(dst);
  if (dst == ParamSet::kTheta) update_sums_.reset();
  backend_.lincomb(to, trained_count(), static_cast<float>(eta), to, static_cast<float>(1.0 - eta), trained(src), 0.0f,
                   nullptr);
}

void Model::get_optimizer_state(float* host_m, float* host_v) const {
  if (m_.empty()) throw Error(Error::Kind::kState, "the model has no optimiser state yet");
  m_.download(host_m, trained_count());
  v_.download(host_v, trained_count());
}

void Model::set_optimizer_state(const float* host_m, const float* host_v, int64_t step) {
  const size_t n = trained_count();
  update_sums_.reset();
  ensure(m_, backend_, n);
  ensure(v_, backend_, n);
  m_.upload(host_m, n);
  v_.upload(host_v, n);
  step_ = step;
}

void Model::reset_optimizer() {
  m_ = Buffer<float>();
  v_ = Buffer<float>();
  update_sums_.reset();
  step_ = 0;
}

void Model::stage_inputs(const float* host_x, const float* host_t, const int32_t* host_tokens, int B) {
  const NetConfig& c = net_->config();
  const size_t BD = static_cast<size_t>(B) * c.data_dim;
  ensure(x_, backend_, BD);
  ensure(out_, backend_, BD);
  ensure(target_, backend_, BD);
  ensure(dout_, backend_, BD);
  ensure(xt_, backend_, BD);
  ensure(t_, backend_, static_cast<size_t>(B));
  ensure(tokens_, backend_, static_cast<size_t>(B) * c.cond_slots);
  if (host_x != nullptr) x_.upload(host_x, BD);
  if (host_t != nullptr) t_.upload(host_t, static_cast<size_t>(B));
  tokens_.upload(host_tokens, static_cast<size_t>(B) * c.cond_slots);
}

void Model::velocity(ParamSet which, const float* host_x, const float* host_t, const int32_t* host_tokens, int B,
                     float* host_out) {
  const NetParams p = weights(which);
  stage_inputs(host_x, host_t, host_tokens, B);
  net_->forward(backend_, *workspace_, p, x_.get(), t_.get(), tokens_.get(), B, out_.get());
  out_.download(host_out, static_cast<size_t>(B) * net_->config().data_dim);
}

void Model::forward_backward(const float* host_x, const float* host_t, const int32_t* host_tokens,
                             const float* host_dout, int B, float* host_out, float* host_dx, float* host_grads) {
  const size_t BD = static_cast<size_t>(B) * net_->config().data_dim;
  stage_inputs(host_x, host_t, host_tokens, B);
  dout_.upload(host_dout, BD);
  net_->forward(backend_, *workspace_, weights(), x_.get(), t_.get(), tokens_.get(), B, out_.get());
  backend_.fill(grads_.get(), 0.0f, trained_count());
  net_->backward(backend_, *workspace_, weights(), gradients(), x_.get(), tokens_.get(), dout_.get(), B, target_.get());
  out_.download(host_out, BD);
  target_.download(host_dx, BD);
  grads_.download(host_grads, trained_count());
}

void Model::sample(ParamSet which, const float* host_noise, const int32_t* host_tokens, int B,
                   const SampleOptions& options, float* host_out, float* host_trajectory, float* host_logp,
                   float* host_means) {
  sampler_.run(weights(which), host_noise, host_tokens, B, options, host_out, host_trajectory, host_logp, host_means);
}

StepStats Model::flow_matching_step(const float* host_x0, const int32_t* host_tokens, int B,
                                    const FlowMatchingOptions& o) {
  const NetConfig& c = net_->config();
  const int64_t step = step_ + 1;
  const size_t n = trained_count(), D = c.data_dim, L = c.cond_slots;

  // Times and condition dropout are drawn on the host (B values), so both backends see identical inputs.
  backend_.fill(grads_.get(), 0.0f, n);
  if (B == 0) return apply_step(0.0, 0, o.optimizer);
  const uint64_t first = static_cast<uint64_t>(o.first_sample);
  std::vector<float> t(B);
  std::vector<int32_t> tokens(host_tokens, host_tokens + static_cast<size_t>(B) * L);
  for (int b = 0; b < B; ++b) {
    t[b] = philox_uniform(o.seed, kStreamTime, step_offset(step) + first + b);
    if (o.cond_dropout > 0 && philox_uniform(o.seed, kStreamDropout, step_offset(step) + first + b) < o.cond_dropout) {
      std::fill(tokens.begin() + b * L, tokens.begin() + (b + 1) * L, 0);
    }
  }
  stage_inputs(host_x0, t.data(), tokens.data(), B);

  const int micro = o.micro_batch > 0 && o.micro_batch < B ? o.micro_batch : B;
  double loss = 0.0;
  for (int start = 0; start < B; start += micro) {
    const int rows = std::min(micro, B - start);
    const size_t at = static_cast<size_t>(start) * D, count = static_cast<size_t>(rows) * D;
    float* x0 = x_.get() + at;
    float* xt = xt_.get() + at;
    float* dout = dout_.get() + at;
    float* target = target_.get() + at;
    float* out = out_.get() + at;
    const int32_t* tok = tokens_.get() + static_cast<size_t>(start) * L;
    backend_.interpolate(xt, target, x0, t_.get() + start, rows, static_cast<int>(D), o.seed,
                         step_offset(step) + (first + start) * D);
    net_->forward(backend_, *workspace_, weights(), xt, t_.get() + start, tok, rows, out);
    // The batch loss is the mean over all B·D elements: weight each micro-batch by its share of the rows.
    const float share = static_cast<float>(rows) / static_cast<float>(B);
    loss += share * backend_.mse_loss(dout, out, target, count, share);
    net_->backward(backend_, *workspace_, weights(), gradients(), xt, tok, dout, rows, nullptr);
  }
  return apply_step(loss, B, o.optimizer);
}

StepStats Model::apply_step(double loss, double rows, const OptimizerConfig& optimizer, GrpoStats* grpo) {
  const size_t n = trained_count();
  if (communicator_ != nullptr) {
    double sums[5] = {rows, rows * loss, 0, 0, 0};
    if (grpo != nullptr) {
      sums[2] = grpo->clipped;
      sums[3] = grpo->log_ratio_sq;
      sums[4] = grpo->ratio_sum;
    }
    communicator_->sum(sums, 5);
    if (grpo != nullptr) *grpo = {sums[2], sums[4], sums[3]};
    // Every rank sees the same sums, so a non-finite loss anywhere stops the step on all of them.
    loss = sums[0] > 0 ? sums[1] / sums[0] : 0.0;
    if (!std::isfinite(loss)) throw Error(Error::Kind::kNumeric, "the loss is not finite; the step was not applied");
    // Each rank's gradient is the mean over its rows: weighted by its share, their sum is the mean over all rows.
    if (rows != sums[0]) {
      const float share = sums[0] > 0 ? static_cast<float>(rows / sums[0]) : 0.0f;
      backend_.lincomb(grads_.get(), n, share, grads_.get(), 0.0f, grads_.get(), 0.0f, nullptr);
    }
    communicator_->sum(backend_, grads_.get(), n);
    rows = sums[0];
  }
  if (!std::isfinite(loss)) throw Error(Error::Kind::kNumeric, "the loss is not finite; the step was not applied");
  const bool first = m_.empty();
  const int64_t step = step_ + 1;
  OptimizerResult r{};
  try {
    if (first) {
      m_ = Buffer<float>(backend_, n);
      v_ = Buffer<float>(backend_, n);
      backend_.fill(m_.get(), 0.0f, n);
      backend_.fill(v_.get(), 0.0f, n);
    }
    r = adamw_step(backend_, trained_layout(), trained(ParamSet::kTheta), m_.get(), v_.get(), grads_.get(), n, 1.0,
                   optimizer, step, update_backup_, update_sums_);
  } catch (...) {
    if (first) {  // no optimiser state, as before the failed first step
      m_ = Buffer<float>();
      v_ = Buffer<float>();
    }
    throw;
  }
  step_ = step;
  return {loss, r.grad_norm, r.lr, step, rows};
}

}  // namespace dnft
