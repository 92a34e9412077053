"""The ``s3://`` source: download a model file from S3, resuming a download that broke off.

A broken connection is retried from where it stopped (an S3 ``Range`` request); a process that
was killed leaves its ``.part`` for the next run to continue. Either way the whole file is
verified before it gets its final name (:mod:`~polyllm.models.resume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import ChecksumMismatch, FetchError
from polyllm.models.partfile import CHUNK, part_path, part_writer
from polyllm.models.progress import Bar
from polyllm.models.resume import commit_kept_part, download_resumably, resume_offset
from polyllm.models.s3 import S3Location, S3Unavailable, explain_s3_error, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

__all__ = ["fetch_s3"]


def fetch_s3(spec: ModelSpec, uri: str, target: Path, bar: Bar) -> None:
    """Put the verified file of ``spec`` from the S3 object ``uri`` at ``target``."""
    try:
        location = S3Location.parse(uri)
        client = s3_client()
    except (ValueError, S3Unavailable) as exc:
        raise FetchError(spec.id, uri, str(exc)) from None
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
    )

    transient = (HTTPClientError, ConnectionError, IncompleteReadError)
    try:
        download_resumably(
            spec,
            target,
            uri,
            lambda: _attempt(spec, client, location, target, bar, transient),
            transient,
        )
    except (BotoCoreError, ClientError) as exc:
        raise FetchError(spec.id, uri, explain_s3_error(exc, location)) from exc


def _attempt(
    spec: ModelSpec,
    client: S3Client,
    location: S3Location,
    target: Path,
    bar: Bar,
    transient: tuple[type[Exception], ...],
) -> None:
    """One GET of the object, or of the rest of it after the kept .part."""
    from botocore.exceptions import ClientError

    uri = location.uri
    offset = resume_offset(spec, target, uri, bar)
    if offset is None:
        return
    try:
        if offset:
            response = client.get_object(
                Bucket=location.bucket, Key=location.key, Range=f"bytes={offset}-"
            )
        else:
            response = client.get_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if not (offset and exc.response.get("Error", {}).get("Code") == "InvalidRange"):
            raise
        if spec.size_bytes is None:  # of unknown size, the kept part may be the whole object
            commit_kept_part(spec, target, uri, bar)
            return
        part_path(target).unlink()
        raise ChecksumMismatch(spec.id, uri, "the object is shorter than the kept part") from exc
    resumed = _resumed_at(spec, uri, response, offset)
    keep = (*transient, KeyboardInterrupt)
    body = response["Body"]
    with body, part_writer(spec, target, uri, bar, resume=resumed, keep_on=keep) as out:
        for chunk in body.iter_chunks(CHUNK):  # as received: an interruption loses nothing
            out.write(chunk)
        out.commit()


def _resumed_at(spec: ModelSpec, uri: str, response: GetObjectOutputTypeDef, offset: int) -> bool:
    """Whether the response continues the kept part at ``offset``; checks the object's size."""
    content_range = response.get("ContentRange", "")  # "bytes 100-199/200" for a Range GET
    resumed = bool(offset and content_range)
    if resumed and not content_range.startswith(f"bytes {offset}-"):
        raise ChecksumMismatch(spec.id, uri, f"S3 answered {content_range}, not from {offset}")
    size = int(content_range.rpartition("/")[2]) if resumed else response["ContentLength"]
    if spec.size_bytes is not None and size != spec.size_bytes:
        reason = f"the object has {size} bytes, expected {spec.size_bytes}"
        raise ChecksumMismatch(spec.id, uri, reason)
    return resumed
