"""The import graph, read from the source (every import statement, at module level or inside a
function): nothing below ui/ imports ui/, the core imports neither probe/ nor report/, and no
two modules import each other at module level, directly or through others."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "napkin_gui"


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module of napkin_gui imported, at module level?) for each import in path."""
    module, is_package = _name(path), path.name == "__init__.py"
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            here = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import):
                found.extend((alias.name, here) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = module.split(".")[: None if is_package else -1]
                if child.level:
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.extend([(target, here)] + [(f"{target}.{alias.name}", here) for alias in child.names])
            visit(child, here)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def _graph() -> dict[str, dict[str, bool]]:
    modules = {_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, bool]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, top in _imports(path):
            if target in modules and target != name:
                edges[target] = edges.get(target, False) or top
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_nothing_below_ui_imports_ui_and_the_core_imports_no_probe_or_report():
    graph = _graph()
    assert len(graph) > 50  # the source was found
    wrong = [(a, b) for a, edges in graph.items() for b in edges
             if (_layer(a) in ("core", "probe", "report") and _layer(b) == "ui")
             or (_layer(a) == "core" and _layer(b) in ("probe", "report"))]
    assert wrong == []


def test_no_import_cycle_at_module_level():
    graph = {a: [b for b, top in edges.items() if top] for a, edges in _graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def path_back(module: str, trail: list[str]) -> list[str]:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                return trail + [module, target]
            if target not in state and (cycle := path_back(target, trail + [module])):
                return cycle
        state[module] = 2
        return []

    for module in graph:
        if module not in state:
            assert path_back(module, []) == []


def test_layer_summary_names_every_layer_and_no_upward_import():
    lines = layer_summary()
    assert {"core: ", "ui: ", "probe: ", "report: "} <= {line.split(":")[0] + ": " for line in lines}
    assert not [line for line in lines if line.startswith(("core -> ui", "probe -> ui", "report -> ui"))]


def test_no_two_layers_import_each_other_even_lazily():
    """The layers form a ladder: no pair imports both ways, not even inside a function (core ->
    names at module level with names -> core.gpu_catalog in a function was such a pair)."""
    pairs = {tuple(line.split(":")[0].split(" -> ")) for line in layer_summary() if " -> " in line}
    assert not [(a, b) for a, b in pairs if (b, a) in pairs]


def layer_summary() -> list[str]:
    """The modules in each layer (a top-level module of napkin_gui is a layer of its own), then
    'A -> B: n imports (m at module level)' for each pair of layers."""
    graph = _graph()
    pairs: dict[tuple[str, str], list[bool]] = {}
    for a, edges in graph.items():
        for b, top in edges.items():
            la, lb = _layer(a) or a, _layer(b) or b
            if la != lb and b != "napkin_gui":  # 'from .. import palette' names the package too
                pairs.setdefault((la, lb), []).append(top)
    sizes: dict[str, int] = {}
    for module in graph:
        if module != "napkin_gui":
            sizes[_layer(module) or module] = sizes.get(_layer(module) or module, 0) + 1
    lines = [f"{name}: {n} module{'s' if n > 1 else ''}" for name, n in sorted(sizes.items())]
    lines += [f"{a} -> {b}: {len(tops)} import{'s' if len(tops) > 1 else ''} ({sum(tops)} at module level)"
              for (a, b), tops in sorted(pairs.items())]
    return lines


if __name__ == "__main__":  # python tests/test_import_graph.py: the layers and who imports whom
    print("\n".join(layer_summary()))
