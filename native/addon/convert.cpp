#include "addon/convert.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace dnft::addon {

namespace {

[[noreturn]] void throw_type(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
[[noreturn]] void throw_range(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

template <typename Array>
Array typed_arg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length,
                napi_typedarray_type type, const char* type_name) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != type) {
    throw_type(info.Env(), std::string(name) + " must be a " + type_name);
  }
  Array array = info[index].As<Array>();
  if (array.ElementLength() != length) {
    throw_range(info.Env(), std::string(name) + " must have " + std::to_string(length) + " elements, got " +
                                std::to_string(array.ElementLength()));
  }
  return array;
}

}  // namespace

Napi::Float32Array float32_arg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length) {
  return typed_arg<Napi::Float32Array>(info, index, name, length, napi_float32_array, "Float32Array");
}

Napi::Int32Array int32_arg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length) {
  return typed_arg<Napi::Int32Array>(info, index, name, length, napi_int32_array, "Int32Array");
}

int64_t integer_arg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t low, int64_t high) {
  if (info.Length() <= index || !info[index].IsNumber())
    throw_type(info.Env(), std::string(name) + " must be a number");
  const double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= static_cast<double>(low) && value <= static_cast<double>(high)) || std::floor(value) != value) {
    throw_range(info.Env(), std::string(name) + " must be an integer in [" + std::to_string(low) + ", " +
                                std::to_string(high) + "]");
  }
  return static_cast<int64_t>(value);
}

uint64_t seed_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() > index && info[index].IsBigInt()) {
    bool lossless = false;
    const uint64_t seed = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw_range(info.Env(), "seed must fit in 64 unsigned bits");
    return seed;
  }
  return static_cast<uint64_t>(integer_arg(info, index, "seed", 0, (int64_t{1} << 53) - 1));
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsObject())
    throw_type(info.Env(), std::string(name) + " must be an object");
  return info[index].As<Napi::Object>();
}

namespace {

// A required field: the TypeScript option tables fill every default, so a missing one is a binding bug.
Napi::Value required(const Napi::Object& o, const char* field) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined()) throw_type(o.Env(), std::string(field) + " is required");
  return value;
}

// An integer-valued number that the C++ type T holds exactly (a type check: the value ranges are TypeScript's).
template <typename T>
T integer_field(const Napi::Object& o, const char* field) {
  const double value = number_field(o, field);
  constexpr double kLow = static_cast<double>(std::numeric_limits<T>::min());
  constexpr double kHigh = std::min(static_cast<double>(std::numeric_limits<T>::max()), 9007199254740991.0);
  if (!(value >= kLow && value <= kHigh) || std::floor(value) != value) {
    throw_type(o.Env(), std::string(field) + " must be an integer that fits a " +
                            (std::is_signed_v<T> ? "signed " : "unsigned ") + std::to_string(8 * sizeof(T)) +
                            "-bit value");
  }
  return static_cast<T>(value);
}

