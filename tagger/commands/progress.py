"""The progress bar of a run on a terminal (tqdm), or none (tagger.pipeline.Progress)."""

from __future__ import annotations

import sys


class TqdmProgress:
    """The bar on a terminal. While start-up runs (Ray, TensorFlow, the model: up to a minute on a
    busy machine) the bar names the stage instead of sitting at 0 with no word; its clock (rate,
    ETA) starts again with the first file analysed after start-up, so that the first ETA is not
    the start-up spread over a handful of files."""

    def __init__(self):
        self.bar = None
        self._restart = False

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)

    def stage(self, text: str) -> None:
        if self.bar is None:
            return
        if text:
            self.bar.set_description_str(f"{text}…")
        else:  # files flow: the clock restarts with the first one done
            self.bar.set_description_str("")
            self._restart = True

    def advance(self, n: int = 1) -> None:
        if self.bar is None:
            return
        if self._restart:
            self._restart = False
            done = self.bar.n + n
            self.bar.reset(total=self.bar.total)  # a new start time and rate estimate
            self.bar.n = self.bar.last_print_n = self.bar.initial = done
            self.bar.refresh()
            return
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_progress(options):
    from tagger.pipeline import Progress

    if options.quiet or not sys.stdout.isatty():
        return Progress()
    return TqdmProgress()

