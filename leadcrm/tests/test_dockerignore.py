"""The image holds the application and nothing private: .dockerignore keeps secrets, personal data
and local state out of `COPY . .`, and keeps in everything the Dockerfile and Django need."""

import os
import re
from pathlib import Path

import pytest
import yaml
from django.apps import apps
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]


def docker_pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (moby/patternmatcher): `*` and `?` stop at `/`, `**` spans folders."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern[i : i + 1] == "/":
                i += 1
            out += ".*" if i == len(pattern) else "(.*/)?"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def read_dockerignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((exception, docker_pattern_regex(pattern)))
    return rules


def is_ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """A path is left out when the last rule matching it, or one of its folders, excludes it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


@pytest.fixture(scope="module")
def rules() -> list[tuple[bool, re.Pattern[str]]]:
    return read_dockerignore((BASE_DIR / ".dockerignore").read_text())


def test_the_matcher_follows_dockers_documented_examples():
    # The examples of Docker's .dockerignore reference, so the checks below mean what Docker does.
    examples = read_dockerignore("*/temp*\n*/*/temp*\ntemp?\n**/*.go\n*.md\n!README*.md\nREADME-secret.md")
    assert is_ignored(examples, "somedir/temporary.txt")
    assert is_ignored(examples, "somedir/temp/file.txt")
    assert is_ignored(examples, "somedir/subdir/temporary.txt")
    assert is_ignored(examples, "tempa")
    assert not is_ignored(examples, "temporary.txt")
    assert is_ignored(examples, "a/b/c.go") and is_ignored(examples, "c.go")
    assert is_ignored(examples, "CHANGES.md")
    assert not is_ignored(examples, "README.md")
    assert is_ignored(examples, "README-secret.md")
    assert not is_ignored(read_dockerignore("*.pyc"), "leads/x.pyc"), "a bare pattern matches at the root only"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "leadcrm/.env",
        "db.sqlite3",
        "db.sqlite3-journal",
        "db.sqlite3-wal",
        "backup.sqlite3",
        "leads/old.sqlite3",
        "var/mail/20250101-000000-1.eml",
        "var/celery-broker/data_in/0001.msg",
        "var/test-media-595/exports/audience.csv",
        "var/test-gw0.sqlite3",
        "media/audience-exports/2025/list.csv",
        "media/lead-imports/leads.csv",
        "staticfiles/admin/css/base.css",
        ".venv/bin/python",
        ".venv/lib/python3.11/site-packages/django/__init__.py",
        ".git/config",
        ".git/objects/pack/pack-1.pack",
        "leads/__pycache__/models.cpython-311.pyc",
        "leads/services/capture.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/leads/models.data.json",
        "leads/.ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/1",
    ],
)
def test_secrets_personal_data_and_local_state_stay_out_of_the_image(rules, path):
    assert is_ignored(rules, path), f"{path} would be copied into the image"


def dockerfile_sources() -> list[str]:
    sources = []
    for line in (BASE_DIR / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] in ("COPY", "ADD"):
            sources += [word for word in words[1:-1] if not word.startswith("--")]
    return sources


def test_the_dockerfile_copies_only_what_the_context_keeps(rules):
    sources = dockerfile_sources()
    assert "requirements.txt" in sources and "." in sources
    for source in sources:
        if source != ".":
            assert not is_ignored(rules, source), f"the Dockerfile copies {source}, which is ignored"
    for path in ("manage.py", "requirements.txt", ".env.example"):
        assert (BASE_DIR / path).exists() and not is_ignored(rules, path)


def application_folders() -> list[Path]:
    # Our apps are packages at the project root (installed ones may live in a .venv inside it).
    local_apps = [Path(config.path) for config in apps.get_app_configs() if Path(config.path).parent == BASE_DIR]
    assert {folder.name for folder in local_apps} >= {"leads", "campaigns", "nurture", "reporting"}
    urlconf_package = BASE_DIR / settings.ROOT_URLCONF.split(".")[0]
    return [
        *local_apps,
        urlconf_package,
        *settings.STATICFILES_DIRS,
        *(t for conf in settings.TEMPLATES for t in conf["DIRS"]),
    ]


def test_code_static_files_and_templates_all_reach_the_image(rules):
    checked = 0
    for folder in application_folders():
        for root, dirs, files in os.walk(folder):
            dirs[:] = [name for name in dirs if name != "__pycache__"]
            for name in files:
                if name.endswith(".pyc"):
                    continue
                path = (Path(root) / name).relative_to(BASE_DIR).as_posix()
                assert not is_ignored(rules, path), f"{path} is needed in the image but ignored"
                checked += 1
    assert checked > 200, "the walk found the application's files"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (BASE_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_container_runs_as_a_user_that_is_not_root_and_owns_only_what_it_writes():
    instructions = dockerfile_instructions()
    users = [(index, arguments) for index, (name, arguments) in enumerate(instructions) if name == "USER"]
    assert users, "no USER: the container would run as root"
    last_user_at, user = users[-1]
    uid, _, gid = user.partition(":")
    # Numeric, so an orchestrator's runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, user
    runs = " ".join(arguments for name, arguments in instructions if name == "RUN")
    assert f"useradd --uid {uid} --gid {gid}" in runs, "the user is created with the uid it runs as"
    # Uploads, exports (media/) and var/ are written at run time; the code stays root's.
    assert re.search(rf"chown -R {uid}:{gid} /app/media /app/var(\s|$)", runs), runs
    assert "chown -R" not in runs.replace(f"chown -R {uid}:{gid} /app/media /app/var", "")
    cmd_at = max(index for index, (name, _arguments) in enumerate(instructions) if name == "CMD")
    assert cmd_at > last_user_at, "the command runs as the user"

    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert str(service.get("user", "")).split(":")[0] not in ("root", "0"), f"{name} runs as root"
        if service.get("image") == "leadcrm:latest":
            assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
