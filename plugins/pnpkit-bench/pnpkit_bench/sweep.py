"""``pnpkit bench SWEEP.toml``: tasks x noise levels x solvers x priors x seeds over a dataset.

Every solver, ours and the peers registered from deepinv, goes through the same ``solve``
call on the same prior, operator, measurement and seed, and is measured the same way:
quality (the sweep's metrics), wall time, NFE and peak memory (:mod:`pnpkit_bench.memory`).
The sweep file's format is in this package's README. The output folder is a
:class:`pnpkit.runs.OutputFolder` stamped by ``sweep.json``: an interrupted sweep resumes
where it stopped, a different sweep is refused unless ``--overwrite`` is given, and a
second sweep on a busy folder is refused (the folder's lock). Under ``torchrun`` the rows are
sharded over ranks and rank 0 merges them.

Before the first case, :meth:`Sweep.validate` builds every solver with the settings of every
task and noise level it runs (``settings`` plus ``per_task``) and checks every operator's and
prior's settings, so a typo stops the sweep with one line instead of becoming error rows. A
solve whose iterate becomes non-finite is a row with status ``"diverged: at iteration K"``
and no metrics (:attr:`pnpkit.solvers.Result.diverged_at`): never averaged. A solver that
does not apply to a task's operator or prior (it raises :class:`pnpkit.solvers.DoesNotApply`,
as DDRM does on an operator that is not decomposable) is a row with status
``"does not apply: <reason>"``; any other exception is ``"error: <type>: <message>"``.
Neither has metrics.

``batch = N`` solves up to N items of one (task, noise, prior, solver, seed) in one ``solve``
call (items of one shape; a resumed sweep batches only the rows still missing). Each item
keeps its own row: its measurement drawn from its own generator as unbatched, its metrics,
its reconstruction and its divergence (:attr:`pnpkit.solvers.Result.item_diverged_at`); the
row's ``wall_time`` is the batch's time divided by its size, ``nfe`` the batch's network calls
(each item's evaluations) and ``peak_memory_mb`` the batch's. The solver's generator is the
first item's, after its measurement (so ``batch = 1`` is the unbatched sweep exactly). A
batch that fails (any exception but :class:`pnpkit.solvers.DoesNotApply`) is solved again
item by item, so each row says its own outcome.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from pnpkit import operators as ops
from pnpkit.config import ConfigError, check_setting_types, unknown_key
from pnpkit.data import Item, load_items
from pnpkit.metrics import compute
from pnpkit.plugins import check_settings, get_manager
from pnpkit.priors import torch_dtype
from pnpkit.runs import (
    Distributed,
    OutputFolder,
    check_device,
    environment,
    fingerprint,
    write_json,
    write_text,
)
from pnpkit.solvers import DoesNotApply, is_finite

from .memory import PeakMemory

if TYPE_CHECKING:
    from pnpkit.solvers import Solver

__all__ = ["COLUMNS", "Case", "Sweep", "load_sweep", "metric_columns", "reconstruction_name",
           "run"]

SWEEP_KEYS = {"output", "metrics", "seeds", "reference", "device", "dtype", "data", "tasks",
              "priors", "solvers", "batch"}
TASK_KEYS = {"name", "operator", "noise", "settings"}
PRIOR_KEYS = {"name", "label", "settings"}
SOLVER_KEYS = {"name", "label", "settings", "per_task"}
#: The columns of ``rows.csv`` before the metrics'; the first six are a row's key.
COLUMNS = ["task", "noise", "prior", "solver", "seed", "item", "status", "wall_time", "nfe",
           "peak_memory_mb"]


@dataclass(frozen=True)
class Case:
    """One row of a sweep: a task at a noise level, a prior, a solver, a seed and an item."""

    task: dict[str, Any]
    noise: float
    prior: dict[str, Any]
    solver: dict[str, Any]
    seed: int
    index: int
    item: str

    @property
    def key(self) -> tuple[str, ...]:
        """The row's first six ``rows.csv`` cells: what a resumed sweep recognises it by."""
        return (self.task["name"], f"{self.noise:g}", self.prior["label"], self.solver["label"],
                str(self.seed), self.item)


def row_key(row: dict[str, str]) -> tuple[str, ...]:
    """The :attr:`Case.key` of a ``rows.csv`` row."""
    return tuple(row[c] for c in COLUMNS[:6])


