"""Every command and every Python snippet the README shows, run as written: exit status and wall time of each.

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

The Python snippets (:func:`snippets`) run top to bottom in one fresh process, as one session (a later
snippet uses an earlier one's ``result``), with library defaults; the snippet for a cluster runs as two
local processes, its ``jax.distributed.initialize()`` given a coordinator on localhost
(:func:`on_localhost`). ``tests/test_readme.py`` runs every snippet with the suite's short chains.
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


def snippets(readme: str) -> list[str]:
    """The README's ``python`` code blocks, in order."""
    return re.findall(r"```python\n(.*?)```", readme, re.S)


def split(readme: str) -> tuple[list[str], list[str]]:
    """The snippets that run as one session, and those for a cluster (they call ``jax.distributed``)."""
    code = snippets(readme)
    return [s for s in code if "jax.distributed" not in s], [s for s in code if "jax.distributed" in s]


def on_localhost(snippet: str, port: int, processes: int, process: int) -> str:
    """A cluster snippet with its ``jax.distributed.initialize()`` given a coordinator on this machine."""
    call = "jax.distributed.initialize()"
    assert snippet.count(call) == 1, "the cluster snippet no longer calls jax.distributed.initialize()"
    return snippet.replace(
        call,
        f'jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes={processes}, '
        f"process_id={process})",
    )


def title(snippet: str) -> str:
    """A snippet's first line that is not an import."""
    code = [line for line in snippet.splitlines() if line.strip() and not line.startswith(("import ", "from "))]
    return code[0] if code else snippet.strip().splitlines()[0]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SESSION = """
import sys, time
for i, code in enumerate(sys.argv[1:], 1):
    started = time.perf_counter()
    exec(compile(code, f"README python snippet {i}", "exec"), globals())
    print(f"SNIPPET {i} {time.perf_counter() - started:.1f}", flush=True)
"""


def run_snippets(readme: str, folder: Path, env: dict[str, str]) -> list[tuple[int, float, str]]:
    """(exit status, seconds, first line) of each snippet: the session's, then the cluster's."""
    session, cluster = split(readme)
    rows = []
    started = time.perf_counter()
    argv = [sys.executable, "-c", SESSION, *session]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    times = [float(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("SNIPPET ")]
    for i, snippet in enumerate(session):
        status = 0 if i < len(times) else (done.returncode or 1)
        rows.append((status, times[i] if i < len(times) else time.perf_counter() - started, snippet))
        if status:
            print(done.stderr[-3000:])
            break
    for snippet in cluster:
        port = free_port()
        started = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-c", on_localhost(snippet, port, 2, i)], cwd=folder, env=env)
            for i in range(2)
        ]
        status = max(proc.wait() for proc in procs)
        rows.append((status, time.perf_counter() - started, "(2 local processes) " + snippet))
    return rows


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
        lines += ["", f"{'exit':>4s} {'seconds':>8s}  Python snippet (first line; one session, in order)"]
        for status, seconds, snippet in run_snippets((ROOT / "README.md").read_text(), Path(tmp), env):
            failed += status != 0
            ran += 1
            lines.append(f"{status:4d} {seconds:8.1f}  {title(snippet)}")
            print(lines[-1], flush=True)
    lines += ["", f"{failed} of {ran} commands and snippets exited with a non-zero status"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from _report import prepend  # beside this script (tests import this module from elsewhere)

        prepend(args.out, text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
