from veo.core.summary import step_stats


def test_step_stats_nearest_rank():
    s = step_stats([0.3, 0.1, 0.2, 0.4] * 5)
    assert s == {"count": 20, "p50": 0.3, "p95": 0.4, "max": 0.4}


def test_step_stats_empty():
    assert step_stats([])["count"] == 0


def test_step_times_count_every_step_and_answer_since_a_mark():
    from veo.core.summary import StepTimes

    steps = StepTimes(3)
    for d in (0.1, 0.2):
        steps.append(d)
    mark = steps.stats()["total"]
    assert mark == 2
    for d in (0.5, 0.7):
        steps.append(d)
    # only the steps after the mark, though the deque also holds 0.2 still
    assert steps.stats(since=mark) == {"count": 2, "p50": 0.7, "p95": 0.7, "max": 0.7, "total": 4}
    assert steps.stats()["count"] == 3  # bounded: the oldest went
    assert steps.stats(since=4)["count"] == 0
    assert steps.stats(since=0)["count"] == 3  # more asked for than kept: what is kept
