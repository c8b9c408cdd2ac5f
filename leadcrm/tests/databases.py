"""Test databases for parallel runs: migrated once, then copied for each pytest-xdist worker.

A plain `pytest` (or `-n 0`, or `--reuse-db`) leaves it to pytest-django: one process creates and
migrates its test database. In a parallel run (`make test`, `pytest -n N`) the controller migrates
one test database while the workers start (they spend those seconds importing and collecting), then
gives each worker its own copy of it (a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on
PostgreSQL): the migrations run once per run, not once per worker. On SQLite the migrated file is
also kept between runs (var/test-template-<hash>.sqlite3, named by the migration files), so a run on
unchanged migrations copies it instead of migrating. A worker waits for the file naming its copy
before its first database test. The controller drops the template and every copy at the end, once
the workers have stopped.

The names come from leadcrm/settings_test.py: the template is var/test-db-<pid>.sqlite3 or
test_<db>_<pid>, a worker's copy adds _gw0, _gw1 ...; a run never meets another run's databases, and
.ci/run drops whatever a killed PostgreSQL run left behind.
"""

import hashlib
import json
import os
import shutil
import threading
import time
import warnings
from pathlib import Path

import django
import pytest
from django.apps import apps
from django.conf import settings
from django.db import connections
from pytest_django.plugin import blocking_manager_key

WORKER_DATABASES = "leadcrm_test_databases"  # workerinput: the file that will name the worker's copies
WAIT_SECONDS = 600


class Template:
    """The controller's side: migrates in a thread while xdist starts the workers (which spend those
    seconds importing and collecting), then copies the database for each worker and writes a file
    naming the copies, which the worker waits for."""

    def __init__(self, config: pytest.Config):
        self.blocker = config.stash[blocking_manager_key]
        self.lock = threading.Lock()
        self.workers: list[str] = []  # every worker a copy was or will be made for
        self.old_names: dict[str, str] = {}  # alias -> the name to restore when dropping
        self.built = False
        self.error = ""
        self.thread = threading.Thread(target=self.build, name="test-database-template", daemon=True)

    def build(self) -> None:
        try:
            with self.blocker.unblock():
                for alias in settings.DATABASES:
                    connection = connections[alias]
                    old_name = connection.settings_dict["NAME"]
                    kept = _kept_sqlite_template(connection)
                    # Migrated by an earlier run from the same migrations: start from its copy, and
                    # migrate (keepdb) then only confirms there is nothing left to apply.
                    reused = kept is not None and _copy_if_there(kept, connection.creation._get_test_db_name())
                    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=reused)
                    # Only once it is the test database's: dropping goes by the current name.
                    self.old_names[alias] = old_name
                    # PostgreSQL copies a database only while no one is connected to it; SQLite's
                    # file is whole (its write-ahead log folded in) once the last connection closes.
                    connection.close()
                    if kept is not None and not reused:
                        _keep(Path(connection.settings_dict["NAME"]), kept)
        except BaseException as error:
            self.error = f"Migrating the template test database failed: {error!r}"
            raise
        finally:
            with self.lock:
                self.built = True
                for worker in self.workers:
                    self.copy(worker)

    def add_worker(self, worker: str) -> str:
        with self.lock:
            self.workers.append(worker)
            self.answer_file(worker).unlink(missing_ok=True)  # a killed run's, under a pid used again
            if self.built:
                self.copy(worker)
        return str(self.answer_file(worker))

    def answer_file(self, worker: str) -> Path:
        settings.VAR_DIR.mkdir(exist_ok=True)
        return settings.VAR_DIR / f"test-db-{os.getpid()}-{worker}.json"

    def copy(self, worker: str) -> None:
        answer = {"error": self.error}
        if not self.error:
            try:
                with self.blocker.unblock():
                    for alias in self.old_names:
                        creation = connections[alias].creation
                        creation.clone_test_db(suffix=worker, verbosity=0, autoclobber=True)
                        answer[alias] = creation.get_test_db_clone_settings(worker)["NAME"]
            except Exception as error:
                answer = {"error": f"Copying the test database for {worker} failed: {error!r}"}
        written = self.answer_file(worker).with_suffix(".tmp")
        written.write_text(json.dumps(answer))
        written.replace(self.answer_file(worker))  # whole or absent, for the worker polling it

    def drop(self) -> None:
        self.thread.join()
        with self.blocker.unblock():
            for alias, old_name in self.old_names.items():
                creation = connections[alias].creation
                for worker in self.workers:
                    _drop(lambda: creation.destroy_test_db(verbosity=0, suffix=worker))  # noqa: B023
                _drop(lambda: creation.destroy_test_db(old_name, verbosity=0))  # noqa: B023
        for worker in self.workers:
            self.answer_file(worker).unlink(missing_ok=True)


