// The interface of a compute backend. The networks and the trainers are written once against it; native/cpu
// implements it with threaded loops and our GEMM, native/cuda with kernels on one stream. The operations are listed
// once, with their shapes, in core/backend_ops.def.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/common.h"
#include "core/math/adamw.h"
#include "core/math/awm_loss.h"
#include "core/math/dgpo_loss.h"
#include "core/math/nft_loss.h"
#include "core/math/sde.h"

namespace dnft {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Binds the calling thread to this backend's device (cudaSetDevice); every piece of work on a worker thread starts
  // with it. A no-op on the CPU.
  virtual void activate() {}
  // Whether an op can fail after the ops queued before it took effect (a GPU's launches and copies can; the CPU's
  // loops cannot), so that an update made of several ops needs a backup to be all or nothing.
  virtual bool ops_fail_midway() const { return false; }

#define DNFT_BACKEND_OP(result, op, params) virtual result op params = 0;
#include "core/backend_ops.def"
#undef DNFT_BACKEND_OP

  // The MLP's adaLN, written on modulated_norm with one token per sample: layer norm then n·(1 + scale) + shift,
  // where mod (B, 2W) holds [scale | shift]; mod null means plain layer norm. Saves mean and rstd (B).
  void adaln_forward(float* out, float* mean, float* rstd, const float* in, const float* mod, int B, int W);
  // din (B, W) += d/din; dmod (B, 2W) = d/dmod (skipped when mod is null).
  void adaln_backward(float* din, float* dmod, const float* dout, const float* in, const float* mean, const float* rstd,
                      const float* mod, int B, int W);
};

// The process-wide CPU backend.
Backend& cpu_backend();

}  // namespace dnft
