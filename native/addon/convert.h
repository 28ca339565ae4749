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

// The option objects of lib/core/native.ts. Every field is required and checked for its type only: the TypeScript
// option tables own the ranges and defaults (a wrong name of an enumeration is a TypeError here).
double number_field(const Napi::Object& object, const char* field);
NetConfig net_config_from(const Napi::Object& object);
Napi::Object net_config_to(Napi::Env env, const NetConfig& config);
OptimizerConfig optimizer_config_from(const Napi::Object& object);
// { seed, microBatch, condDropout, ...optimizer }
FlowMatchingOptions flow_matching_options_from(const Napi::Object& object);
// { solver: 'euler' | 'heun' | 'dpm2' | 'sde' | 'sa-solver', grid: Float64Array, cfgScale, cfgTMin, cfgTMax, seed,
//   firstSample, chunk, for 'sde' sdeA, logpSum, sde: 'flow-grpo' | 'cps', windowLo, windowHi, tailSolver: 'euler' |
//   'dpm2', and for 'sa-solver' saPlan: Float64Array }; validates the grid.
SampleOptions sample_options_from(const Napi::Object& object);
// { beta, advClipMax, adaptive, positiveOnly, klCoef }
NftLossParams nft_loss_params_from(const Napi::Object& object);
// { seed, times?: Float64Array, timesPerSample, microBatch, ...loss params, ...optimizer }
NftStepOptions nft_step_options_from(const Napi::Object& object);
// { clipRange, klCoef, logpSum, sde: 'flow-grpo' | 'cps' }
GrpoParams grpo_params_from(const Napi::Object& object);
// { grid: Float64Array, trainSteps, firstStep: Int32Array (B or empty), sdeA, guard, cfgScale, cfgTMin, cfgTMax,
//   microBatch, ...GRPO params, ...optimizer }
GrpoStepOptions grpo_step_options_from(const Napi::Object& object);
// { weighting: 'ghuber' | 'uniform' | 't' | 't2' | 'huber', ghuberPower, klCoef, emaCoef }
AwmLossParams awm_loss_params_from(const Napi::Object& object);
// { seed, times: Float64Array, strata: Float64Array, microBatch, firstSample, ...loss params, ...optimizer }
AwmStepOptions awm_step_options_from(const Napi::Object& object);
// { betaDpo, clipRange, klCoef, groupSize, emaRef }
DgpoParams dgpo_params_from(const Napi::Object& object);
// { seed, times: Float64Array, groups, microBatch, ...loss params, ...optimizer }
DgpoStepOptions dgpo_step_options_from(const Napi::Object& object);
// { rank, alpha, init, targets } (lib/options/lora.ts resolves them; LoraLayout checks the target names)
LoraConfig lora_config_from(const Napi::Object& object);

}  // namespace dnft::addon
