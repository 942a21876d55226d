"""`python -m atoll.serving`: serve model directories over the Open Inference Protocol v2.

    python -m atoll.serving --host 127.0.0.1 --port 8000 --model iris=/models/iris/3 [--model ...]
                            [--grpc-port 8001]

Listens at once (`/v2/health/live`), loads the models in a thread, then answers
`/v2/health/ready` with 200 and logs "serving models iris(3) on 127.0.0.1:8000". A model that
fails to load stops the server with exit status 1. SIGTERM (or SIGINT) finishes the requests in
flight, then exits 0. With --grpc-port the same models are also served over KServe v2 / Triton's
gRPC protocol on that port of the same host (grpcserver.py), ready when HTTP is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any

from atoll.serving.app import MAX_BODY, ModelServer
from atoll.serving.formats import format_named, load_for_serving, read_meta
from atoll.serving.httpserver import HttpServer
from atoll.serving.protocol import ServedModel

log = logging.getLogger("atoll.serving")
GRACE_SECONDS = 30.0


def _model_arg(value: str) -> tuple[str, str]:
    name, sep, directory = value.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(f"--model takes NAME=DIR, got {value!r}")
    if "/" in name or name in (".", ".."):
        raise argparse.ArgumentTypeError(f"--model {value!r}: a model name cannot contain '/'")
    return name, directory


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m atoll.serving",
        description="Serve Atoll model directories over the Open Inference Protocol v2 (Triton's HTTP API).",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="address to bind (default: $HOST, which Atoll sets, else 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument(
        "--model", dest="models", type=_model_arg, action="append", required=True, metavar="NAME=DIR",
        help="serve the model directory DIR as model NAME (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--grpc-port", type=int, default=0,
        help="also serve KServe v2 / Triton gRPC on this port of the same host (default 0: no gRPC)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="compute threads per model call (default 1)")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY, help="request limit (default 16 MiB)")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        parser.error(f"model names given twice: {', '.join(twice)}")
    return args


def _served(name: str, directory: str) -> ServedModel:
    meta = read_meta(directory)
    fmt = format_named(meta["format"])
    return ServedModel(name, str(meta.get("version") or "1"), meta, fmt.platform)


def _load_in_thread(app: ModelServer, directories: dict[str, str], threads: int) -> asyncio.Future[None]:
    """Load every model in a daemon thread (a stop while loading need not wait for it)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def load() -> None:
        try:
            for model in app.models.values():
                model.run = load_for_serving(directories[model.name], model.meta, threads)
        except BaseException as e:
            loop.call_soon_threadsafe(settle, e)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=load, name="load-models", daemon=True).start()
    return done


async def serve(args: argparse.Namespace, app: ModelServer) -> int:
    loop = asyncio.get_running_loop()
    http = HttpServer(app.handle, args.max_body_bytes)
    try:
        host, port = await http.start(args.host, args.port)
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, e)
        return 2
    grpc_face: Any = None
    if args.grpc_port:
        # Imported only here: an environment without grpcio still serves HTTP.
        from atoll.serving.grpcserver import GrpcServer

        grpc_face = GrpcServer(app, args.max_body_bytes)
        try:
            grpc_port = await grpc_face.start(args.host, args.grpc_port)
        except OSError as e:
            log.error("cannot listen for gRPC on %s:%s: %s", args.host, args.grpc_port, e)
            await asyncio.gather(http.stop(0), grpc_face.stop(0))
            return 2
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loading = _load_in_thread(app, dict(args.models), args.threads)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waiting: list[asyncio.Future[Any]] = [loading, stopping]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if loading.done():
        error = loading.exception()
        if error is not None:
            log.error("a model failed to load, stopping: %s: %s", type(error).__name__, error)
            status = 1
        else:
            app.ready = True
            served = ", ".join(f"{m.name}({m.version})" for m in app.models.values())
            also = ""
            if grpc_face is not None:
                await grpc_face.set_serving(True)
                also = f", gRPC on {host}:{grpc_port}"
            log.info("serving models %s on %s:%s%s", served, host, port, also)
            await stopping
    else:
        loading.cancel()
    stopping.cancel()
    if grpc_face is None:
        await http.stop(GRACE_SECONDS)
    else:
        await asyncio.gather(http.stop(GRACE_SECONDS), grpc_face.stop(GRACE_SECONDS))
    return status


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return asyncio.new_event_loop()
    loop: Any = uvloop.new_event_loop()
    return loop  # type: ignore[no-any-return,unused-ignore]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Clients send arrays, not DataFrames: a model fitted on one would warn on every request.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    args = parse_args(argv)
    try:
        models = [_served(name, directory) for name, directory in args.models]
    except (OSError, ValueError) as e:
        log.error("%s", e)
        return 2
    app = ModelServer(models, max_body=args.max_body_bytes)
    # Not asyncio.run(loop_factory=...): users' environments may run Python 3.10.
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(serve(args, app))
    finally:
        loop.close()
