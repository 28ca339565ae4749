// Module entry: the Model class and the stateless functions. Argument checks and conversion only; no math here.
#include <napi.h>

#include <algorithm>
#include <vector>

#include "addon/convert.h"
#include "addon/model_wrap.h"
#include "addon/mpi.h"
#include "addon/promise_worker.h"
#include "core/device.h"
#include "core/math/philox.h"
#include "core/math/sde.h"
#include "cpu/fma_peak.h"
#include "cpu/gemm.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"

namespace dnft::addon {

namespace {

// An optional boolean argument `cps`: the CPS step rather than FlowGRPO's SDE.
SdeKind kind_arg(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && info[index].ToBoolean().Value() ? SdeKind::kCps : SdeKind::kFlowGrpo;
}

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DeviceInfo device = device_info();
  Napi::Object result = Napi::Object::New(env);
  result.Set("cuda", device.cuda_available);
  result.Set("compiledWithCuda", device.compiled_with_cuda);
  result.Set("deviceCount", device.device_count);
  if (!device.device_name.empty()) result.Set("device", device.device_name);
  if (!device.reason.empty()) result.Set("cudaUnavailableReason", device.reason);
  if (device.compiled_with_cuda) {
    result.Set("cudaRuntime", cuda_version_name(device.runtime_version));
    result.Set("requiredDriver", device.required_driver);
    if (device.driver_cuda_version > 0) result.Set("driverCudaVersion", cuda_version_name(device.driver_cuda_version));
    if (!device.driver_version.empty()) result.Set("driverVersion", device.driver_version);
  }
  result.Set("threads", cpu::num_threads());
  result.Set("cpuKernels", cpu::cpu_kernels_name(cpu::cpu_kernels()));
  result.Set("sgemmKernel", cpu::sgemm_kernel_name());
  return result;
}

// fmaPeak(kernels, threads, seconds): the FMA throughput in FLOP/s (cpu/fma_peak.h), for the bench.
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cpu::CpuKernels kernels;
  if (info.Length() < 1 || !info[0].IsString() ||
      !cpu::parse_cpu_kernels(info[0].As<Napi::String>().Utf8Value().c_str(), &kernels)) {
    throw Napi::TypeError::New(env, "kernels must be 'avx2' or 'avx512'");
  }
  const int threads = static_cast<int>(integer_arg(info, 1, "threads", 1, 1024));
  if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "seconds must be a number");
  const double seconds = info[2].As<Napi::Number>().DoubleValue();
  if (!(seconds > 0 && seconds <= 60)) throw Napi::RangeError::New(env, "seconds must be in (0, 60]");
  try {
    return Napi::Number::New(env, cpu::fma_peak_flops(kernels, threads, seconds));
  } catch (const dnft::Error& e) {
    throw_js_error(env, e);
  }
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int threads = static_cast<int>(integer_arg(info, 0, "threads", 1, 1024));
  try {
    cpu::set_num_threads(threads);
  } catch (const dnft::Error& e) {
    throw_js_error(info.Env(), e);
  }
  return info.Env().Undefined();
}

// limits() -> { maxBatch, maxArrayBytes, maxStep }: the bounds every call checks before allocating
// (docs/reliability.md).
Napi::Value Limits(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("maxBatch", kMaxBatch);
  result.Set("maxArrayBytes", kMaxArrayBytes);
  result.Set("maxStep", static_cast<double>(kMaxStep));
  return result;
}

// paramLayout(config) -> the flat parameter layout of a config, computed without allocating a model.
Napi::Value ParamLayout(const Napi::CallbackInfo& info) {
  const NetConfig config = net_config_from(object_arg(info, 0, "config"));
  try {
    return layout_to(info.Env(), param_layout(config));
  } catch (const dnft::Error& e) {
    throw_js_error(info.Env(), e);
  }
}

// loraLayout(config, { rank, alpha, init, targets }) -> the adapter layout (core/lora.h) of a config, without a model.
Napi::Value LoraLayoutOf(const Napi::CallbackInfo& info) {
  const NetConfig config = net_config_from(object_arg(info, 0, "config"));
  const LoraConfig lora = lora_config_from(object_arg(info, 1, "lora"));
  try {
    return layout_to(info.Env(), LoraLayout(lora, param_layout(config)).layout());
  } catch (const dnft::Error& e) {
    throw_js_error(info.Env(), e);
  }
}

