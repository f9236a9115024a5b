"""Planning the workflow: config checks, code fingerprints, noise tags and run paths.

``workflow/rules/common.smk`` calls these functions while Snakemake builds the DAG, so
they must be fast and light: this module imports neither torch nor Snakemake, and reads
the package's source instead of importing it.

Code fingerprints (what reruns when code changes): Snakemake reruns a job when its own
script changes, not when a package module that script imports changes. A rule therefore
puts :meth:`SourceTree.fingerprint` of the modules it runs into its params: a digest of
their source and of every ``xmhash`` module they import, transitively. A package
``__init__.py`` that holds no logic (imports, ``__version__``, a registry dict, a short
lookup: :meth:`SourceTree.is_registry`) is not part of the digest of the modules that
import it, so adding a method (one file plus one registry line) or bumping the version
reruns nothing, while an edit to a method's file reruns exactly that method's jobs and an
edit to shared code (``methods/base.py``, ``train.py``) reruns every job that runs it.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from xmhash.data import noise as _noise


class ConfigError(ValueError):
    """A config value the workflow cannot run with; the message names the key and the fix."""


# ---------------------------------------------------------------- config checks


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _strict_validator(schema: Mapping[str, Any]):
    """A Draft 2020-12 validator that fills in defaults and takes ``integer`` strictly
    (``16.0`` is not an integer: it would name a ``16.0bits`` path)."""
    from jsonschema import Draft202012Validator, validators

    def is_int(checker, instance) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_int)
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    validate_properties = strict.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop:
                    instance.setdefault(name, prop["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    return validators.extend(strict, {"properties": set_defaults})(schema)


def validate_config(config: dict, schema_file: str | Path) -> None:
    """Validate ``config`` against the YAML schema (filling in its defaults); on the first
    error raise :class:`ConfigError` with the key, the bad value and the reason, in a few
    lines (not the whole schema, as jsonschema's own message has it)."""
    import yaml
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_file).read_text())
    error = best_match(_strict_validator(schema).iter_errors(config))
    if error is None:
        return
    what = error.schema.get("description") if isinstance(error.schema, dict) else None
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})  # name the first unexpected key
        where.append(next(k for k in error.instance if k not in allowed))
        what = f"known keys: {sorted(allowed)}"
    raise ConfigError(
        f"Error validating config: {_where(where)}: {error.message}"
        + (f"\n  expected: {what}" if what else "")
        + "\n  Fix that key in config.yaml (or in the --configfile that sets it); "
        f"{Path(schema_file).name} describes every key."
    )


def check_names(listed: Iterable[str], defined: Iterable[str], key: str, block: str) -> None:
    """Every name under ``key`` must have a block under ``block:``."""
    defined = list(defined)
    missing = [name for name in listed if name not in defined]
    if missing:
        raise ConfigError(
            f"config.yaml: {key} lists {missing}, which have no block under `{block}:` "
            f"(defined: {sorted(defined)})"
        )


# keys whose entries are keyed by dataset name
PER_DATASET_KEYS = (("report", "published_as"),)
# keys whose entries are keyed by dataset or benchmark name (:func:`benchmark`)
PER_BENCHMARK_KEYS = (("method_overrides",), ("noise", "overrides"))

# the benchmark an ``rshnl_mat`` file holds, by its key layout (``format``)
RSHNL_MAT_BENCHMARKS = {
    "xmedia": "xmedia",
    "wiki": "wikipedia",
    "inria": "inria_websearch",
    "xmedianet": "xmedianet",
}
# sources that say nothing about which benchmark they hold (a ``benchmark`` key may)
GENERIC_SOURCES = ("demo", "demo_images", "manifest", "dcmh_mat")


