"""`fedmr-ray report`: the summary table's numbers and the figure, from run directories."""

import json
import sys

import pytest
from PIL import Image

from fedmr_ray.cli.main import main
from fedmr_ray.results import RunDirectory


def make_run(path, algorithm, accuracies):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"algorithm": {"name": algorithm}}))
    RunDirectory(path).write_metrics([
        {"round": 10 * (i + 1), "algorithm": algorithm, "test_accuracy": a, "test_loss": 2.0 - a, "train_loss": 1.0}
        for i, a in enumerate(accuracies)])
    return path


def run_report(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "report", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


def test_report_summarises_and_draws_the_runs(tmp_path, monkeypatch, capsys):
    fedmr = make_run(tmp_path / "a", "fedmr", [0.2, 0.4, 0.5, 0.6, 0.7, 0.8])
    fedavg = make_run(tmp_path / "b", "fedavg", [0.5, 0.6, 0.55, 0.65, 0.6, 0.62])
    code, out = run_report(monkeypatch, capsys, fedmr, fedavg, "--output", tmp_path / "fig.png",
                           "--table", tmp_path / "table.md", "--target", "0.6")
    assert code == 0, out.err
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in out.out.splitlines() if line.startswith("| a ") or line.startswith("| b ")}
    # algorithm, rounds, final, best (round), mean of the last 5, rounds to 0.6
    assert rows["a"] == ["fedmr", "60", "0.8000", "0.8000 (60)", "0.6000", "40"]
    assert rows["b"] == ["fedavg", "60", "0.6200", "0.6500 (40)", "0.6040", "20"]
    assert (tmp_path / "table.md").read_text().count("\n") == 4
    with Image.open(tmp_path / "fig.png") as image:
        assert image.size[0] > 800 and image.size[1] > 300


def test_report_refuses_what_is_not_a_run(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "a", "fedmr", [0.5])
    code, out = run_report(monkeypatch, capsys, run, tmp_path / "missing")
    assert code == 2 and "missing: no metrics.parquet" in out.err and len(out.err.splitlines()) == 1
    code, out = run_report(monkeypatch, capsys, run, "--target", "1.5")
    assert code == 2 and "--target 1.5" in out.err
    assert not (tmp_path / "report.png").exists()


def test_the_default_title_says_a_common_prefix_once():
    from fedmr_ray.report import RunSummary, default_title

    def runs(*names):
        return [RunSummary(name, name, []) for name in names]

    assert default_title(runs("fmnist-a0.1-fedmr", "fmnist-a0.1-fedavg", "fmnist-a0.1-moon")) == \
        "fmnist-a0.1: fedmr vs fedavg vs moon"
    assert default_title(runs("fedmr", "fedavg")) == "fedmr vs fedavg"
    assert default_title(runs("run-a", "other-b")) == "run-a vs other-b"
    assert default_title(runs("fmnist-a0.1-fedmr")) == "fmnist-a0.1-fedmr"


def test_reading_metrics_leaves_a_process_that_exits_cleanly(tmp_path):
    # pyarrow 26 aborted about one process in eight at exit (exit 134, "terminate called without an
    # active exception") after a threaded read of a buffer: a job that had done its work then failed.
    # 20 processes, one after another, catch that with a probability above 0.9 (side by side, they
    # did not: the abort needs the exit to follow the read closely).
    import subprocess

    run = make_run(tmp_path / "a", "fedmr", [0.1 * i for i in range(1, 40)])
    script = f"from fedmr_ray.results import read_metrics\nassert len(read_metrics({str(run)!r})) == 39\n"
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
            for _ in range(20)]
    assert [(run.returncode, run.stderr[-300:]) for run in runs] == [(0, "")] * 20


def test_rounds_without_an_evaluation_are_left_out_of_the_table_and_curves(tmp_path, monkeypatch, capsys):
    # metrics.parquet as a run that evaluates every 10th round writes it: a row per round, the test
    # columns null (or NaN) on the others
    import math

    from fedmr_ray.report import load_runs, runs_figure

    run = tmp_path / "a"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"algorithm": {"name": "fedmr"}}))
    rows = [{"round": r, "algorithm": "fedmr", "train_loss": 1.0 / r,
             "test_accuracy": r / 40 if r % 10 == 0 else (math.nan if r == 25 else None),
             "test_loss": 2.0 - r / 40 if r % 10 == 0 else None} for r in range(1, 31)]
    RunDirectory(run).write_metrics(rows)
    code, out = run_report(monkeypatch, capsys, run, "--output", tmp_path / "fig.png", "--target", "0.5")
    assert code == 0, out.err
    row = next(line for line in out.out.splitlines() if line.startswith("| a "))
    # rounds, final, best (round), the mean of the last 5 evaluations (only 3), rounds to 0.5
    assert [cell.strip() for cell in row.split("|")[3:-1]] == ["30", "0.7500", "0.7500 (30)", "0.5000", "20"]
    figure = runs_figure(load_runs([run]), "a")
    for axis in figure.axes:
        assert [list(line.get_xdata()) for line in axis.get_lines()] == [[10, 20, 30]]


def test_the_figure_has_whole_rounds_and_its_legend_beside_the_curves(tmp_path):
    from fedmr_ray.report import load_runs, runs_figure

    runs = load_runs([make_run(tmp_path / name, name, [0.5, 0.6]) for name in ("fedmr", "fedavg", "moon")])
    figure = runs_figure(runs, "t")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = next(axis.get_legend() for axis in figure.axes if axis.get_legend() is not None)
    for axis in figure.axes:
        ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick <= axis.get_xlim()[1]]
        assert ticks and all(tick == int(tick) for tick in ticks), ticks
        assert not axis.get_window_extent(renderer).overlaps(legend.get_window_extent(renderer))


@pytest.mark.parametrize(("name", "magic"), [("cmp.pdf", b"%PDF"), ("cmp.svg", b"<?xml"), ("cmp.png", b"\x89PNG")])
def test_the_figure_is_written_in_the_format_its_suffix_names(tmp_path, monkeypatch, capsys, name, magic):
    run = make_run(tmp_path / "a", "fedmr", [0.5, 0.6])
    code, out = run_report(monkeypatch, capsys, run, "--output", tmp_path / name)
    assert code == 0, out.err
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_outputs_that_cannot_be_written_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "a", "fedmr", [0.5, 0.6])
    afile = tmp_path / "afile"
    afile.write_text("a file")
    (tmp_path / "cmp.png").write_bytes(b"an earlier figure")
    for args, message in [
        (["--output", afile / "x.png"], f"--output {afile / 'x.png'}: cannot write it ({afile} is not a directory)"),
        (["--output", tmp_path / "cmp.png", "--table", afile / "t.md"],
         f"--table {afile / 't.md'}: cannot write it ({afile} is not a directory)"),
        (["--output", tmp_path / "cmp.jpgx"], "a figure's suffix names its format; accepted: .png, .pdf, .svg"),
        (["--output", tmp_path / "a.png", "--table", tmp_path / "a"], f"--table {tmp_path / 'a'}: cannot write it"),
    ]:
        code, out = run_report(monkeypatch, capsys, run, *args)
        assert code == 2 and out.err.count("\n") == 1 and message in out.err, out.err
    assert (tmp_path / "cmp.png").read_bytes() == b"an earlier figure"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "afile", "cmp.png"]
