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
from logdensity.adapters import add_numpyro_predictive

IMG = Path(__file__).parent.parent / "img"


def linear_regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 2))
    b = numpyro.sample("b", dist.Normal(0, 2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * x + b, sigma), obs=y)


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 80)
    y = 1.5 * x - 0.5 + 0.3 * rng.normal(size=80)

    model = ld.from_numpyro(linear_regression, x, y=y)
    idata = ld.sample(model, jax.random.key(0))
    add_numpyro_predictive(idata, linear_regression, x, y=y, rng_key=jax.random.key(1))
    print(az.summary(idata, var_names=["a", "b", "sigma"]).to_string())

    mcmc = MCMC(NUTS(linear_regression), num_warmup=1000, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(2), x, y=y)
    print("NumPyro MCMC(NUTS):")
    print(az.summary(az.from_numpyro(mcmc), var_names=["a", "b", "sigma"]).to_string())
    print("LOO:", az.loo(idata))

    IMG.mkdir(exist_ok=True)
    az.plot_trace(idata, var_names=["a", "b", "sigma"])
    plt.tight_layout()
    plt.savefig(IMG / "numpyro_trace.png", dpi=70)
    az.plot_ppc(idata, num_pp_samples=100)
    plt.savefig(IMG / "numpyro_ppc.png", dpi=70)


if __name__ == "__main__":
    main()
