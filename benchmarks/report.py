"""results JSON -> Markdown report and PNG plots under docs/benchmarks/.

``python benchmarks/report.py [results.json]`` (run.py calls :func:`write`). Every
figure is the median over the timed repeats with [min–max]; each row also gives
riffledb's ratio to each peer (> 1: riffledb is better, whether the metric is a time or
a rate). The Targets table states issue 5's targets with the measured ratio.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOCS, REPO, RESULTS  # noqa: E402

ORDER = ("riffledb", "lancedb", "hf", "numpy")
LABEL = {
    "riffledb": "riffledb",
    "lancedb": "LanceDB",
    "hf": "HF datasets",
    "numpy": "numpy mmap",
}
OF = {"lancedb": "LanceDB's", "hf": "HF datasets'", "numpy": "numpy mmap's"}
BUILD_NAMES = {
    "random": "split_random 80/10/10 + shuffle",
    "hash": "split_hash(id) 8:1:1 + shuffle",
    "filter": "filter `label % 10 != 0` + split_random + shuffle",
}
# Build target against the numpy peer (issue 9; issue 5 asked for 1.5x).
BUILD_NUMPY_GOAL = 0.3


class Stat:
    """Median, min and max of a cell's timed repeats, and how many there were."""

    def __init__(self, values, expected: int):
        self.med = statistics.median(values)
        self.lo, self.hi = min(values), max(values)
        self.n, self.expected = len(values), expected
        self.note = ""  # e.g. "(1/5 failed: ...)"


def _ok(runs):
    return [
        r for r in runs if isinstance(r, dict) and "error" not in r and not r.get("na")
    ]


def _err(runs):
    for r in runs:
        if isinstance(r, dict) and "error" in r:
            text = r["error"].splitlines()[0]  # the first line; the JSON has the rest
            return text if len(text) <= 160 else text[:157] + "..."
        if isinstance(r, dict) and r.get("na"):
            return "n/a"
    return None


def _fmt(x, unit=""):
    if x is None:
        return "–"
    if unit == "s":
        if x < 0.01:
            return f"{x * 1000:.2g} ms"
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
    if isinstance(stat, str):
        return stat
    text = f"**{_fmt(stat.med, unit)}** [{_fmt(stat.lo, unit)}–{_fmt(stat.hi, unit)}]"
    if stat.n < stat.expected:
        text += f" n={stat.n}"
    return text + (f" {stat.note}" if stat.note else "")


def _ratio(ours, theirs, higher_is_better):
    if not isinstance(ours, Stat) or not isinstance(theirs, Stat):
        return None
    if not ours.med or not theirs.med:
        return None
    return ours.med / theirs.med if higher_is_better else theirs.med / ours.med


def _table(title, rows, systems, unit, higher, note=""):
    """rows: list of (label, {system: Stat or text}); returns (lines, ratios)."""
    peers = [s for s in systems if s != "riffledb"]
    head = ["", *(LABEL[s] for s in systems), *(f"riffledb ÷ {LABEL[p]}" for p in peers)]
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios = {}
    for label, cells in rows:
        out = [label] + [_cell(cells.get(s), unit) for s in systems]
        for p in peers:
            r = _ratio(cells.get("riffledb"), cells.get(p), higher)
            ratios[(label, p)] = r
            out.append("–" if r is None else f"{r:.2f}×")
        lines.append("| " + " | ".join(out) + " |")
    return lines + [""], ratios


def _per_system(block, systems, value, expected):
    """{system: Stat or text} from {system: [runs]}; failed runs are noted in the cell
    (the ratios use the runs that worked)."""
    cells = {}
    for s in systems:
        runs = block.get(s, [])
        ok = _ok(runs)
        err = _err(runs)
        if not runs:
            cells[s] = "–"
        elif ok:
            cells[s] = Stat([value(r) for r in ok], expected)
            if len(ok) < len(runs):
                cells[s].note = f"({len(runs) - len(ok)}/{len(runs)} failed: {err})"
        else:
            cells[s] = "n/a" if err == "n/a" else f"error: {err}"
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
            if isinstance(c, Stat):
                xs.append(j + i * width)
                med.append(c.med)
                lo.append(c.med - c.lo)
                hi.append(c.hi - c.med)
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