// loraModules(config) -> the module names inside a block that LoRA can target (core/lora.h), in layout order.
Napi::Value LoraModules(const Napi::CallbackInfo& info) {
  const NetConfig config = net_config_from(object_arg(info, 0, "config"));
  try {
    const std::vector<std::string> modules = lora_modules(param_layout(config));
    Napi::Array result = Napi::Array::New(info.Env(), modules.size());
    for (size_t i = 0; i < modules.size(); ++i) result.Set(static_cast<uint32_t>(i), modules[i]);
    return result;
  } catch (const dnft::Error& e) {
    throw_js_error(info.Env(), e);
  }
}

// philox4x32(counter: Uint32Array(4), key: Uint32Array(2)) -> Uint32Array(4): the raw block function.
Napi::Value Philox4x32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) throw Napi::TypeError::New(env, "expected Uint32Arrays");
  Napi::Uint32Array counter = info[0].As<Napi::Uint32Array>(), key = info[1].As<Napi::Uint32Array>();
  if (counter.ElementLength() != 4 || key.ElementLength() != 2) {
    throw Napi::RangeError::New(env, "counter must have 4 words and key 2");
  }
  const PhiloxBlock out = philox4x32_10({{counter[0], counter[1], counter[2], counter[3]}}, key[0], key[1]);
  Napi::Uint32Array result = Napi::Uint32Array::New(env, 4);
  for (size_t i = 0; i < 4; ++i) result[i] = out.v[i];
  return result;
}

// randomFill(out: Float32Array, seed, stream, offset, kind: 'normal' | 'uniform')
Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;  // these run on the global pool, on the calling thread
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "out must be a Float32Array");
  }
  Napi::Float32Array out = info[0].As<Napi::Float32Array>();
  const uint64_t seed = seed_arg(info, 1);
  const auto stream = static_cast<uint32_t>(integer_arg(info, 2, "stream", 0, 0xffffffffLL));
  const auto offset = static_cast<uint64_t>(integer_arg(info, 3, "offset", 0, (int64_t{1} << 53) - 1));
  const std::string kind = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
  if (kind == "normal") {
    cpu_backend().fill_normal(out.Data(), out.ElementLength(), seed, stream, offset, 1.0f);
  } else if (kind == "uniform") {
    cpu_backend().fill_uniform(out.Data(), out.ElementLength(), seed, stream, offset, 0.0f, 1.0f);
  } else {
    throw Napi::RangeError::New(env, "kind must be 'normal' or 'uniform'");
  }
  return env.Undefined();
}

// The element count of the typed array argument `index`, whose length sets a call's batch.
size_t length_of(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  }
  return info[index].As<Napi::TypedArray>().ElementLength();
}

// interpolate(x0: Float32Array (B*D), t: Float32Array (B), D, seed, offset) -> { xt, target }
Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 2, "dim", 1, 1 << 24));
  const size_t B = length_of(info, 1, "t");
  Napi::Float32Array x0 = float32_arg(info, 0, "x0", B * D);
  Napi::Float32Array t = float32_arg(info, 1, "t", B);
  const uint64_t seed = seed_arg(info, 3);
  const auto offset = static_cast<uint64_t>(integer_arg(info, 4, "offset", 0, (int64_t{1} << 53) - 1));
  Napi::Float32Array xt = Napi::Float32Array::New(env, B * D), target = Napi::Float32Array::New(env, B * D);
  cpu_backend().interpolate(xt.Data(), target.Data(), x0.Data(), t.Data(), static_cast<int>(B), D, seed, offset);
  Napi::Object result = Napi::Object::New(env);
  result.Set("xt", xt);
  result.Set("target", target);
  return result;
}

