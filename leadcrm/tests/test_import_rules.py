"""The dependency rules between apps (DESIGN.md): campaigns is the base, leads never names nurture or
reporting, and reporting sits on top. Production code and tests alike."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "campaigns": {"leads", "nurture", "reporting"},
    "leads": {"nurture", "reporting"},
    "nurture": {"reporting"},
}


def imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_an_app_imports_no_app_above_it(app):
    files = [path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts]
    assert files
    broken = {
        str(path.relative_to(ROOT)): sorted(imported_apps(path) & FORBIDDEN[app])
        for path in files
        if imported_apps(path) & FORBIDDEN[app]
    }
    assert broken == {}
