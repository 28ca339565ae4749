"""Float64 reference rollouts of the built-in solvers on the closed-form velocity of Gaussian data.

Reads JSON {"mu", "sigma", "grid", "noise": [[...], ...], "solver"} on stdin and writes {"x": [[...], ...]} to
stdout. The solvers are written in the textbook forms (DPM-Solver++(2M) with expm1 of the log-SNR step, as in
Lu et al. 2022, Algorithm 2), independently of the library's coefficient algebra.
"""

import json
import sys

import numpy as np


def gaussian_velocity(mu, sigma):
    def v(x, t):
        s = np.sqrt((1 - t) ** 2 * sigma**2 + t**2)
        ds = (-(1 - t) * sigma**2 + t) / s
        return -mu + ds * (x - (1 - t) * mu) / s

    return v


def euler(v, x, grid):
    for s, t in zip(grid[:-1], grid[1:]):
        x = x + (t - s) * v(x, s)
    return x


def heun(v, x, grid):
    for s, t in zip(grid[:-1], grid[1:]):
        v1 = v(x, s)
        v2 = v(x + (t - s) * v1, t)
        x = x + (t - s) * (v1 + v2) / 2
    return x


def dpm2(v, x, grid):
    """alpha_t = 1 - t, sigma_t = t, lambda = log(alpha / sigma); first step from t = 1 and last into 0 are DDIM."""
    lam = lambda t: np.log((1 - t) / t)
    prev, h_prev = None, None
    for s, t in zip(grid[:-1], grid[1:]):
        data = x - s * v(x, s)
        if t == 0:
            return data
        if s == 1:
            x = (1 - t) * data + t * x  # DDIM: eps_hat = x at t = 1
            prev, h_prev = data, None
            continue
        h = lam(t) - lam(s)
        if h_prev is None:
            d = data
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * data - prev / (2 * r)
        x = (t / s) * x - (1 - t) * np.expm1(-h) * d
        prev, h_prev = data, h
    return x


def main():
    request = json.load(sys.stdin)
    v = gaussian_velocity(request["mu"], request["sigma"])
    solver = {"euler": euler, "heun": heun, "dpm2": dpm2}[request["solver"]]
    x = solver(v, np.asarray(request["noise"], dtype=np.float64), list(request["grid"]))
    json.dump({"x": x.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
