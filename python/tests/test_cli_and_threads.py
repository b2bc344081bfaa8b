"""The state file is the CLI's (both directions), the GIL is released while the library works, and the
state's lock is shared with every other writer."""

import fcntl
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import edgecl
from conftest import COLOURS, TINY, draw, write_ppm


def run_cli(cli, *args):
    out = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"edgecl {' '.join(map(str, args))}: {out.returncode}\n{out.stderr}"
    return out.stdout


def test_the_cli_reads_a_state_written_from_python(trained, state, cli, tmp_path):
    queries = {c: write_ppm(tmp_path / f"q-{c}.ppm", draw(c, 500)) for c in COLOURS}
    # No --model: the CLI finds the model the state records, as Python did.
    out = json.loads(
        run_cli(cli, "classify", "--state", state, "--runtime", "tract", "--json", "--top", 3, *queries.values())
    )
    by_path = {p["path"]: p for p in out["predictions"]}
    for colour, path in queries.items():
        cli_top = by_path[str(path)]["top"]
        py_top = trained.classify(path, top=3).top
        assert cli_top[0]["class"] == colour
        assert [r["class"] for r in cli_top] == [r.class_ for r in py_top]
        assert [r["score"] for r in cli_top] == pytest.approx([r.score for r in py_top], abs=1e-4)
    info = json.loads(run_cli(cli, "info", "--state", state, "--json"))["state"]
    assert {c["name"]: c["captures"] for c in info["classes"]} == {c: 5 for c in COLOURS}


def test_python_reads_a_state_written_by_the_cli(cli, tmp_path):
    state = tmp_path / "cli.edgecl"
    for colour in ["red", "blue"]:
        files = [write_ppm(tmp_path / f"{colour}{s}.ppm", draw(colour, s)) for s in range(4)]
        run_cli(cli, "learn", "--state", state, "--class", colour, "--model", TINY, "--runtime", "tract", "--quiet", *files)
    learner = edgecl.Learner(state, runtime="tract")  # the state's model, found by Python
    assert learner.classes == ["red", "blue"]
    assert {c.name: c.captures for c in learner.info().classes} == {"red": 4, "blue": 4}
    assert learner.classify(draw("blue", 600)).top[0].class_ == "blue"
    # Python edits, the CLI sees the edits.
    learner.learn("green", [draw("green", s) for s in range(3)])
    learner.rename("red", "crimson")
    run_cli(cli, "forget", "--state", state, "--class", "blue")
    assert learner.classes == ["crimson", "green"]  # and Python sees the CLI's forget
    info = json.loads(run_cli(cli, "info", "--state", state, "--json"))["state"]
    assert {c["name"]: c["captures"] for c in info["classes"]} == {"crimson": 4, "green": 3}


def test_locked_state_raises_locked_error(trained, state):
    # Another writer holds the state's lock: the documented lock file `.NAME.lock` beside the state,
    # locked with flock (src/state/lock.rs).
    lock_path = state.parent / f".{state.name}.lock"
    with open(lock_path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        quick = edgecl.Learner(state, TINY, runtime="tract", lock_timeout=0.2)
        with pytest.raises(edgecl.LockedError, match="is being written by .* gave up after") as e:
            quick.learn("red", [draw("red", 1)])
        assert isinstance(e.value, TimeoutError)
        assert isinstance(e.value, edgecl.Error)
        with pytest.raises(edgecl.LockedError):
            quick.forget("red")
        fcntl.flock(f, fcntl.LOCK_UN)
    assert quick.learn("red", [draw("red", 1)]) == 6


class SwitchOnlyWhenBlocked:
    """Makes CPython hand the GIL to another thread only when the holder releases it (blocks, or calls
    code that releases it): with a switch interval of 1000 s the interpreter never forces a switch
    during these tests."""

    def __enter__(self):
        self.old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)

    def __exit__(self, *exc):
        sys.setswitchinterval(self.old)


