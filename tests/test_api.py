"""The package's shape: a public API at ``import poldist`` that loads nothing heavy, and no import
circles between its modules (issue 20)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import poldist

SRC = Path(poldist.__file__).parent


def test_import_poldist_is_light_and_every_public_name_resolves() -> None:
    code = (
        "import sys, poldist\n"
        "assert 'torch' not in sys.modules, 'import poldist loaded torch'\n"
        "missing = [n for n in poldist.__all__ if getattr(poldist, n, None) is None]\n"
        "assert not missing, missing\n"
        "heavy = ('ray', 'matplotlib', 'tensorboard', 'torch.utils.tensorboard', 'onnx', 'onnxruntime')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"  # optional dependencies wait for the code that needs them


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at module level or inside functions."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_circles() -> None:
    graph = _import_graph()
    assert graph["poldist.ray_backend"] >= {"poldist.collection"}
    assert "poldist.distillation" not in graph["poldist.ray_backend"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
