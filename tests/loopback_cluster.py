"""A real multi-node Ray cluster and MLflow server on this machine, reachable on loopback only.

Each Ray node is its own `ray start --block` process tree (the head with the dashboard and jobs
API, a worker joining it), started the way cluster.yaml starts them, with token authentication
on. Ray's gRPC servers bind every interface, so everything runs inside a private network
namespace whose only interface is `lo`: nothing started here can be reached from outside. The
head and worker get their own loopback addresses (127.0.0.2, 127.0.0.3), so Tune's `node_ip`
tells which node ran a trial. `stop` ends every process in the namespace and checks none is left.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_IP, WORKER_IP, MLFLOW_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.1"
GCS_PORT, DASHBOARD_PORT, MLFLOW_PORT = 6379, 8265, 5000
OBJECT_STORE_BYTES = 300 * 1024 * 1024
REPO = Path(__file__).resolve().parents[1]


def namespaces_available() -> bool:
    """Whether this user may create a network namespace (root, or a sandbox that allows it)."""
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


def tool(name: str) -> str:
    """A console script of this interpreter's environment (ray, mlflow), whatever PATH says."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


class LoopbackCluster:
    """Ray head + worker node and an MLflow server, in a private loopback-only network namespace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token_path = root / "auth_token"
        self.storage = root / "results"
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: list = []
        # Ray's session folder holds AF_UNIX sockets, whose paths may not exceed 107 bytes: keep it short.
        self.ray_temp = Path(tempfile.mkdtemp(prefix="kdray", dir="/tmp"))
        self.holder: subprocess.Popen | None = None
        self.namespace_inode: int | None = None

    # --- processes inside the namespace -------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """What cluster.yaml's setup puts in every node's ~/.bashrc: token auth, kdtune's storage and tracking."""
        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path),
                "KDTUNE_STORAGE_PATH": str(self.storage), "MLFLOW_TRACKING_URI": self.tracking_uri,
                "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}

    def inside(self, command: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *command]

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        """A long-running process in the namespace, in its own process group, logging to ROOT/NAME.log."""
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.logs.append(log)
        process = subprocess.Popen(self.inside(command), cwd=REPO, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def run(self, command: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A command in the namespace, run to the end."""
        return subprocess.run(self.inside(command), cwd=REPO, env=env or self.env, capture_output=True, text=True,
                              timeout=timeout)

    def python(self, code: str, timeout: float = 60) -> str:
        """Run Python code in the namespace (with the cluster's token); its stdout."""
        result = self.run([sys.executable, "-c", code], timeout)
        if result.returncode != 0:
            raise RuntimeError(f"probe failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- the cluster ----------------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))  # what `ray get-auth-token --generate` makes
        self.holder = subprocess.Popen(["unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep infinity"],
                                       stdout=subprocess.DEVNULL, start_new_session=True)
        self._wait(lambda: Path(f"/proc/{self.holder.pid}/ns/net").stat().st_ino != os.stat("/proc/self/ns/net").st_ino,
                   10, "the network namespace")
        self.namespace_inode = os.stat(f"/proc/{self.holder.pid}/ns/net").st_ino
        self.spawn("head", [tool("ray"), "start", "--head", "--block", "--node-ip-address", HEAD_IP,
                            "--port", str(GCS_PORT), "--num-cpus", "1", "--num-gpus", "0",
                            "--include-dashboard", "true", "--dashboard-host", HEAD_IP,
                            "--dashboard-port", str(DASHBOARD_PORT), *self._node_options()])
        self.spawn("mlflow", [tool("mlflow"), "server", "--host", MLFLOW_HOST, "--port", str(MLFLOW_PORT),
                              "--workers", "1", "--backend-store-uri", f"sqlite:///{self.mlflow_db}",
                              "--serve-artifacts", "--artifacts-destination", str(self.artifacts)])
        self.wait_for_nodes({HEAD_IP})
        self.start_worker()
        self.python(f"import urllib.request, time\n"
                    f"for _ in range(100):\n"
                    f"    try: urllib.request.urlopen('{self.tracking_uri}/health', timeout=2); break\n"
                    f"    except OSError: time.sleep(0.5)\n"
                    f"else: raise SystemExit('mlflow server did not answer')\n")

    def _node_options(self) -> list[str]:
        return ["--temp-dir", str(self.ray_temp), "--object-store-memory", str(OBJECT_STORE_BYTES),
                "--disable-usage-stats"]

    def start_worker(self) -> None:
        """A second Ray node joining the head, as `ray start --address=$RAY_HEAD_IP:6379` does on a worker."""
        self.spawn("worker", [tool("ray"), "start", "--block", "--address", self.address,
                              "--node-ip-address", WORKER_IP, "--num-cpus", "1", "--num-gpus", "0",
                              *self._node_options()])
        self.wait_for_nodes({HEAD_IP, WORKER_IP})

    def kill_worker(self) -> None:
        """The worker node dies at once: SIGKILL to its whole process tree (raylet, agents, trial processes,
        which Ray starts in sessions of their own) in one sweep, as when a machine is lost."""
        worker = self.processes.pop("worker")
        doomed = [worker.pid, *_descendants(worker.pid)]
        for pid in doomed:
            _signal(pid, signal.SIGKILL)
        worker.wait(30)

    def alive_nodes(self) -> set[str]:
        out = self.python(f"import ray, json\nray.init(address='{self.address}', logging_level='ERROR')\n"
                          "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))")
        return set(json.loads(out.strip().splitlines()[-1]))

    def wait_for_nodes(self, expected: set[str], timeout: float = 120) -> None:
        self._wait(lambda: self.alive_nodes() >= expected, timeout, f"Ray nodes {sorted(expected)}")

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{GCS_PORT}"

    @property
    def jobs_address(self) -> str:
        return f"http://{HEAD_IP}:{DASHBOARD_PORT}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{MLFLOW_HOST}:{MLFLOW_PORT}"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def submit(self, entrypoint: list[str]) -> list[str]:
        """The `ray job submit` command line for an entrypoint, against this cluster's jobs API."""
        return [tool("ray"), "job", "submit", "--address", self.jobs_address, "--", *entrypoint]

    # --- what listens, what is left ----------------------------------------------------------
    def interfaces(self) -> list[str]:
        out = self.run(["ip", "-o", "link", "show"], 30).stdout
        return [line.split(":")[1].strip() for line in out.splitlines() if line.strip()]

    def listening(self) -> list[str]:
        """Local addresses of every listening TCP socket in the namespace."""
        out = self.run(["ss", "-ltnH"], 30).stdout
        return [line.split()[3] for line in out.splitlines() if line.strip()]

    def pids_inside(self) -> list[int]:
        """Every process in the namespace except its holder."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != (self.holder.pid if self.holder else -1):
                try:
                    if os.stat(f"/proc/{entry}/ns/net").st_ino == self.namespace_inode:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def stop(self) -> list[int]:
        """End every process this cluster started; returns any still alive afterwards (should be none)."""
        if self.holder is None:
            shutil.rmtree(self.ray_temp, ignore_errors=True)
            return []
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            for pid in self.pids_inside():
                _signal(pid, sig)
            deadline = time.time() + grace
            while _living(self.pids_inside()) and time.time() < deadline:
                time.sleep(0.2)
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait(10)
        for log in self.logs:
            log.close()
        left = _living(self.pids_inside())
        if not left:
            shutil.rmtree(self.ray_temp, ignore_errors=True)
        return left

    def _wait(self, condition, timeout: float, what: str) -> None:
        """Poll until `condition()` holds; fail at once, with its log, if a process of the cluster has died."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}:\n{log}")
            try:
                if condition():
                    return
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(root: int) -> list[int]:
    """Every process below `root` in the process tree, found through /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _living(pids: list[int]) -> list[int]:
    """The pids that are still running (zombies, waiting for a parent to reap them, do not count)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive
