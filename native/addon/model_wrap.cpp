#include "addon/model_wrap.h"

#include <cmath>
#include <new>
#include <string>

#include "addon/convert.h"
#include "addon/mpi.h"
#include "addon/promise_worker.h"
#include "core/device.h"
#include "cpu/thread_pool.h"

namespace dnft::addon {

namespace {

template <typename F>
auto guard(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const dnft::Error& e) {
    throw_js_error(env, e);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "out of memory: the native allocation of this call failed");
  }
}

// Runs `body` on the model the way every native call on it runs: serialised with its other calls, on its device
// (cudaSetDevice on this thread), and finished (its stream synchronised, faults reported) before returning.
template <typename F>
void on_model(Model& model, F&& body) {
  const cpu::PoolUse pool;
  std::lock_guard<std::mutex> lock(model.mutex());
  model.backend().activate();
  body();
  model.backend().synchronize();
}

// An optional parameter-set name ('theta' by default).
ParamSet param_set_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return ParamSet::kTheta;
  const std::string name = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  for (int i = 0; i < kParamSetCount; ++i) {
    if (name == param_set_name(static_cast<ParamSet>(i))) return static_cast<ParamSet>(i);
  }
  throw Napi::RangeError::New(info.Env(), "parameter set must be 'theta', 'old', 'ref' or 'ema', got '" + name + "'");
}

Napi::Value step_stats_to(Napi::Env env, const StepStats& stats) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", stats.loss);
  result.Set("gradNorm", stats.grad_norm);
  result.Set("lr", stats.lr);
  result.Set("step", Napi::Number::New(env, static_cast<double>(stats.step)));
  return result;
}

// Throws a RangeError unless every value is finite and >= 0 (AdamW's second moments).
void check_second_moments(Napi::Env env, const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!(v[i] >= 0.0f) || std::isinf(v[i])) {
      throw Napi::RangeError::New(env, "v must hold finite values >= 0 (AdamW second moments), got " +
                                           std::to_string(v[i]) + " at index " + std::to_string(i));
    }
  }
}

}  // namespace

template <Napi::Value (ModelWrap::*method)(const Napi::CallbackInfo&)>
Napi::Value ModelWrap::Live(const Napi::CallbackInfo& info) {
  if (!model_) throw make_js_error(info.Env(), "the native model has been released", "DNFT_DISPOSED");
  return (this->*method)(info);
}

void check_array_size(Napi::Env env, double count, const char* what) {
  if (count * 4.0 > kMaxArrayBytes) {
    throw Napi::RangeError::New(env, std::string(what) + " would need " + std::to_string(count * 4.0 / (1 << 20)) +
                                         " MiB, above the limit of 2048 MiB for one array; use smaller batches");
  }
}

