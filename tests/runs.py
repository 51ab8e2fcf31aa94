"""What tests compare runs by."""

# How a run went rather than what it computed: these differ between runs that agree.
RUNTIME_COLUMNS = ("elapsed_s", "executors", "server_s")


def results(history: list[dict]) -> list[dict]:
    """The history's rows without the runtime columns."""
    return [{k: v for k, v in row.items() if k not in RUNTIME_COLUMNS} for row in history]


def own_lines(output: str) -> str:
    """A command's output without the lines Ray forwards from its workers ("(Coordinator pid=12)
    ..."; a worker that Ray stops at shutdown may print Ray's own traceback there)."""
    import re

    worker = re.compile(r"^(\x1b\[[0-9;]*m)*\(\S+ pid=\d+")
    return "\n".join(line for line in output.splitlines() if not worker.match(line))
