"""The personal-data registry: assembled from every package's privacy.py, every table and column
classified, every personal table reaching its subject; and ``rows_of`` selecting exactly one
subject's rows on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, delete, select, text

import confide
from confide import privacy_registry
from confide.core import mail
from confide.core.db import Base
from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Hop,
    Personal,
    Reach,
    Storage,
    Subject,
    Table,
    assemble,
    check,
    check_owners,
    defining_packages,
    reach,
    rows_of,
    visitor_data,
)
from confide.core.runtime import Runtime
from confide.offline import service as offline
from confide.users import presence as user_presence
from confide.visitors.service import get_visitor
from confide.workspaces import service as workspaces
from tests import factories
from tests.conftest import World
from tests.helpers_api import accept, leave_message, login, say, set_status, start_chat

REGISTRY = privacy_registry.REGISTRY
META = Base.metadata


def _problems(registry: dict[str, Table]) -> list[str]:
    return check(registry, META)


def _with(name: str, entry: Table) -> dict[str, Table]:
    return {**REGISTRY, name: entry}


# ---------------------------------------------------------------- the assembled registry


def test_the_assembled_registry_has_no_problem() -> None:
    assert privacy_registry.problems() == []


def test_every_package_with_models_has_a_privacy_module_in_the_registry() -> None:
    """On disk: a package with a models module has a privacy.py, and privacy_registry lists it."""
    root = Path(confide.__file__).parent
    with_models = {
        f"confide.{p.parent.name}"
        for p in root.glob("*/*.py")
        if p.name == "models.py" or p.name.endswith("_models.py")
    }
    with_models |= {"confide.core"}  # core.keys and core.jobs define tables
    for package in sorted(with_models):
        assert (root / package.split(".")[1] / "privacy.py").is_file(), f"{package} has models but no privacy.py"
    assert with_models <= set(privacy_registry.DECLARED), sorted(with_models - set(privacy_registry.DECLARED))


def test_every_table_is_declared_by_the_package_that_defines_it() -> None:
    defined = defining_packages(Base.registry.mappers)
    assert defined["messages"] == "confide.chats"
    assert defined["jobs"] == "confide.core"
    assert defined["operator_invites"] == "confide.users"  # users/account_models.py
    for name, package in defined.items():
        assert name in privacy_registry.DECLARED[package], name


def test_visitor_data_is_never_stored_plain_without_a_reason() -> None:
    for table, column, kind in privacy_registry.personal_columns():
        if kind.subject == "visitor" and kind.storage is Storage.PLAIN:
            assert kind.note, f"{table}.{column} holds visitor data in plain text without a documented reason"
        if kind.storage is Storage.ENCRYPTED:
            assert column.endswith("_enc") or column == "wrapped_key", f"{table}.{column}: encrypted names end in _enc"


def test_the_reaches_of_the_subjects_tables() -> None:
    assert str(REGISTRY["visitors"].reach) == "visitor: id"
    assert str(REGISTRY["messages"].reach) == "visitor: conversation_id -> conversations.visitor_id"
    assert REGISTRY["messages"].reach == Reach("visitor", "visitor_id", (Hop("conversation_id", "conversations"),))
    assert str(REGISTRY["operator_sessions"].reach) == "operator: operator_id"
    assert REGISTRY["workspaces"].reach is None
    for name, entry in REGISTRY.items():
        assert entry.subjects() <= {r.subject for r in entry.reaches}, name


# ---------------------------------------------------------------- a broken registry fails the check


def test_an_unclassified_or_stale_table_or_column_fails() -> None:
    registry = dict(REGISTRY)
    del registry["offline_requests"]
    assert "offline_requests: table not classified in any privacy.py" in _problems(registry)

    ghost = Table({"id": NOT_PERSONAL})
    assert "ghosts: the registry names a table that does not exist" in _problems(_with("ghosts", ghost))

    columns = dict(REGISTRY["visitors"].columns)
    del columns["phone_enc"]
    columns["shoe_size"] = NOT_PERSONAL
    problems = _problems(_with("visitors", dataclasses.replace(REGISTRY["visitors"], columns=columns)))
    assert "visitors: unclassified columns ['phone_enc']" in problems
    assert "visitors: the registry names missing columns ['shoe_size']" in problems


def test_a_personal_table_without_a_reach_fails() -> None:
    no_reach = dataclasses.replace(REGISTRY["messages"], reach=None)
    assert _problems(_with("messages", no_reach)) == [
        "messages: holds personal data of a visitor but has no reach to one"
    ]
    # A reach to another subject does not count.
    wrong_subject = dataclasses.replace(REGISTRY["jobs"], reach=reach("visitor", "subject_id"))
    assert "jobs: holds personal data of a operator but has no reach to one" in _problems(_with("jobs", wrong_subject))


@pytest.mark.parametrize(
    ("table", "path", "problem"),
    [
        ("messages", "conversation_id -> conversations.visitor", "no column conversations.visitor"),
        ("messages", "conversation_id -> chats.visitor_id", "no table chats"),
        ("messages", "conversation -> conversations.visitor_id", "no column messages.conversation"),
        ("offline_requests", "visitor", "no column offline_requests.visitor"),
        # Columns that exist, on the wrong path: each hop follows its foreign key, the last
        # column names the subject.
        (
            "messages",
            "conversation_id -> visitors.id",
            "messages.conversation_id is a foreign key to another table than visitors.id",
        ),
        ("conversations", "site_id", "ends at conversations.site_id, a foreign key to another table than visitors.id"),
        ("visitors", "site_id", "ends at visitors.site_id, not the visitor's id visitors.id"),
    ],
)
def test_a_reach_naming_a_missing_or_wrong_column_or_table_fails(table: str, path: str, problem: str) -> None:
    broken = dataclasses.replace(REGISTRY[table], reach=reach("visitor", path))
    assert _problems(_with(table, broken)) == [f"{table}: reach {broken.reach}: {problem}"]


def test_a_reach_with_an_unknown_subject_or_filter_column_fails() -> None:
    presence = REGISTRY["presence"]
    bad_when = dataclasses.replace(presence, reach=reach("operator", "subject_id", when={"knd": "operator"}))
    assert _problems(_with("presence", bad_when)) == [
        "presence: reach operator: subject_id [knd=operator]: no column presence.knd"
    ]
    bad_subject = dataclasses.replace(presence, reach=reach("customer", "subject_id"))
    assert _problems(_with("presence", bad_subject)) == [
        "presence: reach customer: subject_id: unknown subject 'customer'"
    ]
    columns = {**REGISTRY["visitors"].columns, "name_enc": dataclasses.replace(visitor_data(Category.IDENTITY),
                                                                                subject="customer")}
    problems = _problems(_with("visitors", dataclasses.replace(REGISTRY["visitors"], columns=columns)))
    assert "visitors.name_enc: unknown subject 'customer'" in problems


def test_plain_visitor_data_without_a_reason_and_misnamed_ciphertext_fail() -> None:
    columns: dict[str, Any] = dict(REGISTRY["conversations"].columns)
    columns["rating"] = visitor_data(Category.BEHAVIOUR, Storage.PLAIN)
    columns["status"] = visitor_data(Category.BEHAVIOUR)
    problems = _problems(_with("conversations", dataclasses.replace(REGISTRY["conversations"], columns=columns)))
    assert sorted(problems) == [
        "conversations.rating: visitor data in plain text without a documented reason",
        "conversations.status: encrypted columns are named *_enc",
    ]


def test_a_package_without_privacy_module_or_declaring_another_packages_table_fails() -> None:
    defined = defining_packages(Base.registry.mappers)
    declared = dict(privacy_registry.DECLARED)
    del declared["confide.offline"]
    assert check_owners(declared, defined) == [
        "confide.offline defines tables ['offline_requests'] but has no confide.offline.privacy in privacy_registry"
    ]
    # The table moved into chats' privacy.py: declared, but not by its owner.
    declared["confide.chats"] = {**declared["confide.chats"], "offline_requests": REGISTRY["offline_requests"]}
    assert check_owners(declared, defined) == [
        "confide.offline defines tables ['offline_requests'] but has no confide.offline.privacy in privacy_registry",
        "offline_requests: declared in confide.chats.privacy but defined in confide.offline",
    ]
    # A package that forgets one of its tables.
    declared = dict(privacy_registry.DECLARED)
    declared["confide.users"] = {k: v for k, v in declared["confide.users"].items() if k != "presence"}
    assert check_owners(declared, defined) == [
        "presence: defined in confide.users but not declared in confide.users.privacy"
    ]


def test_a_table_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'messages' declared by both confide\.chats and confide\.offline"):
        assemble({"confide.chats": {"messages": REGISTRY["messages"]},
                  "confide.offline": {"messages": REGISTRY["messages"]}})


@pytest.mark.parametrize("path", ["", "a ->", "-> t.c", "t.c", "a -> t", "a -> t.c.d", "a -> .c", "a -> t."])
def test_a_malformed_reach_path_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="bad reach"):
        reach("visitor", path)


def test_reach_renders_the_path_it_parsed() -> None:
    r = reach("visitor", "a_id -> as.b_id -> bs.visitor_id", when={"kind": "x"})
    assert r.via == (Hop("a_id", "as"), Hop("b_id", "bs"))
    assert r.column == "visitor_id"
    assert str(r) == "visitor: a_id -> as.b_id -> bs.visitor_id [kind=x]"
    assert isinstance(REGISTRY["visitors"].columns["name_enc"], Personal)


# ---------------------------------------------------------------- rows_of on real data


def _pk(name: str, row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c.name) for c in META.tables[name].primary_key.columns)


async def _rows(rt: Runtime, selects: dict[str, Select[Any]]) -> dict[str, set[tuple[Any, ...]]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return {name: {_pk(name, r) for r in (await uow.session.execute(s)).all()} for name, s in selects.items()}


async def _raw(rt: Runtime, sql: str, **params: Any) -> set[tuple[Any, ...]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return {tuple(r) for r in (await uow.session.execute(text(sql), params)).all()}


async def _visitor_with_everything(rt: Runtime, client: httpx.AsyncClient, world: World, name: str) -> dict[str, Any]:
    """A visitor with two conversations (messages both ways, a rating), an offline request and a
    live widget socket."""
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": name, "email": f"{name.split()[0].lower()}@example.com"})
    visitor_id, conv1 = started["visitor_id"], started["conversation_id"]
    await accept(rt, world.operator_id, conv1)
    await say(rt, conv1, f"Hello, {name} here", sender_id=visitor_id)
    await say(rt, conv1, "How can I help?", sender="operator", sender_id=world.operator_id)
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        dept = await workspaces.get_department(uow, world.department_id)
        visitor = await get_visitor(uow, visitor_id)
        assert site is not None
        assert dept is not None
        assert visitor is not None
        from confide.chats import service as chats

        conv2 = (await chats.start_conversation(rt, uow, site=site, visitor=visitor, department=dept,
                                                page_url="https://shop.example/cart")).id
        req = await offline.store_request(rt, uow, site, visitor, department_id=None,
                                          message="Call me tomorrow", page_url=None)
        await user_presence.beat(uow, "node-1", visitors=[conv1], ttl_s=60)
    await say(rt, conv2, "Back again", sender_id=visitor_id)
    # ---- prospects: a prospect from the chat and the person's objection to profiling
    from confide.prospects import service as prospects
    from confide.prospects.schemas import ProspectIn
    from tests.helpers_api import actor

    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, await actor(rt, world.admin_id),
                                      ProspectIn(conversation_id=conv1, company=f"{name} Ltd"))
        await prospects.record_objection(rt, uow, world.workspace_id, f"{name.split()[0].lower()}@example.com")
    # ---- end prospects
    # Visitor Activity and verified identity: a page seen (with its word) and the site's vouching.
    from confide.core import clock, crypto
    from confide.redaction.models import RedactedOriginal
    from confide.verified.models import VerifiedIdentity
    from confide.visitor_activity.models import PageTerm, PageView

    page_id, identity_id, original_id, link_id = crypto.new_id(), crypto.new_id(), crypto.new_id(), crypto.new_id()
    async with rt.db.unit_of_work() as uow:
        uow.session.add(PageView(id=page_id, workspace_id=world.workspace_id, site_id=world.site_id,
                                 visitor_id=visitor_id, viewed_at=clock.now(), url_enc=b"sealed"))
        await uow.session.flush()
        uow.session.add(PageTerm(page_id=page_id, term=f"t{page_id[:20]}"))
        uow.session.add(VerifiedIdentity(id=identity_id, workspace_id=world.workspace_id, site_id=world.site_id,
                                         external_id_bidx=f"x{identity_id[:20]}", subject_id=visitor_id,
                                         created_at=clock.now(), last_verified_at=clock.now()))
        from confide.subjects.models import ExportLink  # an e-mailed export link (ADR 0026)

        uow.session.add(ExportLink(id=link_id, workspace_id=world.workspace_id, subject_id=visitor_id,
                                   visitor_ids=[visitor_id], searched_by="email", fmt="json",
                                   token_digest=crypto.token_digest(link_id), code_digest="c" * 64, failed_codes=0,
                                   created_by=None, created_at=clock.now(), expires_at=clock.now(), used_at=None,
                                   revoked_at=None))
        from confide.restriction.models import Restriction  # a lifted restriction (ADR 0031): its history

        restriction_id = crypto.new_id()
        uow.session.add(Restriction(id=restriction_id, workspace_id=world.workspace_id, visitor_id=visitor_id,
                                    reason="accuracy_contested", request_id=None, restricted_at=clock.now(),
                                    restricted_by=None, lifted_at=clock.now(), lifted_by=None))
        uow.session.add(RedactedOriginal(id=original_id, workspace_id=world.workspace_id, site_id=world.site_id,
                                         subject_id=visitor_id, conversation_id=conv1, ref_kind="message",
                                         ref_id="m1", kinds=["card"], created_at=clock.now(), text_enc=b"sealed"))
    return {"visitor_id": visitor_id, "conversations": {conv1, conv2}, "offline": req.id, "live": conv1,
            "prospect": lead["id"], "page": page_id, "identity": identity_id, "original": original_id,
            "link": link_id, "restriction": restriction_id}


async def test_rows_of_a_visitor_and_an_operator_are_exactly_theirs(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await _visitor_with_everything(rt, client, world, "Ana Lovelace")
    bob = await _visitor_with_everything(rt, client, world, "Bob Builder")
    await leave_message(client, world, "A third person", {"name": "Cara Mia", "email": "cara@example.com"})
    # Staff: the operator logs in (a session) with a live console and a queued e-mail; so does the admin.
    assert (await login(client, world.operator_email)).status_code == 200
    assert (await login(client, world.admin_email)).status_code == 200
    async with rt.db.unit_of_work() as uow:
        await factories.present(uow, world.operator_id)
        await factories.present(uow, world.admin_id)
        job = mail.enqueue_mail(rt, uow, to=[world.operator_email], subject="Hi", text="Hi", html="<p>Hi</p>",
                                workspace_id=world.workspace_id, subject_id=world.operator_id)
        mail.enqueue_mail(rt, uow, to=[world.admin_email], subject="Hi", text="Hi", html="<p>Hi</p>",
                          workspace_id=world.workspace_id, subject_id=world.admin_id)

    for who, other in ((ana, bob), (bob, ana)):
        vid = who["visitor_id"]
        convs = sorted(who["conversations"])
        got = await _rows(rt, privacy_registry.rows_of(Subject("visitor", vid)))
        in_convs = "(:c1, :c2)"
        expected = {
            "visitors": {(vid,)},
            "visitor_terms": await _raw(rt, "select visitor_id, term from visitor_terms where visitor_id = :v", v=vid),
            "subject_keys": {(vid,)},
            "conversations": {(c,) for c in convs},
            "messages": await _raw(rt, f"select id from messages where conversation_id in {in_convs}",  # noqa: S608
                                   c1=convs[0], c2=convs[1]),
            "conversation_terms": await _raw(
                rt, f"select term, conversation_id from conversation_terms where conversation_id in {in_convs}",  # noqa: S608
                c1=convs[0], c2=convs[1]),
            "offline_requests": {(who["offline"],)},
            "presence": {("visitor", who["live"], "node-1")},
            # ---- prospects
            "prospects": {(who["prospect"],)},
            "prospect_terms": await _raw(rt, "select prospect_id, term from prospect_terms where prospect_id = :p",
                                         p=who["prospect"]),
            "profiling_objections": await _raw(
                rt, "select id from profiling_objections where email_bidx = "
                    "(select email_bidx from visitors where id = :v)", v=vid),
            "activity_pages": {(who["page"],)},
            "activity_page_terms": await _raw(rt, "select page_id, term from activity_page_terms where page_id = :p",
                                              p=who["page"]),
            "verified_identities": {(who["identity"],)},
            "redacted_originals": {(who["original"],)},
            # The pre-chat form's choices, one ledger row per purpose offered (silence is a no).
            "consent_records": await _raw(rt, "select seq from consent_records where subject_id = :v", v=vid),
            # A visitor's jobs (marketing e-mail) and the ledger's erasure flag: none here.
            "jobs": set(),
            "consent_erasure": set(),
            "legal_holds": set(),  # retention (ADR 0030): nobody is under a hold here
            "subject_export_links": {(who["link"],)},  # an e-mailed export link (subjects, ADR 0026)
            "restrictions": {(who["restriction"],)},  # a restriction of processing, lifted (ADR 0031)
            # Data-subject requests: none here (tests/test_privacy_requests.py walks them).
            "privacy_requests": set(),
            "privacy_request_visitors": set(),
            "privacy_request_events": set(),
        }
        assert set(got) == set(expected)  # exactly the tables that reach a visitor
        assert got == expected
        # Real rows, both ways: 2 visitor and 1 operator message in the first chat, 1 in the second
        # (plus what the service adds, such as the operator joining).
        assert len(got["messages"]) >= 4
        assert len(got["visitor_terms"]) == 2
        assert got["conversation_terms"]
        theirs = await _rows(rt, privacy_registry.rows_of(Subject("visitor", other["visitor_id"])))
        assert got["consent_records"]
        for name, rows in got.items():
            assert rows or name in ("jobs", "consent_erasure", "legal_holds", "privacy_requests",
                                    "privacy_request_visitors", "privacy_request_events"), name
            assert not rows & theirs[name], name

    staff = await _rows(rt, privacy_registry.rows_of(Subject("operator", world.operator_id)))
    sessions = await _raw(rt, "select id from operator_sessions where operator_id = :o", o=world.operator_id)
    assert len(sessions) == 1
    expected_staff = {
        "operators": {(world.operator_id,)},
        "operator_departments": {(world.operator_id, world.department_id)},
        "operator_sessions": sessions,
        "presence": {("operator", world.operator_id, factories.TEST_NODE)},
        "jobs": {(job,)},
    }
    assert {k: v for k, v in staff.items() if v} == expected_staff
    # Every other table that can reach an operator runs on this database and finds nothing of theirs.
    assert set(staff) == {n for n, e in REGISTRY.items() if any(r.subject == "operator" for r in e.reaches)}
    admin = await _rows(rt, privacy_registry.rows_of(Subject("operator", world.admin_id)))
    for name, rows in staff.items():
        assert not rows & admin[name], name


async def test_the_conditions_of_rows_of_delete_exactly_one_subjects_rows(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await _visitor_with_everything(rt, client, world, "Ana Lovelace")
    bob = await _visitor_with_everything(rt, client, world, "Bob Builder")
    before = await _rows(rt, privacy_registry.rows_of(Subject("visitor", ana["visitor_id"])))
    # Leaves first, along the hops (messages and terms before the conversations they reach through).
    order = ["messages", "conversation_terms", "presence", "prospect_terms", "prospects", "profiling_objections",
             "activity_page_terms", "activity_pages", "verified_identities", "redacted_originals",
             "offline_requests", "conversations", "visitor_terms", "subject_export_links", "restrictions"]
    async with rt.db.unit_of_work() as uow:
        conditions = privacy_registry.conditions_of(Subject("visitor", bob["visitor_id"]))
        # The ledger refuses a plain DELETE (append-only); its one door raises the erasure flag first.
        from confide.consent import removal as consent_removal

        assert await consent_removal.erase_subject(uow, bob["visitor_id"]) > 0
        for name in order:
            await uow.session.execute(delete(META.tables[name]).where(conditions[name]))
    gone = await _rows(rt, privacy_registry.rows_of(Subject("visitor", bob["visitor_id"])))
    assert {name: rows for name, rows in gone.items() if rows} == {
        "visitors": {(bob["visitor_id"],)},
        "subject_keys": {(bob["visitor_id"],)},
    }
    assert await _rows(rt, privacy_registry.rows_of(Subject("visitor", ana["visitor_id"]))) == before
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.execute(select(META.tables["messages"].c.id))).all()


def test_rows_of_only_needs_the_registry_and_the_metadata() -> None:
    """The walk is generic: a registry of two tables gives two selects."""
    registry = {"visitors": REGISTRY["visitors"], "messages": REGISTRY["messages"], "sites": REGISTRY["sites"]}
    selects = rows_of(registry, META, Subject("visitor", "v1"))
    assert set(selects) == {"visitors", "messages"}
    sql = str(selects["messages"].compile(compile_kwargs={"literal_binds": True}))
    assert "messages.conversation_id IN (SELECT" in sql
    assert "'v1'" in sql
    assert rows_of(registry, META, Subject("operator", "o1")) == {}