// nftLoss(vTheta, vOld, vRef | null, target, t, r, dim, params) -> { loss, grad }: the fused loss on the CPU backend.
Napi::Value NftLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 6, "dim", 1, 1 << 24));
  const size_t B = length_of(info, 4, "t");
  if (B == 0) throw Napi::RangeError::New(env, "the batch must not be empty");
  Napi::Float32Array v_theta = float32_arg(info, 0, "vTheta", B * D), v_old = float32_arg(info, 1, "vOld", B * D);
  const bool has_ref = !info[2].IsNull() && !info[2].IsUndefined();
  Napi::Float32Array v_ref = has_ref ? float32_arg(info, 2, "vRef", B * D) : Napi::Float32Array::New(env, 0);
  Napi::Float32Array target = float32_arg(info, 3, "target", B * D);
  Napi::Float32Array t = float32_arg(info, 4, "t", B), r = float32_arg(info, 5, "r", B);
  const NftLossParams params = nft_loss_params_from(object_arg(info, 7, "params"));
  if (params.kl_coef != 0.0f && !has_ref) throw Napi::TypeError::New(env, "vRef is required when klCoef is not 0");
  Napi::Float32Array grad = Napi::Float32Array::New(env, B * D);
  const double loss =
      cpu_backend().nft_loss(grad.Data(), v_theta.Data(), v_old.Data(), has_ref ? v_ref.Data() : nullptr, target.Data(),
                             t.Data(), r.Data(), static_cast<int>(B), D, params, 1.0f);
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", loss);
  result.Set("grad", grad);
  return result;
}

// sdeStep(x, v, noise, t, tNext, a, tFirst, cps) -> { mean, xNext, std, sigma }: one FlowGRPO SDE step (or, with
// cps, one CPS step) on the CPU.
Napi::Value SdeStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const size_t n = length_of(info, 0, "x");
  Napi::Float32Array x = float32_arg(info, 0, "x", n), v = float32_arg(info, 1, "v", n),
                     noise = float32_arg(info, 2, "noise", n);
  double numbers[4];
  const char* names[4] = {"t", "tNext", "a", "tFirst"};
  for (int i = 0; i < 4; ++i) {
    if (info.Length() <= static_cast<size_t>(3 + i) || !info[3 + i].IsNumber()) {
      throw Napi::TypeError::New(env, std::string(names[i]) + " must be a number");
    }
    numbers[i] = info[3 + i].As<Napi::Number>().DoubleValue();
  }
  const SdeCoefficients k = step_coefficients(kind_arg(info, 7), numbers[0], numbers[1], numbers[2], numbers[3]);
  Napi::Float32Array mean = Napi::Float32Array::New(env, n), x_next = Napi::Float32Array::New(env, n);
  Backend& be = cpu_backend();
  be.lincomb(mean.Data(), n, static_cast<float>(k.x_coef), x.Data(), static_cast<float>(k.v_coef), v.Data(), 0.0f,
             nullptr);
  be.lincomb(x_next.Data(), n, 1.0f, mean.Data(), static_cast<float>(k.std), noise.Data(), 0.0f, nullptr);
  Napi::Object result = Napi::Object::New(env);
  result.Set("mean", mean);
  result.Set("xNext", x_next);
  result.Set("std", static_cast<float>(k.std));
  result.Set("sigma", static_cast<float>(k.sigma));
  return result;
}

// sdeCoefficients(t, tNext, a, tFirst, cps) -> { xCoef, vCoef, std, sigma } as float32 values, as the kernels read
// them.
Napi::Value SdeCoefficientsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double numbers[4];
  for (int i = 0; i < 4; ++i) {
    if (info.Length() <= static_cast<size_t>(i) || !info[i].IsNumber()) {
      throw Napi::TypeError::New(env, "sdeCoefficients expects 4 numbers");
    }
    numbers[i] = info[i].As<Napi::Number>().DoubleValue();
  }
  const SdeCoefficients k = step_coefficients(kind_arg(info, 4), numbers[0], numbers[1], numbers[2], numbers[3]);
  Napi::Object result = Napi::Object::New(env);
  result.Set("xCoef", static_cast<float>(k.x_coef));
  result.Set("vCoef", static_cast<float>(k.v_coef));
  result.Set("std", static_cast<float>(k.std));
  result.Set("sigma", static_cast<float>(k.sigma));
  return result;
}

