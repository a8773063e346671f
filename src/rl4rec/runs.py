"""Run directories: resolved config, metrics, log, status and atomic checkpoints; resume after a kill.

Layout of ``<runs_dir>/<experiment>/<run_name>/``::

    config.yaml        resolved config (every field, defaults included)
    meta.json          name, experiment, tags, description, the config class, creation time
    status.json        running | finished | failed | stopped (+ pid, times, key metric)
    metrics.jsonl      one JSON object per logged step
    run.log            the same lines as the console
    tensorboard/       event files (when enabled)
    checkpoints/       step_N.pt, best.pt, last.pt (each written to a temp file, then renamed)

A run whose status says ``running`` but whose process is gone is reported as ``killed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rl4rec.allocator import keep_freed_memory
from rl4rec.common import RunConfig
from rl4rec.config import from_dict, load_yaml, to_dict
from rl4rec.errors import InputError
from rl4rec.naming import run_name
from rl4rec.seeding import apply_threads, seed_everything
from rl4rec.tracking import Trackers, read_metrics

log = logging.getLogger(__name__)


class RunDir:
    """The folder layout of a run, spelled in one place.

    ``RunDir(path).checkpoint("last")`` -> ``checkpoints/last.pt``; ``.model("best")`` ->
    ``model/best`` (a ``save_pretrained`` folder); ``.init_run`` -> ``init_run.json`` (the run a GRPO run started from); ``.tokenizer``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str | int) -> Path:
        """``last`` | ``best`` | a step number (``step_N.pt``)."""
        name = f"step_{which}" if isinstance(which, int) else which
        return self.checkpoints / f"{name}.pt"

    def model(self, which: str) -> Path:
        return self.path / "model" / which

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer"

    @property
    def init_run(self) -> Path:
        return self.path / "init_run.json"

    def write_init_run(self, run_dir: str | Path, which: str) -> None:
        atomic_write_text(self.init_run, json.dumps({"run_dir": str(Path(run_dir).resolve()), "which": which}))

    def read_init_run(self) -> dict[str, Any] | None:
        return json.loads(self.init_run.read_text()) if self.init_run.is_file() else None


class RunExistsError(RuntimeError):
    """The run directory already holds a run and ``resume`` was not requested."""


class StopRequested(Exception):
    """Raised inside the training loop after SIGTERM/SIGINT so the run can save and exit cleanly."""


# --------------------------------------------------------------------------- atomic files


