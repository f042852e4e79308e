"""The Stability tab: a dynamic TensorBoard plugin (entry point group ``tensorboard_plugins``, name ``stability``).

Routes, under ``data/plugin/stability/``:

* ``index.js`` and the other modules of `frontend.STATIC` — the frontend (hand-written ES modules, shipped in the package);
* ``runs`` — ``{"runs": [{"name", "verdict" | "error"}]}``: every run TensorBoard knows that holds checks of the
  `StabilityMonitor`, with its verdict;
* ``run?name=RUN`` — one run's view (`lightning_stability.stability_tab.view.run_view`).

It serves only what lies under TensorBoard's log directory: a run name from a request is looked up among the runs
TensorBoard knows (and the directories found under the log directory by `sources.run_directories`), never joined
into a path; an unknown name is a 404 that echoes nothing of the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.backend import http_util  # type: ignore[import-untyped]
from tensorboard.plugins import base_plugin  # type: ignore[import-untyped]
from werkzeug import wrappers

from .frontend import STATIC, json_text, static_text
from .sources import run_directories, view_of_run

__all__ = ["PLUGIN_NAME", "StabilityPlugin"]

PLUGIN_NAME = "stability"


class StabilityPlugin(base_plugin.TBPlugin):
    """The Stability tab (see the module doc); TensorBoard builds it with its `base_plugin.TBContext`."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        self._log_dir = context.logdir

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Stability")

    def get_plugin_apps(self) -> dict[str, Any]:
        apps: dict[str, Any] = {f"/{name}": self._static_app(name) for name in STATIC}
        apps["/runs"] = wrappers.Request.application(self._runs_route)
        apps["/run"] = wrappers.Request.application(self._run_route)
        return apps

    def is_active(self) -> bool:
        """Whether some run holds the `StabilityMonitor`'s ``stability/accuracy``."""
        if self._provider is None:
            return False
        from tensorboard import context as tb_context  # type: ignore[import-untyped]

        listed = self._provider.list_scalars(tb_context.RequestContext(), experiment_id="", plugin_name="scalars")
        return any("stability/accuracy" in tags for tags in listed.values())

    # ------------------------------------------------------------------------------------------------ the routes

    def _static_app(self, name: str) -> Any:
        text = static_text(name)

        @wrappers.Request.application
        def serve(request: wrappers.Request) -> wrappers.Response:
            return http_util.Respond(request, text, "text/javascript")

        return serve

    def _local_root(self) -> Path | None:
        """TensorBoard's log directory if it is a local directory (a ``gs://`` one has no margin files here)."""
        if not self._log_dir or "://" in str(self._log_dir):
            return None
        root = Path(self._log_dir)
        return root if root.is_dir() else None

    def _known_runs(self, request: wrappers.Request) -> tuple[Any, str, dict[str, Path | None]]:
        """The request's context and experiment, and ``{run name: directory or None}`` of the runs TensorBoard
        knows (the directory when it lies under the local log directory)."""
        from tensorboard import plugin_util

        ctx, experiment = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        runs = self._provider.list_runs(ctx, experiment_id=experiment) if self._provider is not None else []
        root = self._local_root()
        directories = run_directories(root) if root is not None else {}
        return ctx, experiment, {run.run_name: directories.get(run.run_name) for run in runs}

    def _view(self, ctx: Any, experiment: str, name: str, directory: Path | None) -> dict[str, Any]:
        root = self._local_root()
        return view_of_run(
            self._provider, ctx, experiment, name, directory if root is not None else None, root or Path(".")
        )

    def _runs_route(self, request: wrappers.Request) -> wrappers.Response:
        ctx, experiment, runs = self._known_runs(request)
        listed = []
        for name, directory in sorted(runs.items()):
            try:
                view = self._view(ctx, experiment, name, directory)
            except ValueError:  # a run without checks of the monitor (another logger's run): not listed
                continue
            listed.append({"name": name, "verdict": view["verdict"]})
        return http_util.Respond(request, json_text({"runs": listed}), "application/json")

    def _run_route(self, request: wrappers.Request) -> wrappers.Response:
        ctx, experiment, runs = self._known_runs(request)
        name = request.args.get("name")
        if name is None or name not in runs:
            return http_util.Respond(request, json_text({"error": "unknown run"}), "application/json", code=404)
        try:
            view = self._view(ctx, experiment, name, runs[name])
        except ValueError:
            return http_util.Respond(
                request,
                json_text({"error": "the run holds no check of the StabilityMonitor"}),
                "application/json",
                code=404,
            )
        return http_util.Respond(request, json_text(view), "application/json")
