// Argument conversion and checks for the binding: JS values to native types, with errors that name the argument.
#pragma once

#include <napi.h>

#include <string>

#include "core/model.h"
#include "core/net_config.h"
#include "core/optimizer.h"
#include "core/sampler.h"

namespace dnft::addon {

Napi::Float32Array float32_arg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length);
Napi::Int32Array int32_arg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t length);
int64_t integer_arg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t low, int64_t high);
uint64_t seed_arg(const Napi::CallbackInfo& info, size_t index);
Napi::Object object_arg(const Napi::CallbackInfo& info, size_t index, const char* name);

double number_field(const Napi::Object& object, const char* field, double fallback, double low, double high);
NetConfig net_config_from(const Napi::Object& object);
Napi::Object net_config_to(Napi::Env env, const NetConfig& config);
OptimizerConfig optimizer_config_from(const Napi::Object& object);
// { solver: 'euler' | 'heun' | 'dpm2' | 'sde', grid: Float64Array, cfgScale, seed, firstSample, chunk, sdeA,
//   logpSum }; validates the grid.
SampleOptions sample_options_from(const Napi::Object& object);
// { beta, advClipMax, adaptive, positiveOnly, klCoef }
NftLossParams nft_loss_params_from(const Napi::Object& object);
// { seed, times?: Float64Array, timesPerSample, microBatch, ...loss params, ...optimizer }
NftStepOptions nft_step_options_from(const Napi::Object& object);
// { clipRange, klCoef, logpSum }
GrpoParams grpo_params_from(const Napi::Object& object);
// { grid: Float64Array, trainSteps, sdeA, cfgScale, microBatch, ...GRPO params, ...optimizer }
GrpoStepOptions grpo_step_options_from(const Napi::Object& object);
// { rank?, alpha?, targets?, init? } (types only; LoraLayout checks the ranges): missing fields take LoraConfig's
// defaults, missing targets the architecture's default targets.
LoraConfig lora_config_from(const Napi::Object& object, Arch arch);

}  // namespace dnft::addon
