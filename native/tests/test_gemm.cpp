// Tests for the CPU backend's vector kernels: the thread pool; sgemm against a naive double-precision reference over
// transposes, alpha/beta/bias variants, odd sizes, padded leading dimensions and 1-3 threads; SiLU and GELU forward
// and backward against float64 formulas; the optimiser's passes; then an informational timing. CI runs it once per
// kernel path (DNFT_CPU_KERNELS=generic, avx2, avx512), so each path's loops are tested on a CPU that has it.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/backend.h"
#include "cpu/gemm.h"
#include "cpu/simd.h"
#include "cpu/thread_pool.h"
#include "tests/check.h"

namespace {

using dnft::cpu::global_pool;
using dnft::cpu::set_num_threads;
using dnft::cpu::sgemm;
using dnft::cpu::ThreadPool;
using dnft::test::Case;

struct Shape {
  int M, N, K;
};

struct Variant {
  float alpha, beta;
  bool bias;
  int pad;  // extra columns on every leading dimension
};

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Runs one sgemm and returns ||C - ref|| / ||ref|| over the M x N result (the padding must stay untouched: a
// changed pad counts as an infinite error).
double run_case(bool ta, bool tb, const Shape& s, const Variant& v, std::mt19937& rng) {
  const int M = s.M, N = s.N, K = s.K;
  const int lda = (ta ? M : K) + v.pad, ldb = (tb ? K : N) + v.pad, ldc = N + v.pad;
  const std::vector<float> A = random_vector(static_cast<size_t>(ta ? K : M) * lda + 1, rng);
  const std::vector<float> B = random_vector(static_cast<size_t>(tb ? N : K) * ldb + 1, rng);
  const std::vector<float> bias = random_vector(static_cast<size_t>(N), rng);
  std::vector<float> C = random_vector(static_cast<size_t>(M) * ldc, rng);
  if (v.beta == 0.0f) {
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) C[static_cast<size_t>(i) * ldc + j] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  const std::vector<float> C0 = C;

  sgemm(ta, tb, M, N, K, v.alpha, A.data(), lda, B.data(), ldb, v.beta, C.data(), ldc, v.bias ? bias.data() : nullptr);

  double err2 = 0.0, ref2 = 0.0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int k = 0; k < K; ++k) {
        const double a = ta ? A[static_cast<size_t>(k) * lda + i] : A[static_cast<size_t>(i) * lda + k];
        const double b = tb ? B[static_cast<size_t>(j) * ldb + k] : B[static_cast<size_t>(k) * ldb + j];
        acc += a * b;
      }
      const size_t ci = static_cast<size_t>(i) * ldc + j;
      double ref = v.alpha * acc;
      if (v.beta != 0.0f) ref += static_cast<double>(v.beta) * C0[ci];
      if (v.bias) ref += bias[j];
      const double d = C[ci] - ref;
      err2 += d * d;
      ref2 += ref * ref;
    }
    for (int j = N; j < ldc; ++j) {
      const size_t ci = static_cast<size_t>(i) * ldc + j;
      if (!(C[ci] == C0[ci])) return std::numeric_limits<double>::infinity();
    }
  }
  if (!std::isfinite(err2)) return std::numeric_limits<double>::infinity();
  return ref2 > 0.0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
}

void check_shape(const Shape& s, int threads) {
  set_num_threads(threads);
  std::mt19937 rng(static_cast<uint32_t>(s.M * 7919 + s.N * 104729 + s.K * 31 + threads));
  const Variant variants[] = {
      {1.0f, 0.0f, false, 0},   // plain product, C pre-filled with NaN
      {1.0f, 1.0f, false, 0},   // accumulate (weight gradient)
      {1.0f, 0.0f, true, 3},    // forward with bias, padded leading dimensions
      {-0.5f, 0.25f, true, 7},  // everything at once
  };
  double worst = 0.0;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      for (const Variant& v : variants) {
        const double err = run_case(ta != 0, tb != 0, s, v, rng);
        worst = std::max(worst, err);
        CHECK(err < 1e-5, "transA=%d transB=%d alpha=%g beta=%g bias=%d pad=%d: rel err %.3g", ta, tb, v.alpha, v.beta,
              v.bias ? 1 : 0, v.pad, err);
      }
    }
  }
  std::printf("  max rel err %.2e\n", worst);
}

