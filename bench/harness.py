#!/usr/bin/env python3
"""End-to-end benchmark harness: kline-etl side by side with the tools users would pick instead.

For every job of bench/jobs.json and every contender of the job, the harness starts a fresh
`kline-etl simulate` (release build, spot only, the job's latency / weight limit / window),
runs the contender on the job (kline-etl: the job's pipeline; Python contenders: the script in
bench/contenders/ on the job's range or the contender's slice of it), and measures:

- wall time and rows/s (rows as written by the contender);
- requests, 429s and 418s, and the weight used per rate-limit window, from the simulator's
  `GET /__sim/stats` (share of the budget = mean weight of the full windows over the limit;
  the first and last window of a run are partial and left out);
- peak RSS of the contender's process (`os.wait4` rusage of that child alone);
- output bytes (data files only; kline-etl's own files under `_kline_etl/` are not counted);
- the simulator's own CPU time, to show it is not the bottleneck.

A job whose simulator has `"memo_pages": true` (the CPU and memory jobs) measures the client,
not the server: the simulator keeps every page it rendered (`simulate --memo-pages`) and each
contender runs once unmeasured into a scratch directory before the measured run against the
same simulator, so the measured run's pages are served from memory, like a static file server
(its cost is the simulator CPU column). Requests and weight count the measured run only.

Each measurement runs `--repeat` times (fresh simulator and empty output each time) and the
median is reported. It prints one markdown table and writes bench-out/results.{md,json}.

    ./scripts/bench.sh                     # everything (about 10 minutes on 2 cores)
    ./scripts/bench.sh --jobs cpu --repeat 3
    ./scripts/bench.sh --check             # job definitions, pipelines, scripts; no timing

Python contenders are installed from bench/requirements.txt (pinned) into bench/.venv, created
on first use; `--python PATH` uses an existing interpreter that has them instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import py_compile
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = ROOT / "bench-out"

# contender name -> (script, extra args); kline-etl is run by the harness itself.
PYTHON_CONTENDERS = {
    "python-binance": ("python_binance.py", []),
    "python-binance-nosleep": ("python_binance.py", ["--no-sleep"]),
    "ccxt": ("ccxt_pandas.py", []),
    "polars": ("polars_raw.py", []),
    "pandas": ("pandas_raw.py", []),
}
LABELS = {
    "kline-etl": "kline-etl",
    "python-binance": "python-binance 1.0.37 + pandas (notebook)",
    "python-binance-nosleep": "python-binance + pandas, sleeps patched out",
    "ccxt": "ccxt 4.5.90 fetch_ohlcv(paginate) + pandas",
    "polars": "raw pages + polars 2.1",
    "pandas": "raw pages + pandas 3.1 (done well)",
}
KINDS = {"throughput", "budget", "memory", "noop"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- job definitions


def load_jobs(path: Path = BENCH / "jobs.json") -> list[dict]:
    """Parse and check the jobs table; raises ValueError naming the job and field."""
    doc = json.loads(path.read_text())
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise ValueError(f"{path}: `jobs` must be a non-empty list")
    names = set()
    for job in jobs:
        name = job.get("name")
        where = f"{path}: job `{name}`"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9-]+", name) or name in names:
            raise ValueError(f"{where}: name must be unique lowercase a-z 0-9 -")
        names.add(name)
        for key in ("title", "kind", "pipeline", "simulator", "symbols", "intervals", "start",
                    "end", "contenders"):
            if key not in job:
                raise ValueError(f"{where}: missing `{key}`")
        if job["kind"] not in KINDS:
            raise ValueError(f"{where}: unknown kind `{job['kind']}`")
        if job["simulator"].get("memo_pages") and job["kind"] not in ("throughput", "memory"):
            raise ValueError(f"{where}: `memo_pages` is for throughput and memory jobs only")
        if not (ROOT / job["pipeline"]).is_file():
            raise ValueError(f"{where}: pipeline `{job['pipeline']}` not found")
        for c in job["contenders"]:
            if c["name"] != "kline-etl" and c["name"] not in PYTHON_CONTENDERS:
                raise ValueError(f"{where}: unknown contender `{c['name']}`")
            resolve_time(c.get("start", job["start"]))
            resolve_time(c.get("end", job["end"]))
    return jobs


def resolve_time(text: str) -> int:
    """Epoch ms of the job's time spellings: ISO date, `today`, `N days ago` (UTC)."""
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    m = re.fullmatch(r"(\d+) days ago", text)
    if m:
        t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=int(m.group(1)))
    elif text == "today":
        t = today
    else:
        t = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


