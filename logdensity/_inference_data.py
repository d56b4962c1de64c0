"""Assembling `arviz.InferenceData` from the loop's host arrays, and its diagnostics."""

from __future__ import annotations

import functools
import importlib.metadata
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from ._protocol import LogDensity
from ._tree import leaf_names

if TYPE_CHECKING:
    import arviz as az
    import xarray as xr

__all__ = [
    "adaptation_group",
    "diagnose",
    "flat_labels",
    "import_arviz_in_background",
    "to_inference_data",
]

# ArviZ, xarray and what they import (pandas, SciPy's stats, matplotlib): about 2 s, so a
# fresh `import logdensity` took 3.1-3.7 s with them and takes 0.9-1.3 s without. They
# are imported where used, and `sample` starts their import while XLA compiles: a fresh
# process's 1-step run of eight schools or rat tumors 0.5-1.8 s shorter (cold caches).
_ARVIZ = ("xarray", "arviz", "arviz_stats.base")


@functools.cache  # once per process (a second thread, in a race, would import nothing new)
def import_arviz_in_background() -> None:
    """Start importing ArviZ and xarray in a daemon thread, once per process, so that
    their import overlaps XLA's compilation (which releases the GIL) instead of adding
    to the time to first draw. A function that needs them imports them as usual: if the
    thread is importing one, Python's per-module import lock makes it wait until the
    module is complete. Nothing is raised here; a failed import fails again, with its
    error, where the module is needed."""
    if all(name in sys.modules for name in _ARVIZ):
        return

    def load() -> None:
        for name in _ARVIZ:
            try:
                importlib.import_module(name)
            except BaseException:  # the caller's own import raises it, where it can
                return

    threading.Thread(target=load, name="logdensity-import-arviz", daemon=True).start()


_VERSIONED = ("logdensity", "jax", "blackjax", "arviz")


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[f"{name}_version"] = "unknown"
    return out


def _empty_draws(model: LogDensity, num_chains: int) -> dict[str, np.ndarray]:
    return {v.name: np.zeros((num_chains, 0, *v.shape)) for v in model.variables.values()}


def flat_labels(model: LogDensity) -> list[str]:
    """`name[i,j]` labels for the coordinates of the flattened unconstrained position."""
    labels = []
    for name, leaf in zip(
        leaf_names(model.initial_position),
        jax.tree.leaves(model.initial_position),
        strict=True,
    ):
        shape = np.shape(leaf)
        if not shape:
            labels.append(name)
        else:
            labels += [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]
    return labels


def to_inference_data(
    model: LogDensity,
    *,
    posterior: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    warmup: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None,
    adaptation: Mapping[str, np.ndarray] | None,
    num_chains: int,
    attrs: Mapping[str, Any],
    first_draw: int = 0,
    extra: Mapping[str, xr.Dataset] | None = None,
) -> az.InferenceData:
    """Named, dimensioned `InferenceData` from `(draws, stats)` dicts of host arrays,
    the posterior's draws numbered from `first_draw` (a continued run's), with the
    `extra` groups (the continuation state) added."""
    variables = model.variables
    dims = {name: list(v.dims) for name, v in variables.items() if v.dims is not None}
    used = {d for ds in dims.values() for d in ds}
    coords = {d: list(labels) for d, labels in model.coords.items() if d in used}
    draws, stats = posterior
    groups: dict[str, Any] = {
        "posterior": draws or _empty_draws(model, num_chains),
        "sample_stats": stats or None,
    }
    if warmup is not None:
        groups["warmup_posterior"], groups["warmup_sample_stats"] = warmup
    import arviz as az

    with warnings.catch_warnings():
        # an interrupted warmup leaves zero draws; ArviZ's shape guess warns on those
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        idata = az.from_dict(
            **groups,
            dims=dims,
            coords=coords,
            save_warmup=warmup is not None,
            attrs={
                "inference_library": "logdensity",
                "backend": model.backend,
                **_versions(),
                **attrs,
            },
        )
    if first_draw:
        for group in ("posterior", "sample_stats"):
            if group in idata.groups():
                ds = idata[group]
                idata[group] = ds.assign_coords(draw=first_draw + np.arange(ds.sizes["draw"]))
    if adaptation is not None:
        idata.add_groups(adaptation=adaptation_group(model, adaptation, num_chains))
    if extra:
        idata.add_groups(dict(extra))
    return idata


