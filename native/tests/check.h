// A minimal test harness for the C++ tests: CHECK records failures, run() prints the closing line.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

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

inline int run(const std::vector<Case>& cases) {
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