// sdeLogp(xNext, mean, std, dim, sum, cps) -> Float32Array (B)
Napi::Value SdeLogp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 3, "dim", 1, 1 << 24));
  const size_t B = length_of(info, 0, "xNext") / D;
  Napi::Float32Array x_next = float32_arg(info, 0, "xNext", B * D), mean = float32_arg(info, 1, "mean", B * D);
  if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "std must be a number");
  const float std = static_cast<float>(info[2].As<Napi::Number>().DoubleValue());
  Napi::Float32Array logp = Napi::Float32Array::New(env, B);
  cpu_backend().sde_logp(logp.Data(), x_next.Data(), mean.Data(), std, static_cast<int>(B), D,
                         info[4].ToBoolean().Value(), info[5].ToBoolean().Value());
  return logp;
}

// The per-row coefficients of the loss functions' transitions, rows (R·5: xCoef, vCoef, std, sigma, dt).
std::vector<SdeRow> sde_rows_arg(const Napi::CallbackInfo& info, size_t index, size_t R) {
  Napi::Float32Array rows = float32_arg(info, index, "rows", R * 5);
  std::vector<SdeRow> coefs(R);
  for (size_t r = 0; r < R; ++r) {
    const float* c = rows.Data() + 5 * r;
    coefs[r] = {c[0], c[1], c[2], c[3], c[4]};
  }
  return coefs;
}

Napi::Object grpo_result(Napi::Env env, double loss, Napi::Float32Array grad, const GrpoStats& stats, size_t R) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", loss);
  result.Set("grad", grad);
  result.Set("clipFraction", stats.clipped / R);
  result.Set("approxKl", 0.5 * stats.log_ratio_sq / R);
  result.Set("ratioMean", stats.ratio_sum / R);
  return result;
}

// grpoLoss(vTheta, vRef | null, x, xNext, rows (R·5), advantages, logpOld, dim, params)
//   -> { loss, grad, clipFraction, approxKl, ratioMean }
Napi::Value GrpoLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 7, "dim", 1, 1 << 24));
  const size_t R = length_of(info, 5, "advantages");
  if (R == 0) throw Napi::RangeError::New(env, "the batch must not be empty");
  Napi::Float32Array v_theta = float32_arg(info, 0, "vTheta", R * D);
  const bool has_ref = !info[1].IsNull() && !info[1].IsUndefined();
  Napi::Float32Array v_ref = has_ref ? float32_arg(info, 1, "vRef", R * D) : Napi::Float32Array::New(env, 0);
  Napi::Float32Array x = float32_arg(info, 2, "x", R * D), x_next = float32_arg(info, 3, "xNext", R * D);
  const std::vector<SdeRow> coefs = sde_rows_arg(info, 4, R);
  Napi::Float32Array advantages = float32_arg(info, 5, "advantages", R), logp_old = float32_arg(info, 6, "logpOld", R);
  const GrpoParams params = grpo_params_from(object_arg(info, 8, "params"));
  if (params.kl_coef != 0.0f && !has_ref) throw Napi::TypeError::New(env, "vRef is required when klCoef is not 0");
  Napi::Float32Array grad = Napi::Float32Array::New(env, R * D);
  GrpoStats stats;
  const double loss = cpu_backend().grpo_loss(grad.Data(), v_theta.Data(), has_ref ? v_ref.Data() : nullptr, x.Data(),
                                              x_next.Data(), coefs.data(), advantages.Data(), logp_old.Data(),
                                              static_cast<int>(R), D, params, 1.0f, &stats);
  return grpo_result(env, loss, grad, stats, R);
}

// guardLoss(vTheta, x, xNext, meanOld, rows (R·5), advantages, logpOld, dim, params)
//   -> { loss, grad, clipFraction, approxKl, ratioMean }: GRPO-Guard's loss (params.klCoef must be 0).
Napi::Value GuardLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 7, "dim", 1, 1 << 24));
  const size_t R = length_of(info, 5, "advantages");
  if (R == 0) throw Napi::RangeError::New(env, "the batch must not be empty");
  Napi::Float32Array v_theta = float32_arg(info, 0, "vTheta", R * D), x = float32_arg(info, 1, "x", R * D);
  Napi::Float32Array x_next = float32_arg(info, 2, "xNext", R * D), mean_old = float32_arg(info, 3, "meanOld", R * D);
  const std::vector<SdeRow> coefs = sde_rows_arg(info, 4, R);
  Napi::Float32Array advantages = float32_arg(info, 5, "advantages", R), logp_old = float32_arg(info, 6, "logpOld", R);
  const GrpoParams params = grpo_params_from(object_arg(info, 8, "params"));
  if (params.kl_coef != 0.0f || params.cps) {
    throw Napi::RangeError::New(env, "GRPO-Guard runs the FlowGRPO SDE without a KL term: klCoef 0, sde 'flow-grpo'");
  }
  Napi::Float32Array grad = Napi::Float32Array::New(env, R * D);
  GrpoStats stats;
  const double loss =
      cpu_backend().guard_loss(grad.Data(), v_theta.Data(), x.Data(), x_next.Data(), mean_old.Data(), coefs.data(),
                               advantages.Data(), logp_old.Data(), static_cast<int>(R), D, params, 1.0f, &stats);
  return grpo_result(env, loss, grad, stats, R);
}

