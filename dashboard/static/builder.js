// The funnel builder: edits a funnel definition in the page and saves it
// through the JSON API (POST or PUT /api/v1/apps/{id}/funnels…). The API
// validates; its message is shown next to the Save button and nothing the
// user typed is lost. Everything is built with DOM calls and textContent,
// never HTML strings.
(function () {
  'use strict';

  var init = JSON.parse(document.getElementById('builder-init').textContent);
  var opts = init.options;
  var form = document.getElementById('builder');
  var stepsEl = document.getElementById('steps');
  var exclEl = document.getElementById('exclusions');
  var errorEl = document.getElementById('builder-error');

  var KINDS = [['tap', 'Tap on a tracking link'], ['install', 'Install'], ['event', 'Event']];
  var OPS = [['eq', '='], ['ne', '≠'], ['in', 'is one of'], ['gt', '>'], ['gte', '≥'], ['lt', '<'], ['lte', '≤']];

  // The definition being edited.
  var def = init.definition || {
    name: '',
    steps: [{kind: 'tap'}, {kind: 'install'}],
    window_seconds: opts.default_window_seconds,
    order: 'ordered'
  };
  def.steps = (def.steps || []).map(copyStep);
  def.exclusions = (def.exclusions || []).map(function (x) {
    var c = copyStep(x);
    c.after = x.after;
    c.before = x.before;
    return c;
  });
  def.breakdown = def.breakdown || {};

  function copyStep(s) {
    return {
      kind: s.kind || 'event',
      links: (s.links || []).slice(),
      event: s.event || '',
      label: s.label || '',
      filters: (s.filters || []).map(function (f) {
        return {param: f.param || '', op: f.op || 'eq', value: f.op === 'in' ? (f.values || []).join(', ') : (f.value || '')};
      })
    };
  }

  // el makes an element with attributes and children (strings become text).
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] === true) e.setAttribute(k, '');
      else if (attrs[k] !== false && attrs[k] != null) e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function select(options, value, attrs, onchange) {
    var s = el('select', attrs);
    options.forEach(function (o) {
      var opt = el('option', {value: o[0], text: o[1]});
      if (String(o[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener('change', function () { onchange(s.value); });
    return s;
  }

  function input(value, attrs, oninput) {
    var i = el('input', attrs);
    i.value = value == null ? '' : value;
    i.addEventListener('input', function () { oninput(i.value); });
    return i;
  }

  function iconButton(label, symbol, onclick, disabled) {
    return el('button', {type: 'button', class: 'icon', title: label, 'aria-label': label, disabled: !!disabled, onclick: onclick, text: symbol});
  }

  // filtersEditor edits the filters of step s (of kind kind).
  function filtersEditor(s) {
    var box = el('div', {class: 'filters'});
    var hint = s.kind === 'tap' ? 'link parameter, e.g. utm_source' : 'event parameter, e.g. plan or revenue';
    s.filters.forEach(function (f, j) {
      var value = input(f.value, {class: 'value', placeholder: f.op === 'in' ? 'values, comma-separated' : 'value', 'aria-label': 'Filter value'},
        function (v) { f.value = v; });
      box.appendChild(el('div', {class: 'filter'}, [
        el('span', {class: 'where', text: j === 0 ? 'where' : 'and'}),
        input(f.param, {class: 'param', placeholder: hint, 'aria-label': 'Filter parameter', spellcheck: 'false'}, function (v) { f.param = v; }),
        select(OPS, f.op, {class: 'op', 'aria-label': 'Comparison'}, function (v) {
          f.op = v;
          value.placeholder = v === 'in' ? 'values, comma-separated' : 'value';
        }),
        value,
        iconButton('Remove this filter', '✕', function () { s.filters.splice(j, 1); render(); })
      ]));
    });
    if (s.filters.length < opts.max_filters) {
      box.appendChild(el('button', {type: 'button', class: 'link-button', text: '+ Add filter', onclick: function () {
        s.filters.push({param: '', op: 'eq', value: ''});
        render();
      }}));
    }
    return box;
  }

  // matchEditor edits what step s matches, by its kind.
  function matchEditor(s) {
    if (s.kind === 'tap') {
      if (!opts.links.length) {
        return el('p', {class: 'hint', text: 'This app has no tracking links yet: the step matches a tap on any link.'});
      }
      var list = el('div', {class: 'links'}, [el('span', {class: 'hint', text: 'Links (none ticked: any link)'})]);
      opts.links.forEach(function (l) {
        var cb = el('input', {type: 'checkbox', value: l.id});
        cb.checked = s.links.indexOf(l.id) >= 0;
        cb.addEventListener('change', function () {
          s.links = s.links.filter(function (id) { return id !== l.id; });
          if (cb.checked) s.links.push(l.id);
        });
        list.appendChild(el('label', {class: 'check'}, [cb, ' ' + (l.name || l.slug) + ' ', el('span', {class: 'muted small', text: l.slug})]));
      });
      return list;
    }
    if (s.kind === 'install') {
      return el('p', {class: 'hint', text: 'The installation\'s first open, attributed to a tap or organic.'});
    }
    return el('label', {class: 'event'}, ['Event name',
      input(s.event, {list: 'event-names', placeholder: opts.events.length ? 'choose or type, e.g. ' + opts.events[0] : 'e.g. purchase',
        'aria-label': 'Event name', spellcheck: 'false', autocomplete: 'off', class: 'event-name'}, function (v) { s.event = v; })]);
  }

  function move(list, i, by) {
    var j = i + by;
    if (j < 0 || j >= list.length) return;
    var t = list[i];
    list[i] = list[j];
    list[j] = t;
    render();
  }

  function stepCard(s, i) {
    var n = def.steps.length;
    return el('li', {class: 'step-card', 'data-step': i + 1}, [
      el('div', {class: 'step-head'}, [
        el('span', {class: 'n', text: String(i + 1)}),
        select(KINDS, s.kind, {class: 'kind', 'aria-label': 'Step ' + (i + 1) + ' kind'}, function (v) {
          s.kind = v;
          s.links = [];
          s.event = '';
          render();
        }),
        input(s.label, {class: 'label-input', placeholder: 'Label (optional)', 'aria-label': 'Step ' + (i + 1) + ' label',
          title: 'Shown in the results instead of the description'}, function (v) { s.label = v; }),
        el('span', {class: 'spacer'}),
        iconButton('Move step ' + (i + 1) + ' up', '↑', function () { move(def.steps, i, -1); }, i === 0),
        iconButton('Move step ' + (i + 1) + ' down', '↓', function () { move(def.steps, i, 1); }, i === n - 1),
        iconButton('Remove step ' + (i + 1), '✕', function () { def.steps.splice(i, 1); clampExclusions(); render(); }, n <= opts.min_steps)
      ]),
      el('div', {class: 'step-body'}, [matchEditor(s), filtersEditor(s)])
    ]);
  }

  function stepOptions() {
    return def.steps.map(function (_, i) { return [i + 1, 'step ' + (i + 1)]; });
  }

  function clampExclusions() {
    var n = def.steps.length;
    def.exclusions.forEach(function (x) {
      x.after = Math.min(Math.max(1, x.after), n - 1);
      x.before = Math.min(Math.max(x.after + 1, x.before), n);
    });
  }

  function exclusionRow(x, i) {
    return el('li', {class: 'exclusion', 'data-exclusion': i + 1}, [
      el('div', {class: 'exclusion-head'}, [
        select([['event', 'Event'], ['install', 'Install']], x.kind, {class: 'kind', 'aria-label': 'Excluded kind'}, function (v) {
          x.kind = v;
          x.event = '';
          render();
        }),
        x.kind === 'event' ? input(x.event, {list: 'event-names', placeholder: 'event name', 'aria-label': 'Excluded event', spellcheck: 'false', autocomplete: 'off', class: 'event-name'},
          function (v) { x.event = v; }) : null,
        el('span', {text: 'between'}),
        select(stepOptions(), x.after, {'aria-label': 'After step'}, function (v) { x.after = Number(v); }),
        el('span', {text: 'and'}),
        select(stepOptions(), x.before, {'aria-label': 'Before step'}, function (v) { x.before = Number(v); }),
        el('span', {class: 'spacer'}),
        iconButton('Remove exclusion ' + (i + 1), '✕', function () { def.exclusions.splice(i, 1); render(); })
      ]),
      filtersEditor(x)
    ]);
  }

  function render() {
    stepsEl.replaceChildren.apply(stepsEl, def.steps.map(stepCard));
    exclEl.replaceChildren.apply(exclEl, def.exclusions.map(exclusionRow));
    document.getElementById('add-step').disabled = def.steps.length >= opts.max_steps;
    document.getElementById('add-exclusion').disabled = def.exclusions.length >= opts.max_exclusions;
  }

  // The fields outside the lists.
  var nameEl = document.getElementById('f-name');
  var windowEl = document.getElementById('f-window');
  var unitEl = document.getElementById('f-window-unit');
  var bdEl = document.getElementById('f-breakdown');
  var bdParamEl = document.getElementById('f-breakdown-param');
  nameEl.value = def.name || '';
  var secs = def.window_seconds || opts.default_window_seconds;
  var unit = [86400, 3600, 60].filter(function (u) { return secs % u === 0; })[0] || 60;
  unitEl.value = String(unit);
  windowEl.value = String(Math.max(1, Math.round(secs / unit)));
  (form.querySelector('input[name=order][value=' + (def.order || 'ordered') + ']') || {}).checked = true;
  bdEl.value = def.breakdown.kind || '';
  bdParamEl.value = def.breakdown.param || '';
  function showParam() {
    bdParamEl.hidden = !(bdEl.value === 'link_param' || bdEl.value === 'entry_param');
  }
  bdEl.addEventListener('change', showParam);
  showParam();

  document.getElementById('add-step').addEventListener('click', function () {
    def.steps.push({kind: 'event', links: [], event: '', label: '', filters: []});
    render();
    var names = stepsEl.querySelectorAll('.event-name');
    if (names.length) names[names.length - 1].focus();
  });
  document.getElementById('add-exclusion').addEventListener('click', function () {
    var n = def.steps.length;
    def.exclusions.push({kind: 'event', links: [], event: '', label: '', filters: [], after: 1, before: n});
    render();
  });

  // definition returns the definition as the API takes it.
  function definition() {
    function step(s) {
      var out = {kind: s.kind};
      if (s.kind === 'tap' && s.links.length) out.links = s.links.slice();
      if (s.kind === 'event') out.event = s.event.trim();
      if (s.label.trim()) out.label = s.label.trim();
      var filters = s.filters.map(function (f) {
        var o = {param: f.param.trim(), op: f.op};
        if (f.op === 'in') {
          o.values = f.value.split(',').map(function (v) { return v.trim(); }).filter(function (v) { return v !== ''; });
        } else {
          o.value = f.value;
        }
        return o;
      });
      if (filters.length) out.filters = filters;
      return out;
    }
    var d = {
      name: nameEl.value.trim(),
      steps: def.steps.map(step),
      window_seconds: Math.round(Number(windowEl.value) * Number(unitEl.value)) || 0,
      order: (form.querySelector('input[name=order]:checked') || {value: 'ordered'}).value
    };
    if (def.exclusions.length) {
      d.exclusions = def.exclusions.map(function (x) {
        var o = step(x);
        o.after = Number(x.after);
        o.before = Number(x.before);
        return o;
      });
    }
    if (bdEl.value) {
      d.breakdown = {kind: bdEl.value};
      if (!bdParamEl.hidden) d.breakdown.param = bdParamEl.value.trim();
    }
    return d;
  }

  // showError shows the API's message and marks the part it names.
  function showError(msg) {
    form.querySelectorAll('.invalid').forEach(function (e) { e.classList.remove('invalid'); });
    errorEl.textContent = msg;
    errorEl.hidden = !msg;
    if (!msg) return;
    var m = /^(step|exclusion) (\d+):/.exec(msg);
    var target = null;
    if (m) target = form.querySelector('[data-' + m[1] + '="' + m[2] + '"]');
    else if (/^name:/.test(msg)) target = nameEl;
    else if (/^window_seconds:/.test(msg)) target = windowEl;
    else if (/^breakdown:/.test(msg)) target = bdEl.parentNode;
    else if (/^order:/.test(msg)) target = form.querySelector('input[name=order]').parentNode.parentNode;
    if (target) target.classList.add('invalid');
    errorEl.scrollIntoView({block: 'nearest'});
  }

  var saving = false;
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (saving) return;
    saving = true;
    var button = document.getElementById('save');
    button.disabled = true;
    showError('');
    fetch(init.save_url, {
      method: init.method,
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
      body: JSON.stringify(definition())
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.ok) {
          window.location.assign(init.view_url.replace('{id}', String(body.id)));
          return;
        }
        var msg = body.message || ('Saving failed (HTTP ' + res.status + ').');
        if (res.status === 401) msg = 'Your session has ended: log in again in another tab, then save.';
        else if (res.status === 409) msg = msg + ' Choose another name.';
        showError(msg);
      });
    }, function () {
      showError('The dashboard cannot be reached. Check your connection and save again.');
    }).then(function () {
      saving = false;
      button.disabled = false;
    });
  });

  render();
})();
