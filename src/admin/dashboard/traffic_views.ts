// The dashboard's traffic views (browser JavaScript served in /dashboard/app.js), refreshed every
// two seconds: the overview (every listener, route and cluster of /stats with its charts) and one
// cluster (its charts, and its endpoints from /clusters: health, ejection, active requests).

export const TRAFFIC_VIEWS_JS = String.raw`
function percentText(rate) {
  return rate === null ? 'no requests' : (rate * 100).toFixed(2) + '% success';
}

function trafficCard(title, facts, times, s) {
  return el('section', { class: 'card' }, el('h3', {}, title, el('span', { class: 'facts' }, facts)), trafficCharts(times, s));
}

function byName(list, name, listener) {
  return list.find(function (s) { return s.name === name && (listener === undefined || s.listener === listener); });
}

VIEWS.overview = {
  live: true,
  build: function () {
    return Promise.all([api('GET', '/stats'), loadSeries()]).then(function (r) {
      var stats = r[0];
      var series = r[1];
      var t = series.times;
      return el(
        'div',
        {},
        el('h2', {}, 'Listeners'),
        stats.listeners.map(function (l) {
          return trafficCard(l.name, l.requests + ' requests since start, ' + percentText(l.success_rate), t, byName(series.listeners, l.name));
        }),
        el('h2', {}, 'Routes'),
        stats.routes.map(function (rt) {
          return trafficCard(rt.listener + ' / ' + rt.name, rt.requests + ' requests since start, ' + percentText(rt.success_rate), t, byName(series.routes, rt.name, rt.listener));
        }),
        el('h2', {}, 'Clusters'),
        stats.clusters.map(function (c) {
          var link = el('a', { href: '#/cluster/' + encodeURIComponent(c.name), 'data-cluster': c.name }, c.name);
          return trafficCard(link, c.requests + ' requests since start, ' + percentText(c.success_rate) + ', ' + c.active_requests + ' active', t, byName(series.clusters, c.name));
        }),
      );
    });
  },
};

function endpointRow(e) {
  return el(
    'tr',
    {},
    el('td', {}, e.address),
    el('td', {}, e.weight),
    el('td', { class: e.healthy ? 'good' : 'bad' }, e.healthy ? 'healthy' : 'unhealthy'),
    el('td', { class: e.ejected ? 'bad' : '' }, e.ejected ? 'ejected' : 'no'),
    el('td', {}, e.active),
    el('td', {}, e.connections_open + ' open, ' + e.connections_idle + ' idle'),
    el('td', {}, e.connections_opened_total),
  );
}

VIEWS.cluster = {
  live: true,
  build: function (name) {
    return Promise.all([api('GET', '/clusters'), loadSeries()]).then(function (r) {
      var cluster = byName(r[0].clusters, name);
      if (!cluster) return el('p', { class: 'error' }, 'No cluster ' + name + ' in the running config.');
      var facts = cluster.lb + ', ' + cluster.active + ' active, ' + cluster.pending + ' pending, ' + cluster.retries_total + ' retries' + (cluster.panicking ? ', PANIC' : '');
      return el(
        'div',
        { 'data-view': 'cluster' },
        el('h2', {}, 'Cluster ' + cluster.name),
        trafficCard(cluster.name, facts, r[1].times, byName(r[1].clusters, cluster.name)),
        el('h2', {}, 'Endpoints'),
        el(
          'table',
          { id: 'endpoints' },
          el('tr', {}, ['address', 'weight', 'health', 'ejected', 'active requests', 'connections', 'opened'].map(function (h) { return el('th', {}, h); })),
          cluster.endpoints.map(endpointRow),
        ),
      );
    });
  },
};
`;
