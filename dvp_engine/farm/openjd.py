"""The farm job as an Open Job Description job bundle (the format AWS Deadline Cloud submits; ``openjd run``
runs it on one machine).

A bundle is a folder with ``template.yaml`` (specification ``jobtemplate-2023-09``),
``parameter_values.yaml`` (the values of the job parameters, in the ``parameterValues`` list that
``deadline bundle submit`` reads) and ``job_params.json`` (the same values as the name -> value map that
``openjd run template.yaml --job-param file://job_params.json`` reads). Every path is a PATH job parameter,
so Deadline Cloud's path mapping and job attachments apply (OpenJD allows a PATH parameter only a default
relative to the template, so paths have no default in the template). A chunked step has one STRING task parameter, ``Frames``, whose values are the chunks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.errors import DvpError

from .job import FarmJob, FarmStep

SPEC = "jobtemplate-2023-09"
TEMPLATE = "template.yaml"
VALUES = "parameter_values.yaml"
RUN_VALUES = "job_params.json"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fmt(arg: str, params: set[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "Frames":
            return "{{Task.Param.Frames}}"
        if name in params:
            return "{{Param." + name + "}}"
        return m.group(0)

    return _PLACEHOLDER.sub(sub, arg)


def _requirements(step: FarmStep) -> dict[str, Any]:
    n = step.needs
    amounts: list[dict[str, Any]] = [
        {"name": "amount.worker.vcpu", "min": n.vcpus},
        {"name": "amount.worker.memory", "min": n.memory_gib * 1024},  # MiB
        {"name": "amount.worker.disk.scratch", "min": n.disk_gib},  # GiB
    ]
    if n.gpus:
        amounts.append({"name": "amount.worker.gpu", "min": n.gpus})
        if n.gpu_memory_gib:
            amounts.append({"name": "amount.worker.gpu.memory", "min": n.gpu_memory_gib * 1024})  # MiB
    return {"amounts": amounts, "attributes": [{"name": "attr.worker.os.family", "anyOf": ["linux"]}]}


def job_template(job: FarmJob) -> dict[str, Any]:
    """The OpenJD job template (a plain dict, as YAML would hold it)."""
    names = {p.name for p in job.params}
    defs = []
    for p in job.params:
        d: dict[str, Any] = {"name": p.name, "type": p.kind, "description": p.description}
        if p.kind != "PATH":  # OpenJD path defaults are relative to the template: the values file holds them
            d["default"] = p.value
        if p.object_type:
            d["objectType"] = p.object_type
        if p.data_flow:
            d["dataFlow"] = p.data_flow
        defs.append(d)
    steps = []
    for s in job.steps:
        step: dict[str, Any] = {"name": s.name, "description": s.description}
        if s.depends:
            step["dependencies"] = [{"dependsOn": d} for d in s.depends]
        step["hostRequirements"] = _requirements(s)
        if s.chunks is not None:
            step["parameterSpace"] = {
                "taskParameterDefinitions": [{"name": "Frames", "type": "STRING", "range": list(s.chunks)}]
            }
        cmd = [_fmt(a, names) for a in s.command]
        step["script"] = {"actions": {"onRun": {"command": cmd[0], "args": cmd[1:]}}}
        steps.append(step)
    return {
        "specificationVersion": SPEC,
        "name": job.name,
        "description": "dvp reenact as farm steps (written by 'dvp farm openjd'; see docs/farm.md)",
        "parameterDefinitions": defs,
        "steps": steps,
    }


def validate(template: dict[str, Any], values: dict[str, Any] | None = None) -> None:
    """Check the template with openjd-model (schema, dependencies, capability names) and, if ``values`` are
    given, that a job can be created from it; raises :class:`DvpError` with openjd's message."""
    try:
        from openjd.model import (
            DecodeValidationError,
            create_job,
            decode_job_template,
            preprocess_job_parameters,
        )
    except ImportError as exc:  # pragma: no cover - the farm extra is missing
        raise DvpError("openjd-model is not installed (pip install 'dvp[farm]')") from exc
    try:
        tpl = decode_job_template(template=template)
        if values is not None:
            vals = preprocess_job_parameters(
                job_template=tpl,
                job_parameter_values={k: str(v) for k, v in values.items()},
                job_template_dir=Path("/"),
                current_working_dir=Path("/"),
            )
            create_job(job_template=tpl, job_parameter_values=vals)
    except (DecodeValidationError, ValueError) as exc:
        raise DvpError(f"the job template does not validate: {exc}") from exc


def write_bundle(job: FarmJob, folder: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Validate and write the bundle (``template.yaml``, ``parameter_values.yaml``, ``job_params.json``)
    into ``folder``.

    An existing bundle (any of the files) is kept unless ``overwrite``. Returns the template's and the
    values' paths.
    """
    import yaml

    template = job_template(job)
    validate(template, job.values())
    folder.mkdir(parents=True, exist_ok=True)
    tpl_path, val_path, run_path = folder / TEMPLATE, folder / VALUES, folder / RUN_VALUES
    existing = [p for p in (tpl_path, val_path, run_path) if p.exists()]
    if existing and not overwrite:
        raise DvpError("a job bundle is already there; pass --overwrite to replace it", path=existing[0])
    values = {"parameterValues": [{"name": k, "value": v} for k, v in job.values().items()]}
    header = (
        "# Written by 'dvp farm openjd'. Submit: deadline bundle submit <this folder>; run here: openjd run\n"
    )
    write_text_atomic(tpl_path, header + yaml.safe_dump(template, sort_keys=False, width=120))
    write_text_atomic(val_path, yaml.safe_dump(values, sort_keys=False, width=120))
    write_text_atomic(run_path, json.dumps(job.values(), indent=1) + "\n")
    return tpl_path, val_path
