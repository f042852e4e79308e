// The tab's and the page's style sheet, added as one <style> element (its text set with textContent).

export const STYLE = `
body { margin: 0; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
  background: #fafafa; }
.st-root { padding: 8px 14px; box-sizing: border-box; max-width: 1280px; }
.st-bar { display: flex; align-items: center; gap: 10px; margin-bottom: 6px; }
.st-bar h1 { font-size: 15px; margin: 0; font-weight: 600; }
.st-bar select { font: inherit; padding: 2px 4px; max-width: 420px; }
.st-source { color: #757575; font-size: 12px; }
.st-cards { display: flex; gap: 6px; overflow-x: auto; margin-bottom: 6px; }
.st-card { border: 1px solid #ddd; border-left: 4px solid #9e9e9e; background: #fff; padding: 3px 8px;
  min-width: 180px; max-width: 300px; cursor: pointer; font-size: 12px; }
.st-card.st-selected { outline: 2px solid #1976d2; }
.st-card b { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.st-stable { border-left-color: #2e7d32; } .st-unstable { border-left-color: #c62828; }
.st-uncertified { border-left-color: #f9a825; }
.st-verdict { background: #fff; border: 1px solid #ddd; border-left: 6px solid #9e9e9e; padding: 6px 10px;
  margin-bottom: 8px; }
.st-verdict.st-stable { border-left-color: #2e7d32; } .st-verdict.st-unstable { border-left-color: #c62828; }
.st-verdict.st-uncertified { border-left-color: #f9a825; }
.st-headline { font-size: 17px; font-weight: 600; }
.st-verdict.st-unstable .st-headline { color: #b71c1c; }
.st-stop { font-size: 15px; font-weight: 600; color: #b71c1c; margin-top: 2px; }
.st-events { margin: 2px 0 0; padding-left: 18px; color: #b71c1c; }
.st-small { color: #616161; font-size: 12px; }
.st-main { display: grid; grid-template-columns: 560px minmax(0, 1fr); gap: 10px; }
.st-panel { background: #fff; border: 1px solid #ddd; padding: 6px 8px; }
.st-panel h2 { font-size: 13px; margin: 0 0 4px; font-weight: 600; }
.st-toggle button { font: inherit; font-size: 12px; border: 1px solid #bbb; background: #f5f5f5; padding: 1px 8px;
  cursor: pointer; }
.st-toggle button.st-on { background: #1976d2; color: #fff; border-color: #1976d2; }
.st-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; }
.st-swatch { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
.st-scroll { overflow: auto; }
table.st-table { border-collapse: collapse; font-size: 11.5px; width: 100%; font-variant-numeric: tabular-nums; }
.st-table th, .st-table td { padding: 1px 4px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
.st-table th { position: sticky; top: 0; background: #f5f5f5; }
.st-table tr.st-event td { background: #ffebee; color: #b71c1c; font-weight: 600; }
.st-panels { display: grid; grid-template-columns: 1fr 1fr; gap: 6px; margin-top: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #424242; }
`;