void check_degenerate() {
  // K == 0 and alpha == 0: C = beta * C + bias, A and B never read.
  for (float alpha : {0.0f, 1.0f}) {
    const int K = alpha == 0.0f ? 4 : 0;
    std::vector<float> C = {1, 2, 3, 4, 5, 6};
    const float bias[3] = {10, 20, 30};
    sgemm(false, true, 2, 3, K, alpha, nullptr, 4, nullptr, 4, 0.5f, C.data(), 3, bias);
    const float want[6] = {10.5f, 21, 31.5f, 12, 22.5f, 33};
    for (int i = 0; i < 6; ++i) CHECK(C[i] == want[i], "alpha=%g C[%d]=%g want %g", alpha, i, C[i], want[i]);
    std::vector<float> D(6, std::numeric_limits<float>::quiet_NaN());
    sgemm(false, false, 2, 3, K, alpha, nullptr, 4, nullptr, 3, 0.0f, D.data(), 3, nullptr);
    for (int i = 0; i < 6; ++i) CHECK(D[i] == 0.0f, "alpha=%g beta=0: D[%d]=%g", alpha, i, D[i]);
  }
  // M == 0 or N == 0 touches nothing.
  sgemm(false, false, 0, 5, 5, 1.0f, nullptr, 5, nullptr, 5, 0.0f, nullptr, 5);
  sgemm(false, false, 5, 0, 5, 1.0f, nullptr, 5, nullptr, 5, 0.0f, nullptr, 5);
}

void check_pool(int threads) {
  ThreadPool pool(threads);
  CHECK(pool.size() == threads, "size %d", pool.size());
  for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{7}, int64_t{1000}, int64_t{100003}}) {
    for (int64_t grain : {int64_t{1}, int64_t{16}, int64_t{1000}}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> chunks{0}, bad_worker{0};
      pool.parallel_for(
          n,
          [&](int64_t begin, int64_t end, int worker) {
            chunks.fetch_add(1);
            if (worker < 0 || worker >= threads) bad_worker.fetch_add(1);
            for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
          },
          grain);
      bool once = true;
      for (auto& h : hits) once = once && h.load() == 1;
      CHECK(once, "n=%lld grain=%lld: not every index visited exactly once", static_cast<long long>(n),
            static_cast<long long>(grain));
      const int64_t max_chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
      CHECK(chunks.load() >= 1 && chunks.load() <= max_chunks, "n=%lld grain=%lld: %d chunks",
            static_cast<long long>(n), static_cast<long long>(grain), chunks.load());
      CHECK(bad_worker.load() == 0, "worker index out of range");
    }
  }
  // Nested calls run serially on the calling worker.
  std::atomic<int64_t> inner_total{0};
  std::atomic<int> inner_chunks{0};
  pool.parallel_for(threads * 4, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      pool.parallel_for(100, [&](int64_t b, int64_t e, int w) {
        inner_chunks.fetch_add(1);
        CHECK(w == 0 && b == 0 && e == 100, "nested call split: [%lld, %lld) worker %d", static_cast<long long>(b),
              static_cast<long long>(e), w);
        inner_total.fetch_add(e - b);
      });
    }
  });
  CHECK(inner_total.load() == threads * 400, "nested total %lld", static_cast<long long>(inner_total.load()));
  CHECK(inner_chunks.load() == threads * 4, "nested chunks %d", inner_chunks.load());
  // Exceptions reach the caller, and the pool still works afterwards.
  bool caught = false;
  try {
    pool.parallel_for(64, [&](int64_t begin, int64_t, int) {
      if (begin > 0 || threads == 1) throw std::runtime_error("boom");
    });
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "boom";
  }
  CHECK(caught, "exception not rethrown");
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep) {
    pool.parallel_for(10, [&](int64_t begin, int64_t end, int) { sum.fetch_add(end - begin); });
  }
  CHECK(sum.load() == 20000, "sum after many calls %lld", static_cast<long long>(sum.load()));
}