def reconstruction_name(key: tuple[str, ...]) -> str:
    """The file name (without ``.safetensors``) of a row's reconstruction.

    >>> reconstruction_name(("sr4", "0.05", "default-grey32", "dcdp v2", "0", "img0"))
    'sr4__0.05__default-grey32__dcdp_v2__0__img0'
    """
    return "__".join(safe_name(k) for k in key)


def safe_name(s: str) -> str:
    """``s`` with every character but letters, digits, ``-`` and ``.`` replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in s)


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and check a sweep file (unknown keys name the closest valid one).

    :param path: the TOML file.
    :return: the sweep with its defaults filled in and ``_base_dir``, the file's folder.
    :raises pnpkit.config.ConfigError: a missing file, an unknown key, a missing entry.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in raw:
        if key not in SWEEP_KEYS:
            raise unknown_key(key, SWEEP_KEYS, "the sweep")
    for section, keys in (("tasks", TASK_KEYS), ("priors", PRIOR_KEYS), ("solvers", SOLVER_KEYS)):
        entries = raw.get(section)
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"the sweep needs at least one [[{section}]] entry")
        for entry in entries:
            for key in entry:
                if key not in keys:
                    raise unknown_key(key, keys, f"[[{section}]]")
            if "name" not in entry or (section == "tasks" and "operator" not in entry):
                raise ConfigError(f"each [[{section}]] entry needs a name"
                                  + (" and an operator" if section == "tasks" else ""))
            entry.setdefault("label", entry["name"])
            entry.setdefault("settings", {})
    labels = [s["label"] for s in raw["solvers"]]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"solver labels must be unique, got {labels}")
    if "output" not in raw or "data" not in raw:
        raise ConfigError("the sweep needs output = \"...\" and a [data] table")
    raw.setdefault("metrics", ["psnr"])
    raw.setdefault("seeds", [0])
    raw.setdefault("device", "cpu")
    raw.setdefault("dtype", "float32")
    batch = raw.setdefault("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a whole number >= 1 (items solved in one call, e.g. "
                          f"batch = 16), got {batch!r}")
    for task in raw["tasks"]:
        noise = task.get("noise", [0.0])
        task["noise"] = [float(v) for v in (noise if isinstance(noise, list) else [noise])]
    if raw.get("reference") is not None and raw["reference"] not in labels:
        raise ConfigError(f"reference {raw['reference']!r} is not a solver label; labels: {labels}")
    raw["_base_dir"] = str(path.parent.resolve())
    return raw


def metric_columns(names: list[str], items: list[Item]) -> list[str]:
    """The CSV columns the named metrics fill: per-stem metrics add ``name/<stem>`` columns."""
    if not items:
        return list(names)
    item = items[0]
    ref = item.signal[None].float()
    return list(compute(names, ref, ref, sample_rate=item.sample_rate,
                        channel_names=item.channel_names))


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``rows.csv`` (none when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class Sweep:
    """Runs a loaded sweep (see :func:`load_sweep`) into its output folder.

    :param dict sweep: a sweep from :func:`load_sweep`.
    :param output: the ``-o DIR`` folder, or None for the sweep's ``output``.
    """

    def __init__(self, sweep: dict[str, Any], output: str | Path | None = None) -> None:
        self.sweep = sweep
        self.folder = OutputFolder.resolve(output, sweep["output"], Path(sweep["_base_dir"]),
                                           stamp="sweep.json")
        self.output = self.folder.path
        self.group = Distributed()
        self.device = check_device(sweep["device"])
        if self.device.type == "cuda" and self.group.world > 1:
            self.device = torch.device("cuda", self.group.local_rank)  # one GPU per rank
        self.dtype = torch_dtype(sweep["dtype"])
        self.manager = get_manager()
        self.items = load_items(dict(sweep["data"]), Path(sweep["_base_dir"]))
        self._priors: dict[str, Any] = {}
        self._operators: dict[tuple[Any, ...], Any] = {}

    # -- building ------------------------------------------------------------------------------
    def cases(self) -> list[Case]:
        """Every row of the sweep, in the order of ``rows.csv``."""
        return [Case(task, noise, prior, solver, int(seed), i, item.id)
                for task in self.sweep["tasks"] for noise in task["noise"]
                for prior in self.sweep["priors"] for solver in self.sweep["solvers"]
                for seed in self.sweep["seeds"] for i, item in enumerate(self.items)]

    def _prior(self, entry: dict[str, Any]) -> Any:
        if entry["label"] not in self._priors:
            comp = self.manager.get("prior", entry["name"])
            self._priors[entry["label"]] = comp.build(entry["settings"], device=str(self.device),
                                                      dtype=self.sweep["dtype"])
        return self._priors[entry["label"]]

    def _operator(self, task: dict[str, Any], noise: float, shape: tuple[int, ...]) -> Any:
        key = (task["name"], noise, shape)
        if key not in self._operators:
            comp = self.manager.get("operator", task["operator"])
            self._operators[key] = comp.build({**task["settings"], "sigma_y": noise}, shape=shape,
                                              device=str(self.device), dtype=self.sweep["dtype"])
        return self._operators[key]

    def _solver(self, entry: dict[str, Any], task: str, noise: float) -> Any:
        settings = dict(entry["settings"])
        per_task = entry.get("per_task", {})
        settings.update(per_task.get(task, {}))
        if noise > 0:
            settings.update(per_task.get(f"{task}:noisy", {}))
        cls = cast("type[Solver]", self.manager.get("solver", entry["name"]).factory)
        return cls.from_dict({"name": cls.name, **settings})

    def validate(self) -> None:
        """Check the whole sweep before its first case: every solver built with the settings
        of every task and noise level it runs, every operator's and prior's settings named.

        :raises pnpkit.config.ConfigError: one line naming the entry, the setting and the fix.
        """
        for entry in self.sweep["solvers"]:
            tasks = {t["name"] for t in self.sweep["tasks"]}
            for key in entry.get("per_task", {}):
                if key.split(":")[0] not in tasks:
                    raise ConfigError(f"[[solvers]] {entry['label']!r}: per_task names task "
                                      f"{key!r}, which the sweep does not run; tasks: "
                                      f"{', '.join(sorted(tasks))}")
            for task in self.sweep["tasks"]:
                for noise in task["noise"]:
                    try:
                        self._solver(entry, task["name"], noise)
                    except (TypeError, ValueError) as exc:
                        raise ConfigError(f"[[solvers]] {entry['label']!r} (task {task['name']!r}, "
                                          f"noise {noise:g}): {exc}") from None
        for section, kind, key in (("tasks", "operator", "operator"), ("priors", "prior", "name")):
            for entry in self.sweep[section]:
                comp = self.manager.get(kind, entry[key])
                where = f"[[{section}]] {entry.get('label', entry['name'])!r}"
                settings = dict(entry["settings"], **({"sigma_y": 0.0} if kind == "operator" else {}))
                try:
                    check_settings(comp.factory, settings, f"{kind} {comp.name!r}")
                except TypeError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                check_setting_types(comp.factory, entry["settings"], f"{where} settings:")

    # -- running -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """The sweep's :func:`pnpkit.runs.fingerprint` (its output folder left out; ``batch``
        left out when 1, so an unbatched sweep's folder keeps its stamp)."""
        exclude = ("output", "_base_dir") + (("batch",) if self.sweep.get("batch", 1) == 1 else ())
        return fingerprint(self.sweep, exclude=exclude)

    def batches(self, cases: list[Case]) -> list[list[Case]]:
        """``cases`` in batches of at most ``batch`` items of one (task, noise, prior, solver,
        seed) and one signal shape, each batch in the order of ``cases``."""
        size = int(self.sweep.get("batch", 1))
        groups: dict[tuple[Any, ...], list[Case]] = {}
        for c in cases:
            shape = tuple(self.items[c.index].signal.shape)
            groups.setdefault((*c.key[:5], shape), []).append(c)
        out = [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]
        order = {id(c): i for i, c in enumerate(cases)}
        return sorted(out, key=lambda b: order[id(b[0])])

    def run(self, overwrite: bool = False, progress: bool = True) -> list[dict[str, str]]:
        """Solve every row not in ``rows.csv`` yet, write the reports, return every row.

        :param bool overwrite: replace a different sweep's results in the folder.
        :param bool progress: show a progress bar (rank 0 only under ``torchrun``), which
            names the task and solver of the running case.
        """
        try:
            self.validate()
            return self._run(overwrite, progress)
        finally:
            self.folder.release()
            self.group.close()

    def _run(self, overwrite: bool, progress: bool) -> list[dict[str, str]]:
        from tqdm.auto import tqdm

        from .report import write_reports

        group = self.group
        out = self.output
        error = None
        env = environment(self.device)
        if group.rank == 0:
            existed = self.folder.stamp.exists()
            try:
                old = self.folder.claim(self.fingerprint(), overwrite, environment=env,
                                        finished=lambda _: any(read_rows(f) for f in out.glob("rows*.csv")))
            except ConfigError as exc:
                error = str(exc)
            else:
                if old is None and existed:  # afresh: none of the old rows may stay
                    self.folder.remove("rows*.csv", "histories*.jsonl")
                    for f in (out / "reconstructions").glob("*.safetensors"):
                        f.unlink()
                write_json(self.folder.stamp, {
                    "fingerprint": self.fingerprint(), "environment": env,
                    "sweep": {k: v for k, v in self.sweep.items() if k != "_base_dir"}})
        # Every rank learns what rank 0 found, so all stop together on a refused folder.
        error = group.gather(error)[0]
        if error:
            raise ConfigError(error)
        done = {row_key(r) for f in out.glob("rows*.csv") for r in read_rows(f)}
        metric_names = list(self.sweep["metrics"])
        columns = COLUMNS + metric_columns(metric_names, self.items)
        suffix = "" if group.world == 1 else f".rank{group.rank}"
        rows_path, hist_path = out / f"rows{suffix}.csv", out / f"histories{suffix}.jsonl"
        todo = [b for i, b in enumerate(self.batches([c for c in self.cases() if c.key not in done]))
                if i % group.world == group.rank]
        new_file = not rows_path.exists()
        (out / "reconstructions").mkdir(exist_ok=True)
        with rows_path.open("a", newline="") as fr, hist_path.open("a") as fh:
            writer = csv.DictWriter(fr, fieldnames=columns)
            if new_file:
                writer.writeheader()
            bar = tqdm(total=sum(len(b) for b in todo), desc="bench",
                       disable=not progress or group.rank != 0)
            for cases in todo:
                bar.set_description(f"bench {cases[0].task['name']} {cases[0].solver['label']}")
                for case, (row, history) in zip(cases, self._solve_batch(cases, metric_names),
                                                strict=True):
                    writer.writerow(row)
                    record: dict[str, Any] = {"key": list(case.key), "history": history}
                    if len(cases) > 1:  # the history is the batch's (its means over the items)
                        record["batch"] = [c.item for c in cases]
                    fh.write(json.dumps(record) + "\n")
                fr.flush()
                fh.flush()
                bar.update(len(cases))
            bar.close()
        group.barrier()
        if group.rank == 0:
            self._merge(columns)
            write_reports(out, read_rows(out / "rows.csv"), self.sweep, self.items)
        group.barrier()
        return read_rows(out / "rows.csv")

    def _merge(self, columns: list[str]) -> None:
        out = self.output
        rows = {row_key(r): r for f in sorted(out.glob("rows*.csv")) for r in read_rows(f)}
        order = {c.key: i for i, c in enumerate(self.cases())}
        merged = sorted(rows.values(), key=lambda r: order.get(row_key(r), 1 << 30))
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=columns)
        w.writeheader()
        for r in merged:
            w.writerow({c: r.get(c, "") for c in columns})
        write_text(out / "rows.csv", text.getvalue())  # atomic, a temporary file of this process
        hist = [line for f in sorted(out.glob("histories.rank*.jsonl"))
                for line in f.read_text().splitlines()]
        if hist:
            with (out / "histories.jsonl").open("a") as fh:
                fh.write("\n".join(hist) + "\n")
        self.folder.remove("rows.rank*.csv", "histories.rank*.jsonl")

    def _solve(self, case: Case, metric_names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One case solved alone: its row and history."""
        return self._solve_batch([case], metric_names)[0]

    def _solve_batch(self, cases: list[Case], metric_names: list[str]
                     ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The cases of one batch (see :meth:`batches`) in one ``solve`` call: a row and the
        history per case. A batch that raises is solved again case by case."""
        from safetensors.torch import save_file

        first = cases[0]
        rows: list[dict[str, Any]] = [dict(zip(COLUMNS[:6], c.key, strict=True)) for c in cases]
        items = [self.items[c.index] for c in cases]
        x = torch.cat([item.signal[None] for item in items]).to(self.device, self.dtype)
        try:
            prior = self._prior(first.prior)
            op = self._operator(first.task, first.noise, tuple(items[0].signal.shape))
            solver = self._solver(first.solver, first.task["name"], first.noise)
            # Each item's measurement from its own generator, as unbatched; the solver draws
            # from the first item's generator after that item's measurement.
            gens = [torch.Generator(device=self.device).manual_seed(c.seed * 100003 + c.index)
                    for c in cases]
            y = torch.cat([ops.measure(op, x[i:i + 1], g) for i, g in enumerate(gens)])
            with PeakMemory(self.device) as mem:
                result = solver.solve(y, op, prior, generator=gens[0], reference=x)
        except DoesNotApply as exc:  # the solver cannot take this operator or prior
            for row in rows:
                row.update(status=_status("does not apply", str(exc)), wall_time="", nfe="",
                           peak_memory_mb="")
            return [(row, []) for row in rows]
        except Exception as exc:  # a failing case is a row, not a crash
            if len(cases) > 1:  # each item's own outcome
                return [self._solve(c, metric_names) for c in cases]
            rows[0].update(status=_status("error", f"{type(exc).__name__}: {exc}"), wall_time="",
                           nfe="", peak_memory_mb="")
            return [(rows[0], [])]
        n = len(cases)
        per_item = list(getattr(result, "item_diverged_at", None) or [])
        whole = getattr(result, "diverged_at", None)
        if len(per_item) != n:  # a solver that says nothing per item
            if n > 1 and whole is not None:  # which item diverged is unknown: each alone
                return [self._solve(c, metric_names) for c in cases]
            per_item = [whole] * n
        out = []
        for i, (case, row, item) in enumerate(zip(cases, rows, items, strict=True)):
            row.update(wall_time=f"{result.wall_time / n:.4f}", nfe=result.nfe,
                       peak_memory_mb=f"{mem.peak_mb:.2f}")
            diverged_at = per_item[i]
            if diverged_at is None and not is_finite(result.x[i]):  # a solver outside the loop
                diverged_at = result.iterations
            if diverged_at is not None:  # a row apart: no metrics, never averaged
                row.update(status=f"diverged: at iteration {diverged_at}")
                out.append((row, result.history))
                continue
            xi = result.x[i:i + 1]
            values = compute(metric_names, xi.to(x.dtype), x[i:i + 1], sample_rate=item.sample_rate,
                             channel_names=item.channel_names)
            row.update(status="ok")
            row.update({k: f"{v[0]:.4f}" for k, v in values.items()})
            tensors = {"x": xi[0].detach().float().cpu().contiguous()}
            if not y.is_complex():
                tensors["y"] = y[i].detach().float().cpu().contiguous()
            save_file(tensors, self.output / "reconstructions"
                      / f"{reconstruction_name(case.key)}.safetensors")
            out.append((row, result.history))
        return out


def _status(kind: str, reason: str) -> str:
    r"""A row's status ``"<kind>: <reason>"``, on one line and at most 300 characters.

    >>> _status("does not apply", "DDRM needs a decomposable operator;\nBlur is not one")
    'does not apply: DDRM needs a decomposable operator; Blur is not one'
    """
    return f"{kind}: {' '.join(reason.split())}"[:300]


def run(path: str | Path, output: str | Path | None = None, overwrite: bool = False,
        progress: bool = True) -> list[dict[str, str]]:
    """Run the sweep in ``path``; return every row of its ``rows.csv``.

    :param path: the sweep file.
    :param output: the output folder, or None for the sweep's ``output`` (relative to the file).
    :param bool overwrite: replace a different sweep's results in the folder.
    :param bool progress: show a progress bar.
    """
    return Sweep(load_sweep(path), output).run(overwrite=overwrite, progress=progress)


def diverged_rows(rows: list[dict[str, str]]) -> dict[str, str]:
    """The rows whose solve diverged: ``"task/noise/prior/solver/seed/item"`` -> the iteration.

    >>> diverged_rows([{"task": "sr4", "noise": "0", "prior": "p", "solver": "pgd", "seed": "0",
    ...                 "item": "img0", "status": "diverged: at iteration 3"}])
    {'sr4/0/p/pgd/0/img0': '3'}
    """
    return {"/".join(row_key(r)): r["status"].rsplit(" ", 1)[-1] for r in rows
            if r["status"].startswith("diverged")}
