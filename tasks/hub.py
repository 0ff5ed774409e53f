"""Datasets from the Hugging Face hub through `datasets`, failing fast and in one sentence where the
hub cannot be reached.

Left to itself, `datasets.load_dataset` on a machine without a network retries the hub for about 25
seconds, logging every retry. So the hub is asked once first, with a short timeout (HUB_TIMEOUT
seconds for an HTTP HEAD of its endpoint; `HF_ENDPOINT` and proxies are honoured), unless the user
declared the machine offline (`HF_HUB_OFFLINE` or `HF_DATASETS_OFFLINE`: `datasets` then reads its
cache and fails at once). Every failure is one DataError sentence on one line, naming the dataset
and the reason and ending with how to give the task a local copy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from bench.core.errors import DataError, first_line

HUB_TIMEOUT = 3.0  # seconds the hub has to answer before a run gives up on it


def hub_declared_offline() -> bool:
    """Whether HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set (as `datasets` read them at import)."""
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


def hub_unreachable(timeout: float = HUB_TIMEOUT) -> Optional[str]:
    """None when the hub's endpoint answers an HTTP request within `timeout` seconds (with any status),
    else why not. The request runs in a thread, so that not even a hanging name lookup holds the run."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    outcome: list[str] = []

    def ask():
        try:
            get_session().head(constants.ENDPOINT, timeout=timeout)
            outcome.append("")
        except Exception as e:  # httpx's ConnectError, ConnectTimeout, ReadTimeout, ProxyError, ...
            outcome.append(first_line(e) if str(e).strip() else type(e).__name__)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"{constants.ENDPOINT} did not answer within {timeout:g} s"
    return f"{constants.ENDPOINT}: {outcome[0]}" if outcome[0] else None


def load_hub_dataset(source: str, *args, remedy: str, **kwargs):
    """`datasets.load_dataset(source, *args, **kwargs)`, or a DataError ending with `remedy` (how to give
    the task a local copy). A local folder loads as it is; a hub id once the hub has answered."""
    import datasets

    local, offline = Path(source).exists(), hub_declared_offline()
    if not local and not offline:
        why = hub_unreachable()
        if why is not None:
            raise DataError(f"The dataset {source!r} could not be loaded: the datasets hub cannot be reached ({why}); "
                            f"{remedy} (or set HF_HUB_OFFLINE=1 to use a copy in the datasets cache).")
    try:
        return datasets.load_dataset(source, *args, **kwargs)
    except Exception as e:  # datasets raises many types: ConnectionError, DatasetNotFoundError, ValueError, ...
        why = f"{type(e).__name__}: {first_line(e)}"
        if offline and not local:
            why = f"HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set and the datasets cache has no copy; {why}"
        raise DataError(f"The dataset {source!r} could not be loaded ({why}); {remedy}.") from None
