"""What a running `up` answers on its control socket: a method per command type, each
calling the dyno manager (or reading the log hub)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from . import control_commands as commands
from . import logs
from .control_commands import Command, Reply
from .logs import LogHub, LogLine

if TYPE_CHECKING:
    from .manager import DynoManager


class ControlHandler:
    def __init__(self, manager: DynoManager, hub: LogHub, dashboard_url: str | None = None) -> None:
        self.manager, self.hub, self.dashboard_url = manager, hub, dashboard_url
        self.methods: dict[type[Command], Callable[[Any], AsyncIterator[Reply]]] = {
            commands.Ps: self.ps,
            commands.Deploy: self.deploy,
            commands.Sleep: self.sleep,
            commands.Wake: self.wake,
            commands.Reconcile: self.reconcile,
            commands.Restart: self.restart,
            commands.Stop: self.stop,
            commands.RunDetached: self.run_detached,
            commands.Logs: self.logs,
            commands.Dashboard: self.dashboard,
        }

    def __call__(self, command: Command) -> AsyncIterator[Reply]:
        return self.methods[type(command)](command)

    async def ps(self, _: commands.Ps) -> AsyncIterator[Reply]:
        yield commands.Dynos(self.manager.snapshot())

    async def deploy(self, command: commands.Deploy) -> AsyncIterator[Reply]:
        progress: asyncio.Queue[str] = asyncio.Queue()
        rolling = asyncio.ensure_future(self.manager.deploy(command.version, progress.put_nowait))
        while not (rolling.done() and progress.empty()):
            waiting = asyncio.ensure_future(progress.get())
            await asyncio.wait({waiting, rolling}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                yield commands.Progress(waiting.result())
            else:
                waiting.cancel()
        rolling.result()  # a ReleaseError goes back to the CLI
        yield commands.Released(command.version)

    async def sleep(self, _: commands.Sleep) -> AsyncIterator[Reply]:
        await self.manager.sleep()
        yield commands.Asleep(self.manager.asleep)

    async def wake(self, _: commands.Wake) -> AsyncIterator[Reply]:
        await self.manager.wake()
        yield commands.Asleep(self.manager.asleep)

    async def reconcile(self, _: commands.Reconcile) -> AsyncIterator[Reply]:
        await self.manager.reconcile()
        yield commands.Dynos(self.manager.snapshot())

    async def restart(self, command: commands.Restart) -> AsyncIterator[Reply]:
        yield commands.Restarted(await self.manager.restart(command.target))

    async def stop(self, command: commands.Stop) -> AsyncIterator[Reply]:
        await self.manager.stop_dyno(command.dyno)
        yield commands.Stopped(command.dyno)

    async def run_detached(self, command: commands.RunDetached) -> AsyncIterator[Reply]:
        name = await self.manager.run_detached(command.command_line, command.env, command.size)
        yield commands.Started(name)

    async def dashboard(self, _: commands.Dashboard) -> AsyncIterator[Reply]:
        yield commands.DashboardUrl(self.dashboard_url)

    async def logs(self, command: commands.Logs) -> AsyncIterator[Reply]:
        wanted = logs.Filter(command.ps, command.source)
        queue: asyncio.Queue[LogLine] = asyncio.Queue()
        unsubscribe = self.hub.subscribe(queue.put_nowait) if command.tail else None
        try:
            recent = [line for line in self.hub.recent if wanted(line)]
            num = command.num
            for line in recent[len(recent) - num :] if num < len(recent) else recent:
                yield commands.LogEntry(line)
            while unsubscribe:
                line = await queue.get()
                if wanted(line):
                    yield commands.LogEntry(line)
        finally:
            if unsubscribe:
                unsubscribe()
