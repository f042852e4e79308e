"""The matplotlib figures of the package, one module per picture:

* `lightning_stability.figures.envelope` — the envelope figure the `StabilityMonitor` logs at each check;
* `lightning_stability.figures.report` — the offline run report (``lightning-stability report``);
* `lightning_stability.figures.data_check` — the witness picture of the data-cluster check (``check-data``);
* `lightning_stability.figures.blame_grid` — the grid of samples a check blames;
* `lightning_stability.figures.data_map` — the data map of the per-sample dynamics;
* `lightning_stability.figures.sample_report` — the offline per-sample pictures of a run (``report``,
  ``samples``).

Reading a run's TensorBoard event files is `lightning_stability.tensorboard_events`. matplotlib is imported
inside the functions (it is an optional dependency, in the ``examples`` extra); figures are drawn without a
display (``Agg``). No module here imports the callbacks or Lightning.
"""
