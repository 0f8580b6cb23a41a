"""Study designs (checklist 35, 37): one joint space, or one study per scientific value.

`joint` (the default) searches scientific and nuisance hyperparameters together; the samplers
draw scientific values uniformly (checklist 37). `per_value` runs one study per combination of the
scientific hyperparameters' values, each tuning the nuisance hyperparameters with its own
`max_trials` budget, and compares the studies by their best trials (checklist 35). Pure Python.
"""

import itertools
import os

from tfplaybook.config import ConfigError

DESIGNS = ("joint", "per_value")


def scientific_values(entries):
    """[(name, [values])] of the top-level scientific hyperparameters, in declaration order.

    Raises:
      ConfigError: when a scientific hyperparameter is continuous (it has no values to enumerate).
    """
    out = []
    for entry in entries:
        if entry.get("role") != "scientific" or "parent" in entry:
            continue
        if entry.get("scale") not in ("discrete", "categorical"):
            raise ConfigError(
                f"study.design='per_value' needs discrete or categorical scientific "
                f"hyperparameters; {entry['name']!r} has scale {entry.get('scale')!r} (use the "
                "joint design, or list its values with scale discrete)"
            )
        out.append((entry["name"], list(entry["values"])))
    if not out:
        raise ConfigError("study.design='per_value' needs at least one scientific hyperparameter")
    return out


def _fix(entries, name, value):
    """The space with `name` fixed at `value`: other branches dropped, the chosen one promoted."""
    fixed = []
    for entry in entries:
        if entry["name"] == name and "parent" not in entry:
            # Keep it visible as the scientific value of this study, fixed for its trials.
            fixed.append({"name": name, "role": "fixed", "value": value})
        elif entry.get("parent") == name:
            if entry.get("parent_value") == value:
                fixed.append(
                    {k: v for k, v in entry.items() if k not in ("parent", "parent_value")}
                )
        else:
            fixed.append(dict(entry))
    return fixed


def per_value_studies(entries):
    """[(label, values dict, search-space entries)], one per combination of scientific values.

    The label (e.g. "optimizer.name=adam") names the sub-study's directory.
    """
    names_values = scientific_values(entries)
    studies = []
    for combo in itertools.product(*(values for _, values in names_values)):
        space = list(entries)
        chosen = {}
        for (name, _), value in zip(names_values, combo):
            space = _fix(space, name, value)
            chosen[name] = value
        label = ",".join(f"{name}={value}" for name, value in chosen.items())
        studies.append((label, chosen, space))
    return studies


def study_plan(config, workdir):
    """[(study_dir, config)]: the joint study, or one per scientific value (checklist 35)."""
    design = config["study"].get("design", "joint")
    if design not in DESIGNS:
        raise ConfigError(f"study.design={design!r} is not one of {', '.join(DESIGNS)}")
    if design == "joint":
        return [(workdir, config)]
    plan = []
    for label, _, entries in per_value_studies(config["study"]["search_space"]):
        study = dict(
            config["study"],
            search_space=entries,
            name=f"{config['study'].get('name', 'study')}[{label}]",
        )
        plan.append((os.path.join(workdir, label), dict(config, study=study)))
    return plan
