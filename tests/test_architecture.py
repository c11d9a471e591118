"""The shape of the house: imports run one way (ARCHITECTURE.md).

The graph is grimp's (the library import-linter is built on): every ``import`` in
``biobank/``, those inside functions included, so a cycle cannot hide in a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

import biobank

PACKAGE = Path(biobank.__file__).resolve().parent


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The import graph of the biobank package."""
    return grimp.build_graph("biobank", cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[str]:
    """One line per import that is part of a cycle: the import, then the chain back."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                found.append(f"{importer} -> {' -> '.join(back)}")
    return found


def test_no_module_of_biobank_is_part_of_an_import_cycle(graph):
    """No chain of imports in biobank/ leads back to where it started."""
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle():
    """An import added from a leaf back up to its importer is reported (the check can fail)."""
    graph = grimp.build_graph("biobank", cache_dir=None)
    graph.add_import(importer="biobank.clock", imported="biobank.consent.service")
    assert cycles(graph)


def test_no_module_guards_an_import_of_the_project_s_own_modules():
    """Every domain is always installed: no ``try: import biobank... except ImportError``."""
    guarded = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try) or not any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                for h in node.handlers
            ):
                continue
            own = [
                n
                for stmt in node.body
                for n in ast.walk(stmt)
                if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("biobank")
                or isinstance(n, ast.Import)
                and any(a.name.startswith("biobank") for a in n.names)
            ]
            if own:
                guarded.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert guarded == []


# Where the app is put together: these import every domain's blueprint.
COMPOSITION = {"biobank", "biobank.api"}


def back_arrows(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """Imports of another domain's ``api`` module (its blueprint) from outside the
    composition root."""

    def domain(module: str) -> str:
        return module.split(".")[1]

    return {
        (i["importer"], i["imported"])
        for i in graph.find_matching_direct_imports("biobank.** -> biobank.*.api")
        if i["importer"] not in COMPOSITION and domain(i["importer"]) != domain(i["imported"])
    }


def test_no_domain_imports_another_domain_s_api(graph):
    """Shared plumbing lives below the blueprints: a domain's api is imported only by the app."""
    assert back_arrows(graph) == set()


def test_the_back_arrow_check_sees_one():
    """An import of another domain's api is reported (the check can fail)."""
    graph = grimp.build_graph("biobank", cache_dir=None)
    graph.add_import(importer="biobank.web.boxes", imported="biobank.storage.api")
    assert ("biobank.web.boxes", "biobank.storage.api") in back_arrows(graph)
