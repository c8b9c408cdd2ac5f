"""Where uploaded and generated files (audience exports) live: MEDIA_ROOT on the local disk, or an
S3-compatible bucket through django-storages once AWS_STORAGE_BUCKET_NAME is set."""

from collections.abc import Mapping

FILE_SYSTEM_STORAGE = "django.core.files.storage.FileSystemStorage"
S3_STORAGE = "storages.backends.s3.S3Storage"

# Environment variable -> S3Storage option. An unset one is left to django-storages and boto3;
# without keys boto3 uses its own chain (instance or task role, ~/.aws, AWS_* variables).
S3_OPTIONAL_VARIABLES = {
    "AWS_S3_ENDPOINT_URL": "endpoint_url",
    "AWS_S3_REGION_NAME": "region_name",
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_LOCATION": "location",
    "AWS_S3_ADDRESSING_STYLE": "addressing_style",
}
STORAGE_VARIABLES = ("AWS_STORAGE_BUCKET_NAME", *S3_OPTIONAL_VARIABLES)


def default_storage_config(environ: Mapping[str, str]) -> dict:
    """STORAGES["default"] from these environment values (unset and empty are the same)."""
    bucket = (environ.get("AWS_STORAGE_BUCKET_NAME") or "").strip()
    if not bucket:
        return {"BACKEND": FILE_SYSTEM_STORAGE}
    options = {
        "bucket_name": bucket,
        # Exports hold personal data. No ACL is sent, so objects get the bucket's own (private)
        # setting; buckets with ACLs disabled, the AWS default since 2023, refuse any other.
        "default_acl": None,
        "querystring_auth": True,  # any URL handed out is signed and expires
        # Export names carry the row id; after a database restore ids repeat, and the older
        # file must not be replaced: the new one gets a suffix instead.
        "file_overwrite": False,
        # A download is spooled before it is served: past 5 MB to a temporary file, not memory.
        "max_memory_size": 5 * 1024 * 1024,
    }
    for variable, option in S3_OPTIONAL_VARIABLES.items():
        value = (environ.get(variable) or "").strip()
        if value:
            options[option] = value
    return {"BACKEND": S3_STORAGE, "OPTIONS": options}
