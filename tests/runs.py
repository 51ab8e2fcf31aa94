"""What tests compare runs by."""

# How a run went rather than what it computed: these differ between runs that agree.
RUNTIME_COLUMNS = ("elapsed_s", "executors", "server_s", "round_s")


def results(history: list[dict]) -> list[dict]:
    """The history's rows without the runtime columns."""
    return [{k: v for k, v in row.items() if k not in RUNTIME_COLUMNS} for row in history]


def client_results(table) -> list[dict]:
    """clients.parquet's rows (a pyarrow table) without where and how long each client trained."""
    return table.drop_columns(["train_s", "executor"]).to_pylist()


def own_lines(output: str) -> str:
    """A command's output without the lines Ray forwards from its workers ("(Coordinator pid=12)
    ..."; a worker that Ray stops at shutdown may print Ray's own traceback there)."""
    import re

    worker = re.compile(r"^(\x1b\[[0-9;]*m)*\(\S+ pid=\d+")
    return "\n".join(line for line in output.splitlines() if not worker.match(line))


def record_results(record):
    """A federation.RoundRecord without how long the server step took and how many executors
    trained (the other timings are left out of its comparisons)."""
    from dataclasses import replace

    return replace(record, server_s=0.0, executors=0)
