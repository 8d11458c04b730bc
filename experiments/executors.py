"""Where independent pieces of work (walk-forward folds) run: one after another in this process
(:class:`SerialExecutor`, the default) or as Ray tasks (:class:`RayExecutor`), on a local Ray
instance started on first use or on a cluster (``--ray-address``).

Every executor maps a callable over items and returns the results in item order; the first
exception raised (in item order) propagates as itself, and no result is returned. The callable must
be picklable for Ray: a module-level function or a :func:`functools.partial` of one (no lambdas or
closures), returning plain data. Ray is imported only here, lazily.

A Ray task gets one CPU and, when the cluster has GPUs, one GPU (Ray hides GPUs from tasks that
ask for none). Workers get the driver's ``LLMBT_HOME`` (adapters, signal cache) and Hugging Face
settings (:data:`FORWARDED_ENV`), so a local run and a cluster with a shared filesystem see the
same stores; API keys are never forwarded (set them on the workers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from llmbt.errors import ConfigError, did_you_mean, require

T = TypeVar("T")
R = TypeVar("R")

#: The names ``--executor`` accepts.
EXECUTORS = ("serial", "ray")

#: Environment variables passed on to Ray workers when the driver has them set.
FORWARDED_ENV = ("LLMBT_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class Executor(Protocol):
    """Runs ``fn`` on each item; ``remote`` is True when ``fn`` runs in other processes (its
    side effects, e.g. messages printed, stay there)."""

    remote: bool

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, in item order."""
        ...


class SerialExecutor:
    """Each item in turn, in this process (stubs and monkeypatches apply)."""

    remote = False

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``; stops at the first exception."""
        return [fn(item) for item in items]


class RayExecutor:
    """Each item as one Ray task.

    Args:
        address: a running cluster (``ray start --head`` prints it, e.g. ``10.0.0.5:6379``, or
            ``auto``); None starts a local Ray instance on this machine.
        num_cpus: CPUs of the local instance (None: all); ignored with ``address``.
        num_gpus: GPUs per task; None: 1 when the cluster has a GPU, else 0.
    """

    remote = True

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 num_gpus: float | None = None) -> None:
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Submit one task per item (``fn`` is stored once in the object store) and collect the
        results in item order; the first task error cancels the tasks after it and is raised as
        the task's own exception."""
        ray = self.connect()
        task = ray.remote(_call).options(num_cpus=1, num_gpus=self.task_gpus(ray),
                                         runtime_env={"env_vars": worker_env()})
        fn_ref = ray.put(fn)
        return _gather(ray, [task.remote(fn_ref, item) for item in items])

    def connect(self) -> Any:
        """The ``ray`` module, initialised (once per process) for this executor."""
        ray = require("ray", "ray", "--executor ray")
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
        return ray

    def task_gpus(self, ray: Any) -> float:
        """GPUs each task asks for (see ``num_gpus``)."""
        if self.num_gpus is not None:
            return self.num_gpus
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def make_executor(name: str, address: str | None = None) -> Executor:
    """The executor ``--executor NAME`` (``--ray-address`` ADDRESS) selects.

    Raises:
        ConfigError: an unknown name, or an address without ``ray``.
    """
    check_executor(name, address)
    return RayExecutor(address=address) if name == "ray" else SerialExecutor()


def check_executor(name: str, address: str | None) -> None:
    """Refuse an unknown ``--executor``, or ``--ray-address`` without ``--executor ray``."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name!r} is not valid.{did_you_mean(name, EXECUTORS)} "
                          f"Choose from {', '.join(EXECUTORS)}.")
    if address and name != "ray":
        raise ConfigError(f"--ray-address {address!r} needs --executor ray.")


#: The folders among :data:`FORWARDED_ENV`, passed on as absolute paths.
_FOLDERS = ("LLMBT_HOME", "HF_HOME", "HF_HUB_CACHE")


def worker_env() -> dict[str, str]:
    """The driver's values of :data:`FORWARDED_ENV` that are set, folders made absolute (a Ray
    worker on another node does not start in the driver's working directory)."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    return {k: os.path.abspath(os.path.expanduser(v)) if k in _FOLDERS else v for k, v in env.items()}


def _call(fn: Callable[[T], R], item: T) -> R:
    """The body of every Ray task (Ray resolves ``fn``'s object reference first)."""
    return fn(item)


def _gather(ray: Any, refs: list) -> list:
    """Results of ``refs`` in order; a task's exception cancels the rest and is re-raised."""
    out = []
    for i, ref in enumerate(refs):
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            for later in refs[i + 1:]:
                ray.cancel(later)
            if isinstance(exc.cause, Exception):
                raise exc.cause from exc
            raise
    return out
