#include "addon/convert.h"

#include <cmath>
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

double number_field(const Napi::Object& object, const char* field, double fallback, double low, double high) {
  Napi::Value value = object.Get(field);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw_type(object.Env(), std::string(field) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= low && number <= high)) {
    throw_range(object.Env(), std::string(field) + " must be in [" + std::to_string(low) + ", " + std::to_string(high) +
                                  "], got " + std::to_string(number));
  }
  return number;
}

NetConfig net_config_from(const Napi::Object& o) {
  NetConfig c;
  auto int_field = [&](const char* name, int fallback) {
    const double v = number_field(o, name, fallback, -1e9, 1e9);
    if (std::floor(v) != v) throw_range(o.Env(), std::string("config.") + name + " must be an integer");
    return static_cast<int>(v);
  };
  Napi::Value arch = o.Get("arch");
  if (!arch.IsUndefined()) {
    const std::string name = arch.IsString() ? arch.As<Napi::String>().Utf8Value() : "";
    if (name != "mlp" && name != "dit") throw_range(o.Env(), "config.arch must be 'mlp' or 'dit'");
    c.arch = name == "dit" ? Arch::kDit : Arch::kMlp;
  }
  c.data_dim = int_field("dataDim", c.data_dim);
  c.width = int_field("width", c.width);
  c.depth = int_field("depth", c.depth);
  c.mlp_ratio = int_field("mlpRatio", c.mlp_ratio);
  c.time_features = int_field("timeFeatures", c.time_features);
  c.vocab_size = int_field("vocabSize", c.vocab_size);
  c.cond_slots = int_field("condSlots", c.cond_slots);
  c.image_size = int_field("imageSize", c.image_size);
  c.channels = int_field("channels", c.channels);
  c.patch = int_field("patch", c.patch);
  c.heads = int_field("heads", c.heads);
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
  OptimizerConfig c;
  c.lr = number_field(o, "lr", c.lr, 0.0, 10.0);
  c.beta1 = number_field(o, "beta1", c.beta1, 0.0, 0.999999);
  c.beta2 = number_field(o, "beta2", c.beta2, 0.0, 0.999999999);
  c.eps = number_field(o, "eps", c.eps, 1e-30, 1.0);
  c.weight_decay = number_field(o, "weightDecay", c.weight_decay, 0.0, 10.0);
  c.max_grad_norm = number_field(o, "maxGradNorm", c.max_grad_norm, 0.0, 1e30);
  c.warmup_steps = static_cast<int64_t>(number_field(o, "warmupSteps", 0, 0, 1e15));
  c.total_steps = static_cast<int64_t>(number_field(o, "totalSteps", 0, 0, 1e15));
  c.min_lr = number_field(o, "minLr", c.min_lr, 0.0, 10.0);
  Napi::Value schedule = o.Get("schedule");
  if (!schedule.IsUndefined()) {
    const std::string name = schedule.IsString() ? schedule.As<Napi::String>().Utf8Value() : "";
    if (name == "constant") {
      c.schedule = LrSchedule::kConstant;
    } else if (name == "cosine") {
      c.schedule = LrSchedule::kCosine;
    } else if (name == "linear") {
      c.schedule = LrSchedule::kLinear;
    } else {
      throw_range(o.Env(), "schedule must be 'constant', 'cosine' or 'linear'");
    }
  }
  return c;
}