def ran_while_inside(call):
    """Starts `call` on a thread and reports whether this thread ran before `call` returned.

    `Thread.start()` returns only once this thread holds the GIL again. The worker holds the GIL from
    its start until it enters the library; with forced switches off, this thread gets the GIL back
    before the call returns only if the library released it. If it did not, the worker keeps the GIL
    through the call, sets `done`, and exits before this thread runs: the check is not a timing race.
    The call is made long (dozens of images) so that the library still runs when this thread wakes.
    Its images are file paths: converting numpy arrays (tobytes) may itself release the GIL, before
    the library is entered, which would make the check pass for the wrong reason.
    """
    done = threading.Event()
    errors = []

    def worker():
        try:
            call()
        except BaseException as e:  # reported below
            errors.append(e)
        done.set()

    with SwitchOnlyWhenBlocked():
        t = threading.Thread(target=worker)
        t.start()
        ran_before_done = not done.is_set()
        t.join()
    assert not errors, errors
    return ran_before_done


def test_the_check_catches_a_call_that_keeps_the_gil():
    # The control: pure Python work keeps the GIL, and the check says so.
    assert not ran_while_inside(lambda: sum(i * i for i in range(2_000_000)))


def frame_files(tmp_path, colour, n):
    return [str(write_ppm(tmp_path / f"{colour}{s}.ppm", draw(colour, s, 240, 320))) for s in range(n)]


def test_the_gil_is_released_while_classifying(trained, tmp_path):
    frames = frame_files(tmp_path, "red", 48)
    assert ran_while_inside(lambda: trained.classify_many(frames))


def test_the_gil_is_released_while_learning(learner, tmp_path):
    frames = frame_files(tmp_path, "blue", 48)
    assert ran_while_inside(lambda: learner.learn("blue", frames))
    assert learner.classes == ["blue"]


def test_the_gil_is_released_while_opening_a_model(state):
    assert ran_while_inside(lambda: [edgecl.Learner(state, TINY, runtime="tract") for _ in range(20)])


def test_state_and_runtime_do_not_wait_for_a_running_call(trained, tmp_path):
    # A camera or UI thread reading `runtime` or `state` while another thread classifies must not
    # stall the interpreter until the classification ends (they would hold the GIL while waiting).
    # Timed, with a wide margin: the attributes take microseconds, the call hundreds of milliseconds.
    frames = frame_files(tmp_path, "green", 160)
    took = {}

    def call():
        t = time.perf_counter()
        trained.classify_many(frames)
        took["call"] = time.perf_counter() - t

    done = threading.Event()

    def worker():
        call()
        done.set()

    with SwitchOnlyWhenBlocked():
        t = threading.Thread(target=worker)
        t.start()  # returns once the worker released the GIL, i.e. is inside the library
        inside = not done.is_set()
        start = time.perf_counter()
        runtime, state = trained.runtime, trained.state
        took["attributes"] = time.perf_counter() - start
        t.join()
    assert inside
    assert (runtime, state) == ("tract", trained.state)
    assert took["attributes"] < took["call"] / 10, took


def test_threads_share_one_learner(trained):
    # Calls from several threads take turns on the one session; each gets its own answers.
    results = {}

    def work(colour):
        results[colour] = [trained.classify(draw(colour, 700 + s)).top[0].class_ for s in range(8)]

    threads = [threading.Thread(target=work, args=(c,)) for c in COLOURS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {c: [c] * 8 for c in COLOURS}


def test_python_and_cli_writers_take_turns(trained, state, cli, tmp_path):
    # A CLI learn and a Python learn on the same state at the same time: both updates survive (each
    # writer loads the state under the lock before saving).
    files = [write_ppm(tmp_path / f"w{s}.ppm", np.full((32, 32, 3), 240 + s, np.uint8)) for s in range(3)]
    proc = subprocess.Popen(
        [cli, "learn", "--state", str(state), "--class", "white", "--runtime", "tract", "--quiet", *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for s in range(5):
        trained.learn("red", [draw("red", 800 + s)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert {c.name: c.captures for c in trained.info().classes} == {"red": 10, "green": 5, "blue": 5, "white": 3}
