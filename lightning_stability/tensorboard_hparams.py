"""TensorBoard HParams summaries of a run: the experiment and the session start before training (the
hyperparameters and the names of the final values, HParams' columns), and the session end at fit end, whose status
tells a run the monitor stopped from a finished one."""

from __future__ import annotations

from typing import Any

__all__ = ["session_end", "session_start"]


def session_start(params: dict[str, Any], names: list[str]) -> tuple[Any, Any]:
    """The experiment summary (``params`` as hyperparameters, ``names`` and ``hp_metric`` as metrics) and the session
    start summary, as torch's ``hparams`` builds them; values other than bool, int, float and str as text."""
    from torch.utils.tensorboard.summary import hparams

    plain = {
        name: value if isinstance(value, bool | int | float | str) else str(value) for name, value in params.items()
    }
    experiment, start, _ = hparams(plain, {name: 0.0 for name in [*names, "hp_metric"]})
    return experiment, start


def session_end(stopped: bool) -> Any:
    """The session end summary: status ``STATUS_FAILURE`` when the monitor stopped training (instability or
    non-finite outputs), else ``STATUS_SUCCESS`` — so HParams tells the two apart."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata  # type: ignore[import-untyped]
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2  # type: ignore[import-untyped]
    from tensorboard.plugins.hparams.metadata import (  # type: ignore[import-untyped]
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )

    status = api_pb2.Status.Value("STATUS_FAILURE" if stopped else "STATUS_SUCCESS")
    info = plugin_data_pb2.SessionEndInfo(status=status)
    content = plugin_data_pb2.HParamsPluginData(session_end_info=info, version=PLUGIN_DATA_VERSION)
    plugin = SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content.SerializeToString())
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=SummaryMetadata(plugin_data=plugin))])