def _header(r, quick):
    m = r["machine"]
    cfg = r.get("config", {})
    phases = r.get("phases") or {}
    md = [
        f"# riffledb end-to-end benchmarks{' (QUICK)' if quick else ''}",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"{(m.get('memory_bytes') or 0) / (1 << 30):.0f} GiB RAM, Python {m['python']}"
        " — shared with other jobs while running, so absolute numbers drift; the ratios "
        "come from the same interleaved run.",
        "",
        f"Run {r['started']}, one warm-up and {r['repeats']} timed repeats per cell, "
        f"{r['seconds'] / 60:.1f} min"
        + (
            " (" + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + ")"
            if phases
            else ""
        )
        + f". Data (seed-generated, hash `{r['data_hash'][:12]}`): "
        + ", ".join(f"{k} {v:,} rows" for k, v in r["rows"].items())
        + ".",
        "",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        "",
        "Cells: **median** [min–max] over the timed repeats. Ratio columns: riffledb "
        "relative to the peer, > 1 means riffledb is better (faster, or higher rate).",
        "",
    ]
    budget = cfg.get("peer_budget")
    if budget:
        skipped = r.get("budget_skipped") or {}
        md += [
            "**Time budget:** a peer (LanceDB, HF datasets) runs at least "
            f"{cfg.get('peer_min_repeats', 2)} timed repeats of a cell, then another "
            f"only while its timed seconds in that cell stay within {budget:.0f} s; "
            "riffledb and numpy run every repeat. Cells with fewer repeats show `n=`."
            + (
                " Repeats skipped: "
                + ", ".join(f"{k} ×{v}" for k, v in sorted(skipped.items()))
                + "."
                if skipped
                else " No repeat was skipped."
            ),
            "",
        ]
    return md


