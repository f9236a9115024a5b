"""Job logs: progress as whole lines in a log file, and a last line naming the outputs."""

from __future__ import annotations

import io
import logging

from xmhash import log


class _File(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_in_a_log_file_is_whole_lines(monkeypatch):
    err = _File()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("XMHASH_PROGRESS", "1")
    monkeypatch.setattr(log, "LOG_INTERVAL", 0.0)  # a line after every element
    assert list(log.progress(range(3), desc="train", unit="epoch")) == [0, 1, 2]
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    assert all(" INFO xmhash.progress: train: " in line for line in lines)
    assert "3/3 epoch (100%)" in lines[-1]
    assert len(lines) == 4  # one per element, then the final one


def test_progress_lines_are_rare_by_default(monkeypatch):
    err = _File()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("XMHASH_PROGRESS", "1")
    list(log.progress(range(1000), desc="kNN", total=1000, unit="block"))
    assert err.getvalue().count("\n") == 1  # only the final line


def test_wrote_names_every_output(caplog):
    with caplog.at_level(logging.INFO):
        log.wrote(["results/a.json", "results/b.png"])
    assert caplog.records[-1].getMessage() == "wrote results/a.json, results/b.png"
