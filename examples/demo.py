"""safeload demo: load real model files written by old software, refuse a hostile one, convert
an old pickle into a verified safe file.

Run with ``make demo``.  Everything it reads is in ``examples/models/`` (copied from the shared
legacy corpus by ``tools/make_demo_files.py``); nothing here calls ``pickle.load``.  The safe
file is written to ``$TMPDIR/safeload-demo/``; the demo ends with ``safeload inspect`` and
``safeload verify`` run on it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

import safeload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests._probes import check_probe  # noqa: E402

MODELS = Path(__file__).resolve().parent / "models"
#: a random forest pickled by Python 3.6 / scikit-learn 0.21.3, with the outputs it gave there
OLD_PICKLE = MODELS / "py36_skl0213__RandomForestClassifier.p2.pkl"


def main() -> int:
    console = Console(width=max(Console().width, 110))
    console.rule("[bold]safeload demo: restricted loading of real legacy model files")
    table = Table(show_lines=False)
    for col in ("file", "written by", "estimator", "load (ms)", "outputs vs. old version"):
        table.add_column(col)
    failures = 0

    def age(path: Path) -> tuple[int, ...]:
        env = path.name.split("__")[0]  # py27_skl0204 -> (2, 7)
        digits = env[2:].split("_")[0]
        return (int(digits[0]), int(digits[1:]))

    for path in sorted(MODELS.glob("py*__*.*"), key=age):
        if path.name.endswith(".json"):
            continue
        env_name, _, fname = path.name.partition("__")
        env = json.loads((MODELS / f"{env_name}__ENV.json").read_text())
        probe = json.loads((MODELS / f"{env_name}__{fname.split('.')[0]}.probe.json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            model = safeload.load(path)
            elapsed = (time.perf_counter() - start) * 1000
            problem = check_probe(model, probe)
        failures += problem is not None
        table.add_row(
            fname,
            f"py {env['python']} / sklearn {env['sklearn']}",
            type(model).__name__,
            f"{elapsed:.1f}",
            "[green]identical[/green]" if problem is None else f"[red]{problem}[/red]",
        )
    console.print(table)

    hostile = MODELS / "malicious__os_system.pkl"
    console.rule("[bold]a hostile file")
    console.print(f"loading {hostile.name} (pickle.load would run a shell command) ...")
    try:
        safeload.load(hostile)
    except safeload.UntrustedTypesError as exc:
        console.print(f"[bold green]refused[/bold green], nothing imported or run:\n{exc}")
    else:
        console.print("[bold red]LOADED — this must never happen[/bold red]")
        return 1
    if (Path.cwd() / "PWNED.txt").exists():
        console.print("[bold red]the payload ran[/bold red]")
        return 1
    failures += convert_old_pickle(console)
    return 1 if failures else 0


def convert_old_pickle(console: Console) -> int:
    """Convert the old forest to a safe file, check it, then inspect and verify it."""
    out_dir = Path(tempfile.gettempdir()) / "safeload-demo"
    safe_file = out_dir / "random_forest_skl0213.safeload"
    console.rule("[bold]converting an old pickle into a safe file")
    console.print(f"safeload.convert({OLD_PICKLE.name!r}, {str(safe_file)!r})")
    sidecar = OLD_PICKLE.name.split(".")[0] + ".probe.json"
    console.print(f"reference outputs: {sidecar}, recorded under scikit-learn 0.21.3 (sidecar)\n")
    report = safeload.convert(OLD_PICKLE, safe_file)
    console.print(str(report), markup=False, highlight=False)
    if report.status != "verified":
        console.print("[bold red]the conversion was not verified[/bold red]")
        return 1
    probe = json.loads((MODELS / "py36_skl0213__RandomForestClassifier.probe.json").read_text())
    model = safeload.load(safe_file)  # a zip of JSON and .npy: no pickle anywhere
    problem = check_probe(model, probe)
    predicted = model.predict(probe["calls"][0]["input"]).tolist()
    console.print(f"\nloaded the safe file: {type(model).__name__}, predict -> {predicted}")
    console.print(
        "outputs vs. scikit-learn 0.21.3: "
        + ("[green]identical[/green]" if problem is None else f"[red]{problem}[/red]")
    )
    failures = problem is not None
    for command in (["inspect", str(safe_file)], ["verify", str(safe_file)]):
        console.rule(f"[bold]$ safeload {shlex.join(command)}")
        done = subprocess.run([sys.executable, "-m", "safeload", *command], check=False)
        failures += done.returncode != 0
    return int(failures)


if __name__ == "__main__":
    sys.exit(main())
