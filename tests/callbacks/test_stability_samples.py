"""Per-sample dynamics and blame in the StabilityMonitor (docs/samples.md): on the scripted unstable run every value is
known by hand; on setups we did not design (a conv net on sklearn's digits, dict batches, a one-logit binary model)
``samples.csv`` equals a replay of the per-check margin files by the plain-Python oracle of tests/dynamics."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from lightning_stability import StabilityMonitor
from lightning_stability.dynamics import SAMPLE_COLUMNS
from lightning_stability.files import load_margin_files, load_samples_csv
from lightning_stability.records import BLAME_SETS, BlameSets, MarginPass

from ..dynamics.test_samples import oracle
from ..helpers import SMALL_GRID, DictDataset, DictMLP, fit
from .test_stability_instability import (
    GROUP_SIZES,
    NUM_CLASSES,
    SCRIPT,
    AssertScripted,
    Script,
    ScriptedClassifier,
    dataset,
)
from .test_stability_setups import IMAGES, TARGETS, ConvNet

GROUPS = [range(0, 40), range(40, 80), range(80, 100)]


def replayed(margin_files: list[dict]) -> dict[int, dict]:
    """The oracle's statistics from the per-check files, in check order."""
    passes = [(f["indices"], f["targets"], f["margins"], f["losses"], f["predicted"]) for f in margin_files]
    return oracle(passes)[0]


def margin_pass_of(margin_file: dict) -> MarginPass:
    f = margin_file
    return MarginPass(f["indices"], f["targets"], f["margins"], f["losses"], f["predicted"], f["num_classes"])


def assert_csv_equals(csv_path: Path, rows: dict[int, dict]) -> None:
    loaded = load_samples_csv(csv_path)
    assert loaded.index.tolist() == sorted(rows)
    for position, k in enumerate(loaded.index.tolist()):
        for name in SAMPLE_COLUMNS:
            value, expected = getattr(loaded, name)[position].item(), rows[k][name]
            if isinstance(expected, float):
                assert value == pytest.approx(expected, rel=1e-12, abs=1e-14), (k, name)
            else:
                assert value == expected, (k, name)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("scripted")
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=True, blame_size=4, tol=0.0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=len(SCRIPT) - 1,
        callbacks=[Script(), monitor, AssertScripted()],
        logger=TensorBoardLogger(tmp_path, name="run", version=0),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    with pytest.warns(UserWarning, match="StabilityMonitor: instability at epoch"):  # the script's events
        trainer.fit(ScriptedClassifier(), DataLoader(dataset(), batch_size=25))
    return monitor, Path(trainer.logger.log_dir)


def test_scripted_run_statistics_by_hand(scripted_run) -> None:
    """Group g's samples have the script's (float32) margin at every check; its logits are m on its class, 0 elsewhere,
    so p(label) = 1/(1 + (K − 1) e^{−m})."""
    monitor, log_dir = scripted_run
    checks = sorted(SCRIPT)
    expected = {}
    for group in range(len(GROUPS)):
        margins = [float(np.float32(SCRIPT[c][group])) for c in checks]
        probabilities = [1 / (1 + (NUM_CLASSES - 1) * math.exp(-m)) for m in margins]
        mean_p = sum(probabilities) / len(probabilities)
        learned = [i for i in range(len(margins)) if all(m > 0 for m in margins[i:])]
        expected[group] = dict(
            aum=sum(margins) / len(margins),
            forgetting_events=sum(1 for a, b in zip(margins, margins[1:]) if a > 0 >= b),
            first_learned_check=learned[0] if learned else -1,
            confidence=mean_p,
            variability=math.sqrt(sum((p - mean_p) ** 2 for p in probabilities) / len(probabilities)),
            correctness=sum(m > 0 for m in margins) / len(margins),
        )
    assert [expected[g]["forgetting_events"] for g in range(3)] == [2, 1, 0]
    assert [expected[g]["first_learned_check"] for g in range(3)] == [6, 6, 5]
    dynamics = monitor.sample_dynamics()
    assert dynamics.index.tolist() == list(range(sum(GROUP_SIZES)))
    for group, members in enumerate(GROUPS):
        for name, value in expected[group].items():
            column = getattr(dynamics, name)[list(members)]
            assert column.tolist() == pytest.approx([value] * len(members), rel=1e-6), (group, name)
        assert dynamics.target[list(members)].tolist() == [group] * len(members)
        assert dynamics.predicted[list(members)].tolist() == [group] * len(members)  # all correct at the end
    assert_csv_equals(log_dir / "samples.csv", replayed(load_margin_files(log_dir)))


