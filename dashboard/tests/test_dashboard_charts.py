"""The SVG chart geometry the templates draw (pure)."""

from dashboard import charts


def test_the_axis_top_is_a_round_number_at_or_above_the_largest_value() -> None:
    assert [charts.nice_top(v) for v in (0, 0.3, 1, 3, 7, 42, 180)] == [1.0, 0.5, 1.0, 5.0, 10.0, 50.0, 200.0]


def test_bars_grow_with_their_value_and_stand_on_the_baseline() -> None:
    chart = charts.bar_chart([0, 5, 10], ["a", "b", "c"], unit="$")
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0 and heights[1] < heights[2]
    assert all(round(bar.y + bar.height, 1) == chart.baseline for bar in chart.bars)
    assert chart.ticks[-1][1] == "$10"


def test_a_line_path_visits_every_value_left_to_right() -> None:
    path = charts.line_path([0, 1, 0], top=1)
    points = [p.split(",") for p in path.removeprefix("M").split(" L")]
    assert [float(x) for x, _ in points] == sorted(float(x) for x, _ in points)
    assert float(points[1][1]) < float(points[0][1])  # higher values are drawn higher up
