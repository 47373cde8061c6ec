"""Client frames: one pydantic model per frame type, one discriminated union (on ``type``) per socket.

Each union's ``TypeAdapter`` is built once, at import, and validates a frame's JSON text in one
pass (``validate_json``: no intermediate dict). The limits are those of docs/protocol.md:

- ids (``conversation_id``, ``operator_id``, ``department_id``): 1–64 URL-safe characters;
- ``client_id``: 1–64 characters, no control characters (every frame may carry one);
- ``text``: 1–4000 characters, not only white space; ``comment``: at most 1000;
- sequence numbers: integers from 0 to 2^31 − 1 (``hello``'s ``last_seq``: anything else counts
  as 0); ``score``: an integer from 1 to 5;
- booleans are JSON ``true``/``false`` only, integers JSON integers only (no ``"5"``, ``5.0``, ``true``);
- unknown fields are ignored.

Adding a frame type: a model here, listed in its socket's union, and one handler entry in the
socket's dispatcher (``web/ws/visitor.py`` or ``web/ws/operator.py``); the dispatcher refuses to
start with a frame that has no handler.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

MAX_TEXT = 4000
MAX_COMMENT = 1000
MAX_SEQ = 2**31 - 1  # sequence numbers are 32-bit integer columns

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("a message needs text")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]
Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT)]


class Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    client_id: ClientId | None = None


# ---------------------------------------------------------------- visitor socket
def _seq_or_zero(value: object) -> object:
    """A reconnecting client is never locked out by its ``last_seq``: anything else counts as 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ:
        return value
    return 0


class Hello(Frame):
    type: Literal["hello"]
    token: str
    conversation_id: Id
    last_seq: Annotated[Seq, BeforeValidator(_seq_or_zero)] = 0


class VisitorMessage(Frame):
    type: Literal["message"]
    client_id: ClientId
    text: Text


class VisitorTyping(Frame):
    type: Literal["typing"]
    on: bool


class VisitorRead(Frame):
    type: Literal["read"]
    seq: Seq


class End(Frame):
    type: Literal["end"]


class Rate(Frame):
    type: Literal["rate"]
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Comment | None = None


class LeaveMessage(Frame):
    """Nobody can answer: the waiting chat becomes an offline request (``routing.leave_message``
    checks the e-mail and phone as the offline form does)."""

    type: Literal["leave_message"]
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    message: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = None


class Ping(Frame):
    type: Literal["ping"]


VisitorFrame = Annotated[
    Hello | VisitorMessage | VisitorTyping | VisitorRead | End | Rate | LeaveMessage | Ping,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- operator socket
class Status(Frame):
    type: Literal["status"]
    status: Literal["online", "away", "offline"]


class Accept(Frame):
    type: Literal["accept"]
    conversation_id: Id


class OperatorMessage(Frame):
    type: Literal["message"]
    conversation_id: Id
    client_id: ClientId
    text: Text


class OperatorTyping(Frame):
    type: Literal["typing"]
    conversation_id: Id
    on: bool


class OperatorRead(Frame):
    type: Literal["read"]
    conversation_id: Id
    seq: Seq


class Transfer(Frame):
    type: Literal["transfer"]
    conversation_id: Id
    operator_id: Id | None = None
    department_id: Id | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Transfer:
        if (self.operator_id is None) == (self.department_id is None):
            raise ValueError("transfer to an operator or to a department")
        return self


class Close(Frame):
    type: Literal["close"]
    conversation_id: Id


class History(Frame):
    type: Literal["history"]
    conversation_id: Id
    after_seq: Seq = 0


OperatorFrame = Annotated[
    Status | Accept | OperatorMessage | OperatorTyping | OperatorRead | Transfer | Close | History | Ping,
    Field(discriminator="type"),
]

VISITOR_FRAMES: TypeAdapter[VisitorFrame] = TypeAdapter(VisitorFrame)
OPERATOR_FRAMES: TypeAdapter[OperatorFrame] = TypeAdapter(OperatorFrame)

# What an invalid field is answered with: a sentence of the protocol, not the validator's dump.
# Ids that are not ids are answered like unknown ones (denial looks like absence); so is a token.
FIELD_ERRORS: dict[str, tuple[str, str]] = {
    "conversation_id": ("not_found", "conversation not found"),
    "operator_id": ("not_found", "operator not found"),
    "department_id": ("not_found", "department not found"),
    "token": ("unauthorized", "invalid or expired visitor token"),
    "client_id": ("invalid", "client_id must be 1 to 64 characters, without control characters"),
    "text": ("invalid", f"a message holds 1 to {MAX_TEXT} characters of text"),
    "on": ("invalid", "on must be true or false"),
    "seq": ("invalid", "seq must be a non-negative integer"),
    "last_seq": ("invalid", "last_seq must be a non-negative integer"),
    "after_seq": ("invalid", "after_seq must be a non-negative integer"),
    "score": ("invalid", "score must be a whole number from 1 to 5"),
    "comment": ("invalid", f"comment must be text of at most {MAX_COMMENT} characters"),
    "status": ("invalid", "status must be online, away or offline"),
    "email": ("invalid", "email must be an e-mail address of at most 320 characters"),
    "phone": ("invalid", "phone must be a phone number of at most 64 characters"),
    "message": ("invalid", f"message must be text of at most {MAX_TEXT} characters"),
}
