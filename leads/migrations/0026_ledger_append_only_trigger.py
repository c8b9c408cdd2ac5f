"""On PostgreSQL the database itself refuses to change or delete ledger entries (the model refuses too,
on every database). TRUNCATE, used by test teardown, is not a row event and stays possible."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION leads_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: post a correcting entry';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER leads_ledger_append_only BEFORE UPDATE OR DELETE ON leads_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION leads_ledger_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS leads_ledger_append_only ON leads_ledgerentry;
DROP FUNCTION IF EXISTS leads_ledger_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("leads", "0025_money_ledger")]

    operations = [migrations.RunPython(create, drop)]
