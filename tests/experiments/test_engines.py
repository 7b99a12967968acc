"""Engines (issue 18): the same grid measured serially, by a local process pool and on a Dask
cluster gives the same results, bit for bit, in grid order; a worker of another lavsim is
refused; a failing point is recorded and the others go on."""

from __future__ import annotations

import threading
from pathlib import Path

import attrs
import pytest

from lavsim.cli import main
from lavsim.experiments import engines
from lavsim.experiments.engines import (
    DaskEngine,
    PoolEngine,
    SerialEngine,
    Task,
    run_experiment,
    run_point,
)
from lavsim.experiments.experiment import Experiment, load_experiment
from lavsim.experiments.progress import ProgressLines
from lavsim.experiments.store import Store, code_version, point_key
from lavsim.experiments.workload import Workload

MODEL = Path(__file__).resolve().parents[2] / "examples" / "i486-slowgate.toml"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """8 points, one CPU model from a file (it must travel to the workers)."""
    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text(f"""\
[experiment]
name = "grid"
[workload]
calls = 3
[axes]
profile = ["i486", "{MODEL}"]
size = [0, 256]
mechanism = ["migration-group", "message-groups"]
""")
    return load_experiment(path)


@pytest.fixture(scope="module")
def serial(grid: Experiment) -> str:
    result = run_experiment(grid, SerialEngine())
    assert result.computed == 8 and not result.failures
    return result.to_json()


def test_a_process_pool_gives_the_serial_results_bit_for_bit(grid: Experiment,
                                                            serial: str) -> None:
    result = run_experiment(grid, PoolEngine(2))
    assert result.to_json() == serial
    assert [p.point.index for p in result.points] == list(range(8))


def test_a_pool_started_beside_other_threads_uses_fresh_workers_and_gives_the_same(
    grid: Experiment, serial: str
) -> None:
    # Forking beside a running thread could copy a held lock: the pool starts its workers from
    # a fresh server process instead, which must rebuild the model from the file by pickle.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert engines._context().get_start_method() != "fork"
        result = run_experiment(grid, PoolEngine(2))
    finally:
        stop.set()
        thread.join()
    assert result.to_json() == serial


def test_a_dask_cluster_gives_the_serial_results_bit_for_bit(grid: Experiment,
                                                            serial: str) -> None:
    distributed = pytest.importorskip("distributed")
    # Threads in this process, but talking over TCP on the loopback, so every task and result
    # is serialised as it would be to another machine.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        engine = DaskEngine(client=client)
        assert set(engine.worker_versions().values()) == {code_version()}
        result = run_experiment(grid, engine)
    assert result.to_json() == serial


def test_a_dask_worker_of_another_version_has_its_results_refused(
    grid: Experiment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    real = engines.run_point

    def other_lavsim(task: Task) -> engines.Outcome:
        # What a worker with another checkout reports (its code_version differs).
        return attrs.evolve(real(task), version="lavsim 9.9.9+0123456789ab")

    monkeypatch.setattr(engines, "run_point", other_lavsim)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client, Store(tmp_path / "s.db") as store:
        result = run_experiment(grid, DaskEngine(client=client), store=store)
        assert len(store) == 0
    assert len(result.failures) == 8 and result.computed == 0
    assert all("runs lavsim 9.9.9+0123456789ab, not " + code_version() in (p.error or "")
               for p in result.failures)


def test_an_outcome_from_a_worker_of_another_version_is_refused_and_not_stored(
    grid: Experiment, tmp_path: Path
) -> None:
    with Store(tmp_path / "s.db") as store:
        result = run_experiment(grid, SerialEngine(), store=store,
                                expected_version="lavsim 0.0.0+000000000000")
        assert len(store) == 0
    assert len(result.failures) == 8
    assert result.failures[0].error is not None
    assert "runs " + code_version() + ", not lavsim 0.0.0" in result.failures[0].error


def test_a_failing_point_is_recorded_with_its_reason_and_the_sweep_goes_on(
    grid: Experiment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = engines.measure_call

    def flaky(mech: str, work: Workload) -> object:
        if mech == "message-groups" and work.size == 256:
            raise RuntimeError("the guest never reached its label")
        return real(mech, work)

    monkeypatch.setattr(engines, "measure_call", flaky)
    result = run_experiment(grid, SerialEngine(), progress=ProgressLines())
    assert len(result.failures) == 2 and result.computed == 6
    assert all("RuntimeError: the guest never reached its label" in (p.error or "")
               for p in result.failures)
    err = capsys.readouterr().err
    assert "FAILED: RuntimeError: the guest never reached its label" in err
    assert "failed" in result.to_text()
    assert "error" in result.to_csv().splitlines()[0]


def test_the_command_prints_the_table_with_its_failures_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(mech: str, work: Workload) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(engines, "measure_call", broken)
    argv = ["sweep", "size", "--values", "0", "--mechanisms", "migration-group", "--jobs", "1",
            "--no-progress", "--format", "csv"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[1].startswith("size,i486,0,migration-group,RuntimeError: boom")
    assert err.startswith("point failed: profile=i486 size=0 mechanism=migration-group: "
                          "RuntimeError: boom")


def test_run_point_never_raises() -> None:
    work = Workload(calls=2)
    task = Task(0, point_key("nope", work), "nope", work)
    outcome = run_point(task)
    assert outcome.result is None and outcome.error is not None
    assert outcome.error.startswith("ConfigError: mechanism")


@pytest.mark.parametrize(("argv", "message"), [
    (["--jobs", "0"], "argument --jobs: must be an integer of at least 1, got 0"),
    (["--scheduler", "tcp://127.0.0.1:1"], "argument --scheduler: only with --engine dask"),
    (["--engine", "dask"],
     "argument --scheduler: the dask engine needs a scheduler address (tcp://HOST:8786)"),
    (["--engine", "dask", "--jobs", "2", "--scheduler", "x"],
     "argument --jobs: for the local engine; a Dask cluster has its workers"),
])  # fmt: skip
def test_bad_engine_options_are_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["sweep", "size", "--no-progress", *argv]) == 2
    assert capsys.readouterr().err == f"lavsim sweep: error: {message}\n"
