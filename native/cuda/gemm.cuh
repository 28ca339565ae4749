// The CUDA GEMM (cuda/gemm.cu) behind the linear layers: the product of core/gemm_args.h on the context's stream,
// with the arithmetic the context chose (TF32 tensor cores or FP32).
#pragma once

#include "core/gemm_args.h"
#include "cuda/context.cuh"

namespace dnft::cuda {

void sgemm(const Context& ctx, const GemmArgs& args);

}  // namespace dnft::cuda
