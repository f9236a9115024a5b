"""The summary: tables (also beside published numbers) and plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xmhash.report.aggregate import aggregate, random_ranking_precision
from xmhash.report.names import display_name
from xmhash.report.plots import curves, map_vs_bits, method_styles, training_curves
from xmhash.report.tables import (
    beside_published,
    format_std,
    to_markdown,
    write_tables,
)


def ours() -> pd.DataFrame:
    rows = []
    for method, base in (("ucch", 0.70), ("lsh", 0.55)):
        for seed in (0, 1):
            for task in ("i2t", "t2i"):
                rows.append(
                    dict(
                        dataset="flickr",
                        variant="",
                        method=method,
                        bits=32,
                        seed=seed,
                        task=task,
                        metric="map@all",
                        value=base + 0.01 * seed,
                    )
                )
    rows.append(
        dict(
            dataset="flickr",
            variant="",
            method="chance",
            bits=32,
            seed=0,
            task="chance",
            metric="map@all",
            value=0.5,
        )
    )
    return pd.DataFrame(rows)


def published() -> pd.DataFrame:
    rows = [
        ("A 2022", "VGG", "map@all", "mirflickr", m, t, b, v)
        for m, v in (("UCCH", 0.74), ("CVH", 0.62))
        for t in ("i2t", "t2i")
        for b in (32, 64)
    ]
    rows.append(("B 2023", "CLIP", "map@all", "mirflickr", "UCCH", "i2t", 32, 0.80))
    rows.append(("A 2022", "VGG", "map@all", "nuswide", "UCCH", "i2t", 32, 0.66))
    return pd.DataFrame(
        rows, columns=["source", "features", "metric", "dataset", "method", "task", "bits", "value"]
    )


def test_published_rows_sit_beside_ours_one_table_per_source():
    tables = beside_published(ours(), published(), "flickr", "mirflickr", "map@all")
    assert [title.split(" beside ")[1].split(" (")[0] for title, _ in tables] == [
        "A 2022",
        "B 2023",
    ]
    title, table = tables[0]
    # our method, then the paper's row of the same method (VTM-UCH == vtmuch spelling rule)
    assert list(table.index) == ["UCCH (ours)", "UCCH (published)", "LSH (ours)", "CVH (published)"]
    assert sorted({b for _, b in table.columns}) == [32, 64]  # union of both sides' bits
    assert table.loc["UCCH (ours)", ("i2t", 32)][0] == 0.705  # mean over seeds
    assert table.loc["UCCH (published)", ("t2i", 64)][0] == 0.74
    assert not isinstance(table.loc["UCCH (ours)", ("i2t", 64)], tuple)  # we ran no 64 bits
    assert "VGG" in title
    md = to_markdown(table, title)
    assert "| UCCH (published) | **0.740** |" in md  # the best of the column is bold


def test_no_published_rows_for_other_datasets_or_metrics():
    assert beside_published(ours(), published(), "flickr", "coco", "map@all") == []
    assert beside_published(ours(), published(), "flickr", "mirflickr", "map@50_djsrh") == []


# ---------------------------------------------------------------- summary of a grid

METHODS = ["lsh", "cca_itq", "djsrh", "jdsh", "dgcpn", "ucch", "ucmfh", "cirh", "daeh"]
METHODS += ["vtmuch", "enhash", "rshnl"]


def run_metrics(method: str, bits: int, seed: int, rng) -> dict:
    """A metrics.json as the evaluation stage writes it (values made up, shape real)."""
    level = 0.4 + 0.02 * METHODS.index(method) + 0.05 * np.log2(bits / 16)
    pr = np.linspace(level + 0.2, 0.25, bits + 1).tolist()  # radius = bits: all retrieved
    task = {
        "n_query": 100,
        "n_query_without_relevant": 20,
        "map@all": level + 0.01 * rng.standard_normal(),
        "map@all_tie_aware": level - 0.01,
        "p@n": {"10": level + 0.1, "100": level},
        "pr": {
            "radius": list(range(bits + 1)),
            "precision": pr,
            "recall": np.linspace(0, 1, bits + 1).tolist(),
        },
    }
    flagged = (method, bits, seed) == ("enhash", 16, 1)
    return {
        "dataset": "demo",
        "variant": "",
        "method": method,
        "bits": bits,
        "seed": seed,
        "tasks": {"i2t": task, "t2i": task},
        "chance": {"map@all_expected": 0.26, "random_codes": {"map@all": 0.27}},
        "warnings": ["collapsed query image codes: 3 distinct codes for 100 items"]
        if flagged
        else [],
        "collapsed": flagged,
    }


@pytest.fixture
def summary(tmp_path):
    rng = np.random.default_rng(0)
    runs = [run_metrics(m, b, s, rng) for m in METHODS for b in (16, 32, 64) for s in (0, 1)]
    paths = []
    for i, r in enumerate(runs):
        paths.append(tmp_path / f"m{i}.json")
        paths[-1].write_text(json.dumps(r))
    aggregate(paths, tmp_path / "metrics.tsv", tmp_path / "curves.tsv", tmp_path / "warnings.tsv")
    return tmp_path


def test_no_two_methods_share_colour_and_marker():
    # one file per method, as the registry has them (importing it would load torch)
    package = Path(__file__).resolve().parents[1] / "src" / "xmhash" / "methods"
    registry = sorted(p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "base"))
    assert len(registry) >= 11
    names = [*registry, *(f"extra{i}" for i in range(40))]
    styles = method_styles(names)
    pairs = [(s.color, s.marker) for s in styles.values()]
    assert len(set(pairs)) == len(pairs) == len(set(names))
    assert {m for m, s in styles.items() if s.highlight} == {"enhash", "vtmuch", "rshnl"}
    assert method_styles(names[:5]) == {m: styles[m] for m in names[:5]}  # stable


def test_random_ranking_precision_is_the_relevant_fraction():
    from xmhash.metrics import evaluate, random_codes

    rng = np.random.default_rng(1)
    ql, dl = rng.random((60, 5)) < 0.15, rng.random((400, 5)) < 0.15
    res = evaluate(random_codes(60, 16, 0), random_codes(400, 16, 1), ql, dl, 16, ks=(), pn=(10,))
    frac = (ql.astype(int) @ dl.T.astype(int) > 0).mean(axis=1)  # R / N per query
    pr, pn = random_ranking_precision(res)
    assert pr == pytest.approx(frac[frac > 0].mean())
    assert pn == pytest.approx(frac.mean())


def _legend_outside(fig) -> bool:
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    return all(legend.x0 >= ax.get_window_extent().x1 for ax in fig.axes)


def test_map_vs_bits_is_publishable(summary):
    out = [str(summary / "map.png"), str(summary / "map.pdf")]
    fig = map_vs_bits(str(summary / "metrics.tsv"), "demo", out, methods=METHODS)
    assert (summary / "map.png").read_bytes()[:4] == b"\x89PNG"
    pdf = (summary / "map.pdf").read_bytes()
    assert pdf[:4] == b"%PDF" and b"/Subtype /Image" not in pdf  # vectors, no raster inside
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "64"]
        labels = [line.get_label() for line in ax.get_lines()]
        assert "chance" in labels
    assert _legend_outside(fig)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        *map(display_name, METHODS),
        "chance",
    ]
    assert any("over 2 seeds" in t.get_text() for t in fig.texts)


@pytest.mark.parametrize("kind", ["pr", "pn"])
def test_curves_carry_the_random_ranking_level(summary, kind):
    fig = curves(
        str(summary / "curves.tsv"),
        str(summary / "metrics.tsv"),
        "demo",
        str(summary / f"{kind}.pdf"),
        kind=kind,
        methods=METHODS,
    )
    expected = 0.25 if kind == "pr" else 0.25 * 80 / 100  # 20 of 100 queries have none relevant
    for ax in fig.axes:
        (chance,) = [line for line in ax.get_lines() if line.get_label() == "chance"]
        assert chance.get_ydata()[0] == pytest.approx(expected)
    assert _legend_outside(fig)
    assert len(fig.legends[0].get_texts()) == len(METHODS) + 1


def test_training_curves_one_panel_per_trained_method(tmp_path):
    paths = []
    for method, epochs in (("djsrh", 3), ("enhash", 3), ("lsh", 0)):
        for seed in (0, 1):
            p = tmp_path / method / "32bits" / f"seed{seed}" / "train_log.csv"
            p.parent.mkdir(parents=True)
            rows = range(1, epochs + 1) if epochs else [0]
            p.write_text(
                "epoch,loss,quant,val_map,seconds\n"
                + "".join(f"{e},{3 - e + seed},{0.1 * e},{0.2 * e},1.0\n" for e in rows)
            )
            paths.append(str(p))
    fig = training_curves(paths, "demo", str(tmp_path / "t.png"), methods=METHODS)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["DJSRH", "ENHash"]
    loss = [line for line in fig.axes[0].get_lines() if line.get_label() == "loss"][0]
    assert list(loss.get_ydata()) == [2.5, 1.5, 0.5]  # mean over seeds
    assert any(ax.get_ylabel() == "validation mAP@all" for ax in fig.axes)
    assert any("closed form (no epochs): LSH" in t.get_text() for t in fig.texts)


def test_tables_state_seeds_and_never_print_a_zero_spread(summary):
    md = summary / "t.md"
    write_tables(
        str(summary / "metrics.tsv"),
        ["map@all", "p@100"],
        str(md),
        str(summary / "t.tex"),
        str(summary / "t.html"),
        methods=METHODS,
    )
    text = md.read_text()
    assert "demo: mAP@all, mean ± std over 2 seeds" in text
    assert "± 0.000" not in text and "$\\pm$ 0.000" not in (summary / "t.tex").read_text()
    assert "| chance | 0.260 |" in text  # expected mAP@all of a random ranking
    assert "| chance | 0.200 |" in text  # expected P@100 of a random ranking


def test_cells_show_spread_only_from_two_seeds_and_flag_odd_counts():
    table = pd.DataFrame(
        {("i2t", 16): [(0.5, 0.0001, 2), (0.6, float("nan"), 1), (0.3, float("nan"), 0)]},
        index=["a", "b", "chance"],
    )
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    md = to_markdown(table, "t")
    assert "| a | 0.500 ± <0.001 |" in md
    assert "| b | **0.600** (n=1) |" in md
    # one rule in every table: three decimals, as the means
    assert format_std(0.0437) == "0.044" and format_std(0.00437) == "0.004"
    assert format_std(0.0096) == format_std(0.0104) == "0.010"


def test_runtime_table_per_rule_and_method(tmp_path):
    from xmhash.report.runs import read_benchmarks, runtime_table, write_runtime

    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"train": [], "features": []}
    for method, bits, wall in (("lsh", 16, 2.0), ("enhash", 16, 30.0), ("enhash", 32, 50.0)):
        p = tmp_path / f"results/benchmarks/demo/{method}/{bits}bits/seed0/train.tsv"
        p.parent.mkdir(parents=True)
        p.write_text(head + f"{wall}\t0:00:{int(wall)}\t{wall * 10}\t1\t1\t1\t0\t0\t90\t{wall}\n")
        files["train"].append(str(p))
    p = tmp_path / "results/benchmarks/demo/features/synthetic.tsv"
    p.parent.mkdir(parents=True)
    p.write_text(head + "4.0\t0:00:04\t300\t1\t1\t1\t0\t0\t90\t3.0\n")
    files["features"].append(str(p))
    table = runtime_table(read_benchmarks(files)).set_index(["rule", "method"])
    assert table.loc[("train", "enhash"), "jobs"] == 2
    assert table.loc[("train", "enhash"), "median s"] == 40.0
    assert table.loc[("train", "enhash"), "peak RSS MB"] == 500.0
    assert table.loc[("features", ""), "max s"] == 4.0
    assert table.loc[("total", ""), "total min"] == pytest.approx(86 / 60)
    write_runtime(files, str(tmp_path / "r.md"), str(tmp_path / "r.html"))
    assert "| train | enhash | 2 | 40 | 50 | " in (tmp_path / "r.md").read_text()


def test_graph_statistics_table(tmp_path):
    from xmhash.report.runs import graph_table, write_graph_stats

    p = tmp_path / "results/demo/graph/synthetic/knn/seed1.json"
    p.parent.mkdir(parents=True)
    p.write_text(
        json.dumps(
            {
                "kind": "knn",
                "nodes": 100,
                "edges": 700,
                "communities": 9,
                "largest": 30,
                "modularity": 0.61,
                "diagnostic_nmi": 0.5,
                "seconds": {"total": 1.5},
            }
        )
    )
    row = graph_table([str(p)]).iloc[0]
    assert (row["dataset"], row["encoder"], row["kind"], row["seed"]) == (
        "demo",
        "synthetic",
        "knn",
        1,
    )
    assert (row["communities"], row["modularity"], row["seconds"]) == (9, 0.61, 1.5)
    write_graph_stats([], str(tmp_path / "g.md"), str(tmp_path / "g.html"))
    assert "|" not in (tmp_path / "g.md").read_text()  # no graph: a sentence, no empty table


def test_every_metric_of_the_evaluation_reaches_metrics_tsv(tmp_path):
    from xmhash.metrics import evaluate, random_codes

    rng = np.random.default_rng(2)
    ql, dl = rng.random((40, 4)) < 0.3, rng.random((200, 4)) < 0.3
    task = evaluate(random_codes(40, 16, 0), random_codes(200, 16, 1), ql, dl, 16, ks=(10,))
    run = {"dataset": "d", "method": "lsh", "bits": 16, "seed": 0, "tasks": {"i2t": task}}
    (tmp_path / "m.json").write_text(json.dumps(run))
    aggregate([tmp_path / "m.json"], tmp_path / "metrics.tsv", tmp_path / "curves.tsv")
    got = set(pd.read_csv(tmp_path / "metrics.tsv", sep="\t")["metric"])
    scalars = {k for k, v in task.items() if not isinstance(v, dict)}
    assert {"map@all", "map@all_tie_aware", "map@10_djsrh", "n_query"} <= scalars
    assert scalars | {f"p@{n}" for n in task["p@n"]} <= got
    run["tasks"]["i2t"]["ndcg"] = [0.5, 0.4]  # a new metric of unknown shape: an error
    (tmp_path / "m.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match="'ndcg'"):
        aggregate([tmp_path / "m.json"], tmp_path / "x.tsv", tmp_path / "y.tsv")


def test_flagged_runs_are_marked_in_every_table_format(summary):
    outs = [str(summary / f"t.{ext}") for ext in ("md", "tex", "html")]
    write_tables(
        str(summary / "metrics.tsv"),
        ["map@all"],
        *outs,
        methods=METHODS,
        warnings_tsv=str(summary / "warnings.tsv"),
    )
    md, tex, html = (Path(p).read_text() for p in outs)
    warning = "collapsed query image codes: 3 distinct codes for 100 items"
    row = next(line for line in md.splitlines() if line.startswith("| ENHash |"))
    assert row.split(" | ")[1].endswith("[a]")  # I→T 16 bits: the flagged run's cell
    assert "[a]" not in row.split(" | ")[2]  # 32 bits: no flagged run
    assert f"- [a] ENHash, 16 bits, seed 1: {warning}" in md
    assert "$^{a}$" in tex and warning in tex
    assert "<sup class='flag'>a</sup>" in html and warning in html
    assert md.count("[a]") == 3  # I→T and T→I cells (codes collapse both tasks), the note


def test_a_warning_naming_a_task_marks_that_task_only():
    from xmhash.report.tables import run_notes

    warnings = pd.DataFrame(
        [("d", "", "lsh", 16, 0, "t2i mAP@all 0.250 is at chance (expected random 0.251)")],
        columns=["dataset", "variant", "method", "bits", "seed", "warning"],
    )
    assert set(run_notes(warnings, "d", "")) == {("lsh", "t2i", 16)}
    assert run_notes(warnings, "d", "noise-sym0.5") == {}


def test_tie_aware_map_is_a_table_of_its_own(summary):
    outs = [str(summary / f"t.{ext}") for ext in ("md", "tex", "html")]
    write_tables(str(summary / "metrics.tsv"), ["map@all", "map@all_tie_aware"], *outs)
    md = Path(outs[0]).read_text()
    assert "### demo: mAP@all, mean" in md and "### demo: mAP@all (tie-aware), mean" in md


def test_every_registered_method_has_a_display_name():
    from xmhash.report.names import DISPLAY_NAMES

    package = Path(__file__).resolve().parents[1] / "src" / "xmhash" / "methods"
    names = {
        m
        for p in package.glob("*.py")
        for m in re.findall(r'^    name = "(\w+)"', p.read_text(), re.M)
    }
    assert len(names) >= 15 and names <= set(DISPLAY_NAMES)
    assert display_name("cca_itq") == "CCA-ITQ" and display_name("vtmuch") == "VTM-UCH"
    assert display_name("enhash_nonotebook") == "ENHash (nonotebook)"


@pytest.mark.parametrize("kind", ["pr", "pn"])
def test_curves_at_every_code_length_with_seed_bands(summary, kind):
    fig = curves(
        str(summary / "curves.tsv"),
        str(summary / "metrics.tsv"),
        "demo",
        str(summary / f"{kind}.pdf"),
        kind=kind,
        methods=METHODS[:3],
    )
    titles = {ax.get_title() for ax in fig.axes}
    assert titles == {f"demo {t}, {b} bits" for t in ("I→T", "T→I") for b in (16, 32, 64)}
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.collections) == 3  # one ± std band per method (2 seeds)


def test_every_plot_labels_its_axes_and_says_which_methods_are_the_papers(summary, tmp_path):
    p = tmp_path / "djsrh" / "32bits" / "seed0" / "train_log.csv"
    p.parent.mkdir(parents=True)
    p.write_text("epoch,loss,quant\n1,2.0,0.5\n2,1.0,0.4\n")
    figs = [
        map_vs_bits(str(summary / "metrics.tsv"), "demo", str(tmp_path / "m.png")),
        training_curves([str(p)], "demo", str(tmp_path / "t.png")),
    ]
    assert all(ax.get_xlabel() for fig in figs for ax in fig.axes if ax.axison)
    assert figs[0].axes[0].get_ylabel() == "mAP@all"  # the panels beside share it
    assert all(ax.get_ylabel() for ax in figs[1].axes if ax.axison)
    legend = figs[0].legends[0]
    assert "papers xmhash reproduces" in legend.get_title().get_text()
    bold = {t.get_text() for t in legend.get_texts() if t.get_fontweight() == "bold"}
    assert bold == {"VTM-UCH", "ENHash", "RSHNL"}
