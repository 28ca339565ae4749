#include <vector>

#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace dnft::cpu {

namespace {
constexpr int64_t kOptimizerGrain = 32768;
}

double sum_squares(const float* x, size_t n) {
  std::vector<double> partial(static_cast<size_t>(global_pool().size()), 0.0);
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int worker) {
        double sum = 0.0;
        for (int64_t i = begin; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
        partial[worker] += sum;
      },
      kOptimizerGrain);
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void adamw(float* param, float* m, float* v, const float* grad, size_t n, const AdamWStep& step) {
  global_pool().parallel_for(
      static_cast<int64_t>(n),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) adamw_update(param + i, m + i, v + i, grad[i], step);
      },
      kOptimizerGrain);
}

}  // namespace dnft::cpu
