"""A TCP forwarder: each LISTEN address passes its connections on to a TARGET, byte for byte.

    python -m tests.support.forwarder 10.201.1.1:5432=127.0.0.1:5432 [more pairs…]

It prints `ready` once every address listens, and runs until killed. bench/hosts.py puts one
on the machine's side of each network namespace's veth, so a "host" reaches the PostgreSQL
that listens on 127.0.0.1 only with no change to the server's configuration (PostgreSQL sees
127.0.0.1, which pg_hba already trusts). A connection closed on one side is closed on the
other: a SIGKILLed worker's sessions end at once and their locks go with them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _handler(target_host: str, target_port: int) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _serve(pairs: list[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = [
        await asyncio.start_server(_handler(*target), *listen, reuse_address=True)
        for listen, target in pairs
    ]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    pairs: list[tuple[tuple[str, int], tuple[str, int]]] = []
    for arg in sys.argv[1:]:
        listen, _, target = arg.partition("=")
        pairs.append((_address(listen), _address(target)))
    if not pairs:
        raise SystemExit("usage: python -m tests.support.forwarder LISTEN=TARGET …")
    asyncio.run(_serve(pairs))


if __name__ == "__main__":
    main()
