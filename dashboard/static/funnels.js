// The funnel list and view: delete buttons, and a refresh while a funnel
// version is on its way to live (pending or backfilling). The list polls
// GET /api/v1/apps/{id}/funnels, the view GET …/funnels/{fid}; progress
// bars move in place, and the page reloads when a status changes.
(function () {
  'use strict';

  var POLL_MS = 3000;

  document.querySelectorAll('[data-delete]').forEach(function (button) {
    button.addEventListener('click', function () {
      if (!window.confirm('Delete the funnel "' + button.dataset.name + '"? Its results are dropped.')) return;
      button.disabled = true;
      fetch(button.dataset.delete, {method: 'DELETE', credentials: 'same-origin', headers: {'Accept': 'application/json'}})
        .then(function (res) {
          if (res.status === 204) {
            window.location.assign(button.dataset.next);
            return;
          }
          return res.json().catch(function () { return {}; }).then(function (body) {
            window.alert(body.message || 'Deleting failed (HTTP ' + res.status + ').');
            button.disabled = false;
          });
        }, function () {
          window.alert('The dashboard cannot be reached.');
          button.disabled = false;
        });
    });
  });

  function running(status) { return status === 'pending' || status === 'backfilling'; }

  function percent(p) { return Math.floor(Math.max(0, Math.min(1, p)) * 100) + '%'; }

  // update moves the progress of the element showing version v, and
  // reports whether the page must reload to show v.
  function update(elem, v) {
    if (!v || elem.dataset.status !== v.status || elem.dataset.version !== String(v.version)) return true;
    var bar = elem.querySelector('progress');
    if (bar) bar.value = v.progress;
    var pct = elem.querySelector('.pct');
    if (pct) pct.textContent = percent(v.progress);
    return false;
  }

  var watched = document.querySelector('[data-refresh]');
  if (!watched) return;
  var timer = window.setInterval(function () {
    fetch(watched.dataset.refresh, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) {
        if (!body) return;
        var reload = false;
        var busy = false;
        if (body.funnels) { // the list
          watched.querySelectorAll('tbody tr[data-status]').forEach(function (row) {
            var id = row.id.replace('funnel-', '');
            var v = body.funnels.filter(function (f) { return String(f.id) === id; })[0];
            reload = update(row, v) || reload;
          });
          busy = body.funnels.some(function (f) { return running(f.status); });
        } else { // one funnel: its newest version
          reload = update(watched, body);
          var text = watched.querySelector('.text');
          if (!reload && text && body.status === 'backfilling') {
            text.textContent = text.textContent.replace(/\d+%/, percent(body.progress));
          }
          busy = running(body.status);
        }
        if (reload) window.location.reload();
        else if (!busy) window.clearInterval(timer);
      })
      .catch(function () { /* try again at the next tick */ });
  }, POLL_MS);
})();
