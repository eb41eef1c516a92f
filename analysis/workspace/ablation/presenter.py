"""What the Ablation page shows (its ``views.py``): every ablation curve of a run in one form,
whichever step wrote it, read through the run's :class:`RunView` (its steps that build a curve).

Two step kinds write curves (see ``analysis.steps``), told apart by their document:

* probe ablation (``ProbeAblation.to_dict``, with ``points``): per mode (zero-out, retrain) and *kept* selection (top, bottom,
  random), points of neurons kept / removed with the probe's accuracy (random: mean, sd, min, max over seeds);
* model-level ablation (``model_ablation.ablation_curve``, with a ``task``): x in neurons *removed*, one line per removal order
  (top, bottom, random mean) for each metric of the model's task (each metric becomes its own curve: BLEU and
  chrF, or loss and perplexity), and ``random_curves`` (one per seed).

Both become an :class:`AblationCurve` with x = neurons removed and one :class:`Line` per removal direction, so
the chart, the CSV and the SVG download are written once. Keeping the top k % of a probe's neurons removes the
bottom-ranked ones first, so the probe's "top" selection is the "bottom-first" line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from analysis.workspace import charts
from analysis.models import FINISHED_STEP_STATES, ResultKind, Step, StepState
from analysis.workspace.run_view import RunView, document_of

DIRECTIONS = {"top": "Top-ranked removed first", "bottom": "Bottom-ranked removed first",
              "random": "Random order (mean)"}
STYLE_OF = {"top": 0, "bottom": 1, "random": 2}
PROBE_KEPT_TO_DIRECTION = {"bottom": "top", "top": "bottom", "random": "random"}
PROBE_MODES = {"zero_out": "zero-out: the probe's other inputs set to their mean",
               "retrain": "retrained on the neurons kept"}
MODEL_METRICS = {
    ("causal-lm", "loss"): "Per-token loss", ("causal-lm", "perplexity"): "Perplexity",
    ("masked-lm", "loss"): "Masked-LM loss", ("masked-lm", "accuracy"): "Masked-LM accuracy",
    ("translation", "bleu"): "BLEU", ("translation", "chrf"): "chrF", ("translation", "loss"): "Reference loss",
    ("probe", "accuracy"): "Probe accuracy",
}
MODEL_NOTES = {"probe": "the encoder has no masked-LM head: a probe's accuracy on the corpus's test sentences, "
                        "neurons zeroed inside the model"}
CSV_COLUMNS = ("curve", "ranking", "metric", "direction", "neurons_removed", "percent_removed", "value",
               "random_sd", "random_min", "random_max", "random_orders")


@dataclass
class LinePoint:
    removed: int
    percent: float
    value: float
    sd: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass
class Line:
    direction: str
    points: list[LinePoint]

    @property
    def name(self) -> str:
        return DIRECTIONS[self.direction]


@dataclass
class AblationCurve:
    id: str  # "<step id>" or "<step id>-<probe mode>": stable in URLs
    step: Step
    title: str
    ranking: str
    metric: str  # the y-axis: what the values are (short)
    metric_key: str
    metric_note: str  # how they were measured
    higher_is_better: bool
    total: int
    baseline: float | None
    random_orders: int
    primary: bool = True  # shown until the toggles say otherwise: the task's main metric (every probe curve)
    lines: dict[str, Line] = field(default_factory=dict)

    @property
    def has_random(self) -> bool:
        return "random" in self.lines

    @property
    def spread_name(self) -> str:
        return f"Random: min–max over {self.random_orders} orders" if self.random_orders > 1 else ""

    def shown(self, directions) -> list[Line]:
        return [self.lines[d] for d in DIRECTIONS if d in self.lines and d in directions]


def _probe_curves(step: Step, data: dict) -> list[AblationCurve]:
    curves = []
    ranking = f"{step.params.get('method', 'lca')} ranking"
    for mode, selections in data.get("curves", {}).items():
        curve = AblationCurve(
            id=f"{step.pk}-{mode}", step=step, title=f"{step.title} ({mode.replace('_', '-')})", ranking=ranking,
            metric="Probe accuracy", metric_key="accuracy", metric_note=PROBE_MODES.get(mode, mode),
            higher_is_better=True, total=int(data["n_neurons"]), baseline=data.get("baseline_accuracy"),
            random_orders=int(data.get("params", {}).get("random_seeds", 1)))
        for kept, line in selections.items():
            direction = PROBE_KEPT_TO_DIRECTION[kept]
            points = [LinePoint(removed=int(r), percent=float(pc), value=float(v),
                                **({"sd": float(sd), "low": float(lo), "high": float(hi)} if direction == "random"
                                   else {}))
                      for r, pc, v, sd, lo, hi in zip(line["removed"], line["removed_percent"], line["accuracy"],
                                                      line["accuracy_std"], line["accuracy_min"],
                                                      line["accuracy_max"])]
            curve.lines[direction] = Line(direction, sorted(points, key=lambda p: p.removed))
        curves.append(curve)
    return curves


def _model_curves(step: Step, data: dict) -> list[AblationCurve]:
    """One curve per metric of the model's task, the primary one first (its id is the step's own)."""
    task, counts, percents = data["task"], data["x"]["count"], data["x"]["percent"]
    randoms = data.get("random_curves") or []
    curves = []
    for metric in sorted(data["metrics"], key=lambda m: m != data["primary"]):
        label = MODEL_METRICS.get((task, metric), f"{task} {metric}")
        curve = AblationCurve(
            id=str(step.pk) if metric == data["primary"] else f"{step.pk}-{metric}", step=step,
            title=f"{step.title} ({label})", ranking=f"{data.get('params', {}).get('ranking_method', 'the')} ranking",
            metric=label, metric_key=metric,
            metric_note=MODEL_NOTES.get(task, f"the model's own {task} task, neurons zeroed inside the model"),
            higher_is_better=bool(data["higher_is_better"].get(metric, True)), total=int(data["total_neurons"]),
            baseline=data["baseline"].get(metric), random_orders=max(1, len(randoms)),
            primary=metric == data["primary"])
        spread = np.asarray([r[metric] for r in randoms], dtype=float) if len(randoms) > 1 else None
        for direction, values in data["curves"].items():
            points = []
            for i, (count, percent, value) in enumerate(zip(counts, percents, values[metric])):
                extra = {}
                if direction == "random" and spread is not None:
                    extra = {"sd": float(spread[:, i].std()), "low": float(spread[:, i].min()),
                             "high": float(spread[:, i].max())}
                points.append(LinePoint(removed=int(count), percent=float(percent), value=float(value), **extra))
            curve.lines[direction] = Line(direction, points)
        curves.append(curve)
    return curves


def curves_of(step: Step) -> list[AblationCurve]:
    """The curves of a succeeded step that builds a curve (none for a document of another shape)."""
    data = document_of(step)
    if "points" in data:
        return _probe_curves(step, data)
    return _model_curves(step, data) if "task" in data else []


@dataclass
class AblationPanel:
    """One ablation step of the run: its curves once it succeeded, else what it is doing or why it stopped."""

    step: Step
    curves: list[AblationCurve]

    @property
    def computing(self) -> bool:
        return self.step.state not in FINISHED_STEP_STATES

    @property
    def failed(self) -> bool:
        return self.step.state in (StepState.FAILED, StepState.CANCELLED)


def panels_of(view: RunView) -> list[AblationPanel]:
    """Every step of the run that builds a curve, in any state."""
    return [AblationPanel(step, curves_of(step) if step.state == StepState.SUCCEEDED else [])
            for step in view.steps_building(ResultKind.CURVE)]


def find_curve(view: RunView, curve_id: str) -> AblationCurve | None:
    step_id, _, _mode = curve_id.partition("-")
    step = next((s for s in view.built(ResultKind.CURVE) if str(s.pk) == step_id), None)
    return next((c for c in curves_of(step) if c.id == curve_id), None) if step else None


# ------------------------------------------------------------------------------------------------ choices


def chosen(request, key: str, known, default=None) -> list[str]:
    """The values of ``key`` the URL asks for (repeated or comma-separated), among ``known``: ``default`` (every
    one when None) when the URL does not say, none for ``none`` or when the toggles form was sent with nothing
    ticked."""
    values = [v.strip() for raw in request.GET.getlist(key) for v in raw.split(",") if v.strip()]
    if not values:
        return [] if "toggles" in request.GET else list(known if default is None else default)
    return [k for k in known if k in values]


def canonical(values: list[str], default) -> str:
    """The URL form of a choice: empty when it is the default, ``none`` when nothing is chosen."""
    if list(values) == list(default):
        return ""
    return ",".join(values) or "none"


# ------------------------------------------------------------------------------------------------ output


def _value(curve: AblationCurve, value: float) -> str:
    return f"{value:.4f}" if curve.metric_key == "accuracy" else charts.number(value)


def chart_svg(curve: AblationCurve, directions) -> str:
    series = []
    for line in curve.shown(directions):
        points = [charts.Point(p.percent, p.value, f"{p.percent:.4g} % removed ({p.removed:,} of {curve.total:,}), "
                               f"{curve.metric_key} {_value(curve, p.value)}"
                               + (f" (min {_value(curve, p.low)}, max {_value(curve, p.high)})"
                                  if p.low is not None else ""))
                  for p in line.points]
        band = [(p.percent, p.low, p.high) for p in line.points if p.low is not None] if curve.random_orders > 1 \
            else []
        series.append(charts.Series(line.direction, line.name, points, band=band, band_name=curve.spread_name,
                                    style=STYLE_OF[line.direction]))
    references = [charts.Reference(curve.baseline, f"No neurons removed ({_value(curve, curve.baseline)})")] \
        if curve.baseline is not None else []
    better = "higher is better" if curve.higher_is_better else "lower is better"
    desc = (f"{curve.metric} ({curve.metric_note}; {better}) against the share of the {curve.total:,} neurons "
            f"removed along the {curve.ranking}: " + "; ".join(
                f"{line.name} from {_value(curve, line.points[0].value)} to {_value(curve, line.points[-1].value)}"
                for line in curve.shown(directions) if line.points) + ".")

    def x_ticks(percent: float) -> list[str]:
        return [f"{charts.number(percent)} %", f"({round(curve.total * percent / 100):,})"]

    return charts.line_chart(chart_id=f"ablation-chart-{curve.id}", title=curve.title, desc=desc,
                             x_label=f"Neurons removed: % (count of {curve.total:,})", y_label=curve.metric,
                             series=series, references=references, x_domain=(0, 100), x_tick_text=x_ticks)


def curve_csv(curve: AblationCurve) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in curve.shown(DIRECTIONS):
        for p in line.points:
            writer.writerow([curve.id, curve.ranking, curve.metric_key, line.direction, p.removed, repr(p.percent),
                             repr(p.value), *("" if v is None else repr(v) for v in (p.sd, p.low, p.high)),
                             curve.random_orders if line.direction == "random" else ""])
    return out.getvalue()
