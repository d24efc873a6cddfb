"""TrialLines: what a job log shows of a sweep — a line per trial event, a progress line."""

from __future__ import annotations

import io
import re

from equisweep.sweep.progress import ProgressBar, SweepTally
from equisweep.sweep.trial_lines import TrialLines


class _Trial:
    def __init__(self, tid, config, error=None):
        self.trial_id, self.config, self.num_failures, self._error = tid, config, 0, error

    def get_error(self):
        return self._error


def _payload(label, family="gatr"):
    return {"key": label[-8:], "label": label, "trial": {"family": family, "augment": False}}


class _Clock:
    t = 0.0

    def __call__(self):
        return self.t


def _events(every_s=60.0):
    out, clock = io.StringIO(), _Clock()
    tally = SweepTally(3)
    bar = ProgressBar(tally, "sw", stream=out, enabled=False)
    lines = TrialLines(tally, "sw", stream=out, every_s=every_s, clock=clock)

    def fire(name, *args):  # the driver's order: the bar (tally) first, then the lines
        getattr(bar, name)(0, [], *args)
        getattr(lines, name)(0, [], *args)

    return out, clock, fire, lines


def test_a_stack_and_a_lone_trial_as_lines():
    out, clock, fire, lines = _events()
    stack = _Trial("t1", {"stack": [_payload("gatr-2x1-aaaaaaaa"), _payload("gatr-2x1-bbbbbbbb")]})
    lone = _Trial("t2", _payload("transformer-8x1-cccccccc", "transformer"),
                  error="Traceback ...\nRuntimeError: boom")
    fire("on_trial_start", stack)
    fire("on_trial_start", lone)
    fire("on_trial_result", stack, {"member": 1, "step": 10, "status": "diverged",
                                    "error": "non-finite training loss at step 10",
                                    "hostname": "n1"})
    clock.t = 61.0  # a minute on: the next event brings a progress line
    fire("on_trial_result", stack, {"member": 0, "step": 20, "status": "finished",
                                    "val_loss": 0.0123, "val_loss_se": 0.0004,
                                    "hostname": "n1"})
    fire("on_trial_complete", stack)  # both members already said: nothing more
    fire("on_trial_error", lone)
    lines.on_experiment_end([])
    got = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", ln) for ln in out.getvalue().splitlines()]
    assert got == [
        "started gatr-2x1-aaaaaaaa",
        "started gatr-2x1-bbbbbbbb",
        "started transformer-8x1-cccccccc",
        "diverged gatr-2x1-bbbbbbbb on n1: non-finite training loss at step 10",
        "finished gatr-2x1-aaaaaaaa on n1: val 0.0123 ± 0.0004 at step 20",
        "sweep sw: 2/3 trials ended | run 1 | done 1 | failed 0 | diverged 1 | gatr val 0.0123",
        "failed transformer-8x1-cccccccc: RuntimeError: boom",
        "sweep sw: 3/3 trials ended | run 0 | done 1 | failed 1 | diverged 1 | gatr val 0.0123",
    ]


def test_no_progress_line_more_often_than_asked():
    out, clock, fire, lines = _events(every_s=60.0)
    for t in range(0, 200, 10):
        clock.t = float(t)
        lines.on_step_end(0, [])
    assert out.getvalue().count("trials ended") == 3  # at 60, 120 and 180 s
