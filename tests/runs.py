"""What tests compare runs by."""

# How a run went rather than what it computed: these differ between runs that agree.
RUNTIME_COLUMNS = ("elapsed_s", "executors", "server_s")


def results(history: list[dict]) -> list[dict]:
    """The history's rows without the runtime columns."""
    return [{k: v for k, v in row.items() if k not in RUNTIME_COLUMNS} for row in history]
