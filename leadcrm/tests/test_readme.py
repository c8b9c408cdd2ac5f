"""The README's commands work as written: each `make manage CMD="..."` runs on the demo, which
`make run` loads first, and the files it names are in the repository."""

import re
import shlex
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from campaigns.models import DailyStat
from leadcrm.tests.demo import seeded_demo
from leads.models import ApiKey, Lead

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
COMMANDS = re.findall(r'`make manage CMD=(?:"([^"`]+)"|(\w+))`', README)

# One worker takes the module, which seeds the demo once for every command.
pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("readme")]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo `make run` loads, shared by the commands; each test's changes are rolled back."""
    with seeded_demo(django_db_blocker):
        yield


def test_the_readme_names_its_commands_and_two_set_up_commands():
    assert len(COMMANDS) >= 5
    assert re.findall(r"```sh\n(.+?)\n```", README) == ["make run", "make test"]


@pytest.mark.parametrize("command", [quoted or bare for quoted, bare in COMMANDS])
def test_each_readme_command_runs_on_the_demo(demo, command, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the paths in the README are the repository's
    name, *args = shlex.split(command)
    args = [str(tmp_path / Path(arg).name) if arg.startswith("var/") else arg for arg in args]
    keys, leads = ApiKey.objects.count(), Lead.objects.count()

    call_command(name, *args, stdout=StringIO(), stderr=StringIO())

    if name == "create_api_key":
        assert ApiKey.objects.count() == keys + 1
    if name == "import_daily_stats":
        day = DailyStat.objects.get(campaign__slug="push-solar-us", date="2026-11-30")
        assert (day.impressions, day.clicks, day.spend) == (52000, 610, Decimal("48.80"))
    if name == "import_leads":
        assert Lead.objects.count() == leads + 3  # the bad row is stored too, as invalid
        assert (tmp_path / "leads-report.csv").read_text().count("\n") == 4