def test_scripted_run_blames_the_flipped_group_in_files_text_and_a_tensorboard_grid(scripted_run) -> None:
    monitor, log_dir = scripted_run
    files = {f["epoch"]: f for f in load_margin_files(log_dir)}
    # events at epochs 1, 3, 4: group 0, group 1, then group 0 again flipped to wrong
    flipped = {1: GROUPS[0], 3: GROUPS[1], 4: GROUPS[0]}
    for epoch, f in files.items():
        assert f["blame"]["forgotten"].tolist() == list(flipped.get(epoch, [])), epoch
        order = sorted(range(100), key=lambda k: (float(f["margins"][k]), k))[:4]
        assert f["blame"]["worst"].tolist() == order, epoch
        assert f["blame"]["data_cluster"].numel() == 0
        cells = f["blame_cells"]["worst"]  # results, not the inputs (the grid draws those from the dataset)
        assert cells["index"].tolist() == order and "pictures" not in cells
        assert cells["target"].tolist() == [dataset()[k][1].item() for k in order]
        assert cells["margin"].tolist() == [float(f["margins"][k]) for k in order]
        assert cells["why"] == "worst margins" and cells["total"] == 4
        witness = f["blame"]["witness"]
        if witness.numel():  # an interval of margins: every sample with a margin inside it is in it
            inside = f["margins"][witness]
            low, high = float(inside.min()), float(inside.max())
            assert sorted(witness.tolist()) == [k for k in range(100) if low <= float(f["margins"][k]) <= high]

    assert any(f["blame"]["witness"].numel() for f in files.values())
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    steps_per_epoch = 4  # 100 samples in batches of 25
    event_steps = [steps_per_epoch * (epoch + 1) for epoch in (1, 3, 4)]  # a check's step: the count after its epoch
    images = events.Images("stability/blame")
    assert [image.step for image in images] == event_steps
    for image in images:
        picture = Image.open(io.BytesIO(image.encoded_image_string))
        assert picture.size == (image.width, image.height) and image.width > 200 and image.height > 100
    texts = {
        event.step: event.tensor_proto.string_val[0].decode()
        for event in events.Tensors("stability/summary/text_summary")
    }
    assert "40 samples flipped to wrong since the previous check (class 0: 40)." in texts[event_steps[0]]
    assert "40 samples flipped to wrong since the previous check (class 1: 40)." in texts[event_steps[1]]
    assert "flipped" not in texts[steps_per_epoch * 3]  # epoch 2: no event


def test_conv_net_on_digits_images_in_files_and_samples_csv(tmp_path: Path) -> None:
    data = TensorDataset(IMAGES[:160], TARGETS[:160])
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=tmp_path / "margins", blame_size=3)
    pl.seed_everything(0)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(ConvNet(), DataLoader(data, batch_size=32, shuffle=True))
    files = load_margin_files(tmp_path / "margins")
    assert len(files) == 4
    for f in files:
        cells = f["blame_cells"]["worst"]  # no picture in the file: index, label, prediction and margin
        assert cells["index"].tolist() == f["blame"]["worst"].tolist() and len(cells["index"]) == 3
        assert cells["target"].tolist() == TARGETS[cells["index"]].tolist() and "pictures" not in cells
        assert cells["predicted"].tolist() == f["predicted"][cells["index"]].tolist()
    assert_csv_equals(tmp_path / "margins" / "samples.csv", replayed(files))
    frame = monitor.sample_dynamics().to_pandas()
    assert len(frame) == 160 and list(frame.columns) == list(SAMPLE_COLUMNS)


