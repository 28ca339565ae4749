#include "core/sampler.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "core/math/philox.h"
#include "core/math/sde.h"

namespace dnft {

namespace {

// log-SNR of rectified flow, λ(t) = log((1 − t) / t): −∞ at t = 1, +∞ at t = 0.
double log_snr(double t) { return std::log((1.0 - t) / t); }

struct Term {
  double coef;
  const float* x;
};

// out = Σ coef·x over the terms whose coefficient is not 0, in order: the first three in one lincomb, then two at a
// time onto out, as lib/sampling/sa-solver.ts combines them (the same float32 rounding).
void combine(Backend& backend, float* out, size_t n, std::initializer_list<Term> terms) {
  Term used[5];
  size_t count = 0;
  for (const Term& term : terms) {
    if (term.coef != 0.0) used[count++] = term;
  }
  if (count == 0) throw Error(Error::Kind::kRange, "an SA-Solver step has no nonzero coefficient");
  const Term none{0.0, nullptr};
  const Term& b = count > 1 ? used[1] : Term{0.0, used[0].x};
  const Term& c = count > 2 ? used[2] : none;
  backend.lincomb(out, n, static_cast<float>(used[0].coef), used[0].x, static_cast<float>(b.coef), b.x,
                  static_cast<float>(c.coef), c.x);
  for (size_t k = 3; k < count; k += 2) {
    const Term& z = k + 1 < count ? used[k + 1] : none;
    backend.lincomb(out, n, 1.0f, out, static_cast<float>(used[k].coef), used[k].x, static_cast<float>(z.coef), z.x);
  }
}

}  // namespace

void validate_grid(const std::vector<double>& grid) {
  if (grid.size() < 2) throw Error(Error::Kind::kRange, "the time grid needs at least 2 points (1 step)");
  if (grid.front() != 1.0 || grid.back() != 0.0) {
    throw Error(Error::Kind::kRange, "the time grid must start at t = 1 (noise) and end at t = 0 (data)");
  }
  for (size_t i = 1; i < grid.size(); ++i) {
    if (!(grid[i] < grid[i - 1])) throw Error(Error::Kind::kRange, "the time grid must be strictly decreasing");
  }
}

void Sampler::reserve(int rows) {
  if (rows <= capacity_) return;
  const size_t D = net_.config().data_dim, L = net_.config().cond_slots, R = static_cast<size_t>(rows);
  x_ = Buffer<float>(backend_, R * D);
  v_ = Buffer<float>(backend_, R * D);
  v2_ = Buffer<float>(backend_, R * D);
  aux_ = Buffer<float>(backend_, R * D);
  x0_prev_ = Buffer<float>(backend_, R * D);
  for (Buffer<float>& slot : history_) slot = Buffer<float>(backend_, R * D);
  guidance_.reserve(backend_, R, D);
  t_ = Buffer<float>(backend_, 2 * R);
  logp_ = Buffer<float>(backend_, R);
  tokens_ = Buffer<int32_t>(backend_, 2 * R * L);
  capacity_ = rows;
}

void Sampler::velocity(const NetParams& params, const float* x, double t, int rows, const SampleOptions& o, float* v) {
  const double scale = guidance_scale_at(o.cfg_scale, o.cfg_t_min, o.cfg_t_max, t);
  backend_.fill(t_.get(), static_cast<float>(t), (scale != 1.0 ? 2 : 1) * static_cast<size_t>(rows));
  guidance_.forward(backend_, net_, ws_, params, x, t_.get(), tokens_.get(), rows, scale, v);
}

void Sampler::run(const NetParams& params, const float* host_noise, const int32_t* host_tokens, int B,
                  const SampleOptions& o, float* host_out, float* host_trajectory, float* host_logp,
                  float* host_means) {
  validate_grid(o.grid);
  const NetConfig& c = net_.config();
  const size_t D = c.data_dim, L = c.cond_slots;
  const int steps = static_cast<int>(o.grid.size()) - 1;
  const int window_hi = o.window_hi < 0 ? steps : o.window_hi;
  if (o.solver == SolverKind::kSde && !(0 <= o.window_lo && o.window_lo < window_hi && window_hi <= steps &&
                                        (o.tail_solver == SolverKind::kEuler || o.tail_solver == SolverKind::kDpm2))) {
    throw Error(Error::Kind::kRange, "the SDE window must be 0 ≤ lo < hi ≤ N (or hi −1), its tail Euler or DPM2");
  }
  if (o.solver == SolverKind::kSaSolver && o.sa_plan.size() != static_cast<size_t>(steps) * kSaPlanWidth) {
    throw Error(Error::Kind::kRange, "the SA-Solver plan must have 8 coefficients per step of the grid");
  }
  const bool cfg = o.cfg_scale != 1.0;
  const int chunk = std::max(1, std::min(o.chunk, B));
  reserve(chunk);
  std::vector<int32_t> host_chunk_tokens;

  for (int start = 0; start < B; start += chunk) {
    const int rows = std::min(chunk, B - start);
    const size_t n = static_cast<size_t>(rows) * D, first = static_cast<size_t>(start) * D;
    // The chunk's tokens, followed by as many null (all-zero) rows for a guided pass.
    host_chunk_tokens.assign(host_tokens + static_cast<size_t>(start) * L,
                             host_tokens + static_cast<size_t>(start + rows) * L);
    if (cfg) host_chunk_tokens.resize(2 * static_cast<size_t>(rows) * L, 0);
    tokens_.upload(host_chunk_tokens.data(), host_chunk_tokens.size());

    float* x = x_.get();
    if (host_noise != nullptr) {
      backend_.copy_to_device(x, host_noise + first, n * sizeof(float));
    } else {
      backend_.fill_normal(x, n, o.seed, kStreamSample, static_cast<uint64_t>(o.first_sample + start) * D, 1.0f);
    }
    auto record = [&](int k) {
      if (host_trajectory != nullptr)
        backend_.copy_to_host(host_trajectory + static_cast<size_t>(k) * B * D + first, x, n * sizeof(float));
    };
    record(0);

    if (o.solver == SolverKind::kSaSolver) {
      run_sa_solver(params, x, rows, n, o.first_sample + start, o, record);
      backend_.copy_to_host(host_out + first, x, n * sizeof(float));
      continue;
    }
    float *v = v_.get(), *v2 = v2_.get(), *aux = aux_.get(), *x0_prev = x0_prev_.get();
    bool have_x0_prev = false;  // DPM2: the previous step was a DPM2 step, whose x0 is in x0_prev
    for (int i = 1; i <= steps; ++i) {
      const double s = o.grid[i - 1], t = o.grid[i], dt = t - s;
      velocity(params, x, s, rows, o, v);
      // Outside an SDE rollout's window: an ODE step, whose log-probability is not defined.
      SolverKind solver = o.solver;
      if (solver == SolverKind::kSde && (i - 1 < o.window_lo || i - 1 >= window_hi)) {
        solver = i - 1 < o.window_lo ? SolverKind::kEuler : o.tail_solver;
        if (host_logp != nullptr) {
          float* at = host_logp + static_cast<size_t>(i - 1) * B + start;
          std::fill(at, at + rows, std::nanf(""));
        }
      }
      switch (solver) {
        case SolverKind::kEuler:
          backend_.lincomb(x, n, 1.0f, x, static_cast<float>(dt), v, 0.0f, nullptr);
          break;
        case SolverKind::kHeun:
          // Predictor x + dt·v1 into aux, corrector x + dt/2·(v1 + v2).
          backend_.lincomb(aux, n, 1.0f, x, static_cast<float>(dt), v, 0.0f, nullptr);
          velocity(params, aux, t, rows, o, v2);
          backend_.lincomb(x, n, 1.0f, x, static_cast<float>(dt / 2), v, static_cast<float>(dt / 2), v2);
          break;
        case SolverKind::kDpm2: {
          // Data prediction x0 = x − s·v (into aux), then DPM-Solver++(2M) in data-prediction form:
          // x_t = (t/s)·x − (1 − t)(e^{−h} − 1)·[(1 + 1/2r)·x0 − 1/2r·x0_prev], h = λ(t) − λ(s), r = h_prev/h.
          // The first step (of the rollout, or of an SDE window's tail) and the step into t = 0 are first order
          // (DDIM); a first step from t = 1 has h_prev = ∞, which also makes the second step first order (1/2r = 0).
          backend_.lincomb(aux, n, 1.0f, x, static_cast<float>(-s), v, 0.0f, nullptr);
          double half_inv_r = 0.0;
          if (have_x0_prev && t > 0.0) {
            const double h = log_snr(t) - log_snr(s), h_prev = log_snr(s) - log_snr(o.grid[i - 2]);
            if (std::isfinite(h_prev)) half_inv_r = h / (2.0 * h_prev);
          }
          const double ratio = t / s;
          // −(1 − t)(e^{−h} − 1) = (1 − t) − t(1 − s)/s, finite at t = 0 and s = 1.
          const double data_coef = (1.0 - t) - t * (1.0 - s) / s;
          backend_.lincomb(x, n, static_cast<float>(ratio), x, static_cast<float>(data_coef * (1.0 + half_inv_r)), aux,
                           static_cast<float>(-data_coef * half_inv_r), half_inv_r != 0.0 ? x0_prev : nullptr);
          std::swap(aux, x0_prev);
          have_x0_prev = true;
          break;
        }
        case SolverKind::kSaSolver:
          break;  // run by run_sa_solver
        case SolverKind::kSde: {
          // mean = x_coef·x + v_coef·v (into aux), x_next = mean + std·z, log p(x_next | x) per row.
          const SdeCoefficients k = step_coefficients(o.sde_kind, s, t, o.sde_a, o.grid[1]);
          backend_.lincomb(aux, n, static_cast<float>(k.x_coef), x, static_cast<float>(k.v_coef), v, 0.0f, nullptr);
          backend_.fill_normal(v2, n, o.seed, kStreamSde,
                               (static_cast<uint64_t>(i - 1) << 40) + (o.first_sample + start) * D, 1.0f);
          backend_.lincomb(x, n, 1.0f, aux, static_cast<float>(k.std), v2, 0.0f, nullptr);
          if (host_logp != nullptr) {
            backend_.sde_logp(logp_.get(), x, aux, static_cast<float>(k.std), rows, static_cast<int>(D), o.logp_sum,
                              o.sde_kind == SdeKind::kCps);
            backend_.copy_to_host(host_logp + static_cast<size_t>(i - 1) * B + start, logp_.get(),
                                  rows * sizeof(float));
          }
          if (host_means != nullptr) {
            backend_.copy_to_host(host_means + (static_cast<size_t>(i - 1) * B + start) * D, aux, n * sizeof(float));
          }
          break;
        }
      }
      record(i);
    }
    backend_.copy_to_host(host_out + first, x, n * sizeof(float));
  }
  backend_.synchronize();
}

template <typename Record>
void Sampler::run_sa_solver(const NetParams& params, float* x, int rows, size_t n, int64_t first_row,
                            const SampleOptions& o, Record record) {
  // PEC: one velocity per step; the corrector's evaluation at the predicted point is the next step's data prediction.
  float* history[3] = {history_[0].get(), history_[1].get(), history_[2].get()};  // newest first
  float *v = v_.get(), *predicted = aux_.get(), *xi = v2_.get();
  const size_t D = net_.config().data_dim;
  bool evaluated = false;  // history[0] is the data prediction at the step's start
  for (int i = 1; i < static_cast<int>(o.grid.size()); ++i) {
    const double s = o.grid[i - 1], t = o.grid[i];
    const double* row = o.sa_plan.data() + static_cast<size_t>(i - 1) * kSaPlanWidth;
    if (!evaluated) {
      std::rotate(history, history + 2, history + 3);
      velocity(params, x, s, rows, o, v);
      backend_.lincomb(history[0], n, 1.0f, x, static_cast<float>(-s), v, 0.0f, nullptr);
    }
    // The same noise stream and offsets as the SDE sampler's steps.
    if (row[1] != 0.0)
      backend_.fill_normal(xi, n, o.seed, kStreamSde, (static_cast<uint64_t>(i - 1) << 40) + first_row * D, 1.0f);
    evaluated = row[5] != 0.0;
    if (evaluated) {
      combine(backend_, predicted, n,
              {{row[0], x}, {row[2], history[0]}, {row[3], history[1]}, {row[4], history[2]}, {row[1], xi}});
      // The new data prediction goes into the oldest slot, which the corrector does not read.
      velocity(params, predicted, t, rows, o, v);
      backend_.lincomb(history[2], n, 1.0f, predicted, static_cast<float>(-t), v, 0.0f, nullptr);
      combine(backend_, x, n,
              {{row[0], x}, {row[5], history[2]}, {row[6], history[0]}, {row[7], history[1]}, {row[1], xi}});
      std::rotate(history, history + 2, history + 3);
    } else {
      combine(backend_, x, n,
              {{row[0], x}, {row[2], history[0]}, {row[3], history[1]}, {row[4], history[2]}, {row[1], xi}});
    }
    record(i);
  }
}

}  // namespace dnft
