from veo.core.summary import step_stats


def test_step_stats_nearest_rank():
    s = step_stats([0.3, 0.1, 0.2, 0.4] * 5)
    assert s == {"count": 20, "p50": 0.3, "p95": 0.4, "max": 0.4}


def test_step_stats_empty():
    assert step_stats([])["count"] == 0
