// The CPU backend: host memory and threaded loops over cpu/thread_pool.h. Each operation of core/backend_ops.def is
// defined beside its kernels, one file per op family (cpu/linear.cpp, cpu/adaln.cpp, …), and memory in
// cpu/cpu_backend.cpp. It holds no state: cpu_backend() is the process-wide instance.
#pragma once

#include "core/backend.h"

namespace dnft::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

#define DNFT_BACKEND_OP(result, op, params) result op params override;
#include "core/backend_ops.def"
#undef DNFT_BACKEND_OP
};

}  // namespace dnft::cpu
