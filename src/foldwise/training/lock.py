"""The run folder's lock: one process trains or predicts in a run folder at a time; a second one with the same run
waits and then finds it finished, one with a different run is refused at once. No torch here (runs.py's reason)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from foldwise.errors import FoldwiseError
from foldwise.fileio import make_dirs, not_writable
from foldwise.training.runs import INIT_FROM, RUN_IDENTITY, TEST_PIXELS, TRAIN_PIXELS, RunPlan, comparable_recipe

log = logging.getLogger(__name__)

LOCK = ".run.lock"  # in the run folder, held while a process trains or predicts there
HELD_KEYS = (*RUN_IDENTITY, TRAIN_PIXELS, TEST_PIXELS, INIT_FROM, "seed")  # what tells two runs of one folder apart


def held_keys(meta: dict) -> dict[str, str]:
    """A short digest of each identifying key of a run, as written into the lock file."""
    values = {k: comparable_recipe(meta.get(k)) if k == "recipe" else meta.get(k) for k in HELD_KEYS}
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16] for k, v in values.items()}


@contextmanager
def claim(plan: RunPlan):
    """Hold the run folder while this process trains there: a second process with the same run waits, then finds it
    finished; one with a different run (another lr, other data) is refused at once, naming the folder. Under
    torchrun only rank 0 holds it (the other ranks train the same run with it)."""
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    make_dirs(plan.run_dir)
    path, mine = plan.run_dir / LOCK, held_keys(plan.meta)
    try:
        lock = open(path, "a+")  # noqa: SIM115 (held for the block)
    except OSError as e:
        raise not_writable(plan.run_dir, e) from e
    with lock:
        wait_or_refuse(lock, path, plan, mine)
        lock.truncate(0)
        lock.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "keys": mine}) + "\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


def wait_or_refuse(lock, path: Path, plan: RunPlan, mine: dict[str, str]) -> None:
    """Take the lock; when another process holds it, wait if it runs the same run, else refuse."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    try:
        holder = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError:
        holder = {}  # the holder is still writing it: wait, then the finished-check decides
    differ = [k for k, v in holder.get("keys", {}).items() if mine.get(k) != v]
    if differ:
        raise FoldwiseError(
            f"{plan.run_dir}: another foldwise process (pid {holder.get('pid')} on {holder.get('host')}) is training "
            f"a different run here (its {differ[0].replace('_sha256', '')} differs). Wait for it to finish, or give "
            "this recipe another name."
        )
    log.info(
        "%s: another foldwise process (pid %s) is training this same run; waiting for it",
        plan.run_dir,
        holder.get("pid", "?"),
    )
    fcntl.flock(lock, fcntl.LOCK_EX)
