// Rollouts: integrate dx/dt = v(x, t, c) from noise at t = 1 to data at t = 0 over a time grid, with a built-in
// solver, entirely in native code (docs/algorithms.md §1 and §2.7).
#pragma once

#include <vector>

#include "core/buffer.h"
#include "core/guidance.h"
#include "core/math/sde.h"
#include "core/network.h"

namespace dnft {

// kSde: the likelihood methods' stochastic sampler (core/math/sde.h), FlowGRPO's Euler–Maruyama step or CPS, with
// log-probabilities, stochastic in a window of steps (all of them by default) and an ODE elsewhere. kSaSolver:
// SA-Solver, a stochastic Adams predictor–corrector whose coefficients come as a plan (lib/sampling/sa-solver.ts).
enum class SolverKind { kEuler, kHeun, kDpm2, kSde, kSaSolver };

// Coefficients per step in an SA-Solver plan: x, noise, predictor (3 history slots), corrector (new, 2 history slots).
constexpr int kSaPlanWidth = 8;

struct SampleOptions {
  SolverKind solver{};
  std::vector<double> grid;  // t_0 = 1 > t_1 > ... > t_N = 0
  double cfg_scale{};        // classifier-free guidance; 1 = off (no null-condition pass)
  double cfg_t_min{};        // guidance applies only to velocities at t in [cfg_t_min, cfg_t_max] (a guidance
  double cfg_t_max{};        // interval, Kynkäänniemi et al. 2024); elsewhere the conditional velocity alone
  uint64_t seed{};           // initial noise: Philox stream kStreamSample of this seed
  int64_t first_sample{};    // index of the first row in that stream, so a batch can continue another
  int chunk{};               // rows integrated at a time (doubled inside with CFG): bounds the memory
  double sde_a{};            // kSde: noise level a of σ_t = a·√(t/(1 − t))
  bool logp_sum{};           // kSde: sum the per-dimension log-probabilities instead of the mean
  SdeKind sde_kind{};        // kSde: FlowGRPO's SDE step or CPS
  int window_lo{};           // kSde: steps n in [window_lo, window_hi) are stochastic (window_hi −1: to the end), the
  int window_hi{-1};         // others ODE steps: Euler before the window, tail_solver after it (Fast, MixGRPO)
  SolverKind tail_solver{};  // kSde: kEuler, or kDpm2 for MixGRPO-Flash's second-order tail
  std::vector<double> sa_plan;  // kSaSolver: N·kSaPlanWidth coefficients, row i−1 for the step t_{i−1} → t_i
};

// Checks a grid: at least 2 points, t_0 = 1, strictly decreasing, t_N = 0. Throws kRange otherwise.
void validate_grid(const std::vector<double>& grid);

class Sampler {
 public:
  Sampler(Backend& backend, const Network& net, NetWorkspace& workspace)
      : backend_(backend), net_(net), ws_(workspace) {}

  // out (B, D): the samples at t = 0; trajectory (N + 1, B, D), the state at every grid point, when not null;
  // logp (N, B), the log-probability of each SDE step (kSde only; NaN at the ODE steps outside the window), and
  // means (N, B, D), each stochastic step's mean (left as they are outside the window), when not null. The initial
  // noise is host_noise (B, D) when given, else drawn from options.seed. Host pointers.
  void run(const NetParams& params, const float* host_noise, const int32_t* host_tokens, int B, const SampleOptions& o,
           float* host_out, float* host_trajectory, float* host_logp = nullptr, float* host_means = nullptr);

 private:
  void reserve(int rows);
  // v (rows, D) = the velocity at (x, t) for the staged tokens of the chunk, guided where o asks for it at t.
  void velocity(const NetParams& params, const float* x, double t, int rows, const SampleOptions& o, float* v);
  // The SA-Solver steps of one chunk on x (rows·D = n floats); calls record(i) after step i.
  template <typename Record>
  void run_sa_solver(const NetParams& params, float* x, int rows, size_t n, int64_t first_row, const SampleOptions& o,
                     Record record);

  Backend& backend_;
  const Network& net_;
  NetWorkspace& ws_;
  int capacity_ = 0;
  Guidance guidance_;
  Buffer<float> x_, v_, v2_, aux_, x0_prev_, t_, logp_;
  Buffer<float> history_[3];  // SA-Solver: data predictions
  Buffer<int32_t> tokens_;    // t_ and tokens_ (2·rows, ·): a guided pass's null-condition rows follow the chunk's
};

}  // namespace dnft