def benchmark(block: Mapping[str, Any]) -> str | None:
    """The benchmark a dataset block holds, whatever its source: its ``benchmark`` key,
    else the ``rshnl_mat`` layout's (``format: wiki`` is ``wikipedia``), else the source
    itself for a real dataset's own source (``wikipedia``); None for demos and generic
    files without a ``benchmark`` key."""
    if block.get("benchmark"):
        return str(block["benchmark"])
    source = block.get("source")
    if source == "rshnl_mat":
        return RSHNL_MAT_BENCHMARKS.get(block.get("format", "xmedia"))
    return None if source in GENERIC_SOURCES else source


def _block(config: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
    block: Any = config
    for part in path:
        block = (block or {}).get(part, {})
    return block or {}


def dataset_entry(config: Mapping[str, Any], path: Sequence[str], dataset: str) -> dict:
    """The per-dataset entry of ``path`` (e.g. ``("noise", "overrides")``) for
    ``dataset``: the entry of its benchmark, updated per method by the entry of its own
    name. Paper values keyed ``wikipedia`` so reach every Wikipedia dataset, from the
    archive or from a feature .mat."""
    entries = _block(config, path)
    bench = benchmark((config.get("datasets") or {}).get(dataset) or {})
    out: dict[str, Any] = {}
    for key in dict.fromkeys([bench, dataset]):
        for method, params in (entries.get(key) or {}).items() if key else ():
            out[method] = {**out.get(method, {}), **(params or {})}
    return out


def check_per_dataset_keys(config: Mapping[str, Any]) -> None:
    """A per-dataset entry keyed by a name that is no dataset (nor, where benchmarks are
    accepted, a benchmark of a dataset) of the config is a typo (``wiki`` for
    ``wikipedia``) that would silently do nothing: refuse it."""
    datasets = sorted(config.get("datasets", {}))
    benchmarks = sorted(
        {b for b in map(benchmark, config.get("datasets", {}).values()) if b} - set(datasets)
    )
    for path in dict.fromkeys([*PER_DATASET_KEYS, *PER_BENCHMARK_KEYS]):
        known = datasets + (benchmarks if path in PER_BENCHMARK_KEYS else [])
        unknown = [name for name in _block(config, path) if name not in known]
        if unknown:
            raise ConfigError(
                f"config.yaml: {'.'.join(path)} has entries for {unknown}, which are not "
                f"datasets of this config (datasets: {datasets}"
                + (f"; benchmarks: {benchmarks}" if path in PER_BENCHMARK_KEYS else "")
                + "); rename them to one of those or remove them"
            )


def unused_per_dataset_entries(config: Mapping[str, Any]) -> list[str]:
    """One line per per-dataset key whose entries apply to no dataset of ``run.datasets``
    (the workflow reports them when it loads: a value meant for this run that reaches
    none of its datasets)."""
    run = list(config.get("run", {}).get("datasets", []))
    applies = set(run) | {benchmark(config["datasets"][d]) for d in run if d in config["datasets"]}
    lines = []
    for path in dict.fromkeys([*PER_BENCHMARK_KEYS, *PER_DATASET_KEYS]):
        unused = [name for name in _block(config, path) if name not in applies]
        if unused:
            lines.append(
                f"{'.'.join(path)}: the entries for {unused} apply to no dataset of this run "
                f"(run.datasets: {run}); they are not used"
            )
    return lines


def alternatives(names: Iterable[str]) -> str:
    """A regex matching exactly one of ``names`` (or nothing)."""
    return "|".join(sorted(names, key=len, reverse=True)) or "(?!x)x"


# ---------------------------------------------------------------- source of the package


# the longest function (lines) a registry ``__init__.py`` may hold (``get_method``)
REGISTRY_LOOKUP = 12


class SourceTree:
    """The ``xmhash`` package's source under ``src``, read without importing it."""

    def __init__(self, src: str | Path):
        self.src = Path(src)

    def module_file(self, name: str) -> Path | None:
        base = self.src.joinpath(*name.split("."))
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.exists():
                return cand
        return None

    @cache  # noqa: B019  (one tree per workflow run; lives as long as the DAG)
    def _parse(self, path: Path) -> ast.Module:
        return ast.parse(path.read_text(), filename=str(path))

    def imports(self, name: str) -> set[str]:
        """The ``xmhash`` modules (and ``module.attribute`` names) ``name`` imports."""
        path = self.module_file(name)
        if path is None:
            return set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(self._parse(path)):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    mod = f"{base}.{node.module}" if node.module else base
                else:
                    mod = node.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
        return {m for m in found if m.split(".")[0] == "xmhash"}

    def is_registry(self, path: Path) -> bool:
        """True for a package ``__init__.py`` that holds no logic: only imports, constants
        (``__version__``, a registry dict) and short lookup functions; such a file is not
        part of the fingerprints of the modules that import it."""
        if path.name != "__init__.py":
            return False
        for node in self._parse(path).body:
            if isinstance(node, ast.ClassDef | ast.AsyncFunctionDef):
                return False
            if (
                isinstance(node, ast.FunctionDef)
                and node.end_lineno - node.lineno > REGISTRY_LOOKUP
            ):
                return False
        return True

    @cache  # noqa: B019
    def fingerprint(self, *modules: str, exclude: tuple[str, ...] = ()) -> str:
        """Digest of the source ``modules`` run, see the module docstring. ``exclude``
        drops modules a job imports but does not run (training imports the metrics, but
        runs them only for ``select: val``)."""
        missing = [m for m in modules if self.module_file(m) is None]
        if missing:
            raise ConfigError(f"code fingerprint: no source for {missing} under {self.src}")
        seen: dict[str, Path] = {}
        todo = list(modules)
        while todo:
            name = todo.pop()
            path = self.module_file(name)
            if path is None or name in seen or name in exclude:
                continue
            if name not in modules and self.is_registry(path):
                continue  # see the module docstring
            seen[name] = path
            todo.extend(self.imports(name))
        digest = hashlib.sha256()
        for name in sorted(seen):
            digest.update(name.encode())
            digest.update(seen[name].read_bytes())
        return digest.hexdigest()[:16]

    @cache  # noqa: B019
    def method_graphs(self, method: str, defined: tuple[str, ...]) -> tuple[str, ...]:
        """The graph kinds a method trains on: its class attribute ``graphs = (...)`` (a
        literal tuple), read from the source so that the DAG is built without torch.
        Every kind must be one of ``defined`` (the blocks under ``graph:``)."""
        path = self.module_file(f"xmhash.methods.{method}")
        if path is None:
            return ()
        for node in ast.walk(self._parse(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                target = (
                    stmt.targets[0]
                    if isinstance(stmt, ast.Assign)
                    else getattr(stmt, "target", None)
                )
                value = getattr(stmt, "value", None)
                if isinstance(target, ast.Name) and target.id == "graphs" and value:
                    kinds = tuple(ast.literal_eval(value))
                    missing = [k for k in kinds if k not in defined]
                    if missing:
                        raise ConfigError(
                            f"method {method} trains on graph(s) {missing}, which have no "
                            f"block under `graph:` in config.yaml (defined: {list(defined)})"
                        )
                    return kinds
        return ()


# ---------------------------------------------------------------- noisy-label track


def noise_tags(kinds: Sequence[str], rates: Sequence[float]) -> list[str]:
    """The ``noise{tag}`` path components of every kind x rate, e.g. ``sym0.5``."""
    return [_noise.tag(kind, rate) for kind in kinds for rate in rates]


def noise_tag_pattern() -> str:
    """Regex of a noise tag, for the ``{noise}`` wildcard (parsed by ``parse_tag``)."""
    return rf"({alternatives(_noise.KINDS)})[01](\.\d+)?"


def parse_noise_tag(tag: str) -> tuple[str, float]:
    return _noise.parse_tag(tag)


# ---------------------------------------------------------------- paths


def grid_paths(template: str, **axes: Sequence[Any]) -> list[str]:
    """``template`` formatted with every combination of ``axes`` (Snakemake's expand)."""
    names = list(axes)
    return [
        template.format(**dict(zip(names, values, strict=True)))
        for values in itertools.product(*(axes[n] for n in names))
    ]
