"""The "NumPyro models" docs example, at full settings: writes docs/img/numpyro_*.png.

Run: python docs/examples/numpyro_linear_regression.py
"""

from pathlib import Path

import arviz as az
import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

import logdensity as ld

IMG = Path(__file__).parent.parent / "img"


def linear_regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 2))
    b = numpyro.sample("b", dist.Normal(0, 2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    with numpyro.plate("point", x.shape[0]):
        mu = numpyro.deterministic("mu", a * x + b)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 80)
    y = 1.5 * x - 0.5 + 0.3 * rng.normal(size=80)

    model = ld.from_numpyro(linear_regression, x, y=y)
    idata = ld.sample(model, jax.random.key(0))
    ld.predict(model, idata, rng_key=jax.random.key(1))  # posterior predictive at x
    grid = np.linspace(-3, 3, 100)
    ld.predict(model, idata, grid, rng_key=jax.random.key(3))  # y at new inputs
    print(az.summary(idata, var_names=["a", "b", "sigma"]).to_string())

    mcmc = MCMC(NUTS(linear_regression), num_warmup=1000, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(2), x, y=y)
    print("NumPyro MCMC(NUTS):")
    print(az.summary(az.from_numpyro(mcmc), var_names=["a", "b", "sigma"]).to_string())
    print("LOO:", az.loo(idata))

    IMG.mkdir(exist_ok=True)
    az.plot_trace(idata, var_names=["a", "b", "sigma"], figsize=(9, 5))
    plt.tight_layout()
    plt.savefig(IMG / "numpyro_trace.png", dpi=100)
    plt.close("all")

    fig, ax = plt.subplots(figsize=(7, 4))
    az.plot_ppc(idata, num_pp_samples=100, ax=ax, legend=False)
    ax.set_xlabel("y")
    ax.set_ylabel("density")
    ax.set_title("observed y (black), 100 simulated data sets (blue), their mean (orange)")
    fig.tight_layout()
    fig.savefig(IMG / "numpyro_ppc.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    band = idata.predictions["y"].quantile([0.05, 0.95], dim=("chain", "draw"))
    line = idata.predictions["mu"].mean(("chain", "draw"))
    ax.fill_between(grid, band[0], band[1], alpha=0.3, label="90% predictive band of y")
    ax.plot(grid, line, label="posterior mean of a x + b")
    ax.scatter(x, y, s=10, color="k", label="data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left")
    ax.set_title("ld.predict(model, idata, grid): y at 100 new inputs")
    fig.tight_layout()
    fig.savefig(IMG / "numpyro_band.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
