"""``run_manifest.json``: what ran, from which commit, on what, with which inputs and outcomes."""

from __future__ import annotations

from typing import Any

from harness.evidence import bundle
from harness.evidence.comparison import comparison_facts
from harness.evidence.inputs import contamination_facts, input_facts
from harness.evidence.measurements import measured
from harness.evidence.submission_zip import frozen_zip
from harness.record.measurements import deltas
from harness.record.run import MilestoneRun
from harness.spec.data import file_sha256
from harness.spec.milestones import FreezeMilestone
from trainers.checkpoints import complete

NOT_RECORDED = "not recorded: pre-flight did not run"
DETECTED_KEYS = ("os", "cpu", "cpu_count", "ram", "torch.version.cuda", "devices")


def common_manifest(run: MilestoneRun) -> dict[str, Any]:
    """What every kind of run records: identity, commit, machine, times, outcomes."""
    spec = run.milestone.spec
    return {
        "kind": spec.kind,
        "rehearsal": run.milestone.rehearsal,
        "milestone": spec.id,
        "title": spec.title,
        "run_id": run.run_id,
        "commit": run.record.env.get("commit", NOT_RECORDED),
        "dirty": run.record.env["dirty"] == "true" if "dirty" in run.record.env else NOT_RECORDED,
        "hardware_detected": {key: run.record.env.get(key, NOT_RECORDED) for key in DETECTED_KEYS},
        "started_at": run.record.started_at,
        "finished_at": run.record.finished_at or run.record.updated_at,
        "complete": run.record.finished_at is not None,
        "session_finished": run.record.session_finished,
        "follows": run.record.follows or "none: the first run of this milestone here",
        "verdict": run.verdict,
        "closing_statement": spec.closing_statement,
        "phases": {
            o.phase: {"status": str(o.status), "cause": str(o.cause), "reason": o.reason,
                      "duration_s": round(o.duration_s, 3)}
            for o in run.all_outcomes()
        },
        "resources": resource_facts(run),
    }


def resource_facts(run: MilestoneRun) -> dict[str, Any]:
    """The sampler's file, plot and probes, and the measured peak beside the memory guard's
    estimate."""
    record = run.record.resources
    rss, total = record.peak_rss(), record.peak_rss(with_children=True)
    measured: dict[str, Any] | str = "not measured: no phase has run"
    if rss is not None and total is not None:
        measured = {"rss": rss.facts(), "rss_with_children": total.facts()}
        if devices := record.device_peaks():
            measured["devices"] = {name: peak.facts() for name, peak in devices.items()}
    estimate = run.record.memory_estimate
    return {
        "file": bundle.RESOURCES,
        "plot": bundle.RESOURCES_PLOT,
        "interval_s": record.interval_s,
        "samples": len(record.samples),
        "probes": record.probes or {"process": "not started: no phase has run"},
        "estimated_peak": estimate.facts() if estimate else run.record.memory_guard,
        "measured_peak": measured,
    }


def freeze_manifest(run: MilestoneRun) -> dict[str, Any]:
    """``run_manifest.json`` of a freeze run: the source, the files, the frozen ZIP."""
    spec = run.milestone.spec
    manifest = common_manifest(run) | {
        "source": spec.source,
        "files": list(spec.files) + list(spec.extra_files),
        "size_budget_mb": spec.size_budget_mb,
    }
    frozen = frozen_zip(run.run_dir.parent, spec.id)
    if frozen.is_file():
        manifest["frozen_zip"] = {
            "path": str(frozen.relative_to(run.root)),
            "sha256": file_sha256(frozen),
            "size": frozen.stat().st_size,
        }
    return manifest


def model_lineage_facts(run: MilestoneRun) -> dict[str, Any]:
    """The model's lineage as pre-flight found it, with the trained model's parameter count."""
    lineage = dict(run.record.model_lineage or {"source": run.milestone.spec.model, "folder": NOT_RECORDED})
    if run.record.train_result:
        lineage["trained_parameters"] = run.record.train_result.model_parameters
    return lineage


