"""Imports point one way: every module's imports (module level and inside functions) go to its own
layer or to the layers below it, and no chain of imports comes back to where it started.

    extractors                 frozen encoders, clip timing, the cache, atomic files
    toy_world                  the toy-foley dataset (writer and reader)
    mapper core                config, arguments, fusion, model, diffusion_mapper, loading, last_mapper,
                               envelope_predictor, generation_defaults
    mapper.decoders            AudioLDM-2 (and how the toy one was pretrained)
    mapper.training            Lightning module, data, callbacks
    mapper.generation          the pipeline; the `mapper` package's public API sits on it
    evaluation                 metrics, embedders, the toy report
    recipes                    entry points (python -m recipes.<name>)
    benchmarks                 measured figures of everything above
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("extractors", "toy_world", "mapper", "evaluation", "recipes", "benchmarks")
MAPPER_CORE = {"arguments", "config", "fusion", "model", "diffusion_mapper", "loading", "last_mapper",
               "envelope_predictor", "generation_defaults"}

# each group: the groups it may import (besides itself)
ALLOWED = {
    "extractors": set(),
    "toy_world": {"extractors"},
    "mapper.core": {"extractors"},
    "mapper.decoders": {"extractors", "toy_world"},
    "mapper.training": {"extractors", "toy_world", "mapper.core", "mapper.decoders"},
    "mapper.generation": {"extractors", "mapper.core", "mapper.decoders"},
    "mapper": {"mapper.core", "mapper.generation"},
    "evaluation": {"extractors", "toy_world", "mapper", "mapper.core", "mapper.decoders", "mapper.training",
                   "mapper.generation"},
}
ALLOWED["recipes"] = set(ALLOWED) - {"recipes"}
ALLOWED["benchmarks"] = set(ALLOWED) - {"benchmarks"}


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def group(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "mapper":
        return parts[0]
    if len(parts) == 1:
        return "mapper"
    return "mapper.core" if parts[1] in MAPPER_CORE else f"mapper.{parts[1]}"


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its file (an `from a import b` counts as a.b when
    b is a module, else as a)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def test_every_import_points_down(graph):
    upward = [f"{module} imports {target}" for module, targets in sorted(graph.items()) for target in sorted(targets)
              if group(target) != group(module) and group(target) not in ALLOWED[group(module)]]
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_import_cycle(graph):
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(cycle)) for cycle in cycles)


def test_the_checker_sees_function_level_and_upward_imports(tmp_path):
    """The checker itself: an import inside a function is found, and an upward one is named."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from recipes.generate import main\n    from . import fusion\n")
    modules = {"recipes.generate": path, "mapper.fusion": path, "mapper.model": path}
    assert imported_modules("mapper.model", path, modules) == {"recipes.generate", "mapper.fusion"}
    assert "recipes" not in ALLOWED[group("mapper.model")]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module (each is a cycle)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components
