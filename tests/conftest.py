import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray per test module, as small as this machine."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3_server():
    """An S3-compatible server on localhost (moto's server mode), for this module's tests: the
    environment points pyarrow.fs (and its child processes) at it with test credentials. Skips where
    moto is not installed (the test extra installs it)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield S3(env)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


class S3:
    """The test server: its environment, buckets made and files put through pyarrow.fs."""

    def __init__(self, env: dict[str, str]):
        import pyarrow.fs as pafs

        self.env = env
        self.fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key="test",
                                    secret_key="test", region="us-east-1", allow_bucket_creation=True)

    def bucket(self, name: str) -> str:
        self.fs.create_dir(name)
        return f"s3://{name}"

    def upload(self, local, uri: str) -> None:
        import pyarrow.fs as pafs

        pafs.copy_files(str(local), uri.removeprefix("s3://"), destination_filesystem=self.fs)

    def names(self, uri: str) -> list[str]:
        import pyarrow.fs as pafs

        root = uri.removeprefix("s3://").rstrip("/")
        infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return sorted(info.path[len(root) + 1:] for info in infos if info.type == pafs.FileType.File)
