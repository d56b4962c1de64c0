"""A run on disk, chunk by chunk: `sample(..., checkpoint=path)` and `resume(path, ...)`.

The store is a zarr directory in ArviZ's layout (one group per `InferenceData` group,
written by xarray, readable by `arviz.from_zarr`), plus the whole sampler state in two
slots and a commit record in the root's attributes. A chunk is written in this order:
its draws (appended along `draw`), the state into the slot not in use, then the commit
record naming the slot and the steps completed. zarr's local store writes every file
atomically (a temporary file, then a rename), so the commit record is either the old
one or the new one: a process killed anywhere leaves the last committed chunk intact,
and the draws of a torn chunk past it are cut off when the run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import zarr

from .._protocol import LogDensity
from .._sharding import barrier, is_main_process
from .._tree import leaf_names
from ._settings import Config, Settings
from ._state import SamplerState, from_host_leaves, host_leaves

__all__ = ["Store"]

_COMMIT = "logdensity_commit"
_RUN = "logdensity_run"
_DRAWN = ("posterior", "sample_stats", "warmup_posterior", "warmup_sample_stats")
_WHOLE = ("adaptation", "sampler_state")


def structure(model: LogDensity) -> dict[str, Any]:
    """What a store's draws and state depend on: the position's leaves (shape, dtype)
    and the constrained variables' shapes."""
    position = {
        name: [list(np.shape(x)), str(jnp.result_type(x))]
        for name, x in zip(
            leaf_names(model.initial_position),
            jax.tree.leaves(model.initial_position),
            strict=True,
        )
    }
    variables = {name: list(v.shape) for name, v in model.variables.items()}
    return {"position": position, "variables": variables}


def differences(stored: dict[str, Any], model: dict[str, Any]) -> list[str]:
    """Human-readable differences between two `structure`s."""
    out = []
    for part, what in (("position", "position leaf"), ("variables", "variable")):
        a, b = stored[part], model[part]
        out += [f"{what} {k!r} is in the store, not in the model" for k in a if k not in b]
        out += [f"{what} {k!r} is in the model, not in the store" for k in b if k not in a]
        out += [
            f"{what} {k!r}: the store has {a[k]}, the model {b[k]}"
            for k in a
            if k in b and a[k] != b[k]
        ]
    return out


