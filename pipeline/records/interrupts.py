"""Stop after the current frame on Ctrl-C or SIGTERM, never in the middle of one.

A frame interrupted half-way is wasted work, and an exception thrown out of a diffusers
call can leave nothing useful behind. So during rendering the first SIGINT or SIGTERM
only raises a flag that the render loop checks between frames; the frame in progress
is finished and recorded, then the job stops and says how to resume. A second Ctrl-C
means "now": it raises KeyboardInterrupt at once (finished frames are safe on disk
either way, because each is recorded atomically).
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType


class StopRequested(Exception):
    """Raised by the render loop once it has stopped cleanly on a signal."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code


class GracefulStop:
    """Context manager that turns SIGINT/SIGTERM into a flag checked between frames."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.requested = signal.Signals(signum)

    def check(self) -> None:
        """Raise StopRequested if a signal arrived (call between frames)."""
        if self.requested is not None:
            raise StopRequested(self.requested.name, 128 + int(self.requested))
