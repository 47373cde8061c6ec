"""The record of processing (Art. 30) and data map (ADR 0030): generated from the registry and the
configuration; adding a column changes it; Markdown and CSV content; the CLI's exit codes."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from confide import privacy_registry
from confide.core.personal_data import Category, Storage, Table, visitor_data
from confide.core.runtime import Runtime
from confide.retention import service as retention
from confide.retention.schemas import PolicyIn
from confide.ropa import model, render
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import actor
from tests.pdf_checks import pdf_text


async def _record(rt: Runtime, world: World) -> dict:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await model.of_workspace(rt, uow, world.workspace_id)


async def test_the_record_follows_the_registry_and_the_configuration(rt: Runtime, world: World) -> None:
    record = await _record(rt, world)
    personal = privacy_registry.personal_columns()
    assert len(record["data_map"]) == len(personal)
    assert {(r["table"], r["column"]) for r in record["data_map"]} == {(t, c) for t, c, _ in personal}
    body = next(r for r in record["data_map"] if (r["table"], r["column"]) == ("messages", "body_enc"))
    assert body["storage"] == "encrypted"
    assert body["period"].startswith("1 year (365 days) after the chat's close")
    purposes = {a["purpose"] for a in record["activities"]}
    assert {kind.purpose for _, _, kind in personal} == purposes
    assert record["controller"]["name"] == "Shop Ltd"
    measures = {m["measure"]: m["state"] for m in record["security"]}
    assert measures["Transport encryption (TLS)"].startswith("off")
    assert "hash-chained" in measures["Audit log"]

    # A site's override shows in the periods; TLS switched on shows in the measures.
    async with rt.db.unit_of_work() as uow:
        await retention.set_policy(rt, uow, await actor(rt, world.admin_id),
                                   PolicyIn(scope=world.site_id, category="chats", days=30))
    rt.settings.cookie_secure = True
    again = await _record(rt, world)
    body = next(r for r in again["data_map"] if (r["table"], r["column"]) == ("messages", "body_enc"))
    assert "Shop: 30 days" in body["period"]
    assert {m["measure"]: m["state"] for m in again["security"]}["Transport encryption (TLS)"].startswith("on")


async def test_adding_a_column_to_the_registry_changes_the_record(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        inputs = await model.gather(uow, world.workspace_id)
    before = model.build(privacy_registry.REGISTRY, rt.settings, inputs)
    registry = dict(privacy_registry.REGISTRY)
    visitors = registry["visitors"]
    registry["visitors"] = replace(visitors, columns={
        **visitors.columns,
        "shoe_size_enc": visitor_data(Category.PROFILE, Storage.ENCRYPTED, purpose="fit advice",
                                      basis="Art. 6(1)(a) consent", retention="prospect"),
    })
    assert isinstance(registry["visitors"], Table)
    after = model.build(registry, rt.settings, inputs)
    added = [r for r in after["data_map"] if r not in before["data_map"]]
    assert [(r["table"], r["column"], r["purpose"]) for r in added] == [("visitors", "shoe_size_enc", "fit advice")]
    new_activity = next(a for a in after["activities"] if a["purpose"] == "fit advice")
    assert new_activity["lawful_basis"] == "Art. 6(1)(a) consent"
    assert new_activity["tables"] == ["visitors"]
    assert any(r.startswith("prospect: 2 years") for r in new_activity["retention"])
    assert "shoe_size_enc" in render.markdown(after)
    assert "shoe_size_enc" not in render.markdown(before)


async def test_markdown_and_csv(rt: Runtime, world: World) -> None:
    record = await _record(rt, world)
    md = render.markdown(record)
    assert md.startswith("# Record of processing activities - Shop Ltd")
    for heading in ("## Processing activities", "## Retention periods", "## Recipients",
                    "## Security measures (Art. 32)", "## Data map"):
        assert heading in md
    assert "| messages | body_enc | visitor | content |" in md
    assert "Consent records (proof of consent)" in md
    assert "6 years (2190 days)" in md
    rows = list(csv.reader(io.StringIO(render.csv_text(record))))
    header = rows[0]
    assert header[:3] == ["section", "table", "column"]
    data_map = [r for r in rows if r and r[0] == "data_map"]
    assert len(data_map) == len(record["data_map"])
    assert ["data_map", "visitors", "email_enc", "visitor", "contact"] in [r[:5] for r in data_map]
    assert any(r[:2] == ["retention", "activity"] and r[4] == "90 days" for r in rows if r)
    # Cells that would be formulas in a spreadsheet are neutralised.
    record["recipients"].append({"recipient": "=HYPERLINK(\"x\")", "what": "+1", "where": "@a"})
    cells = [c for r in csv.reader(io.StringIO(render.csv_text(record))) for c in r]
    assert "'=HYPERLINK(\"x\")" in cells
    assert "'+1" in cells
    assert "'@a" in cells
    title, blocks = render.document(record)
    assert title == "Record of processing activities - Shop Ltd"
    assert {b["type"] for b in blocks} == {"heading", "paragraph", "table"}


async def test_cli_formats_files_and_exit_codes(rt: Runtime, world: World) -> None:
    out = rt.settings.data_dir / "ropa.md"
    done = await run_cli(rt.settings, "privacy", "ropa", "--format", "md", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert out.read_text().startswith("# Record of processing activities - Shop Ltd")
    printed = await run_cli(rt.settings, "privacy", "ropa", "--format", "csv", "--workspace", world.workspace_id)
    assert printed.exit_code == 0, printed.output
    assert "data_map,messages,body_enc" in printed.stdout
    pdf_out = rt.settings.data_dir / "ropa.pdf"
    pdf = await run_cli(rt.settings, "privacy", "ropa", "--format", "pdf", "--out", str(pdf_out))
    assert pdf.exit_code == 0, pdf.output
    text = pdf_text(pdf_out.read_bytes())
    assert "Record of processing activities - Shop Ltd" in text
    assert "Data map" in text
    bad = await run_cli(rt.settings, "privacy", "ropa", "--format", "docx")
    assert bad.exit_code == 2
    assert "md, csv or pdf" in bad.output
    unknown = await run_cli(rt.settings, "privacy", "ropa", "--workspace", "nope")
    assert unknown.exit_code == 1
    assert "workspace not found" in unknown.output
    unwritable = await run_cli(rt.settings, "privacy", "ropa", "--out", str(rt.settings.data_dir / "no" / "x.md"))
    assert unwritable.exit_code == 2
    assert "cannot write" in unwritable.output
