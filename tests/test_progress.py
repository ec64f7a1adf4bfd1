"""The shared progress bar: rate from the caller's field or rich's estimate, an ETA, a switch."""

from rich.progress import Progress, TimeRemainingColumn

from thinkscope.core.progress import RateColumn, progress_bar


def test_rate_column_prefers_the_callers_rate_then_rich_speed():
    clock = [0.0]
    progress = Progress(RateColumn("samples"), get_time=lambda: clock[0], disable=True)
    given = progress.add_task("a", total=10, rate="12.5 tok/s")
    estimated = progress.add_task("b", total=10)
    column = progress.columns[0]
    assert column.render(progress.tasks[given]).plain == "samples 12.5 tok/s"
    assert column.render(progress.tasks[estimated]).plain == "samples "
    for _ in range(4):  # 2 units every 0.5 s: 4 units/s
        clock[0] += 0.5
        progress.advance(estimated, 2)
    assert column.render(progress.tasks[estimated]).plain == "samples 4.00/s"


def test_progress_bar_has_rate_and_eta_and_can_be_switched_off():
    bar = progress_bar("score", "traces", show=False)
    kinds = [type(c) for c in bar.columns]
    assert RateColumn in kinds and TimeRemainingColumn in kinds
    assert bar.disable
    assert not progress_bar("score", "traces").disable
