"""The README's sharding snippets run as written: the Kubernetes Indexed Job's command for
every completion index, and the Airflow DAG's mapped commands (with stand-ins for Airflow's
`task` decorator and `BashOperator`), against a real pipeline and the kline-etl binary.

Usage: check_shard_snippets.py README.md PIPELINE.yaml

`kline-etl` must be on PATH. `/pipelines/backfill.yaml` and `/opt/pipelines/backfill.yaml`
in the snippets are replaced by PIPELINE; the Job's `pip install ... &&` part is left out
(the binary is already installed). Prints one line per snippet ("works"), exits non-zero on
the first failure.
"""

import subprocess
import sys
import types

import yaml

from interop import readme_blocks  # the README's sections, parsed as interop.py does


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def sh(cmd):
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"`{cmd}` exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def main():
    readme, pipeline = sys.argv[1], sys.argv[2]
    found = readme_blocks(open(readme).read(), "### Sharding: `--shard I/N`")
    (job,) = [b for lang, b in found if lang == "yaml"]
    (dag,) = [b for lang, b in found if lang == "python"]

    spec = yaml.safe_load(job)
    if spec["kind"] != "Job" or spec["spec"]["completionMode"] != "Indexed":
        fail(f"the Job is not an Indexed Job: {spec['spec']}")
    n = spec["spec"]["completions"]
    if spec["spec"]["parallelism"] != n:
        fail("parallelism differs from completions")
    container = spec["spec"]["template"]["spec"]["containers"][0]
    cmd = container["args"][0].split("&& ", 1)[1].replace("/pipelines/backfill.yaml", pipeline)
    if f"/{n}" not in cmd:
        fail(f"the Job's command does not run {n} shards: {cmd}")
    for index in range(n):
        sh(f"JOB_COMPLETION_INDEX={index}; {cmd}")
    print(f"Kubernetes Indexed Job: works ({n} pods' commands)")

    commands = []

    class BashOperator:
        def __init__(self, task_id, bash_command, **kw):
            self.task_id, self.bash_command = task_id, bash_command

        @classmethod
        def partial(cls, task_id, **kw):
            class Partial:
                def expand(self, bash_command):
                    commands.extend(bash_command)
                    return [BashOperator(f"{task_id}_{i}", c) for i, c in enumerate(bash_command)]
            return Partial()

        def __rrshift__(self, other):
            return self

    airflow = types.ModuleType("airflow")
    decorators = types.ModuleType("airflow.decorators")
    decorators.task = lambda f: f  # the mapped value is the function's return value
    operators = types.ModuleType("airflow.operators")
    bash = types.ModuleType("airflow.operators.bash")
    bash.BashOperator = BashOperator
    sys.modules.update({"airflow": airflow, "airflow.decorators": decorators,
                        "airflow.operators": operators, "airflow.operators.bash": bash})
    env = {}
    exec(dag.replace("/opt/pipelines/backfill.yaml", pipeline), env)
    if not commands:
        fail("the DAG mapped no shard")
    for c in commands:
        sh(c)
    sh(env["summary"].bash_command.replace("/tmp/summary.json", "/dev/null"))
    print(f"Airflow dynamic task mapping: works ({len(commands)} mapped commands)")


if __name__ == "__main__":
    main()
