"""safeload demo: load real model files written by old software, refuse a hostile one.

Run with ``make demo``.  Everything it reads is in ``examples/models/`` (copied from the shared
legacy corpus by ``tools/make_demo_files.py``); nothing here calls ``pickle.load``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

import safeload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests._probes import check_probe  # noqa: E402

MODELS = Path(__file__).resolve().parent / "models"


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
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
