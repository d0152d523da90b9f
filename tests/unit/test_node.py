"""The node process's pure parts: the cut-off watch, the hand-over files, the `ray start` command
line, the CLI's option errors, settings.disconnect, the agent's rejoin step (with a recording
engine) and ray-cluster.yaml under Ray's own validation."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from veo.adapters.ray_local import HEALTH_CHECK_CONFIG
from veo.cli.app import app
from veo.core.config import load_spec
from veo.core.errors import SpecError
from veo.core.models import EventKind, Settings
from actors import rejoin
from veo.adapters import handoff
from veo.node.fence import Watch
from veo.node.raynode import RayNodeConfig, argv, env

REPO = Path(__file__).resolve().parents[2]


# ---- the watch -------------------------------------------------------------------------------


def test_watch_fences_once_after_stop_after_and_resets_when_back():
    w = Watch(stop_after=10)
    assert not w.observe(False, now=0)
    assert not w.observe(False, now=9.9)
    assert w.observe(False, now=10.0)  # due
    assert not w.observe(False, now=30)  # once per outage
    assert not w.observe(True, now=31)
    assert not w.observe(False, now=32)  # a new outage counts from its own start
    assert w.observe(False, now=42)


def test_watch_never_fences_with_never():
    w = Watch(stop_after=None)
    assert not any(w.observe(False, now=t) for t in range(0, 10_000, 100))


def test_a_short_outage_does_not_add_up():
    w = Watch(stop_after=10)
    for t in range(0, 100, 2):
        assert not w.observe(t % 8 != 0, now=t)  # never 10 s in a row


# ---- hand-over files -------------------------------------------------------------------------


def test_stop_after_cache(tmp_path):
    assert handoff.load_stop_after(tmp_path) == handoff.DEFAULT_STOP_AFTER  # before any converge
    handoff.save_stop_after(tmp_path, 12.5)
    assert handoff.load_stop_after(tmp_path) == 12.5
    handoff.save_stop_after(tmp_path, None)
    assert handoff.load_stop_after(tmp_path) is None
    (tmp_path / "settings.json").write_text("{not json")
    assert handoff.load_stop_after(tmp_path) == handoff.DEFAULT_STOP_AFTER


def test_fenced_entries_append_and_only_reported_ones_are_dropped(tmp_path):
    handoff.record_fenced(tmp_path, [{"id": "a"}])
    handoff.record_fenced(tmp_path, [{"id": "b"}])
    assert [e["id"] for e in handoff.peek_fenced(tmp_path)] == ["a", "b"]
    handoff.record_fenced(tmp_path, [{"id": "c"}])  # a new fence while the first two are reported
    handoff.drop_fenced(tmp_path, 2)
    assert [e["id"] for e in handoff.peek_fenced(tmp_path)] == ["c"]
    handoff.drop_fenced(tmp_path, 1)
    assert handoff.peek_fenced(tmp_path) == [] and not (tmp_path / "fenced.json").exists()


# ---- ray start ---------------------------------------------------------------------------------


def test_head_argv_has_labels_detection_settings_and_no_dashboard():
    cfg = RayNodeConfig(name="uno", role="front", head=True, port=6380, node_ip="10.0.0.1",
                        dashboard=False, ray_opts=["--num-cpus=4"])
    args = argv(cfg)
    assert args[1:3] == ["start", "--block"]
    assert "--labels=veo.node=uno,veo.role=front" in args
    assert "--head" in args and "--port=6380" in args and "--node-ip-address=10.0.0.1" in args
    sysconf = next(a for a in args if a.startswith("--system-config="))
    assert json.loads(sysconf.split("=", 1)[1]) == HEALTH_CHECK_CONFIG
    assert "--include-dashboard=false" in args and args[-1] == "--num-cpus=4"
    assert cfg.gcs() == ("10.0.0.1", 6380)


def test_worker_argv_joins_and_sets_no_head_flags():
    cfg = RayNodeConfig(name="dos", address="10.0.0.1:6379")
    args = argv(cfg)
    assert "--address=10.0.0.1:6379" in args and "--labels=veo.node=dos" in args
    assert not any(a.startswith(("--head", "--port", "--system-config")) for a in args)
    assert cfg.gcs() == ("10.0.0.1", 6379)


def test_raylet_env_carries_docker_host_node_dir_and_redis_on_the_head_only(tmp_path):
    head = RayNodeConfig(name="uno", head=True, docker_host="unix:///d.sock", redis="redis://r:6379")
    e = env(head, tmp_path, base={"PATH": "/bin"})
    assert e["DOCKER_HOST"] == "unix:///d.sock" and e[handoff.NODE_DIR_ENV] == str(tmp_path)
    assert e["RAY_REDIS_ADDRESS"] == "redis://r:6379" and e["PATH"] == "/bin"
    worker = RayNodeConfig(name="dos", address="h:1", redis="redis://r:6379")
    assert "RAY_REDIS_ADDRESS" not in env(worker, tmp_path, base={})


# ---- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--name", "x"], "exactly one of --head"),
    (["--name", "x", "--head", "--address", "h:1"], "exactly one of --head"),
    (["--name", "x", "--address", "nohost"], "expected HEAD:PORT"),
    (["--name", "bad name", "--head"], "--name 'bad name'"),
    (["--name", "x", "--head", "--port", "70000"], "not a TCP port"),
])
def test_node_start_refuses_bad_options_with_exit_code_2(args, message):
    result = CliRunner().invoke(app, ["node", "start", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_node_stop_without_a_node_process(tmp_path):
    result = CliRunner().invoke(app, ["node", "stop", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no veo node process" in result.output


# ---- settings.disconnect -------------------------------------------------------------------------


def _spec(tmp_path, value: str) -> Path:
    f = tmp_path / "cluster.yml"
    f.write_text(f"name: x\nsettings:\n  disconnect:\n    stop_after: {value}\n")
    return f


def test_disconnect_stop_after_default_duration_and_never(tmp_path):
    assert Settings().disconnect.stop_after == 30.0
    assert load_spec(_spec(tmp_path, "1m30s")).spec.settings.disconnect.stop_after == 90.0
    assert load_spec(_spec(tmp_path, "never")).spec.settings.disconnect.stop_after is None


def test_disconnect_stop_after_bad_value_names_its_line(tmp_path):
    with pytest.raises(SpecError) as e:
        load_spec(_spec(tmp_path, "soon"))
    text = str(e.value)
    assert "cluster.yml:4" in text and "stop_after" in text


# ---- the agent's rejoin step -------------------------------------------------------------------


class RecordingRuntime:
    def __init__(self):
        self.started: list[str] = []

    def start(self, cid: str) -> None:
        self.started.append(cid)


def _entry(cid: str, service: str, instance: int, gen: int, node: str = "dos") -> dict:
    labels = {"veo.managed": "true", "veo.service": service, "veo.instance": str(instance),
              "veo.generation": str(gen), "veo.node": node}
    return {"id": cid, "name": f"c_{service}_{instance}_g{gen}", "labels": labels,
            "reason": "stopped by its machine"}


def test_rejoin_restarts_current_generation_reports_all_and_caches_settings(tmp_path, monkeypatch):
    monkeypatch.setenv(handoff.NODE_DIR_ENV, str(tmp_path))
    handoff.record_fenced(tmp_path, [_entry("cur", "web", 0, 3), _entry("old", "web", 1, 1),
                                     _entry("other", "web", 2, 1, node="uno")])
    desired = [SimpleNamespace(key="web#0", generation=3), SimpleNamespace(key="web#1", generation=2)]
    rt, delivered = RecordingRuntime(), []
    settings = Settings.model_validate({"disconnect": {"stop_after": "7s"}})
    events = rejoin.on_converge(rt, "dos", desired, settings, deliver=delivered.extend)
    assert rt.started == ["cur"]  # the stale one is left for the converge to remove
    assert [(e.kind, e.service, e.instance, e.generation) for e in delivered] == [
        (EventKind.fenced, "web", 0, 3), (EventKind.fenced, "web", 1, 1)]
    assert events == delivered
    assert "started again" in events[0].reason and "newer generation" in events[1].reason
    assert handoff.load_stop_after(tmp_path) == 7.0
    assert rejoin.on_converge(rt, "dos", desired, settings, deliver=delivered.extend) == []
    assert len(delivered) == 2  # reported once


def test_rejoin_keeps_the_list_when_the_scheduler_cannot_take_it(tmp_path, monkeypatch):
    monkeypatch.setenv(handoff.NODE_DIR_ENV, str(tmp_path))
    handoff.record_fenced(tmp_path, [_entry("old", "web", 1, 1)])

    def refuse(events):
        raise ConnectionError("scheduler restarting")

    assert rejoin.on_converge(RecordingRuntime(), "dos", [], Settings(), deliver=refuse) == []
    delivered = []
    rejoin.on_converge(RecordingRuntime(), "dos", [], Settings(), deliver=delivered.extend)
    assert [e.container_id for e in delivered] == ["old"]


def test_rejoin_without_a_node_process_does_nothing(monkeypatch):
    monkeypatch.delenv(handoff.NODE_DIR_ENV, raising=False)
    assert rejoin.on_converge(RecordingRuntime(), "dos", [], Settings()) == []


# ---- ray-cluster.yaml --------------------------------------------------------------------------


def test_ray_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "ray-cluster.yaml").read_text())
    assert raw["provider"]["type"] == "local"
    config = prepare_config(raw)
    validate_config(config)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert any("veo node start --head" in c for c in starts)
    assert any("veo node start --address $RAY_HEAD_IP:6379" in c for c in starts)
    # the local provider turns the two worker placeholders into one node type of two machines
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])


def test_systemd_unit_runs_veo_node_start():
    unit = (REPO / "deploy" / "veo-node.service").read_text()
    assert "ExecStart=/usr/local/bin/veo node start $VEO_NODE_ARGS" in unit
    assert "Environment=RAY_AUTH_MODE=token" in unit and "Restart=always" in unit


def test_a_fencing_machine_tells_its_agent_to_leave_stopped_containers_alone(tmp_path, monkeypatch):
    from actors import rejoin

    monkeypatch.setenv(handoff.NODE_DIR_ENV, str(tmp_path))
    assert not rejoin.cut_off()
    handoff.mark_fencing(tmp_path, True)  # the node process, before it stops Ray and containers
    assert rejoin.cut_off() and handoff.fencing(tmp_path)
    handoff.mark_fencing(tmp_path, False)  # a new Ray node: its agent supervises again
    assert not rejoin.cut_off()
    monkeypatch.delenv(handoff.NODE_DIR_ENV)
    assert not rejoin.cut_off()  # a plain `ray start` machine has no node process
