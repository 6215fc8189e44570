"""What a running `up` answers on its control socket: a method per command type, each
calling the dyno manager (or reading the log hub)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import control_commands as commands
from . import logs
from .control_commands import Command, Reply
from .errors import UsageError
from .logs import LogHub, LogLine

if TYPE_CHECKING:
    from .manager import DynoManager
    from .store import Release

#: Builds a folder into a pending release, in a worker thread: (the release, whether it is new).
Builder = Callable[[commands.Build, Callable[[str], None]], "tuple[Release, bool]"]


class ControlHandler:
    def __init__(
        self,
        manager: DynoManager,
        hub: LogHub,
        dashboard_url: str | None = None,
        builder: Builder | None = None,
    ) -> None:
        self.manager, self.hub, self.dashboard_url = manager, hub, dashboard_url
        self.builder = builder
        self.methods: dict[type[Command], Callable[[Any], AsyncIterator[Reply]]] = {
            commands.Ps: self.ps,
            commands.Deploy: self.deploy,
            commands.Build: self.build,
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
        async for line in _relayed(lambda line: self.manager.deploy(command.version, line)):
            yield commands.Progress(line)
        yield commands.Released(command.version)

    async def build(self, command: commands.Build) -> AsyncIterator[Reply]:
        if self.builder is None:
            raise UsageError("this dynosim up does not build; deploy with the app's own folder")
        loop, builder, built = asyncio.get_running_loop(), self.builder, []

        async def building(line: Callable[[str], None]) -> None:
            # one task, relayed but not owned by the request: a build that has begun is
            # released even when the CLI that asked leaves (Ctrl-C)
            def threadsafe(text: str) -> None:
                loop.call_soon_threadsafe(line, text)

            release, new = await asyncio.to_thread(builder, command, threadsafe)
            if new:
                await self.manager.deploy(release.version, line)
            built.append(commands.Built({"version": release.version, "new": new}))

        async for line in _relayed(building):
            yield commands.Progress(line)
        yield built[0]

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


async def _relayed(work: Callable[[Callable[[str], None]], Awaitable[Any]]) -> AsyncIterator[str]:
    """Run `work(line)`, yielding each progress line it gives as it comes; its failure (a
    ReleaseError, a BuildError) is raised after the lines, and goes back to the CLI."""
    lines: asyncio.Queue[str] = asyncio.Queue()
    running = asyncio.ensure_future(work(lines.put_nowait))
    while not (running.done() and lines.empty()):
        waiting = asyncio.ensure_future(lines.get())
        await asyncio.wait({waiting, running}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            yield waiting.result()
        else:
            waiting.cancel()
    running.result()
