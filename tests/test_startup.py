"""Start-up a person can see (issue 19.3): the stages are named while Ray, TensorFlow and the model
load, the ETA starts once files flow, and the first files are decoded while the model loads."""

from __future__ import annotations

import io
import time

import pytest

from tagger.options import TagOptions
from tests.test_pipeline import make_lib

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def test_the_bar_names_each_stage_and_its_clock_starts_with_the_first_file(monkeypatch):
    from tagger.commands.progress import TqdmProgress

    monkeypatch.setattr("sys.stderr", io.StringIO())
    p = TqdmProgress()
    p.start(16)
    p.stage("starting Ray")
    assert p.bar.desc == "starting Ray…"
    p.stage("loading the model")
    assert p.bar.desc == "loading the model…"
    p.bar.start_t -= 60.0  # a minute of start-up
    p.bar.last_print_t -= 60.0
    p.stage("")
    assert p.bar.desc == ""
    p.advance()
    assert p.bar.n == 1
    assert time.time() - p.bar.start_t < 5.0  # the minute of start-up is not in the rate
    d = p.bar.format_dict
    assert d["initial"] == 1 and d["n"] == 1
    p.advance()
    p.advance()
    assert p.bar.n == 3
    p.close()


class Recorder:
    def __init__(self, events):
        self.events = events

    def start(self, total):
        self.events.append(("start", total))

    def stage(self, text):
        self.events.append(("stage", text))

    def advance(self, n=1):
        self.events.append(("advance", n))

    def close(self):
        self.events.append(("close",))


@pytest.mark.usefixtures("ray_session")
def test_stages_in_order_and_files_decoded_while_the_model_loads(tmp_path, tiny_model, monkeypatch):
    from tagger import pipeline

    make_lib(tmp_path / "lib", n=3)
    events: list = []
    real_submit = pipeline.Tagger._submit

    def submit(self, st):
        before = len(st.tasks)
        real_submit(self, st)
        if len(st.tasks) > before:
            events.append(("submitted", len(st.tasks) - before))

    monkeypatch.setattr(pipeline.Tagger, "_submit", submit)
    options = TagOptions(model=str(tiny_model.weights), min_confidence=0.0, dry_run=True)
    report = pipeline.Tagger([tmp_path / "lib"], options, progress=Recorder(events)).run()
    assert report.counts.get("would tag") == 3, report.counts
    stages = [e[1] for e in events if e[0] == "stage"]
    assert stages[0] == "starting Ray" and "loading the model" in stages and stages[-1] == ""
    first_submit = events.index(next(e for e in events if e[0] == "submitted"))
    assert first_submit < events.index(("stage", "loading the model"))  # decoding overlaps the model load
    assert events.index(("stage", "")) < events.index(next(e for e in events if e[0] == "advance"))


# -- sharing the cores (issue 19.2) -----------------------------------------------------------------

def test_the_core_split_keeps_two_cores_as_measured_and_nices_decoders_from_four():
    from tagger.ray_backend import CpuSplit, cpu_split

    assert cpu_split(1) == cpu_split(2) == CpuSplit(intra=0, inter=0, worker_nice=0)
    for cpus in (4, 8, 64):
        assert cpu_split(cpus) == CpuSplit(intra=0, inter=1, worker_nice=10)


def test_decode_workers_lower_their_priority_once_and_tensorflow_threads_are_set():
    import subprocess
    import sys

    code = ("import os\nfrom tagger.analyse import _be_nice\nbase = os.nice(0)\n_be_nice(5)\n_be_nice(5)\n"
            "_be_nice(0)\nprint('NICE', os.nice(0) - base)\n"
            "from tagger.model import set_cpu_threads, import_tensorflow\n"
            "print('SET', set_cpu_threads(1, 1), set_cpu_threads(0, 0))\ntf = import_tensorflow()\n"
            "print('THREADS', tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "NICE 5" in r.stdout, r.stdout + r.stderr
    assert "SET True False" in r.stdout, r.stdout + r.stderr
    assert "THREADS 1 1" in r.stdout, r.stdout + r.stderr
