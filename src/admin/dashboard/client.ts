// The dashboard script's shared part (browser JavaScript, kept as a string and served in
// /dashboard/app.js): the admin token (asked once, kept in sessionStorage for the tab's life),
// calls to the admin API with it, DOM helpers that set text (never HTML: names come from configs),
// the hash router, and the two-second refresh of the traffic views.

export const CLIENT_JS = String.raw`
var TOKEN_KEY = 'outrigger-admin-token';
var REFRESH_MS = 2000;
var VIEWS = {};
var refreshing = false;

function el(tag, attrs) {
  var node = document.createElement(tag);
  setAttrs(node, attrs);
  appendAll(node, Array.prototype.slice.call(arguments, 2));
  return node;
}

function svgEl(tag, attrs) {
  var node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(node, attrs);
  appendAll(node, Array.prototype.slice.call(arguments, 2));
  return node;
}

function setAttrs(node, attrs) {
  for (var k in attrs || {}) {
    if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, String(attrs[k]));
  }
}

function appendAll(node, children) {
  children.forEach(function (c) {
    if (c === null || c === undefined) return;
    if (Array.isArray(c)) appendAll(node, c);
    else node.append(c instanceof Node ? c : String(c));
  });
}

function setStatus(text, isError) {
  var s = document.getElementById('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

/** The token dialog; resolves once a token was entered (the first call of the session, or after a 401). */
function askToken(why) {
  var dialog = document.getElementById('token-dialog');
  document.getElementById('token-error').textContent = why || '';
  if (!dialog.open) dialog.showModal();
  return new Promise(function (resolve) {
    document.getElementById('token-form').onsubmit = function (e) {
      e.preventDefault();
      var input = document.getElementById('token-input');
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      dialog.close();
      resolve();
    };
  });
}

function TokenRefused() {}

/** An admin API call with the bearer token; JSON in and out. A 401 forgets the token and asks again. */
function api(method, path, body) {
  var headers = { authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) }).then(function (res) {
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken('The admin API refused that token.').then(render);
      throw new TokenRefused();
    }
    return res.json().then(function (json) {
      if (!res.ok) throw new Error(method + ' ' + path + ': ' + res.status + ' ' + (json.error || ''));
      return json;
    });
  });
}

function currentRoute() {
  var parts = location.hash.replace(/^#\/?/, '').split('/');
  return { view: parts[0] || 'overview', arg: parts[1] === undefined ? null : decodeURIComponent(parts[1]) };
}

/** Builds the current view from fresh API answers and swaps it in whole. */
function render() {
  var route = currentRoute();
  var view = VIEWS[route.view] || VIEWS.overview;
  document.querySelectorAll('nav a').forEach(function (a) {
    a.classList.toggle('current', a.dataset.view === route.view || (route.view === 'cluster' && a.dataset.view === 'overview'));
  });
  refreshing = true;
  return view
    .build(route.arg)
    .then(function (node) {
      document.getElementById('view').replaceChildren(node);
      setStatus('updated ' + new Date().toLocaleTimeString(), false);
    })
    .catch(function (e) {
      if (!(e instanceof TokenRefused)) setStatus(String(e.message || e), true);
    })
    .finally(function () {
      refreshing = false;
    });
}

/** Traffic views follow the live series; the others stay put while someone reads or picks versions. */
function refresh() {
  var view = VIEWS[currentRoute().view] || VIEWS.overview;
  if (!refreshing && view.live && !document.getElementById('token-dialog').open) render();
}

function start() {
  window.addEventListener('hashchange', render);
  setInterval(refresh, REFRESH_MS);
  if (sessionStorage.getItem(TOKEN_KEY)) render();
  else askToken('').then(render);
}
`;
