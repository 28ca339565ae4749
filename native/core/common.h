// Definitions shared by every native translation unit, including the CUDA ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define DNFT_HD __host__ __device__ __forceinline__
#else
#define DNFT_HD inline
#endif

namespace dnft {

// Errors raised by the native core. The addon turns the kind into the matching JS error class.
class Error : public std::runtime_error {
 public:
  enum class Kind { kType, kRange, kState, kNumeric, kBackend, kDistributed };
  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

}  // namespace dnft
