// The live view: every data-every seconds, GET data-refresh (the live
// JSON) and write its numbers into the tiles and the table in place,
// without reloading the page.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.fetch) return;
  var every = Math.max(2, Number(live.dataset.every) || 10) * 1000;
  var fmt = new Intl.NumberFormat('en');
  function set(id, n) {
    var e = document.getElementById(id);
    if (e) e.textContent = fmt.format(n);
  }
  function cell(text, label) {
    var td = document.createElement('td');
    td.textContent = text;
    if (label) { td.className = 'num'; td.dataset.label = label; }
    return td;
  }
  function render(rep) {
    set('live-hits', rep.last_60_minutes.hits);
    set('live-installs', rep.last_60_minutes.installs);
    set('live-conversions', rep.last_60_minutes.conversions);
    set('live-events', rep.last_60_minutes.events);
    var body = document.querySelector('#live-hours tbody');
    var rows = rep.hours.map(function (h) {
      var tr = document.createElement('tr');
      tr.append(cell(h.value), cell(fmt.format(h.hits), 'Hits'), cell(fmt.format(h.installs), 'Installs'),
        cell(fmt.format(h.conversions), 'Conversions'), cell(fmt.format(h.events), 'Events'));
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    var asOf = document.getElementById('as-of');
    var t = new Date(rep.as_of);
    asOf.dateTime = rep.as_of;
    asOf.textContent = t.toISOString().slice(11, 19) + ' UTC';
    live.dataset.updated = String(Number(live.dataset.updated || 0) + 1);
  }
  function poll() {
    fetch(live.dataset.refresh, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (rep) { if (rep) render(rep); }, function () {})
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
