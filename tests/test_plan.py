"""xmhash.plan: the workflow's config checks, code fingerprints and noise tags, without
Snakemake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from xmhash import plan

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


# ---------------------------------------------------------------- config checks


def test_the_default_config_is_valid_and_gets_the_schema_defaults():
    cfg = default_config()
    del cfg["training"]["val_every"]
    plan.validate_config(cfg, SCHEMA)
    assert cfg["training"]["val_every"] == 1


@pytest.mark.parametrize("key", ["bits", "seeds"])
def test_float_bits_and_seeds_are_rejected(key):
    cfg = default_config()
    cfg["run"][key] = [16.0]
    with pytest.raises(plan.ConfigError, match=rf"run\.{key}\[0\]: 16\.0 is not of type 'integer'"):
        plan.validate_config(cfg, SCHEMA)


def test_a_config_error_is_a_few_lines_naming_key_value_and_fix():
    cfg = default_config()
    cfg["methods"]["cca_itq"]["regg"] = 1.0
    with pytest.raises(plan.ConfigError) as err:
        plan.validate_config(cfg, SCHEMA)
    text = str(err.value)
    assert "methods.cca_itq" in text and "'regg' was unexpected" in text
    assert "config.yaml" in text and len(text.splitlines()) <= 4, text


def test_names_without_a_block_are_refused():
    with pytest.raises(plan.ConfigError, match=r"run.methods lists \['nope'\].*defined: \['lsh'\]"):
        plan.check_names(["lsh", "nope"], ["lsh"], "run.methods", "methods")
    plan.check_names(["lsh"], ["lsh"], "run.methods", "methods")


def test_a_per_dataset_key_naming_no_dataset_is_refused_with_the_datasets():
    cfg = default_config()
    cfg["noise"]["overrides"] = {"wiki": {"rshnl": {"alpha": 0.5}}}
    with pytest.raises(plan.ConfigError) as err:
        plan.check_per_dataset_keys(cfg)
    assert "noise.overrides" in str(err.value) and "['wiki']" in str(err.value)
    assert "wikipedia" in str(err.value)
    cfg["noise"]["overrides"] = {"wikipedia": {"rshnl": {"alpha": 0.5}}}
    cfg["report"]["published_as"] = {"mirflickr": "mirflickr"}
    with pytest.raises(plan.ConfigError, match=r"report.published_as .*\['mirflickr'\]"):
        plan.check_per_dataset_keys(cfg)
    cfg["report"]["published_as"] = {"mirflickr25k": "mirflickr"}
    plan.check_per_dataset_keys(cfg)


def test_overrides_keyed_by_benchmark_reach_its_datasets_of_every_source():
    cfg = default_config()
    cfg["datasets"]["wiki_mat"] = {"source": "rshnl_mat", "format": "wiki", "split": {}}
    cfg["datasets"]["my_wiki"] = {"source": "manifest", "benchmark": "wikipedia", "split": {}}
    cfg["noise"]["overrides"] = {
        "wikipedia": {"rshnl": {"alpha": 0.05, "gamma": 3.0}},
        "wiki_mat": {"rshnl": {"gamma": 4.0}},  # a dataset's own entry comes on top
    }
    plan.check_per_dataset_keys(cfg)
    entry = plan.dataset_entry
    assert entry(cfg, ("noise", "overrides"), "wikipedia") == {
        "rshnl": {"alpha": 0.05, "gamma": 3.0}
    }
    assert entry(cfg, ("noise", "overrides"), "my_wiki") == {"rshnl": {"alpha": 0.05, "gamma": 3.0}}
    assert entry(cfg, ("noise", "overrides"), "wiki_mat") == {
        "rshnl": {"alpha": 0.05, "gamma": 4.0}
    }
    assert entry(cfg, ("noise", "overrides"), "demo") == {}
    assert plan.benchmark(cfg["datasets"]["xmedia_features"]) == "xmedia"
    assert plan.benchmark(cfg["datasets"]["demo"]) is None


def test_entries_for_no_dataset_of_the_run_are_reported():
    cfg = default_config()
    cfg["run"]["datasets"] = ["xmedia_features"]
    cfg["noise"]["overrides"] = {"wikipedia": {"rshnl": {"gamma": 3.0}}, "xmedia": {}}
    cfg["method_overrides"] = {}
    (line,) = plan.unused_per_dataset_entries(cfg)
    assert line.startswith("noise.overrides: the entries for ['wikipedia'] apply to no dataset")
    assert "['xmedia_features']" in line
    cfg["run"]["datasets"] = ["xmedia_features", "wikipedia"]
    assert plan.unused_per_dataset_entries(cfg) == []


@pytest.mark.parametrize("key", ["method_overrides", "noise.overrides"])
@pytest.mark.parametrize(
    "block, where, message",
    [
        ({"demo": {"djsrh": {"lambdaa": 0.3}}}, ".demo.djsrh.lambdaa", "'lambdaa' was unexpected"),
        ({"demo": {"djsrhh": {"beta": 0.3}}}, ".demo.djsrhh", "'djsrhh' was unexpected"),
        ({"demo": {"djsrh": {"beta": "high"}}}, ".demo.djsrh.beta", "'high' is not of type"),
    ],
)
def test_per_dataset_method_overrides_are_checked_like_methods_blocks(key, block, where, message):
    cfg = default_config()
    parent = cfg["noise"] if key == "noise.overrides" else cfg
    parent[key.split(".")[-1]] = block
    with pytest.raises(plan.ConfigError) as err:
        plan.validate_config(cfg, SCHEMA)
    assert f"{key}{where}: " in str(err.value) and message in str(err.value), err.value


def test_method_overrides_of_an_unknown_dataset_are_refused():
    cfg = default_config()
    cfg["method_overrides"] = {"wiki": {"djsrh": {"beta": 0.3}}}
    plan.validate_config(cfg, SCHEMA)
    with pytest.raises(plan.ConfigError, match=r"method_overrides has entries for \['wiki'\]"):
        plan.check_per_dataset_keys(cfg)


def test_alternatives_prefers_the_longest_name_and_matches_nothing_when_empty():
    assert plan.alternatives(["sym", "symall"]) == "symall|sym"
    assert plan.alternatives([]) == "(?!x)x"


# ---------------------------------------------------------------- code fingerprints


@pytest.fixture
def src(tmp_path) -> Path:
    """A copy of the package's source, to edit."""
    shutil.copytree(REPO / "src/xmhash", tmp_path / "xmhash")
    return tmp_path


