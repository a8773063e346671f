"""Every pipeline end to end at tiny size on CUDA, with a JSON summary (``make gpu-check``).

Run on a CUDA machine with whatever interpreter holds torch (no venv, no download)::

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out runs/gpu-check/summary.json

Each stage is one ``python -m rl4rec.cli ...`` subprocess with ``device=cuda`` (and
``mixed_precision=bf16`` for the LM pipelines where the GPU supports it), a fresh ``runs_dir``
under the output folder, ``progress=false`` and tiny sizes, under a per-stage timeout. Per stage
the summary records the command, return code, wall seconds, the run's result file
(``<runs_dir>/*/*/test_results.json``), whether every number in it is finite, and its ``devices``
entry (``{"device": "cuda:0", "processes": N, "mixed_precision": ...}``), whose device must be a
CUDA one. Where 2+ GPUs are visible, SFT also runs under ``torch.distributed.run`` on 2 GPUs.
Exit code: 0 when every stage passed, 1 when one failed, 2 when no CUDA device is visible.

Without a GPU: ``--dry-run`` prints the commands; ``--cpu-rehearsal`` runs them all with
``device=cpu`` (the settings are checked, not CUDA). Helpers for ``make gpu-wheels`` /
``make gpu-check``: ``--wheel-list``, ``--check-wheels DIR``, ``--install-missing DIR`` (the
pure-Python dependencies that fail to import, from wheel files, into ``DIR/site``; nothing is
installed into the interpreter's own site-packages).

Only the standard library is imported at the top: the helpers run with any ``python3``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

#: pure-Python (py3-none-any) dependencies of rl4rec that a preinstalled CUDA stack may lack:
#: import name -> distribution name. gymnasium (and its deps) is imported by ``rl4rec.slate``.
PURE_DEPS = {
    "gymnasium": "gymnasium",
    "farama_notifications": "farama-notifications",
    "cloudpickle": "cloudpickle",
    "typing_extensions": "typing-extensions",
    "tqdm": "tqdm",
}
#: compiled (or stack) dependencies: no portable wheel; they must come with the machine's stack.
#: tensorboard is left out on purpose: every stage runs with ``tracking.backends=[]``.
STACK_DEPS = {
    "torch": "torch",
    "numpy": "numpy",
    "yaml": "pyyaml",
    "scipy": "scipy",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "accelerate": "accelerate",
    "safetensors": "safetensors",
}


# --------------------------------------------------------------------------- dependencies


def _site(wheel_dir: Path) -> Path:
    return wheel_dir / "site"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # a broken install counts as missing
        return False


def missing(deps: dict[str, str]) -> list[str]:
    return [dist for module, dist in deps.items() if not _importable(module)]


def install_missing(wheel_dir: Path) -> int:
    """Install the pure dependencies that fail to import from ``wheel_dir`` into ``wheel_dir/site``."""
    site = _site(wheel_dir)
    if site.is_dir():
        sys.path.insert(0, str(site))
    need = missing(PURE_DEPS)
    for dist in missing(STACK_DEPS):
        print(f"gpu-check: warning: {dist} does not import with {sys.executable}; it must come preinstalled (no wheel of it is brought in {wheel_dir}/), "
              "so the stages needing it will fail", file=sys.stderr)
    if not need:
        print("gpu-check: every pure-Python dependency imports")
        return 0
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    if not wheels:
        print(f"gpu-check: {', '.join(need)} missing and no wheels in {wheel_dir}/: run `make gpu-wheels` where PyPI "
              f"works and bring {wheel_dir}/ along", file=sys.stderr)
        return 1
    site.mkdir(parents=True, exist_ok=True)
    if _importable("pip"):
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "--find-links",
               str(wheel_dir), "--no-deps", "--target", str(site), *need]
        print("gpu-check: " + shlex.join(cmd))
        rc = subprocess.call(cmd)
        if rc:
            return rc
    else:  # no pip: a pure wheel is a zip of the files to put on the path
        for dist in need:
            norm = dist.replace("-", "_").lower()
            found = [w for w in wheels if w.name.split("-")[0].lower() == norm]
            if not found:
                print(f"gpu-check: no wheel of {dist} in {wheel_dir}/", file=sys.stderr)
                return 1
            print(f"gpu-check: no pip here: unpacking {found[-1].name} into {site}/")
            with zipfile.ZipFile(found[-1]) as z:
                z.extractall(site)
    importlib.invalidate_caches()
    sys.path.insert(0, str(site))
    still = missing(PURE_DEPS)
    if still:
        print(f"gpu-check: still missing after the install: {', '.join(still)}", file=sys.stderr)
        return 1
    print(f"gpu-check: installed {', '.join(need)} into {site}/")
    return 0


def check_wheels(wheel_dir: Path) -> int:
    """Every wheel in ``wheel_dir`` pure (``*-none-any``) and every pure dependency present."""
    wheels = sorted(wheel_dir.glob("*.whl"))
    bad = [w.name for w in wheels if not w.name.endswith("-none-any.whl")]
    names = {w.name.split("-")[0].lower() for w in wheels}
    absent = [d for d in PURE_DEPS.values() if d.replace("-", "_").lower() not in names]
    for w in wheels:
        print(f"  {w.name}")
    if bad or absent:
        print(f"gpu-wheels: not pure: {bad}; absent: {absent}", file=sys.stderr)
        return 1
    print(f"gpu-wheels: {len(wheels)} pure wheels in {wheel_dir}/ ({', '.join(PURE_DEPS.values())}); "
          f"not provided (compiled or part of the CUDA stack; must be preinstalled): {', '.join(STACK_DEPS.values())}")
    return 0


# --------------------------------------------------------------------------- stages


@dataclass
class Stage:
    """One subprocess. ``kind``: run (a result file with ``devices``), prep (exit code only),
    json (one JSON object on stdout)."""

    name: str
    argv: list[str]
    kind: str = "run"
    needs: tuple[str, ...] = ()
    runs_dir: Path | None = None
    processes: int = 1
    launcher: list[str] = field(default_factory=list)
    note: str = ""
    only_if: str = ""  # why it may be left out (shown by --dry-run)

    def command(self, python: str) -> list[str]:
        return [python, *self.launcher, "-m", "rl4rec.cli", *self.argv]


def build_stages(out: Path, device: str, mp: str, threads: int, device_keys: bool, ddp: bool) -> list[Stage]:
    runs = out / "runs"
    data = out / "data"
    dataset = data / "Synthetic"
    catalogue = data / "slate_catalogue.npy"
    logs = data / "slate_logs"

    def dev(lm: bool = False) -> list[str]:
        if not device_keys:
            return []
        # 'no' quoted: a bare `no` is YAML's false, which the Literal["no", "bf16", "fp16"] key rejects
        return [f"device={device}", *([f"mixed_precision={mp!r}" if mp == "no" else f"mixed_precision={mp}"] if lm else [])]

    def common(name: str) -> list[str]:
        return [f"runs_dir={runs / name}", "experiment=gpu-check", f"run_name={name}", "progress=false",
                "tracking.backends=[]", f"threads={threads}", "seed=0"]

    def run_dir(name: str) -> Path:
        return runs / name / "gpu-check" / name

    def stage(name: str, argv: list[str], **kw) -> Stage:
        return Stage(name, argv, runs_dir=runs / name if kw.get("kind", "run") == "run" else None, **kw)

    sft_sid = ["prompt.preamble=false", "tokenizer.vocab_size=400", "tasks.seq_title2sid=0", "tasks.sid2title=0",
               "max_steps=60", "batch_size=16", "eval_every=30", "eval_rows=50", "eval_beams=5", "select_metric=hr@1",
               "test_beams=5", "ks=[1,3,5]"]
    grpo = ["tasks.seq_title2sid=0", "tasks.title2sid=0", "group_size=4", "prompts_per_step=8", "max_steps=4",
            "eval_every=2", "eval_rows=50", "eval_beams=5", "select_metric=hr@1", "test_beams=5", "ks=[1,3,5]",
            "lr=1e-4", "warmup_ratio=0", "rollout_batch=8", "micro_batch=8"]
    slate = [f"embeddings={catalogue}", "val_users=50", "test_users=100", "steps=60", "random_steps=20", "eval_every=30"]
    stages = [
        stage("smoke", ["smoke", "steps=100", "eval_every=50", *common("smoke"), *dev()]),
        stage("genrec-synth", ["genrec", "synth", "--out", str(data)], kind="prep"),
        stage("genrec-baseline-sasrec",
              ["genrec", "train-baseline", "--model", "sasrec", "--dataset", str(dataset), "epochs=2", "eval_every=1",
               *common("genrec-baseline-sasrec"), *dev()], needs=("genrec-synth",)),
        stage("genrec-sft", ["genrec", "sft", f"dataset={dataset}", *sft_sid, *common("genrec-sft"), *dev(lm=True)],
              needs=("genrec-synth",)),
        stage("genrec-grpo",
              ["genrec", "grpo", "--init-from", str(run_dir("genrec-sft")), *grpo, *common("genrec-grpo"), *dev(lm=True)],
              needs=("genrec-sft",), note="beam rollouts"),
        stage("genrec-grpo-sample",
              ["genrec", "grpo", "--init-from", str(run_dir("genrec-sft")), *grpo, "rollout=sample",
               *common("genrec-grpo-sample"), *dev(lm=True)], needs=("genrec-sft",), note="sampled rollouts"),
        stage("genrec-sft-text",
              ["genrec", "sft", f"dataset={dataset}", "prompt.preamble=false", "tokenizer.vocab_size=400",
               "tasks.seq_sid2sid=0", "tasks.title2sid=0", "tasks.sid2title=0", "tasks.seq_title2sid=0",
               "tasks.seq_title2title=1", "max_steps=60", "batch_size=16", "eval_every=30", "eval_rows=40",
               "eval_task=seq_title2title", "eval_encoder=hash", "eval_max_new_tokens=12", "select_metric=ndcg@10",
               "ks=[1,5,10]", *common("genrec-sft-text"), *dev(lm=True)], needs=("genrec-synth",),
              note="free-text titles, hashing retriever"),
        stage("genrec-grpo-text",
              ["genrec", "grpo-text", "--init-from", str(run_dir("genrec-sft-text")), "retrieval.encoder=hash",
               "max_new_tokens=12", "group_size=4", "prompts_per_step=8", "max_steps=4", "eval_every=2", "eval_rows=40",
               "ks=[1,5,10]", "lr=1e-4", "warmup_ratio=0", "rollout_batch=8", "micro_batch=8",
               *common("genrec-grpo-text"), *dev(lm=True)], needs=("genrec-sft-text",)),
        stage("genrec-latent-sft",
              ["genrec", "latent-sft", f"dataset={dataset}", "train_recipe=file", "max_steps=60", "eval_every=30",
               "batch_size=16", "lr=3e-3", "warmup_steps=10", "eval.rows=64", "eval.test_rows=100", "eval.beams=5",
               "select_metric=ndcg@5", "eval.batch_size=32", "tokenizer.vocab_size=400",
               *common("genrec-latent-sft"), *dev(lm=True)], needs=("genrec-synth",)),
        stage("genrec-latent-grpo",
              ["genrec", "latent-grpo", "--init-from", str(run_dir("genrec-latent-sft")), "max_steps=4",
               "prompts_per_step=8", "latent_rl.group_size=4", "eval.rows=64", "eval.test_rows=100", "eval.beams=5",
               "select_metric=ndcg@5", "lr=1e-3", "warmup_steps=1", *common("genrec-latent-grpo"), *dev(lm=True)],
              needs=("genrec-latent-sft",)),
        stage("slate-catalogue", ["slate", "generate-embeddings", "--out", str(catalogue), "--seed", "7"], kind="prep"),
        stage("slate-eval-policy",
              ["slate", "eval-policy", "--policy", "sto", "--users", "50", "--embeddings", str(catalogue), "--json",
               f"threads={threads}", *(["--device", device] if device_keys else [])],
              kind="json", needs=("slate-catalogue",), note="simulator only (its --device flag)"),
        stage("slate-train-sac-topk",
              ["slate", "train", "agent=sac", "ranker=topk_ideal", "seeds=[1,2]", *slate,
               *common("slate-train-sac-topk"), *dev()], needs=("slate-catalogue",), note="2 seeds batched"),
        stage("slate-train-sac-gems",
              ["slate", "train", "agent=sac", "ranker=gems", "pretrain.sessions=300", "pretrain.epochs=1", *slate,
               *common("slate-train-sac-gems"), *dev()], needs=("slate-catalogue",), note="GeMS pretrained inline"),
        stage("slate-train-reinforce",
              ["slate", "train", "agent=reinforce", "ranker=softmax", "seeds=[1,2]", *slate,
               *common("slate-train-reinforce"), *dev()], needs=("slate-catalogue",)),
        stage("slate-train-slateq",
              ["slate", "train", "agent=slateq", "ranker=none", "seeds=[1,2]", "buffer_capacity=100", *slate,
               *common("slate-train-slateq"), *dev()], needs=("slate-catalogue",)),
        stage("slate-train-sac-wknn",
              ["slate", "train", "agent=sac", "ranker=wknn", "seeds=[1,2]", *slate, "steps=30", "random_steps=10", "eval_every=15",
               *common("slate-train-sac-wknn"), *dev()], needs=("slate-catalogue",)),
        stage("slate-test",
              ["slate", "test", str(run_dir("slate-train-sac-topk")), "users=50", "--json", f"threads={threads}",
               *dev()], kind="json", needs=("slate-train-sac-topk",), note="re-test of the best checkpoint"),
        stage("slate-logs",
              ["slate", "generate-logs", "--sessions", "300", "--batch-size", "300", "--embeddings", str(catalogue),
               "--out", str(logs), "--overwrite", "progress=false", f"threads={threads}",
               *(["--device", device] if device_keys else [])], kind="prep", needs=("slate-catalogue",)),
        stage("slate-pretrain-gems",
              ["slate", "pretrain", "ranker=gems", f"logs={logs}", "seeds=[1,2]", "pretrain.sessions=300",
               "pretrain.epochs=1", *common("slate-pretrain-gems"), *dev()], needs=("slate-logs",)),
        stage("slate-pretrain-mf",
              ["slate", "pretrain", "ranker=mf", f"logs={logs}", "mf.max_epochs=2", *common("slate-pretrain-mf"), *dev()],
              needs=("slate-logs",)),
    ]
    ddp_stage = stage(
        "genrec-sft-ddp2",
        ["genrec", "sft", f"dataset={dataset}", *sft_sid, *common("genrec-sft-ddp2"), *dev(lm=True)],
        needs=("genrec-synth",), processes=2, launcher=["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        note="2 processes", only_if="2+ GPUs visible (or --ddp on)",
    )
    if ddp:
        stages.append(ddp_stage)
    return stages


# --------------------------------------------------------------------------- one stage


def non_finite(obj: Any, path: str = "") -> tuple[int, list[str]]:
    """(numbers seen, paths of the non-finite ones) in nested dicts and lists."""
    if isinstance(obj, bool):
        return 0, []
    if isinstance(obj, (int, float)):
        return 1, ([] if math.isfinite(obj) else [path or "."])
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return 0, []
    n, bad = 0, []
    for k, v in items:
        dn, db = non_finite(v, f"{path}.{k}" if path else str(k))
        n, bad = n + dn, bad + db
    return n, bad


def find_result(runs_dir: Path) -> Path | None:
    for pattern in ("*/*/test_results.json", "*/*/results.json"):
        found = sorted(runs_dir.glob(pattern))
        if found:
            return found[0]
    return None


def _clip(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else text[: n // 3] + " ... " + text[-(2 * n) // 3:]


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    kept = [t for t in text if t.strip() and "%|" not in t]
    for i in range(len(kept) - 1, -1, -1):  # a traceback: its last line says the most
        if kept[i].startswith(("rl4rec: ", "Traceback")) or "Error" in kept[i].split(":")[0]:
            return _clip(" | ".join(kept[i:][-lines:]))
    return _clip(" | ".join(kept[-lines:]))


def _json_from_stdout(path: Path) -> dict | None:
    """The last JSON object the command printed, on one line or indented over several."""
    lines = path.read_text(errors="replace").splitlines()
    for i in reversed(range(len(lines))):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    return None


def run_stage(st: Stage, python: str, env: dict[str, str], logs: Path, timeout: float, want_device: str,
              want_mp: str | None) -> dict[str, Any]:
    cmd = st.command(python)
    rec: dict[str, Any] = {"name": st.name, "kind": st.kind, "command": shlex.join(cmd), "note": st.note}
    if st.runs_dir is not None and st.runs_dir.exists():
        shutil.rmtree(st.runs_dir)  # fresh, whatever an earlier check left
    log_path = logs / f"{st.name}.log"
    rec["log"] = str(log_path)
    t0 = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole group: torchrun's workers too
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = proc.returncode
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    rec["rc"] = rc
    problems: list[str] = []
    if timed_out:
        problems.append(f"timed out after {timeout:.0f}s")
    elif rc != 0:
        problems.append(f"exit code {rc}")
    result = None
    if st.kind == "run" and st.runs_dir is not None:
        path = find_result(st.runs_dir)
        rec["result_file"] = str(path) if path else None
        if path is not None:
            result = json.loads(path.read_text())
        elif not problems:
            problems.append(f"no test_results.json under {st.runs_dir}/*/*/")
    elif st.kind == "json":
        result = _json_from_stdout(log_path)
        if result is None and not problems:
            problems.append("no JSON object on stdout")
    if result is not None:
        n, bad = non_finite(result)
        rec["numbers"], rec["finite"] = n, not bad
        if bad:
            rec["non_finite"] = bad[:20]
            problems.append(f"{len(bad)} non-finite numbers (e.g. {bad[0]})")
        elif n == 0:
            problems.append("no numbers in the result")
        rec["metrics"] = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                          and ("/" in k or k in ("mean", "steps"))} if isinstance(result, dict) else {}
        if isinstance(result, dict) and isinstance(result.get("test"), dict):
            rec["metrics"].update({f"test/{k}": v for k, v in result["test"].items()
                                   if isinstance(v, (int, float)) and not isinstance(v, bool) and "@" in k and "ci95" not in k})
    if result is not None and (st.kind == "run" or (isinstance(result, dict) and "devices" in result)):
        devices = result.get("devices") if isinstance(result, dict) else None
        rec["devices"] = devices
        if not isinstance(devices, dict):
            problems.append("no 'devices' entry in the result (pipeline not on the shared loop?)")
        else:
            if not str(devices.get("device", "")).startswith(want_device):
                problems.append(f"devices.device={devices.get('device')!r}, not {want_device}")
            if int(devices.get("processes", 1)) != st.processes:
                problems.append(f"devices.processes={devices.get('processes')}, launched {st.processes}")
            if want_mp is not None and devices.get("mixed_precision") != want_mp:
                problems.append(f"devices.mixed_precision={devices.get('mixed_precision')!r}, asked {want_mp!r}")
    if rc != 0 or timed_out:
        rec["error"] = _tail(log_path)
    rec["problems"] = problems
    rec["status"] = "timeout" if timed_out else ("ok" if not problems else "failed")
    return rec


# --------------------------------------------------------------------------- the check


def environment(cuda: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable, "host": platform.node()}
    try:
        import torch

        info.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
        if cuda and torch.cuda.is_available():
            n = torch.cuda.device_count()
            info.update(gpu_count=n, gpus=[torch.cuda.get_device_name(i) for i in range(n)],
                        gpu_name=torch.cuda.get_device_name(0), bf16_supported=bool(torch.cuda.is_bf16_supported()),
                        cudnn=torch.backends.cudnn.version())
    except ImportError as err:
        info["torch"] = f"not importable: {err}"
    for mod in ("transformers", "accelerate", "numpy", "gymnasium"):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception as err:  # noqa: BLE001
            info[mod] = f"not importable: {type(err).__name__}"
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                            text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def child_env(rehearsal: bool, wheel_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(SRC)] + ([str(_site(wheel_dir))] if _site(wheel_dir).is_dir() else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               WANDB_MODE="offline")
    if rehearsal:
        env["CUDA_VISIBLE_DEVICES"] = ""  # device=auto anywhere inside must stay on the CPU as well
    return env


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def print_table(records: list[dict]) -> None:
    print(f"\n{'stage':<24} {'status':<8} {'rc':>4} {'secs':>7}  {'device':<8} {'finite':<6} problems")
    for r in records:
        d = r.get("devices") or {}
        dev = str(d.get("device", "-")) + (f"x{d['processes']}" if d.get("processes", 1) != 1 else "") if d else "-"
        fin = {True: "yes", False: "NO"}.get(r.get("finite"), "-")
        probs = "; ".join(r.get("problems", [])) or ""
        if r.get("error") and r.get("status") != "ok":
            err = r["error"].split(" | ")[-1]
            probs += f" :: {err[:240]}"
        print(f"{r['name']:<24} {r['status']:<8} {str(r.get('rc', '-')):>4} {r.get('wall_s', 0):>7.1f}  {dev:<8} {fin:<6} {probs}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="summary JSON (default runs/gpu-check/summary.json; "
                   "runs/gpu-check-rehearsal/summary.json with --cpu-rehearsal); runs, data and logs go next to it")
    p.add_argument("--dry-run", action="store_true", help="print the commands; run nothing (unless --cpu-rehearsal)")
    p.add_argument("--cpu-rehearsal", action="store_true", help="run every command with device=cpu (no GPU needed)")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="these stages (and the ones they need)")
    p.add_argument("--skip", nargs="+", metavar="STAGE", default=[], help="leave these stages out")
    p.add_argument("--ddp", choices=("auto", "on", "off"), default="auto", help="the 2-process SFT stage: auto = where 2+ GPUs are visible")
    p.add_argument("--stage-timeout", type=float, default=None, help="seconds per stage (default 240; 900 with --cpu-rehearsal)")
    p.add_argument("--threads", type=int, default=1, help="threads= of every stage (default 1)")
    p.add_argument("--mixed-precision", default=None, help="mixed_precision= of the LM stages (default bf16 where supported, else no)")
    p.add_argument("--no-device-keys", action="store_true",
                   help="pass no device=/mixed_precision= (to check the other settings of pipelines that lack those keys)")
    p.add_argument("--python", default=sys.executable, help="interpreter of the stages (default: this one)")
    p.add_argument("--wheels", default=str(REPO / ".whl"), help="wheel folder (its site/ goes on the stages' PYTHONPATH)")
    p.add_argument("--wheel-list", action="store_true", help="print the pure-Python wheels `make gpu-wheels` downloads")
    p.add_argument("--check-wheels", metavar="DIR", help="check that DIR holds every pure wheel, all py3-none-any")
    p.add_argument("--install-missing", metavar="DIR", help="install the pure deps that do not import from DIR into DIR/site")
    args = p.parse_args(argv)

    if args.wheel_list:
        print(" ".join(PURE_DEPS.values()))
        return 0
    if args.check_wheels:
        return check_wheels(Path(args.check_wheels))
    if args.install_missing:
        return install_missing(Path(args.install_missing))

    rehearsal = args.cpu_rehearsal
    wheel_dir = Path(args.wheels)
    if _site(wheel_dir).is_dir():
        sys.path.insert(0, str(_site(wheel_dir)))
    try:
        import torch
    except ImportError as err:
        print(f"gpu-check: torch does not import with {sys.executable}: {err}", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    if not cuda and not (args.dry_run or rehearsal):
        print(f"gpu-check: no CUDA device is visible (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
              "run on a CUDA machine, or use --dry-run / --cpu-rehearsal", file=sys.stderr)
        return 2
    device = "cpu" if rehearsal else "cuda"
    if args.mixed_precision:
        mp = args.mixed_precision
    elif rehearsal:
        mp = "no"
    else:
        mp = "bf16" if (not cuda or torch.cuda.is_bf16_supported()) else "no"  # dry-run without a GPU: as on a bf16 GPU
    gpus = torch.cuda.device_count() if cuda and not rehearsal else 0
    ddp = args.ddp == "on" or (args.ddp == "auto" and (gpus >= 2 or (args.dry_run and not rehearsal)))

    out_file = Path(args.out or ("runs/gpu-check-rehearsal/summary.json" if rehearsal else "runs/gpu-check/summary.json"))
    if not out_file.is_absolute():
        out_file = REPO / out_file
    out = out_file.parent
    stages = build_stages(out, device, mp, args.threads, not args.no_device_keys, ddp)
    names = [s.name for s in stages]
    unknown = [n for n in [*(args.only or []), *args.skip] if n not in names]
    if unknown:
        print(f"gpu-check: unknown stage(s) {unknown}; stages: {', '.join(names)}", file=sys.stderr)
        return 2
    if args.only:
        keep, todo = set(), list(args.only)
        by_name = {s.name: s for s in stages}
        while todo:
            n = todo.pop()
            if n not in keep:
                keep.add(n)
                todo.extend(by_name[n].needs)
        stages = [s for s in stages if s.name in keep]
    stages = [s for s in stages if s.name not in args.skip]

    if args.dry_run or rehearsal:
        print(f"# {len(stages)} stages, device={device}, mixed_precision={mp} (LM stages), out={out}")
        for s in stages:
            extra = f"   [only where {s.only_if}]" if s.only_if and not rehearsal else ""
            print(f"# {s.name}{' - ' + s.note if s.note else ''}{extra}\n{shlex.join(s.command(args.python))}")
        if not rehearsal:
            return 0

    timeout = args.stage_timeout or (900.0 if rehearsal else 240.0)
    for sub in ("runs", "data", "logs"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = child_env(rehearsal, wheel_dir)
    summary: dict[str, Any] = {
        "mode": "cpu-rehearsal" if rehearsal else "cuda",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment(cuda and not rehearsal),
        "device": device,
        "mixed_precision": mp,
        "stage_timeout_s": timeout,
        "ddp_stage": ddp,
        "all_ok": False,
        "total_s": 0.0,
        "stages": [],
    }
    if not ddp and not rehearsal:
        summary["ddp_skipped"] = f"{gpus} GPU(s) visible; the 2-process stage needs 2"
    print(f"gpu-check: {len(stages)} stages, device={device}, mixed_precision={mp} (LM stages), "
          f"{summary.get('gpu_name', 'no GPU')}, summary -> {out_file}", flush=True)
    t0 = time.perf_counter()
    status: dict[str, str] = {}
    for st in stages:
        failed_needs = [n for n in st.needs if status.get(n, "ok") != "ok"]
        if failed_needs:
            rec = {"name": st.name, "kind": st.kind, "command": shlex.join(st.command(args.python)), "status": "skipped",
                   "problems": [f"needs {', '.join(failed_needs)}"], "wall_s": 0.0}
        else:
            print(f"[{time.perf_counter() - t0:6.1f}s] {st.name} ...", flush=True)
            rec = run_stage(st, args.python, env, out / "logs", timeout, device, None if args.no_device_keys or
                            not any(a.startswith("mixed_precision=") for a in st.argv) else mp)
            print(f"          {rec['status']} in {rec['wall_s']:.1f}s" +
                  (f": {'; '.join(rec['problems'])}" if rec["problems"] else ""), flush=True)
        status[st.name] = rec["status"]
        summary["stages"].append(rec)
        summary["total_s"] = round(time.perf_counter() - t0, 2)
        write_json(out_file, summary)  # after every stage: a killed check still leaves its results
    summary["all_ok"] = all(r["status"] == "ok" for r in summary["stages"])
    summary["total_s"] = round(time.perf_counter() - t0, 2)
    write_json(out_file, summary)
    print_table(summary["stages"])
    ok = sum(r["status"] == "ok" for r in summary["stages"])
    print(f"\n{ok}/{len(summary['stages'])} stages ok in {summary['total_s']:.0f}s "
          f"({summary['mode']}; torch {summary.get('torch')}, CUDA {summary.get('cuda')}); summary: {out_file}")
    return 0 if summary["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
