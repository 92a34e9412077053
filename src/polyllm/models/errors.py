"""How moving model files fails: one cannot be fetched, its bytes are wrong, or it cannot be
uploaded."""

from __future__ import annotations

__all__ = ["ChecksumMismatch", "FetchError", "UploadError"]


class FetchError(Exception):
    """A model file could not be put in place; the message names the model, the source and why."""

    def __init__(self, model_id: str, source: str, reason: str) -> None:
        super().__init__(f"cannot fetch model {model_id!r} from {source}: {reason}")
        self.model_id = model_id
        self.source = source
        self.reason = reason


class ChecksumMismatch(FetchError):
    """The bytes a source delivered do not have the catalog's size and sha256."""


class UploadError(Exception):
    """A model file could not be uploaded; the message names the model, the destination and why."""

    def __init__(self, model_id: str, destination: str, reason: str) -> None:
        super().__init__(f"cannot upload model {model_id!r} to {destination}: {reason}")
        self.model_id = model_id
        self.destination = destination
        self.reason = reason