void check_set_num_threads() {
  bool threw = false;
  try {
    set_num_threads(0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw, "set_num_threads(0) did not throw");
  set_num_threads(3);
  CHECK(dnft::cpu::num_threads() == 3 && global_pool().size() == 3, "num_threads %d", dnft::cpu::num_threads());
}

struct Timed {
  const char* name;
  bool ta, tb;
  int M, N, K;
  float beta;
};

// Informational only: GFLOP/s for the three GEMMs of a config-M linear layer.
void print_timings() {
  const Timed shapes[] = {
      {"forward  Y=XW^T+b  M=256 N=2048 K=512 ", false, true, 256, 2048, 512, 0.0f},
      {"input grad dX=dYW  M=256 N=512  K=2048", false, false, 256, 512, 2048, 0.0f},
      {"weight grad dW+=dY^TX M=2048 N=512 K=256", true, false, 2048, 512, 256, 1.0f},
  };
  std::mt19937 rng(7);
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  for (const Timed& t : shapes) {
    const std::vector<float> A = random_vector(static_cast<size_t>(t.M) * t.K, rng);
    const std::vector<float> B = random_vector(static_cast<size_t>(t.K) * t.N, rng);
    const std::vector<float> bias = random_vector(static_cast<size_t>(t.N), rng);
    std::vector<float> C(static_cast<size_t>(t.M) * t.N, 0.0f);
    const int lda = t.ta ? t.M : t.K, ldb = t.tb ? t.K : t.N;
    std::string line = std::string("  timing ") + t.name + ":";
    for (int threads = 1; threads <= static_cast<int>(std::min(hw, 2u)); ++threads) {
      set_num_threads(threads);
      auto once = [&] {
        sgemm(t.ta, t.tb, t.M, t.N, t.K, 1.0f, A.data(), lda, B.data(), ldb, t.beta, C.data(), t.N,
              t.beta == 0.0f ? bias.data() : nullptr);
      };
      for (int i = 0; i < 3; ++i) once();
      double best = 1e30;
      for (int rep = 0; rep < 7; ++rep) {
        const int iters = 5;
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < iters; ++i) once();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
        best = std::min(best, s);
      }
      const double gflops = 2.0 * t.M * t.N * t.K / best * 1e-9;
      char buf[96];
      std::snprintf(buf, sizeof(buf), "  %d thread%s %.1f GFLOP/s (%.2f ms)", threads, threads == 1 ? " " : "s", gflops,
                    best * 1e3);
      line += buf;
    }
    std::printf("%s\n", line.c_str());
  }
}

// SiLU and GELU (tanh form) and their derivatives in float64, the oracle of the float32 loops.
double silu64(double z) { return z / (1.0 + std::exp(-z)); }
double silu_grad64(double z) {
  const double s = 1.0 / (1.0 + std::exp(-z));
  return s * (1.0 + z * (1.0 - s));
}
constexpr double kC = 0.79788456080286535588, kA = 0.044715;
double gelu64(double z) { return 0.5 * z * (1.0 + std::tanh(kC * (z + kA * z * z * z))); }
double gelu_grad64(double z) {
  const double th = std::tanh(kC * (z + kA * z * z * z));
  return 0.5 * (1.0 + th) + 0.5 * z * (1.0 - th * th) * kC * (1.0 + 3.0 * kA * z * z);
}

