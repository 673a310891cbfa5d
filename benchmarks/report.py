"""results JSON -> Markdown report and PNG plots under docs/benchmarks/.

``python benchmarks/report.py [results.json]`` (run.py calls :func:`write`). Every figure is
the median over the timed repeats with [min–max]; each row also gives riffledb's ratio to
each peer (> 1: riffledb is better, whether the metric is a time or a rate).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOCS, REPO, RESULTS  # noqa: E402

ORDER = ("riffledb", "lancedb", "hf", "numpy")
LABEL = {"riffledb": "riffledb", "lancedb": "LanceDB", "hf": "HF datasets",
         "numpy": "numpy mmap"}


def _ok(runs):
    return [r for r in runs if isinstance(r, dict) and "error" not in r and not r.get("na")]


def _err(runs):
    for r in runs:
        if isinstance(r, dict) and "error" in r:
            return r["error"]
        if isinstance(r, dict) and r.get("na"):
            return "n/a"
    return None


def _stat(values):
    if not values:
        return None
    return (statistics.median(values), min(values), max(values))


def _fmt(x, unit=""):
    if x is None:
        return "–"
    if unit == "s":
        return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"
    if unit == "B":
        for u, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(x) >= f:
                return f"{x / f:.1f} {u}"
        return f"{x:.0f} B"
    if unit == "ms":
        return f"{x * 1000:.3g} ms"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.3g}"


def _cell(stat, unit=""):
    if stat is None:
        return "–"
    med, lo, hi = stat
    return f"**{_fmt(med, unit)}** [{_fmt(lo, unit)}–{_fmt(hi, unit)}]"


def _ratio(ours, theirs, higher_is_better):
    if ours is None or theirs is None or not ours[0] or not theirs[0]:
        return None
    return ours[0] / theirs[0] if higher_is_better else theirs[0] / ours[0]


def _table(title, rows, systems, unit, higher, note=""):
    """rows: list of (label, {system: stat or error string})."""
    peers = [s for s in systems if s != "riffledb"]
    head = ["", *(LABEL[s] for s in systems), *(f"riffledb ÷ {LABEL[p]}" for p in peers)]
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios = {}
    for label, cells in rows:
        out = [label]
        for s in systems:
            c = cells.get(s)
            out.append(c if isinstance(c, str) else _cell(c, unit))
        for p in peers:
            ours, theirs = cells.get("riffledb"), cells.get(p)
            r = None if isinstance(ours, str) or isinstance(theirs, str) else _ratio(
                ours, theirs, higher)
            ratios[(label, p)] = r
            out.append("–" if r is None else f"{r:.2f}×")
        lines.append("| " + " | ".join(out) + " |")
    return lines + [""], ratios


def _per_system(block, systems, value):
    """{system: stat or error} from {system: [runs]}."""
    cells = {}
    for s in systems:
        runs = block.get(s, [])
        ok = _ok(runs)
        if ok and len(ok) == len(runs):
            cells[s] = _stat([value(r) for r in ok])
        else:
            cells[s] = f"error: {_err(runs)}" if _err(runs) != "n/a" else "n/a"
            if ok:
                cells[s] = (f"{_cell(_stat([value(r) for r in ok]))} "
                            f"({len(runs) - len(ok)}/{len(runs)} failed: {_err(runs)})")
    return cells


def _plot(path, title, groups, systems, ylabel, log=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups) + 2), 3.6), dpi=80)
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        xs, med, lo, hi = [], [], [], []
        for j, (_, cells) in enumerate(groups):
            c = cells.get(s)
            if isinstance(c, tuple):
                xs.append(j + i * width)
                med.append(c[0])
                lo.append(c[0] - c[1])
                hi.append(c[2] - c[0])
        ax.bar(xs, med, width, yerr=[lo, hi], label=LABEL[s], capsize=2)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels([g for g, _ in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results_path: Path) -> Path:
    r = json.loads(Path(results_path).read_text())
    systems = [s for s in ORDER if s in r["systems"]]
    w = r["workloads"]
    m = r["machine"]
    quick = r["mode"] == "quick"
    suffix = "-quick" if quick else ""
    DOCS.mkdir(parents=True, exist_ok=True)
    md = [
        f"# riffledb end-to-end benchmarks{' (QUICK)' if quick else ''}",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"{(m.get('memory_bytes') or 0) / (1 << 30):.0f} GiB RAM, Python {m['python']}"
        " — shared with other jobs while running, so absolute numbers drift; the ratios "
        "come from the same interleaved run.",
        "",
        f"Run {r['started']}, {r['repeats']} timed repeats after a warm-up, "
        f"{r['seconds'] / 60:.1f} min. Data (seed-generated, hash "
        f"`{r['data_hash'][:12]}`): " + ", ".join(f"{k} {v:,} rows" for k, v in
                                                  r["rows"].items()) + ".",
        "",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        "",
        "Cells: **median** [min–max] over the timed repeats. Ratio columns: riffledb "
        "relative to the peer, > 1 means riffledb is better (faster, or higher rate).",
        "",
    ]
    ratios = {}
    stats = {}

    if "build" in w:
        rows = []
        mem_rows = []
        names = {"random": "split_random 80/10/10 + shuffle", "hash":
                 "split_hash(id) 8:1:1 + shuffle", "filter":
                 "filter `label % 10 != 0` + split_random + shuffle"}
        for v, block in w["build"].items():
            rows.append((names.get(v, v), _per_system(block, systems, lambda x: x["seconds"])))
            mem_rows.append((names.get(v, v), _per_system(block, systems,
                                                          lambda x: x["peak_delta"])))
        lines, rt = _table(f"1. Permutation build on `small` ({r['rows']['small']:,} rows)"
                           " — wall time", rows, systems, "s", False,
                           "LanceDB: its permutation builder; HF: `train_test_split` twice "
                           "+ `shuffle` (filter: batched `Dataset.filter`; no hash split); "
                           "numpy: `rng.permutation` + slicing (hash: splitmix64 buckets).")
        md += lines
        ratios.update({("build",) + k: v for k, v in rt.items()})
        stats["build"] = dict(rows)
        lines, _ = _table("1b. Permutation build — peak memory (VmHWM over the RSS before "
                          "the build, fresh process)", mem_rows, systems, "B", False)
        md += lines
        _plot(DOCS / f"build{suffix}.png", "Permutation build (lower is better)", rows,
              systems, "seconds")
        md += [f"![build](build{suffix}.png)", ""]

    if "take" in w:
        rows, lat_rows = [], []
        for key, block in w["take"].items():
            rows.append((key, _per_system(block, systems,
                                          lambda x: x["rows"] / x["seconds"])))
            lat = {}
            for s in systems:
                ok = _ok(block.get(s, []))
                allv = sorted(v for x in ok for v in x["latencies"])
                if allv:
                    p50 = allv[len(allv) // 2]
                    p99 = allv[min(len(allv) - 1, int(len(allv) * 0.99))]
                    lat[s] = f"{_fmt(p50, 'ms')} / {_fmt(p99, 'ms')}"
                else:
                    lat[s] = _err(block.get(s, [])) or "–"
            lat_rows.append((key, lat))
        lines, rt = _table(
            "2. Shuffled take, `__getitems__` through the shuffled train split — rows/s",
            rows, systems, "", True,
            "Key: table/format/batch size. `arrow`: the system's Arrow batch (HF "
            "`with_format('arrow')[idx]`, numpy: arrays from fancy indexing); `torch`: a "
            "dict of batch-first tensors (riffledb and LanceDB through the same "
            "`with_transform`, since LanceDB's `with_format('torch')` cannot convert "
            "fixed-size lists; HF `with_format('torch')[idx]`; numpy `torch.from_numpy`).")
        md += lines
        ratios.update({("take",) + k: v for k, v in rt.items()})
        stats["take"] = dict(rows)
        md += ["Latency per call, p50 / p99 (all timed calls):", "",
               "| | " + " | ".join(LABEL[s] for s in systems) + " |",
               "|" + "---|" * (len(systems) + 1)]
        md += ["| " + k + " | " + " | ".join(c.get(s, "–") for s in systems) + " |"
               for k, c in lat_rows]
        md.append("")
        _plot(DOCS / f"take{suffix}.png", "Shuffled take (rows/s, higher is better)", rows,
              systems, "rows/s", log=True)
        md += [f"![take](take{suffix}.png)", ""]

    if "loader" in w:
        rows, mem_rows = [], []
        for key, block in w["loader"].items():
            cells = _per_system(block, systems, lambda x: x["rows"] / x["seconds"])
            for s in systems:
                ok = _ok(block.get(s, []))
                if ok and not all(x["exactly_once"] for x in ok) and isinstance(
                        cells.get(s), tuple):
                    cells[s] = _cell(cells[s]) + " (NOT exactly once)"
            rows.append((key, cells))
            if "workers" in key and "0 workers" not in key:
                mem = {}
                for s in systems:
                    ws = [x for run in _ok(block.get(s, [])) for x in run["workers"]]
                    if ws:
                        mem[s] = (
                            f"{_fmt(statistics.median(x.get('VmHWM', 0) for x in ws), 'B')} / "
                            f"{_fmt(statistics.median(x.get('RssAnon', 0) for x in ws), 'B')} / "
                            f"{_fmt(statistics.median(x.get('Pss', 0) for x in ws), 'B')}")
                        stats.setdefault("worker_pss", {}).setdefault(key, {})[s] = (
                            statistics.median(x.get("Pss", 0) for x in ws))
                    else:
                        mem[s] = _err(block.get(s, [])) or "–"
                mem_rows.append((key, mem))
        lines, rt = _table(
            f"3. DataLoader epoch over the `vectors` train split "
            f"({r['split_lengths']['riffledb']['vectors']:,} rows), batch 256, "
            "shuffle=True — rows/s", rows, systems, "", True,
            "Every system's epoch is checked to return each row of its split exactly once. "
            "The epoch time includes starting the workers.")
        md += lines
        ratios.update({("loader",) + k: v for k, v in rt.items()})
        stats["loader"] = dict(rows)
        if mem_rows:
            md += ["Per-worker memory, peak RSS / anonymous RSS / PSS (median over workers "
                   "and epochs):", "", "| | " + " | ".join(LABEL[s] for s in systems) + " |",
                   "|" + "---|" * (len(systems) + 1)]
            md += ["| " + k + " | " + " | ".join(c.get(s, "–") for s in systems) + " |"
                   for k, c in mem_rows]
            md.append("")
        _plot(DOCS / f"loader{suffix}.png", "DataLoader epoch (rows/s, higher is better)",
              rows, systems, "rows/s", log=True)
        md += [f"![loader](loader{suffix}.png)", ""]

    if "pickle" in w:
        md += ["### 4. Pickled dataset size (what every spawn/forkserver worker receives)",
               "", "| system | dataset | size |", "|---|---|---|"]
        for s in systems:
            for name, v in (w["pickle"].get(s) or {}).items():
                md.append(f"| {LABEL[s]} | {name} | "
                          f"{_fmt(v['bytes'], 'B') if 'bytes' in v else v.get('error')} |")
        md += ["", "“as built”: the train split of the permutation `execute()` returns "
               "(a `memory://` table); “persisted”: the same permutation table stored in the "
               "database with `create_table`.", ""]

    if "startup" in w:
        rows = [
            ("fresh interpreter → first batch (wall)",
             _per_system(w["startup"], systems, lambda x: x["wall"])),
            ("  of which imports", _per_system(w["startup"], systems, lambda x: x["import"])),
            ("  of which open + permutation",
             _per_system(w["startup"], systems, lambda x: x["open"])),
            ("  of which first batch",
             _per_system(w["startup"], systems, lambda x: x["first_batch"])),
        ]
        lines, rt = _table("4b. Time to first batch from a fresh interpreter (`vectors`, "
                           "DataLoader, 0 workers)", rows, systems, "s", False)
        md += lines
        ratios.update({("startup",) + k: v for k, v in rt.items()})

    md += _targets(stats, ratios, w)
    out = DOCS / f"results{suffix}.md"
    out.write_text("\n".join(md) + "\n")
    print(f"wrote {out.relative_to(REPO)}", file=sys.stderr)
    return out


def _targets(stats, ratios, w):
    lines = ["## Targets", "", "| target | result | met? |", "|---|---|---|"]

    def row(name, value, ok):
        lines.append(f"| {name} | {value} | {'yes' if ok else '**no**'} |")

    r = ratios.get(("build", "split_random 80/10/10 + shuffle", "lancedb"))
    if r:
        row("permutation build faster than LanceDB", f"{r:.2f}× LanceDB's speed", r > 1)
    take = {k: v for k, v in ratios.items() if k[0] == "take" and k[2] == "numpy"
            and k[1].startswith("vectors") and v is not None}
    if take:
        worst = min(take.items(), key=lambda kv: kv[1])
        row("take within ~0.6× of the numpy memory map (vectors, every batch size/format)",
            f"worst {worst[1]:.2f}× at {worst[0][1]}"
            + (f" (short by {(0.6 - worst[1]) / 0.6:.0%})" if worst[1] < 0.6 else ""),
            worst[1] >= 0.6)
    lr = ratios.get(("loader", "0 workers", "lancedb"))
    if lr:
        row("DataLoader epoch ≥ 3× LanceDB (0 workers)", f"{lr:.2f}×"
            + (f" (short by {(3 - lr) / 3:.0%})" if lr < 3 else ""), lr >= 3)
    nr = ratios.get(("loader", "0 workers", "numpy"))
    if nr:
        row("DataLoader epoch within 20% of numpy (0 workers)", f"{nr:.2f}× numpy"
            + (f" ({1 - nr:.0%} slower)" if nr < 1 else ""), nr >= 0.8)
    pk = (w.get("pickle") or {}).get("riffledb") or {}
    for name, v in pk.items():
        if "bytes" in v:
            row(f"pickled permutation < 4 KiB ({name})", _fmt(v["bytes"], "B"),
                v["bytes"] < 4096)
        else:
            row(f"pickled permutation < 4 KiB ({name})", f"fails: {v.get('error')}", False)
    for key, per in (stats.get("worker_pss") or {}).items():
        if "riffledb" in per and "lancedb" in per:
            row(f"worker memory below LanceDB's (PSS, {key})",
                f"{_fmt(per['riffledb'], 'B')} vs {_fmt(per['lancedb'], 'B')}",
                per["riffledb"] < per["lancedb"])
        elif "lancedb" in per:
            row(f"worker memory below LanceDB's (PSS, {key})", "riffledb did not run", False)
    return lines + [""]


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    write(path)
