"""Progress bars: on for a terminal (or FL_SIM_PROGRESS=1), quiet otherwise; the items pass through unchanged."""

import io

import pytest

from fl_sim import progress as pg


@pytest.mark.parametrize(("value", "expected"), [("0", True), ("off", True), ("1", False), ("yes", False), ("", None)])
def test_the_environment_switch(monkeypatch, value, expected):
    monkeypatch.setenv(pg.ENV, value)
    assert pg.disabled() is expected


def test_bars_write_only_when_on(monkeypatch):
    monkeypatch.setattr(pg.sys, "stderr", buffer := io.StringIO())
    monkeypatch.setenv(pg.ENV, "0")
    assert list(pg.progress(range(5), "quiet")) == [0, 1, 2, 3, 4]
    assert buffer.getvalue() == ""
    monkeypatch.setenv(pg.ENV, "1")
    assert list(pg.progress(range(5), "shown", total=5)) == [0, 1, 2, 3, 4]
    bar = pg.counter(2, "cells")
    bar.update(2)
    bar.close()
    assert "shown" in buffer.getvalue() and "cells" in buffer.getvalue()
