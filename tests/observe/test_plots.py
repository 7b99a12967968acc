"""Plots: a PNG of the RPC table and an SVG of a sweep are written and are not blank (when
matplotlib is installed); a bad --plot path is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lavsim.cli import main
from lavsim.experiments.mechanisms import mechanism
from lavsim.experiments.rpc import rpc_table
from lavsim.experiments.sweeps import run_sweep
from lavsim.observe.plots import plot_rpc, plot_sweep


def test_rpc_plot_is_a_png_that_is_not_blank(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional extra lavsim[plot]")
    image = pytest.importorskip("matplotlib.image")
    table = rpc_table(["pentium"], [0, 64], calls=2, remote=False,
                      mechanisms=[mechanism("migration-group"), mechanism("message-groups")])
    path = plot_rpc(table, tmp_path / "rpc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(str(path))
    assert pixels.std() > 0.01  # lines and bars, not one colour


def test_sweep_plot_is_an_svg_with_lines(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is the optional extra lavsim[plot]")
    result = run_sweep("size", values=[0, 64], mechanisms=[mechanism("migration-group")],
                       base=None)
    path = plot_sweep(result, tmp_path / "sweep.svg")
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<path" in text


def test_a_plot_path_with_an_unknown_suffix_is_refused_naming_plot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rpc", "--plot", "figure.bmp", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("lavsim rpc: error: argument --plot:"), err
