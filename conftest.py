import gc
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from campaigns.tests.factories import UserFactory

# Parallel runs (pytest -n N) migrate one test database and give each worker a copy of it.
pytest_plugins = ["leadcrm.tests.databases"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Slow tests first. pytest-django then sorts by database use (ordinary, transactional, none; a
    stable sort), so each group keeps its slow tests at its head: the long browser and worker tests
    start early among the transactional ones, and parallel workers end together on short tests."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    # A transactional test that does not restore the serialized database leaves content types and
    # groups under new ids, and the next one that restores it fails on them, depending on the order
    # the workers took the tests in: every transactional test restores it.
    unrestored = [
        item.nodeid
        for item in items
        if (marker := item.get_closest_marker("django_db"))
        and marker.kwargs.get("transaction")
        and not marker.kwargs.get("serialized_rollback")
    ]
    if unrestored:
        raise pytest.UsageError("transactional tests must say serialized_rollback=True: " + ", ".join(unrestored))


def pytest_collection_finish(session):
    """Keep the garbage collector off what was imported and collected (modules, classes, test items),
    which it would walk again and again for nothing: the tests then take about a tenth less CPU."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Exit without the interpreter's last garbage collection, a walk over every object of a process
    that imported the project and its test tools: about 1.5 s for each xdist worker and the controller."""
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _test_media_removed_at_the_end():
    """The process's uploads and exports (var/test-media-<pid>, leadcrm/settings_test.py) hold the
    tests' made-up leads: gone when the process ends, not left to pile up run after run."""
    yield
    media = Path(settings.MEDIA_ROOT)
    if media.name.startswith("test-media-"):
        shutil.rmtree(media, ignore_errors=True)


@pytest.fixture
def staff_user_in():
    """Make a staff user in one of the groups created by the data migration."""

    def make(group_name: str | None, **kwargs):
        user = UserFactory(is_staff=True, is_superuser=group_name is None, **kwargs)
        if group_name:
            user.groups.add(Group.objects.get(name=group_name))
        return user

    return make


@pytest.fixture
def superuser(staff_user_in):
    return staff_user_in(None)


@pytest.fixture(autouse=True)
def _broker_not_paused():
    """A test that took the broker down must not leave later tests' dispatches paused, nor a test's
    publishes hold back the next one's (leads.services.publish_window)."""
    from leads.services import outbox

    outbox._broker_paused_until = 0.0
    outbox._publish_window.reset()
    yield
    outbox._publish_window.reset()
    outbox._broker_paused_until = 0.0


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached reads (a source's validity rate) are keyed by ids a rolled-back test may hand out again."""
    from django.core.cache import cache

    from leadcrm import config_cache

    # Configuration a process keeps (leadcrm.config_cache) is keyed by slugs and ids that a rolled-back
    # test hands out again, and its change signals wait for commits that such tests never make.
    cache.clear()
    config_cache.forget()
    yield
    cache.clear()
    config_cache.forget()


@pytest.fixture
def staff_client(superuser):
    """An API client logged in as a superuser (session auth, as staff use the API)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(superuser)
    return client