// awmLoss(vTheta, vRef | null, vEma | null, target, t, advantages, dim, params) -> { loss, grad, fm, logQ, kl, emaKl }:
// the fused AWM loss on the CPU backend, with the row means of its statistics.
Napi::Value AwmLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 6, "dim", 1, 1 << 24));
  const size_t B = length_of(info, 4, "t");
  if (B == 0) throw Napi::RangeError::New(env, "the batch must not be empty");
  Napi::Float32Array v_theta = float32_arg(info, 0, "vTheta", B * D);
  const bool has_ref = !info[1].IsNull() && !info[1].IsUndefined(),
             has_ema = !info[2].IsNull() && !info[2].IsUndefined();
  Napi::Float32Array v_ref = has_ref ? float32_arg(info, 1, "vRef", B * D) : Napi::Float32Array::New(env, 0);
  Napi::Float32Array v_ema = has_ema ? float32_arg(info, 2, "vEma", B * D) : Napi::Float32Array::New(env, 0);
  Napi::Float32Array target = float32_arg(info, 3, "target", B * D);
  Napi::Float32Array t = float32_arg(info, 4, "t", B), advantages = float32_arg(info, 5, "advantages", B);
  const AwmLossParams params = awm_loss_params_from(object_arg(info, 7, "params"));
  if (params.kl_coef != 0.0f && !has_ref) throw Napi::TypeError::New(env, "vRef is required when klCoef is not 0");
  if (params.ema_coef != 0.0f && !has_ema) throw Napi::TypeError::New(env, "vEma is required when emaCoef is not 0");
  Napi::Float32Array grad = Napi::Float32Array::New(env, B * D);
  AwmStats stats;
  const double loss = cpu_backend().awm_loss(grad.Data(), v_theta.Data(), has_ref ? v_ref.Data() : nullptr,
                                             has_ema ? v_ema.Data() : nullptr, target.Data(), t.Data(),
                                             advantages.Data(), static_cast<int>(B), D, params, 1.0f, &stats);
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", loss);
  result.Set("grad", grad);
  result.Set("fm", stats.fm / B);
  result.Set("logQ", stats.log_q / B);
  result.Set("kl", stats.kl / B);
  result.Set("emaKl", stats.ema / B);
  return result;
}