Napi::Array layout_to(Napi::Env env, const std::vector<ParamSpec>& layout) {
  Napi::Array result = Napi::Array::New(env, layout.size());
  for (size_t i = 0; i < layout.size(); ++i) {
    const ParamSpec& p = layout[i];
    Napi::Object entry = Napi::Object::New(env);
    Napi::Array shape = Napi::Array::New(env, p.shape.size());
    for (size_t d = 0; d < p.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(p.shape[d])));
    entry.Set("name", p.name);
    entry.Set("shape", shape);
    entry.Set("offset", Napi::Number::New(env, static_cast<double>(p.offset)));
    entry.Set("size", Napi::Number::New(env, static_cast<double>(p.size)));
    entry.Set("decay", p.decay);
    result.Set(i, entry);
  }
  return result;
}

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Layout>>("layout"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Config>>("config"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::ParamCount>>("paramCount"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Step>>("step"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GetDevice>>("device"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GetPrecision>>("precision"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GetParams>>("getParams"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::SetParams>>("setParams"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::HasParams>>("hasParams"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::AllocatedFloats>>("allocatedFloats"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::CopyParams>>("copyParams"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::BlendParams>>("blendParams"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::HasOptimizerState>>("hasOptimizerState"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GetOptimizerState>>("getOptimizerState"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::SetOptimizerState>>("setOptimizerState"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::ResetOptimizer>>("resetOptimizer"),
                         InstanceMethod<&ModelWrap::Release>("release"),
                         InstanceMethod<&ModelWrap::Released>("released"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Velocity>>("velocity"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::ForwardBackward>>("forwardBackward"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::FlowMatchingStep>>("flowMatchingStep"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Sample>>("sample"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::NftStep>>("nftStep"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GrpoStep>>("grpoStep"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::AwmStep>>("awmStep"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::DgpoStep>>("dgpoStep"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::EnableLora>>("enableLora"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::Lora>>("lora"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::GetAdapter>>("getAdapter"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::SetAdapter>>("setAdapter"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::MergeLora>>("mergeLora"),
                         InstanceMethod<&ModelWrap::Live<&ModelWrap::SetDistributed>>("setDistributed"),
                     });
}

// new Model(config, seed, device = 'cpu', precision = 'tf32', gpu = 0): device 'cpu', 'cuda' or 'auto' (CUDA when
// available); `gpu`: the CUDA device's index
ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  const NetConfig config = net_config_from(object_arg(info, 0, "config"));
  const uint64_t seed = seed_arg(info, 1);
  const std::string device = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "cpu";
  const std::string precision =
      info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "tf32";
  const int gpu =
      info.Length() > 4 && !info[4].IsUndefined() ? static_cast<int>(integer_arg(info, 4, "gpu", 0, 1023)) : 0;
  guard(env, [&] {
    check_array_size(env, static_cast<double>(param_count(param_layout(config))), "one set of parameters");
    const Precision mode = parse_precision(precision);
    if (choose_device(device, device_info()) == DeviceChoice::kCuda) {
      backend_ = create_cuda_backend({gpu, mode});
      precision_ = mode;
    }
    Backend& backend = backend_ != nullptr ? *backend_ : cpu_backend();
    backend.activate();
    model_ = std::make_shared<Model>(backend, config, seed);
    backend.synchronize();
    return 0;
  });
}

Napi::Value ModelWrap::Layout(const Napi::CallbackInfo& info) { return layout_to(info.Env(), model_->net().layout()); }

Napi::Value ModelWrap::Config(const Napi::CallbackInfo& info) {
  return net_config_to(info.Env(), model_->net().config());
}

Napi::Value ModelWrap::ParamCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->net().param_count()));
}

Napi::Value ModelWrap::Step(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->step()));
}

// device() -> 'cpu' | 'cuda': the backend the model lives on
Napi::Value ModelWrap::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_->backend().name());
}

// precision() -> 'tf32' | 'fp32': the GEMM arithmetic (always 'fp32' on the CPU)
Napi::Value ModelWrap::GetPrecision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), precision_name(precision_));
}

// getParams(out, which?)
Napi::Value ModelWrap::GetParams(const Napi::CallbackInfo& info) {
  Napi::Float32Array out = float32_arg(info, 0, "params", model_->net().param_count());
  const ParamSet which = param_set_arg(info, 1);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->get_params(out.Data(), which); });
    return 0;
  });
  return info.Env().Undefined();
}

// setParams(src, which?)
Napi::Value ModelWrap::SetParams(const Napi::CallbackInfo& info) {
  Napi::Float32Array src = float32_arg(info, 0, "params", model_->net().param_count());
  const ParamSet which = param_set_arg(info, 1);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->set_params(src.Data(), which); });
    return 0;
  });
  return info.Env().Undefined();
}

// hasParams(which)
Napi::Value ModelWrap::HasParams(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), model_->has_params(param_set_arg(info, 0)));
}

// allocatedFloats() → { parameterSets, trainingState }: what the parameter sets and the gradient + AdamW moments hold
Napi::Value ModelWrap::AllocatedFloats(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("parameterSets", static_cast<double>(model_->parameter_set_floats()));
  out.Set("trainingState", static_cast<double>(model_->training_state_floats()));
  return out;
}

// copyParams(dst, src)
Napi::Value ModelWrap::CopyParams(const Napi::CallbackInfo& info) {
  const ParamSet dst = param_set_arg(info, 0), src = param_set_arg(info, 1);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->copy_params(dst, src); });
    return 0;
  });
  return info.Env().Undefined();
}

// blendParams(dst, eta, src): dst ← η·dst + (1 − η)·src
Napi::Value ModelWrap::BlendParams(const Napi::CallbackInfo& info) {
  const ParamSet dst = param_set_arg(info, 0), src = param_set_arg(info, 2);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "eta must be a number");
  const double eta = info[1].As<Napi::Number>().DoubleValue();
  if (!(eta >= 0.0 && eta <= 1.0)) throw Napi::RangeError::New(info.Env(), "eta must be in [0, 1]");
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->blend_params(dst, eta, src); });
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value ModelWrap::HasOptimizerState(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), model_->has_optimizer_state());
}

