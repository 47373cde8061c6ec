"""Domain errors. Each carries its HTTP status and a stable code; one handler renders them."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def extra(self) -> dict[str, str | int]:
        """Fields the JSON answer carries beside ``detail`` and ``code`` (none by default)."""
        return {}


class Invalid(DomainError):
    status = 422
    code = "invalid"


class NotFound(DomainError):
    """Also used for "not yours": denial looks exactly like absence."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "not found") -> None:
        super().__init__(message)


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Offline(Conflict):
    code = "offline"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"


class CommitAndRaise(Exception):
    """A service's writes must be kept although the call fails (e.g. a failed-login counter).

    The unit of work commits, then raises ``error``.
    """

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error