class Store:
    """One run's zarr store (see the module docstring for the layout).

    Under several processes (`jax.distributed`) process 0 writes; the others hold a
    `shadow` of the store's attributes (the run and its last commit) that they keep as
    process 0 does, compute what it does (the state's gathering is collective), write
    nothing, and read the store once it is written (`inference_data`). The path must be
    on a file system every process sees."""

    def __init__(self, path: Path, root: zarr.Group | None, shadow: dict[str, Any] | None = None):
        self.path, self.root, self.shadow = path, root, shadow

    @property
    def _attrs(self) -> Any:
        return self.root.attrs if self.shadow is None else self.shadow  # type: ignore[union-attr]

    # -- creating and opening --------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike, model: LogDensity, settings: Settings, run: dict[str, Any]
    ) -> Store:
        """A new store for a run of `model` with `settings`.

        **Raises:** `FileExistsError` if `path` exists (a store is never overwritten).
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(
                f"checkpoint {str(path)!r} already exists: continue it with "
                f"logdensity.resume({str(path)!r}, model), or remove it first."
            )
        attrs = {
            _RUN: json.loads(json.dumps(run, default=_plain))
            | {
                "settings": dataclasses.asdict(settings),
                "structure": structure(model),
            }
        }
        barrier("logdensity: checkpoint path checked")  # before process 0 creates it
        if not is_main_process():
            return cls(path, None, shadow=attrs)
        root = zarr.open_group(path, mode="w-")
        root.attrs.update(attrs)
        return cls(path, root)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Store:
        """An existing store.

        **Raises:** `FileNotFoundError` if `path` holds no store written by `sample`
        (or none whose first commit was completed).
        """
        path = Path(path)
        try:
            root = zarr.open_group(path, mode="r+" if is_main_process() else "r")
        except FileNotFoundError:
            raise FileNotFoundError(f"no checkpoint at {str(path)!r}.") from None
        if _COMMIT not in root.attrs:
            raise FileNotFoundError(
                f"{str(path)!r} is not a logdensity checkpoint, or its run was killed "
                "before its first commit: start the run again."
            )
        if not is_main_process():
            return cls(path, None, shadow={k: dict(root.attrs[k]) for k in (_RUN, _COMMIT)})  # type: ignore[arg-type]
        return cls(path, root)

    @property
    def run(self) -> dict[str, Any]:
        """What `sample` was called with: `settings`, `structure` and the run's attrs."""
        return dict(self._attrs[_RUN])

    @property
    def commit(self) -> dict[str, Any]:
        """The last commit: `phase` (`"warmup"`, `"sampling"`, `"done"`), `steps`
        completed in it, `draws` per group, `slot`, `timings`."""
        return dict(self._attrs[_COMMIT])

    def settings(self, *, progress_bar: bool) -> Settings:
        stored = dict(self.run["settings"])
        config = Config(**stored.pop("config"))
        return Settings(config=config, **stored | {"progress_bar": progress_bar})

    def check(self, model: LogDensity) -> None:
        """**Raises:** `ValueError` listing every difference between the structure of
        `model` and that of the store's model."""
        problems = differences(self.run["structure"], structure(model))
        if problems:
            raise ValueError(
                f"the model differs from the one checkpointed in {str(self.path)!r}:\n  "
                + "\n  ".join(problems)
            )

    # -- writing ---------------------------------------------------------------------

    def append(self, group: str, ds: xr.Dataset, first: int) -> None:
        """`ds` as the draws `first:first + ds.draw.size` of `group`."""
        if self.shadow is not None:
            return
        ds = _vlen(ds.assign_coords(draw=np.arange(first, first + ds.sizes["draw"])))
        if first == 0 or group not in self.root:  # type: ignore[operator]
            ds.to_zarr(self.path, group=group, mode="w", consolidated=False)
        else:
            ds.to_zarr(self.path, group=group, append_dim="draw", consolidated=False)

    def put(self, group: str, ds: xr.Dataset) -> None:
        """A group written whole (the adapted parameters, the continuation state)."""
        if self.shadow is not None:
            return
        _vlen(ds).to_zarr(self.path, group=group, mode="w", consolidated=False)

    def save(
        self,
        state: SamplerState,
        phase: str,
        steps: int,
        draws: dict[str, int],
        timings: dict[str, float],
    ) -> None:
        """Write `state` to the free slot, then commit it (the last write of a chunk)."""
        previous = self.commit if _COMMIT in self._attrs else {"slot": 1}
        slot = 1 - int(previous["slot"])
        leaves, impl = host_leaves(state)  # on every process: it gathers
        commit = {
            "phase": phase,
            "steps": int(steps),
            "draws": dict(draws),
            "slot": slot,
            "timings": dict(timings),
        }
        if self.shadow is not None:
            self.shadow[_COMMIT] = commit
            return
        group = zarr.open_group(self.path, path=f"state_{slot}", mode="w")
        for i, (name, value) in enumerate(leaves):
            dims = [f"leaf_{i}_dim_{k}" for k in range(value.ndim)]  # for xarray's reader
            array = group.create_array(
                f"leaf_{i}", shape=value.shape, dtype=value.dtype, dimension_names=dims
            )
            if value.size:
                array[...] = value
            array.attrs["path"] = name
        group.attrs["key_impl"] = impl
        self.root.attrs[_COMMIT] = commit  # type: ignore[union-attr,assignment]

    def finish(self, timings: dict[str, float], interrupted: str) -> None:
        commit = self.commit | {"timings": dict(timings)}
        if not interrupted:
            commit["phase"] = "done"
        self._attrs[_COMMIT] = commit

    # -- reading ---------------------------------------------------------------------

    def load_state(self, template: SamplerState) -> SamplerState:
        """The committed state, rebuilt into `template`'s structure (whose `rng_key`
        leaf may be a placeholder: the stored key data decides its shape)."""
        group = zarr.open_group(self.path, path=f"state_{self.commit['slot']}", mode="r")
        n = len(list(group.array_keys()))
        leaves = []
        for i in range(n):
            array = group[f"leaf_{i}"]
            leaves.append((str(array.attrs["path"]), np.asarray(array[...])))  # type: ignore[index]
        keys = dict(leaves)[".rng_key"]
        template = template._replace(rng_key=jax.ShapeDtypeStruct(keys.shape, keys.dtype))
        return from_host_leaves(template, leaves, str(group.attrs["key_impl"]))

    def truncate(self) -> None:
        """Cut every drawn group back to its committed draws (a torn chunk's are past
        them)."""
        if self.shadow is not None:
            return
        for name, n in self.commit["draws"].items():
            if name not in self.root:  # type: ignore[operator]
                continue
            for _, array in self.root[name].arrays():  # type: ignore[index,union-attr]
                dims = array.metadata.dimension_names or ()  # type: ignore[union-attr]
                if "draw" in dims:
                    axis = list(dims).index("draw")
                    if array.shape[axis] != n:
                        shape = list(array.shape)
                        shape[axis] = n
                        array.resize(tuple(shape))

    def inference_data(self, attrs: dict[str, Any]) -> az.InferenceData:
        """The run as an `InferenceData` backed lazily by the store (values are read
        when used), every drawn group cut to its committed draws. Under several
        processes, once process 0 has written it."""
        barrier("logdensity: checkpoint written")
        draws = self.commit["draws"]
        groups = {}
        root = zarr.open_group(self.path, mode="r")
        for name in (*_DRAWN, *_WHOLE):
            if name not in root:
                continue
            ds = xr.open_dataset(
                self.path,
                group=name,
                engine="zarr",
                consolidated=False,
                chunks=None,
                cache=False,
                mask_and_scale=False,
            )
            if name in _DRAWN:
                ds = ds.isel(draw=slice(0, draws.get(name, 0)))
                ds.attrs.update(attrs)
            groups[name] = ds
        idata = az.InferenceData(
            **{k: v for k, v in groups.items() if k in _DRAWN}, warn_on_custom_groups=False
        )
        extra = {k: v for k, v in groups.items() if k in _WHOLE}
        if extra:
            idata.add_groups(extra, warn_on_custom_groups=False)
        return idata


def _vlen(ds: xr.Dataset) -> xr.Dataset:
    """String labels as variable-length strings: zarr v3 specifies those, not NumPy's
    fixed-width ones (which it stores with an `UnstableSpecificationWarning`)."""
    labels = {k: ds[k].astype(object) for k in ds.coords if ds[k].dtype.kind == "U"}
    return ds.assign_coords(labels) if labels else ds


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else str(x)
