"""Gaussian-process regression, a feasibility classifier and expected improvement (NumPy/SciPy).

Pure math for `BayesianOracle`; inputs are feature vectors built from unit-cube coordinates.

- `GaussianProcess`: zero-mean GP on standardized targets with a Matérn 5/2 kernel, one length
  scale per input (ARD), signal and noise variance. Hyperparameters maximise the log marginal
  likelihood plus weak log-normal priors (a MAP fit, stable with few points), by L-BFGS-B with the
  analytic gradient; optionally on a subset of the observations (`fit(..., subset=...)`), the
  posterior then conditioning on all of them: one n x n Cholesky instead of one per L-BFGS step.
- `FeasibilityModel`: probability that a point is feasible (checklist 63, after Gelbart et al.
  2014, arXiv:1403.5607). A GP regression on labels +1/-1 (least-squares classification) whose
  leave-one-out predictions calibrate a probit link (Rasmussen & Williams 2006, section 6.5).
- `log_expected_improvement`: log EI for minimisation, accurate far into the tail, so candidates
  keep a ranking where plain EI underflows to zero.
"""

import math

import numpy as np
from scipy import linalg, optimize, special

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)
_JITTER = 1e-8


def _per_dim_sqdist(x):
    """(d, n, n) squared differences per input dimension."""
    diff = x.T[:, :, None] - x.T[:, None, :]
    return diff * diff


def matern52(x1, x2, lengthscales, signal_variance):
    """Matérn 5/2 kernel matrix between the rows of x1 and x2."""
    a, b = x1 / lengthscales, x2 / lengthscales
    r2 = np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)
    r = np.sqrt(r2)
    return signal_variance * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * np.exp(-_SQRT5 * r)


def _inverse_from_cholesky(chol):
    """K^-1 from K's lower Cholesky factor (LAPACK potri: twice as fast as solving against I)."""
    inverse, info = linalg.lapack.dpotri(chol, lower=1)
    if info:
        raise linalg.LinAlgError(f"potri failed with info={info}")
    return np.tril(inverse) + np.tril(inverse, -1).T


class GaussianProcess:
    """Matérn 5/2 ARD Gaussian process with MAP-fitted hyperparameters.

    Attributes:
      theta: log hyperparameters [log l_1..log l_d, log signal variance, log noise variance].
    """

    def __init__(self, lengthscale_bounds=(0.01, 30.0), noise_bounds=(1e-6, 0.5), maxiter=100):
        self.lengthscale_bounds = lengthscale_bounds
        self.noise_bounds = noise_bounds
        self.maxiter = maxiter
        self.theta = None

    def _bounds(self, dims):
        lo, hi = np.log(self.lengthscale_bounds)
        return [(lo, hi)] * dims + [
            (math.log(0.05), math.log(20.0)),
            tuple(np.log(self.noise_bounds)),
        ]

    def _default_theta(self, dims):
        # Lengths grow with sqrt(dims) so that a typical pair of points stays correlated in
        # higher dimensions (the prior mean of the log length scales).
        return np.concatenate(
            [np.full(dims, math.log(0.5 * math.sqrt(dims))), [0.0, math.log(1e-3)]]
        )

    def _neg_log_posterior(self, theta, sqdist, y, prior_mean):
        dims, n = sqdist.shape[0], y.shape[0]
        inv_ls2 = np.exp(-2.0 * theta[:dims])
        signal, noise = math.exp(theta[dims]), math.exp(theta[dims + 1])
        r2 = np.tensordot(inv_ls2, sqdist, axes=1)
        r = np.sqrt(r2)
        decay = np.exp(-_SQRT5 * r)
        k0 = signal * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * decay
        k = k0 + (noise + _JITTER) * np.eye(n)
        try:
            chol = linalg.cholesky(k, lower=True)
        except linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = linalg.cho_solve((chol, True), y)
        w = np.outer(alpha, alpha) - _inverse_from_cholesky(chol)
        nll = 0.5 * y @ alpha + np.log(np.diag(chol)).sum() + 0.5 * n * _LOG_2PI
        # dK/dlog l_d = signal * 5/3 (1 + sqrt5 r) exp(-sqrt5 r) * sqdist_d / l_d^2.
        c = signal * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * decay
        grad = np.empty_like(theta)
        grad[:dims] = -0.5 * np.tensordot(sqdist, w * c, axes=([1, 2], [0, 1])) * inv_ls2
        grad[dims] = -0.5 * (w * k0).sum()
        grad[dims + 1] = -0.5 * noise * np.trace(w)
        # Log-normal priors: lengths around the default, signal around 1, noise around 1e-3.
        delta = theta - prior_mean
        scale2 = np.concatenate([np.full(dims, 1.0), [1.0, 4.0]])
        nll += 0.5 * (delta * delta / scale2).sum()
        grad += delta / scale2
        return nll, grad

    def fit(self, x, y, theta=None, optimize_theta=True, subset=None):
        """Fits the GP to inputs x (n, d) and targets y (n,).

        Args:
          x: inputs.
          y: targets (standardized internally).
          theta: optional starting (or, with optimize_theta=False, fixed) log hyperparameters,
            e.g. the previous fit's, which makes refits fast.
          optimize_theta: whether to optimise the hyperparameters.
          subset: optional indices of the rows the hyperparameters are fitted on (e.g. a random
            64 of 1,000: the fit then costs O(64^3) per step, not O(n^3)). The posterior always
            conditions on every row, and the targets are standardized over every row. With a
            subset and a warm start, the restart from the prior runs only when the prior scores
            better than the warm-started optimum.

        Returns:
          self.
        """
        self.x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        self.y = (y - self.y_mean) / self.y_std
        dims = self.x.shape[1]
        prior = self._default_theta(dims)
        starts = [prior] if theta is None or len(theta) != dims + 2 else [np.asarray(theta), prior]
        if optimize_theta:
            rows = slice(None) if subset is None else np.asarray(subset)
            sqdist = _per_dim_sqdist(self.x[rows])
            target = self.y[rows]
            bounds = self._bounds(dims)

            def run(start):
                return optimize.minimize(
                    self._neg_log_posterior,
                    start,
                    args=(sqdist, target, prior),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": self.maxiter},
                )

            best = run(starts[0])
            if len(starts) == 2:
                # Also from the prior, unless fitting a subset: then the previous fit already kept
                # the better of its starts and the subset changes between suggestions, so the
                # restart (3/4 of the fit's cost at 100 observations) runs only when the prior
                # itself scores better than the warm-started optimum.
                restart = subset is None or (
                    self._neg_log_posterior(prior, sqdist, target, prior)[0] < best.fun
                )
                if restart:
                    result = run(prior)
                    if result.fun < best.fun:
                        best = result
            self.theta = best.x
        else:
            self.theta = starts[0]
        self._factorize()
        return self

    def _factorize(self):
        dims = self.x.shape[1]
        self.lengthscales = np.exp(self.theta[:dims])
        self.signal = math.exp(self.theta[dims])
        self.noise = math.exp(self.theta[dims + 1])
        k = matern52(self.x, self.x, self.lengthscales, self.signal)
        k[np.diag_indices_from(k)] += self.noise + _JITTER
        self.chol = linalg.cholesky(k, lower=True)
        self.alpha = linalg.cho_solve((self.chol, True), self.y)

    def condition(self, x_new, y_new):
        """Adds observations without refitting hyperparameters or re-standardizing (fantasies)."""
        if len(x_new) == 0:
            return self
        self.x = np.vstack([self.x, x_new])
        self.y = np.concatenate([self.y, (np.asarray(y_new) - self.y_mean) / self.y_std])
        self._factorize()
        return self

    def predict(self, x, include_noise=False):
        """Posterior mean and variance at the rows of x, in the units of y."""
        ks = matern52(np.asarray(x, dtype=float), self.x, self.lengthscales, self.signal)
        mean = ks @ self.alpha
        v = linalg.solve_triangular(self.chol, ks.T, lower=True)
        var = np.maximum(self.signal - (v * v).sum(0), 1e-12)
        if include_noise:
            var = var + self.noise
        return mean * self.y_std + self.y_mean, var * self.y_std**2

    def loo(self):
        """Leave-one-out predictive means and variances at the training points, in units of y."""
        diag = np.diag(_inverse_from_cholesky(self.chol))
        mean = self.y - self.alpha / diag
        return mean * self.y_std + self.y_mean, self.y_std**2 / diag


