"""``MODEL_URI`` sources: ``https://`` and ``http://`` (resumable), ``file://``, and ``s3://``
(:mod:`~polyllm.models.s3_source`, resumable).

Each source writes the URI's bytes through :func:`~polyllm.models.partfile.part_writer`; when the
spec gives no size (a custom m5), only the sha256 is checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import ChecksumMismatch, FetchError
from polyllm.models.partfile import copy_into, part_path, part_writer
from polyllm.models.progress import Bar
from polyllm.models.resume import commit_kept_part, download_resumably, resume_offset
from polyllm.models.s3_source import fetch_s3

__all__ = ["URI_SOURCES", "display_uri", "fetch_uri"]

logger = logging.getLogger(__name__)

_HTTP_TIMEOUT = httpx.Timeout(30.0)

UriSource = Callable[[ModelSpec, str, Path, Bar], None]
"""Writes the bytes of a URI to the .part file of ``target`` and commits it."""


def display_uri(uri: str) -> str:
    """The URI without credentials or query string (pre-signed URLs carry secrets there)."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def fetch_uri(spec: ModelSpec, uri: str, target: Path, bar: Bar) -> None:
    """Put the verified file of ``spec`` from ``uri`` at ``target``, by the URI's scheme."""
    scheme = urlsplit(uri).scheme.lower()
    source = URI_SOURCES.get(scheme)
    if source is None:
        raise FetchError(
            spec.id, display_uri(uri), f"unsupported scheme; use one of {', '.join(URI_SOURCES)}"
        )
    logger.info("model %s: fetching %s", spec.id, display_uri(uri))
    source(spec, uri, target, bar)


def _fetch_file(spec: ModelSpec, uri: str, target: Path, bar: Bar) -> None:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(spec.id, uri, "only local file URIs are supported (file:///path)")
    path = Path(url2pathname(parts.path))
    try:
        src = path.open("rb")
    except OSError as exc:
        raise FetchError(spec.id, uri, f"cannot open {path}: {exc.strerror}") from exc
    with src:
        size = os.fstat(src.fileno()).st_size
        if spec.size_bytes is not None and size != spec.size_bytes:
            raise ChecksumMismatch(
                spec.id, uri, f"the file has {size} bytes, the catalog expects {spec.size_bytes}"
            )
        with part_writer(spec, target, uri, bar) as out:
            copy_into(src, out)
            out.commit()


def _fetch_http(spec: ModelSpec, uri: str, target: Path, bar: Bar) -> None:
    source = display_uri(uri)
    download_resumably(
        spec,
        target,
        source,
        lambda: _http_attempt(spec, uri, source, target, bar),
        transient=(httpx.TransportError,),
    )


def _http_attempt(spec: ModelSpec, uri: str, source: str, target: Path, bar: Bar) -> None:
    offset = resume_offset(spec, target, source, bar)
    if offset is None:
        return
    part = part_path(target)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with httpx.stream(
            "GET", uri, headers=headers, follow_redirects=True, timeout=_HTTP_TIMEOUT
        ) as resp:
            if resp.status_code == 416 and offset:
                if spec.size_bytes is None:
                    # Of unknown size, the kept .part may be the whole file: it either verifies
                    # now, or the ChecksumMismatch (the part removed) makes the caller start over.
                    commit_kept_part(spec, target, source, bar)
                    return
                # The kept .part is not a prefix of this file: start over.
                part.unlink()
                raise ChecksumMismatch(spec.id, source, "server rejected the resume offset")
            if resp.status_code not in (200, 206):
                raise FetchError(spec.id, source, f"HTTP {resp.status_code} {resp.reason_phrase}")
            _write_body(spec, source, target, bar, resp, offset)
    except httpx.TransportError:
        raise
    except httpx.HTTPError as exc:
        raise FetchError(spec.id, source, repr(exc)) from exc


def _write_body(
    spec: ModelSpec, source: str, target: Path, bar: Bar, resp: httpx.Response, offset: int
) -> None:
    resume = resp.status_code == 206 and offset > 0
    if resume and not resp.headers.get("content-range", "").startswith(f"bytes {offset}-"):
        raise ChecksumMismatch(spec.id, source, "server answered a different range than asked")
    if offset and not resume:
        logger.info("model %s: server ignored the Range header; starting over", spec.id)
    if spec.size_bytes is not None:
        _check_content_length(spec, source, resp, spec.size_bytes - (offset if resume else 0))
    keep = (httpx.TransportError, KeyboardInterrupt)
    with part_writer(spec, target, source, bar, resume=resume, keep_on=keep) as out:
        for chunk in resp.iter_bytes():  # as received: an interruption loses nothing
            out.write(chunk)
        out.commit()


def _check_content_length(spec: ModelSpec, source: str, resp: httpx.Response, want: int) -> None:
    length = resp.headers.get("content-length")
    if length is None or resp.headers.get("content-encoding"):
        return  # unknown, or the size of the encoded body: the final check still applies
    if int(length) != want:
        raise ChecksumMismatch(spec.id, source, f"server sends {length} bytes, expected {want}")


URI_SOURCES: dict[str, UriSource] = {
    "https": _fetch_http,
    "http": _fetch_http,
    "file": _fetch_file,
    "s3": fetch_s3,
}
"""URI scheme → the function that writes that URI's bytes to the model's .part file."""
