"""Steps to a converged tensor and K error against a tight run, over LBM settings.

Run: ``python bench/bench_lbm_settings.py [--size 32] [--seeds 3]``

The images are one sample of each family (spheres, foam, channels, grf) per seed. The
reference is the default rule run to ``tol = 1e-5``; each variant (a convergence tolerance
and check interval, or a relaxation time tau at the default tolerance) reports its mean
steps per tensor (three directions summed) and the largest |K - K_ref| / max K_ii. Steps
and K do not depend on the machine or its load, so this chooses the defaults of
:class:`pvae.physics.lbm.LBMSettings`. Writes ``lbm_settings.json`` and ``.md`` to ``--out``.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from pvae.data.microstructures import synthesize_sample
from pvae.physics.lbm import LBMSettings, permeability_batch

sys.path.insert(0, str(Path(__file__).parent))
from machine import write_results  # noqa: E402

FAMILIES = ("spheres", "foam", "channels", "grf")


def variants(tolerances: list[str], taus: list[float]) -> dict[str, LBMSettings]:
    """Settings by name: ``tol/check_every`` pairs, then relaxation times at the default."""
    base = LBMSettings(max_steps=100_000)
    named = {}
    for pair in tolerances:
        tol, every = pair.split("/")
        named[f"tol {tol}, every {every}"] = replace(base, tol=float(tol), check_every=int(every))
    for tau in taus:
        named[f"tau {tau:g}"] = replace(base, tau=tau)
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image edge (voxels)")
    parser.add_argument("--seeds", type=int, default=3, help="samples of each family")
    parser.add_argument("--tolerances", nargs="+",
                        default=["1e-3/50", "1e-3/25", "2e-3/25", "3e-3/50", "5e-3/25"],
                        help="tol/check_every pairs")  # fmt: skip
    parser.add_argument("--taus", type=float, nargs="+", default=[0.8, 1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    images = np.stack([synthesize_sample(family, (args.size,) * 3, 10 * seed + i, 0)[0]
                       for seed in range(args.seeds)
                       for i, family in enumerate(FAMILIES)])  # fmt: skip
    tight = LBMSettings(tol=1e-5, max_steps=100_000)
    reference = permeability_batch(images, tight)
    rows = [{"variant": "reference (tol 1e-5)", "mean_steps": float(
        np.mean([r.steps.sum() for r in reference])), "max_dk": 0.0, "median_dk": 0.0}]
    for name, settings in variants(args.tolerances, args.taus).items():
        results = permeability_batch(images, settings)
        dk = [np.abs(r.k - q.k).max() / np.abs(np.diag(q.k)).max()
              for r, q in zip(results, reference, strict=True)]  # fmt: skip
        steps = float(np.mean([r.steps.sum() for r in results]))
        rows.append({"variant": name, "mean_steps": steps, "max_dk": float(max(dk)),
                     "median_dk": float(np.median(dk))})  # fmt: skip
        print(f"{name:22s} mean steps {rows[-1]['mean_steps']:6.0f}  max dK {max(dk):.1e}",
              flush=True)  # fmt: skip
    lines = [f"LBM settings at {args.size}^3: {len(images)} images ({args.seeds} of each of "
             f"{', '.join(FAMILIES)}); K against the default rule at tol 1e-5. Command: "
             f"`python {' '.join(sys.argv)}`.", "",
             "| settings | mean steps per tensor | max dK / max K_ii | median |",
             "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['mean_steps']:.0f} | {r['max_dk']:.1e} | "
              f"{r['median_dk']:.1e} |" for r in rows]  # fmt: skip
    markdown = "\n".join(lines) + "\n"
    write_results(args.out, "lbm_settings", rows, markdown)


if __name__ == "__main__":
    main()