class FeasibilityModel:
    """P(feasible | x) from a GP on +1/-1 labels with a leave-one-out-calibrated probit link."""

    def fit(self, x, feasible, theta=None, subset=None):
        """Fits to inputs x and feasibility labels; `subset` as in GaussianProcess.fit."""
        labels = np.where(np.asarray(feasible, dtype=bool), 1.0, -1.0)
        self.gp = GaussianProcess().fit(x, labels, theta=theta, subset=subset)
        mean, var = self.gp.loo()

        def neg_log_lik(params):
            a, b = params
            z = labels * (a * mean + b) / np.sqrt(1.0 + a * a * var)
            # Weak priors keep a and b finite when the classes separate perfectly.
            return -special.log_ndtr(z).sum() + 0.5 * ((a - 1.0) ** 2 / 4.0 + b * b)

        result = optimize.minimize(
            neg_log_lik, [1.0, 0.0], method="L-BFGS-B", bounds=[(0.1, 10.0), (-3.0, 3.0)]
        )
        self.a, self.b = result.x
        return self

    def log_probability(self, x):
        mean, var = self.gp.predict(x, include_noise=True)
        return special.log_ndtr((self.a * mean + self.b) / np.sqrt(1.0 + self.a**2 * var))


def log_expected_improvement(mean, std, best):
    """log E[max(best - f, 0)] for f ~ N(mean, std^2) (minimisation), stable for any z."""
    std = np.maximum(std, 1e-12)
    z = (best - mean) / std
    out = np.empty_like(z)
    upper = z > -1.0
    zu = z[upper]
    out[upper] = np.log(zu * special.ndtr(zu) + np.exp(-0.5 * zu * zu - 0.5 * _LOG_2PI))
    t = -z[~upper]
    # h(-t) = phi(t) (1 - t R(t)) with Mills ratio R(t) = sqrt(pi/2) erfcx(t/sqrt2); for very
    # large t, 1 - t R(t) ~ 1/t^2.
    ratio = 1.0 - t * math.sqrt(math.pi / 2.0) * special.erfcx(t / math.sqrt(2.0))
    tail = np.where(t < 1e3, np.log(np.maximum(ratio, 1e-300)), -2.0 * np.log(t))
    out[~upper] = -0.5 * t * t - 0.5 * _LOG_2PI + tail
    return out + np.log(std)
