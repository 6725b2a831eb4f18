"""Every command the README shows, run on the embedded data: exit status and wall time of each.

Run:  python benchmarks/bench_readme.py [--out FILE]

The commands are read from the README (:func:`commands`): each ``bayes-scaling`` line of its bash blocks
(continuation lines joined, comments dropped, ``cmd && cmd`` split) and each inline ``bayes-scaling ...``
in backticks; a usage synopsis runs in its shortest form (every ``[optional part]`` dropped), and a
command naming a placeholder (``NAME``, ``COL``, ``FILE``), a pipe, or no subcommand (the program's name in
prose) is left out. The user's files the
README names are made from shipped ones: ``runs.csv`` is the embedded runs, ``my_priors.toml`` a copy of
``models/chinchilla.toml`` (as the README tells users to make it). Each command runs in a fresh process
in one scratch folder, sharing one program cache (the first runs pay the compilations). Every command
must exit with status 0; the test suite checks that each one parses (``tests/test_cli.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Words that stand for something the user fills in: a command naming one is not run.
PLACEHOLDERS = re.compile(r"\b(NAME|COL|FILE|DIR|CSV|K|B|P|M|U|C)\b|\.\.")


def commands(readme: str) -> list[str]:
    """The README's ``bayes-scaling`` commands, in order of appearance, each once, in runnable form."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines = []
        for line in block.splitlines():
            if line[:1].isspace() and lines:  # a synopsis continues on indented lines
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.strip())
        for line in lines:
            line = line.split("  #")[0].split(" # ")[0]
            found += [part.strip() for part in line.split("&&") if part.strip().startswith("bayes-scaling")]
    found += re.findall(r"`(bayes-scaling[^`]*)`", readme)
    runnable = []
    for command in found:
        while "[" in command:  # drop optional parts, innermost first
            command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
        command = " ".join(command.split())
        if "|" in command or PLACEHOLDERS.search(command.removeprefix("bayes-scaling")) or " " not in command:
            continue
        if command not in runnable:
            runnable.append(command)
    return runnable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    import bayes_scaling as bs

    script = Path(sys.executable).parent / "bayes-scaling"
    lines = [
        "# python benchmarks/bench_readme.py",
        f"# {platform.platform()}, {os.cpu_count()} cores; bayes_scaling {bs.__version__}; one program cache, "
        "first runs compile",
        "",
        f"{'exit':>4s} {'seconds':>8s}  command",
    ]
    failed = ran = 0
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(ROOT / "bayes_scaling" / "_data" / "chinchilla_hoffmann2022_fig4.csv", Path(tmp) / "runs.csv")
        shutil.copy(ROOT / "models" / "chinchilla.toml", Path(tmp) / "my_priors.toml")
        env = dict(os.environ, BAYES_SCALING_CACHE=str(Path(tmp) / "cache"))
        for command in commands((ROOT / "README.md").read_text()):
            argv = shlex.split(command)
            argv[0] = str(script) if script.exists() else argv[0]
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            failed += done.returncode != 0
            ran += 1
            lines.append(f"{done.returncode:4d} {seconds:8.1f}  {command}")
            print(lines[-1], flush=True)
            if done.returncode != 0:
                lines.append("      " + (done.stderr or done.stdout).strip().splitlines()[-1])
    lines += ["", f"{failed} of {ran} commands exited with a non-zero status"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