// Every activation over an odd-sized input (whole vectors and a tail) spanning the saturated ranges, the overflow
// edges of exp, zero and NaN, against float64: within 1e-6 relative, plus c·(1 + |z|)·|dy| absolute where the result
// cancels to near zero (the root of silu', gelu's saturated tail) and only an absolute bound means anything; c is
// 2.5e-7, and 1e-6 for gelu', whose 1 - tanh² cancels in float32.
void check_activations() {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> z = {0.0f,   -0.0f, 1e-7f,  -1e-7f, 1e-3f,  -1e-3f, 0.5f,   -0.5f,  8.0f,    -8.0f, 20.0f,
                          -20.0f, 87.0f, -87.0f, 88.5f,  -88.5f, 89.0f,  -89.0f, 100.0f, -100.0f, 1e30f, -1e30f};
  while (z.size() < 4099) z.push_back(normal(rng));
  const size_t n = z.size();
  std::vector<float> dy(n), out(n), din(n);
  for (float& v : dy) v = normal(rng);
  // Each op: its float64 oracle, whether it is a backward (then scaled by dy), its absolute tolerance, and a call of
  // the float loop on (z, dy) into out.
  using Run = void (*)(float* out, const float* dy, const float* z, size_t n);
  struct Op {
    const char* name;
    double (*f)(double);
    bool backward;
    double abs_tol;
    Run run;
  };
  const Op ops[] = {
      {"silu", silu64, false, 2.5e-7,
       [](float* o, const float*, const float* x, size_t k) { dnft::cpu_backend().silu_forward(o, x, k); }},
      {"silu'", silu_grad64, true, 2.5e-7,
       [](float* o, const float* d, const float* x, size_t k) { dnft::cpu_backend().silu_backward(o, d, x, k); }},
      {"gelu", gelu64, false, 2.5e-7,
       [](float* o, const float*, const float* x, size_t k) { dnft::cpu_backend().gelu_forward(o, x, k); }},
      {"gelu'", gelu_grad64, true, 1e-6,
       [](float* o, const float* d, const float* x, size_t k) { dnft::cpu_backend().gelu_backward(o, d, x, k); }},
  };
  for (const Op& op : ops) {
    op.run(out.data(), dy.data(), z.data(), n);
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
      const double want = op.f(z[i]) * (op.backward ? dy[i] : 1.0);
      // Outside float range the float64 formula is inf·0 or 1e30³; the float loops must still give a finite value.
      if (!std::isfinite(want)) {
        CHECK(std::isfinite(out[i]), "%s(%g) = %g", op.name, z[i], out[i]);
        continue;
      }
      const double scale = op.backward ? std::abs(dy[i]) : 1.0;
      const double tol = 1e-6 * std::abs(want) + op.abs_tol * std::min(1.0 + std::abs(z[i]), 100.0) * scale;
      const double err = std::abs(out[i] - want) / tol;
      if (err > worst) worst = err, at = i;
    }
    CHECK(worst <= 1.0, "%s: error %.3g × tolerance at z=%g (got %.9g)", op.name, worst, z[at], out[at]);
  }
  // NaN stays NaN (the trainers' finite-loss check relies on it), in the vector body and in the scalar tail.
  std::vector<float> nans(17, std::numeric_limits<float>::quiet_NaN()), ones(17, 1.0f), outs(17);
  dnft::cpu_backend().silu_forward(outs.data(), nans.data(), 17);
  CHECK(std::isnan(outs[3]) && std::isnan(outs[16]), "silu(NaN) = %g, %g", outs[3], outs[16]);
  dnft::cpu_backend().gelu_backward(outs.data(), ones.data(), nans.data(), 17);
  CHECK(std::isnan(outs[3]) && std::isnan(outs[16]), "gelu'(NaN) = %g, %g", outs[3], outs[16]);
}

