"""The package's shape: no import cycle anywhere in `logdensity/`, lazy imports included
(a cycle hidden in a function-level import still ties two modules into one)."""

import ast
import pkgutil
from pathlib import Path

import logdensity

ROOT = Path(logdensity.__file__).parent


def _modules() -> dict[str, Path]:
    out = {"logdensity": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix="logdensity."):
        path = ROOT.joinpath(*info.name.split(".")[1:])
        out[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The logdensity modules `name` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # `from pkg import mod` imports the module pkg.mod where there is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    modules = _modules()
    # a package's __init__ re-exports its children: the edges that matter are between
    # the modules that hold code, so a package's own re-exports are not followed back
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    for name, path in modules.items():
        if path.name == "__init__.py":
            for other in graph:
                if other.startswith(name + ".") and name in graph[other]:
                    raise AssertionError(f"{other} imports its own package {name}")
    assert len(modules) > 30, sorted(modules)  # the walk found the package
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_walk_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
