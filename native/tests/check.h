// A minimal test harness for the C++ tests: CHECK records failures, run() prints the closing line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cpu/simd.h"

namespace dnft::test {

struct Case {
  std::string name;
  std::function<void()> body;
};

inline int& failures() {
  static int count = 0;
  return count;
}

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::printf("  FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                       \
      std::printf("\n");                                              \
      ++dnft::test::failures();                                       \
    }                                                                 \
  } while (0)

// The CPU suites run once per kernel path (scripts/dev.sh sets DNFT_CPU_KERNELS): a path this CPU lacks is skipped
// on a SKIPPED line naming it, rather than silently run on another path.
inline bool skip_unsupported_cpu_kernels() {
  const char* asked = std::getenv("DNFT_CPU_KERNELS");
  cpu::CpuKernels kernels;
  if (asked == nullptr || !cpu::parse_cpu_kernels(asked, &kernels) || cpu::cpu_supports(kernels)) return false;
  std::printf("SKIPPED the %s CPU kernels: this CPU or its OS lacks their instructions\n", asked);
  return true;
}

inline int run(const std::vector<Case>& cases) {
  if (skip_unsupported_cpu_kernels()) return 0;
  std::printf("CPU kernels: %s\n", cpu::cpu_kernels_name(cpu::cpu_kernels()));
  int passed = 0, failed = 0;
  for (const Case& c : cases) {
    const int before = failures();
    try {
      c.body();
    } catch (const std::exception& e) {
      std::printf("  FAILED: exception: %s\n", e.what());
      ++failures();
    }
    const bool ok = failures() == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name.c_str());
    (ok ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace dnft::test
