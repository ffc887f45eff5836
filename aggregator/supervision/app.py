"""Running a prepared command under trio: the signal listener, the command, the cleanup."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable

import trio

from aggregator.entry.launch import Prepared
from aggregator.protocol.errors import AggregatorError
from aggregator.supervision.control import listen_for_signals
from aggregator.supervision.display import LiveDisplay, wants_live_display
from aggregator.supervision.run import RunContext, new_supervision, verbose_trace
from aggregator.supervision.signals import EarlySignals


async def _supervised(ctx: RunContext, command: Callable[[RunContext], Awaitable[int]],
                      early: EarlySignals) -> int:
    control = ctx.sup.control
    code = 1
    async with trio.open_nursery() as nursery:
        await nursery.start(listen_for_signals, control)
        early.apply(control)
        try:
            code = await command(ctx)
        except AggregatorError as err:
            if control.stopping:
                from aggregator.adjust.commands import finish_stopped

                code = finish_stopped(ctx)
            else:
                ctx.output.error(err)
                code = 1
        finally:
            if ctx.sup.headstart is not None:
                ctx.sup.headstart.discard_all()  # an early start nobody took up
            if ctx.sup.sweeper is not None:
                await ctx.sup.sweeper.sweep()
            if ctx.verbose:
                for line in ctx.timing_summary():
                    ctx.output.note(f"timing: {line}")
        nursery.cancel_scope.cancel()
    return code


def execute(prepared: Prepared) -> int:
    args, output = prepared.args, prepared.output
    sup = new_supervision(prepared.root, os.environ, prepared.environment.io_timeout,
                          prepared.config, verbose_trace(output) if args.verbose else None,
                          sentinel=prepared.sentinel, subreaper=prepared.subreaper,
                          headstart=prepared.headstart)
    ctx = RunContext(prepared.root, args.app, prepared.config, prepared.environment,
                     prepared.drivers, output, sup, heartbeat=not args.dry_run,
                     verbose=args.verbose)
    is_adjust = not (args.version or args.query or args.dry_run)
    if is_adjust and wants_live_display(sys.stderr, os.environ):
        ctx.display = output.overlay = LiveDisplay(sys.stderr)
    from aggregator.adjust import commands

    stdin = prepared.stdin

    async def chosen(ctx: RunContext) -> int:
        if args.version:
            return await commands.version(ctx)
        if args.query:
            return await commands.query(ctx)
        if args.dry_run:
            from aggregator.adjust.dry_run import dry_run

            return await dry_run(ctx, stdin, as_json=args.json)
        return await commands.adjust(ctx, stdin)

    return trio.run(_supervised, ctx, chosen, prepared.early)
