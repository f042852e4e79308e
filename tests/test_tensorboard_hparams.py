"""lightning_stability/tensorboard_hparams.py: HParams' session summaries, read back as TensorBoard reads them."""

from __future__ import annotations

from tensorboard.plugins.hparams import api_pb2, metadata

from lightning_stability.tensorboard_hparams import session_end, session_start


def test_the_session_end_tells_a_stopped_run_from_a_finished_one() -> None:
    for stopped, status in ((True, "STATUS_FAILURE"), (False, "STATUS_SUCCESS")):
        (value,) = session_end(stopped).value
        assert value.tag == metadata.SESSION_END_INFO_TAG
        info = metadata.parse_session_end_info_plugin_data(value.metadata.plugin_data.content)
        assert api_pb2.Status.Name(info.status) == status


def test_the_session_start_holds_the_hyperparameters_and_the_final_names() -> None:
    experiment, start = session_start({"lr": 0.5, "layers": [2, 3], "name": "x"}, ["stability_final/stopped"])
    (value,) = experiment.value
    content = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    assert {info.name for info in content.hparam_infos} == {"lr", "layers", "name"}
    assert {info.name.tag for info in content.metric_infos} == {"stability_final/stopped", "hp_metric"}
    (value,) = start.value
    hparams = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content).hparams
    assert hparams["layers"].string_value == "[2, 3]" and hparams["lr"].number_value == 0.5
