"""The web UI in headless Chromium against a real server and the real Ray world: the demo
cluster's nodes and containers show, a service added through the form comes up running, a
container killed behind veo's back (docker kill on its engine) shows as restarted, live, and a
scheduled task's row shows its schedule, next run and, after "run now", its real last run.
Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from veo.core.config import load_spec
from veo.core.models import Service

pytestmark = [pytest.mark.docker, pytest.mark.ray, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1440,1100"]
LOOP = "sh -c \"trap 'exit 0' TERM; while :; do sleep 1; done\""


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.fail("the UI test needs Debian's chromium and chromium-driver: run `make test` "
                    "as root (its system-deps target installs them)", pytrace=False)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def demo(world) -> Iterator[list[str]]:
    """The demo cluster.yml's services on the world's nodes (uno front; dos, tres back)."""
    services = load_spec(ROOT / "cluster.yml").spec.services
    for svc in services.values():
        world.client.add_service(svc)
    try:
        yield list(services)
    finally:
        world.remove(*services)


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    driver.save_screenshot(str(path))
    return path


# read in one script run: the tables are redrawn on every event, so element handles go stale
ROWS_JS = """return [...document.querySelectorAll('#containers tbody tr')].map(r => ({
  service: r.dataset.service, status: r.dataset.status, restarts: Number(r.dataset.restarts)}));"""
NODES_JS = """return [...document.querySelectorAll('#nodes tbody tr')].map(r => ({
  node: r.dataset.node, text: r.innerText}));"""


def rows(driver, service: str) -> list[dict]:
    return [r for r in driver.execute_script(ROWS_JS) if r["service"] == service]


def wait(driver, what, timeout: float = 60.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(what)


def all_running(driver, services: list[str]) -> bool:
    got = driver.execute_script(ROWS_JS)
    return all(any(r["service"] == s for r in got) for s in services) and all(
        r["status"] == "running" for r in got if r["service"] in services)


def test_the_page_shows_the_cluster_and_follows_it_live(browser, live, demo, world, names):
    browser.get(live.url + "/")
    nodes = wait(browser, lambda d: len(got := d.execute_script(NODES_JS)) >= 3 and got)
    assert {"uno", "dos", "tres"} <= {n["node"] for n in nodes}
    # every demo instance (node-monitor on each node, 2 workers, the web group on uno) runs
    wait(browser, lambda d: all_running(d, demo), 90)
    assert len(rows(browser, "node-monitor")) == 3 and len(rows(browser, "worker")) == 2
    uno = next(n for n in browser.execute_script(NODES_JS) if n["node"] == "uno")
    assert "0.35 / 4" in uno["text"]  # web 0.25 + web-sidecar 0.1 (roles: front)
    wait(browser, lambda d: d.find_element(By.ID, "conn").text == "live", 10)
    assert browser.find_element(By.CSS_SELECTOR, "#events li")
    shot(browser, "1-demo-cluster")

    name = names("uiform")
    form = browser.find_element(By.ID, "add-form")
    form.find_element(By.NAME, "name").send_keys(name)
    form.find_element(By.NAME, "command").send_keys(LOOP)
    form.find_element(By.NAME, "memory").send_keys("16m")
    browser.find_element(By.ID, "add-button").click()
    wait(browser, lambda d: [r for r in rows(d, name) if r["status"] == "running"])
    shot(browser, "2-added-through-the-form")

    inst = world.instances(name)[0]
    world.runtime(inst.node).kill(inst.container_id)  # behind veo's back
    wait(browser, lambda d: [r for r in rows(d, name) if r["restarts"] == 1
                             and r["status"] == "running"])
    feed = browser.find_element(By.ID, "events").text
    assert f"{name}#0" in feed and "restarted" in feed
    shot(browser, "3-killed-and-restarted")


def test_the_form_shows_the_clis_messages(browser, live):
    browser.get(live.url + "/")
    form = wait(browser, lambda d: d.find_element(By.ID, "add-form"))
    form.find_element(By.NAME, "name").send_keys("bad")
    form.find_element(By.NAME, "memory").send_keys("lots")
    browser.find_element(By.ID, "add-button").click()
    errors = wait(browser, lambda d: d.find_element(By.ID, "add-errors").text, 20)
    assert errors == "services.bad.memory: expected a size like 512m, got 'lots'"


TASK_JS = """return [...document.querySelectorAll('#tasks tbody tr')].map(r => ({
  task: r.dataset.task, next: r.dataset.next, last: r.dataset.lastState, text: r.innerText,
  exit: r.querySelector('.exit').textContent, took: r.querySelector('.took').textContent}));"""


def task_row(driver, name: str) -> dict | None:
    return next((r for r in driver.execute_script(TASK_JS) if r["task"] == name), None)


def test_the_tasks_panel_shows_a_tasks_schedule_and_its_real_last_run(browser, live, world, names):
    name = names("uitask")
    world.client.add_service(Service(
        name=name, image="veo/busybox", network_mode="none", stop_grace_period=1,
        command=["sh", "-c", "echo from the ui; sleep 1; exit 3"], schedule="0 0 1 1 *"))
    browser.get(live.url + "/")
    row = wait(browser, lambda d: task_row(d, name))
    view = next(t for t in world.client.tasks() if t["name"] == name)
    assert row["next"] == view["next_run"] and view["next_run"].endswith("-01-01T00:00:00Z")
    assert row["last"] == "" and "never" in row["text"]
    assert "0 0 1 1 *" in row["text"] and "At 00:00 on January 1" in row["text"]

    # one script: the panel is redrawn on every event, so a held element handle may go stale
    clicked = browser.execute_script(
        "const b = document.querySelector(`#tasks tr[data-task='${arguments[0]}'] button`);"
        "if (!b) return null; b.click(); return b.textContent;", name)
    assert clicked == "run now"  # the REST route; the panel follows the run's events
    row = wait(browser, lambda d: (r := task_row(d, name)) and r["last"] == "failed" and r, 90)
    last = next(t for t in world.client.tasks() if t["name"] == name)["last_run"]
    assert last["state"] == "failed" and last["exit_code"] == 3 and last["duration"] >= 1.0
    assert row["exit"] == "3" and row["took"] == f"{last['duration']}s"
    browser.execute_script("document.getElementById('tasks-section').scrollIntoView()")
    shot(browser, "4-task-run-now")