Napi::Value ModelWrap::GetOptimizerState(const Napi::CallbackInfo& info) {
  const size_t n = model_->trained_count();
  Napi::Float32Array m = float32_arg(info, 0, "m", n), v = float32_arg(info, 1, "v", n);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->get_optimizer_state(m.Data(), v.Data()); });
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value ModelWrap::SetOptimizerState(const Napi::CallbackInfo& info) {
  const size_t n = model_->trained_count();
  Napi::Float32Array m = float32_arg(info, 0, "m", n), v = float32_arg(info, 1, "v", n);
  const int64_t step = integer_arg(info, 2, "step", 0, kMaxStep);
  check_second_moments(info.Env(), v.Data(), n);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->set_optimizer_state(m.Data(), v.Data(), step); });
    return 0;
  });
  return info.Env().Undefined();
}

// release(): frees the native model and its memory now rather than at garbage collection (once the calls in flight
// end). Idempotent; every other method throws DNFT_DISPOSED afterwards.
Napi::Value ModelWrap::Release(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Released(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

Napi::Value ModelWrap::ResetOptimizer(const Napi::CallbackInfo& info) {
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->reset_optimizer(); });
    return 0;
  });
  return info.Env().Undefined();
}

int ModelWrap::batch_arg(const Napi::CallbackInfo& info, size_t index) {
  return static_cast<int>(integer_arg(info, index, "batch", 1, kMaxBatch));
}

int ModelWrap::step_batch_arg(const Napi::CallbackInfo& info, size_t index) {
  return static_cast<int>(integer_arg(info, index, "batch", model_->distributed() ? 0 : 1, kMaxBatch));
}

// setDistributed(on, nccl = false): the model's steps sum gradients and statistics over the MPI ranks (mpiOpen
// first), or not. With `nccl` (a model on the GPU; every rank at once) the gradient is summed in device memory by
// NCCL, else through host memory by MPI.
Napi::Value ModelWrap::SetDistributed(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBoolean() || (info.Length() > 1 && !info[1].IsBoolean())) {
    throw Napi::TypeError::New(info.Env(), "setDistributed(on: boolean, nccl?: boolean)");
  }
  const bool on = info[0].As<Napi::Boolean>().Value();
  const bool nccl = info.Length() > 1 && info[1].As<Napi::Boolean>().Value();
  guard(info.Env(), [&] {
    on_model(*model_, [&] {
      std::shared_ptr<Communicator> communicator;
      if (on) communicator = nccl ? nccl_communicator(model_->backend()) : mpi_communicator(backend_ == nullptr);
      model_->set_communicator(communicator);
    });
    return 0;
  });
  return info.Env().Undefined();
}

// velocity(x, t, tokens, batch, which?) -> Promise<Float32Array (B, D)>
Napi::Value ModelWrap::Velocity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = batch_arg(info, 3);
  Napi::Float32Array x = float32_arg(info, 0, "x", static_cast<size_t>(B) * c.data_dim);
  Napi::Float32Array t = float32_arg(info, 1, "t", B);
  Napi::Int32Array tokens = int32_arg(info, 2, "cond", static_cast<size_t>(B) * c.cond_slots);
  const ParamSet which = param_set_arg(info, 4);
  check_array_size(env, static_cast<double>(B) * c.data_dim, "the velocities");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(B) * c.data_dim);
  std::shared_ptr<Model> model = model_;
  const float *xp = x.Data(), *tp = t.Data();
  const int32_t* tokp = tokens.Data();
  float* outp = out.Data();
  return PromiseWorker::Run(
      env, {out, Value(), x, t, tokens},
      [=] { on_model(*model, [&] { model->velocity(which, xp, tp, tokp, B, outp); }); },
      [](Napi::Env, const std::vector<Napi::Value>& kept) { return kept[0]; });
}