bool bool_field(const Napi::Object& o, const char* field) {
  Napi::Value value = required(o, field);
  if (!value.IsBoolean()) throw_type(o.Env(), std::string(field) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string string_field(const Napi::Object& o, const char* field) {
  Napi::Value value = required(o, field);
  if (!value.IsString()) throw_type(o.Env(), std::string(field) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<double> float64_field(const Napi::Object& o, const char* field) {
  Napi::Value value = required(o, field);
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw_type(o.Env(), std::string(field) + " must be a Float64Array");
  }
  Napi::Float64Array array = value.As<Napi::Float64Array>();
  return std::vector<double>(array.Data(), array.Data() + array.ElementLength());
}

// The time grid of a rollout (validate_grid's rules: the samplers index by it).
std::vector<double> grid_field(const Napi::Object& o) {
  std::vector<double> grid = float64_field(o, "grid");
  validate_grid(grid);
  return grid;
}

[[noreturn]] void unknown_name(Napi::Env env, const char* field, const std::string& name) {
  throw_type(env, std::string(field) + ": unknown name '" + name + "'");
}

// The stochastic step, 'flow-grpo' or 'cps'.
SdeKind sde_kind_field(const Napi::Object& o) {
  const std::string sde = string_field(o, "sde");
  if (sde != "flow-grpo" && sde != "cps") unknown_name(o.Env(), "sde", sde);
  return sde == "cps" ? SdeKind::kCps : SdeKind::kFlowGrpo;
}

}  // namespace

double number_field(const Napi::Object& o, const char* field) {
  Napi::Value value = required(o, field);
  if (!value.IsNumber()) throw_type(o.Env(), std::string(field) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

NetConfig net_config_from(const Napi::Object& o) {
  NetConfig c;
  const std::string arch = string_field(o, "arch");
  if (arch != "mlp" && arch != "dit") unknown_name(o.Env(), "config.arch", arch);
  c.arch = arch == "dit" ? Arch::kDit : Arch::kMlp;
  c.data_dim = integer_field<int>(o, "dataDim");
  c.width = integer_field<int>(o, "width");
  c.depth = integer_field<int>(o, "depth");
  c.mlp_ratio = integer_field<int>(o, "mlpRatio");
  c.time_features = integer_field<int>(o, "timeFeatures");
  c.vocab_size = integer_field<int>(o, "vocabSize");
  c.cond_slots = integer_field<int>(o, "condSlots");
  if (c.arch == Arch::kDit) {
    c.image_size = integer_field<int>(o, "imageSize");
    c.channels = integer_field<int>(o, "channels");
    c.patch = integer_field<int>(o, "patch");
    c.heads = integer_field<int>(o, "heads");
  }
  return c;
}

Napi::Object net_config_to(Napi::Env env, const NetConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("arch", c.arch == Arch::kDit ? "dit" : "mlp");
  o.Set("dataDim", c.data_dim);
  o.Set("width", c.width);
  o.Set("depth", c.depth);
  o.Set("mlpRatio", c.mlp_ratio);
  o.Set("timeFeatures", c.time_features);
  o.Set("vocabSize", c.vocab_size);
  o.Set("condSlots", c.cond_slots);
  if (c.arch == Arch::kDit) {
    o.Set("imageSize", c.image_size);
    o.Set("channels", c.channels);
    o.Set("patch", c.patch);
    o.Set("heads", c.heads);
  }
  return o;
}

OptimizerConfig optimizer_config_from(const Napi::Object& o) {
  OptimizerConfig c{};
  c.lr = number_field(o, "lr");
  c.beta1 = number_field(o, "beta1");
  c.beta2 = number_field(o, "beta2");
  c.eps = number_field(o, "eps");
  c.weight_decay = number_field(o, "weightDecay");
  c.max_grad_norm = number_field(o, "maxGradNorm");
  c.warmup_steps = integer_field<int64_t>(o, "warmupSteps");
  c.total_steps = integer_field<int64_t>(o, "totalSteps");
  c.min_lr = number_field(o, "minLr");
  const std::string schedule = string_field(o, "schedule");
  if (schedule == "constant") {
    c.schedule = LrSchedule::kConstant;
  } else if (schedule == "cosine") {
    c.schedule = LrSchedule::kCosine;
  } else if (schedule == "linear") {
    c.schedule = LrSchedule::kLinear;
  } else if (schedule == "drop") {
    c.schedule = LrSchedule::kDrop;
  } else {
    unknown_name(o.Env(), "schedule", schedule);
  }
  return c;
}

FlowMatchingOptions flow_matching_options_from(const Napi::Object& o) {
  FlowMatchingOptions f{};
  f.optimizer = optimizer_config_from(o);
  f.seed = integer_field<uint64_t>(o, "seed");
  f.micro_batch = integer_field<int>(o, "microBatch");
  f.cond_dropout = number_field(o, "condDropout");
  f.first_sample = integer_field<int64_t>(o, "firstSample");
  return f;
}

SampleOptions sample_options_from(const Napi::Object& o) {
  SampleOptions s{};
  const std::string solver = string_field(o, "solver");
  if (solver == "euler") {
    s.solver = SolverKind::kEuler;
  } else if (solver == "heun") {
    s.solver = SolverKind::kHeun;
  } else if (solver == "dpm2") {
    s.solver = SolverKind::kDpm2;
  } else if (solver == "sde") {
    s.solver = SolverKind::kSde;
  } else if (solver == "sa-solver") {
    s.solver = SolverKind::kSaSolver;
  } else {
    unknown_name(o.Env(), "solver", solver);
  }
  s.grid = grid_field(o);
  s.cfg_scale = number_field(o, "cfgScale");
  s.cfg_t_min = number_field(o, "cfgTMin");
  s.cfg_t_max = number_field(o, "cfgTMax");
  s.seed = integer_field<uint64_t>(o, "seed");
  s.first_sample = integer_field<int64_t>(o, "firstSample");
  s.chunk = integer_field<int>(o, "chunk");
  if (s.solver == SolverKind::kSde) {
    s.sde_a = number_field(o, "sdeA");
    s.logp_sum = bool_field(o, "logpSum");
    s.sde_kind = sde_kind_field(o);
    s.window_lo = integer_field<int>(o, "windowLo");
    s.window_hi = integer_field<int>(o, "windowHi");
    const std::string tail = string_field(o, "tailSolver");
    if (tail != "euler" && tail != "dpm2") unknown_name(o.Env(), "tailSolver", tail);
    s.tail_solver = tail == "dpm2" ? SolverKind::kDpm2 : SolverKind::kEuler;
  }
  if (s.solver == SolverKind::kSaSolver) s.sa_plan = float64_field(o, "saPlan");
  return s;
}

NftLossParams nft_loss_params_from(const Napi::Object& o) {
  NftLossParams p{};
  p.beta = static_cast<float>(number_field(o, "beta"));
  p.adv_clip_max = static_cast<float>(number_field(o, "advClipMax"));
  p.adaptive = bool_field(o, "adaptive");
  p.positive_only = bool_field(o, "positiveOnly");
  p.kl_coef = static_cast<float>(number_field(o, "klCoef"));
  return p;
}

NftStepOptions nft_step_options_from(const Napi::Object& o) {
  NftStepOptions s{};
  s.seed = integer_field<uint64_t>(o, "seed");
  if (!o.Get("times").IsUndefined()) s.times = float64_field(o, "times");
  s.times_per_sample = integer_field<int>(o, "timesPerSample");
  s.micro_batch = integer_field<int>(o, "microBatch");
  s.first_sample = integer_field<int64_t>(o, "firstSample");
  s.loss = nft_loss_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

GrpoParams grpo_params_from(const Napi::Object& o) {
  GrpoParams p{};
  p.clip_range = static_cast<float>(number_field(o, "clipRange"));
  p.kl_coef = static_cast<float>(number_field(o, "klCoef"));
  p.logp_sum = bool_field(o, "logpSum");
  p.cps = sde_kind_field(o) == SdeKind::kCps;
  return p;
}

GrpoStepOptions grpo_step_options_from(const Napi::Object& o) {
  GrpoStepOptions s{};
  s.grid = grid_field(o);
  s.train_steps = integer_field<int>(o, "trainSteps");
  s.sde_a = number_field(o, "sdeA");
  s.guard = bool_field(o, "guard");
  Napi::Value first = required(o, "firstStep");
  if (!first.IsTypedArray() || first.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw_type(o.Env(), "firstStep must be an Int32Array");
  }
  Napi::Int32Array starts = first.As<Napi::Int32Array>();
  s.first_step.assign(starts.Data(), starts.Data() + starts.ElementLength());
  s.cfg_scale = number_field(o, "cfgScale");
  s.cfg_t_min = number_field(o, "cfgTMin");
  s.cfg_t_max = number_field(o, "cfgTMax");
  s.micro_batch = integer_field<int>(o, "microBatch");
  s.loss = grpo_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

AwmLossParams awm_loss_params_from(const Napi::Object& o) {
  AwmLossParams p{};
  const std::string weighting = string_field(o, "weighting");
  if (weighting == "ghuber") {
    p.weighting = AwmWeighting::kGhuber;
  } else if (weighting == "uniform") {
    p.weighting = AwmWeighting::kUniform;
  } else if (weighting == "t") {
    p.weighting = AwmWeighting::kT;
  } else if (weighting == "t2") {
    p.weighting = AwmWeighting::kT2;
  } else if (weighting == "huber") {
    p.weighting = AwmWeighting::kHuber;
  } else {
    unknown_name(o.Env(), "weighting", weighting);
  }
  p.power = static_cast<float>(number_field(o, "ghuberPower"));
  p.kl_coef = static_cast<float>(number_field(o, "klCoef"));
  p.ema_coef = static_cast<float>(number_field(o, "emaCoef"));
  return p;
}

AwmStepOptions awm_step_options_from(const Napi::Object& o) {
  AwmStepOptions s{};
  s.seed = integer_field<uint64_t>(o, "seed");
  s.times = float64_field(o, "times");
  s.strata = float64_field(o, "strata");
  s.micro_batch = integer_field<int>(o, "microBatch");
  s.first_sample = integer_field<int64_t>(o, "firstSample");
  s.loss = awm_loss_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

DgpoParams dgpo_params_from(const Napi::Object& o) {
  DgpoParams p{};
  p.beta_dpo = number_field(o, "betaDpo");
  p.clip_range = number_field(o, "clipRange");
  p.kl_coef = number_field(o, "klCoef");
  p.group_size = integer_field<int>(o, "groupSize");
  p.ema_ref = bool_field(o, "emaRef");
  return p;
}

DgpoStepOptions dgpo_step_options_from(const Napi::Object& o) {
  DgpoStepOptions s{};
  s.seed = integer_field<uint64_t>(o, "seed");
  s.times = float64_field(o, "times");
  s.groups = integer_field<int>(o, "groups");
  s.micro_batch = integer_field<int>(o, "microBatch");
  s.loss = dgpo_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

LoraConfig lora_config_from(const Napi::Object& o) {
  LoraConfig c;
  c.rank = integer_field<int>(o, "rank");
  c.alpha = number_field(o, "alpha");
  const std::string init = string_field(o, "init");
  if (init != "gaussian" && init != "kaiming") unknown_name(o.Env(), "lora.init", init);
  c.init = init == "kaiming" ? LoraInit::kKaiming : LoraInit::kGaussian;
  Napi::Value targets = required(o, "targets");
  if (!targets.IsArray()) throw_type(o.Env(), "lora.targets must be an array of module names");
  Napi::Array list = targets.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value name = list.Get(i);
    if (!name.IsString()) throw_type(o.Env(), "lora.targets must be an array of module names");
    c.targets.push_back(name.As<Napi::String>().Utf8Value());
  }
  return c;
}

}  // namespace dnft::addon
