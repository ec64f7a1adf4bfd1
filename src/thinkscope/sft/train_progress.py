"""Training steps through thinkscope's one progress bar (a bar on a terminal, plain lines in a
log; :func:`thinkscope.core.progress.progress_bar`) instead of transformers' tqdm."""

from __future__ import annotations

from transformers import TrainerCallback

from thinkscope.core.progress import progress_bar


class StepProgress(TrainerCallback):
    """Optimizer steps done out of ``max_steps``, from the resumed step on, with the loss:
    counted when a step's loss is logged (the trainer logs every step)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = progress_bar("train", "steps", self.show)
        self.bar.start()
        self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            loss = f"loss {logs['loss']:.3f}"
            self.bar.update(self.task, completed=state.global_step, rate=loss)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
