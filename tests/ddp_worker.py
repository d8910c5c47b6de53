"""`vaelab` as torchrun runs it in tests/test_ddp.py, with two additions for the tests.

Every process prints, as its last line, `WROTE <rank> <json list>`: the paths it
opened for writing, renamed or made (Python's audit events), less those of Python's
`__pycache__` and of torch's own scratch under `$TMPDIR` or wherever its compile cache
(`torchinductor_USER`) lands.
With `VAELAB_TEST_INTERRUPT=RANK:BATCH` the process of that rank sends itself a
SIGINT (a Ctrl-C) during its BATCH-th training batch, and no other process does.

    torchrun --nproc-per-node 2 tests/ddp_worker.py train vae ... --out DIR
"""

import json
import os
import signal
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
WRITES: list[str] = []


def record_writes(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[2], int) and args[2] & WRITE_FLAGS:
        WRITES.append(os.fsdecode(args[0]) if not isinstance(args[0], int) else str(args[0]))
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir"):
        WRITES.append(os.fsdecode(args[0]))


def interrupt(rank: str, batch: int) -> None:
    """Make process `rank` Ctrl-C itself in its `batch`-th training forward pass."""
    if os.environ["RANK"] != rank:
        return
    from vaelab.models import AE, VAE

    calls: list[int] = []
    for cls in (AE, VAE):
        forward = cls.forward

        def forward_then_interrupt(self, x, y=None, forward=forward):
            calls.append(1)
            if len(calls) == batch:
                os.kill(os.getpid(), signal.SIGINT)
            return forward(self, x, y)

        cls.forward = forward_then_interrupt


def main() -> int:
    sys.addaudithook(record_writes)
    if "VAELAB_TEST_INTERRUPT" in os.environ:
        rank, batch = os.environ["VAELAB_TEST_INTERRUPT"].split(":")
        interrupt(rank, int(batch))
    from vaelab.cli import main as vaelab

    try:
        return vaelab(sys.argv[1:])
    finally:
        scratch = os.environ.get("TMPDIR", "/nonexistent")
        ours = [p for p in WRITES if "__pycache__" not in p and "torchinductor" not in p]
        wrote = [p for p in ours if not p.startswith(scratch)]
        print(f"WROTE {os.environ['RANK']} {json.dumps(wrote)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
