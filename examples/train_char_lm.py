"""Train a character-level GPT, compiled from examples/char_gpt.yaml, on Shakespeare's sonnets
(examples/data/sonnets.txt, public domain), on the CPU, then sample from it.

Every --eval-every steps it prints the loss on the held-out last tenth of the text. Every
--checkpoint-every steps, and at the end, it writes DIR/checkpoint.pt (--out DIR, default
build/char_lm): the weights, the optimizer and learning-rate schedule, the spec's YAML, the loss
history and the random-number states, so that --resume continues exactly as if the run had not
stopped. At the end it draws the loss curves to DIR/loss.png (this needs matplotlib:
pip install "xtc[examples]").

    python examples/train_char_lm.py                 # 100 steps, about 12 s on 2 cores
    python examples/train_char_lm.py --steps 50 --out build/short
    python examples/train_char_lm.py --resume build/char_lm/checkpoint.pt --steps 150
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

import xtc

HERE = Path(__file__).resolve().parent
SPEC_PATH = HERE / "char_gpt.yaml"
TEXT_PATH = HERE / "data" / "sonnets.txt"
CHECKPOINT_NAME = "checkpoint.pt"
PLOT_NAME = "loss.png"

WEIGHT_DECAY = 0.1
WARMUP_STEPS = 20
FINAL_LR_FRACTION = 0.1  # the cosine decay ends at this fraction of --lr
EVAL_BATCHES, EVAL_BATCH_SIZE = 4, 16
PROGRESS_EVERY = 5  # steps between redraws of the progress bar


def encode(text: str) -> torch.Tensor:
    """Characters as ASCII codes (anything else becomes '?'): the model has 128 tokens."""
    return torch.tensor([ord(c) if ord(c) < 128 else ord("?") for c in text], dtype=torch.long)


def decode(tokens: torch.Tensor) -> str:
    return "".join(chr(int(t)) for t in tokens)


def load_text() -> tuple[torch.Tensor, torch.Tensor]:
    """The sonnets as tokens: the first 90% to train on, the last 10% held out."""
    data = encode(TEXT_PATH.read_text(encoding="utf-8"))
    split = int(0.9 * len(data))
    return data[:split], data[split:]


def batches(data: torch.Tensor, batch: int, length: int, generator: torch.Generator):
    """Random windows of length + 1 characters: the model predicts each next one."""
    while True:
        starts = torch.randint(0, len(data) - length - 1, (batch,), generator=generator)
        yield torch.stack([data[s:s + length + 1] for s in starts.tolist()])


@dataclass(frozen=True)
class Settings:
    """What decides a run's steps besides the spec; a checkpoint keeps them, so that a resumed
    run goes on exactly as the uninterrupted one would have."""

    decay_steps: int  # the learning rate's cosine decay ends here, then stays flat
    batch: int = 16
    lr: float = 3e-3
    seed: int = 0


@dataclass
class Run:
    """A training run's whole state: what a checkpoint holds."""

    spec_text: str
    settings: Settings
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    batch_generator: torch.Generator
    window: int  # characters the model reads per example: its context
    step: int = 0
    losses: list[float] = field(default_factory=list)  # training loss of steps 1, 2, ...
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)


