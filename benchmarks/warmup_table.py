"""Tables of the warmup estimators from the ``--json`` output of ``bench_gym.py`` runs.

For each target and mcgen variant: the median over repetitions of the ESS per gradient with
the warmup's gradients counted (``ESS/grad all``), its ratio to ``mcgen`` (Stan's diagonal;
repetitions are paired: the same seed and starting points) as the median of the per-repetition
ratios and the smallest of them, and the ESS/s with warmup against BlackJAX.  Then, per
variant, the median over targets of those ratios and the smallest per-target median.

Usage::

    python benchmarks/warmup_table.py run1.json run2.json ...
    python benchmarks/warmup_table.py --base mcgen --warmup 1000 *.json   # only 1000-step warmups
    # half the warmup: each variant at 500 steps (named "<lib>@500") against the base at 1000,
    # on the ESS per gradient after warmup (the quality of the adapted sampler)
    python benchmarks/warmup_table.py --warmup 500 --base-warmup 1000 --key ess_grad *.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict


def load(paths, warmup=None):
    """Rows of ``--json`` files, or of the per-repetition lines of a run's printed log (``.txt``)."""
    rows = []
    for path in paths:
        with open(path) as fh:
            if path.endswith(".json"):
                new = json.load(fh)
            else:  # "  <target[:24]> rep <i> <lib> key=value ..."
                new, steps = [], None
                for line in fh:
                    parts = line.split()
                    if "warmup" in parts and steps is None:  # the header: "... warmup N, draws ..."
                        steps = int(parts[parts.index("warmup") + 1].rstrip(","))
                    if len(parts) > 4 and parts[1] == "rep" and "=" in parts[4]:
                        values = dict(kv.split("=", 1) for kv in parts[4:])
                        new.append(dict(target=parts[0], rep=parts[2], lib=parts[3], warmup=steps, **values))
                for r in new:
                    for k, v in r.items():
                        if k not in ("target", "lib"):
                            r[k] = float(v)
            rows += [r for r in new if warmup is None or r.get("warmup") == warmup]
    return rows


def paired_ratios(rows, target, lib, base, key):
    """Per repetition: lib's ``key`` over base's (same rep = same seed and starting points)."""
    by_rep = {(r["lib"], r["rep"]): r[key] for r in rows if r["target"] == target}
    return [by_rep[(lib, rep)] / by_rep[(base, rep)] for (name, rep) in by_rep if name == lib and (base, rep) in by_rep]


def tables(rows, base="mcgen", peer="blackjax", key="ess_grad_all") -> str:
    targets = list(dict.fromkeys(r["target"] for r in rows))
    libs = list(dict.fromkeys(r["lib"] for r in rows))
    variants = [lib for lib in libs if lib != base and lib.startswith("mcgen")]
    out = [
        f"| target | reps | {base} {key} | "
        + " | ".join(f"{v} / {base}" for v in variants)
        + (" | " + " | ".join(f"{v} ESS/s all / {peer}" for v in [base] + variants) if peer in libs else "")
        + " | max abs z / limit |",
        "|---|---|---|" + "---|" * len(variants) + ("---|" * (len(variants) + 1) if peer in libs else "") + "---|",
    ]
    summary = defaultdict(list)
    for target in targets:
        mine = [r for r in rows if r["target"] == target]
        base_rows = [r for r in mine if r["lib"] == base]
        if not base_rows:
            continue
        cells = [target[:40], str(len(base_rows)), f"{statistics.median(r[key] for r in base_rows):.2e}"]
        for v in variants:
            ratios = paired_ratios(rows, target, v, base, key)
            if ratios:
                med = statistics.median(ratios)
                summary[v].append(med)
                cells.append(f"{med:.2f} (min {min(ratios):.2f})")
            else:
                cells.append("")
        if peer in libs:
            for v in [base] + variants:
                ratios = paired_ratios(rows, target, v, peer, "ess_s_all")
                if ratios:
                    summary[(v, peer)].append(statistics.median(ratios))
                cells.append(f"{statistics.median(ratios):.2f}" if ratios else "")
        worst = max((r["z"] / r["z_limit"] for r in mine if "z_limit" in r), default=float("nan"))
        cells.append(f"{worst:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    med = ["**median over targets**", "", ""] + [
        f"{statistics.median(summary[v]):.2f} (min {min(summary[v]):.2f})" if summary[v] else "" for v in variants
    ]
    if peer in libs:
        med += [
            f"{statistics.median(summary[(v, peer)]):.2f} (min {min(summary[(v, peer)]):.2f})"
            if summary[(v, peer)]
            else ""
            for v in [base] + variants
        ]
    out.append("| " + " | ".join(med) + " | |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--base", default="mcgen")
    parser.add_argument("--peer", default="blackjax")
    parser.add_argument("--warmup", type=int, default=None, help="only runs with this many warmup steps")
    parser.add_argument(
        "--base-warmup", type=int, default=None, help="the base's runs with this many warmup steps (others: --warmup)"
    )
    parser.add_argument("--key", default="ess_grad_all", help="the figure compared (ess_grad: after warmup)")
    args = parser.parse_args(argv)
    if args.base_warmup is None:
        rows = load(args.paths, args.warmup)
    else:
        base_rows = [r for r in load(args.paths, args.base_warmup) if r["lib"] == args.base]
        rows = base_rows + [dict(r, lib=f"{r['lib']}@{args.warmup}") for r in load(args.paths, args.warmup)]
    print(tables(rows, args.base, args.peer, args.key))


if __name__ == "__main__":
    main()