// forwardBackward(x, t, tokens, dout, batch) -> Promise<{ out, dx, grads }>
Napi::Value ModelWrap::ForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = batch_arg(info, 4);
  const size_t BD = static_cast<size_t>(B) * c.data_dim;
  Napi::Float32Array x = float32_arg(info, 0, "x", BD);
  Napi::Float32Array t = float32_arg(info, 1, "t", B);
  Napi::Int32Array tokens = int32_arg(info, 2, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Float32Array dout = float32_arg(info, 3, "dout", BD);
  check_array_size(env, static_cast<double>(model_->net().param_count()), "grads");
  Napi::Float32Array out = Napi::Float32Array::New(env, BD), dx = Napi::Float32Array::New(env, BD);
  Napi::Float32Array grads = Napi::Float32Array::New(env, model_->trained_count());
  std::shared_ptr<Model> model = model_;
  const float *xp = x.Data(), *tp = t.Data(), *doutp = dout.Data();
  const int32_t* tokp = tokens.Data();
  float *outp = out.Data(), *dxp = dx.Data(), *gradp = grads.Data();
  Napi::Object result = Napi::Object::New(env);
  result.Set("out", out);
  result.Set("dx", dx);
  result.Set("grads", grads);
  return PromiseWorker::Run(
      env, {result, Value(), x, t, tokens, dout},
      [=] { on_model(*model, [&] { model->forward_backward(xp, tp, tokp, doutp, B, outp, dxp, gradp); }); },
      [](Napi::Env, const std::vector<Napi::Value>& kept) { return kept[0]; });
}

// flowMatchingStep(x0, tokens, batch, { seed, microBatch, condDropout, ...optimizer }) -> Promise<StepStats>
Napi::Value ModelWrap::FlowMatchingStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = step_batch_arg(info, 2);
  Napi::Float32Array x0 = float32_arg(info, 0, "x0", static_cast<size_t>(B) * c.data_dim);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Object o = object_arg(info, 3, "options");
  const FlowMatchingOptions options = flow_matching_options_from(o);
  std::shared_ptr<Model> model = model_;
  auto stats = std::make_shared<StepStats>();
  const float* x0p = x0.Data();
  const int32_t* tokp = tokens.Data();
  return PromiseWorker::Run(
      env, {Value(), x0, tokens},
      [=] { on_model(*model, [&] { *stats = model->flow_matching_step(x0p, tokp, B, options); }); },
      [stats](Napi::Env env, const std::vector<Napi::Value>&) { return step_stats_to(env, *stats); });
}

// sample(noise | null, tokens, batch, { solver, grid, cfgScale, cfgTMin, cfgTMax, seed, firstSample, chunk, ... },
//        trajectory: boolean, which?, means?: boolean)
//   -> Promise<{ x: Float32Array (B, D), trajectory: Float32Array (N + 1, B, D) | null, and for 'sde' logp (N, B)
//      and with means the stochastic steps' means (N, B, D) }>
Napi::Value ModelWrap::Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = batch_arg(info, 2);
  const size_t BD = static_cast<size_t>(B) * c.data_dim;
  const bool has_noise = info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined();
  Napi::Float32Array noise = has_noise ? float32_arg(info, 0, "noise", BD) : Napi::Float32Array::New(env, 0);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Object o = object_arg(info, 3, "options");
  const bool with_trajectory = info.Length() > 4 && info[4].ToBoolean().Value();
  const ParamSet which = param_set_arg(info, 5);
  SampleOptions options = guard(env, [&] { return sample_options_from(o); });
  check_array_size(env, static_cast<double>(BD), "the samples");
  if (with_trajectory) check_array_size(env, static_cast<double>(options.grid.size()) * BD, "the trajectory");
  if (options.solver == SolverKind::kSde) {
    check_array_size(env, static_cast<double>(options.grid.size() - 1) * B, "the log-probabilities");
  }
  const bool with_means = info.Length() > 6 && info[6].ToBoolean().Value();
  if (with_means && options.solver != SolverKind::kSde) throw Napi::TypeError::New(env, "only 'sde' has step means");
  if (with_means) check_array_size(env, static_cast<double>(options.grid.size() - 1) * BD, "the step means");

  Napi::Float32Array out = Napi::Float32Array::New(env, BD);
  Napi::Object result = Napi::Object::New(env);
  result.Set("x", out);
  float* trajectory = nullptr;
  if (with_trajectory) {
    Napi::Float32Array array = Napi::Float32Array::New(env, options.grid.size() * BD);
    trajectory = array.Data();
    result.Set("trajectory", array);
  } else {
    result.Set("trajectory", env.Null());
  }
  float* logp = nullptr;
  if (options.solver == SolverKind::kSde) {
    Napi::Float32Array array = Napi::Float32Array::New(env, (options.grid.size() - 1) * static_cast<size_t>(B));
    logp = array.Data();
    result.Set("logp", array);
  }
  float* means = nullptr;
  if (with_means) {
    Napi::Float32Array array = Napi::Float32Array::New(env, (options.grid.size() - 1) * BD);
    means = array.Data();
    result.Set("means", array);
  }
  std::shared_ptr<Model> model = model_;
  const float* noisep = has_noise ? noise.Data() : nullptr;
  const int32_t* tokp = tokens.Data();
  float* outp = out.Data();
  return PromiseWorker::Run(
      env, {result, Value(), noise, tokens},
      [=] { on_model(*model, [&] { model->sample(which, noisep, tokp, B, options, outp, trajectory, logp, means); }); },
      [](Napi::Env, const std::vector<Napi::Value>& kept) { return kept[0]; });
}

