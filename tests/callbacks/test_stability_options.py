"""validate_stability_options and the StabilityMonitor's options: refusals naming the option, keyword-only
parameters, every option readable on the monitor as given (callbacks/stability_options.py)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor
from lightning_stability.callbacks.stability_options import validate_stability_options
from lightning_stability.distributions import MisconfigurationError

PARAMETERS = {name: p for name, p in inspect.signature(StabilityMonitor.__init__).parameters.items() if name != "self"}
DEFAULTS = {name: p.default for name, p in PARAMETERS.items()}

DATASET = TensorDataset(torch.arange(16.0).reshape(8, 2), torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]))
LOADER = DataLoader(DATASET, batch_size=4)


def test_every_parameter_is_keyword_only() -> None:
    assert [name for name, p in PARAMETERS.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY] == []
    with pytest.raises(TypeError):
        StabilityMonitor(None)  # type: ignore[misc]


def test_the_defaults_pass() -> None:
    validate_stability_options(**DEFAULTS)


@pytest.mark.parametrize(
    ("values", "option"),
    [
        (dict(dataset=DATASET, dataloader=LOADER), "dataloader"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=True), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(num_workers=-1), "num_workers"),
        (dict(num_workers=1.0), "num_workers"),
        (dict(patience=0), "patience"),
        (dict(patience=False), "patience"),
        (dict(tol=-0.01), "tol"),
        (dict(tol=math.nan), "tol"),
        (dict(tol=math.inf), "tol"),
        (dict(tol="0.1"), "tol"),
        (dict(tol=True), "tol"),
        (dict(weights="class"), "weights"),
        (dict(quantiles=(0.5, 1.0)), "quantiles"),
        (dict(quantiles=(0.0,)), "quantiles"),
        (dict(quantiles=(math.nan,)), "quantiles"),
        (dict(stochastic_data="ignore"), "stochastic_data"),
        (dict(subset_size=0), "subset_size"),
        (dict(subset_size=10, confidence=1.0), "confidence"),
        (dict(confidence=5.0), "confidence"),
        (dict(subset_size=10, full_every_n_epochs=0), "full_every_n_epochs"),
        (dict(full_every_n_epochs=2), "full_every_n_epochs"),
        (dict(subset_size=10, weights="balanced"), "weights"),
        (dict(subset_size=10, dataloader=LOADER), "subset_size"),
        (dict(check_data="yes"), "check_data"),
        (dict(blame_size=0), "blame_size"),
        (dict(to_image="picture"), "to_image"),
        (dict(save_samples="yes"), "save_samples"),
        (dict(grid=dict(zetas=(2.0,))), "grid"),
        (dict(grid=dict(no_such=1)), "grid"),
        (dict(quantiles=0.5), "quantiles"),
        (dict(weights=3), "weights"),
        (dict(forward_fn=3), "forward_fn"),
        (dict(save_margins=3), "save_margins"),
        (dict(subset_size=10, subset_seed="x"), "subset_seed"),
        (dict(num_workers=True), "num_workers"),
        (dict(subset_seed=1.5), "subset_seed"),
        (dict(grid=3), "grid"),
        (dict(quantiles="0.5"), "quantiles"),
        (dict(weights=torch.ones(4, 2)), "weights"),
        (dict(weights=torch.tensor([1.0, -1.0])), "weights"),
        (dict(weights=torch.tensor([1.0, math.nan])), "weights"),
        (dict(weights=torch.tensor([1.0, math.inf])), "weights"),
        (dict(weights=[1.0, 2.0]), "weights"),
        (dict(save_margins=""), "save_margins"),
    ],
)
def test_a_refusal_names_the_option(values: dict[str, Any], option: str) -> None:
    with pytest.raises(MisconfigurationError, match=f"`{option}") as caught:
        validate_stability_options(**{**DEFAULTS, **values})
    assert str(caught.value).startswith("StabilityMonitor: ")
    with pytest.raises(MisconfigurationError, match=f"`{option}"):  # the monitor refuses it at construction
        StabilityMonitor(**values)


@pytest.mark.parametrize(
    ("grid", "reason"),
    [
        (dict(zetas=(2.0,)), r"grid `zetas` must lie in \(0, 1\]"),
        (dict(no_such=1), r"unknown keys \['no_such'\].*zetas"),
        (dict(partition_size="x"), "partition_size"),
    ],
)
def test_a_bad_grid_keeps_the_reason(grid: dict[str, Any], reason: str) -> None:
    with pytest.raises(MisconfigurationError, match=r"^StabilityMonitor: `grid`") as caught:
        StabilityMonitor(grid=grid)
    assert caught.match(reason)


@pytest.mark.parametrize(
    "values",
    [
        dict(weights=None, ignore_index=None),
        dict(weights="uniform", ignore_index=0),
        dict(weights=torch.tensor([0.0, 1.0, 2])),
        dict(weights=torch.tensor([0, 1, 3])),
        dict(quantiles=[0.1, 0.9]),
        dict(quantiles=()),
        dict(save_margins=True),
        dict(save_margins=False),
        dict(save_margins="margins"),
        dict(save_margins=Path("margins")),
        dict(confidence=0.5, tol=1, subset_seed=-3),
    ],
)
def test_valid_values_pass(values: dict[str, Any]) -> None:
    validate_stability_options(**{**DEFAULTS, **values})
    StabilityMonitor(**values)


def test_every_n_epochs_refused_by_the_monitor() -> None:
    with pytest.raises(MisconfigurationError, match="`every_n_epochs` must be a positive integer, got 0"):
        StabilityMonitor(every_n_epochs=0)


def forward(module: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return module(batch[0]), batch[1]


def to_image(item: Any) -> torch.Tensor:
    return item[0]


def non_default_options(tmp_path: Path) -> dict[str, Any]:
    """A value other than the default for every parameter (``dataloader`` apart: it excludes ``dataset``)."""
    values = dict(
        dataset=DATASET,
        weights=torch.linspace(1.0, 2.0, 8, dtype=torch.float64),
        forward_fn=forward,
        batch_size=7,
        num_workers=2,
        stochastic_data="approximate",
        every_n_epochs=3,
        check_at_start=False,
        tol=0.125,
        stop_on_instability=True,
        patience=4,
        verbose=True,
        quantiles=(0.25, 0.75),
        log_histogram=False,
        log_figure=True,
        log_cost=False,
        blame_size=5,
        to_image=to_image,
        save_margins=tmp_path / "margins",
        save_samples=False,
        sample_history=True,
        grid=dict(zetas=(0.2,), partition_size=64),
        check_data=dict(max_cluster_size=3),
        subset_size=3,
        confidence=0.8,
        full_every_n_epochs=2,
        subset_seed=11,
        ignore_index=3,
    )
    return {name: value for name, value in values.items() if name in PARAMETERS}


def assert_readable(monitor: StabilityMonitor, options: dict[str, Any]) -> None:
    for name, value in options.items():
        got = getattr(monitor, name)
        if callable(value) or isinstance(value, torch.Tensor | TensorDataset | DataLoader):
            assert got is value, name
        elif name == "quantiles":
            assert tuple(got) == value, name
        elif name == "grid":
            assert dict(got) == value, name
        else:
            assert got == value and type(got) is type(value), name


def test_every_option_readable_as_given(tmp_path: Path) -> None:
    options = non_default_options(tmp_path)
    assert set(options) | {"dataloader"} == set(PARAMETERS)
    for name, value in options.items():
        assert not (value is DEFAULTS[name] or (type(value) is type(DEFAULTS[name]) and value == DEFAULTS[name])), name
    assert_readable(StabilityMonitor(**options), options)


def test_dataloader_readable_as_given() -> None:
    monitor = StabilityMonitor(dataloader=LOADER)
    assert monitor.dataloader is LOADER and monitor.dataset is None


def test_defaults_readable() -> None:
    monitor = StabilityMonitor()
    assert (monitor.batch_size, monitor.num_workers, monitor.subset_size, monitor.save_margins) == (None, 0, None, None)
    assert (monitor.quantiles, monitor.grid, monitor.blame_size, monitor.confidence) == (
        (0.01, 0.05, 0.5),
        {},
        16,
        0.95,
    )
    assert (monitor.log_histogram, monitor.log_figure, monitor.log_cost, monitor.sample_history) == (
        True,
        False,
        True,
        False,
    )
    assert monitor.tol == 0.0 and monitor.patience == 1 and monitor.every_n_epochs == 1 and monitor.check_at_start


def test_options_land_in_their_parts(tmp_path: Path) -> None:
    options = non_default_options(tmp_path)
    monitor = StabilityMonitor(**options)
    assert (monitor.source.batch_size, monitor.source.num_workers) == (7, 2)
    assert monitor.source.forward_fn is forward and monitor.source.dataset is DATASET
    assert (monitor.tol, monitor.confidence, monitor.blame_size) == (0.125, 0.8, 5)  # each check's CheckSettings
    assert (monitor.draw.size, monitor.draw.full_every_n_epochs, monitor.draw.seed) == (3, 2, 11)
    assert (monitor.stop_rule.patience, monitor.stop_rule.stop) == (4, True)
    assert monitor.outputs.save_margins == tmp_path / "margins" and monitor.outputs.data_check is True
    assert monitor.publisher.pictures.to_image is to_image and monitor.publisher.pictures.blame_size == 5
    assert monitor.statistics.keep_history is True and monitor.cost.enabled is False
