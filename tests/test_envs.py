"""The conda env files pin the same versions as pyproject.toml, and the README's install
commands are those CI runs."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import REPO

# conda-forge package names that differ from the PyPI names
CONDA_TO_PYPI = {"pytorch": "torch", "python-igraph": "igraph"}
# dependencies of the host (the snakemake process itself), not of any job
HOST_ONLY = {"snakemake", "pygments", "snakemake-executor-plugin-slurm"}


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        deps.extend(extra)
    pins = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][\w.+]*)", dep)
        assert m, f"pyproject.toml: {dep!r} is not pinned as name==version"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def env_pins() -> dict[str, dict[str, str]]:
    out = {}
    for path in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        assert env["channels"][0] == "conda-forge" and "nodefaults" in env["channels"], path
        pins = {}
        for dep in env["dependencies"]:
            assert isinstance(dep, str), f"{path.name}: pip sections are not allowed ({dep})"
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+) *=([0-9][\w.+]*)", dep)
            assert m, f"{path.name}: {dep!r} is not pinned as 'name =version'"
            pins[m.group(1).lower()] = m.group(2)
        out[path.name] = pins
    return out


def test_env_versions_equal_pyproject():
    pins = pyproject_pins()
    envs = env_pins()
    assert envs, "no env files found"
    for env, deps in envs.items():
        for name, version in deps.items():
            if name == "python":
                continue
            pypi = CONDA_TO_PYPI.get(name, name)
            assert pypi in pins, f"envs/{env}: {name} is not a dependency in pyproject.toml"
            assert pins[pypi] == version, (
                f"envs/{env}: {name} ={version}, pyproject.toml pins {pypi}=={pins[pypi]}"
            )


def test_every_job_dependency_is_in_some_env():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[=<>]", d)[0].lower() for d in project["dependencies"]}
    in_envs = {CONDA_TO_PYPI.get(n, n) for deps in env_pins().values() for n in deps}
    missing = runtime - in_envs - HOST_ONLY
    assert not missing, f"pyproject dependencies in no envs/*.yaml: {sorted(missing)}"


def test_every_rule_env_exists():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().exists(), f"{smk.name}: {env} does not exist"


CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def _quick_start() -> list[str]:
    """The README's quick-start commands (the demo, then the tests)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, re.S)


def test_quick_start_installs_the_pinned_cpu_torch_first():
    """A bare pin of torch pulls the CUDA build from PyPI on Linux: the quick start takes
    torch from PyTorch's CPU wheel index, at the project's pin, before anything else."""
    commands = _quick_start()
    assert len(commands) == 2, commands
    torch = f"pip install torch=={pyproject_pins()['torch']} {CPU_INDEX}"
    for command in commands:
        assert command.split(" && ")[0] == torch, command


def test_ci_runs_the_readme_test_command():
    """.ci/run is the README's test command step by step; only the torch wheel's source
    differs (CI installs the CPU wheel of the same version it finds locally)."""
    readme = [step.replace(f" {CPU_INDEX}", "") for step in _quick_start()[1].split(" && ")]
    ci = [
        re.sub(r"^python3 -m (pip install) -q ", r"\1 ", line).replace("python3 ", "python ")
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if re.match(r"python3 -m (pip install|pytest)", line)
    ]
    assert ci == readme
