// The JS class `Model`: a native dnft::Model behind an ObjectWrap. Long calls return Promises (PromiseWorker).
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "core/device.h"
#include "core/model.h"

namespace dnft::addon {

// The limits of one call (docs/reliability.md): rows of a batch, bytes of any one array a call allocates, steps.
constexpr int kMaxBatch = 1 << 24;
constexpr int64_t kMaxStep = int64_t{1} << 40;   // optimiser steps a model may record
constexpr double kMaxArrayBytes = 2147483648.0;  // 2 GiB

// Throws a RangeError naming `what` when `count` floats exceed kMaxArrayBytes: checked before allocating, because
// V8 aborts the process when it cannot allocate an ArrayBuffer.
void check_array_size(Napi::Env env, double count, const char* what);

// The parameter layout as JS objects { name, shape, offset, size, decay }.
Napi::Array layout_to(Napi::Env env, const std::vector<ParamSpec>& layout);

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Layout(const Napi::CallbackInfo& info);
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value ParamCount(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetPrecision(const Napi::CallbackInfo& info);
  Napi::Value GetParams(const Napi::CallbackInfo& info);
  Napi::Value SetParams(const Napi::CallbackInfo& info);
  Napi::Value HasParams(const Napi::CallbackInfo& info);
  Napi::Value AllocatedFloats(const Napi::CallbackInfo& info);
  Napi::Value CopyParams(const Napi::CallbackInfo& info);
  Napi::Value BlendParams(const Napi::CallbackInfo& info);
  Napi::Value HasOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Velocity(const Napi::CallbackInfo& info);
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info);
  Napi::Value FlowMatchingStep(const Napi::CallbackInfo& info);
  Napi::Value Sample(const Napi::CallbackInfo& info);
  Napi::Value NftStep(const Napi::CallbackInfo& info);
  Napi::Value GrpoStep(const Napi::CallbackInfo& info);
  Napi::Value AwmStep(const Napi::CallbackInfo& info);
  Napi::Value DgpoStep(const Napi::CallbackInfo& info);
  Napi::Value EnableLora(const Napi::CallbackInfo& info);
  Napi::Value Lora(const Napi::CallbackInfo& info);
  Napi::Value GetAdapter(const Napi::CallbackInfo& info);
  Napi::Value SetAdapter(const Napi::CallbackInfo& info);
  Napi::Value MergeLora(const Napi::CallbackInfo& info);
  Napi::Value SetDistributed(const Napi::CallbackInfo& info);

  // Runs `method` while the native model is held; after release() it throws a JS Error with code DNFT_DISPOSED
  // instead of touching freed memory.
  template <Napi::Value (ModelWrap::*method)(const Napi::CallbackInfo&)>
  Napi::Value Live(const Napi::CallbackInfo& info);

  // Batch inputs shared by the calls above: x (B, D), t (B), tokens (B, L) at the given argument positions.
  int batch_arg(const Napi::CallbackInfo& info, size_t index);
  // A training step's batch: 0 is allowed for a distributed model, whose rank may hold no rows of a step.
  int step_batch_arg(const Napi::CallbackInfo& info, size_t index);

  // The backend outlives the model whose buffers it holds (members are destroyed in reverse order); null for the
  // process-wide CPU backend. Calls in flight share the model, so release() during one frees it when it ends.
  std::unique_ptr<Backend> backend_;
  std::shared_ptr<Model> model_;
  Precision precision_ = dnft::Precision::kFp32;
};

}  // namespace dnft::addon
