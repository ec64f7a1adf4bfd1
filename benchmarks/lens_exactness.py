"""Exactness of the lens on the bundled model: every position and layer against float64.

    python benchmarks/lens_exactness.py [--tokens 128]

Takes the cached completion of ``benchmarks/lens.py`` (run that first), computes the full
profile (JSD, KL, layer entropies, final statistics) with the engine, and the same quantities
per layer in float64 from the same fp32 logits, then prints the largest differences. The
integration test checks two tokens; this checks them all. Measured numbers: README, "How fast
the lens is".
"""

from __future__ import annotations

import argparse
import json

import torch

from thinkscope.core.paths import cache_dir
from thinkscope.lens import lens_profile, sampled_states
from thinkscope.models import load_model


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    lm = load_model("smollm2-135m")
    data = json.loads((cache_dir() / "bench" / "lens-completion-512.json").read_text())
    states, targets = sampled_states(lm, [data["prompt"]], [data["completion"][: args.tokens]])
    prof = lens_profile(lm, states, targets=targets, kl=True)
    lp = torch.log_softmax(lm.head(states[-1]).double(), -1)
    p = lp.exp()
    worst = {"jsd": 0.0, "kl (relative)": 0.0, "entropy": 0.0}
    for layer in range(lm.n_layers):
        lq = torch.log_softmax(lm.head(states[layer]).double(), -1)
        q = lq.exp()
        log_m = torch.log(0.5 * (p + q))
        jsd = 0.5 * (p * (lp - log_m)).sum(-1) + 0.5 * (q * (lq - log_m)).sum(-1)
        kl = (p * (lp - lq)).sum(-1)
        entropy = -torch.xlogy(q, q).sum(-1)
        errors = {
            "jsd": (prof.jsd[:, layer].double() - jsd).abs().max(),
            "kl (relative)": (
                (prof.kl[:, layer].double() - kl).abs() / kl.abs().clamp_min(1)
            ).max(),
            "entropy": (prof.entropy[:, layer].double() - entropy).abs().max(),
        }
        worst = {name: max(worst[name], float(errors[name])) for name in worst}
    final = {
        "final entropy": (prof.final.entropy.double() + (p * lp).sum(-1)).abs().max(),
        "token log-prob": (prof.final.token_logprob.double() - lp.gather(1, targets[:, None])[:, 0])
        .abs()
        .max(),
        "top-20 log-probs": (prof.final.top_logprobs.double() - lp.topk(20).values).abs().max(),
    }
    worst.update({name: float(value) for name, value in final.items()})
    print(f"{len(targets)} tokens x {lm.n_layers} layers, largest difference from float64:")
    for name, value in worst.items():
        print(f"  {name:18s} {value:.1e}")


if __name__ == "__main__":
    main()
