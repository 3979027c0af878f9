"""Config groups: named presets a study refers to instead of spelling the settings out.

A preset is one YAML file of a *group* (Hydra-style)::

    config/priors/NAME.yaml      a value of the pymc fit option ``prior``   (fit key ``prior: NAME``)
    config/samplers/NAME.yaml    pymc sampler options (draws, tune, ...)     (fit key ``sampler_preset: NAME``)
    config/clusters/NAME.yaml    where the chunks run (kind local | slurm)   (study key ``cluster: NAME``)
    config/report.yaml           settings of the report (see :mod:`compare_mm.report.settings`)

Lookup order of ``NAME`` in a group (first hit wins):

1. ``<folder of the study file>/config/<group>/NAME.yaml`` (only when the study was read from a file);
2. ``./config/<group>/NAME.yaml`` (the current working directory);
3. the packaged copy, ``compare_mm/config/presets/<group>/NAME.yaml`` (so a pip-installed compare_mm
   works anywhere; the repository's top-level ``config/`` is kept identical to it by a test).

:func:`resolve_presets` replaces every name by the file's content before the study is validated, so
the validated study, its config hash and ``compare-mm config show`` hold the resolved settings only
(a study without presets is untouched and hashes exactly as before).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..errors import ConfigError

#: the packaged copies, relative to the compare_mm package
PACKAGED = "config/presets"
GROUPS = ("priors", "samplers", "clusters")
#: keys a sampler preset may set: those that are FitConfig fields, then those that go into ``options``
SAMPLER_FIT_KEYS = ("draws", "tune", "chains", "sampler", "parameterisation", "until_converged")
SAMPLER_OPTION_KEYS = ("target_accept", "cores")
CLUSTER_KINDS = ("local", "slurm")


def search_path(study_dir: Path | None) -> list[Any]:
    """The config roots in lookup order: the study's ``config/``, ``./config/``, the packaged presets."""
    roots: list[Any] = []
    if study_dir is not None:
        roots.append(Path(study_dir) / "config")
    roots.append(Path.cwd() / "config")
    roots.append(resources.files("compare_mm").joinpath(PACKAGED))
    return roots


def find_file(relative: str, study_dir: Path | None = None) -> Any | None:
    """The first existing ``<root>/relative`` along :func:`search_path`, or None."""
    for root in search_path(study_dir):
        candidate = root.joinpath(relative)
        if candidate.is_file():
            return candidate
    return None


