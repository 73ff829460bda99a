"""Co-simulation campaigns on a Dask LocalCluster of 2 worker processes: the
same summary as the serial campaign for the same seed, reproducers of
divergences with their replay command, one Verilator build per worker and
geometry. Builds are the ones test_cosim.py uses (cached on disk)."""

import re

import pytest

pytest.importorskip("distributed", reason="needs the cluster extra")

from neuromesh.cli import main  # noqa: E402
from neuromesh.cluster import connect  # noqa: E402
from neuromesh.cluster.campaign import run_campaign as run_distributed  # noqa: E402
from neuromesh.cluster.campaign import worker_build_counts, worker_builds  # noqa: E402
from neuromesh.rtl.neuron import NeuronDatapath  # noqa: E402
from neuromesh.sim.campaign import GEOMETRIES  # noqa: E402
from neuromesh.sim.campaign import run_campaign as run_serial  # noqa: E402

TWO = {name: GEOMETRIES[name] for name in ("1x1", "1x2")}


def wrong_rounding_chip(geometry):
    """test_cosim.py's mutant (decays rounded toward minus infinity), as a
    chip factory a worker can import. It changes the class in the worker
    process, so only the test's own cluster, closed after it, runs it."""
    from neuromesh.rtl.chip import Chip
    NeuronDatapath.round_toward_zero = False
    return Chip(geometry)


def content(summary: str) -> str:
    """A campaign summary without its wall time."""
    return re.sub(r", \d+ s$", "", summary, count=1, flags=re.M)


@pytest.fixture(scope="module")
def cluster():
    with connect(2) as (client, _):
        yield client


def test_distributed_campaign_summary_equals_the_serial_one(cluster, tmp_path):
    # 3 cases per geometry in tasks of 1: the merge adds up chunks, and some
    # worker runs at least two tasks of one geometry (3 tasks, 2 workers).
    serial = run_serial(6, 20, 4242, tmp_path / "serial", corners=False, geometries=TWO)
    spread = run_distributed(6, 20, 4242, client=cluster, corners=False, geometries=TWO,
                             cases_per_task=1, repro_dir=tmp_path / "repro")
    assert content(spread.summary()) == content(serial.summary())
    for name in TWO:
        a, b = spread.results[name], serial.results[name]
        assert (a.cases, a.steps, a.cycles, a.divergences) == (b.cases, b.steps, b.cycles,
                                                                b.divergences)
    assert spread.cases == 6 and spread.steps == 6 * 20 and not spread.divergences
    # Each worker that ran a geometry built (or found) its model once and kept it
    # for its later tasks of that geometry.
    for builds in cluster.run(worker_builds).values():
        assert set(builds) <= {str(g) for g in TWO.values()}
    counts = list(cluster.run(worker_build_counts).values())
    for g in TWO.values():
        per_worker = [c[str(g)] for c in counts if str(g) in c]
        assert all(built == 1 for built, _ in per_worker), per_worker
        assert sum(used for _, used in per_worker) == 3
        assert max(used for _, used in per_worker) >= 2


def test_divergences_are_saved_with_their_replay_command(tmp_path, monkeypatch):
    """The mutant RTL on 1x1: the corner and random cases that diverge are
    reported case by case as in the serial campaign, and each reproducer is
    written with the command that replays it."""
    one = {"1x1": GEOMETRIES["1x1"]}
    repro = tmp_path / "repro"
    with monkeypatch.context() as m:
        m.setattr(NeuronDatapath, "round_toward_zero", False)
        serial = run_serial(2, 20, 77, tmp_path / "serial", geometries=one, repro_dir=repro)
    files = {p.name: p.read_bytes() for p in repro.iterdir()}
    for p in repro.iterdir():
        p.unlink()
    with connect(2) as (client, _):
        spread = run_distributed(2, 20, 77, client=client, geometries=one,
                                 chip_factory=wrong_rounding_chip, cases_per_task=6,
                                 repro_dir=repro)
        builds = client.run(worker_builds)
    assert NeuronDatapath.round_toward_zero          # this process was never changed
    assert spread.divergences and content(spread.summary()) == content(serial.summary())
    assert spread.results["1x1"].divergences == serial.results["1x1"].divergences
    assert {p.name: p.read_bytes() for p in repro.iterdir()} == files
    assert "1x1-negative-decays" in [name for name, _ in spread.reproducers]
    for name, command in spread.reproducers:
        assert command == (f"neuromesh cosim {repro / name}.nmi --input "
                           f"{repro / name}.inputs.npz --sim verilator")
    # Both workers that ran the mutant share one build folder (the disk cache).
    folders = {folder for b in builds.values() for folder in b.values()}
    assert len(folders) == 1


def test_campaign_command_on_a_scheduler(cluster, tmp_path, capsys):
    assert main(["cosim-campaign", "--cases", "2", "--steps", "10", "--no-corners",
                 "--seed", "9", "--scheduler", cluster.scheduler.address,
                 "-o", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "seed 9"
    assert out[1] == f"scheduler {cluster.scheduler.address}: 2 workers (2 threads)"
    assert re.fullmatch(r"co-simulation campaign, seed 9: 2 cases, 20 steps, 0 divergences, "
                        r"\d+ s", out[2])
    assert out[3].startswith("  1x1: 1 case(s), 10 steps,") and out[3].endswith("identical")
    assert out[4].startswith("  1x2: 1 case(s), 10 steps,") and out[4].endswith("identical")


def test_campaign_options_are_checked_before_any_cluster_starts(capsys):
    assert main(["cosim-campaign", "--cases", "4", "--workers", "2",
                 "--cases-per-task", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need cases >= 0, steps >= 1 and at least 1 case" in err
