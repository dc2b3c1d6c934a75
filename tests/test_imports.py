"""The package's modules import one way: no circle among them, counting the imports made
inside functions too (a circle hidden in a function still ties two modules into one), and
leaving out imports for type checking only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "safeguard"


def _module(path: Path) -> str:
    return ".".join(("safeguard", *path.relative_to(PACKAGE).with_suffix("").parts)
                    ).removesuffix(".__init__")


def _type_checking_only(tree: ast.Module) -> set[int]:
    return {id(node) for top in tree.body
            if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
            for node in ast.walk(top)}


def _imports() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    graph = _imports()
    assert len(graph) > 30 and graph["safeguard.cli"], "the package was not read"
    assert _circles(graph) == []


def test_config_imports_nothing_of_ours():
    assert _imports()["safeguard.config"] == set()


def test_the_detector_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _lines_where(found, but_in: Path) -> list[str]:
    """``file:line`` of every line of the package and the DAG files, ``but_in`` aside, for
    which ``found(line)`` holds."""
    return sorted(
        f"{path.relative_to(PACKAGE.parents[1])}:{n}"
        for folder in (PACKAGE, PACKAGE.parents[1] / "dags")
        for path in folder.rglob("*.py") if path != but_in
        for n, line in enumerate(path.read_text().splitlines(), 1) if found(line))


def test_the_environment_is_read_in_the_settings_module_only():
    """One home per setting: every other module asks ``safeguard.config``."""
    assert _lines_where(lambda line: "os.environ" in line or "getenv(" in line,
                        but_in=PACKAGE / "config.py") == []


def test_dag_ids_are_written_once():
    """The DAG files, the runner and the CLI take the ids from ``safeguard.dag_ids``."""
    from safeguard.dag_ids import TRANSFORM_DAG, ingest_dag_id

    literals = (f'"{TRANSFORM_DAG}"', f"'{TRANSFORM_DAG}'", ingest_dag_id("").join('""'),
                'f"ingest__')
    assert _lines_where(lambda line: not line.lstrip().startswith("#")
                        and any(s in line for s in literals),
                        but_in=PACKAGE / "dag_ids.py") == []


def test_role_names_are_written_once():
    """The warehouse's role names live in ``safeguard.config.ROLES``: the SQL files take them as
    psql variables, dbt's profile and the Superset bundle from the environment and the import,
    the tests from ROLES. (The README names them for people.)"""
    import re
    import subprocess

    from safeguard.config import ROLES

    root = PACKAGE.parents[1]
    names = re.compile(r"\b(" + "|".join(map(re.escape, ROLES.values())) + r")\b")
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                           check=True).stdout.split()
    found = []
    for name in files:
        path = root / name
        if name in ("README.md", "src/safeguard/config.py", "uv.lock") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1)
                  if names.search(line)]
    assert found == []
