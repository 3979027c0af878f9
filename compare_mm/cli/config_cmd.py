"""``compare-mm config show STUDY.yaml``: print the fully resolved study (presets expanded, defaults filled)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect a study's resolved configuration",
                       description="Inspect study configurations and the config groups of config/.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the fully resolved study as YAML",
                              description="Print STUDY.yaml fully resolved: every preset name (prior, "
                                          "sampler_preset, cluster) replaced by its content, defaults "
                                          "filled in; the output is itself a valid study file.")
    show.add_argument("study", metavar="STUDY.yaml", help="study file (see studies/*.yaml)")
    show.set_defaults(func=run_show)


def resolved_text(study: str) -> str:
    """The resolved study as YAML text, headed by comments naming the source and its config hash."""
    import yaml  # deferred: keeps CLI start-up fast

    from ..study.config.load import load_config  # deferred: keeps CLI start-up fast

    cfg = load_config(study)
    body = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return (f"# {study} resolved by `compare-mm config show`; config hash {cfg.config_hash[:12]}.\n"
            f"# null = the backend's default (compare_mm/config/defaults.yaml).\n{body}")


def run_show(args: argparse.Namespace) -> int:
    print(resolved_text(args.study), end="")
    return 0
