"""Audience exports on S3-compatible storage, against a real local S3 server (moto), and the
settings that choose between it and MEDIA_ROOT."""

import hashlib

import boto3
import pytest
from django.test import override_settings
from django.urls import reverse
from moto.server import ThreadedMotoServer

from leadcrm.storage_settings import default_storage_config
from leads.tests.factories import LeadFactory
from nurture.models import Audience, AudienceExport
from nurture.services.audiences import audience_export_request, audience_export_run

BUCKET = "leadcrm-exports"
PREFIX = "media"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # 0: any free port
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_storage(s3, s3_endpoint, settings):
    """Django's default storage is the bucket, configured as a deployment's environment would."""
    environ = {
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_LOCATION": PREFIX,
        **CREDENTIALS,
    }
    with override_settings(STORAGES={**settings.STORAGES, "default": default_storage_config(environ)}):
        yield s3


@pytest.mark.django_db
def test_an_export_is_written_to_the_bucket_and_the_admin_serves_the_same_bytes(
    s3_storage, campaign, staff_user_in, client, django_capture_on_commit_callbacks
):
    audience = Audience.objects.create(name="All")
    LeadFactory.create_batch(3, campaign=campaign, consent=True, phone="+16505551212")

    with django_capture_on_commit_callbacks(execute=True):
        export = audience_export_request(audience=audience, format="meta", mode="full", period="2026-11-29T10")
    export.refresh_from_db()

    assert (export.status, export.rows) == (AudienceExport.Status.DONE, 3)
    stored = s3_storage.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{export.file.name}")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == export.checksum
    assert len(stored) == export.file_size and stored.startswith(b"email,phone")

    client.force_login(staff_user_in("Marketing"))
    download = client.get(reverse("admin:nurture_audience_download", args=[export.pk]))
    assert download.status_code == 200 and "no-store" in download["Cache-Control"]
    assert b"".join(download.streaming_content) == stored


@pytest.mark.django_db
def test_a_second_export_under_a_taken_name_gets_its_own_object(s3_storage, campaign):
    # Export files are named by row id, and ids repeat after a database restore.
    audience = Audience.objects.create(name="All")
    LeadFactory(campaign=campaign, consent=True)
    first = AudienceExport.objects.create(audience=audience, format="generic", period="p1")
    name = f"audience-exports/{audience.pk}-generic-{first.pk}.csv"
    s3_storage.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}", Body=b"an older export\n")

    export = audience_export_run(export_id=first.pk)

    assert export.file.name != name and export.file.name.startswith(name.removesuffix(".csv"))
    older = s3_storage.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}")["Body"].read()
    assert older == b"an older export\n"


def test_without_a_bucket_media_stays_on_the_local_disk():
    assert default_storage_config({}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert default_storage_config({"AWS_STORAGE_BUCKET_NAME": " ", **CREDENTIALS})["BACKEND"].endswith(
        "FileSystemStorage"
    )


def test_with_a_bucket_files_are_private_signed_and_never_overwritten():
    config = default_storage_config({"AWS_STORAGE_BUCKET_NAME": BUCKET, "AWS_S3_ENDPOINT_URL": ""})

    assert config["BACKEND"] == "storages.backends.s3.S3Storage"
    assert config["OPTIONS"] == {
        "bucket_name": BUCKET,
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
        "max_memory_size": 5 * 1024 * 1024,
    }
