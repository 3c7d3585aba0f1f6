"""Benchmark of the packaged app: bundle sizes, and the frozen app's start against
`python -m app` measured in the same run.

The start is timed from launching the process to its first main window being shown. The app
has no "quit once the window shows" switch, so both are launched with `--self-test` and timed
to its step 2 line, which is printed the moment the first profile's main window is visible:
that covers interpreter and Qt start-up, every import, the embedded relay and the wizard
creating a profile (with the self-test's cheap Argon2id parameters). Runs alternate between
the two and the median is kept; the very first frozen run (cold page cache for the bundle)
is reported beside it.

Uses the bundles in dist/ and builds them with packaging/build.sh when they are missing.
The last stdout line is one JSON object. BENCH_RUNS (default 5) sets the runs per side.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
WINDOW_SHOWN = "[2/"  # the self-test's "first main window shown" step


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    )


def time_to_window(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds from spawning `argv` to the self-test saying the main window is shown."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    took = None
    for line in proc.stdout:
        if took is None and line.startswith(WINDOW_SHOWN) and ": ok" in line:
            took = time.perf_counter() - started
    if proc.wait(timeout=120) != 0 or took is None:
        raise SystemExit(f"package bench: {argv[0]} --self-test failed")
    return took


def main() -> None:
    onefile = DIST / f"anonchat-{version()}-linux-{platform.machine()}"
    app = DIST / "anonchat" / "anonchat"
    relay = DIST / "anonchat-relay"
    if not (app.exists() and onefile.exists() and relay.exists()):
        print("bundles missing: building them with packaging/build.sh", flush=True)
        subprocess.run([str(ROOT / "packaging" / "build.sh")], check=True)

    sizes = {
        "app folder": size_mb(DIST / "anonchat"),
        "app one file": size_mb(onefile),
        "relay folder": size_mb(relay),
    }
    for archive in sorted(DIST.glob("*.tar.gz")):
        sizes[archive.name] = size_mb(archive)
    for name, mb in sizes.items():
        print(f"{name:>40}: {mb:7.1f} MB")

    with tempfile.TemporaryDirectory(prefix="anonchat-bench-") as tmp:
        cwd = Path(tmp)
        bare = {"HOME": tmp, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": tmp}
        bare["QT_QPA_PLATFORM"] = "offscreen"
        source_env = dict(bare, PYTHONPATH=str(ROOT))
        frozen_first = time_to_window([str(app), "--self-test"], cwd, bare)
        frozen, source, single = [], [], []
        for _ in range(RUNS):
            frozen.append(time_to_window([str(app), "--self-test"], cwd, bare))
            source.append(
                time_to_window([sys.executable, "-m", "app", "--self-test"], cwd, source_env)
            )
            single.append(time_to_window([str(onefile), "--self-test"], cwd, bare))
    f, s, o = (statistics.median(x) for x in (frozen, source, single))
    print(f"start to main window, median of {RUNS}:")
    print(f"{'frozen folder':>40}: {f:6.3f} s (first run {frozen_first:.3f} s)")
    print(f"{'frozen one file':>40}: {o:6.3f} s")
    print(f"{'python -m app (baseline)':>40}: {s:6.3f} s")
    print(
        json.dumps(
            {
                "app_bundle_mb": round(sizes["app folder"], 1),
                "app_onefile_mb": round(sizes["app one file"], 1),
                "relay_bundle_mb": round(sizes["relay folder"], 1),
                "frozen_start_ratio": round(f / s, 3),
                "onefile_start_ratio": round(o / s, 3),
                "frozen_start_s": round(f, 3),
                "frozen_first_start_s": round(frozen_first, 3),
                "onefile_start_s": round(o, 3),
                "source_start_s": round(s, 3),
                "runs": RUNS,
                "measured_to": "self-test step 2: first main window shown",
            }
        )
    )


if __name__ == "__main__":
    main()
