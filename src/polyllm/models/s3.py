"""S3 for model files: ``s3://bucket/key`` locations, the client, and what an S3 error means.

Credentials, region and endpoint come from the usual AWS places (environment, ``~/.aws``, an
instance profile or a pod's web identity); ``AWS_ENDPOINT_URL_S3`` points the client at any
S3-compatible store. boto3 is the ``s3`` extra: imported only when an ``s3://`` URI is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Location", "S3Unavailable", "explain_s3_error", "s3_client"]

_INSTALL = "boto3 is not installed: pip install 'polyllm[s3]'"


class S3Unavailable(RuntimeError):
    """The s3 extra (boto3) is not installed."""

    def __init__(self) -> None:
        super().__init__(_INSTALL)


@dataclass(frozen=True)
class S3Location:
    """An object, or a prefix of objects, in a bucket."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, prefix: bool = False) -> S3Location:
        """``s3://bucket/key``; with ``prefix``, the key may be empty and loses its end slashes.

        Raises ValueError saying what is wrong with ``uri``.
        """
        parts = urlsplit(uri)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if prefix:
            key = key.rstrip("/")
        if parts.scheme != "s3" or not bucket or not (key or prefix) or parts.query:
            wanted = "s3://bucket/prefix" if prefix else "s3://bucket/key"
            raise ValueError(f"expected {wanted}, got {uri!r}")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        """This location as an ``s3://`` URI."""
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        """The object ``name`` under this prefix."""
        return S3Location(self.bucket, f"{self.key}/{name}" if self.key else name)


def s3_client() -> S3Client:
    """An S3 client configured the usual AWS way; raises :class:`S3Unavailable` without boto3."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise S3Unavailable() from None
    # A session of its own: boto3's default session would keep credentials found once for the
    # life of the process.
    session = boto3.session.Session()
    return session.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def explain_s3_error(exc: Exception, location: S3Location) -> str:
    """What a botocore error means for ``location``, in words a user can act on."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (BotoCoreError, ClientError)):  # boto3's transfer errors wrap these
        exc = cause
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " or run with an instance profile or a pod identity"
        )
    if not isinstance(exc, ClientError):
        return f"S3 error: {exc}"
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in ("NoSuchKey", "404", "NotFound"):
        return f"no such object: s3://{location.bucket}/{location.key} does not exist"
    if code == "NoSuchBucket":
        return f"no such bucket: {location.bucket!r} does not exist"
    if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the AWS credentials and the bucket's policy"
    return f"S3 error {code or '?'}: {error.get('Message') or exc}"
