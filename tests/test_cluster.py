"""Evaluations and sweeps on a Dask LocalCluster of 2 worker processes:
identical bit for bit to one process, a killed worker loses nothing, a
failing task names its samples, Ctrl-C cancels and closes the cluster."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="needs the cluster extra")

from neuromesh import ChipImage, load, save  # noqa: E402
from neuromesh.cli import main  # noqa: E402
from neuromesh.cluster import TaskFailed, connect, evaluate, run_tasks  # noqa: E402
from neuromesh.cluster.datasets import chip_spikes, digits_test_set  # noqa: E402
from neuromesh.cluster.evaluate import run_arrays, worker_cache_info  # noqa: E402
from neuromesh.cluster.tasks import Task  # noqa: E402
from neuromesh.demo import DEFAULT_GEOMETRY, compile_demo  # noqa: E402
from neuromesh.emulator import Emulator  # noqa: E402

PROBE = np.array([0, 5, 63, 64, 70, 130, 255])
RECORD = ("spikes", "u", "v", "refractory")


@pytest.fixture(scope="module")
def cluster():
    with connect(2) as (client, info):
        assert info.local and info.workers == 2
        yield client


@pytest.fixture(scope="module")
def digits():
    """The demo's compiled model and the test split as its chip input."""
    compiled = compile_demo()
    lag = max(compiled.network.latency.values())
    data = digits_test_set()
    return compiled.image, chip_spikes(data.spikes, compiled.image.n_inputs, 0, lag), data.labels


def assert_same_arrays(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].shape == want[k].shape, k
        assert np.array_equal(got[k], want[k]), k


def test_eval_equals_one_emulator_run_and_decodes_the_image_once_per_worker(cluster, digits):
    image, x, _ = digits
    x = np.concatenate([x] * 4, axis=1)               # 1800 samples: 7 chunks of 256 + 8
    want = Emulator(image, batch=x.shape[1]).run(x, probe=PROBE, record=RECORD)
    ev = evaluate(image, x, client=cluster, chunk=256, probe=PROBE, record=RECORD)
    assert ev.stats.tasks == 8 and ev.stats.weight == 1800 and ev.stats.workers == 2
    assert_same_arrays(ev.arrays(), run_arrays(want, PROBE))
    # The image reached each worker once: a worker decodes it once per chunk
    # size it ran (256 and 8), however many chunks it ran.
    for info in cluster.run(worker_cache_info).values():
        sizes = [b for _, b in info["keys"]]
        assert info["built"] == len(sizes) and set(sizes) <= {256, 8}


def test_eval_in_one_process_gives_the_same_arrays(digits):
    image, x, _ = digits
    want = Emulator(image, batch=x.shape[1]).run(x, probe=PROBE[:3])
    ev = evaluate(image, x, chunk=100, probe=PROBE[:3])
    assert ev.stats.tasks == 5
    assert_same_arrays(ev.arrays(), run_arrays(want, PROBE[:3]))


def test_eval_command_writes_what_run_writes(cluster, digits, tmp_path, capsys):
    image, x, labels = digits
    save(image, tmp_path / "digits.nmi")
    np.savez_compressed(tmp_path / "data.npz", spikes=x, labels=labels)
    args = [str(tmp_path / "digits.nmi"), "--input", str(tmp_path / "data.npz"),
            "--probe", "0-3,70", "--quiet"]
    assert main(["run", *args, "-o", str(tmp_path / "run.npz")]) == 0
    capsys.readouterr()
    assert main(["eval", *args, "-o", str(tmp_path / "eval.npz"), "--chunk", "100",
                 "--labels", str(tmp_path / "data.npz"),
                 "--scheduler", cluster.scheduler.address]) == 0
    out = capsys.readouterr().out
    with np.load(tmp_path / "run.npz") as a, np.load(tmp_path / "eval.npz") as b:
        assert_same_arrays({k: b[k] for k in b.files}, {k: a[k] for k in a.files})
    assert f"scheduler {cluster.scheduler.address}: 2 workers" in out
    assert "evaluated 450 samples x 17 steps: 5 chunks of up to 100" in out
    # The demo's figure (README): 439 of 450 test images, outputs from step 1.
    assert "accuracy 97.56% (439/450), output spikes counted over steps 1..16" in out
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_killed_worker_loses_nothing(digits):
    """SIGKILL one of two worker processes while chunks are queued on it:
    Dask runs its chunks again elsewhere and the merge is still identical."""
    image, x, _ = digits
    x = np.concatenate([x] * 8, axis=1)               # 3600 samples, 57 chunks
    want = Emulator(image, batch=x.shape[1]).run(x)
    killed = {}
    with connect(2) as (client, _):
        def kill_one(i, start, stop):
            if killed:
                return
            busy = {w: len(keys) for w, keys in client.processing().items() if keys}
            victim = max(busy, key=busy.get)
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, worker=victim, queued=busy[victim], done=i)
            # Let the scheduler see the death first: a gather from a worker
            # that died a moment ago waits out Dask's connect timeout (30 s)
            # before the lost results are recomputed (docs/cluster.md).
            killed["noticed"] = gone(client, victim)

        ev = evaluate(image, x, client=client, chunk=64, on_chunk=kill_one)
        assert killed["queued"] >= 1 and killed["done"] < 56 and killed["noticed"]
    assert_same_arrays(ev.arrays(), run_arrays(want))