def _kept_sqlite_template(connection) -> Path | None:
    """Where a migrated SQLite template is kept between runs (var/test-template-<hash>.sqlite3), named
        by everything migrating depends on: every installed app's migration files, the project modules
    the data migrations import, and Django's version.
        A run on other migrations (a new one, an edit, another branch) misses it and migrates afresh.
        PostgreSQL migrates once per run, as before."""
    if connection.vendor != "sqlite":
        return None
    digest = hashlib.sha256(django.get_version().encode())
    # The data migrations call the project's own code: the roles they create and the fields they use.
    for imported in (settings.BASE_DIR / "leadcrm" / "roles.py", settings.BASE_DIR / "leadcrm" / "fields.py"):
        digest.update(imported.read_bytes())
    for app in apps.get_app_configs():
        for migration in sorted(Path(app.path, "migrations").glob("*.py")):
            digest.update(f"{app.label}/{migration.name}\0".encode())
            digest.update(migration.read_bytes())
    return settings.VAR_DIR / f"test-template-{digest.hexdigest()[:16]}.sqlite3"


def _copy_if_there(kept: Path, test_database: str) -> bool:
    try:
        shutil.copyfile(kept, test_database)
    except FileNotFoundError:  # none yet, or another run on other migrations just replaced it
        return False
    return True


def _keep(migrated: Path, kept: Path) -> None:
    """Copy the freshly migrated file aside (whole or not at all), and drop templates of other migrations."""
    for stale in kept.parent.glob("test-template-*.sqlite3"):
        stale.unlink(missing_ok=True)
    partial = kept.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(migrated, partial)
    partial.replace(kept)


def _drop(destroy) -> None:
    try:
        destroy()
    except Exception as error:  # a database still in use: leave it to the next clean-up, and say so
        warnings.warn(f"Could not drop a test database: {error!r}", pytest.PytestWarning, stacklevel=2)


template_key = pytest.StashKey[Template]()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Before xdist's own pytest_sessionstart (trylast) starts the workers; only in the controller of
    # a parallel run (not in a worker, a plain run, or with --reuse-db).
    config = session.config
    if config.pluginmanager.has_plugin("dsession") and not config.getoption("reuse_db"):
        config.stash[template_key] = template = Template(config)
        template.thread.start()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """In the controller, as a worker starts (a replacement for a crashed one too)."""
    template = node.config.stash.get(template_key, None)
    if template is not None:
        node.workerinput[WORKER_DATABASES] = template.add_worker(node.workerinput["workerid"])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # trylast: in the controller, after xdist's pytest_sessionfinish has stopped the workers.
    template = session.config.stash.get(template_key, None)
    if template is not None:
        template.drop()
        del session.config.stash[template_key]
    elif _in_parallel_run(session.config):
        # A worker: let go of its copy (SQLite folds the write-ahead log back into the file on close).
        connections.close_all()


def _worker_copies(config: pytest.Config) -> dict[str, str]:
    """In a worker of a parallel run: {alias: name of its copy}, once the controller has made them."""
    answer_file = Path(config.workerinput[WORKER_DATABASES])
    deadline = time.monotonic() + WAIT_SECONDS
    while not answer_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"No test database after {WAIT_SECONDS} s: {answer_file} was never written.")
        time.sleep(0.05)
    answer = json.loads(answer_file.read_text())
    if error := answer.pop("error"):
        raise RuntimeError(error)
    return answer


def _in_parallel_run(config: pytest.Config) -> bool:
    return WORKER_DATABASES in getattr(config, "workerinput", {})


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request) -> None:
    """In an xdist worker, the test database is the copy the controller made for it."""
    if _in_parallel_run(request.config):
        for alias, name in _worker_copies(request.config).items():
            settings.DATABASES[alias].setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session")
def django_db_keepdb(request) -> bool:
    """Keep a worker's copy: pytest-django then only checks it is migrated, and the controller drops it."""
    if _in_parallel_run(request.config):
        return True
    return request.config.getvalue("reuse_db")  # pytest-django's own answer