// The AdamW pass equals adamw_update element by element, bit for bit (vector body and tail, two parameter groups
// with and without weight decay), the squared sums it returns those of its results in float64, and the squared norm
// equals a float64 sum.
void check_optimizer_passes() {
  std::mt19937 rng(12);
  const size_t n = 100003;
  std::vector<float> p = random_vector(n, rng), m = random_vector(n, rng), v = random_vector(n, rng),
                     g = random_vector(n, rng);
  for (float& x : v) x = std::abs(x);
  for (const float decay : {0.0f, 0.01f}) {
    const dnft::AdamWStep step{3e-4f, 0.9f, 0.999f, 1e-8f, decay, 0.271f, 0.0199f, 0.73f};
    std::vector<float> p2 = p, m2 = m, v2 = v;
    const std::optional<dnft::AdamWSums> got =
        dnft::cpu_backend().adamw(p2.data(), m2.data(), v2.data(), g.data(), n, step);
    CHECK(got.has_value(), "the CPU's AdamW returns the squared sums of what it wrote");
    const dnft::AdamWSums sums = got.value_or(dnft::AdamWSums{});
    dnft::AdamWSums want;
    for (size_t i = 0; i < n; ++i) {
      want.param += static_cast<double>(p2[i]) * p2[i];
      want.m += static_cast<double>(m2[i]) * m2[i];
      want.v += static_cast<double>(v2[i]) * v2[i];
    }
    CHECK(std::abs(sums.param - want.param) <= 1e-12 * want.param && std::abs(sums.m - want.m) <= 1e-12 * want.m &&
              std::abs(sums.v - want.v) <= 1e-12 * want.v,
          "weight decay %g: squared sums %.17g %.17g %.17g, float64 %.17g %.17g %.17g", decay, sums.param, sums.m,
          sums.v, want.param, want.m, want.v);
    size_t mismatches = 0;
    for (size_t i = 0; i < n; ++i) {
      float pi = p[i], mi = m[i], vi = v[i];
      dnft::adamw_update(&pi, &mi, &vi, g[i], step);
      mismatches += (pi != p2[i] || mi != m2[i] || vi != v2[i]) ? 1 : 0;
    }
    CHECK(mismatches == 0, "weight decay %g: %zu of %zu elements differ from adamw_update", decay, mismatches, n);
  }
  double want = 0.0;
  for (float x : g) want += static_cast<double>(x) * x;
  const double got = dnft::cpu_backend().sum_squares(g.data(), n);
  CHECK(std::abs(got - want) <= 1e-12 * want, "sum of squares %.17g, float64 %.17g", got, want);
}

}  // namespace

int main() {
  std::printf("sgemm kernel: %s\n", dnft::cpu::sgemm_kernel_name());
  const Shape shapes[] = {
      {1, 1, 1},      {1, 2, 2},     {2, 1, 3},      {37, 5, 3},     {5, 37, 17},  {3, 300, 5},
      {17, 65, 129},  {65, 17, 300}, {129, 300, 37}, {300, 129, 65}, {256, 64, 2}, {64, 256, 300},
      {150, 33, 600}, {7, 4100, 3},  {300, 5, 1},    {2, 2, 1000},
  };
  std::vector<Case> cases;
  for (int threads : {1, 2, 3}) {
    cases.push_back({"thread pool, " + std::to_string(threads) + " threads", [threads] { check_pool(threads); }});
  }
  cases.push_back({"set_num_threads", check_set_num_threads});
  cases.push_back({"sgemm degenerate (K=0, alpha=0, empty)", check_degenerate});
  cases.push_back({"silu, gelu and their gradients vs float64", check_activations});
  cases.push_back({"adamw bit for bit, sum of squares vs float64", check_optimizer_passes});
  for (int threads : {1, 2, 3}) {
    for (const Shape& s : shapes) {
      const std::string name = "sgemm threads=" + std::to_string(threads) + " M=" + std::to_string(s.M) +
                               " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K);
      cases.push_back({name, [s, threads] { check_shape(s, threads); }});
    }
  }
  cases.push_back({"timing (informational, never asserted)", print_timings});
  return dnft::test::run(cases);
}
