"""Train a character-level GPT, compiled from examples/char_gpt.yaml, on Shakespeare's sonnets
(examples/data/sonnets.txt, public domain), on the CPU, then sample from it.

    python examples/train_char_lm.py                 # 300 steps, about a minute on 2 cores
    python examples/train_char_lm.py --steps 50
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import xtc

HERE = Path(__file__).resolve().parent


def encode(text: str) -> torch.Tensor:
    """Characters as ASCII codes (anything else becomes '?'): the model has 128 tokens."""
    return torch.tensor([ord(c) if ord(c) < 128 else ord("?") for c in text], dtype=torch.long)


def decode(tokens: torch.Tensor) -> str:
    return "".join(chr(int(t)) for t in tokens)


def batches(data: torch.Tensor, batch: int, length: int, generator: torch.Generator):
    """Random windows of length + 1 characters: the model predicts each next one."""
    while True:
        starts = torch.randint(0, len(data) - length - 1, (batch,), generator=generator)
        yield torch.stack([data[s:s + length + 1] for s in starts.tolist()])


def progress(step: int, total: int, loss: float, started: float, width: int = 30) -> str:
    done = int(width * step / total)
    rate = step / max(time.perf_counter() - started, 1e-9)
    return f"\r[{'#' * done}{'.' * (width - done)}] step {step}/{total}  loss {loss:.3f}  {rate:.1f} it/s"


@torch.no_grad()
def evaluate(model, data: torch.Tensor, length: int, generator: torch.Generator) -> float:
    model.eval()
    losses = [model.loss(next(batches(data, 16, length, generator))).item() for _ in range(4)]
    model.train()
    return sum(losses) / len(losses)


def train(steps: int, batch: int, lr: float, seed: int, quiet: bool = False) -> list[float]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = encode((HERE / "data" / "sonnets.txt").read_text(encoding="utf-8"))
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    spec = xtc.load_spec(HERE / "char_gpt.yaml")
    model = xtc.build(spec)
    length = spec.model["max_seq_len"] - 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses, started = [], time.perf_counter()
    stream = batches(train_data, batch, length, generator)
    for step in range(1, steps + 1):
        loss = model.loss(next(stream))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if not quiet and (step % 5 == 0 or step == steps):
            print(progress(step, steps, sum(losses[-5:]) / len(losses[-5:]), started), end="", flush=True)
    if not quiet:
        print(f"\nvalidation loss {evaluate(model, val_data, length, generator):.3f} "
              f"(a uniform guess over 128 characters is {math.log(128):.3f})")
        prompt = encode("Shall I compare thee")[None, :]
        sample = model.generate(prompt, 100, temperature=0.8, top_k=10,
                                generator=torch.Generator().manual_seed(seed))
        print(f"sample:\n{decode(prompt[0])}{decode(sample[0])}")
    return losses


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return train(args.steps, args.batch, args.lr, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