// dgpoLoss(vTheta, vRef | null, vOld, target, advantages, groupIds, times, dim, params) -> { loss, grad, clipFraction,
// weightMean }: DGPO's group weights and fused loss on the CPU backend, for rows (sample i / M, time i % M) of M
// times, as one process's dgpo_step computes them.
Napi::Value DgpoLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::PoolUse pool;
  const int D = static_cast<int>(integer_arg(info, 7, "dim", 1, 1 << 24));
  const int M = static_cast<int>(integer_arg(info, 6, "times", 1, 1 << 16));
  const size_t B = length_of(info, 4, "advantages"), R = B * M;
  if (B == 0) throw Napi::RangeError::New(env, "the batch must not be empty");
  Napi::Float32Array v_theta = float32_arg(info, 0, "vTheta", R * D);
  const bool has_ref = !info[1].IsNull() && !info[1].IsUndefined();
  Napi::Float32Array v_ref = has_ref ? float32_arg(info, 1, "vRef", R * D) : Napi::Float32Array::New(env, 0);
  Napi::Float32Array v_old = float32_arg(info, 2, "vOld", R * D), target = float32_arg(info, 3, "target", R * D);
  Napi::Float32Array advantages = float32_arg(info, 4, "advantages", B);
  Napi::Int32Array groups = int32_arg(info, 5, "groupIds", B);
  const DgpoParams params = dgpo_params_from(object_arg(info, 8, "params"));
  if ((params.kl_coef != 0.0 || !params.ema_ref) && !has_ref) {
    throw Napi::TypeError::New(env, "vRef is required unless emaRef is set and klCoef is 0");
  }
  int32_t count = 0;
  for (size_t b = 0; b < B; ++b) {
    if (groups.Data()[b] < 0) throw Napi::RangeError::New(env, "group ids must not be negative");
    count = std::max(count, groups.Data()[b] + 1);
  }
  auto& cpu = cpu_backend();
  std::vector<double> l(R), l_ref(R), l_old(R), S(static_cast<size_t>(count) * M, 0.0);
  cpu.row_mean_sq(l.data(), v_theta.Data(), target.Data(), static_cast<int>(R), D);
  if (has_ref) cpu.row_mean_sq(l_ref.data(), v_ref.Data(), target.Data(), static_cast<int>(R), D);
  cpu.row_mean_sq(l_old.data(), v_old.Data(), target.Data(), static_cast<int>(R), D);
  dgpo_group_sums(S.data(), l.data(), l_ref.data(), l_old.data(), advantages.Data(), groups.Data(), static_cast<int>(R),
                  M, params);
  std::vector<float> weight(R), keep(R);
  const DgpoWeightSums sums = dgpo_row_weights(weight.data(), keep.data(), S.data(), l.data(), l_old.data(),
                                               advantages.Data(), groups.Data(), static_cast<int>(R), M, params);
  Napi::Float32Array grad = Napi::Float32Array::New(env, R * D);
  const double loss =
      cpu.dgpo_loss(grad.Data(), v_theta.Data(), has_ref ? v_ref.Data() : nullptr, target.Data(), weight.data(),
                    keep.data(), static_cast<int>(R), D, static_cast<float>(params.kl_coef), 1.0f);
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", loss);
  result.Set("grad", grad);
  result.Set("clipFraction", sums.clipped / R);
  result.Set("weightMean", sums.weight_sum / R);
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", ModelWrap::Define(env));
  define_mpi(env, exports);
  exports.Set("backendInfo", Napi::Function::New<BackendInfo>(env, "backendInfo"));
  exports.Set("fmaPeak", Napi::Function::New<FmaPeak>(env, "fmaPeak"));
  exports.Set("setThreads", Napi::Function::New<SetThreads>(env, "setThreads"));
  exports.Set("limits", Napi::Function::New<Limits>(env, "limits"));
  exports.Set("paramLayout", Napi::Function::New<ParamLayout>(env, "paramLayout"));
  exports.Set("loraLayout", Napi::Function::New<LoraLayoutOf>(env, "loraLayout"));
  exports.Set("loraModules", Napi::Function::New<LoraModules>(env, "loraModules"));
  exports.Set("philox4x32", Napi::Function::New<Philox4x32>(env, "philox4x32"));
  exports.Set("randomFill", Napi::Function::New<RandomFill>(env, "randomFill"));
  exports.Set("interpolate", Napi::Function::New<Interpolate>(env, "interpolate"));
  exports.Set("nftLoss", Napi::Function::New<NftLoss>(env, "nftLoss"));
  exports.Set("sdeStep", Napi::Function::New<SdeStep>(env, "sdeStep"));
  exports.Set("sdeCoefficients", Napi::Function::New<SdeCoefficientsOf>(env, "sdeCoefficients"));
  exports.Set("sdeLogp", Napi::Function::New<SdeLogp>(env, "sdeLogp"));
  exports.Set("grpoLoss", Napi::Function::New<GrpoLoss>(env, "grpoLoss"));
  exports.Set("guardLoss", Napi::Function::New<GuardLoss>(env, "guardLoss"));
  exports.Set("awmLoss", Napi::Function::New<AwmLoss>(env, "awmLoss"));
  exports.Set("dgpoLoss", Napi::Function::New<DgpoLoss>(env, "dgpoLoss"));
  return exports;
}

}  // namespace

}  // namespace dnft::addon

// NODE_API_MODULE pastes the name into an identifier, so it needs an unqualified function.
static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return dnft::addon::Init(env, exports); }

NODE_API_MODULE(diffusion_nft, InitAddon)
