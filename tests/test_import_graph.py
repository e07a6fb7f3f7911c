"""The package's import graph: no cycles inside ``idp/``, and no HTTP layer importing another.

STYLE.md and DESIGN.md: one domain module per concept, thin HTTP layers (``flows``, ``oauth``,
``admin``, ``federation``, ``api``) that call the domain and never each other, no circular
imports. The graph is read from the source (every ``import``, at module level or inside a
function: a deferred import is still a dependency). One edge is left out: a package's
``__init__`` importing its own submodules so their routes join its blueprint, Flask's
documented pattern (``docs/patterns/packages.rst``); the submodules' imports of the package
are counted.
"""

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "idp"
HTTP_LAYERS = ("flows", "oauth", "admin", "federation", "api")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``idp`` modules ``name`` imports (``from pkg import module`` names the module itself)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "idp")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "idp":
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    resolved = set()
    for target in found:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            resolved.add(target)
    if is_package:  # Flask's blueprint pattern: the package face gathers its own route modules
        resolved = {target for target in resolved if not target.startswith(name + ".")}
    return resolved


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in HTTP_LAYERS else None


def lateral_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((source, target) for source, targets in graph.items() for target in targets
                  if layer_of(source) and layer_of(target) and layer_of(source) != layer_of(target))


def test_the_graph_reader_sees_relative_and_deferred_imports():
    graph = import_graph()
    assert "idp.extensions" in graph["idp.oauth"], "init_app's deferred `from ..extensions import ...`"
    assert "idp.account" in graph["idp.flows.login"], "`from .. import account as accounts`"
    assert "idp.flows" in graph["idp.flows.login"], "`from . import blueprint`: the package itself"


def test_no_import_cycle_inside_idp():
    assert cycles(import_graph()) == []


def test_no_http_layer_imports_another():
    assert lateral_imports(import_graph()) == []
