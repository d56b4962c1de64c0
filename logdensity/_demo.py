"""`python -m logdensity demo`: the rat-tumor model through every installed adapter."""

from __future__ import annotations

import functools
import importlib.util
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import arviz as az
import jax
import numpy as np

from . import zoo
from ._model import Model
from ._sample import SamplingWarning, sample

# backend -> (the module it needs, the builder of the rat-tumor model in that backend)
BUILDERS: dict[str, tuple[str | None, Callable[[], Model]]] = {
    backend: (module, functools.partial(zoo.build, "rat_tumors", backend))
    for backend, module in (
        ("jax", None),
        ("numpyro", "numpyro"),
        ("equinox", "parax"),
        ("pytensor", "pytensor"),
        ("pymc", "pymc"),
    )
}


def installed_builders() -> dict[str, Callable[[], Model]]:
    """The rat-tumor builders whose backend is importable here."""
    return {
        name: build
        for name, (module, build) in BUILDERS.items()
        if module is None or importlib.util.find_spec(module) is not None
    }


def reference_z(idata: az.InferenceData, ref: dict[str, Any]) -> dict[str, float]:
    """Agreement with the quadrature reference: max |z| and worst sd ratio.

    `z = (mean - ref_mean) / mcse` for `u = log(alpha/beta)`, `v = log(alpha+beta)` and
    every `theta[j]`; the sd ratio is MCMC sd over reference sd.
    """
    post = idata["posterior"]
    alpha, beta = post["alpha"].values, post["beta"].values
    derived = az.convert_to_dataset(
        {"u": np.log(alpha / beta), "v": np.log(alpha + beta), "theta": post["theta"].values}
    )
    mean = derived.mean(("chain", "draw"))
    sd = derived.std(("chain", "draw"))
    mcse = az.mcse(derived)
    z, ratio = [], []
    for name in ("u", "v", "theta"):
        ref_mean = ref[f"mean_{name}"]
        z.append(np.ravel((mean[name].values - ref_mean) / mcse[name].values))
        ratio.append(np.ravel(sd[name].values / ref[f"sd_{name}"]))
    zs, ratios = np.concatenate(z), np.concatenate(ratio)
    return {
        "max_abs_z": float(np.max(np.abs(zs))),
        "max_sd_error": float(np.max(np.abs(ratios - 1))),
    }


def logdensity_offsets(
    a: Model, b: Model, rng_key: jax.Array, num_points: int = 20
) -> dict[str, float]:
    """`offset_spread` and `max_grad_diff` of [`logdensity.testing.agreement`][]."""
    from .testing import agreement

    result = agreement(a, b, rng_key, num_points=num_points)
    return {k: result[k] for k in ("offset_spread", "max_grad_diff")}


def run_demo(
    out: Path,
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    seed: int = 0,
    progress_bar: bool = True,
) -> dict[str, dict[str, Any]]:
    """Sample the rat-tumor model through every installed adapter; print and save.

    Writes `rat_tumors_{backend}.nc` (ArviZ netCDF) and `rat_tumors_{backend}.png`
    (trace plot of `alpha`, `beta`) into `out`. Returns per-backend results.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ref = zoo.rat_tumors_quadrature()
    print(
        "Rat tumors (BDA3 §5.3): 71 experiments, 73 unconstrained parameters, "
        f"{jax.numpy.zeros(()).dtype}.\n"
        f"Quadrature reference: E[log(a/b)] = {ref['mean_u']:.4f}, "
        f"E[log(a+b)] = {ref['mean_v']:.4f}\n"
    )
    results: dict[str, dict[str, Any]] = {}
    models = {}
    for backend, build in installed_builders().items():
        start = time.perf_counter()
        model = build()
        built = time.perf_counter() - start
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            idata = sample(
                model,
                jax.random.key(seed),
                num_chains=num_chains,
                num_warmup=num_warmup,
                num_samples=num_samples,
                progress_bar=progress_bar,
            )
        models[backend] = model
        stats = idata["sample_stats"].attrs
        agreement = reference_z(idata, ref)
        results[backend] = {
            "build_s": built,
            "warmup_s": idata.attrs["warmup_time"],
            "sampling_s": idata.attrs["sampling_time"],
            "divergences": int(stats.get("num_divergences", -1)),
            "max_rhat": float(stats.get("max_rhat", np.nan)),
            "min_ess_bulk": float(stats.get("min_ess_bulk", np.nan)),
            **agreement,
            "warnings": [str(w.message) for w in caught],
        }
        print(f"=== backend: {backend}")
        summary = az.summary(
            idata, var_names=["alpha", "beta", "theta"], coords={"experiment": [0, 35, 70]}
        )
        print(summary.to_string())
        r = results[backend]
        print(
            f"time: build {r['build_s']:.1f} s, warmup {r['warmup_s']:.1f} s, "
            f"sampling {r['sampling_s']:.1f} s (compilation included)\n"
            f"diagnostics: {r['divergences']} divergences, max R-hat {r['max_rhat']:.4f}, "
            f"min bulk ESS {r['min_ess_bulk']:.0f}\n"
            f"vs quadrature: max |z| = {r['max_abs_z']:.2f} over log(a/b), log(a+b), "
            f"theta[71] (MCSE-scaled); max sd error {100 * r['max_sd_error']:.1f}%"
        )
        for message in r["warnings"]:
            print(f"warning: {message}")
        idata.to_netcdf(str(out / f"rat_tumors_{backend}.nc"))
        axes = az.plot_trace(idata, var_names=["alpha", "beta"], figsize=(9, 4.5))
        axes[0, 0].figure.suptitle(f"rat tumors through {backend}: posterior of alpha, beta")
        plt.tight_layout()
        plt.savefig(out / f"rat_tumors_{backend}.png", dpi=100)
        plt.close("all")
        print(f"wrote {out / f'rat_tumors_{backend}.nc'} and .png\n")

    names = list(models)
    for other in names[1:]:
        # points of `other`, mapped to the reference through the named values
        agreement = logdensity_offsets(models[other], models[names[0]], jax.random.key(seed + 1))
        results[other]["vs_" + names[0]] = agreement
        print(
            f"{other} vs {names[0]}: log density offset spread "
            f"{agreement['offset_spread']:.2e}, max gradient difference "
            f"{agreement['max_grad_diff']:.2e}"
        )
    return results
