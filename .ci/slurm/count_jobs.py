"""How many Slurm jobs a grid submits, with and without the profile's job groups.

    python .ci/slurm/count_jobs.py [--profile workflow/profiles/slurm] [--all-methods] [CONFIGFILE ...]

Builds the DAG as a dry run from an empty results/ view (every job of the grid is
counted, whatever already exists), with the profile's `group-components`, and prints
jobs per rule, then: submissions without grouping (every non-local job is one sbatch)
and with grouping (one sbatch per group job plus one per ungrouped non-local job).
Local rules (`localrules`, `localrule: True`, input-only rules such as `all`) run in the
Snakemake process and submit nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def group_components(profile: Path) -> dict[str, int]:
    """The profile's `group-components` entries ("name=N") as {name: N}."""
    cfg = yaml.safe_load(next(profile.glob("*.yaml")).read_text()) or {}
    entries = cfg.get("group-components") or []
    return {k: int(v) for k, v in (e.rsplit("=", 1) for e in entries)}


def count_submissions(configfiles: list[str], components: dict[str, int]) -> dict:
    """Per-rule job counts and the number of sbatch submissions, with/without groups."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        GroupSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        StorageSettings,
    )

    configfiles = [Path(c).resolve() for c in configfiles]
    with tempfile.TemporaryDirectory() as tmp:
        # an empty working directory (symlinked sources): the whole grid is planned
        work = Path(tmp)
        for name in ("config.yaml", "workflow", "scripts", "envs", "src", "config"):
            if (REPO / name).exists():
                os.symlink(REPO / name, work / name)
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, dryrun=True)) as api:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(cores=1, nodes=1),
                config_settings=ConfigSettings(configfiles=configfiles),
                storage_settings=StorageSettings(),
                snakefile=work / "workflow/Snakefile",
                workdir=work,
            )
            dag_api = wf_api.dag(DAGSettings())
            dag_api.execute_workflow(
                executor="dryrun", group_settings=GroupSettings(group_components=components)
            )
            workflow = wf_api._workflow
            dag = workflow.dag
            jobs = list(dag.jobs)

            def local(job):
                return job.rule.name in workflow._localrules or job.rule.norun

            per_rule = collections.Counter(j.rule.name for j in jobs)
            remote = [j for j in jobs if not local(j)]
            groups = {id(g): g for j in remote if (g := dag._group.get(j)) is not None}
            ungrouped = [j for j in remote if dag._group.get(j) is None]
            return {
                "per_rule": dict(per_rule),
                "local": sorted({j.rule.name for j in jobs if local(j)}),
                "without_groups": len(remote),
                "with_groups": len(groups) + len(ungrouped),
                "group_jobs": len(groups),
            }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configfiles", nargs="*", help="configs merged over config.yaml")
    ap.add_argument("--profile", default=str(REPO / "workflow/profiles/slurm"))
    ap.add_argument(
        "--all-methods", action="store_true", help="set run.methods to every registered method"
    )
    args = ap.parse_args(argv)
    components = group_components(Path(args.profile))
    with tempfile.TemporaryDirectory() as tmp:
        configfiles = list(args.configfiles)
        if args.all_methods:
            sys.path.insert(0, str(REPO / "src"))
            from xmhash.methods import METHODS

            overlay = Path(tmp) / "methods.yaml"
            overlay.write_text(yaml.safe_dump({"run": {"methods": sorted(METHODS)}}))
            configfiles.append(str(overlay))
            print(f"methods: {', '.join(sorted(METHODS))}")
        counts = count_submissions(configfiles, components)
    print(f"{'rule':<16}{'jobs':>7}")
    for rule, n in sorted(counts["per_rule"].items()):
        print(f"{rule:<16}{n:>7}")
    print(f"local rules (no sbatch): {', '.join(counts['local'])}")
    print(f"Slurm jobs without grouping: {counts['without_groups']}")
    print(
        f"Slurm jobs with grouping:    {counts['with_groups']} "
        f"({counts['group_jobs']} group jobs; group-components {components})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