def write(results_path: Path) -> Path:
    r = json.loads(Path(results_path).read_text())
    systems = [s for s in ORDER if s in r["systems"]]
    w = r["workloads"]
    n_rep = r["repeats"]
    quick = r["mode"] == "quick"
    suffix = "-quick" if quick else ""
    out_dir = DOCS
    if Path(results_path).name.startswith("partial-"):
        # a subset of the workloads or systems: next to its JSON, never over the report
        out_dir, suffix = RESULTS, "-partial" + suffix
    out_dir.mkdir(parents=True, exist_ok=True)
    md = _header(r, quick)
    ratios: dict = {}
    stats: dict = {}

    def per(block, value):
        return _per_system(block, systems, value, n_rep)

    if "build" in w:
        variants = list(w["build"])
        rows = [
            (BUILD_NAMES.get(v, v), per(w["build"][v], lambda x: x["seconds"]))
            for v in variants
        ]
        mem = [
            (BUILD_NAMES.get(v, v), per(w["build"][v], lambda x: x["peak_delta"]))
            for v in variants
        ]
        lines, rt = _table(
            f"1. Permutation build on `small` ({r['rows']['small']:,} rows) — wall time",
            rows,
            systems,
            "s",
            False,
            "LanceDB: its permutation builder; HF: `train_test_split` twice + `shuffle` "
            "(filter: batched `Dataset.filter`; datasets has no hash split); numpy: "
            "`rng.permutation` + slicing (hash: splitmix64 buckets). Each build runs in "
            "a child forked from the system's idle worker (modules imported, nothing "
            "opened): a fresh process per measurement.",
        )
        md += lines
        ratios.update({("build",) + k: v for k, v in rt.items()})
        stats["build"] = {v: cells for v, (_, cells) in zip(variants, rows, strict=True)}
        lines, _ = _table(
            "1b. Permutation build — peak memory (VmHWM over the RSS before the build, "
            "reset through /proc/self/clear_refs)",
            mem,
            systems,
            "B",
            False,
        )
        md += lines
        _plot(
            out_dir / f"build{suffix}.png",
            "Permutation build (lower is better)",
            rows,
            systems,
            "seconds",
        )
        md += [f"![build](build{suffix}.png)", ""]

    if "take" in w:
        rows, lat_rows = [], []
        for key, block in w["take"].items():
            rows.append((key, per(block, lambda x: x["rows"] / x["seconds"])))
            lat = {}
            for s in systems:
                allv = sorted(v for x in _ok(block.get(s, [])) for v in x["latencies"])
                if allv:
                    p50 = allv[len(allv) // 2]
                    p99 = allv[min(len(allv) - 1, int(len(allv) * 0.99))]
                    lat[s] = f"{_fmt(p50, 'ms')} / {_fmt(p99, 'ms')}"
                else:
                    lat[s] = _err(block.get(s, [])) or "–"
            lat_rows.append((key, lat))
        tb = r.get("torch_batch") or {}
        torch_note = ""
        if tb:
            torch_note = " The `torch` take of each system, 4 rows: " + "; ".join(
                f"{LABEL[s]} through `{tb[s].get('via', '?')}`: "
                + ", ".join(f"{k} {v}" for k, v in tb[s].items() if k != "via")
                for s in systems
                if tb.get(s)
            )
        lines, rt = _table(
            "2. Shuffled take, `__getitems__` through the shuffled train split — rows/s",
            rows,
            systems,
            "",
            True,
            "Key: table/format/batch size; offsets drawn from the same seed for every "
            "system. `arrow`: the system's Arrow batch (riffledb and LanceDB "
            "`with_format('arrow')`; HF `with_format('arrow')[idx]`, its fastest "
            "format, about 2× its `numpy` format on vectors; numpy: the arrays of fancy "
            "indexing). `torch`: the same dict of batch-first tensors from every system "
            "(LanceDB's `with_format('torch')` cannot convert fixed-size lists, so "
            "LanceDB goes through the harness's `common.arrow_to_torch`). `views` "
            "(blobs): riffledb's take with `with_binary_views()` (`binary_view` column "
            "referencing the mapped files, no value copied); the other systems take "
            "their `arrow` batch again (HF's is already zero-copy slices of its map). "
            "`+read`: the take, then one byte of every 4 KiB page of every image read "
            "(`common.read_blob_pages`), the same work for every system." + torch_note,
        )
        md += lines
        ratios.update({("take",) + k: v for k, v in rt.items()})
        stats["take"] = dict(rows)
        md += [
            "Latency per call, p50 / p99 (all timed calls):",
            "",
            "| | " + " | ".join(LABEL[s] for s in systems) + " |",
            "|" + "---|" * (len(systems) + 1),
        ]
        md += [
            "| " + k + " | " + " | ".join(c.get(s, "–") for s in systems) + " |"
            for k, c in lat_rows
        ]
        md.append("")
        _plot(
            out_dir / f"take{suffix}.png",
            "Shuffled take (rows/s, higher is better)",
            rows,
            systems,
            "rows/s",
            log=True,
        )
        md += [f"![take](take{suffix}.png)", ""]

    if "loader" in w:
        md += _loader(r, w, systems, per, ratios, stats, out_dir, suffix)

    if "loader" in w or "pickle" in w:
        md += _worker_cost(r, w, systems, stats)

    if "startup" in w:
        s_block = w["startup"]
        rows = [
            ("fresh interpreter → first batch (wall)", per(s_block, lambda x: x["wall"])),
            ("  of which imports", per(s_block, lambda x: x["import"])),
            ("  of which open + permutation", per(s_block, lambda x: x["open"])),
            ("  of which first batch", per(s_block, lambda x: x["first_batch"])),
        ]
        lines, rt = _table(
            "4b. Time to first batch from a fresh interpreter (`vectors`, DataLoader, "
            "0 workers)",
            rows,
            systems,
            "s",
            False,
        )
        md += lines
        ratios.update({("startup",) + k: v for k, v in rt.items()})

    if "formats" in w:
        rows = [
            (fmt, per(block, lambda x: x["seconds"] / len(x["latencies"])))
            for fmt, block in w["formats"].items()
        ]
        lines, _ = _table(
            "5. Output formats: one 1024-row batch of `vectors` (random rows of the "
            "shuffled train split) — time per batch",
            rows,
            systems,
            "s",
            False,
            "`python`: one dict per row (riffledb/LanceDB `with_format('python')`, HF "
            "`with_format(None)` columns turned into rows, numpy `.tolist()`); `numpy`: "
            "each system's numpy format (riffledb: one 2-D array of 514 features; "
            "LanceDB: its own; HF: a dict of arrays; numpy: the fancy-indexed arrays); "
            "`pandas`: a DataFrame; `arrow` and `torch` as in 2.",
        )
        md += lines

    md += _targets(r, stats, ratios, w)
    out = out_dir / f"results{suffix}.md"
    out.write_text("\n".join(md) + "\n")
    print(f"wrote {out.relative_to(REPO)}", file=sys.stderr)
    return out


def _loader(r, w, systems, per, ratios, stats, out_dir, suffix):
    rows, mem_rows = [], []
    for key, block in w["loader"].items():
        cells = per(block, lambda x: x["rows"] / x["seconds"])
        for s in systems:
            ok = _ok(block.get(s, []))
            if ok and not all(x.get("exactly_once") for x in ok):
                bad = sum(not x.get("exactly_once") for x in ok)
                cells[s] = f"{_cell(cells[s])} (NOT exactly once in {bad}/{len(ok)})"
        rows.append((key, cells))
        stats.setdefault("epoch_seconds", {})[key] = per(block, lambda x: x["seconds"])
        if not key.startswith("0 "):
            mem = {}
            for s in systems:
                ws = [x for run in _ok(block.get(s, [])) for x in run["workers"]]
                if ws:
                    hwm = statistics.median(x.get("VmHWM", 0) for x in ws)
                    anon = statistics.median(x.get("RssAnon", 0) for x in ws)
                    pss = statistics.median(x.get("Pss", 0) for x in ws)
                    mem[s] = (
                        f"{_fmt(hwm, 'B')} / **{_fmt(anon, 'B')}** / {_fmt(pss, 'B')}"
                    )
                    pss_anon = None
                    if all("Pss_Anon" in x for x in ws):  # older results lack the split
                        pss_anon = statistics.median(x["Pss_Anon"] for x in ws)
                        pss_file = statistics.median(x.get("Pss_File", 0) for x in ws)
                        mem[s] += f" ({_fmt(pss_anon, 'B')} + {_fmt(pss_file, 'B')})"
                    stats.setdefault("worker_anon", {}).setdefault(key, {})[s] = (
                        anon,
                        pss,
                    )
                else:
                    mem[s] = _err(block.get(s, [])) or "–"
            mem_rows.append((key, mem))
    timed = [x for b in w["loader"].values() for runs in b.values() for x in _ok(runs)]
    checked = all(x.get("exactly_once") for x in timed)
    split = r["split_lengths"]["riffledb"]["vectors"]
    lines, rt = _table(
        f"3. DataLoader epoch over the `vectors` train split ({split:,} rows), "
        "batch 256, shuffle=True — rows/s",
        rows,
        systems,
        "",
        True,
        "Every timed epoch is checked to return each row of the system's split exactly "
        "once"
        + (" (all passed)." if checked else " (failures are marked in the cells).")
        + " The epoch time includes starting the workers. Warm-up: each system's "
        "`vectors` files read once, then 32 batches per configuration"
        + ("" if r["config"].get("warmup_spawn", True) else " (fork and 0 workers)")
        + ".",
    )
    ratios.update({("loader",) + k: v for k, v in rt.items()})
    stats["loader"] = dict(rows)
    md = lines
    if mem_rows:
        md += [
            "Per-worker memory, peak RSS / **anonymous RSS** (`RssAnon`: the worker's "
            "own memory, the figure compared) / PSS (its anonymous + file-backed parts), "
            "median over workers and epochs of each worker's peak "
            "(sampled from /proc every 32 batches and at the last batch). Data read "
            "through a memory map (riffledb, HF, numpy) is page cache that every mapping "
            "process shares; PSS charges each worker its share of the pages it touched, "
            "in `Pss_File`. Data read with `pread` into buffers (LanceDB) is anonymous "
            "memory freed after each batch.",
            "",
            "| | " + " | ".join(LABEL[s] for s in systems) + " |",
            "|" + "---|" * (len(systems) + 1),
        ]
        md += [
            "| " + k + " | " + " | ".join(c.get(s, "–") for s in systems) + " |"
            for k, c in mem_rows
        ]
        md.append("")
    _plot(
        out_dir / f"loader{suffix}.png",
        "DataLoader epoch (rows/s, higher is better)",
        rows,
        systems,
        "rows/s",
        log=True,
    )
    md += [f"![loader](loader{suffix}.png)", ""]
    return md


def _worker_cost(r, w, systems, stats):
    """Workload 4: pickled dataset size, worker start time, worker PSS."""
    n_rep = r["repeats"]
    pk = w.get("pickle") or {}
    rows = []
    names = sorted({n for s in systems for n in (pk.get(s) or {})})
    for name in names:
        cells = {}
        for s in systems:
            v = (pk.get(s) or {}).get(name)
            if v is None:
                cells[s] = "–"
            elif "bytes" in v:
                cells[s] = Stat([v["bytes"]], 1)
            else:
                cells[s] = f"error: {v.get('error')}"
        rows.append((f"pickled dataset ({name})", cells, "B"))
    for key, block in (w.get("loader") or {}).items():
        if key.startswith("0 "):
            continue
        starts, anon, pss = {}, {}, {}
        for s in systems:
            ok = _ok(block.get(s, []))
            values = [t for x in ok for t in x.get("worker_start", [])]
            starts[s] = Stat(values, n_rep * 2) if values else "–"
            firsts = [x["first_batch"] for x in ok if "first_batch" in x]
            if firsts:
                stats.setdefault("first_batch", {}).setdefault(key, {})[s] = Stat(
                    firsts, n_rep
                )
            ws = [y for run in ok for y in run["workers"]]
            a = [x.get("RssAnon", 0) for x in ws]
            anon[s] = Stat(a, len(a)) if a else "–"
            p = [x.get("Pss", 0) for x in ws]
            pss[s] = Stat(p, len(p)) if p else "–"
        rows.append((f"worker start, {key}", starts, "s"))
        rows.append(
            (f"first batch, {key}", stats.get("first_batch", {}).get(key, {}), "s")
        )
        rows.append((f"worker anonymous RSS, {key}", anon, "B"))
        rows.append((f"worker PSS, {key}", pss, "B"))
    if not rows:
        return []
    peers = [s for s in systems if s != "riffledb"]
    head = ["", *(LABEL[s] for s in systems), *(f"riffledb ÷ {LABEL[p]}" for p in peers)]
    md = [
        "### 4. Per-worker cost: pickled dataset, worker start, worker memory",
        "",
        "Pickled dataset: `len(pickle.dumps(ds))` of the DataLoader's dataset, what "
        "every spawn/forkserver worker receives (“as built”: the train split of the "
        "permutation `execute()` returns; “persisted”: the same permutation table stored "
        "in the database with `create_table`). Worker "
        "start: from `iter(loader)` to the worker's `worker_init_fn` (interpreter, "
        "imports and unpickling for spawn), median [min–max] over every worker of every "
        "timed epoch. First batch: from `iter(loader)` to the first batch in the main "
        "process. Worker anonymous RSS: `RssAnon` of `/proc/PID/status` (the worker's "
        "own memory, the figure the Targets compare); worker PSS: `Pss` of "
        "`/proc/PID/smaps_rollup` (also the data's page cache shared among the processes "
        "that map it); each the per-worker peak of the samples, median [min–max] over "
        "workers and epochs.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, cells, unit in rows:
        out = [label]
        for s in systems:
            c = cells.get(s, "–")
            if isinstance(c, Stat) and c.lo == c.hi:
                out.append(f"**{_fmt(c.med, unit)}**")
            else:
                out.append(_cell(c, unit) if isinstance(c, Stat) else str(c))
        for p in peers:
            ratio = _ratio(cells.get("riffledb"), cells.get(p), False)
            out.append("–" if ratio is None else f"{ratio:.2f}×")
        md.append("| " + " | ".join(out) + " |")
    return md + [""]


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1%}"


def _times(x: float) -> str:
    return f"{x:.2f}×" if x >= 1.01 else f"{x:.3f}×"


def _targets(r, stats, ratios, w):
    """Issue 5's targets, each with the measured ratio, whether it is met and, if not,
    by how much it is missed."""
    lines = [
        "## Targets",
        "",
        "Issues 5 and 9's targets, from the medians of this run. “Short by”: how far the "
        "measured ratio is from the target, and the speed-up riffledb needs to meet it.",
        "",
        "| target | measured | met? | missed by |",
        "|---|---|---|---|",
    ]

    def row(name, value, ok, missed=""):
        if ok is None:
            lines.append(f"| {name} | {value} | – | not measured |")
        else:
            lines.append(
                f"| {name} | {value} | {'yes' if ok else '**no**'} | "
                f"{'' if ok else missed} |"
            )

    def at_least(name, ratio, goal, what, failed=None):
        """ratio: riffledb's advantage (> 1 better); the target: ratio >= goal."""
        if ratio is None:
            if failed:
                lines.append(f"| {name} | – | – | not measurable: {failed} |")
            else:
                row(name, "–", None)
            return
        row(
            name,
            f"{ratio:.2f}× {what}",
            ratio >= goal,
            f"{_pct((goal - ratio) / goal)} short of {goal:g}× (riffledb needs to be "
            f"{_times(goal / ratio)} faster)",
        )

    build = stats.get("build") or {}
    for variant, cells in build.items():
        label = BUILD_NAMES.get(variant, variant)
        theirs = cells.get("lancedb")
        at_least(
            f"Build (1) {label}: at least 10× faster than LanceDB",
            ratios.get(("build", label, "lancedb")),
            10,
            "LanceDB's time ÷ riffledb's",
            failed=f"LanceDB {theirs}" if isinstance(theirs, str) else None,
        )
        ours, numpy = cells.get("riffledb"), cells.get("numpy")
        goal = BUILD_NUMPY_GOAL
        if isinstance(ours, Stat) and isinstance(numpy, Stat) and numpy.med:
            t = ours.med / numpy.med
            row(
                f"Build (1) {label}: at most {goal:g}× numpy's time",
                f"{t:.2f}× numpy's time",
                t <= goal,
                f"{_pct((t - goal) / goal)} over {goal:g}× (riffledb needs to be "
                f"{_times(t / goal)} faster)",
            )
        else:
            row(f"Build (1) {label}: at most {goal:g}× numpy's time", "–", None)

    take_keys = [k for k in (stats.get("take") or {}) if k.endswith("/256")]
    for key in take_keys:
        for peer, goal in (("lancedb", 5), ("hf", 2), ("numpy", 0.6)):
            at_least(
                f"Take (2) {key}: at least {goal:g}× {LABEL[peer]}",
                ratios.get(("take", key, peer)),
                goal,
                f"{OF[peer]} rows/s",
            )

    for key in stats.get("loader") or {}:
        at_least(
            f"DataLoader epoch (3), {key}: at least 3× LanceDB",
            ratios.get(("loader", key, "lancedb")),
            3,
            "LanceDB's rows/s",
        )
    epoch = (stats.get("epoch_seconds") or {}).get("0 workers") or {}
    ours, numpy = epoch.get("riffledb"), epoch.get("numpy")
    if isinstance(ours, Stat) and isinstance(numpy, Stat) and numpy.med:
        t = ours.med / numpy.med
        row(
            "DataLoader epoch (3), 0 workers: within 20% of numpy (epoch time ≤ 1.2× "
            "numpy's)",
            f"{t:.2f}× numpy's epoch time",
            t <= 1.2,
            f"{_pct((t - 1.2) / 1.2)} over 1.2× (riffledb needs to be "
            f"{_times(t / 1.2)} faster)",
        )
    elif "loader" in w:
        row("DataLoader epoch (3), 0 workers: within 20% of numpy", "–", None)

    pk = (w.get("pickle") or {}).get("riffledb") or {}
    for name, v in pk.items():
        label = f"Pickled permutation (4, {name}) under 4 KiB"
        if "bytes" in v:
            b = v["bytes"]
            row(label, _fmt(b, "B"), b < 4096, f"{b / 4096:.1f}× the limit")
        else:
            row(label, f"fails: {v.get('error')}", False, "does not pickle")
    # Anonymous RSS is what a worker costs the machine: PSS also charges it a share of
    # the page cache of the memory-mapped data it read, which LanceDB's pread does not
    # keep mapped. PSS stays beside it as information.
    for key, per in (stats.get("worker_anon") or {}).items():
        label = f"Worker memory (4, anonymous RSS), {key}: below LanceDB's"
        if "riffledb" in per and "lancedb" in per:
            (ours, ours_pss), (theirs, theirs_pss) = per["riffledb"], per["lancedb"]
            row(
                label,
                f"{_fmt(ours, 'B')} vs {_fmt(theirs, 'B')} (PSS {_fmt(ours_pss, 'B')} "
                f"vs {_fmt(theirs_pss, 'B')})",
                ours < theirs,
                f"{_fmt(ours - theirs, 'B')} more ({ours / theirs:.2f}×)",
            )
        else:
            row(label, "–", None)
    return lines + [""]


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    write(path)
