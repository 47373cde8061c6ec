"""Art. 18(3): a person whose processing was restricted is told when the restriction is lifted.

``lift_and_tell`` lifts (``service.lift``) and, when something was lifted, queues one e-mail to the
newest address on record of the person's visits, in the same transaction: no lift without its
notice, no notice without the lift. The job has no purpose, so no guard or deferral holds it back
(a communication the controller owes the person, not a processing for one of its purposes). Above
``visitors.service`` (which decrypts the address), so not in ``restriction.service`` itself.
"""

from __future__ import annotations

from typing import Any

from confide.auth.actors import OperatorActor
from confide.core import mail
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.restriction import service
from confide.subjects.export import controller_of
from confide.visitors import service as visitors

SUBJECT = "The restriction of processing of your data is lifted"


async def lift_and_tell(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, visitor_ids: object
) -> dict[str, Any]:
    """``service.lift``, then the person's notice; the answer says whether one was queued (``told``)."""
    done = await service.lift(rt, uow, actor, workspace_id, visitor_ids)
    done["told"] = False
    if not done["lifted"]:
        return done
    to = await visitors.newest_email(rt, uow, list(done["visitor_ids"]))
    if to is None:  # no address on record: staff tell them another way (the request's timeline)
        return done
    contact = controller_of(rt.settings, "")["contact"]
    text = (
        "Hello,\n\nyou asked us to restrict the processing of your personal data (Art. 18 GDPR). "
        "That restriction is now lifted: we may again use your data as our privacy notice describes.\n\n"
        f"If you disagree, or want to object, write to {contact}.\n"
    )
    mail.enqueue_mail(rt, uow, to=[to], subject=SUBJECT, text=text, workspace_id=workspace_id,
                      subject_id=done["lifted"][0])
    done["told"] = True
    return done