def available(group: str, study_dir: Path | None = None) -> list[str]:
    """Sorted names of every preset of ``group`` found anywhere along the search path."""
    names: set[str] = set()
    for root in search_path(study_dir):
        folder = root.joinpath(group)
        if folder.is_dir():
            names.update(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    return sorted(names)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with a repeated key (YAML 1.2 says keys are unique;
    PyYAML silently keeps the last value)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:      # an unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice (lines {first.line + 1} and "
                                f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: Any, label: str = "Preset file") -> Any:
    """Parse one YAML file; malformed YAML (a repeated key included) is a one-sentence ConfigError naming
    the file."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label} '{path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8 YAML.") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"{label} '{path}' is not a text file (character #x{exc.character:04x} at offset "
                          f"{exc.position}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{label} '{path}' is not valid YAML{where}: {problem}.") from None


def load_preset(group: str, name: str, where: str, study_dir: Path | None = None) -> tuple[dict[str, Any], Any]:
    """The content (a mapping) and path of preset ``name`` of ``group``.

    Parameters
    ----------
    group
        One of :data:`GROUPS`.
    name
        The preset's name (file name without ``.yaml``).
    where
        The YAML key path that named it (``fits[2].prior``), for the error message.
    study_dir
        Folder of the study file, searched first (None: a study given as a mapping).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the available ones) or a file that is not a YAML mapping.
    """
    word = group[:-1]
    path = find_file(f"{group}/{name}.yaml", study_dir) if "/" not in name and name.strip() else None
    if path is None:
        names = available(group, study_dir)
        raise ConfigError(f"{where}: unknown {word} preset '{name}'; available: {', '.join(names) or 'none'}.")
    content = read_yaml_file(path)
    if not isinstance(content, dict) or not content:
        raise ConfigError(f"Preset file '{path}' must be a non-empty YAML mapping, got {content!r}.")
    return content, path


def _sampler(fit: Mapping[str, Any], i: int, name: Any, study_dir: Path | None) -> dict[str, Any]:
    where = f"fits[{i}].sampler_preset"
    if str(fit.get("backend", "reml")).lower() != "pymc":
        raise ConfigError(f"{where}: only pymc fits take 'sampler_preset', not backend {fit.get('backend', 'reml')}.")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected the name of a sampler preset, got {name!r}.")
    if str(fit.get("sampler", "")).lower() == "quadrature":
        raise ConfigError(f"{where}: sampler: quadrature integrates the posterior exactly and takes no NUTS "
                          f"settings; remove sampler_preset: {name} or use sampler: nutpie.")
    content, path = load_preset("samplers", name, where, study_dir)
    bad = [k for k in content if k not in SAMPLER_FIT_KEYS + SAMPLER_OPTION_KEYS]
    if bad:
        raise ConfigError(f"Preset file '{path}': unknown key '{bad[0]}'; valid keys are "
                          f"{', '.join(SAMPLER_FIT_KEYS + SAMPLER_OPTION_KEYS)}.")
    out = {k: v for k, v in fit.items() if k != "sampler_preset"}
    for key in SAMPLER_FIT_KEYS:  # the fit's own keys win over the preset's
        if key in content and out.get(key) is None:
            out[key] = content[key]
    extra = {k: content[k] for k in SAMPLER_OPTION_KEYS if k in content}
    if extra:
        options = out.get("options") if isinstance(out.get("options"), dict) else {}
        out["options"] = {**extra, **options}
    return out


def _fit(fit: Any, i: int, study_dir: Path | None) -> Any:
    if not isinstance(fit, dict):
        return fit
    out = dict(fit)
    if isinstance(out.get("prior"), str):
        out["prior"], _ = load_preset("priors", out["prior"], f"fits[{i}].prior", study_dir)
    if "sampler_preset" in out:
        out = _sampler(out, i, out["sampler_preset"], study_dir)
    return out


def check_cluster(content: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a resolved cluster mapping (``kind`` local with ``workers``, or slurm with ``jobs``)."""
    kind = content.get("kind")
    if kind not in CLUSTER_KINDS:
        raise ConfigError(f"{where}: 'kind' must be one of {', '.join(CLUSTER_KINDS)}, got {kind!r}.")
    key = "workers" if kind == "local" else "jobs"
    value = content.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: a {kind} cluster needs '{key}', an integer ≥ 1, got {value!r}.")
    if kind == "local" and set(content) - {"kind", "workers", "name"}:
        extra = sorted(set(content) - {"kind", "workers", "name"})[0]
        raise ConfigError(f"{where}: unknown key '{extra}' for a local cluster; valid keys are kind, workers.")
    return dict(content)


def _cluster(value: Any, study_dir: Path | None) -> Any:
    if isinstance(value, str):
        content, path = load_preset("clusters", value, "cluster", study_dir)
        return {"name": value, **check_cluster(content, f"Preset file '{path}'")}
    if isinstance(value, dict):
        return check_cluster(value, "cluster")
    return value


def resolve_presets(data: Mapping[str, Any], study_dir: Path | None = None) -> dict[str, Any]:
    """A copy of a study mapping with every preset name replaced by its content.

    ``fits[i].prior: NAME`` becomes the mapping of ``priors/NAME.yaml``; ``fits[i].sampler_preset: NAME``
    is removed and its keys fill the fit's unset ``draws``/``tune``/``chains``/``sampler``/
    ``parameterisation`` and unset ``options.target_accept``/``options.cores``; ``cluster: NAME``
    becomes ``{name: NAME, **clusters/NAME.yaml}``.  Anything else is returned unchanged.
    """
    out = dict(data)
    if isinstance(out.get("fits"), list):
        out["fits"] = [_fit(f, i, study_dir) for i, f in enumerate(out["fits"])]
    if out.get("cluster") is not None:
        out["cluster"] = _cluster(out["cluster"], study_dir)
    return out


def preset_files(root: Any, groups: Iterable[str] = GROUPS) -> dict[str, bytes]:
    """Every ``*.yaml`` of a config root (groups and top-level files) → its bytes; for the drift test."""
    out: dict[str, bytes] = {}
    for entry in root.iterdir():
        if entry.is_file() and entry.name.endswith(".yaml"):
            out[entry.name] = entry.read_bytes()
        elif entry.is_dir() and entry.name in groups:
            out.update({f"{entry.name}/{k}": v for k, v in preset_files(entry, ()).items()})
    return out


__all__ = ["available", "check_cluster", "find_file", "load_preset", "preset_files", "resolve_presets",
           "search_path"]
