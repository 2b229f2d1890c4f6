"""The mark stored with a resume offset lets a restart skip only missions that had ended:
every mission still open at that offset starts at or after the mark."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from colony_consumers.fold_marks import FoldMarks


@st.composite
def partition_logs(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    """A partition's log, each offset (mission, "start"|"end"|"other"), and the flushes
    while it was read: (resume offset, offsets read so far), neither ever decreasing."""
    missions = draw(st.integers(1, 12))
    log: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 80))):
        mission = f"m-{draw(st.integers(0, missions - 1))}"
        if mission not in seen:
            kind = "start"
        elif seen[mission] == "end":
            kind = "other"  # a late event of an ended mission
        else:
            kind = draw(st.sampled_from(["other", "end"]))
        seen[mission] = "end" if kind == "end" or seen.get(mission) == "end" else "open"
        log.append((mission, kind))
    reads = sorted(draw(st.lists(st.integers(0, len(log)), min_size=1, max_size=6)))
    resumes = sorted(draw(st.integers(0, read)) for read in reads)
    return log, [(min(r, read), read) for r, read in zip(resumes, reads, strict=True)]


def truth(log: list[tuple[str, str]], resume_at: int) -> int:
    """The first offset of every mission open at `resume_at`, and `resume_at` itself."""
    starts = {m: o for o, (m, k) in enumerate(log) if k == "start"}
    ends = {m: o for o, (m, k) in enumerate(log) if k == "end"}
    open_then = [
        start
        for m, start in starts.items()
        if start < resume_at and ends.get(m, resume_at) >= resume_at
    ]
    return min([resume_at, *open_then])


@settings(max_examples=300)
@given(partition_logs())
def test_every_mission_open_at_the_resume_offset_starts_at_or_after_the_mark(
    drawn: tuple[list[tuple[str, str]], list[tuple[int, int]]],
) -> None:
    log, flushes = drawn
    marks, read = FoldMarks(), 0
    for resume_at, read_to in flushes:
        for offset in range(read, read_to):
            mission, kind = log[offset]
            if kind == "start":
                marks.opened(0, mission, offset)
            elif kind == "end":
                marks.ended(0, mission, offset)
        read = read_to
        assert marks.fold_from(0, resume_at) == truth(log, resume_at)


def test_a_mission_that_ended_after_the_resume_offset_still_holds_the_mark() -> None:
    """Its end is re-read after a restart, so its start must be folded too."""
    marks = FoldMarks()
    marks.opened(3, "m-a", 10)
    marks.opened(3, "m-b", 12)
    marks.ended(3, "m-a", 20)
    assert marks.fold_from(3, 15) == 10  # m-a ended at 20, after the resume offset
    assert marks.fold_from(3, 21) == 12  # now m-a's end is behind: only m-b holds it
    marks.ended(3, "m-b", 25)
    assert marks.fold_from(3, 30) == 30
    marks.forget({3})
    assert marks.fold_from(3, 40) == 40
