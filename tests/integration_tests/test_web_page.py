"""The chat page in a real headless Chromium (Debian's, driven by Playwright) against a real server.

The server is ``langchain-steer serve`` on a loopback port with the demo model, as in test_server.py. The
tests click and type as a user would, compare what the page shows with what the API answers, and save the
screenshots that docs/server.md shows (docs/img/).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from server_process import KEY_APP, Server

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
PROMPT = "Plan a dinner for Saturday."


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; `make test` installs Debian's chromium package.")
        pytest.skip("Chromium is not installed here; `make test` installs Debian's chromium package.")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("web")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.goto(server.url + "/")
    yield opened
    context.close()


def _sign_in(page, name: str) -> None:
    page.fill("#user-name", name)
    page.fill("#api-key", KEY_APP)
    page.click("#sign-in")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#slider-cost")


def _reply(page, timeout: float = 120_000) -> str:
    """Wait for the last answer to finish streaming and return it."""
    page.wait_for_function(
        "() => !document.getElementById('send').disabled && "
        "document.querySelector('#log li.assistant:last-child .text').textContent.length > 0",
        timeout=timeout,
    )
    return page.locator("#log li.assistant .text").last.text_content() or ""


def _api_reply(server, steering: dict[str, float], max_tokens: int) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=KEY_APP)
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
        extra_body={"steering": steering},
    )  # fmt: skip
    return reply.choices[0].message.content or ""


def test_select_with_the_keyboard_alone_gives_the_apis_steered_reply(page, server):
    _sign_in(page, "selma")
    page.fill("#max-tokens", "40")
    slider = page.locator("#slider-cost")
    slider.focus()
    page.keyboard.press("Home")  # the range's minimum: -1
    assert slider.input_value() == "-1"
    assert "toward budget" in (slider.get_attribute("aria-valuetext") or "")
    page.keyboard.press("ArrowRight")
    assert slider.input_value() == "-0.95"
    page.keyboard.press("Home")
    page.locator("#message").focus()
    page.keyboard.type(PROMPT)
    page.locator("#send").focus()
    page.keyboard.press("Enter")
    shown = _reply(page)
    assert shown == _api_reply(server, {"cost": -1.0}, 40)
    assert shown != _api_reply(server, {}, 40)
    page.screenshot(path=str(IMAGES / "select.png"), full_page=True)


def test_a_reply_streams_token_by_token(page):
    _sign_in(page, "stella")
    page.fill("#max-tokens", "120")
    page.fill("#message", PROMPT)
    page.keyboard.press("Enter")
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = page.locator("#log li.assistant .text").last.text_content() or ""
        busy = page.locator("#send").is_disabled()
        if text and busy:
            seen.append(len(text))
        if not busy and text:
            break
        time.sleep(0.05)
    # Text was on the page while the answer was still streaming, and grew in several steps.
    assert len(set(seen)) >= 3, seen


def test_learn_moves_cost_and_age_and_a_reload_restores_them(page, server):
    _sign_in(page, "lena")
    page.check("input[name=mode][value=learn]")
    page.fill("#max-tokens", "30")
    page.fill("#message", "We're on a tight budget and bringing our toddler")
    page.keyboard.press("Enter")
    _reply(page)
    page.wait_for_function("() => document.querySelectorAll('#learned-list li').length > 0")
    cost = float(page.locator("#slider-cost").input_value())
    age = float(page.locator("#slider-age").input_value())
    assert cost < 0 and age < 0
    learned = page.locator("#learned-list").text_content() or ""
    assert "cost" in learned and "age" in learned and "tight budget" in learned
    page.screenshot(path=str(IMAGES / "learn.png"), full_page=True)
    page.reload()  # the name is remembered: the page signs in again and reads the stored preferences
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_function("() => Number(document.getElementById('slider-cost').value) < 0")
    assert float(page.locator("#slider-cost").input_value()) == pytest.approx(cost)
    assert float(page.locator("#slider-age").input_value()) == pytest.approx(age)


def test_calibrate_sets_the_sliders_to_the_agents_strengths(page, server):
    import httpx

    _sign_in(page, "cara")
    page.check("input[name=mode][value=calibrate]")
    for name in ("ambiance", "age", "time", "culture"):
        page.uncheck(f"input[name=calibrate-dimension][value={name}]")
    page.fill("#max-tokens", "30")
    page.fill("#message", PROMPT)
    page.click("#calibrate-start")
    page.wait_for_selector("#choices:not([hidden])", timeout=120_000)
    assert page.locator("#choice-a").text_content() != page.locator("#choice-b").text_content()
    page.screenshot(path=str(IMAGES / "calibrate.png"), full_page=True)
    page.click("#prefer-a")  # the agent keeps [-1, 0]
    page.wait_for_function("() => document.getElementById('calibrate-round').textContent.includes('2 of 2')")
    page.click("#prefer-b")  # then [-0.5, 0]: the strength is the middle, -0.25
    page.wait_for_function("() => document.getElementById('calibrate-round').textContent.startsWith('Done')")
    stored = httpx.get(
        f"{server.url}/v1/users/cara/preferences", headers={"Authorization": f"Bearer {KEY_APP}"}
    ).json()["preferences"]
    assert stored["cost"] == pytest.approx(-0.25)
    assert float(page.locator("#slider-cost").input_value()) == pytest.approx(stored["cost"])


def test_the_page_fits_a_narrow_phone_screen_and_labels_its_controls(browser, server):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(server.url + "/")
    _sign_in(page, "phil")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
            .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label'))
            .map(e => e.id || e.name)"""
    )
    assert unlabelled == []
    context.close()
