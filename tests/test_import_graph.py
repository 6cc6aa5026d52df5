"""src/robostore imports no module that (directly or not) imports it back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "import_graph.py"


def _tool():
    spec = importlib.util.spec_from_file_location("import_graph", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def test_src_has_no_import_cycle() -> None:
    tool = _tool()
    graph = tool.import_graph()
    assert "robostore.meta" in graph and "robostore.layout" in graph["robostore.meta"]
    assert tool.cycles(graph) == []


def test_the_cycle_finder_finds_cycles(tmp_path: Path) -> None:
    # A lazy (function-level) import and a TYPE_CHECKING import close cycles too.
    pkg = tmp_path / "robostore"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from robostore.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import robostore.d\n")
    (pkg / "d.py").write_text("from robostore import c\n")
    (pkg / "e.py").write_text("import robostore.a\n")
    tool = _tool()
    graph = tool.import_graph(tmp_path)
    assert tool.cycles(graph) == [["robostore.a", "robostore.sub.b"], ["robostore.c", "robostore.d"]]
