"""Imports go one way (DESIGN §6): no cycles, no import from a higher layer, Lance opened
only by the store, Ray and Lance never imported by a widget.

Every import counts: module level, inside functions and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "solstice_inspect"

#: DESIGN §6, lowest first; names are relative to the package, "x.*" is every module
#: under x. The package's own ``__init__`` is above them all.
LAYERS: dict[str, list[str]] = {
    "errors/schema": ["errors", "schema"],
    "protocol": ["protocol", "semantics"],
    "store": ["store", "store.*"],
    "recorder/live": [
        "recorder", "recorder.*", "live", "ray_tools", "profiling", "follow", "follow.*",
    ],
    "analysis": ["analysis", "analysis.*"],
    "views": [
        "widgets", "widgets.*", "report", "report.*", "cli", "charts", "api", "api.*",
        "demo", "demo.*", "ops", "ops.*", "portal", "portal.*", "archives", "archives.*",
        "raydata",
    ],
}  # fmt: skip
TOP = "package __init__"
RAY_TOOLS_USERS = ("views", TOP)
LANCE = ("lance", "lancedb")
#: the reference pipeline is *user* code: its sink writes its own output as a Lance
#: dataset, which is the job's data, not the job store
USER_CODE = ("demo",)


@dataclass(frozen=True)
class Import:
    """One import statement: ``src`` imports ``dst`` (a module of ours, or an outside
    top-level package such as ``ray``) at ``path:line``, ``where`` in the file."""

    src: str
    dst: str
    path: str
    line: int
    where: str

    def at(self) -> str:
        return f"{self.path}:{self.line}" + (f" ({self.where})" if self.where else "")


@dataclass(repr=False)
class Graph:
    package: str
    modules: set[str]
    internal: list[Import]  # between our modules
    external: list[Import]  # to other top-level packages

    def __repr__(self) -> str:  # short: pytest prints it next to a failure
        return f"<imports of {self.package}: {len(self.modules)} modules>"


# ------------------------------------------------------------------ the checker
def _modules(pkg_dir: Path) -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package)} for every .py file under ``pkg_dir``."""
    found = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = [pkg_dir.name, *path.relative_to(pkg_dir).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


class _Collector(ast.NodeVisitor):
    """Every import in one module, with where it sits (a function, TYPE_CHECKING)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.context: list[str] = []
        self.found: list[tuple[str, int, str, list[str]]] = []  # (module, line, where, names)

    def _where(self) -> str:
        return ", ".join(self.context)

    def _nested(self, label: str, node: ast.AST) -> None:
        self.context.append(label)
        self.generic_visit(node)
        self.context.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._nested(f"in {node.name}()", node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._nested(f"in {node.name}()", node)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.context.append("under TYPE_CHECKING")
        for child in node.body:
            self.visit(child)
        self.context.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self._where(), []))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.module.split(".")
            if not self.is_package:
                parts.pop()
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        names = [a.name for a in node.names if a.name != "*"]
        self.found.append((base, node.lineno, self._where(), names))

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("x.y") with a constant name is an import too
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            name == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            self.found.append((node.args[0].value, node.lineno, self._where(), []))
        self.generic_visit(node)


def import_graph(pkg_dir: Path) -> Graph:
    """The import graph of the package at ``pkg_dir``, one edge per import statement
    (``from x import y`` is an edge to ``x.y`` when that is a module, else to ``x``)."""
    package = pkg_dir.name
    modules = _modules(pkg_dir)
    internal: list[Import] = []
    external: list[Import] = []
    for module, (path, is_package) in modules.items():
        rel = str(path.relative_to(pkg_dir.parent))
        collector = _Collector(module, is_package)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for target, line, where, names in collector.found:
            if target != package and not target.startswith(package + "."):
                external.append(Import(module, target.split(".")[0], rel, line, where))
                continue
            dsts = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            if len(dsts) < len(names) or not names:
                dsts.append(target)  # names defined in target itself (or `import target`)
            for dst in dict.fromkeys(dsts):
                if dst not in modules:
                    raise AssertionError(f"{rel}:{line} imports {dst}, which does not exist")
                if dst != module:
                    internal.append(Import(module, dst, rel, line, where))
    return Graph(package, set(modules), internal, external)


def layer_of(module: str, package: str) -> str:
    if module == package:
        return TOP
    rel = module[len(package) + 1 :]
    for layer, patterns in LAYERS.items():
        for pattern in patterns:
            if rel == pattern or (pattern.endswith(".*") and rel.startswith(pattern[:-1])):
                return layer
    raise AssertionError(
        f"{module} belongs to no layer of DESIGN §6: add it to LAYERS in {Path(__file__).name}"
    )


def _rank(layer: str) -> int:
    return len(LAYERS) if layer == TOP else list(LAYERS).index(layer)


def cycles(graph: Graph) -> list[str]:
    """One line per import cycle: the shortest cycle through each module that is in one,
    every step with the file and line of its import."""
    first: dict[tuple[str, str], Import] = {}
    for imp in graph.internal:
        first.setdefault((imp.src, imp.dst), imp)
    out: dict[str, set[str]] = {m: set() for m in graph.modules}
    for src, dst in first:
        out[src].add(dst)

    seen: set[frozenset[tuple[str, str]]] = set()
    lines = []
    for start in sorted(graph.modules):
        # breadth-first from start's successors back to start: the shortest cycle through it
        parent: dict[str, str] = {}
        queue = [start]
        while queue and start not in parent:
            nxt = []
            for node in queue:
                for succ in sorted(out[node]):
                    if succ not in parent:
                        parent[succ] = node
                        nxt.append(succ)
            queue = nxt
        if start not in parent:
            continue
        path = [start]
        while True:
            path.append(parent[path[-1]])
            if path[-1] == start:
                break
        path.reverse()
        steps = frozenset(itertools.pairwise(path))
        if steps in seen:
            continue
        seen.add(steps)
        hops = " → ".join(f"{a} [{first[(a, b)].at()}]" for a, b in itertools.pairwise(path))
        lines.append(f"cycle: {hops} → {start}")
    return lines


def layer_violations(graph: Graph) -> list[str]:
    """Imports of a higher layer, and ray_tools imported below the views."""
    problems = []
    for imp in graph.internal:
        src, dst = layer_of(imp.src, graph.package), layer_of(imp.dst, graph.package)
        if _rank(dst) > _rank(src):
            problems.append(
                f"{imp.src} (layer {src!r}) imports {imp.dst} (layer {dst!r}, higher) at {imp.at()}"
            )
        elif imp.dst == f"{graph.package}.ray_tools" and src not in RAY_TOOLS_USERS:
            problems.append(
                f"{imp.src} (layer {src!r}) imports ray_tools at {imp.at()}: only the views "
                "and the package __init__ may"
            )
    return problems


def outside_imports(graph: Graph) -> list[str]:
    """Lance imported outside the store; Lance or Ray imported by a widget."""
    store, widgets = f"{graph.package}.store", f"{graph.package}.widgets"
    user = tuple(f"{graph.package}.{u}" for u in USER_CODE)
    problems = []
    for imp in graph.external:
        in_store = imp.src == store or imp.src.startswith(store + ".")
        in_store |= imp.src in user or imp.src.startswith(tuple(u + "." for u in user))
        in_widgets = imp.src == widgets or imp.src.startswith(widgets + ".")
        if imp.dst in LANCE and not in_store:
            problems.append(
                f"{imp.src} imports {imp.dst} at {imp.at()}: only the store opens Lance"
            )
        if in_widgets and imp.dst in (*LANCE, "ray"):
            problems.append(f"{imp.src} imports {imp.dst} at {imp.at()}: widgets take a Job")
    return problems


def _check(what: str, problems: list[str]) -> None:
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n  " + "\n  ".join(problems), pytrace=False)


# ------------------------------------------------------------------ solstice_inspect
@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE)


def test_the_graph_sees_the_packages_imports(graph):
    # guards against a checker that finds nothing and so passes everything
    assert len(graph.modules) > 20
    assert {"solstice_inspect.errors", "solstice_inspect.store"} <= {i.dst for i in graph.internal}
    assert {"pyarrow", "lance", "ray"} <= {i.dst for i in graph.external}


def test_no_import_cycles(graph):
    _check("import cycle(s)", cycles(graph))


def test_imports_follow_the_layers_of_design_section_6(graph):
    _check("import(s) against the layer order", layer_violations(graph))


def test_only_the_store_opens_lance_and_widgets_import_neither_lance_nor_ray(graph):
    _check("forbidden import(s)", outside_imports(graph))


# ------------------------------------------------------------------ the checker itself
def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_checker_reports_cycles_layer_breaks_and_forbidden_imports(tmp_path):
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "from pkg import widgets\n",
            "errors.py": "import lance\n",
            "store/__init__.py": "from .reader import Job\n",
            "store/reader.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from . import writer

                class Job:
                    pass
                """,
            "store/writer.py": """\
                def make():
                    from pkg.store.reader import Job
                    from pkg import ray_tools
                    return Job()
                """,
            "ray_tools.py": "import ray\n",
            "widgets/__init__.py": "from ..analysis import stats\n",
            "widgets/view.py": "import importlib\nray = importlib.import_module('ray')\n",
            "analysis/__init__.py": "",
            "analysis/stats.py": "from pkg.errors import *\nfrom pkg.ray_tools import ray\n",
            "schema.py": "from pkg.widgets import view\nRow = tuple\n",
        },
    )
    graph = import_graph(pkg)

    assert cycles(graph) == [
        "cycle: pkg.store.reader [pkg/store/reader.py:4 (under TYPE_CHECKING)]"
        " → pkg.store.writer [pkg/store/writer.py:2 (in make())] → pkg.store.reader",
    ]
    assert layer_violations(graph) == [
        "pkg.analysis.stats (layer 'analysis') imports ray_tools at pkg/analysis/stats.py:2:"
        " only the views and the package __init__ may",
        "pkg.schema (layer 'errors/schema') imports pkg.widgets.view (layer 'views', higher)"
        " at pkg/schema.py:1",
        "pkg.store.writer (layer 'store') imports pkg.ray_tools (layer 'recorder/live',"
        " higher) at pkg/store/writer.py:3 (in make())",
    ]
    assert outside_imports(graph) == [
        "pkg.errors imports lance at pkg/errors.py:1: only the store opens Lance",
        "pkg.widgets.view imports ray at pkg/widgets/view.py:2: widgets take a Job",
    ]


def test_a_module_outside_every_layer_is_named(tmp_path):
    graph = import_graph(
        _write(tmp_path, {"__init__.py": "", "utils.py": "from pkg import x\n", "x.py": ""})
    )
    with pytest.raises(AssertionError, match=r"pkg\.utils belongs to no layer"):
        layer_violations(graph)