// nftStep(x0, tokens, r, batch, options) -> Promise<StepStats>
Napi::Value ModelWrap::NftStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = step_batch_arg(info, 3);
  Napi::Float32Array x0 = float32_arg(info, 0, "x0", static_cast<size_t>(B) * c.data_dim);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Float32Array r = float32_arg(info, 2, "r", B);
  const NftStepOptions options = nft_step_options_from(object_arg(info, 4, "options"));
  std::shared_ptr<Model> model = model_;
  auto stats = std::make_shared<StepStats>();
  const float *x0p = x0.Data(), *rp = r.Data();
  const int32_t* tokp = tokens.Data();
  return PromiseWorker::Run(
      env, {Value(), x0, tokens, r},
      [=] { on_model(*model, [&] { *stats = model->nft_step(x0p, tokp, rp, B, options); }); },
      [stats](Napi::Env env, const std::vector<Napi::Value>&) { return step_stats_to(env, *stats); });
}

// grpoStep(trajectory (N + 1, B, D), tokens, advantages (B), logpOld (N, B), batch, options, meansOld?)
//   -> Promise<StepStats & { clipFraction, approxKl, ratioMean }>; meansOld (N, B, D) is GRPO-Guard's (options.guard).
Napi::Value ModelWrap::GrpoStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = step_batch_arg(info, 4);
  const GrpoStepOptions options = guard(env, [&] { return grpo_step_options_from(object_arg(info, 5, "options")); });
  const size_t N = options.grid.size() - 1;
  Napi::Float32Array trajectory = float32_arg(info, 0, "trajectory", (N + 1) * B * c.data_dim);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Float32Array advantages = float32_arg(info, 2, "advantages", B);
  Napi::Float32Array logp_old = float32_arg(info, 3, "logpOld", N * B);
  Napi::Float32Array means_old =
      options.guard ? float32_arg(info, 6, "meansOld", N * B * c.data_dim) : Napi::Float32Array::New(env, 0);
  std::shared_ptr<Model> model = model_;
  auto stats = std::make_shared<GrpoStepStats>();
  const float *trajp = trajectory.Data(), *advp = advantages.Data(), *logpp = logp_old.Data();
  const float* meansp = options.guard ? means_old.Data() : nullptr;
  const int32_t* tokp = tokens.Data();
  return PromiseWorker::Run(
      env, {Value(), trajectory, tokens, advantages, logp_old, means_old},
      [=] { on_model(*model, [&] { *stats = model->grpo_step(trajp, tokp, advp, logpp, B, options, meansp); }); },
      [stats](Napi::Env env, const std::vector<Napi::Value>&) {
        Napi::Object result = step_stats_to(env, stats->step).As<Napi::Object>();
        result.Set("clipFraction", stats->clip_fraction);
        result.Set("approxKl", stats->approx_kl);
        result.Set("ratioMean", stats->ratio_mean);
        return result;
      });
}

// awmStep(x0, tokens, advantages, batch, options) -> Promise<StepStats & { fm, logQ, kl, emaKl }>
Napi::Value ModelWrap::AwmStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = step_batch_arg(info, 3);
  Napi::Float32Array x0 = float32_arg(info, 0, "x0", static_cast<size_t>(B) * c.data_dim);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Float32Array advantages = float32_arg(info, 2, "advantages", B);
  const AwmStepOptions options = guard(env, [&] { return awm_step_options_from(object_arg(info, 4, "options")); });
  std::shared_ptr<Model> model = model_;
  auto stats = std::make_shared<AwmStepStats>();
  const float *x0p = x0.Data(), *ap = advantages.Data();
  const int32_t* tokp = tokens.Data();
  return PromiseWorker::Run(
      env, {Value(), x0, tokens, advantages},
      [=] { on_model(*model, [&] { *stats = model->awm_step(x0p, tokp, ap, B, options); }); },
      [stats](Napi::Env env, const std::vector<Napi::Value>&) {
        Napi::Object result = step_stats_to(env, stats->step).As<Napi::Object>();
        result.Set("fm", stats->means.fm);
        result.Set("logQ", stats->means.log_q);
        result.Set("kl", stats->means.kl);
        result.Set("emaKl", stats->means.ema);
        return result;
      });
}