# ---------------------------------------------------------------------------------- simulator


class Simulator:
    """`kline-etl simulate` in a child process; stopped with SIGINT (it shuts down cleanly)."""

    def __init__(self, binary: Path, settings: dict, logfile: Path):
        args = [str(binary), "simulate", "--port", "0", "--market", "spot",
                "--latency-ms", str(settings.get("latency_ms", 0)),
                "--window-secs", str(settings.get("window_secs", 60)),
                "--extra-symbols", str(settings.get("extra_symbols", 0))]
        if settings.get("weight_limit"):
            args += ["--weight-limit", str(settings["weight_limit"])]
        if settings.get("memo_pages"):
            args.append("--memo-pages")
        self.limit = int(settings.get("weight_limit") or 6000)
        self.log = open(logfile, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r} (see {logfile})")
        self.url = m.group(1)

    def stats(self) -> dict:
        return sim_stats_of(self.url)

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------- measuring


def run_child(cmd: list[str], env: dict, stdout: Path,
              stderr: Path) -> tuple[int, float, float, float]:
    """Run `cmd`; exit code, wall seconds, peak RSS (MiB) and CPU seconds of that child alone."""
    with open(stdout, "w") as out, open(stderr, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def data_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*")
               if f.is_file() and not any(part.startswith(("_", "."))
                                          for part in f.relative_to(root).parts))


def budget_share(stats: dict, limit: int) -> tuple[float, float, int] | None:
    """Mean and worst share of the limit over the full windows (first and last dropped)."""
    weights = [w["weight"] for w in stats.get("weight_windows", []) if w["market"] == "spot"]
    full = weights[1:-1]
    if not full:
        return None
    return sum(full) / (limit * len(full)), min(full) / limit, len(full)


def kline_etl_cmd(binary: Path, job: dict) -> list[str]:
    return [str(binary), "-q", "--no-progress", "run", str(ROOT / job["pipeline"]),
            *job.get("run_args", [])]


def first_run(cmd: list[str], env: dict, work: Path, what: str) -> dict:
    """An unmeasured run before the measured one; the simulator's statistics after it, to
    subtract."""
    code, _, _, _ = run_child(cmd, env, work / f"{what}.stdout", work / f"{what}.stderr")
    if code != 0:
        raise RuntimeError(f"{what} run exited {code}: see {work}/{what}.stderr")
    return sim_stats_of(env["BENCH_URL"])


def sim_stats_of(url: str) -> dict:
    with urllib.request.urlopen(url + "/__sim/stats", timeout=10) as r:
        return json.load(r)


