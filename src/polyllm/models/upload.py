"""Upload verified model files to S3, where model services fetch them (``MODEL_URI=s3://…``, the
Kubernetes init container, a GPU host).

Each file goes to ``<prefix>/<id>.gguf`` with its sha256 in the object's metadata. An object
that already has that sha256 and size is left alone; a file another model of the same upload
shares (m5 is the m4 file by default) is copied within S3 instead of sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import UploadError
from polyllm.models.progress import progress_bar
from polyllm.models.s3 import S3Location, explain_s3_error
from polyllm.models.status import model_status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

__all__ = ["SHA256_METADATA", "Uploaded", "upload_model"]

SHA256_METADATA = "sha256"
"""The object metadata key (``x-amz-meta-sha256``) that holds the file's sha256."""
_PART_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Uploaded:
    """One model file in S3, and how it got there."""

    model_id: str
    location: S3Location
    how: Literal["uploaded", "copied", "already there"]
    size_bytes: int


def upload_model(
    spec: ModelSpec,
    models_dir: Path,
    prefix: S3Location,
    client: S3Client,
    *,
    done: dict[str, S3Location],
    progress: bool = True,
) -> Uploaded:
    """Put the verified local file of ``spec`` at ``<prefix>/<id>.gguf``.

    ``done`` maps the sha256 of files already in S3 (this run) to where they are; the upload adds
    its own. Raises :class:`UploadError` for a local file that is missing or not verified, and
    for any S3 failure, saying which.
    """
    status = model_status(spec, models_dir)
    dest = prefix.child(f"{spec.id}.gguf")
    if not status.verified or status.size_bytes is None:
        problem = "it does not match the catalog" if status.present else "it is missing"
        reason = f"{status.path}: {problem}; run: polyllm models fetch {spec.id}"
        raise UploadError(spec.id, dest.uri, reason)
    size = status.size_bytes
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        how = _put(spec, status.path, dest, client, done.get(spec.sha256), progress)
        if how != "already there" and not _holds(client, dest, spec.sha256, size):
            raise UploadError(spec.id, dest.uri, "the object does not match the file after upload")
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        raise UploadError(spec.id, dest.uri, explain_s3_error(exc, dest)) from exc
    done[spec.sha256] = dest
    return Uploaded(spec.id, dest, how, size)


def _put(
    spec: ModelSpec,
    path: Path,
    dest: S3Location,
    client: S3Client,
    twin: S3Location | None,
    progress: bool,
) -> Literal["uploaded", "copied", "already there"]:
    from boto3.s3.transfer import TransferConfig

    size = path.stat().st_size
    if _holds(client, dest, spec.sha256, size):
        return "already there"
    metadata = {SHA256_METADATA: spec.sha256}
    config = TransferConfig(multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES)
    if twin is not None:
        source: CopySourceTypeDef = {"Bucket": twin.bucket, "Key": twin.key}
        extra = {"Metadata": metadata, "MetadataDirective": "REPLACE"}
        client.copy(source, dest.bucket, dest.key, ExtraArgs=extra, Config=config)
        return "copied"
    with progress_bar(spec, enabled=progress) as bar:
        client.upload_file(
            str(path),
            dest.bucket,
            dest.key,
            ExtraArgs={"Metadata": metadata},
            Callback=bar.advance,
            Config=config,
        )
    return "uploaded"


def _holds(client: S3Client, location: S3Location, sha256: str, size: int) -> bool:
    """Whether the object exists with this sha256 (in its metadata) and size."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return head["ContentLength"] == size and head["Metadata"].get(SHA256_METADATA) == sha256
