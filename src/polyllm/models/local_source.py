"""The first source: a verified file already in the models directory.

Either the model's own file, or the verified file of another catalog model with the same sha256
(m5 serves the m4 file by default), hard-linked or, across devices, copied.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import FetchError
from polyllm.models.partfile import copy_into, part_path, part_writer
from polyllm.models.status import model_path, model_status, sidecar_path, write_sidecar

__all__ = ["link_same_file", "verified_in_place"]

logger = logging.getLogger(__name__)


def verified_in_place(spec: ModelSpec, models_dir: Path) -> bool:
    """Whether the verified file of ``spec`` is already there.

    Raises :class:`FetchError` for a file that is there but wrong: it is never overwritten.
    """
    status = model_status(spec, models_dir)
    if not status.present:
        return False
    if status.verified:
        logger.info("model %s already present and verified at %s", spec.id, status.path)
        return True
    raise FetchError(
        spec.id,
        f"local file {status.path}",
        f"it exists but does not match the catalog (size {status.size_bytes}, sha256"
        f" {status.sha256 or 'not computed'}; expected size {spec.size_bytes}, sha256"
        f" {spec.sha256}); remove it to fetch the catalog file",
    )


def link_same_file(spec: ModelSpec, models_dir: Path, catalog: Mapping[str, ModelSpec]) -> bool:
    """Link (or copy) the verified file of another ``catalog`` model with the same sha256.

    Returns False, changing nothing, when no such file is there.
    """
    for other in catalog.values():
        if other.id == spec.id or not _same_file(spec, other):
            continue
        status = model_status(other, models_dir)
        if not status.verified:
            continue
        target = model_path(spec, models_dir)
        part = part_path(target)
        part.unlink(missing_ok=True)
        try:
            os.link(status.path, part)
            logger.info("model %s: hard-linked the verified file of %s", spec.id, other.id)
        except OSError as exc:
            logger.info("model %s: cannot hard-link %s (%s); copying", spec.id, status.path, exc)
            with status.path.open("rb") as src, part_writer(spec, target, str(status.path)) as out:
                copy_into(src, out)
                out.commit()
            return True
        os.replace(part, target)
        write_sidecar(sidecar_path(spec, models_dir), target.stat(), spec.sha256)
        return True
    return False


def _same_file(a: ModelSpec, b: ModelSpec) -> bool:
    """Same sha256, and the same size where both give one."""
    sizes_agree = a.size_bytes is None or b.size_bytes is None or a.size_bytes == b.size_bytes
    return a.sha256 == b.sha256 and sizes_agree