def fingerprints(src: Path) -> dict[str, str]:
    tree = plan.SourceTree(src)
    return {
        m: tree.fingerprint("xmhash.train", f"xmhash.methods.{m}")
        for m in ("lsh", "cca_itq", "djsrh")
    }


def test_a_new_method_and_its_registry_line_change_no_fingerprint(src):
    before = fingerprints(src)
    methods = src / "xmhash/methods"
    text = (methods / "lsh.py").read_text().replace('name = "lsh"', 'name = "lsh2"')
    (methods / "lsh2.py").write_text(text.replace("class LSH(", "class LSH2("))
    init = methods / "__init__.py"
    init.write_text(
        init.read_text().replace(
            "from xmhash.methods.lsh import LSH\n",
            "from xmhash.methods.lsh import LSH\nfrom xmhash.methods.lsh2 import LSH2\n",
        )
    )
    assert fingerprints(src) == before


def test_a_version_bump_changes_no_fingerprint(src):
    before = fingerprints(src)
    init = src / "xmhash/__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9'))
    assert fingerprints(src) == before


def test_an_edit_to_one_method_changes_only_its_fingerprint_and_shared_code_all(src):
    before = fingerprints(src)
    with (src / "xmhash/methods/djsrh.py").open("a") as fh:
        fh.write("\n# an edit\n")
    after = fingerprints(src)
    assert [m for m in before if before[m] != after[m]] == ["djsrh"]
    with (src / "xmhash/methods/base.py").open("a") as fh:
        fh.write("\n# an edit\n")
    assert all(fingerprints(src)[m] != after[m] for m in before)


