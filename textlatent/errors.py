"""Errors the library raises for problems the caller can fix.

Each carries the HTTP status the API answers with, so that the web layer maps them without
knowing every case, and the CLI turns them into a message and a non-zero exit.
"""

from __future__ import annotations


class TextLatentError(Exception):
    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInputError(TextLatentError, ValueError):
    status_code = 422
    code = "invalid_input"


class NotFoundError(TextLatentError, LookupError):
    status_code = 404
    code = "not_found"


class ConflictError(TextLatentError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(TextLatentError):
    status_code = 413
    code = "payload_too_large"


class BusyError(TextLatentError):
    """A lock could not be had in time (another writer holds the collection)."""

    status_code = 503
    code = "busy"


class ModelUnavailableError(TextLatentError):
    """A model folder the server is configured with cannot be read (damaged or of the wrong kind):
    a server-side problem, not the client's, so 503 with the file named."""

    status_code = 503
    code = "model_unavailable"
