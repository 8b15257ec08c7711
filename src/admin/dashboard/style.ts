// The dashboard's stylesheet (served as /dashboard/style.css: the CSP allows no inline style).

export const STYLE_CSS = `
:root { --fg: #1a202c; --muted: #718096; --line: #e2e8f0; --bg: #f7fafc; --ok: #2f855a; --bad: #c53030; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 8px 16px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
nav a.current { font-weight: 600; border-bottom: 2px solid var(--accent); }
#status { margin-left: auto; color: var(--muted); font-size: 12px; }
main { padding: 16px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin-bottom: 12px; }
.card h3 { font-size: 14px; margin: 0 0 4px; display: flex; gap: 12px; align-items: baseline; }
.card h3 .facts { font-weight: normal; color: var(--muted); font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); }
svg.chart { width: 320px; height: 110px; background: #fff; }
svg.chart .axis { stroke: var(--line); }
svg.chart text { font-size: 9px; fill: var(--muted); }
svg.chart path { fill: none; stroke-width: 1.3; }
.s0 { stroke: var(--accent); } .s1 { stroke: #805ad5; } .s2 { stroke: #dd6b20; } .s3 { stroke: var(--bad); }
.legend span { font-size: 11px; margin-right: 8px; }
.legend .s0 { color: var(--accent); } .legend .s1 { color: #805ad5; } .legend .s2 { color: #dd6b20; } .legend .s3 { color: var(--bad); }
table { border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); font-size: 13px; }
.good { color: var(--ok); } .error, .bad { color: var(--bad); }
.diff { background: #fff; border: 1px solid var(--line); padding: 8px; font-size: 12px; overflow: auto; max-height: 480px; }
.diff .add { background: #f0fff4; color: var(--ok); } .diff .del { background: #fff5f5; color: var(--bad); } .diff .skip { color: var(--muted); }
button { font: inherit; padding: 3px 10px; }
button.danger { background: var(--bad); color: #fff; border: 1px solid var(--bad); border-radius: 3px; }
dialog { border: 1px solid var(--line); border-radius: 6px; }
dialog .buttons { display: flex; gap: 8px; justify-content: flex-end; }
`;