def gone(client, worker) -> bool:
    deadline = time.monotonic() + 30
    while worker in client.nthreads():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_failing_task_names_its_samples_in_one_line(cluster, digits):
    image, x, _ = digits
    # A corrupted image (a reserved bit of a NEURON word set) that skipped the
    # load-time check: every worker's decode fails; the error names the chunk's
    # sample ids.
    words = image.words.copy()
    words[1] |= np.uint64(1) << np.uint64(63)
    bad = ChipImage(image.geometry, image.addresses, words, image.inputs, image.n_inputs,
                    image.n_outputs, image.meta)
    with pytest.raises(TaskFailed) as err:
        evaluate(bad, x, client=cluster, chunk=200)
    message = str(err.value)
    assert re.match(r"samples (0\.\.199|200\.\.399|400\.\.449): ImageError: \S", message)
    assert "\n" not in message and "reserved bits" in message

    tasks = [Task("samples 0..4", 5, int, ("7",)), Task("samples 5..9", 5, int, ("x",))]
    with pytest.raises(TaskFailed, match=r"^samples 5\.\.9: ValueError: invalid literal"):
        run_tasks(tasks, cluster)
    assert run_tasks(tasks[:1], cluster) == [7]


def test_bad_inputs_are_refused_before_any_task(cluster, digits, tmp_path, capsys):
    image, x, _ = digits
    spikes = x.astype(np.int8)
    spikes[3, 321, 7] = 2
    save(image, tmp_path / "d.nmi")
    np.savez(tmp_path / "bad.npz", spikes=spikes)
    assert main(["eval", str(tmp_path / "d.nmi"), "--input", str(tmp_path / "bad.npz"),
                 "--scheduler", cluster.scheduler.address, "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert err == (f"neuromesh eval: error: {tmp_path / 'bad.npz'}: spikes[3, 321, 7] = 2 "
                   f"(sample 321): a spike input must be 0 or 1\n")
    assert not (tmp_path / "o.npz").exists()


def test_without_dask_one_line_says_how_to_install(monkeypatch, capsys, digits, tmp_path):
    image, x, _ = digits
    save(image, tmp_path / "d.nmi")
    np.savez(tmp_path / "x.npz", spikes=x[:, :4])
    monkeypatch.setitem(sys.modules, "distributed", None)      # import fails
    assert main(["eval", str(tmp_path / "d.nmi"), "--input", str(tmp_path / "x.npz"),
                 "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Dask distributed is not installed: pip install 'neuromesh[cluster]'" in err


def test_ctrl_c_cancels_and_closes_the_cluster(digits, tmp_path):
    """SIGINT to the command's whole process group, as a terminal's Ctrl-C:
    exit status 130, one line, no worker process left, no output file."""
    psutil = pytest.importorskip("psutil")
    image, x, _ = digits
    save(image, tmp_path / "d.nmi")
    np.savez(tmp_path / "big.npz", spikes=np.concatenate([x] * 100, axis=1))   # 45000 samples
    cmd = [sys.executable, "-m", "neuromesh.cli", "eval", str(tmp_path / "d.nmi"), "--input",
           str(tmp_path / "big.npz"), "--workers", "2", "--chunk", "128",
           "-o", str(tmp_path / "out.npz")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("local cluster: 2 workers")
        time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err == "neuromesh eval: interrupted: pending tasks cancelled, cluster closed\n"
    assert "evaluated" not in out
    deadline = time.monotonic() + 10
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
        assert time.monotonic() < deadline, "a worker process outlived the command"
        time.sleep(0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npz", "d.nmi"]


def test_sweep_on_the_cluster_equals_one_process(cluster):
    from neuromesh.cluster.sweep import grid, sweep
    from neuromesh.compiler.nir_import import FRAMEWORKS
    from neuromesh.digits import model_path
    points = grid(FRAMEWORKS["snntorch"], geometries=[DEFAULT_GEOMETRY, "1x1,n_neurons=128"],
                  reset=["subtract", "zero"], reset_delay=[False, True])
    data = digits_test_set()
    far = sweep(model_path(), points, data, client=cluster, chunk=200)
    near = sweep(model_path(), points, data)
    # 4 options compile on the default geometry (3 chunks each); the 1x1 ones are refused.
    assert far.eval_stats.tasks == 4 * 3 and far.eval_stats.workers == 2
    for a, b in zip(far.points, near.points):
        assert a.point == b.point and a.error == b.error
        if a.error is None:
            assert np.array_equal(a.predictions, b.predictions) and a.correct == b.correct
    by = {(p.point.geometry, p.point.options.reset, p.point.options.reset_delay): p
          for p in far.points}
    # The demo's number (README), and the compiler's own refusals.
    assert by[(DEFAULT_GEOMETRY, "subtract", False)].correct == 439
    assert by[(DEFAULT_GEOMETRY, "zero", True)].correct == 431
    assert all(by[("1x1,n_neurons=128", r, d)].error.startswith("DesignRuleError:")
               for r in ("subtract", "zero") for d in (False, True))
    assert sum(p.error is None for p in far.points) == 4


def test_sweep_command_prints_a_table_and_writes_the_plot(cluster, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert main(["sweep", "--limit", "90", "--reset", "subtract", "zero", "--method", "euler",
                 "exact", "--scheduler", cluster.scheduler.address, "-o", str(png),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data       scikit-learn digits test split, 90 images: 90 samples, 16 steps" in out
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+2x2,", line)]
    assert len(rows) == 4 and all(re.search(r"\d+\.\d\d%\s+\d+/90", r) for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_datasets_module_writes_eval_input(digits, tmp_path, capsys):
    from neuromesh.cluster.datasets import main as datasets_main
    image, x, labels = digits
    save(image, tmp_path / "d.nmi")
    assert datasets_main([str(tmp_path / "d.nmi"), "-o", str(tmp_path / "t.npz"),
                          "--repeat", "2"]) == 0
    with np.load(tmp_path / "t.npz") as f:
        assert np.array_equal(f["spikes"], np.concatenate([x, x], axis=1))
        assert np.array_equal(f["labels"], np.concatenate([labels, labels]))
    assert load(tmp_path / "d.nmi").n_inputs == image.n_inputs


def _start_sleeper():
    return subprocess.Popen(["sleep", "600"]).pid


def test_a_closing_worker_ends_the_processes_its_tasks_started():
    """A co-simulation task's Verilator child must not outlive its worker
    (Ctrl-C closes the cluster mid-task): the worker's teardown ends it."""
    psutil = pytest.importorskip("psutil")
    with connect(1) as (client, _):
        (pid,) = client.run(_start_sleeper).values()
        assert psutil.pid_exists(pid)
    child = psutil.Process(pid) if psutil.pid_exists(pid) else None
    assert child is None or child.status() == psutil.STATUS_ZOMBIE


def test_sweep_takes_a_model_file_and_a_labelled_data_set(cluster, tmp_path, capsys):
    from neuromesh.cluster.sweep import grid, sweep
    from neuromesh.compiler.nir_import import FRAMEWORKS
    from neuromesh.digits import model_path
    data = digits_test_set(limit=60)
    np.savez(tmp_path / "set.npz", spikes=data.spikes, labels=data.labels)
    want = sweep(model_path(), grid(FRAMEWORKS["snntorch"], geometries=["2x2"]), data)
    assert main(["sweep", str(model_path()), "--framework", "snntorch", "--input",
                 str(tmp_path / "set.npz"), "--scheduler", cluster.scheduler.address,
                 "-o", str(tmp_path / "s.png"), "--quiet"]) == 0
    out = capsys.readouterr().out
    correct = want.points[0].correct
    assert re.search(rf" {100 * correct / 60:.2f}%\s+{correct}/60 ", out)
    assert "data       set.npz: 60 samples, 16 steps" in out
    # A model of its own states its discretisation: no silent preset.
    assert main(["sweep", str(model_path()), "--input", str(tmp_path / "set.npz")]) == 2
    assert "give --framework" in capsys.readouterr().err
