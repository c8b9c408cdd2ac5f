"""The dependency rules between apps (docs/ARCHITECTURE.md, "The rules between apps"): campaigns is the base,
leads never names nurture or reporting, and reporting sits on top. Production code and tests alike."""

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


# The audit app (leadcrm/audit) sits above leads and nurture: they announce reads and take its links
# through signals and registries, and never import it.
AUDIT_APP = "leadcrm.audit"


def imports_module(path: Path, module: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        if any(name == module or name.startswith(f"{module}.") for name in names):
            return True
    return False


@pytest.mark.parametrize("app", ["campaigns", "leads", "nurture"])
def test_no_app_below_the_audit_app_imports_it(app):
    files = [path for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts]
    assert files
    assert sorted(str(path.relative_to(ROOT)) for path in files if imports_module(path, AUDIT_APP)) == []


def test_the_audit_rule_sees_an_import_of_the_audit_app(tmp_path):
    for source in ("from leadcrm.audit.services import access_log_record\n", "from leadcrm import audit\n"):
        (tmp_path / "module.py").write_text(source)
        assert imports_module(tmp_path / "module.py", AUDIT_APP)
    (tmp_path / "module.py").write_text("from leadcrm import errors\n")
    assert not imports_module(tmp_path / "module.py", AUDIT_APP)


PRODUCTION_APPS = ("campaigns", "leads", "nurture", "reporting", "leadcrm")


def private_admin_uses(path: Path) -> list[str]:
    """Overrides of ModelAdmin's private methods, and attributes set on another module's admin class."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and node.name.endswith("_view"):
            found.append(f"def {node.name}")
        if isinstance(node, ast.Assign):
            for target in node.targets:
                owner = target.value if isinstance(target, ast.Attribute) else None
                if isinstance(owner, ast.Name) and owner.id.endswith("Admin") and owner.id[0].isupper():
                    found.append(f"{owner.id}.{target.attr} =")
    return found


@pytest.mark.parametrize("app", PRODUCTION_APPS)
def test_admin_code_uses_only_django_s_documented_hooks(app):
    files = [path for path in (ROOT / app).rglob("*.py") if not {"migrations", "tests"} & set(path.parts)]
    broken = {str(path.relative_to(ROOT)): private_admin_uses(path) for path in files if private_admin_uses(path)}
    assert broken == {}


def test_leads_names_no_follow_up_kind_of_nurture():
    """Nurture registers its follow-up kinds itself; leads' models, settings and services never
    spell them (its migrations may: they are history)."""
    kinds = ("nurture_enrollment", "nurture_email", "nurture_webhook")
    files = [
        path
        for path in [*(ROOT / "leads").rglob("*.py"), ROOT / "leadcrm" / "settings.py"]
        if "migrations" not in path.parts and "tests" not in path.parts
    ]
    naming = sorted(str(path.relative_to(ROOT)) for path in files if any(kind in path.read_text() for kind in kinds))
    assert naming == []
