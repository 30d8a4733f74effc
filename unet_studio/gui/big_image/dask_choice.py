"""Where "Predict all" runs on big images: in this process, on a LocalCluster, or on a Dask scheduler.

Predict > Big Images on Dask... asks for it (kept in the project's settings, ``big_images.dask_scheduler``):
empty for this process (one block after another), ``local`` for a ``distributed.LocalCluster`` of this
machine (a worker per GPU, else per two cores), or a scheduler's address (``tcp://host:8786``, e.g. one
started by dask-jobqueue on a cluster; its workers must see the image, the project and the model at the
same paths). The client is opened by the prediction worker, never on the GUI thread.
"""

from __future__ import annotations

import re
from typing import Callable

from PySide6 import QtWidgets

__all__ = ["ask_dask_address", "check_dask_address", "describe_dask_address"]

_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/]+(:\d{1,5})?/?$")


def check_dask_address(text: str) -> str:
    """``text`` as an address: "" (this process), "local", or ``scheme://host[:port]``.

    Raises ValueError with what to type instead.
    """
    text = text.strip()
    if text in ("", "local") or _ADDRESS.match(text):
        return text
    if re.match(r"^[\w.-]+:\d{1,5}$", text):  # host:port without a scheme: the usual tcp
        return f"tcp://{text}"
    raise ValueError(f"{text!r} is not a Dask scheduler address: type tcp://host:8786 (the address the "
                     "scheduler prints), local for this machine's cores, or nothing for this process")


def describe_dask_address(address: str) -> str:
    """A few words for the status bar."""
    if not address:
        return "in this process"
    return "on a local Dask cluster" if address == "local" else f"on the Dask scheduler at {address}"


def ask_dask_address(parent: QtWidgets.QWidget, current: str,
                     get_text: Callable = QtWidgets.QInputDialog.getText) -> str | None:
    """Ask where big images are predicted; the new address, or None when the person cancels.

    ``get_text`` has the signature of ``QInputDialog.getText`` (tests pass their own).
    """
    text, ok = get_text(parent, "Big images on Dask",
                        "Where \"Predict all\" runs on big images (the dask extra must be installed):\n"
                        "  nothing: in this process, one block after another\n"
                        "  local: a Dask cluster of this machine (a worker per GPU, else per two cores)\n"
                        "  tcp://host:8786: a running Dask scheduler (its workers must see the same paths)",
                        QtWidgets.QLineEdit.EchoMode.Normal, current)
    if not ok:
        return None
    return check_dask_address(text)