// dgpoStep(x0, tokens, advantages, groupIds, batch, options) -> Promise<StepStats & { clipFraction, weightMean }>
Napi::Value ModelWrap::DgpoStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const NetConfig& c = model_->net().config();
  const int B = step_batch_arg(info, 4);
  Napi::Float32Array x0 = float32_arg(info, 0, "x0", static_cast<size_t>(B) * c.data_dim);
  Napi::Int32Array tokens = int32_arg(info, 1, "cond", static_cast<size_t>(B) * c.cond_slots);
  Napi::Float32Array advantages = float32_arg(info, 2, "advantages", B);
  Napi::Int32Array groups = int32_arg(info, 3, "groupIds", B);
  const DgpoStepOptions options = guard(env, [&] { return dgpo_step_options_from(object_arg(info, 5, "options")); });
  std::shared_ptr<Model> model = model_;
  auto stats = std::make_shared<DgpoStepStats>();
  const float *x0p = x0.Data(), *ap = advantages.Data();
  const int32_t *tokp = tokens.Data(), *gp = groups.Data();
  return PromiseWorker::Run(
      env, {Value(), x0, tokens, advantages, groups},
      [=] { on_model(*model, [&] { *stats = model->dgpo_step(x0p, tokp, ap, gp, B, options); }); },
      [stats](Napi::Env env, const std::vector<Napi::Value>&) {
        Napi::Object result = step_stats_to(env, stats->step).As<Napi::Object>();
        result.Set("clipFraction", stats->clip_fraction);
        result.Set("weightMean", stats->weight_mean);
        return result;
      });
}

// enableLora({ rank, alpha, targets, init }, seed)
Napi::Value ModelWrap::EnableLora(const Napi::CallbackInfo& info) {
  const LoraConfig config = lora_config_from(object_arg(info, 0, "lora"));
  const uint64_t seed = seed_arg(info, 1);
  guard(info.Env(), [&] {
    check_array_size(info.Env(), static_cast<double>(LoraLayout(config, model_->net().layout()).param_count()),
                     "the adapter");
    on_model(*model_, [&] { model_->enable_lora(config, seed); });
    return 0;
  });
  return info.Env().Undefined();
}

// lora() -> { rank, alpha, init, targets, layout } or null
Napi::Value ModelWrap::Lora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!model_->has_lora()) return env.Null();
  const LoraLayout& lora = model_->lora();
  Napi::Object result = Napi::Object::New(env);
  result.Set("rank", lora.config().rank);
  result.Set("alpha", lora.config().alpha);
  result.Set("init", lora.config().init == LoraInit::kKaiming ? "kaiming" : "gaussian");
  Napi::Array targets = Napi::Array::New(env, lora.config().targets.size());
  for (size_t i = 0; i < lora.config().targets.size(); ++i) targets.Set(i, lora.config().targets[i]);
  result.Set("targets", targets);
  result.Set("layout", layout_to(env, lora.layout()));
  return result;
}

// getAdapter(out, which?)
Napi::Value ModelWrap::GetAdapter(const Napi::CallbackInfo& info) {
  const size_t n = model_->has_lora() ? model_->lora().param_count() : 0;
  Napi::Float32Array out = float32_arg(info, 0, "adapter", n);
  const ParamSet which = param_set_arg(info, 1);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->get_adapter(out.Data(), which); });
    return 0;
  });
  return info.Env().Undefined();
}

// setAdapter(src, which?)
Napi::Value ModelWrap::SetAdapter(const Napi::CallbackInfo& info) {
  const size_t n = model_->has_lora() ? model_->lora().param_count() : 0;
  Napi::Float32Array src = float32_arg(info, 0, "adapter", n);
  const ParamSet which = param_set_arg(info, 1);
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->set_adapter(src.Data(), which); });
    return 0;
  });
  return info.Env().Undefined();
}

// mergeLora(): θ ← θ + (alpha/rank)·B·A, adapters dropped
Napi::Value ModelWrap::MergeLora(const Napi::CallbackInfo& info) {
  guard(info.Env(), [&] {
    on_model(*model_, [&] { model_->merge_lora(); });
    return 0;
  });
  return info.Env().Undefined();
}

}  // namespace dnft::addon
