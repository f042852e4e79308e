"""The stop rule every monitor shares (lightning_stability/assess/patience.py)."""

from lightning_stability.assess import Patience


def test_stops_after_patience_consecutive_events_and_resets_on_a_quiet_check() -> None:
    rule = Patience(2, stop=True)
    assert [rule.update(event) for event in (True, False, True, True, True)] == [False, False, False, True, True]
    assert rule.consecutive == 3
    assert rule.update(False) is False and rule.consecutive == 0


def test_counts_but_never_stops_when_stopping_is_off() -> None:
    rule = Patience(1, stop=False)
    assert not any(rule.update(True) for _ in range(3)) and rule.consecutive == 3


def test_state_round_trip() -> None:
    rule, fresh = Patience(3, stop=True), Patience(3, stop=True)
    rule.update(True), rule.update(True)
    fresh.load_state_dict(rule.state_dict())
    assert fresh.consecutive == 2 and fresh.update(True) is True