def adaptation_group(
    model: LogDensity, adaptation: Mapping[str, np.ndarray], num_chains: int
) -> xr.Dataset:
    """The adapted parameters over the flattened position's coordinates (labelled
    `name[i,j]`): `step_size`, and `inverse_mass_matrix` (diagonal or dense) or the
    low-rank factors `sigma`, `U`, `lam`."""
    import xarray as xr

    labels = flat_labels(model)
    dims = {
        "step_size": ["chain"],
        "inverse_mass_matrix": ["chain", "unconstrained", "unconstrained_col"],
        "sigma": ["chain", "unconstrained"],
        "U": ["chain", "unconstrained", "rank"],
        "lam": ["chain", "rank"],
    }
    data = {k: (dims[k][: np.ndim(v)], v) for k, v in adaptation.items()}
    coords = {"chain": np.arange(num_chains), "unconstrained": labels}
    if np.ndim(adaptation.get("inverse_mass_matrix", 0)) == 3:
        coords["unconstrained_col"] = labels
    return xr.Dataset(data, coords=coords)


def diagnose(idata: az.InferenceData) -> list[str]:
    """The problems a Stan user would be told of, as short sentences (empty if none).

    - divergences after warmup;
    - chains that look stuck (a step size under 1/1000 of the chains' median, or a log
      density that never changed), named with their step size;
    - R-hat above 1.01 (rank-normalised split R-hat, Vehtari et al. 2021,
      `arviz.rhat`);
    - bulk or tail ESS (`arviz.ess`) below 100 per chain, the rule of Vehtari et al.
      2021 and Stan's `stansummary` (400 for 4 chains).

    R-hat and ESS sentences name the (at most three) worst scalars, as `name[i, j]`
    over the variable's own axes. Values that do not vary (constant deterministics)
    are skipped. The numbers are also stored in `idata.sample_stats.attrs`
    (`num_divergences`, `stuck_chains`, `max_rhat`, `min_ess_bulk`, `min_ess_tail`,
    `min_ess_required`).

    **Many scalars.** ArviZ's R-hat and ESS loop over the scalars in Python (about
    1 ms each, per diagnostic). Above 1,024 scalars they run only on those that cheap,
    vectorised proxies rank worst: in each variable, the 256 with the largest classic
    split R-hat of the draws and of the folded draws (their distance to the median),
    and the 256 with the largest lag-1 autocorrelation of the draws and of their 5% /
    95% tail indicators. The extremes reported are ArviZ's numbers for the scalars
    examined. A scalar bad by the rank-normalised measures while it looks fine to all
    four proxies would be missed; among near ties (scalars that all pass), the
    runners-up named may differ from a full computation's. Measured on the draws of
    the 10,003-parameter hierarchical model (4 × (500 + 500), NumPyro, the default
    threaded chains, 92 s): 3.1 s against 20.4 s for every scalar, with the full
    computation's extremes (128 per variable: 2.1 s, but a minimum tail ESS of 775
    where the least is 664; 128 per 32 MiB block of 2,097 scalars, as before: 5.8 s).
    """
    problems = []
    post = idata["posterior"]
    stats = idata.get("sample_stats")
    if stats is None or post.sizes.get("draw", 0) < 4:
        return ["too few draws to diagnose"]
    n_div = int(stats["diverging"].sum())
    required = _ESS_PER_CHAIN * int(post.sizes["chain"])
    summary: dict[str, Any] = {"num_divergences": n_div, "min_ess_required": required}
    if n_div:
        problems.append(f"{n_div} divergent transitions after warmup")
    stuck = _stuck_chains(stats)
    if stuck:
        summary["stuck_chains"] = [c for c, _ in stuck]
        problems.append(
            "chains that look stuck: "
            + ", ".join(f"chain {c} ({why})" for c, why in stuck)
            + "; their warmup collapsed (start them elsewhere with initial_positions, "
            "or a smaller init_jitter)"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        found, worst = _rhat_ess(post)
    summary |= found
    if found:
        # written so that a NaN (a scalar constant in some chains only) is a problem too
        if not summary.get("max_rhat", 1.0) <= 1.01:
            problems.append(f"max R-hat {summary['max_rhat']:.3f} > 1.01 ({worst['max_rhat']})")
        for key, label in (("min_ess_bulk", "bulk"), ("min_ess_tail", "tail")):
            if not summary[key] >= required:
                problems.append(
                    f"min {label} ESS {summary[key]:.0f} < {required} "
                    f"({_ESS_PER_CHAIN} per chain; {worst[key]})"
                )
    stats.attrs.update(summary)
    return problems


def _stuck_chains(stats: xr.Dataset) -> list[tuple[int, str]]:
    """Chains whose adaptation collapsed: an adapted step size under 1/1000 of the
    chains' median (NUTS then crawls: 2^10 steps of 1e-38 go nowhere), or a log
    density that never changed over the draws (every proposal rejected)."""
    if "step_size" not in stats or "lp" not in stats:
        return []
    step = np.asarray(stats["step_size"].values)[:, -1]
    lp = np.asarray(stats["lp"].values)
    frozen = lp.max(axis=1) == lp.min(axis=1)
    median = float(np.median(step))
    out = []
    for c in range(step.shape[0]):
        reasons = []
        if step[c] < COLLAPSED * median:
            reasons.append(f"step size {step[c]:.2g} against the chains' median {median:.2g}")
        if frozen[c]:
            reasons.append(f"its log density never changed in {lp.shape[1]} draws")
        if reasons:
            out.append((c, "; ".join(reasons)))
    return out


def _blocks(v: xr.DataArray) -> Iterator[tuple[int, np.ndarray]]:
    """`v` `(chain, draw, ...)` as host blocks `(chain, draw, k)` of at most `_BLOCK`
    values, sliced along its first non-sample axis, each with the flat index (over
    `v`'s own axes) of its first scalar: a variable backed lazily by a checkpoint is
    read one block at a time, never whole."""
    if v.ndim == 2:
        yield 0, np.asarray(v.values).reshape(*v.shape, 1)
        return
    per_row = int(np.prod(v.shape)) // v.shape[2]
    step = max(1, _BLOCK // max(per_row, 1))
    row = per_row // (v.shape[0] * v.shape[1])
    for start in range(0, v.shape[2], step):
        block = np.asarray(v[:, :, start : start + step].values)
        yield start * row, block.reshape(*block.shape[:2], -1)


def _rhat_ess(post: xr.Dataset) -> tuple[dict[str, float], dict[str, str]]:
    """Max rank R-hat, min bulk and tail ESS over every scalar of the `(chain, draw,
    ...)` variables of `post` that varies (constant deterministics are skipped), and
    for each the three worst scalars as text (`"theta[3] 1.64, tau 1.30"`), by
    `arviz_stats.base.array_stats` (ArviZ's array functions: the same numbers as
    `arviz.rhat`/`arviz.ess`, vectorised over the scalars, about five times faster on
    a 10,000-parameter model). Scalars go in blocks of at most `_BLOCK` values, so the
    rank-normalised copies stay small next to the draws. Booleans, complex values and
    zero-size variables are skipped (R-hat and ESS are defined for real scalars). Empty
    if none varies."""
    from arviz_stats.base import array_stats

    values = [
        v
        for v in post.data_vars.values()
        if v.size and (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer))
    ]
    if not values:
        return {}, {}
    checks: list[tuple[str, str, dict[str, Any], int]] = []
    if values[0].shape[0] > 1:
        checks.append(("max_rhat", "rhat", {}, -1))  # -1: the largest is the worst
    checks += [
        ("min_ess_bulk", "ess", {"method": "bulk"}, 1),
        ("min_ess_tail", "ess", {"method": "tail", "prob": (0.05, 0.95)}, 1),
    ]
    # above _SCREEN scalars, the exact diagnostics run on the worst ones (`_screened`)
    screened = sum(v.size // (v.shape[0] * v.shape[1]) for v in values) > _SCREEN
    # per check: the worst scalars seen so far, as (sort key, value, name, flat index)
    found: dict[str, list[tuple[float, float, str, int]]] = {key: [] for key, *_ in checks}
    any_varies = False
    for v in values:
        for offset, block, varies in _screened(v) if screened else _varying_blocks(v):
            any_varies = True
            for key, name, kwargs, sign in checks:
                got = getattr(array_stats, name)(block, chain_axis=0, draw_axis=1, **kwargs)
                # a non-finite R-hat or ESS (a chain that never moved) is the worst of all
                order = np.where(np.isfinite(got), sign * got, -np.inf)
                top = np.argsort(order, kind="stable")[:_WORST]
                found[key] += [
                    (float(order[i]), float(got[i]), str(v.name), offset + int(varies[i]))
                    for i in top
                ]
                found[key] = sorted(found[key])[:_WORST]
    if not any_varies:
        return {}, {}
    shapes = {str(v.name): v.shape[2:] for v in values}
    summary = {key: found[key][0][1] for key, *_ in checks}
    worst = {
        key: ", ".join(
            f"{_scalar_label(name, shapes[name], i)} {value:{_FORMAT[key]}}"
            for _, value, name, i in found[key]
        )
        for key, *_ in checks
    }
    return summary, worst


def _varying_blocks(v: xr.DataArray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """`_blocks(v)` as `(offset, draws of the varying scalars, their indices in the
    block)`, blocks where nothing varies left out."""
    for offset, block in _blocks(v):
        # max > min, not std > 0: a reduction, where std would allocate again
        varies = np.flatnonzero(block.max(axis=(0, 1)) > block.min(axis=(0, 1)))
        if varies.size:  # (all varying: the block itself, not a copy of it)
            yield offset, block if varies.size == block.shape[2] else block[:, :, varies], varies


def _screened(v: xr.DataArray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The scalars of `v` that `_proxies_of` ranks worst over the whole variable
    (`_SCREEN_KEEP` per proxy), as `(0, draws, flat indices)` per block that holds
    some: the proxies are computed block by block, then the picked scalars' draws are
    read again, a block at a time (never more than a block's values at once), so the
    exact diagnostics run on at most `4 * _SCREEN_KEEP` scalars per variable, however
    many blocks it spans (the hierarchical model's 10,000 scalars are five; picked per
    block, 128 per proxy, 1,425 of them were examined)."""
    parts = [(offset + varies, _proxies_of(block)) for offset, block, varies in _varying_blocks(v)]
    if not parts:
        return
    index = np.concatenate([i for i, _ in parts])
    index = index[_pick(np.concatenate([p for _, p in parts], axis=1), _SCREEN_KEEP)]
    for offset, block in _blocks(v):
        mine = index[(index >= offset) & (index < offset + block.shape[2])]
        if mine.size:
            yield 0, block[:, :, mine - offset], mine


def _proxies_of(block: np.ndarray) -> np.ndarray:
    """The screen's cheap, vectorised proxies of each scalar of `block` `(chain, draw,
    k)`, `(4, k)`, the larger the worse: the classic split R-hat (Gelman et al. 2013)
    of the draws and of their distance to the median (the folded draws, as rank R-hat
    folds them), and the lag-1 autocorrelation of the draws and of their 5% / 95% tail
    indicators (low ESS, bulk and tail). ArviZ's rank-normalised R-hat and ESS then
    run on the worst by `_pick` only. They are per scalar, so computed over slices of
    `_SCREEN_BLOCK` values: the same numbers, with temporaries (a sorted copy, the
    folded draws, the tail indicators) that small, not the block's size each (166 MiB
    over the draws of the hierarchical model's diagnostics at one 32 MiB block)."""
    step = max(1, _SCREEN_BLOCK // (block.shape[0] * block.shape[1]))
    return np.concatenate(
        [_proxies(block[:, :, i : i + step]) for i in range(0, block.shape[2], step)], axis=1
    )


def _pick(proxies: np.ndarray, keep: int) -> np.ndarray:
    """Indices (sorted) of the `keep` largest of each row of `proxies` `(4, k)` (all
    of them if `k <= keep`; a non-finite proxy counts as the largest)."""
    if proxies.shape[1] <= keep:
        return np.arange(proxies.shape[1])
    picked = set()
    for proxy in proxies:
        proxy = np.where(np.isfinite(proxy), proxy, np.inf)  # undefined: look at it
        picked.update(np.argpartition(-proxy, keep - 1)[:keep].tolist())
    return np.array(sorted(picked))


def _proxies(block: np.ndarray) -> np.ndarray:
    """`_proxies_of` for a slice of a block, `(4, k)`."""
    low, median, high = np.quantile(block, [0.05, 0.5, 0.95], axis=(0, 1))  # one sort
    tails = (block <= low).astype(np.float64) + (block >= high)
    return np.stack(
        [
            _split_rhat(block),
            _split_rhat(np.abs(block - median)),
            _lag1(block),
            _lag1(tails),
        ]
    )


def _split_rhat(x: np.ndarray) -> np.ndarray:
    """Classic split R-hat of each scalar of `x` `(chain, draw, k)`."""
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, half : 2 * half]], axis=0)
    n = split.shape[1]
    within = split.var(axis=1, ddof=1).mean(axis=0)
    between = n * split.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1) / n * within + between / n) / within)


def _lag1(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each scalar of `x` `(chain, draw, k)`, pooled over
    chains (each chain centred on its own mean)."""
    c = x - x.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c[:, 1:] * c[:, :-1]).sum(axis=(0, 1)) / (c * c).sum(axis=(0, 1))


def _scalar_label(name: str, shape: tuple[int, ...], flat_index: int) -> str:
    """`theta[3, 1]` for the scalar at `flat_index` of a variable of `shape`."""
    if not shape:
        return name
    return f"{name}[{', '.join(map(str, np.unravel_index(flat_index, shape)))}]"


COLLAPSED = 1e-3  # a step size under this fraction of the chains' median has collapsed
_BLOCK = 2**22  # values (32 MiB of float64) per block of scalars in `_rhat_ess`
_WORST = 3  # scalars named per R-hat or ESS sentence
_SCREEN = 1024  # above this many scalars, R-hat and ESS run on the screened worst only
_SCREEN_KEEP = 256  # scalars kept per screening proxy and variable
_SCREEN_BLOCK = 2**19  # values (4 MiB of float64) per slice of a block `_proxies_of` reads
_ESS_PER_CHAIN = 100  # the least bulk and tail ESS per chain (Vehtari et al. 2021)
_FORMAT = {"max_rhat": ".3f", "min_ess_bulk": ".0f", "min_ess_tail": ".0f"}
