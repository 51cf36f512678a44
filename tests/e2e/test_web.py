"""The web listener of the real service: ``/api/status``, the retry action and its token, the config that
names the listener, and the status page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone
from tests.support.cli import run_cli
from tests.support.s3 import unused_port
from tests.support.service import Layout, ServiceProcess, wait_for

TOKEN = "web-token-0123456789abcdef"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOSTILE = "<img src=x onerror=alert(1)>.wav"


def start_web(layout: Layout, services: list[ServiceProcess], *, token: str | None = None, **web: Any) -> str:
    port = unused_port()
    layout.data["web"] = {"listen": f"127.0.0.1:{port}", **web}
    layout.write()
    env = {"DROPSCRIBE_WEB_TOKEN": token} if token is not None else {}
    services.append(ServiceProcess(layout.config, env).wait_started())
    return f"http://127.0.0.1:{port}"


def status(base: str) -> dict[str, Any]:
    reply = httpx.get(f"{base}/api/status", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body: dict[str, Any] = reply.json()
    return body


def retry(base: str, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{base}/api/retry", json=body, headers=headers, timeout=30)


def test_api_status_has_the_shape_of_status_json_and_no_transcript(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    base = start_web(layout, services)
    make_tone(layout.inbox / "a.wav", seconds=2.0, fmt="wav")
    (layout.inbox / "notes.mp3").write_bytes(b"meeting notes, not audio\n" * 20)
    wait_for(lambda: (layout.done / "a.wav").exists() and (layout.failed / "notes.mp3").exists())

    doc = wait_for(lambda: (d := status(base))["recent_done"] and d["recent_failures"] and d)

    # what `dropscribe status --json` has, and more
    assert {"counts", "paused", "service", "waiting", "in_progress", "recent_failures",
            "usage_seconds_total"} <= set(doc)  # fmt: skip
    assert doc["counts"] == {"done": 1, "failed": 1}
    assert doc["paused"] is None
    assert doc["service"]["running"] is True
    assert doc["service"]["pid"] == services[0].proc.pid
    assert [(f["relpath"], f["code"]) for f in doc["recent_failures"]] == [("notes.mp3", "not_audio")]
    assert [f["relpath"] for f in doc["recent_done"]] == ["a.wav"]
    assert doc["usage_seconds_total"] > 0
    assert doc["billed"]["today_s"] == doc["billed"]["month_s"] == doc["usage_seconds_total"]
    inbox = doc["inboxes"][str(layout.inbox)]
    assert inbox["available"] is True
    assert {"waiting", "settling", "held", "over_budget", "in_flight"} <= set(inbox)
    # transcript text is never served, by the API or the page
    transcript = (layout.done / "a.txt").read_text(encoding="utf-8").strip()
    assert transcript
    assert transcript not in json.dumps(doc)
    page = httpx.get(f"{base}/", timeout=10)
    assert page.status_code == 200
    assert transcript not in page.text
    assert "notes.mp3" in page.text
    assert "not_audio" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert httpx.get(f"{base}/healthz", timeout=10).text == "ok\n"
    assert httpx.get(f"{base}/nothing-here", timeout=10).status_code == 404


def test_retry_needs_a_configured_token(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    base = start_web(layout, services)

    reply = retry(base, {"all": True}, token=TOKEN)

    assert reply.status_code == 403
    assert "no web token is configured" in reply.json()["error"]


def test_retry_with_the_token_sends_a_failed_file_back_through_its_inbox(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(path="generation", status=400, code="InvalidParameter", times=1))
    base = start_web(layout, services, token=TOKEN)
    make_tone(layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    failed = layout.failed / "talk.wav"
    wait_for(lambda: failed.exists() and (layout.failed / "talk.error.json").exists())

    assert retry(base, {"all": True}).status_code == 401
    assert retry(base, {"all": True}, token=TOKEN[:-1] + "X").status_code == 401
    assert retry(base, {"all": True}, token=TOKEN + "X").status_code == 401
    assert retry(base, {"paths": "talk.wav"}, token=TOKEN).status_code == 400
    assert retry(base, {"paths": ["talk.wav"]}, token=TOKEN).status_code == 400  # relative
    assert retry(base, {"all": True, "paths": [str(failed)]}, token=TOKEN).status_code == 400
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"}
    not_json = httpx.post(f"{base}/api/retry", content=b"all", headers=headers, timeout=10)
    assert not_json.status_code == 415
    assert failed.exists()  # nothing was moved by a refused request

    reply = retry(base, {"paths": [str(failed)]}, token=TOKEN)

    assert reply.status_code == 200
    assert reply.json()["ok"] is True
    assert reply.json()["moved"] == [{"from": str(failed), "to": str(layout.inbox / "talk.wav")}]
    wait_for(lambda: (layout.done / "talk.wav").exists() and (layout.done / "talk.txt").exists())
    assert not (layout.failed / "talk.error.json").exists()
    assert TOKEN not in services[0].output()  # the token is never logged
    doc = status(base)
    assert doc["counts"].get("done") == 1
    assert doc["recent_failures"] == []


def test_web_and_metrics_listen_must_agree(layout: Layout, tmp_path: Path) -> None:
    layout.data["metrics"] = {"listen": "127.0.0.1:9108"}
    layout.data["web"] = {"listen": "127.0.0.1:9109"}
    layout.write()

    checked = run_cli("check", "-c", str(layout.config))

    assert checked.returncode == 78
    assert "web.listen" in checked.stdout + checked.stderr
    assert "differs from metrics.listen" in checked.stdout + checked.stderr

    layout.data["web"] = {"listen": ":9108"}  # no host is loopback: the same listener
    layout.write()
    same = run_cli("check", "-c", str(layout.config))
    assert same.returncode == 0, same.stdout + same.stderr


def test_a_token_file_that_cannot_be_read_stops_the_start(layout: Layout, tmp_path: Path) -> None:
    layout.data["web"] = {"listen": f"127.0.0.1:{unused_port()}", "token_file": str(tmp_path / "missing")}
    layout.write()
    env = {k: v for k, v in os.environ.items() if k != "DROPSCRIBE_WEB_TOKEN"}
    env["DASHSCOPE_API_KEY"] = "sk-test-0123456789abcdef"

    run = subprocess.run([sys.executable, "-m", "dropscribe", "run", "-c", str(layout.config)],
                         capture_output=True, text=True, timeout=60, check=False, env=env)  # fmt: skip

    assert run.returncode == 78
    assert "web.token_file" in run.stdout + run.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian package chromium)")
def test_the_page_in_a_real_browser_escapes_names_and_shows_the_pause(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    base = start_web(layout, services)
    make_tone(layout.inbox / HOSTILE, seconds=1.0, fmt="wav")
    wait_for(lambda: (layout.done / HOSTILE).exists())
    wait_for(lambda: status(base)["recent_done"])
    emulator.add_fault(Fault(path="generation", status=401, code="InvalidApiKey", times=None))
    make_tone(layout.inbox / "b.wav", seconds=1.0, fmt="wav", freq=600)
    wait_for(lambda: status(base)["paused"] is not None)

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    # a phone's screen: desktop windows cannot be made this narrow
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844,
                                                                          "pixelRatio": 2}})  # fmt: skip
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"{base}/")
        banner = driver.find_element(By.ID, "banner")
        assert "InvalidApiKey" in banner.text
        # the hostile name shows as text: no <img> element was made from it, and no alert ran
        cells = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, ".cards .name")]
        assert HOSTILE in cells
        assert driver.find_elements(By.TAG_NAME, "img") == []
        assert driver.execute_script("return document.querySelectorAll('[onerror]').length") == 0
        assert driver.find_element(By.ID, "billed-today").text.endswith("s")
        # readable on a phone: the page fits the screen's width without sideways scrolling
        assert driver.execute_script("return window.innerWidth") == 390
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot))
        print(f"status page screenshot: {shot}")
        assert shot.stat().st_size > 0
    finally:
        driver.quit()
