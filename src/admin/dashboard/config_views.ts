// The dashboard's certificate and config views (browser JavaScript served in /dashboard/app.js),
// built when opened, not refreshed: certificates with the time to their next rotation; the
// config version, its history, a line diff of two versions, and rollback behind a confirmation.

export const CONFIG_VIEWS_JS = String.raw`
function duration(seconds) {
  var s = Math.abs(Math.round(seconds));
  var text = s >= 86400 ? Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h' : s >= 3600 ? Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min' : Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return seconds < 0 ? text + ' ago' : 'in ' + text;
}

VIEWS.certs = {
  live: false,
  build: function () {
    return api('GET', '/certs').then(function (r) {
      if (r.certs.length === 0) return el('p', {}, 'No certificate: this sidecar runs without tls.');
      var head = ['identity', 'source', 'serial', 'expires', 'next rotation', 'rotations', 'last error', 'warning'];
      return el(
        'table',
        { id: 'certs' },
        el('tr', {}, head.map(function (h) { return el('th', {}, h); })),
        r.certs.map(function (c) {
          var rotation = c.next_rotation === null ? 'none planned' : duration((Date.parse(c.next_rotation) - Date.now()) / 1000) + ' (' + c.next_rotation + ')';
          return el(
            'tr',
            {},
            el('td', {}, c.identity),
            el('td', {}, c.source),
            el('td', {}, c.serial),
            el('td', { class: c.expires_in_s > 0 ? '' : 'bad' }, duration(c.expires_in_s) + ' (' + c.not_after + ')'),
            el('td', {}, rotation),
            el('td', {}, c.rotations),
            el('td', { class: 'bad' }, c.last_error || ''),
            el('td', { class: 'bad' }, c.warning || ''),
          );
        }),
      );
    });
  },
};

/**
 * Line diff (longest common subsequence; the common head and tail are set aside first, so a
 * small change in a large config stays cheap): [{op: ' ' | '-' | '+', line}].
 */
function diffLines(a, b) {
  var head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  var tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  var x = a.slice(head, a.length - tail);
  var y = b.slice(head, b.length - tail);
  var w = y.length + 1;
  var lcs = new Uint32Array((x.length + 1) * w);
  for (var i = x.length - 1; i >= 0; i--) {
    for (var j = y.length - 1; j >= 0; j--) {
      lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  var out = a.slice(0, head).map(function (line) { return { op: ' ', line: line }; });
  i = 0;
  j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      out.push({ op: ' ', line: x[i] });
      i++;
      j++;
    } else if (i < x.length && (j === y.length || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
      out.push({ op: '-', line: x[i++] });
    } else {
      out.push({ op: '+', line: y[j++] });
    }
  }
  return out.concat(a.slice(a.length - tail).map(function (line) { return { op: ' ', line: line }; }));
}

var DIFF_CONTEXT = 3;

/** The diff's rows with every unchanged run longer than twice the context cut to its ends and a count. */
function withContext(rows) {
  var out = [];
  var run = [];
  function flush(atStart, atEnd) {
    var keepHead = atStart ? 0 : DIFF_CONTEXT;
    var keepTail = atEnd ? 0 : DIFF_CONTEXT;
    if (run.length <= keepHead + keepTail + 1) out = out.concat(run);
    else out = out.concat(run.slice(0, keepHead), [{ op: '…', line: run.length - keepHead - keepTail + ' unchanged lines' }], run.slice(run.length - keepTail));
    run = [];
  }
  rows.forEach(function (d) {
    if (d.op === ' ') return run.push(d);
    flush(out.length === 0, false);
    out.push(d);
  });
  flush(out.length === 0, true);
  return out;
}

function configLines(version) {
  return api('GET', '/config/version?version=' + version).then(function (r) { return JSON.stringify(r.config, null, 2).split('\n'); });
}

function showDiff(target, from, to) {
  return Promise.all([configLines(from), configLines(to)]).then(function (r) {
    var rows = diffLines(r[0], r[1]);
    var changed = rows.some(function (d) { return d.op !== ' '; });
    target.replaceChildren(
      changed
        ? el('pre', { class: 'diff' }, withContext(rows).map(function (d) { return el('div', { class: d.op === '+' ? 'add' : d.op === '-' ? 'del' : d.op === '…' ? 'skip' : '' }, d.op + ' ' + d.line); }))
        : el('p', {}, 'Versions ' + from + ' and ' + to + ' have the same config.'),
    );
  });
}

/** The confirmation dialog; resolves true when the rollback is confirmed. */
function confirmRollback(version, current) {
  var dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-text').textContent = 'Apply the config of version ' + version + ' again, as a new version after ' + current + '? Every worker switches to it.';
  dialog.showModal();
  return new Promise(function (resolve) {
    document.getElementById('confirm-ok').onclick = function () { dialog.close(); resolve(true); };
    document.getElementById('confirm-cancel').onclick = function () { dialog.close(); resolve(false); };
  });
}

function rollback(version, current) {
  confirmRollback(version, current).then(function (yes) {
    if (!yes) return;
    api('POST', '/config/rollback', { version: version })
      .then(function (r) {
        return render().then(function () {
          setStatus('rolled back to version ' + version + ': now version ' + r.version + (r.summary ? ' (' + r.summary + ')' : ''), false);
        });
      })
      .catch(function (e) {
        if (!(e instanceof TokenRefused)) setStatus('rollback failed: ' + (e.message || e), true);
      });
  });
}

function versionSelect(id, versions, selected) {
  return el('select', { id: id }, versions.map(function (v) { return el('option', v.version === selected ? { value: v.version, selected: '' } : { value: v.version }, 'v' + v.version); }));
}

VIEWS.config = {
  live: false,
  build: function () {
    return api('GET', '/config/history').then(function (h) {
      var versions = h.versions.slice().reverse();
      var rows = versions.map(function (v) {
        var action = v.version === h.current ? el('strong', {}, 'running') : el('button', { type: 'button', 'data-rollback': v.version }, 'Roll back to v' + v.version);
        if (v.version !== h.current) action.onclick = function () { rollback(v.version, h.current); };
        return el('tr', {}, el('td', {}, 'v' + v.version), el('td', {}, v.at), el('td', {}, v.by), el('td', {}, v.summary), el('td', {}, action));
      });
      var previous = versions.length > 1 ? versions[1].version : h.current;
      var from = versionSelect('diff-from', versions, previous);
      var to = versionSelect('diff-to', versions, h.current);
      var diff = el('div', { id: 'diff' });
      function update() {
        showDiff(diff, Number(from.value), Number(to.value)).catch(function (e) { setStatus(String(e.message || e), true); });
      }
      from.onchange = update;
      to.onchange = update;
      update();
      return el(
        'div',
        {},
        el('h2', {}, 'Running version ', el('span', { id: 'current-version' }, h.current)),
        el('table', { id: 'history' }, el('tr', {}, ['version', 'at', 'by', 'summary', ''].map(function (t) { return el('th', {}, t); })), rows),
        el('h2', {}, 'Diff'),
        el('p', {}, 'from ', from, ' to ', to),
        diff,
      );
    });
  },
};
`;