def run_manifest(run: MilestoneRun) -> dict[str, Any]:
    """``run_manifest.json``: what ran, from which commit, on what, with which inputs and outcomes."""
    if isinstance(run.milestone, FreezeMilestone):
        return freeze_manifest(run)
    milestone, spec = run.milestone, run.milestone.spec
    manifest = common_manifest(run) | input_facts(run) | contamination_facts(run)
    manifest |= comparison_facts(run) | {
        "backend": spec.backend,
        "hardware_required": spec.hardware.model_dump(),
        "model": spec.model,
        "model_lineage": model_lineage_facts(run),
        "batch_size": milestone.training.batch_size,
        "max_seq_len": milestone.training.max_seq_len,
        "precision": milestone.training.precision,
        "seed": milestone.training.seed,
        "run_shape": spec.run.model_dump(exclude_none=True),
        "steps_completed": len(run.record.steps),
    }
    if run.options.reevaluates is not None:
        manifest["reevaluates"] = {
            "run_id": run.options.reevaluates.name,
            "path": str(run.options.reevaluates),
            "note": "no training in this run: the earlier run's checkpoint is evaluated anew",
        }
    manifest |= resumption_facts(run)
    if run.record.train_result:
        manifest["device"] = run.record.train_result.device
    if any(run.record.judgements.values()):
        manifest["criteria"] = [
            {
                "phase": phase,
                "metric": j.metric,
                "comparison": j.comparison,
                "measured": j.measured if j.measured is not None else "not measured",
                "threshold": j.threshold if j.threshold is not None else "no threshold",
                "verdict": str(j.verdict),
                "reason": j.reason or str(j.verdict),
            }
            for phase, judgements in run.record.judgements.items()
            for j in judgements
        ]
    baseline = run.options.baseline
    if baseline:
        manifest["baseline"] = {
            "run_id": baseline.run_id,
            "path": str(baseline.path),
            "deltas": {name: {"value": v, "baseline": b, "delta": d} for name, v, b, d in baseline_rows(run)},
        }
    return manifest


def resumption_facts(run: MilestoneRun) -> dict[str, Any]:
    """The run this one resumes, its wall-time budget with the latest estimate, and the resumable
    checkpoints it wrote; each only where there is one."""
    assert not isinstance(run.milestone, FreezeMilestone)
    facts: dict[str, Any] = {}
    resumes = run.options.resumes
    if resumes is not None:
        facts["resumes"] = {
            "run_id": resumes.run_id,
            "path": str(resumes.path),
            "step": resumes.step,
            "checkpoint": str(resumes.checkpoint.relative_to(resumes.path)),
            "note": f"{resumes.line}: steps 1-{resumes.step} of this run's curve are that run's",
        }
    budget = run.milestone.spec.budget
    if budget is not None:
        estimate = run.record.budget_estimate_s
        facts["budget"] = {
            "wall_minutes": budget.wall_minutes,
            "estimate_minutes": round(estimate / 60, 3)
            if estimate is not None
            else "not estimated: training did not get past its warm-up steps",
        }
    if run.record.checkpoints:
        training = run.milestone.training
        kept = [folder.name for _, folder in complete(run.run_dir / bundle.CHECKPOINTS_DIR)]
        facts["checkpoints"] = {
            "every": training.checkpoint_every or "only where the run stopped over budget",
            "keep": training.keep_checkpoints,
            "written_after_steps": list(run.record.checkpoints),
            "kept": kept or ["none"],
        }
    return facts


def baseline_rows(run: MilestoneRun) -> list[tuple[str, float, float, float]]:
    """(metric, this run, baseline, delta) for every metric both runs have."""
    baseline = run.options.baseline
    return deltas(measured(run), baseline) if baseline else []