def test_dict_batches_of_features_get_a_blame_table(tmp_path: Path) -> None:
    monitor = StabilityMonitor(
        grid=SMALL_GRID,
        save_margins=tmp_path,
        forward_fn=lambda module, batch: (module(batch["x"]), batch["y"]),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit([monitor], DictMLP(), DictDataset(120), max_epochs=2)
    # no instability event, so no grid to draw: the margin files need no picture and nothing is said
    assert [w for w in caught if "no blame grid is drawn" in str(w.message)] == []
    files = load_margin_files(tmp_path)
    assert all(list(f["blame_cells"]) == list(BLAME_SETS) for f in files)
    assert all(f["blame_cells"]["worst"]["index"].tolist() == f["blame"]["worst"][:16].tolist() for f in files)
    assert_csv_equals(tmp_path / "samples.csv", replayed(files))
    # the inputs (10 features) are no pictures: the grid of an event is a table of the blamed samples, said nothing
    blame, margin_pass = BlameSets(**files[-1]["blame"]), margin_pass_of(files[-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = monitor.publisher.pictures.log_grid(trainer, DictDataset(120), blame, margin_pass, 1, 1)
    assert [w for w in caught if "StabilityMonitor" in str(w.message)] == []
    assert rows[0][0].startswith("cause: smallest margins")  # causes first (records.CAUSES_FIRST)
    assert [cell.index for cell in rows[0][1]] == blame.worst[:16].tolist()
    assert all(cell.picture is None for _, cells in rows for cell in cells)
    worst = files[-1]["blame_cells"]["worst"]
    assert [cell.margin for cell in rows[0][1]] == worst["margin"].tolist()
    assert [cell.predicted for cell in rows[0][1]] == worst["predicted"].tolist()


def test_a_one_logit_binary_model_has_margins_plus_minus_z(tmp_path: Path) -> None:
    binary = (TARGETS[:160] % 2).long()
    monitor = StabilityMonitor(grid=SMALL_GRID, save_margins=tmp_path, to_image=lambda item: item[0] * 2)
    pl.seed_everything(0)
    model = ConvNet(outputs=1)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(model, DataLoader(TensorDataset(IMAGES[:160], binary), batch_size=32))
    model.eval()
    with torch.no_grad():
        z = model(IMAGES[:160])[:, 0].double()
    dynamics = monitor.sample_dynamics()
    margins = torch.where(binary == 1, z, -z)
    assert torch.allclose(dynamics.last_margin, margins, rtol=1e-6, atol=1e-6)
    assert dynamics.predicted.tolist() == (z > 0).long().tolist()
    files = load_margin_files(tmp_path)
    assert_csv_equals(tmp_path / "samples.csv", replayed(files))
    last = files[-1]
    k = int(last["blame"]["worst"][0])
    assert "pictures" not in last["blame_cells"]["worst"]  # the file holds results; the grid draws the pictures
    blame, margin_pass = BlameSets(**last["blame"]), margin_pass_of(last)
    rows = monitor.publisher.pictures.cells(trainer, TensorDataset(IMAGES[:160], binary), blame, margin_pass)
    assert torch.equal(rows[1][1][0].picture, IMAGES[k, 0] * 2)  # the worst row's first cell: the user's to_image


def test_bad_options_are_refused() -> None:
    from lightning_stability.distributions import MisconfigurationError

    with pytest.raises(MisconfigurationError, match="blame_size"):
        StabilityMonitor(blame_size=0)
    with pytest.raises(MisconfigurationError, match="to_image"):
        StabilityMonitor(to_image="pixels")
    with pytest.raises(MisconfigurationError, match="save_samples"):
        StabilityMonitor(save_samples="yes")