def weight_decay_split(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the parameters to decay, and of those to leave alone.

    Only weight matrices decay. Decay would pull norm gains away from one, their neutral value,
    and biases toward zero, with nothing to gain from it; and it would shrink, step after step,
    the embedding rows of rare characters, which the gradient reaches only when they occur.
    """
    embedding_tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        is_weight_matrix = parameter.ndim >= 2 and id(parameter) not in embedding_tables
        (decay if is_weight_matrix else no_decay).append(name)
    return decay, no_decay


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.AdamW:
    parameters = dict(model.named_parameters())
    decay, no_decay = weight_decay_split(model)
    return torch.optim.AdamW([
        {"params": [parameters[name] for name in decay], "weight_decay": WEIGHT_DECAY},
        {"params": [parameters[name] for name in no_decay], "weight_decay": 0.0},
    ], lr=lr)


def lr_factor(step: int, decay_steps: int) -> float:
    """The multiple of --lr at a step: a linear warmup, a cosine decay to FINAL_LR_FRACTION at
    decay_steps, then flat, so that a run resumed past its first horizon still learns."""
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, step / decay_steps)))
    return warmup * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def new_run(spec_text: str, settings: Settings, source: str = str(SPEC_PATH)) -> Run:
    """A run at step 0, its weights drawn from settings.seed. `source` names the spec text in
    error messages."""
    torch.manual_seed(settings.seed)
    spec = xtc.loads_spec(spec_text, source)
    model = xtc.build(spec)
    optimizer = make_optimizer(model, settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.decay_steps))
    return Run(spec_text, settings, model, optimizer, schedule,
               batch_generator=torch.Generator().manual_seed(settings.seed),
               window=spec.model["max_seq_len"] - 1)


def save_checkpoint(run: Run, path: Path) -> None:
    """Write the run to `path` through a temporary file beside it, so that an interrupted write
    never leaves a truncated checkpoint in place of the last good one."""
    state = {
        "step": run.step,
        "spec_text": run.spec_text,
        "settings": asdict(run.settings),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.state_dict(),
        "losses": run.losses,
        "val_losses": run.val_losses,
        # The next batches and any dropout masks must be those the uninterrupted run would draw.
        "batch_generator": run.batch_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> Run:
    """The run a checkpoint holds, its model built from the spec text inside it."""
    state = torch.load(path, weights_only=True)
    run = new_run(state["spec_text"], Settings(**state["settings"]), source=f"{path} (spec)")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.batch_generator.set_state(state["batch_generator"])
    torch.set_rng_state(state["torch_rng"])  # after new_run, which seeds it to initialise
    run.step, run.losses, run.val_losses = state["step"], state["losses"], state["val_losses"]
    return run


def train_step(run: Run, batch: torch.Tensor) -> float:
    loss = run.model.loss(batch)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.schedule.step()
    run.step += 1
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, window: int, seed: int) -> float:
    """Mean loss over held-out windows. A generator seeded afresh picks the same windows every
    time, so that evaluations compare across steps and leave the training's random state alone."""
    windows = batches(data, EVAL_BATCH_SIZE, window, torch.Generator().manual_seed(seed))
    model.eval()
    losses = [model.loss(next(windows)).item() for _ in range(EVAL_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


class Console:
    """A progress bar redrawn in place, with whole lines printed above it; silent when quiet."""

    def __init__(self, quiet: bool, first_step: int, last_step: int):
        self.quiet, self.first_step, self.last_step = quiet, first_step, last_step
        self.started = time.perf_counter()
        self.bar = ""

    def progress(self, step: int, loss: float, width: int = 30) -> None:
        done = int(width * step / self.last_step)
        rate = (step - self.first_step) / max(time.perf_counter() - self.started, 1e-9)
        self.bar = (f"[{'#' * done}{'.' * (width - done)}] step {step}/{self.last_step}  "
                    f"loss {loss:.3f}  {rate:.1f} it/s")
        self.redraw()

    def line(self, text: str) -> None:
        if not self.quiet:
            print("\r" + text.ljust(len(self.bar)))  # padded to cover the bar, redrawn below it
            self.redraw()

    def redraw(self) -> None:
        if not self.quiet and self.bar:
            print("\r" + self.bar, end="", flush=True)

    def close(self) -> None:
        if not self.quiet and self.bar:
            print()


def describe_weight_decay(optimizer: torch.optim.Optimizer) -> str:
    decay, no_decay = ((len(g["params"]), sum(p.numel() for p in g["params"]))
                       for g in optimizer.param_groups)
    return (f"weight decay {WEIGHT_DECAY} on {decay[0]} weight matrices ({decay[1]:,} parameters), "
            f"none on {no_decay[0]} norm gains, biases and embedding tables "
            f"({no_decay[1]:,} parameters)")


def train(run: Run, steps: int, out: str | os.PathLike, eval_every: int = 25,
          checkpoint_every: int = 50, quiet: bool = False) -> Run:
    """Train `run` on until step `steps`: the validation loss every eval_every steps and at the
    end, out/checkpoint.pt every checkpoint_every steps and at the end, out/loss.png at the end."""
    if steps <= run.step:
        raise ValueError(f"the run is at step {run.step} already: train it to a later step")
    out = Path(out)
    train_data, val_data = load_text()
    stream = batches(train_data, run.settings.batch, run.window, run.batch_generator)
    console = Console(quiet, run.step, steps)
    console.line(describe_weight_decay(run.optimizer))
    while run.step < steps:
        run.losses.append(train_step(run, next(stream)))
        at_end = run.step == steps
        if run.step % PROGRESS_EVERY == 0 or at_end:
            recent = run.losses[-PROGRESS_EVERY:]
            console.progress(run.step, sum(recent) / len(recent))
        if run.step % eval_every == 0 or at_end:
            val_loss = evaluate(run.model, val_data, run.window, run.settings.seed)
            run.val_losses.append((run.step, val_loss))
            console.line(f"step {run.step}: validation loss {val_loss:.3f}")
        if run.step % checkpoint_every == 0 or at_end:
            save_checkpoint(run, out / CHECKPOINT_NAME)
    console.close()
    plot = plot_losses(run, out / PLOT_NAME)
    if not quiet:
        print(f"validation loss {run.val_losses[-1][1]:.3f} (a uniform guess over 128 "
              f"characters is {math.log(128):.3f}); wrote {out / CHECKPOINT_NAME}"
              + (f" and {plot}" if plot else ""))
    return run


def smoothed(values: list[float], radius: int = 4) -> list[float]:
    """Each value averaged with up to `radius` neighbours on either side, as many on each: the
    curve neither lags behind the steep first steps, as a running average would, nor bends at
    its ends."""
    out = []
    for index in range(len(values)):
        reach = min(radius, index, len(values) - 1 - index)
        window = values[index - reach:index + reach + 1]
        out.append(sum(window) / len(window))
    return out


def plot_losses(run: Run, path: Path) -> Path | None:
    """Draw the training loss per step (faint, and smoothed) and the validation losses to
    `path`. matplotlib is an optional extra: without it, say how to get it and draw nothing."""
    try:
        # `import matplotlib.figure` fails whenever matplotlib itself is unavailable, even if
        # its submodules were imported before (as in the test that hides it); a
        # `from matplotlib.figure import Figure` would take the cached submodule and go on.
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        print(f"{path} not written: the loss plot needs matplotlib "
              '(pip install "xtc[examples]" or pip install matplotlib)', file=sys.stderr)
        return None
    # A Figure on an Agg canvas, not pyplot: no display needed, no global state touched.
    figure = matplotlib.figure.Figure(figsize=(7, 4), layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = range(1, len(run.losses) + 1)
    axes.plot(steps, run.losses, color="tab:blue", alpha=0.3, linewidth=0.8,
              label="training, per step")
    axes.plot(steps, smoothed(run.losses), color="tab:blue", label="training, smoothed")
    axes.plot(*zip(*run.val_losses), "o-", color="tab:orange", label="validation")
    axes.axhline(math.log(128), color="gray", linestyle=":", label="uniform guess")
    axes.set(xlabel="step", ylabel="loss (nats per character)",
             title=f"{xtc.loads_spec(run.spec_text).name} on the sonnets")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=100)
    return path


def sample(model: nn.Module, prompt: str, length: int, seed: int) -> str:
    model.eval()  # no dropout while sampling
    tokens = encode(prompt)[None, :]
    new = model.generate(tokens, length, temperature=0.8, top_k=10,
                         generator=torch.Generator().manual_seed(seed))
    return prompt + decode(new[0])


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive, default=100, metavar="N",
                        help="train until step N (default %(default)s)")
    parser.add_argument("--eval-every", type=positive, default=25, metavar="N",
                        help="validation loss every N steps, and at the end (default %(default)s)")
    parser.add_argument("--checkpoint-every", type=positive, default=50, metavar="N",
                        help="write the checkpoint every N steps, and at the end (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("build/char_lm"), metavar="DIR",
                        help="where checkpoint.pt and loss.png go (default build/char_lm)")
    parser.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                        help="continue the run saved in this checkpoint, to --steps")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample at the end")
    # None, not the defaults, so that a resumed run can tell these were given: it must use
    # the checkpoint's settings to go on as the first run would have.
    run_settings = parser.add_argument_group("run settings (a resumed run keeps its own)")
    run_settings.add_argument("--batch", type=positive, help=f"default {Settings.batch}")
    run_settings.add_argument("--lr", type=float, help=f"default {Settings.lr}")
    run_settings.add_argument("--seed", type=int, help=f"default {Settings.seed}")
    run_settings.add_argument("--decay-steps", type=positive, metavar="N",
                              help="steps of the learning rate's decay (default --steps)")
    return parser


def main(argv: list[str] | None = None) -> Run:
    cli = argument_parser()
    args = cli.parse_args(argv)
    given = {name: value for name in ("batch", "lr", "seed", "decay_steps")
             if (value := getattr(args, name)) is not None}
    if args.resume:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            cli.error(f"{flags}: a resumed run keeps the settings in its checkpoint")
        run = load_checkpoint(args.resume)
        if args.steps <= run.step:
            cli.error(f"--steps {args.steps} is not beyond step {run.step}, where "
                      f"{args.resume} stopped: nothing to train")
        print(f"resuming {args.resume} at step {run.step}")
    else:
        settings = Settings(**{"decay_steps": args.steps, **given})
        run = new_run(SPEC_PATH.read_text(encoding="utf-8"), settings)
    train(run, args.steps, args.out, args.eval_every, args.checkpoint_every)
    if not args.no_sample:
        print(f"sample:\n{sample(run.model, 'Shall I compare thee', 100, run.settings.seed)}")
    return run


if __name__ == "__main__":
    main(sys.argv[1:])