def measure_once(binary: Path, python: str | None, job: dict, contender: dict,
                 work: Path, sim_binary: Path | None = None) -> dict:
    name = contender["name"]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    out = work / "out"
    out.mkdir()
    sim = Simulator(sim_binary or binary, job["simulator"], work / "simulator.log")
    try:
        env = dict(os.environ, BENCH_URL=sim.url, BENCH_OUT=str(out), NO_COLOR="1")
        if name == "kline-etl":
            cmd = kline_etl_cmd(binary, job)
        else:
            if python is None:
                raise RuntimeError("no python for the python contenders")
            script, extra = PYTHON_CONTENDERS[name]
            cmd = [python, str(BENCH / "contenders" / script), "--url", sim.url,
                   "--symbols", ",".join(contender.get("symbols", job["symbols"])),
                   "--interval", job["intervals"][0],
                   "--start", str(resolve_time(contender.get("start", job["start"]))),
                   "--end", str(resolve_time(contender.get("end", job["end"]))),
                   "--out", str(out), *extra]
        first = None
        if job["kind"] == "noop":  # the first run fills the dataset; the second is measured
            first = first_run(cmd, env, work, "first")
        elif job["simulator"].get("memo_pages"):  # fill the page memo, then measure
            warm = work / "warm"
            warm.mkdir()
            warm_cmd = [str(warm) if arg == str(out) else arg for arg in cmd]
            first = first_run(warm_cmd, dict(env, BENCH_OUT=str(warm)), work, "warm")
            shutil.rmtree(warm)
        cpu0 = sim.cpu_seconds()
        code, wall, rss, cpu = run_child(cmd, env, work / "stdout", work / "stderr")
        sim_cpu = sim.cpu_seconds() - cpu0
        stats = sim.stats()
        (work / "stats.json").write_text(json.dumps(stats, indent=1))
    finally:
        sim.stop()
    if code != 0:
        tail = (work / "stderr").read_text()[-2000:]
        raise RuntimeError(f"{name} exited {code}:\n{tail}")
    if name == "kline-etl":
        # Builds before the `_kline_etl/` directory wrote `<dataset>/_summary.json`.
        summary = next(iter([*out.rglob("_kline_etl/summary.json"), *out.rglob("_summary.json")]))
        run = json.loads(summary.read_text())["run"]
        rows = run["rows_new"]
        columns = 13
    else:
        lines = (work / "stdout").read_text().strip().splitlines()
        reported = json.loads(lines[-1])
        rows, columns = reported["rows"], reported["columns"]
    requests = stats["requests_total"] - (first["requests_total"] if first else 0)
    weight = sum(w["weight"] for w in stats["weight_windows"])
    weight -= sum(w["weight"] for w in first["weight_windows"]) if first else 0
    if first:  # only the measured run's windows
        seen = {w["window_start_ms"] for w in first["weight_windows"]}
        stats["weight_windows"] = [w for w in stats["weight_windows"]
                                   if w["window_start_ms"] not in seen]
    share = budget_share(stats, sim.limit) if job["kind"] in ("budget", "noop") else None
    return {
        "rows": rows, "columns": columns, "wall_s": wall, "rows_per_s": rows / wall if wall else 0,
        "requests": requests, "weight": weight,
        "budget_share": share[0] if share else None, "budget_worst": share[1] if share else None,
        "full_windows": share[2] if share else 0,
        "http_429": stats["sent_429"] - (first["sent_429"] if first else 0),
        "http_418": stats["sent_418"] - (first["sent_418"] if first else 0),
        "rss_mib": rss, "cpu_s": cpu, "output_bytes": data_bytes(out), "sim_cpu_s": sim_cpu,
        "rows_served": stats["rows_served"] - (first["rows_served"] if first else 0),
        "first_run_requests": first["requests_total"] if first else None,
    }


def median_of(runs: list[dict]) -> dict:
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if r[key] is not None]
            out[key] = statistics.median(values) if values else None
    out["runs"] = len(runs)
    out["wall_s_all"] = [round(r["wall_s"], 3) for r in runs]
    return out


# ------------------------------------------------------------------------------------ output


def fmt_int(n: float | None) -> str:
    return "–" if n is None else f"{n:,.0f}"


