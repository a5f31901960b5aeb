"""The log cursor (dispatcher.domain.logs): every line a container writes reaches a follower once, whatever ACI's
window shows when it reads; lines the window lost are reported as a gap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.domain.logs import Cursor, Gap, Line, Position, after, parse, plain, time_text

T0 = 1_798_761_600_000_000_000  # 2027-01-01T00:00:00Z in nanoseconds


def stamped(lines: list[Line]) -> str:
    """A log as ACI answers with timestamps=true."""
    return "".join(f"{time_text(line.at)} {line.text}\n" for line in lines)


def walk(written: list[Line], reads: list[int], window: int | None = None) -> tuple[list[Line], list[Gap]]:
    """A follower reading after the container wrote the first ``n`` lines, for each ``n`` in ``reads``, ACI
    showing at most the last ``window`` lines."""
    position: Position | None = None
    got: list[Line] = []
    gaps: list[Gap] = []
    for n in [*reads, len(written)]:
        shown = written[:n] if window is None else written[max(n - window, 0) : n]
        taken = after(parse(stamped(shown)), position)
        got += taken.lines
        gaps += [taken.gap] if taken.gap is not None else []
        position = taken.position
    return got, gaps


def test_parse_takes_acis_times_and_keeps_the_text_as_written() -> None:
    content = "2026-12-01T10:00:00.123456789Z hello  world\n2026-12-01T10:00:01Z \tindented\n2026-12-01T10:00:02.5Z \n"
    assert parse(content) == [
        Line(1_796_119_200_123_456_789, "hello  world"),
        Line(1_796_119_201_000_000_000, "\tindented"),
        Line(1_796_119_202_500_000_000, ""),
    ]
    assert plain(content) == "hello  world\n\tindented\n\n"
    assert time_text(1_796_119_200_123_456_789) == "2026-12-01T10:00:00.123456789Z"
    assert parse("2026-12-01T11:00:00+01:00 x")[0].at == 1_796_119_200_000_000_000


def test_a_line_without_a_time_takes_the_time_of_the_line_before() -> None:
    assert parse("2026-12-01T10:00:00Z a\nb\r\n") == [
        Line(1_796_119_200_000_000_000, "a"),
        Line(1_796_119_200_000_000_000, "b\r"),
    ]
    assert time_text(0) is None
    assert parse("2026-12-01T10:00:00Z a\n2026-13-45T99:00:00Z not a time\n")[1] == Line(
        1_796_119_200_000_000_000, "2026-13-45T99:00:00Z not a time"
    )


def test_identical_lines_at_one_time_are_each_given_once() -> None:
    written = [Line(T0, "tick")] * 150
    got, gaps = walk(written, [1, 1, 40, 40, 149])
    assert got == written
    assert gaps == []


def test_a_burst_bigger_than_any_tail_is_given_whole() -> None:
    written = [Line(T0 + i, f"burst {i}") for i in range(300)]
    got, _ = walk(written, [0, 5, 305 - 5])
    assert got == written


def test_a_slow_trickle_read_many_times_between_lines_is_given_once() -> None:
    written = [Line(T0 + i * 1_000_000_000, f"line {i}") for i in range(5)]
    reads = [n for n in range(6) for _ in range(4)]
    got, _ = walk(written, reads)
    assert got == written


def test_lines_past_the_window_are_reported_as_a_gap_with_the_times_on_both_sides() -> None:
    written = [Line(T0 + i, f"line {i}") for i in range(100)]
    got, gaps = walk(written, [10, 90], window=20)
    assert got == written[:10] + written[70:]
    assert gaps == [Gap(T0 + 9, T0 + 70)]


def test_a_first_read_with_a_tail_starts_at_the_last_lines_and_goes_on_from_there() -> None:
    lines = [Line(T0 + i, str(i)) for i in range(10)]
    first = after(lines, None, tail=3)
    assert [line.text for line in first.lines] == ["7", "8", "9"]
    assert after([*lines, Line(T0 + 10, "10")], first.position).lines == [Line(T0 + 10, "10")]
    nothing = after(lines, None, tail=0)
    assert (nothing.lines, nothing.position) == ([], Position(T0 + 9, 1))


def test_nothing_written_yet_leaves_the_follower_where_it_was() -> None:
    assert after([], None) == after([], None, tail=5)
    assert after([], Position(T0, 2)).position == Position(T0, 2)


@given(
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["a", "a", "b", ""])), max_size=60),
    st.lists(st.integers(0, 60), max_size=8),
)
def test_with_the_whole_log_in_the_window_every_line_is_given_once_in_order(
    steps: list[tuple[int, str]], reads: list[int]
) -> None:
    at, written = T0, []
    for step, text in steps:
        at += step  # ties (step 0) as often as not
        written.append(Line(at, text))
    got, gaps = walk(written, sorted(min(n, len(written)) for n in reads))
    assert got == written
    assert gaps == []


@given(st.integers(1, 80), st.lists(st.integers(0, 80), max_size=8), st.integers(1, 30))
def test_with_a_window_each_line_is_given_at_most_once_and_each_one_missed_lies_in_a_gap(
    count: int, reads: list[int], window: int
) -> None:
    written = [Line(T0 + 1 + i * 7, f"line {i}") for i in range(count)]
    reads = sorted(min(n, count) for n in reads)
    got, gaps = walk(written, reads, window=window)
    assert got == sorted(set(got), key=written.index)  # in order, none twice
    first_seen = next(n for n in [*reads, count] if n > 0)  # the first read that shows any line
    before_the_first_read = written[: max(first_seen - window, 0)]  # gone before it began: not its loss
    for line in set(written) - set(got) - set(before_the_first_read):
        assert any(gap.after < line.at < gap.before for gap in gaps), line
    assert got[-1] == written[-1]


def test_a_cursor_goes_round_the_api_and_anything_else_is_refused() -> None:
    cursor = Cursor(2, {"main": Position(T0, 3), "side car": Position(0, 1)})
    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode(Cursor(1).encode()) == Cursor(1)
    for bad in (
        "",
        "not base64!",
        "e30",
        "eyJhIjowLCJwIjp7fX0",
        "x" * 9000,
        "WzFd",
        "eyJhIjoxLCJwIjp7Im0iOlstMSwxXX19",
    ):
        with pytest.raises(ValueError, match="not a cursor this API gave"):
            Cursor.decode(bad)