def _atomic_write(path: Path, write) -> None:
    """``write(fh)`` into a temp file beside ``path``, fsync, rename. On any failure (a full disk,
    a kill) the temp file goes and ``path`` keeps its previous content."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_save_npy(path: Path, array) -> None:
    """``np.save`` to a temp file in the same directory, fsync, rename (readers never see a partial file)."""
    _atomic_write(Path(path), lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the same directory, fsync, rename (readers never see a partial file)."""
    _atomic_write(path, lambda fh: torch.save(obj, fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only); a
    truncated or corrupted file is an :class:`~rl4rec.errors.InputError` naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError... on bad bytes
        raise InputError(f"{path}: unreadable checkpoint ({type(err).__name__}: {str(err)[:200]})") from err


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors/plain lists (loadable with weights_only)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    np_s = state["numpy"]
    np.random.set_state(
        ("MT19937", np_s["keys"].numpy().astype(np.uint32), np_s["pos"], np_s["has_gauss"], np_s["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])


# --------------------------------------------------------------------------- status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped) still answers kill(0); check /proc where it exists.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:  # no /proc here (macOS)
        return True


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status, with ``running`` turned into ``killed`` when its process is gone."""
    path = run_dir / "status.json"
    if not path.exists():
        return {"status": "unknown"}
    status = json.loads(path.read_text())
    if status.get("status") == "running":
        same_host = status.get("host") == socket.gethostname()
        if same_host and not _pid_alive(int(status.get("pid", -1))):
            status["status"] = "killed"
    return status


# --------------------------------------------------------------------------- the run


#: config keys that do not change what a run computes (or where it lives): those kept out of run
#: names but the experiment and the seed
_BOOKKEEPING = set(RunConfig.NAME_EXCLUDE) - {"experiment", "seed"}
_stored_configs: dict[Path, dict[str, Any]] = {}


def _same_config(stored: Any, cfg: Any, top: bool = True) -> bool:
    """``cfg`` is the config a run stored, bookkeeping keys aside; a key added to the code since
    (absent from the stored file) matches when ``cfg`` holds its default."""
    if not isinstance(stored, dict):
        return False
    for f in dataclasses.fields(cfg):
        if top and f.name in _BOOKKEEPING:
            continue
        value = getattr(cfg, f.name)
        if f.name not in stored:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if to_dict(value) != to_dict(default):
                return False
        elif dataclasses.is_dataclass(value):
            if not _same_config(stored[f.name], value, top=False):
                return False
        elif to_dict(value) != stored[f.name]:
            return False
    return True


def run_dir_for(cfg: Any) -> Path:
    """The folder of ``cfg``'s run: ``<runs_dir>/<experiment>/<name>``. Where that folder does not
    exist, a folder of the same experiment whose stored ``config.yaml`` is ``cfg`` (bookkeeping
    keys aside) is used instead, so runs named by an older naming scheme still resume."""
    exp_dir = Path(cfg.runs_dir) / cfg.experiment
    path = exp_dir / (cfg.run_name or run_name(cfg))
    if cfg.run_name or path.exists() or not exp_dir.is_dir():
        return path
    for folder in sorted(p for p in exp_dir.iterdir() if (p / "config.yaml").is_file()):
        if folder not in _stored_configs:  # config.yaml never changes a run's substance: read it once
            _stored_configs[folder] = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        if _same_config(_stored_configs[folder], cfg):
            return folder
    return path


class Run:
    """A run directory opened for writing. Use as a context manager around the training loop.

    ``with Run(cfg) as run: ...`` seeds everything, sets threads, writes config/meta/status,
    attaches a log file, opens trackers and, with ``resume=true``, exposes the last checkpoint as
    ``run.resume_state``. Leaving the block marks the run finished, failed or stopped.
    """

    def __init__(self, cfg: Any, *, key_metric: str | None = None, follower: bool = False):
        self.cfg = cfg
        self.dir = run_dir_for(cfg)
        self.name = self.dir.name
        self.layout = RunDir(self.dir)
        self.key_metric = key_metric
        #: a follower (a non-main process of a multi-process run) reads the resume state and
        #: writes nothing: one process owns the folder
        self.follower = follower
        self.resume_state: dict[str, Any] | None = None
        self.start_step = 0
        #: set by SIGTERM or :meth:`request_stop`: the loop saves and stops after the current step
        self.stop_requested = False
        self._handlers: list[logging.Handler] = []
        self.trackers: Trackers | None = None
        self._last_metrics: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Run:
        cfg = self.cfg
        if self.follower:
            apply_threads(cfg.threads)
            seed_everything(cfg.seed)
            self._load_resume_state()
            self._install_signal_handlers()
            return self
        status = read_status(self.dir) if self.dir.exists() else {"status": None}
        existing = status["status"]
        if existing == "running" and status.get("pid") != os.getpid():  # a live process owns it (read_status checked)
            raise RunExistsError(f"run {self.dir} is running (pid {status.get('pid')} on {status.get('host')}); stop it first (rl4rec runs stop)")
        if existing not in (None, "unknown") and not cfg.resume:
            raise RunExistsError(
                f"run {self.dir} already exists (status: {existing}); pass resume=true to continue it "
                f"or choose another run_name=..."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.layout.checkpoints.mkdir(exist_ok=True)
        self._attach_log_file()
        self._remove_torn_writes()
        apply_threads(cfg.threads)
        keep_freed_memory()
        seed_everything(cfg.seed)

        if self._load_resume_state():
            self._truncate_metrics(self.start_step)
            log.info("resuming %s from step %d", self.name, self.start_step)
        else:
            (self.dir / "metrics.jsonl").unlink(missing_ok=True)

        config = to_dict(cfg)
        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        meta = {
            "name": self.name,
            "experiment": cfg.experiment,
            "config_class": f"{type(cfg).__module__}.{type(cfg).__qualname__}",
            "tags": list(cfg.tags),
            "description": cfg.description,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "key_metric": self.key_metric,
        }
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=2))
        self._write_status("running")
        self.trackers = Trackers(
            self.dir,
            self.name,
            cfg.tracking,
            config,
            tags=cfg.tags,
            notes=cfg.description,
            resume_step=self.start_step if self.resume_state is not None else None,
        )
        self._install_signal_handlers()
        log.info("run %s -> %s", self.name, self.dir)
        return self

    def _remove_torn_writes(self) -> None:
        """Temp files of atomic writes a killed process never renamed (``.NAME.tmp-PID``): this
        process owns the run now, so no other writer can still be using them."""
        for tmp in self.dir.rglob(".*.tmp-*"):
            if tmp.is_file():
                log.warning("removing %s, left by a process killed while writing it", tmp.relative_to(self.dir))
                tmp.unlink(missing_ok=True)

    def _load_resume_state(self) -> bool:
        """``last``, or, when it is unreadable, the newest readable ``step_N`` (the log says which)."""
        last = self.layout.checkpoint("last")
        if not (self.cfg.resume and last.exists()):
            return False
        steps = sorted(self.layout.checkpoints.glob("step_*.pt"),
                       key=lambda p: int(p.stem.split("_")[1]) if p.stem.split("_")[1].isdigit() else -1)
        for path in [last, *reversed(steps)]:
            try:
                self.resume_state = load_checkpoint(path)
            except InputError as err:
                log.warning("%s; trying an older checkpoint", err)
                continue
            if path != last:
                log.warning("resuming from %s instead of the unreadable %s", path.name, last.name)
            self.start_step = int(self.resume_state["step"])
            return True
        raise InputError(f"{last}: unreadable, and no readable step_N checkpoint to fall back to; start again with resume=false in a new run")

    def restore_rng(self) -> None:
        """Put the RNGs back where the checkpoint left them. Call once, after every object of the
        run is built (building models draws from the global RNG)."""
        if self.resume_state is not None:
            set_rng_state(self.resume_state["rng"])

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._restore_signal_handlers()
        if self.follower:
            return exc_type is StopRequested
        if exc_type is None:
            status = "finished"
        elif exc_type in (StopRequested, KeyboardInterrupt):
            status = "stopped"
        else:
            status = "failed"
            log.error("run %s failed: %s", self.name, exc)
        if self.trackers is not None:
            self.trackers.close()
        extra = {"error": repr(exc)} if status == "failed" else {}
        self._write_status(status, **extra)
        for handler in self._handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
        return exc_type is StopRequested  # a clean stop is not an error for the caller

    # -- logging -------------------------------------------------------------------------
    def _attach_log_file(self) -> None:
        handler = logging.FileHandler(self.dir / "run.log")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        )
        root = logging.getLogger()
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        self._handlers.append(handler)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.follower:
            return
        assert self.trackers is not None, "use Run as a context manager"
        self.trackers.log(metrics, step)
        self._last_metrics.update(metrics)
        self._last_metrics["step"] = step

    # -- status --------------------------------------------------------------------------
    def _write_status(self, status: str, **extra: Any) -> None:
        record = {
            "status": status,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "last_metrics": self._last_metrics,
            **extra,
        }
        atomic_write_text(self.dir / "status.json", json.dumps(record, indent=2))

    def write_result(self, name: str, result: Mapping[str, Any]) -> Path:
        """A JSON result file in the run directory (e.g. ``test_results.json``)."""
        path = self.dir / name
        if not self.follower:
            atomic_write_text(path, json.dumps(dict(result), indent=2))
        return path

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(
        self, state: Mapping[str, Any], step: int, *, keep: bool = False, best: bool = False
    ) -> None:
        """Write ``last.pt`` (always), ``step_<step>.pt`` when ``keep``, ``best.pt`` when ``best``.

        ``state`` holds model/optimizer state dicts and anything else the loop needs to continue;
        the step and the RNG states are added here so a resumed run continues bit-identically.
        """
        if self.follower:
            return
        payload = {**state, "step": step, "rng": rng_state()}
        for which, wanted in (("last", True), (step, keep), ("best", best)):
            if wanted:
                atomic_torch_save(payload, self.layout.checkpoint(which))
        self._write_status("running")

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric lines logged after the checkpoint we resume from (they will be redone)."""
        path = self.dir / "metrics.jsonl"
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        self._last_metrics = {k: v for r in kept for k, v in r.items() if k != "time"}

    # -- stopping ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to save and stop after the current step (what SIGTERM does)."""
        self.stop_requested = True

    def check_stop(self) -> None:
        """Call between steps; raises :class:`StopRequested` after SIGTERM so the loop can exit."""
        if self.stop_requested:
            raise StopRequested()

    def _install_signal_handlers(self) -> None:
        self._old_handlers = {}

        def handler(signum, frame):  # noqa: ARG001
            log.warning("signal %d received: stopping %s after the current step", signum, self.name)
            self.stop_requested = True

        with contextlib.suppress(ValueError):  # not in the main thread (e.g. inside a Ray task): no handler
            self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)

    def _restore_signal_handlers(self) -> None:
        for sig, old in getattr(self, "_old_handlers", {}).items():
            signal.signal(sig, old)


def list_runs(runs_dir: Path, experiment: str | None = None) -> list[dict[str, Any]]:
    """Every run under ``runs_dir`` (optionally one experiment), with status and last metrics."""
    runs_dir = Path(runs_dir)
    if not runs_dir.exists():
        return []
    experiments = [runs_dir / experiment] if experiment else sorted(p for p in runs_dir.iterdir() if p.is_dir())
    out = []
    for exp_dir in experiments:
        if not exp_dir.is_dir():
            continue
        for run_dir in sorted(p for p in exp_dir.iterdir() if (p / "status.json").exists()):
            status = read_status(run_dir)
            meta_path = run_dir / "meta.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            out.append({"experiment": exp_dir.name, "name": run_dir.name, "dir": run_dir, "meta": meta, **status})
    return out


def find_run(runs_dir: Path, name: str) -> Path:
    """A run directory by path, by ``experiment/name`` or by unique name."""
    as_path = Path(name)
    if (as_path / "status.json").exists():
        return as_path
    candidates = [r["dir"] for r in list_runs(runs_dir) if r["name"] == name or f"{r['experiment']}/{r['name']}" == name]
    if not candidates:
        raise FileNotFoundError(f"no run named {name!r} under {runs_dir}")
    if len(candidates) > 1:
        raise FileNotFoundError(
            f"run name {name!r} is ambiguous: {', '.join(str(c) for c in candidates)}; use EXPERIMENT/NAME"
        )
    return candidates[0]


def config_of(cfg_cls: type, run_dir: Path) -> Any:
    """Rebuild a run's config object from its ``config.yaml``."""
    return from_dict(cfg_cls, load_yaml(run_dir / "config.yaml"))


__all__ = [
    "Run",
    "run_dir_for",
    "RunDir",
    "RunExistsError",
    "StopRequested",
    "atomic_torch_save",
    "atomic_write_text",
    "load_checkpoint",
    "list_runs",
    "find_run",
    "read_status",
    "config_of",
]
