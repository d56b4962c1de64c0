"""The "Equinox modules with priors" docs examples, at full settings.

1. BayesianLinearModel: the functional posterior (mean line and 95% band) from rebuilt
   modules; writes docs/img/equinox_linear.png and prints the posterior table.
2. The exact GP in Equinox, NumPyro and plain JAX: log-density and gradient agreement
   and the three posteriors side by side.

Run: python docs/examples/equinox_tutorials.py
"""

from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import logdensity as ld
from logdensity import zoo
from logdensity._demo import logdensity_offsets

IMG = Path(__file__).parent.parent / "img"


def linear_model() -> None:
    data = zoo.data("linear_regression")
    model = zoo.build("linear_regression", "equinox", x=data["x"], y=data["y"])
    idata = ld.sample(model, jax.random.key(0), num_chains=4, progress_bar=False)
    slope, intercept = np.polyfit(data["x"], data["y"], 1)
    resid = data["y"] - (slope * data["x"] + intercept)
    print(az.summary(idata, var_names=["weight", "bias", "noise"]))
    print("truth: weight 2.5, bias 1.0, noise 0.5")
    print(
        f"least squares: weight {slope:.3f}, bias {intercept:.3f}, "
        f"residual sd {resid.std(ddof=2):.3f}"
    )

    grid = jnp.linspace(-2.5, 2.5, 101)
    lines = jax.vmap(lambda v: model.rebuild(v)(grid))(ld.flat_draws(idata))  # one per draw
    lo, hi = np.percentile(lines, [2.5, 97.5], axis=0)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(grid, lo, hi, alpha=0.3, label="95% band")
    ax.plot(grid, lines.mean(0), label="posterior mean")
    ax.plot(grid, 2.5 * grid + 1.0, "k--", label="truth")
    ax.scatter(data["x"], data["y"], s=10, c="k", label="data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left")
    ax.set_title("BayesianLinearModel: functional posterior")
    fig.tight_layout()
    fig.savefig(IMG / "equinox_linear.png", dpi=100)


def gp() -> None:
    data = zoo.data("gp")
    models = {
        "equinox": zoo.build("gp", "equinox", x=data["x"], y=data["y"]),
        "numpyro": zoo.build("gp", "numpyro", x=data["x"], y=data["y"]),
        "jax": zoo.build("gp", "jax", x=data["x"], y=data["y"]),
    }
    for name in ("numpyro", "jax"):
        agreement = logdensity_offsets(models["equinox"], models[name], jax.random.key(1), 50)
        print(
            f"GP equinox vs {name}: offset spread {agreement['offset_spread']:.2e}, "
            f"max gradient difference {agreement['max_grad_diff']:.2e}"
        )
    for name, model in models.items():
        idata = ld.sample(model, jax.random.key(2), num_chains=4, progress_bar=False)
        summary = az.summary(idata, var_names=["lengthscale", "amplitude", "noise"])
        print(f"--- {name}\n{summary[['mean', 'sd', 'mcse_mean', 'ess_bulk', 'r_hat']]}")


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    linear_model()
    gp()
