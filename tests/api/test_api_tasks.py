"""``/api/tasks`` and ``/api/discovery/{service}`` against the fake cluster: shapes and errors."""

from __future__ import annotations

from conftest import service


def test_tasks_list_and_run(client):
    assert client.post("/api/services", json=service("backup", task="*/5 * * * *")).status_code == 201
    assert client.post("/api/services", json=service("web")).status_code == 201
    tasks = client.get("/api/tasks").json()
    assert [t["name"] for t in tasks] == ["backup"]
    assert tasks[0]["words"] == "Every fifth minute of every hour"
    assert client.post("/api/tasks/backup/run").status_code == 201
    r = client.post("/api/tasks/web/run")
    assert r.status_code == 409 and "not a task" in r.json()["message"]
    assert client.post("/api/tasks/nope/run").status_code == 404


def test_bad_task_body_names_the_field(client):
    r = client.post("/api/services", json=service("backup", schedule="61 * * * *"))
    assert r.status_code == 422 and "bad cron expression" in r.text and "schedule" in r.text


def test_discovery(client):
    client.post("/api/services", json=service("web", instances=2))
    view = client.get("/api/discovery/web").json()
    assert view["known"] and view["addresses"] == ["10.0.0.1"] and len(view["instances"]) == 2
    r = client.get("/api/discovery/nope")
    assert r.status_code == 404 and r.json()["message"] == "no service named 'nope'"