namespace {

// The time grid of a rollout: a Float64Array from t = 1 down to t = 0 (validate_grid's rules).
std::vector<double> grid_field(const Napi::Object& o) {
  Napi::Value grid = o.Get("grid");
  if (!grid.IsTypedArray() || grid.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw_type(o.Env(), "grid must be a Float64Array");
  }
  Napi::Float64Array g = grid.As<Napi::Float64Array>();
  std::vector<double> values(g.Data(), g.Data() + g.ElementLength());
  validate_grid(values);
  return values;
}

bool bool_field(const Napi::Object& o, const char* field, bool fallback) {
  Napi::Value value = o.Get(field);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) throw_type(o.Env(), std::string(field) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

}  // namespace

SampleOptions sample_options_from(const Napi::Object& o) {
  SampleOptions s;
  const std::string solver = o.Get("solver").IsString() ? o.Get("solver").As<Napi::String>().Utf8Value() : "";
  if (solver == "euler") {
    s.solver = SolverKind::kEuler;
  } else if (solver == "heun") {
    s.solver = SolverKind::kHeun;
  } else if (solver == "dpm2") {
    s.solver = SolverKind::kDpm2;
  } else if (solver == "sde") {
    s.solver = SolverKind::kSde;
  } else {
    throw_range(o.Env(), "solver must be 'euler', 'heun', 'dpm2' or 'sde'");
  }
  s.grid = grid_field(o);
  s.cfg_scale = number_field(o, "cfgScale", 1.0, -1e6, 1e6);
  s.cfg_t_min = number_field(o, "cfgTMin", s.cfg_t_min, 0.0, 1.0);
  s.cfg_t_max = number_field(o, "cfgTMax", s.cfg_t_max, 0.0, 1.0);
  if (s.cfg_t_min > s.cfg_t_max) throw_range(o.Env(), "cfgTMin must not exceed cfgTMax");
  s.seed = static_cast<uint64_t>(number_field(o, "seed", 0, 0, 9007199254740991.0));
  s.first_sample = static_cast<int64_t>(number_field(o, "firstSample", 0, 0, 9007199254740991.0));
  s.chunk = static_cast<int>(number_field(o, "chunk", s.chunk, 1, 1 << 24));
  s.sde_a = number_field(o, "sdeA", s.sde_a, 0.0, 100.0);
  s.logp_sum = bool_field(o, "logpSum", s.logp_sum);
  return s;
}

NftLossParams nft_loss_params_from(const Napi::Object& o) {
  NftLossParams p;
  p.beta = static_cast<float>(number_field(o, "beta", p.beta, 1e-6, 1e6));
  p.adv_clip_max = static_cast<float>(number_field(o, "advClipMax", p.adv_clip_max, 1e-6, 1e6));
  p.adaptive = bool_field(o, "adaptive", p.adaptive);
  p.positive_only = bool_field(o, "positiveOnly", p.positive_only);
  p.kl_coef = static_cast<float>(number_field(o, "klCoef", p.kl_coef, 0.0, 1e6));
  return p;
}

NftStepOptions nft_step_options_from(const Napi::Object& o) {
  NftStepOptions s;
  s.seed = static_cast<uint64_t>(number_field(o, "seed", 0, 0, 9007199254740991.0));
  Napi::Value times = o.Get("times");
  if (!times.IsUndefined()) {
    if (!times.IsTypedArray() || times.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw_type(o.Env(), "times must be a Float64Array");
    }
    Napi::Float64Array array = times.As<Napi::Float64Array>();
    s.times.assign(array.Data(), array.Data() + array.ElementLength());
    for (double t : s.times) {
      if (!(t > 0.0 && t <= 1.0)) throw_range(o.Env(), "training times must be in (0, 1]");
    }
  }
  s.times_per_sample = static_cast<int>(number_field(o, "timesPerSample", 1, 1, 1 << 16));
  s.micro_batch = static_cast<int>(number_field(o, "microBatch", 0, 0, 1 << 24));
  s.loss = nft_loss_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

GrpoParams grpo_params_from(const Napi::Object& o) {
  GrpoParams p;
  p.clip_range = static_cast<float>(number_field(o, "clipRange", p.clip_range, 0.0, 1e6));
  p.kl_coef = static_cast<float>(number_field(o, "klCoef", p.kl_coef, 0.0, 1e6));
  p.logp_sum = bool_field(o, "logpSum", p.logp_sum);
  return p;
}

GrpoStepOptions grpo_step_options_from(const Napi::Object& o) {
  GrpoStepOptions s;
  s.grid = grid_field(o);
  s.train_steps = static_cast<int>(number_field(o, "trainSteps", 1, 1, 1 << 20));
  s.sde_a = number_field(o, "sdeA", s.sde_a, 0.0, 100.0);
  s.cfg_scale = number_field(o, "cfgScale", 1.0, -1e6, 1e6);
  s.micro_batch = static_cast<int>(number_field(o, "microBatch", 0, 0, 1 << 24));
  s.loss = grpo_params_from(o);
  s.optimizer = optimizer_config_from(o);
  return s;
}

LoraConfig lora_config_from(const Napi::Object& o, Arch arch) {
  LoraConfig c;
  Napi::Env env = o.Env();
  const double rank = number_field(o, "rank", c.rank, -1e9, 1e9);
  if (std::floor(rank) != rank) throw_range(env, "lora.rank must be an integer");
  c.rank = static_cast<int>(rank);
  c.alpha = number_field(o, "alpha", c.alpha, -1e300, 1e300);
  Napi::Value targets = o.Get("targets");
  if (targets.IsUndefined()) {
    c.targets = lora_default_targets(arch);
  } else {
    if (!targets.IsArray()) throw_type(env, "lora.targets must be an array of module names");
    Napi::Array list = targets.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value name = list.Get(i);
      if (!name.IsString()) throw_type(env, "lora.targets must be an array of module names");
      c.targets.push_back(name.As<Napi::String>().Utf8Value());
    }
  }
  Napi::Value init = o.Get("init");
  if (!init.IsUndefined()) {
    const std::string name = init.IsString() ? init.As<Napi::String>().Utf8Value() : "";
    if (name != "gaussian" && name != "kaiming") throw_range(env, "lora.init must be 'gaussian' or 'kaiming'");
    c.init = name == "kaiming" ? LoraInit::kKaiming : LoraInit::kGaussian;
  }
  return c;
}

}  // namespace dnft::addon
