"""Pytree utilities of the core: readable leaf names, structure checks that name the
culprit, dataclass pytrees, and static wrappers that compare equal."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

__all__ = [
    "Frozen",
    "as_arrays",
    "check_names",
    "check_structure",
    "leaf_names",
    "pytree_dataclass",
    "static_field",
    "static_key",
]

T = TypeVar("T")


def _key_name(key: Any) -> str:
    if isinstance(key, jax.tree_util.DictKey):
        return f".{key.key}"
    if isinstance(key, jax.tree_util.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jax.tree_util.GetAttrKey):
        return f".{key.name}"
    return str(key)


def leaf_names(tree: PyTree, root: str = "x") -> list[str]:
    """Readable names for the leaves of `tree`, in `jax.tree.leaves` order.

    A dict `{"mu": ., "tau": .}` gives `["mu", "tau"]`, an Equinox module gives
    `["weight", "layers[0].bias"]`, a bare array gives `[root]`.
    """
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "".join(_key_name(k) for k in path).lstrip(".")
        names.append(name or root)
    return names


def check_structure(expected: PyTree, got: PyTree, what: str) -> None:
    """Raise `ValueError` unless `got` has the pytree structure of `expected`, naming
    the leaves one has and the other lacks (never binding leaves by position)."""
    if jax.tree.structure(expected) == jax.tree.structure(got):  # type: ignore[operator]
        return
    want, have = leaf_names(expected, what), leaf_names(got, what)
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    detail = "; ".join(
        part
        for part in (
            f"missing {missing}" if missing else "",
            f"unexpected {extra}" if extra else "",
        )
        if part
    )
    raise ValueError(
        f"{what} must have the structure the model was built with: "
        f"{detail or 'the containers differ'} (expected {jax.tree.structure(expected)}, "
        f"got {jax.tree.structure(got)})."
    )


def check_names(expected: Any, given: Any, what: str) -> None:
    """Raise `ValueError` unless `given` names exactly the `expected` keys, naming the
    missing and the unexpected ones (`what` says what they are)."""
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    if missing or extra:
        raise ValueError(f"{what}: missing {missing}, unexpected {extra}.")


def as_arrays(tree: PyTree, what: str) -> PyTree:
    """Every leaf of `tree` as a JAX array, or a `TypeError` naming the leaf."""
    names = leaf_names(tree, what)
    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for name, leaf in zip(names, leaves, strict=True):
        try:
            out.append(jnp.asarray(leaf))
        except TypeError as e:
            raise TypeError(
                f"{what} leaf {name!r} is not an array ({type(leaf).__name__}): {e}"
            ) from None
    return jax.tree.unflatten(treedef, out)


def static_field(default: Any = None) -> Any:
    return dataclasses.field(default=default, metadata={"static": True})


def pytree_dataclass(cls: type[T]) -> type[T]:
    """Register the dataclass `cls` as a pytree: fields declared with
    `metadata={"static": True}` are static (part of the compilation key), the others
    children. Instances are rebuilt without calling `__init__` (as Equinox modules are),
    so a validating constructor runs once, when the user builds the object, not at
    every `jit` boundary."""
    fields = dataclasses.fields(cast(Any, cls))
    children = tuple(f.name for f in fields if not f.metadata.get("static"))
    statics = tuple(f.name for f in fields if f.metadata.get("static"))

    def flatten_with_keys(x: Any) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        keyed = [(jax.tree_util.GetAttrKey(n), getattr(x, n)) for n in children]
        return keyed, tuple(getattr(x, n) for n in statics)

    def flatten(x: Any) -> tuple[list[Any], tuple[Any, ...]]:
        return [getattr(x, n) for n in children], tuple(getattr(x, n) for n in statics)

    def unflatten(static: tuple[Any, ...], leaves: Any) -> Any:
        obj = object.__new__(cls)
        pairs = (*zip(statics, static, strict=True), *zip(children, leaves, strict=True))
        for name, value in pairs:
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def static_key(leaf: Any) -> Any:
    """`leaf` itself if hashable, else its identity: a key for a static argument, so two
    compiled-function wrappers compare equal exactly when their static parts do."""
    try:
        hash(leaf)
    except TypeError:
        return ("id", id(leaf))
    return leaf


class Frozen:
    """A wrapper equal to (and hashed like) another of its type with the same `key`.

    The functions a `Model` holds are static parts of its pytree, so `jax.jit` compiles
    once per equal set of them: two wrappers of the same model function and static
    arguments must compare equal for new data to reuse compiled code. Subclasses set
    `self.key` (a tuple of hashables; see [`static_key`][]) in `__init__`.
    """

    key: tuple[Any, ...]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.key == self.key

    def __hash__(self) -> int:
        return hash((type(self), self.key))
