"""Run a learner in its own process until it is killed (for the SIGKILL test).

``python learner_process.py NATS_URL DB_PATH BATCH_SIZE``. The prompt is the same
``greet`` spec the in-process tests use; there is no automatic policy.
"""

from __future__ import annotations

import asyncio
import sys

from promptlab.events.jetstream import JetStreamBus
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.service import Learner
from promptlab.prompts.spec import PromptSpec

GREET = {
    "id": "greet",
    "reward": {"feedback": "thumbs_up"},
    "variants": [
        {"name": "a", "model": "simulated/echo", "template": "Hi", "champion": True},
        {"name": "b", "model": "simulated/echo", "template": "Hello"},
    ],
}


async def main(url: str, db: str, batch_size: int) -> None:
    bus = JetStreamBus(url=url)
    await bus.start()
    settings = LearnerSettings(batch_size=batch_size, snapshot_interval_ms=50)
    prompts = {"greet": PromptSpec.model_validate(GREET)}
    async with Learner(
        settings, StorageSettings(url=f"sqlite+aiosqlite:///{db}"), bus, prompts, policy=None
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