def table(results: list[dict]) -> str:
    head = ("| job | contender | rows | wall s | rows/s | CPU s (contender + simulator) "
            "| contender CPU s per M rows | requests | budget used | 429 / 418 | peak RSS MiB "
            "| output MB |")
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|"]
    for r in results:
        share = ("–" if r["budget_share"] is None else
                 f"{r['budget_share']:.1%} (worst {r['budget_worst']:.1%}, {r['full_windows']:.0f} windows)")
        lines.append(
            f"| {r['job']} | {LABELS[r['contender']]} | {fmt_int(r['rows'])} | {r['wall_s']:.2f} "
            f"| {fmt_int(r['rows_per_s'])} | {r['cpu_s']:.1f} + {r['sim_cpu_s']:.1f} "
            f"| {cpu_per_million(r):.2f} | {fmt_int(r['requests'])} | {share} "
            f"| {r['http_429']:.0f} / {r['http_418']:.0f} | {r['rss_mib']:.0f} "
            f"| {r['output_bytes'] / 1e6:.1f} |")
    return "\n".join(lines)


def cpu_per_million(r: dict) -> float:
    """The contender's CPU seconds (user + system) per million rows written."""
    return r["cpu_s"] / r["rows"] * 1e6 if r["rows"] else float("nan")


def goals(jobs: list[dict], results: list[dict]) -> list[str]:
    """One line per goal of the jobs that ran: the figure, the goal and met / NOT met."""
    by = {(r["job"], r["contender"]): r for r in results}
    out = []
    for job in jobs:
        k = by.get((job["name"], "kline-etl"))
        if not k:
            continue
        g = job.get("goals", {})

        def line(text: str, ok: bool) -> None:
            out.append(f"- {job['name']}: {text}: {'met' if ok else 'NOT met'}")

        if "min_rows_per_s" in g:
            line(f"{k['rows_per_s']:,.0f} rows/s end to end (goal >= {g['min_rows_per_s']:,})",
                 k["rows_per_s"] >= g["min_rows_per_s"])
        if "speedup_over" in g:
            other = by.get((job["name"], g["speedup_over"]["contender"]))
            if other:
                x = k["rows_per_s"] / other["rows_per_s"]
                line(f"{x:,.0f}x the rows/s of {LABELS[other['contender']]} "
                     f"(goal >= {g['speedup_over']['factor']}x)", x >= g["speedup_over"]["factor"])
        if "cpu_factor_over" in g:
            other = by.get((job["name"], g["cpu_factor_over"]["contender"]))
            if other:
                x = cpu_per_million(other) / cpu_per_million(k)
                line(f"{x:,.1f}x less CPU per row than {LABELS[other['contender']]} "
                     f"(goal >= {g['cpu_factor_over']['factor']}x)",
                     x >= g["cpu_factor_over"]["factor"])
        if "max_cpu_s_per_million" in g:
            c = cpu_per_million(k)
            line(f"{c:.2f} CPU s per million rows (goal <= {g['max_cpu_s_per_million']})",
                 c <= g["max_cpu_s_per_million"])
        if "min_budget_share" in g:
            s = k["budget_share"] or 0.0
            line(f"{s:.1%} of the weight budget used in full windows "
                 f"(goal >= {g['min_budget_share']:.0%})", s >= g["min_budget_share"])
        if "max_429" in g:
            line(f"{k['http_429']:.0f} 429s, {k['http_418']:.0f} 418s (goal 0)",
                 k["http_429"] <= g["max_429"] and k["http_418"] == 0)
        if "max_rss_mib" in g:
            line(f"peak RSS {k['rss_mib']:.0f} MiB for {k['rows']:,.0f} rows "
                 f"(goal < {g['max_rss_mib']} MiB)", k["rss_mib"] < g["max_rss_mib"])
        if job["kind"] == "noop":
            out.append(f"- {job['name']}: nothing new: {k['requests']:.0f} requests in "
                       f"{k['wall_s']:.2f} s (the first run made {k['first_run_requests']:.0f})")
    return out


# ------------------------------------------------------------------------------- environment


def ensure_binary(path: Path | None) -> Path:
    if path:
        return path
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "kline-etl"
    log("building the release binary (cargo build --release --locked --bin kline-etl)")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "kline-etl"],
                   cwd=ROOT, check=True)
    return binary


