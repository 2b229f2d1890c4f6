"""The operator console in a real headless Chromium (Playwright), on the real stack.

Each test drives the console as a person would (sign in, click, type) and checks the
outcome from outside too: the API, the CRM table, the ledger. Every page visited is
screenshotted under the data directory (.velocity/screenshots/, git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.console import pages
from ledger.commands import RecordBudgetUse
from tests.e2e.conftest import (
    AUDITOR_KEY,
    OPERATOR_KEY,
    SERVICE_KEY,
    Colony,
    RunningStack,
    until,
)
from tests.e2e.test_colony import CRM, ORACLE, status_is

pytestmark = pytest.mark.e2e
SCREENSHOTS = Path(".velocity/screenshots")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is missing: `make test` installs it (apt-get)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def shot(page: Page, name: str) -> None:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, stack: RunningStack, key: str, then: str = "/console") -> None:
    await page.goto(stack.root_url + then)
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("who")).to_be_visible()


async def completed_oracle(stack: RunningStack, **fields: Any) -> str:
    """An Oracle mission the real colony completed."""
    with stack.client() as client:
        mission_id = client.post("/missions", json=ORACLE | fields).json()["mission_id"]
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"), 60)
    assert done["status"] == "completed", done
    return str(mission_id)


async def awaiting_approval(stack: RunningStack) -> tuple[str, dict[str, Any]]:
    """A CRM mission the real colony drove to its approval; with its pending approval."""
    with stack.client() as client, stack.client(OPERATOR_KEY) as operator:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        waiting = await until(lambda: status_is(client, mission_id, "awaiting_approval", "failed"))
        assert waiting["status"] == "awaiting_approval", waiting
        approval = next(
            a for a in operator.get("/approvals").json()["pending"] if a["mission_id"] == mission_id
        )
    return mission_id, approval


async def crm_state(stack: RunningStack, writeback_id: str) -> dict[str, Any]:
    connection = await asyncpg.connect(stack.slice.database_url)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM crm_writebacks WHERE writeback_id = $1) AS writes,"
            " qualification_score, next_step FROM crm_accounts WHERE account_id = 'acct-northwind'",
            writeback_id,
        )
        assert row is not None
        return dict(row)
    finally:
        await connection.close()


async def test_an_operator_approves_from_the_queue_and_sees_one_write_and_a_verified_chain(
    colony_stack: RunningStack, page: Page
) -> None:
    mission_id, approval = await awaiting_approval(colony_stack)
    before = await crm_state(colony_stack, approval["approval_id"])
    await sign_in(page, colony_stack, OPERATOR_KEY, "/console/approvals")
    await expect(page).to_have_url(re.compile(r"/console/approvals$"))
    item = page.locator(f"#approval-{approval['approval_id']}")
    diff = item.get_by_test_id("diff")
    await expect(diff).to_contain_text("qualification_score")
    await expect(diff).to_contain_text(approval["changes"]["qualification_score"])
    await shot(page, "approvals")

    await item.get_by_test_id("approval-mission").click()
    await expect(page).to_have_url(re.compile(f"/console/missions/{mission_id}$"))
    evidence = page.get_by_test_id("evidence-link").first
    await expect(evidence).to_be_visible()
    href = await evidence.get_attribute("href")
    assert href is not None
    stored = await page.request.get(colony_stack.root_url + href)
    assert stored.ok and len(await stored.body()) > 0, "the evidence's stored content opens"
    await page.go_back()

    await item.get_by_label("Reason").fill("score matches the account notes")
    await item.get_by_test_id("approve").click()
    await expect(page.get_by_role("status").first).to_contain_text("Approved")
    with colony_stack.client() as client:
        done = await until(lambda: status_is(client, mission_id, "completed", "failed"), 60)
    assert done["status"] == "completed", done["failure_reason"]
    after = await crm_state(colony_stack, approval["approval_id"])
    assert (before["writes"], after["writes"]) == (0, 1), "exactly one CRM write"
    assert after["qualification_score"] == approval["changes"]["qualification_score"]

    await page.goto(f"{colony_stack.root_url}/console/missions/{mission_id}")
    await expect(page.get_by_test_id("status")).to_have_text("completed")
    verdict = page.get_by_test_id("chain-verdict")
    await expect(verdict).to_contain_text("verified:")
    events = await page.get_by_test_id("event").count()
    await expect(verdict).to_contain_text(f"{events} events, every link intact")
    decided = page.get_by_test_id("decided")
    await expect(decided).to_contain_text("Approved by operator:local-operator")
    await expect(decided).to_contain_text("score matches the account notes")
    await shot(page, "mission")


async def test_an_auditor_sees_the_queue_but_cannot_approve_even_with_a_crafted_post(
    colony_stack: RunningStack, page: Page
) -> None:
    _, approval = await awaiting_approval(colony_stack)
    await sign_in(page, colony_stack, AUDITOR_KEY, "/console/approvals")
    item = page.locator(f"#approval-{approval['approval_id']}")
    await expect(item).to_be_visible()
    await expect(item.get_by_test_id("approve")).to_be_disabled()
    await expect(item.get_by_test_id("reject")).to_be_disabled()
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    crafted = await page.request.post(
        f"{colony_stack.root_url}/console/approvals/{approval['approval_id']}/approve",
        form={"csrf_token": csrf or "", "reason": "auditor tries"},
        max_redirects=0,
    )
    assert crafted.status == 403
    assert "may look, not act" in await crafted.text()
    assert await still_pending(colony_stack, approval["approval_id"])
    await shot(page, "approvals-auditor")


async def test_an_action_without_the_csrf_token_is_refused(
    colony_stack: RunningStack, page: Page
) -> None:
    _, approval = await awaiting_approval(colony_stack)
    await sign_in(page, colony_stack, OPERATOR_KEY)
    url = f"{colony_stack.root_url}/console/approvals/{approval['approval_id']}/approve"
    missing = await page.request.post(url, form={"reason": "no token"}, max_redirects=0)
    forged = await page.request.post(
        url, form={"reason": "forged token", "csrf_token": "x" * 32}, max_redirects=0
    )
    assert (missing.status, forged.status) == (403, 403)
    assert "CSRF" in await missing.text()
    assert await still_pending(colony_stack, approval["approval_id"])


async def test_a_long_approval_queue_is_shown_a_page_at_a_time(
    stack: RunningStack, page: Page
) -> None:
    """With more approvals waiting than a page holds, the queue says how many wait in
    all, shows the oldest page with each brief, and "Next page" shows the rest (the stack
    without reactors: the test stands in for the colony). Rejected afterwards, so other
    tests on this stack see a short queue."""
    objective = f"Paged queue {uuid.uuid4()}"
    size = pages.APPROVALS_PAGE_SIZE
    with stack.client() as client, stack.client(OPERATOR_KEY) as operator:
        before = pending_total(operator)
        missions = [
            client.post("/missions", json=CRM | {"objective": objective}).json()["mission_id"]
            for _ in range(size + 1)
        ]
        writebacks = await Colony(stack).awaiting_approval(missions)
        total = before + size + 1
        await until(lambda: pending_total(operator) == total)
        try:
            await sign_in(page, stack, OPERATOR_KEY, "/console/approvals")
            await expect(page.get_by_test_id("pending-count")).to_contain_text(f"{total} pending")
            first = await page.get_by_test_id("approval").evaluate_all("els => els.map(e => e.id)")
            await page.get_by_test_id("queue-next").click()
            await expect(page.get_by_test_id("queue-page")).to_contain_text("earlier pages")
            second = await page.get_by_test_id("approval").evaluate_all("els => els.map(e => e.id)")
            newest = page.get_by_test_id("approval").last
            await expect(newest).to_contain_text(objective)
            await expect(newest.locator("summary")).to_contain_text("verdict pass")
        finally:
            for writeback in writebacks.values():
                operator.post(f"/approvals/{writeback}/reject", json={"reason": "paged"})
    assert len(first) == size
    assert not set(first) & set(second), "no approval on both pages"
    assert len(second) == min(total - size, size)


async def test_the_queue_count_follows_new_approvals_without_reloading_the_queue(
    stack: RunningStack, page: Page
) -> None:
    """The count line polls a fragment of its own (one query, not the page's briefs and
    diffs): a new approval shows in the count while the briefs on screen stay put, and an
    anonymous poll is sent to sign in like any page."""
    with stack.client(OPERATOR_KEY) as operator:
        before = pending_total(operator)
    await sign_in(page, stack, OPERATOR_KEY, "/console/approvals")
    count = page.get_by_test_id("pending-count")
    await expect(count).to_contain_text(f"{before} pending")
    shown = await page.get_by_test_id("approval").count()
    polled: list[str] = []
    page.on("request", lambda request: polled.append(urlsplit(request.url).path))
    with stack.client() as client, stack.client(OPERATOR_KEY) as operator:
        objective = f"Counted {uuid.uuid4()}"
        mission = client.post("/missions", json=CRM | {"objective": objective}).json()
        writebacks = await Colony(stack).awaiting_approval([mission["mission_id"]])
        try:
            await expect(count).to_contain_text(f"{before + 1} pending", timeout=15_000)
            assert await page.get_by_test_id("approval").count() == shown
        finally:
            for writeback in writebacks.values():
                operator.post(f"/approvals/{writeback}/reject", json={"reason": "counted"})
    assert polled and set(polled) == {"/console/approvals/backlog"}
    async with httpx.AsyncClient(base_url=stack.root_url, timeout=10) as anonymous:
        redirected = await anonymous.get("/console/approvals/backlog")
    assert redirected.status_code == 303
    assert redirected.headers["location"].startswith("/console/login?next=")


def pending_total(operator: httpx.Client) -> int:
    return int(operator.get("/approvals").json()["pending_total"])


async def test_a_long_history_lists_its_start_and_end_and_the_printable_page_all(
    stack: RunningStack, page: Page
) -> None:
    """A mission of more events than the page lists shows the first and the last ones and
    says how many it left out, with the whole chain's verdict; the printable page lists
    every event."""
    head, tail = pages.HISTORY_SHOWN
    with stack.client() as client:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
    spent = RecordBudgetUse(tokens=1, time_ms=1)
    await Colony(stack).send(mission_id, *(spent for _ in range(head + tail + 9)))
    events = head + tail + 10
    with stack.client() as client:
        await until(lambda: client.get(f"/missions/{mission_id}").json()["last_sequence"] == events)
    await sign_in(page, stack, OPERATOR_KEY, f"/console/missions/{mission_id}")
    await expect(page.get_by_test_id("chain-verdict")).to_contain_text(f"verified: {events}")
    await expect(page.get_by_test_id("history-left-out")).to_contain_text("10 events left out")
    listed = await page.get_by_test_id("event").all_inner_texts()
    await page.goto(f"{stack.root_url}/console/missions/{mission_id}/print")
    printed = await page.get_by_test_id("event").count()
    assert len(listed) == head + tail
    assert listed[0].split()[0] == "1" and listed[-1].split()[0] == str(events)
    assert printed == events


async def still_pending(stack: RunningStack, approval_id: str) -> bool:
    with stack.client(OPERATOR_KEY) as operator:
        pending = operator.get("/approvals").json()["pending"]
    return any(a["approval_id"] == approval_id for a in pending)


async def test_from_sign_in_to_a_given_missions_verified_trail_in_at_most_five_steps(
    colony_stack: RunningStack, page: Page
) -> None:
    mission_id = await completed_oracle(colony_stack)
    steps = 0
    started = time.monotonic()
    await page.goto(colony_stack.root_url + "/console")
    steps += 1
    await page.get_by_label("API key").fill(OPERATOR_KEY)
    await page.get_by_role("button", name="Sign in").click()
    steps += 1
    await page.get_by_label("Objective or id").fill(mission_id)
    await page.get_by_role("button", name="Filter").click()
    steps += 1
    await expect(page).to_have_url(re.compile(f"q={mission_id}"))
    await page.get_by_role("link", name=mission_id[:13]).click()
    steps += 1
    await expect(page.get_by_test_id("chain-verdict")).to_contain_text("every link intact")
    await expect(page.get_by_test_id("verdict")).to_be_visible()
    await expect(page.get_by_test_id("why")).to_contain_text("claims cite")
    assert steps <= 5
    assert time.monotonic() - started < 120


async def test_filters_live_in_the_url_and_a_link_reproduces_the_view(
    colony_stack: RunningStack, page: Page
) -> None:
    await completed_oracle(colony_stack)
    await sign_in(page, colony_stack, AUDITOR_KEY)
    await page.get_by_label("Type", exact=True).select_option("oracle")
    await page.get_by_label("Status", exact=True).select_option("completed")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"status=completed.*type=oracle"))
    rows = page.locator("table.missions tbody tr")
    await expect(rows.first).to_contain_text("oracle")
    texts = await rows.all_inner_texts()
    shown = len(texts)
    assert not any("crm" in text for text in texts)
    await expect(page.get_by_role("navigation", name="Counts per status")).to_contain_text(
        "completed"
    )
    link = page.url
    await page.goto(colony_stack.root_url + "/console/missions")
    await page.goto(link)
    await expect(page.get_by_label("Type", exact=True)).to_have_value("oracle")
    await expect(rows).to_have_count(shown)
    await shot(page, "missions")
    invalid = await page.request.get(colony_stack.root_url + "/console/missions?status=bogus")
    assert invalid.status == 422 and "status" in await invalid.text()


async def test_the_missions_list_refreshes_itself_while_it_is_open(
    colony_stack: RunningStack, page: Page
) -> None:
    await sign_in(page, colony_stack, AUDITOR_KEY)
    objective = f"Which risks does atlas carry this week? {time.time_ns()}"
    with colony_stack.client() as client:
        client.post("/missions", json=ORACLE | {"objective": objective})
    await expect(page.locator("table.missions")).to_contain_text(objective, timeout=15_000)


async def test_an_operator_fails_a_mission_with_a_reason_and_replays_it(
    colony_stack: RunningStack, page: Page
) -> None:
    mission_id, _ = await awaiting_approval(colony_stack)
    await sign_in(page, colony_stack, OPERATOR_KEY, f"/console/missions/{mission_id}")
    await page.get_by_label("Reason to fail it").fill("customer withdrew the request")
    await page.get_by_role("button", name="Fail the mission").click()
    await expect(page.get_by_test_id("status")).to_have_text("failed")
    await expect(page.get_by_test_id("failure-reason")).to_contain_text("customer withdrew")
    await page.get_by_label("Reason to replay").fill("customer came back")
    await page.get_by_role("button", name="Replay as a new mission").click()
    await expect(page.get_by_text("Replay requested")).to_be_visible()
    replay_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    assert replay_id != mission_id
    with colony_stack.client(AUDITOR_KEY) as auditor:
        original = auditor.get(f"/missions/{mission_id}").json()
        replay = await until(lambda: _mission(auditor, replay_id))
    assert original["failure_reason"].endswith("customer withdrew the request")
    assert replay["replay_of"] == mission_id


def _mission(client: httpx.Client, mission_id: str) -> dict[str, Any] | None:
    answer = client.get(f"/missions/{mission_id}")
    return answer.json() if answer.status_code == 200 else None


async def test_the_trail_exports_as_json_that_matches_the_api(
    colony_stack: RunningStack, page: Page
) -> None:
    mission_id = await completed_oracle(colony_stack)
    with colony_stack.client() as client:
        events = client.get(f"/missions/{mission_id}/events", params={"limit": 500}).json()
    await sign_in(page, colony_stack, AUDITOR_KEY, f"/console/missions/{mission_id}")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Export the trail (JSON)").click()
    saved = Path(await (await download.value).path())
    exported = json.loads(await asyncio.to_thread(saved.read_text))
    assert exported["chain"]["intact"] is True
    assert [e["meta"]["hash"] for e in exported["events"]] == [e["hash"] for e in events["events"]]
    assert exported["state"]["status"] == "completed"
    await page.get_by_role("link", name="Printable page").click()
    await expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
    await expect(page.get_by_test_id("chain-verdict")).to_contain_text("every link intact")


async def test_health_and_the_four_dashboards_render_from_live_data(
    colony_stack: RunningStack, page: Page
) -> None:
    await completed_oracle(colony_stack)
    await sign_in(page, colony_stack, AUDITOR_KEY, "/console/health")
    await expect(page.get_by_test_id("readiness")).to_have_text(re.compile("ready|degraded"))
    await expect(page.get_by_test_id("rollout-step")).to_have_text("6")
    await expect(page.get_by_test_id("admission")).to_contain_text("Running")
    for service in ("decider", "projector", "colony"):  # one of each, owning every partition
        process = page.get_by_test_id("processes").locator(f"tr[data-service={service}]")
        await expect(process).to_have_count(1)
        await expect(process).to_contain_text("0, 1, 2, 3, 4, 5")
    await shot(page, "health")
    await page.get_by_role("link", name="Dashboards").click()
    boards = page.get_by_test_id("dashboard")
    await expect(boards).to_have_count(4)
    finished = page.locator("figure", has_text="Finished missions per second")
    await expect(finished).to_contain_text("outcome=completed")
    await expect(page.locator("figure", has_text="Stage duration p50")).to_contain_text("stage=")
    calls = page.locator("figure", has_text="Provider calls per second")
    await expect(calls).to_contain_text("outcome=ok")
    await shot(page, "dashboards")


async def test_without_a_session_pages_redirect_and_wrong_keys_are_refused(
    colony_stack: RunningStack,
) -> None:
    async with httpx.AsyncClient(base_url=colony_stack.root_url, timeout=10) as anonymous:
        redirected = await anonymous.get("/console/approvals")
        assert redirected.status_code == 303
        assert redirected.headers["location"] == "/console/login?next=%2Fconsole%2Fapprovals"
        form = await anonymous.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token
        for key, status in ((SERVICE_KEY, 403), ("local-colony-root-key", 403), ("nope", 401)):
            refused = await anonymous.post(
                "/console/login", data={"key": key, "login_token": token.group(1)}
            )
            assert refused.status_code == status
            assert "velocity_console=" not in refused.headers.get("set-cookie", "")
        assert (await anonymous.post("/console/approvals/x/approve", data={})).status_code == 303


async def test_the_console_reads_without_javascript_and_by_keyboard(
    colony_stack: RunningStack, browser: Browser
) -> None:
    mission_id = await completed_oracle(colony_stack)
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(f"{colony_stack.root_url}/console/missions/{mission_id}")
        await shot(page, "login")
        await expect(page.get_by_label("API key")).to_be_focused()
        await page.keyboard.type(AUDITOR_KEY)
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("chain-verdict")).to_contain_text("every link intact")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/console/login"))
        await expect(page.get_by_role("status")).to_have_text("Signed out.")
        await page.goto(f"{colony_stack.root_url}/console/missions/{mission_id}")
        await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    finally:
        await context.close()
