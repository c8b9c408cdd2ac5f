"""Test databases for parallel runs: migrated once, then copied for each pytest-xdist worker.

A plain `pytest` (or `-n 0`, or `--reuse-db`) leaves it to pytest-django: one process creates and
migrates its test database. With `-n N` (`make test`) the controller migrates one test database
before it starts the workers and gives each worker its own copy of it (a file copy on SQLite,
`CREATE DATABASE ... TEMPLATE` on PostgreSQL), so the migrations run once per run, not once per
worker. The controller drops the template and every copy at the end, after the workers have stopped.

The names come from leadcrm/settings_test.py: the template is test-db-<pid>.sqlite3 or
test_<db>_<pid>, a worker's copy adds _gw0, _gw1 ...; a run never meets another run's databases, and
.ci/run drops whatever a killed PostgreSQL run left behind.
"""

import warnings

import pytest
from django.conf import settings
from django.db import connections
from pytest_django.plugin import blocking_manager_key

WORKER_DATABASES = "leadcrm_test_databases"  # the workerinput key: {alias: name of the worker's copy}
template_key = pytest.StashKey[dict[str, str]]()  # alias -> the name to restore when dropping
copies_key = pytest.StashKey[list[str]]()  # the worker ids a copy was made for


def _makes_copies(config: pytest.Config) -> bool:
    """Whether this process is the controller of an xdist run that should share one migrated database."""
    return config.pluginmanager.has_plugin("dsession") and not config.getoption("reuse_db")


def pytest_sessionstart(session: pytest.Session) -> None:
    # Runs before xdist's own pytest_sessionstart (trylast) starts the workers.
    config = session.config
    if not _makes_copies(config):
        return
    template = {}
    with config.stash[blocking_manager_key].unblock():
        for alias in settings.DATABASES:
            connection = connections[alias]
            old_name = connection.settings_dict["NAME"]
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
            template[alias] = old_name
            # PostgreSQL copies a database only while no one is connected to it; SQLite's file is
            # complete (its write-ahead log folded in) once the last connection closes.
            connection.close()
    config.stash[template_key] = template
    config.stash[copies_key] = []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """In the controller, before a worker starts (a replacement for a crashed one too): its copies."""
    template = node.config.stash.get(template_key, None)
    if template is None:
        return
    worker = node.workerinput["workerid"]
    names = {}
    with node.config.stash[blocking_manager_key].unblock():
        for alias in template:
            creation = connections[alias].creation
            creation.clone_test_db(suffix=worker, verbosity=0, autoclobber=True)
            names[alias] = creation.get_test_db_clone_settings(worker)["NAME"]
    node.config.stash[copies_key].append(worker)
    node.workerinput[WORKER_DATABASES] = names


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # trylast: after xdist's pytest_sessionfinish has stopped the workers (and closed their connections).
    config = session.config
    template = config.stash.get(template_key, None)
    if template is None:
        return
    with config.stash[blocking_manager_key].unblock():
        for alias, old_name in template.items():
            creation = connections[alias].creation
            for worker in config.stash[copies_key]:
                _drop(lambda: creation.destroy_test_db(verbosity=0, suffix=worker))  # noqa: B023
            _drop(lambda: creation.destroy_test_db(old_name, verbosity=0))  # noqa: B023
    del config.stash[template_key]


def _drop(destroy) -> None:
    try:
        destroy()
    except Exception as error:  # a database still in use: leave it to the next clean-up, and say so
        warnings.warn(f"Could not drop a test database: {error!r}", pytest.PytestWarning, stacklevel=2)


def _worker_copies(config: pytest.Config) -> dict[str, str]:
    return getattr(config, "workerinput", {}).get(WORKER_DATABASES, {})


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request) -> None:
    """In an xdist worker, the test database is the copy the controller made for it."""
    for alias, name in _worker_copies(request.config).items():
        settings.DATABASES[alias].setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session")
def django_db_keepdb(request) -> bool:
    """Keep a worker's copy: pytest-django then only checks it is migrated, and the controller drops it."""
    if _worker_copies(request.config):
        return True
    return request.config.getvalue("reuse_db")  # pytest-django's own answer