def test_excluded_modules_do_not_count(src):
    tree = plan.SourceTree(src)
    full = tree.fingerprint("xmhash.train", "xmhash.methods.lsh")
    without = tree.fingerprint("xmhash.train", "xmhash.methods.lsh", exclude=("xmhash.metrics",))
    with (src / "xmhash/metrics.py").open("a") as fh:
        fh.write("\n# an edit\n")
    tree = plan.SourceTree(src)
    assert tree.fingerprint("xmhash.train", "xmhash.methods.lsh") != full
    assert tree.fingerprint("xmhash.train", "xmhash.methods.lsh", exclude=("xmhash.metrics",)) == (
        without
    )


def test_an_unknown_module_is_a_clear_error(src):
    with pytest.raises(plan.ConfigError, match="xmhash.nope"):
        plan.SourceTree(src).fingerprint("xmhash.nope")


def test_registries_are_skipped_but_an_init_with_logic_counts():
    tree = plan.SourceTree(REPO / "src")
    for registry in ("xmhash/__init__.py", "xmhash/methods/__init__.py"):
        assert tree.is_registry(REPO / "src" / registry), registry
    assert not tree.is_registry(REPO / "src/xmhash/search/__init__.py")  # Searcher lives there
    assert not tree.is_registry(REPO / "src/xmhash/methods/lsh.py")


def test_an_edit_to_an_init_with_logic_changes_the_fingerprints_of_its_importers(src):
    (src / "xmhash/helper_user.py").write_text("from xmhash.search import Searcher\n")
    before = plan.SourceTree(src).fingerprint("xmhash.helper_user")
    with (src / "xmhash/search/__init__.py").open("a") as fh:
        fh.write("\n# an edit\n")
    assert plan.SourceTree(src).fingerprint("xmhash.helper_user") != before


def test_method_graphs_are_read_from_the_source():
    tree = plan.SourceTree(REPO / "src")
    assert tree.method_graphs("vtmuch", ("knn", "vtmuch")) == ("vtmuch",)
    assert tree.method_graphs("lsh", ("knn", "vtmuch")) == ()
    with pytest.raises(plan.ConfigError, match=r"vtmuch trains on graph\(s\) \['vtmuch'\]"):
        tree.method_graphs("vtmuch", ("knn",))


# ---------------------------------------------------------------- noise tags and paths


def test_noise_tags_round_trip_and_match_the_wildcard_pattern():
    import re

    tags = plan.noise_tags(["sym", "symall"], [0.2, 0.5, 1])
    assert tags == ["sym0.2", "sym0.5", "sym1", "symall0.2", "symall0.5", "symall1"]
    for tag in tags:
        assert re.fullmatch(plan.noise_tag_pattern(), tag)
        kind, rate = plan.parse_noise_tag(tag)
        assert plan.noise_tags([kind], [rate]) == [tag]
    assert not re.fullmatch(plan.noise_tag_pattern(), "banana0.5")


def test_grid_paths_is_the_product_of_the_axes():
    assert plan.grid_paths("{a}/{b}", a=[1, 2], b=["x"]) == ["1/x", "2/x"]


def test_importing_plan_loads_neither_torch_nor_snakemake():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import xmhash.plan; "
        "print(sorted(m for m in ('torch', 'snakemake') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "src")], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_select_metric_is_checked_and_tie_aware_by_default():
    from xmhash.train import TrainSettings

    cfg = default_config()
    assert cfg["training"]["select_metric"] == TrainSettings().select_metric == "tie_aware"
    cfg["training"]["select_metric"] = "tie_aware"
    plan.validate_config(cfg, SCHEMA)
    cfg["training"]["select_metric"] = "tie"
    with pytest.raises(plan.ConfigError, match=r"training.select_metric"):
        plan.validate_config(cfg, SCHEMA)
