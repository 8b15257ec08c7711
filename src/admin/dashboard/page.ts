// The dashboard's page: a header with the views, the view itself (filled by app.js) and two
// dialogs, one asking for the admin token, one confirming a rollback. No data here.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>outrigger admin</title>
<link rel="icon" href="/dashboard/icon.svg">
<link rel="stylesheet" href="/dashboard/style.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>outrigger</h1>
  <nav>
    <a href="#/" data-view="overview">Traffic</a>
    <a href="#/certs" data-view="certs">Certificates</a>
    <a href="#/config" data-view="config">Config</a>
  </nav>
  <span id="status" role="status"></span>
</header>
<main id="view"></main>
<dialog id="token-dialog">
  <form id="token-form">
    <label>Admin token <input id="token-input" type="password" autocomplete="off" required></label>
    <p id="token-error" class="error"></p>
    <button type="submit">Open</button>
  </form>
</dialog>
<dialog id="confirm-dialog">
  <p id="confirm-text"></p>
  <div class="buttons">
    <button type="button" id="confirm-cancel">Cancel</button>
    <button type="button" id="confirm-ok" class="danger">Roll back</button>
  </div>
</dialog>
</body>
</html>
`;

export const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path d="M1 12h14M3 12l2-6h6l2 6M8 2v4" fill="none" stroke="#2b6cb0" stroke-width="1.5"/></svg>
`;