def ensure_python(python: str | None) -> str:
    """An interpreter with bench/requirements.txt: `--python`, else bench/.venv (created and
    installed on first use, reinstalled when the requirements change)."""
    if python:
        return python
    venv = BENCH / ".venv"
    req = BENCH / "requirements.txt"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    py = venv / "bin" / "python"
    if not py.exists() or not stamp.exists() or stamp.read_text() != digest:
        log(f"installing the Python contenders into {venv} (pinned in {req})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)], check=True)
        stamp.write_text(digest)
    return str(py)


def check(jobs: list[dict], binary: Path | None) -> int:
    """Job list, pipelines (`kline-etl validate` when a binary is at hand), contender scripts."""
    for script in sorted((BENCH / "contenders").glob("*.py")):
        py_compile.compile(str(script), doraise=True)
    pipelines = [str(ROOT / j["pipeline"]) for j in jobs]
    if binary:
        subprocess.run([str(binary), "validate", *pipelines], check=True)
    for j in jobs:
        names = ", ".join(c["name"] for c in j["contenders"])
        log(f"ok  {j['name']:<11} {j['kind']:<10} {j['pipeline']:<26} {names}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", help="comma-separated job names (default: all)")
    p.add_argument("--contenders", help="comma-separated contender names (default: all)")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; median reported")
    p.add_argument("--bin", type=Path, help="kline-etl binary (default: build the release one)")
    p.add_argument("--sim-bin", type=Path,
                   help="kline-etl binary that serves as the simulator (default: --bin); to time "
                        "an older build against today's server")
    p.add_argument("--python", help="interpreter with bench/requirements.txt (default: bench/.venv)")
    p.add_argument("--check", action="store_true", help="check the job definitions; time nothing")
    p.add_argument("--jobs-file", type=Path, default=BENCH / "jobs.json",
                   help="the jobs table (default: bench/jobs.json)")
    p.add_argument("--out", type=Path, default=OUT,
                   help="where results and each run's work directory go (default: bench-out)")
    a = p.parse_args()
    out_dir = a.out.resolve()

    jobs = load_jobs(a.jobs_file)
    if a.jobs:
        wanted = a.jobs.split(",")
        unknown = set(wanted) - {j["name"] for j in jobs}
        if unknown:
            p.error(f"unknown job(s): {', '.join(sorted(unknown))}")
        jobs = [j for j in jobs if j["name"] in wanted]
    if a.check:
        return check(jobs, a.bin)
    binary = ensure_binary(a.bin)
    check(jobs, binary)
    wanted_c = set(a.contenders.split(",")) if a.contenders else None
    needs_python = any(c["name"] != "kline-etl" and (not wanted_c or c["name"] in wanted_c)
                       for j in jobs for c in j["contenders"])
    python = ensure_python(a.python) if needs_python else None

    results = []
    for job in jobs:
        for c in job["contenders"]:
            if wanted_c and c["name"] not in wanted_c:
                continue
            runs = []
            for i in range(a.repeat):
                log(f"{job['name']}: {c['name']} (run {i + 1}/{a.repeat})")
                r = measure_once(binary, python, job, c, out_dir / "work" / job["name"] / c["name"],
                                 a.sim_bin)
                log(f"  {r['rows']:,} rows in {r['wall_s']:.2f} s = {r['rows_per_s']:,.0f} rows/s, "
                    f"{r['requests']:,} requests, peak RSS {r['rss_mib']:.0f} MiB")
                runs.append(r)
            results.append({"job": job["name"], "contender": c["name"], **median_of(runs)})

    cpus = os.cpu_count()
    md = [f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpus} cores "
          f"({os.uname().machine}, load average {os.getloadavg()[0]:.1f} at the end); "
          f"medians of {a.repeat} run(s).", "", table(results), ""]
    md += goals(jobs, results)
    text = "\n".join(md)
    print(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(text + "\n")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
