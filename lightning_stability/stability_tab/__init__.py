"""The Stability tab: a dynamic TensorBoard plugin (`plugin.StabilityPlugin`, entry point group
``tensorboard_plugins``) and the same view as one self-contained HTML page (`page.write_page`), from what a run
already wrote: its TensorBoard events and, where saved, its margin files (docs/dashboard.md).

* `view` — one run's view as JSON-ready data (checks, verdict, samples to blame, the other monitors' panels);
* `verdict` — the verdict in plain words;
* `sources` — reading a run through TensorBoard's data provider and its margin files;
* `plugin` — the TensorBoard plugin and its routes;
* `page` — the HTML page;
* ``static/`` — the frontend, hand-written ES modules (no build step), shared by the tab and the page.

No Lightning here: the plugin runs inside TensorBoard.
"""

from __future__ import annotations

__all__: list[str] = []
