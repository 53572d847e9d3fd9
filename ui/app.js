// exportd admin page. Plain JS, no build step, no inline code (the page runs under a strict CSP).
// Every piece of data is inserted with textContent or as an attribute value, never as HTML.
'use strict';

(function () {
  const ORG = decodeURIComponent(location.pathname.split('/')[1] || '');
  const API = '/' + encodeURIComponent(ORG) + '/v2';
  const ACTIVE = ['pending', 'running'];
  const FIELDS = ['label', 'description', 'objects', 'format', 'where', 'paths', 'include',
    'expand', 'prefix', 'principal', 'exportFiles', 'zipFiles', 'csvEscapeFormulas', 'afterScript'];

  const state = {
    csrf: null,
    account: null,
    rows: new Map(), // export id -> {tr, cells, record}
    pollTimer: null,
    detailId: null,
    signedIn: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, fault) {
      super((fault && fault.message) || ('HTTP ' + status));
      this.status = status;
      this.fault = fault || {};
    }
  }

  async function api(method, path, body) {
    const headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, { message: 'The server cannot be reached (' + e.message + ')' });
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, data && data.object === 'fault' ? data : { message: 'HTTP ' + res.status });
      if (res.status === 401 && state.signedIn && path !== '/accounts/login') {
        signedOut('Your session has ended; please sign in again.');
      }
      throw err;
    }
    return { data, res };
  }

  // ---- formatting ---------------------------------------------------------------------------

  function fmtDate(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }

  // compact, for the table: the year only when it is not this year; the exact time is the title
  function fmtShort(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    const opts = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    if (d.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
    return d.toLocaleString(undefined, opts);
  }

  function fmtSize(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function num(n) {
    return Number(n).toLocaleString();
  }

  function faultText(f) {
    if (!f) return '';
    if (typeof f === 'string') return f;
    return f.message || f.errCode || JSON.stringify(f);
  }

  let statusTimer = null;
  function showStatus(msg, kind) {
    const s = $('status');
    s.textContent = msg;
    s.className = 'status' + (kind ? ' status-' + kind : '');
    s.hidden = false;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { s.hidden = true; }, kind === 'error' ? 8000 : 4000);
  }

  // ---- sign in / out ------------------------------------------------------------------------

  function showLogin(message) {
    state.signedIn = false;
    $('app-header').hidden = true;
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('login-org').textContent = ORG;
    const e = $('login-error');
    e.textContent = message || '';
    e.hidden = !message;
    $('login-email').focus();
  }

  function signedOut(message) {
    stopPolling();
    closeDialog($('detail-dialog'));
    closeDialog($('confirm-dialog'));
    state.csrf = null;
    state.account = null;
    clearRows();
    showLogin(message);
  }

  async function showApp(me) {
    state.signedIn = true;
    state.account = me;
    $('login-view').hidden = true;
    $('app-header').hidden = false;
    $('app-view').hidden = false;
    $('org-code').textContent = ORG;
    const orgName = me.org && me.org.name ? me.org.name : '';
    $('org-name').textContent = orgName ? '(' + orgName + ')' : '';
    $('account-email').textContent = me.email || me.name || me._id || '';
    await Promise.all([loadObjects(), refresh()]);
  }

  async function loadMe() {
    const { data, res } = await api('GET', '/accounts/me');
    const token = res.headers.get('X-CSRF-Token');
    if (token) state.csrf = token;
    return data;
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    const err = $('login-error');
    err.hidden = true;
    if (!email || !password) {
      err.textContent = 'Enter your email and password.';
      err.hidden = false;
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    try {
      const { data } = await api('POST', '/accounts/login', { email, password });
      state.csrf = data.csrfToken;
      $('login-password').value = '';
      let me = data;
      try { me = await loadMe(); } catch (_) { /* keep the login answer */ }
      await showApp(me);
    } catch (e) {
      err.textContent = e.status === 401 ? 'Invalid email or password.' : faultText(e.fault) || e.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  }

  async function onLogout() {
    try { await api('POST', '/accounts/logout'); } catch (_) { /* signed out either way */ }
    signedOut('You are signed out.');
  }

  // ---- objects ------------------------------------------------------------------------------

  async function loadObjects() {
    const sel = $('f-objects');
    const previous = sel.value;
    try {
      const { data } = await api('GET', '/objects?limit=1000');
      const defs = Array.isArray(data) ? data : (data && data.data) || [];
      sel.replaceChildren();
      if (defs.length === 0) {
        sel.append(el('option', { value: '', text: 'No objects defined' }));
      }
      defs.sort((a, b) => String(a.label || a.name).localeCompare(String(b.label || b.name)));
      for (const d of defs) {
        const plural = d.pluralName || d.name;
        const text = (d.label && d.label !== plural ? d.label + ' — ' : '') + plural;
        sel.append(el('option', { value: plural, text }));
      }
      if (previous && defs.some((d) => (d.pluralName || d.name) === previous)) sel.value = previous;
    } catch (e) {
      if (e.status !== 401) showStatus('Cannot load object definitions: ' + e.message, 'error');
    }
  }

  // ---- exports table ------------------------------------------------------------------------

  function clearRows() {
    for (const r of state.rows.values()) r.tr.remove();
    state.rows.clear();
    $('exports-empty').hidden = false;
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    $('poll-indicator').hidden = true;
  }

  let refreshing = null;
  let again = null;
  async function refresh() {
    // one request at a time; refreshes asked for meanwhile run once right after (they may
    // follow a change the running request did not see)
    if (refreshing) {
      if (!again) again = refreshing.then(() => { again = null; return refresh(); });
      return again;
    }
    refreshing = (async () => {
      clearTimeout(state.pollTimer);
      let active = false;
      try {
        const { data } = await api('GET', '/exports?limit=50');
        const list = (data && data.data) || [];
        renderList(list);
        active = list.some((r) => ACTIVE.includes(r.state));
        if (state.detailId && $('detail-dialog').open) {
          const r = list.find((x) => x._id === state.detailId);
          if (r && (ACTIVE.includes(r.state) || r.state !== $('detail-dialog').dataset.state)) {
            await loadDetail(state.detailId, true);
          }
        }
      } catch (e) {
        if (e.status !== 401) showStatus('Cannot load exports: ' + e.message, 'error');
      } finally {
        refreshing = null;
      }
      if (state.signedIn) {
        $('poll-indicator').hidden = !active;
        state.pollTimer = setTimeout(refresh, active ? 1000 : 5000);
      }
    })();
    return refreshing;
  }

  function renderList(list) {
    const body = $('exports-body');
    const seen = new Set();
    let prev = $('exports-empty');
    for (const rec of list) {
      seen.add(rec._id);
      let row = state.rows.get(rec._id);
      if (!row) {
        row = makeRow(rec);
        state.rows.set(rec._id, row);
      }
      updateRow(row, rec);
      if (prev.nextSibling !== row.tr) body.insertBefore(row.tr, prev.nextSibling);
      prev = row.tr;
    }
    for (const [id, row] of state.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        state.rows.delete(id);
      }
    }
    $('exports-empty').hidden = list.length > 0;
  }

  function makeRow(rec) {
    const cells = {};
    const tr = el('tr', { 'data-id': rec._id, 'data-testid': 'export-row', class: 'export-row' });
    const names = [['label', 'Label'], ['state', 'State'], ['progress', 'Progress'], ['size', 'Size'],
      ['created', 'Created'], ['expires', 'Expires'], ['actions', 'Actions']];
    for (const [name, title] of names) {
      const td = el('td', { class: 'col-' + name, 'data-label': title, 'data-testid': 'export-' + name });
      cells[name] = td;
      tr.append(td);
    }
    const open = el('button', { type: 'button', class: 'link-button', 'data-testid': 'open-detail' });
    open.addEventListener('click', (ev) => { ev.stopPropagation(); openDetail(rec._id); });
    cells.label.append(open, el('div', { class: 'row-sub muted' }));
    const bar = el('progress', { max: '100', value: '0' });
    cells.progress.append(bar, el('span', { class: 'progress-text' }));
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('button, a')) return;
      openDetail(rec._id);
    });
    return { tr, cells, record: null, actionsKey: null };
  }

  function progressText(rec) {
    const p = rec.progress || {};
    if (rec.state === 'pending') return 'queued';
    if (rec.state === 'error') return faultText(rec.fault) || 'failed';
    const docs = num(p.docs || 0);
    // once ready, the count that matters is what was exported
    if (rec.state === 'ready') {
      const exported = rec.stats && rec.stats.docs ? rec.stats.docs.count : p.docs || 0;
      return num(exported) + ' docs';
    }
    return p.total !== null && p.total !== undefined
      ? docs + ' / ' + num(p.total) + ' (' + (p.percent || 0) + '%)'
      : docs + ' docs';
  }

  function updateRow(row, rec) {
    row.record = rec;
    const c = row.cells;
    const open = c.label.firstChild;
    open.textContent = rec.label || '(no label)';
    open.setAttribute('aria-label', 'Details of ' + (rec.label || rec._id));
    c.label.lastChild.textContent = rec.objects + ' · ' + shortFormat(rec.format);

    c.state.replaceChildren(stateBadge(rec.state));

    const bar = c.progress.firstChild;
    const pct = rec.state === 'ready' ? 100 : (rec.progress && rec.progress.percent) || 0;
    bar.value = pct;
    bar.hidden = rec.state === 'error';
    bar.setAttribute('aria-label', 'Progress ' + pct + '%');
    const pt = c.progress.lastChild;
    pt.textContent = progressText(rec);
    pt.className = 'progress-text' + (rec.state === 'error' ? ' error-text' : '');

    c.size.textContent = rec.dataFile ? fmtSize(rec.dataFile.size) : '—';
    c.created.textContent = fmtShort(rec.created);
    c.created.title = rec.created || '';
    c.expires.textContent = fmtShort(rec.expiresAt);
    c.expires.title = rec.expiresAt || '';

    const key = rec.state + '|' + (rec.dataFile ? rec.dataFile.url : '');
    if (row.actionsKey !== key) {
      row.actionsKey = key;
      c.actions.replaceChildren(...actionButtons(rec));
    }
  }

  function shortFormat(f) {
    return { 'application/x-ndjson': 'NDJSON', 'application/json': 'JSON', 'text/csv': 'CSV' }[f] || f || '';
  }

  function stateBadge(s) {
    return el('span', { class: 'badge badge-' + s, 'data-state': s, text: s });
  }

  function actionButtons(rec) {
    const out = [];
    const name = rec.label || rec._id;
    if (rec.state === 'ready' && rec.dataFile && rec.dataFile.url) {
      out.push(el('a', {
        class: 'btn btn-small btn-primary', href: rec.dataFile.url, download: rec.dataFile.filename || true,
        'data-testid': 'download', 'aria-label': 'Download ' + name, text: 'Download',
      }));
    }
    if (ACTIVE.includes(rec.state)) {
      const b = el('button', { type: 'button', class: 'btn btn-small btn-secondary', 'data-testid': 'cancel', 'aria-label': 'Cancel ' + name, text: 'Cancel' });
      b.addEventListener('click', (ev) => { ev.stopPropagation(); cancelExport(rec._id, name); });
      out.push(b);
    }
    const d = el('button', { type: 'button', class: 'btn btn-small btn-danger-outline', 'data-testid': 'delete', 'aria-label': 'Delete ' + name, text: 'Delete' });
    d.addEventListener('click', (ev) => { ev.stopPropagation(); deleteExport(rec._id, name); });
    out.push(d);
    return out;
  }

  // ---- confirm modal ------------------------------------------------------------------------

  function closeDialog(d) {
    if (d.open) d.close();
  }

  function confirmModal(title, message, okText) {
    const d = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-message').textContent = message;
    $('confirm-ok').textContent = okText;
    return new Promise((resolve) => {
      const finish = (v) => {
        $('confirm-ok').removeEventListener('click', ok);
        $('confirm-cancel').removeEventListener('click', no);
        d.removeEventListener('close', no);
        closeDialog(d);
        resolve(v);
      };
      const ok = () => finish(true);
      const no = () => finish(false);
      $('confirm-ok').addEventListener('click', ok);
      $('confirm-cancel').addEventListener('click', no);
      d.addEventListener('close', no);
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  async function cancelExport(id, name) {
    if (!await confirmModal('Cancel export?', 'Stop the export “' + name + '”? It ends in state error and cannot be resumed.', 'Cancel export')) return;
    try {
      await api('POST', '/exports/' + encodeURIComponent(id) + '/cancel');
      showStatus('Export “' + name + '” cancelled.', 'ok');
    } catch (e) {
      showStatus('Cannot cancel: ' + e.message, 'error');
    }
    await refresh();
    if (state.detailId === id && $('detail-dialog').open) await loadDetail(id, true);
  }

  async function deleteExport(id, name) {
    if (!await confirmModal('Delete export?', 'Delete the export “' + name + '” and its archive? This cannot be undone.', 'Delete')) return;
    try {
      await api('DELETE', '/exports/' + encodeURIComponent(id));
      showStatus('Export “' + name + '” deleted.', 'ok');
      if (state.detailId === id) closeDialog($('detail-dialog'));
    } catch (e) {
      showStatus('Cannot delete: ' + e.message, 'error');
    }
    await refresh();
  }

  // ---- detail -------------------------------------------------------------------------------

  async function openDetail(id) {
    state.detailId = id;
    const d = $('detail-dialog');
    $('detail-title').textContent = 'Export';
    $('detail-fields').replaceChildren();
    $('detail-events').replaceChildren();
    $('detail-actions').replaceChildren();
    if (!d.open) d.showModal();
    await loadDetail(id, false);
  }

  async function loadDetail(id, quiet) {
    try {
      const { data } = await api('GET', '/exports/' + encodeURIComponent(id) + '?include=events');
      if (state.detailId !== id) return;
      renderDetail(data);
    } catch (e) {
      if (!quiet) showStatus('Cannot load the export: ' + e.message, 'error');
      if (e.status === 404) closeDialog($('detail-dialog'));
    }
  }

  function show(v) {
    if (v === null || v === undefined || v === '') return '—';
    if (Array.isArray(v)) return v.length ? v.join(', ') : '—';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function renderDetail(rec) {
    const d = $('detail-dialog');
    d.dataset.state = rec.state;
    $('detail-title').textContent = rec.label || rec._id;
    $('detail-actions').replaceChildren(stateBadge(rec.state), ...actionButtons(rec));
    const p = rec.progress || {};
    const stats = rec.stats || null;
    const df = rec.dataFile || null;
    // [title, value, monospace, shown even when empty]
    const rows = [
      ['ID', rec._id, true, true],
      ['Label', rec.label, false, true],
      ['Description', rec.description],
      ['State', rec.state, false, true],
      ['Fault', rec.fault ? faultText(rec.fault) + (rec.fault.errCode ? ' (' + rec.fault.errCode + ')' : '') : null],
      ['Object', rec.objects, false, true],
      ['Format', rec.format, false, true],
      ['Where', rec.where, true, true],
      ['Paths', rec.paths, true],
      ['Include', rec.include, true],
      ['Expand', rec.expand, true],
      ['Prefix', rec.prefix, true],
      ['Principal', rec.principal, true],
      ['Export files', rec.exportFiles, false, true],
      ['Zip files', rec.zipFiles, false, true],
      ['Escape CSV formulas', rec.csvEscapeFormulas, false, true],
      ['After script', rec.afterScript, true],
      ['Progress', num(p.docs || 0) + (p.total !== null && p.total !== undefined ? ' / ' + num(p.total) : '') + ' docs (' + (rec.state === 'ready' ? 100 : p.percent || 0) + '%)', false, true],
      ['Documents exported', stats && stats.docs ? stats.docs.count : null],
      ['Files exported', stats && stats.files ? stats.files.count + ' (' + fmtSize(stats.files.size) + ')' : null],
      ['Archive', df ? (df.filename || 'archive') + ' — ' + fmtSize(df.size) : null],
      ['SHA-256', df ? df.ETag : null, true],
      ['Created', rec.created ? fmtDate(rec.created) + ' (' + rec.created + ')' : null, false, true],
      ['Started', rec.started ? fmtDate(rec.started) + ' (' + rec.started + ')' : null],
      ['Completed', rec.completed ? fmtDate(rec.completed) + ' (' + rec.completed + ')' : null],
      ['Expires', rec.expiresAt ? fmtDate(rec.expiresAt) + ' (' + rec.expiresAt + ')' : null, false, true],
    ];
    const dl = $('detail-fields');
    dl.replaceChildren();
    for (const [k, v, mono, always] of rows) {
      const empty = v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);
      if (empty && !always) continue;
      const dd = el('dd', { class: mono ? 'mono' : null, 'data-field': k, text: show(v) });
      if (k === 'State') dd.replaceChildren(stateBadge(rec.state));
      dl.append(el('div', { class: 'detail-row' }, el('dt', { text: k }), dd));
    }
    const ol = $('detail-events');
    ol.replaceChildren();
    const events = rec.events || [];
    if (events.length === 0) ol.append(el('li', { class: 'muted', text: 'No events yet.' }));
    for (const ev of events) {
      const li = el('li', { 'data-event': ev.name },
        el('span', { class: 'event-name', text: ev.name }),
        el('time', { datetime: ev.at || '', class: 'event-at muted', text: fmtDate(ev.at) }));
      const data = ev.data;
      if (data !== null && data !== undefined && !(typeof data === 'object' && Object.keys(data).length === 0)) {
        li.append(el('code', { class: 'event-data', text: typeof data === 'string' ? data : JSON.stringify(data) }));
      }
      ol.append(li);
    }
  }

  // ---- create -------------------------------------------------------------------------------

  function list(id) {
    return $(id).value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  }

  function clearFieldErrors() {
    for (const f of FIELDS) {
      const e = $('err-' + f);
      e.textContent = '';
      e.hidden = true;
      $('f-' + f).removeAttribute('aria-invalid');
    }
    const g = $('create-error');
    g.replaceChildren();
    g.hidden = true;
  }

  function fieldOf(path) {
    if (!path) return null;
    const head = String(path).split(/[.[]/)[0];
    return FIELDS.includes(head) ? head : null;
  }

  function showFaults(fault) {
    const subs = fault.faults && fault.faults.length ? fault.faults : [fault];
    const general = [];
    let first = null;
    for (const f of subs) {
      const field = fieldOf(f.path);
      if (!field) {
        general.push(f.path ? f.path + ': ' + faultText(f) : faultText(f));
        continue;
      }
      const e = $('err-' + field);
      const msg = faultText(f) + (f.path && f.path !== field ? ' (at ' + f.path + ')' : '');
      e.textContent = e.textContent ? e.textContent + ' ' + msg : msg;
      e.hidden = false;
      $('f-' + field).setAttribute('aria-invalid', 'true');
      if (!first) first = field;
    }
    if (general.length) {
      const g = $('create-error');
      g.replaceChildren(...general.map((m) => el('div', { text: m })));
      g.hidden = false;
    } else if (first) {
      const g = $('create-error');
      g.textContent = subs.length === 1 ? 'Please fix the field marked above.' : 'Please fix the ' + subs.length + ' fields marked above.';
      g.hidden = false;
    }
    if (first) $('f-' + first).focus();
  }

  async function onCreate(ev) {
    ev.preventDefault();
    clearFieldErrors();
    const body = {
      label: $('f-label').value.trim(),
      objects: $('f-objects').value,
      format: $('f-format').value,
      exportFiles: $('f-exportFiles').checked,
      zipFiles: $('f-zipFiles').checked,
      csvEscapeFormulas: $('f-csvEscapeFormulas').checked,
    };
    const desc = $('f-description').value.trim();
    if (desc) body.description = desc;
    for (const f of ['paths', 'include', 'expand']) {
      const v = list('f-' + f);
      if (v.length) body[f] = v;
    }
    const where = $('f-where').value.trim();
    if (where) body.where = where;
    const script = $('f-afterScript').value;
    if (script.trim()) body.afterScript = script;
    const principal = $('f-principal').value.trim();
    if (principal) body.principal = principal;
    const prefix = $('f-prefix').value.trim();
    if (prefix) body.prefix = prefix;

    const btn = $('create-submit');
    btn.disabled = true;
    try {
      const { data } = await api('POST', '/exports', body);
      showStatus('Export “' + data.label + '” created.', 'ok');
      for (const f of ['label', 'description', 'where', 'paths', 'include', 'expand', 'prefix', 'principal', 'afterScript']) $('f-' + f).value = '';
      for (const f of ['exportFiles', 'zipFiles', 'csvEscapeFormulas']) $('f-' + f).checked = false;
      await refresh();
    } catch (e) {
      if (e.status !== 401) showFaults(e.fault && e.fault.object === 'fault' ? e.fault : { message: e.message });
    } finally {
      btn.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------------------------

  function wire() {
    $('login-form').addEventListener('submit', onLogin);
    $('create-form').addEventListener('submit', onCreate);
    $('sign-out').addEventListener('click', onLogout);
    $('refresh').addEventListener('click', () => { refresh(); });
    $('detail-close').addEventListener('click', () => closeDialog($('detail-dialog')));
    $('detail-dialog').addEventListener('close', () => { state.detailId = null; });
    // a click on the backdrop closes the detail
    $('detail-dialog').addEventListener('click', (ev) => {
      if (ev.target === $('detail-dialog')) {
        const r = ev.target.getBoundingClientRect();
        const inside = ev.clientX >= r.left && ev.clientX <= r.right && ev.clientY >= r.top && ev.clientY <= r.bottom;
        if (!inside) closeDialog($('detail-dialog'));
      }
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.signedIn) refresh();
    });
  }

  async function start() {
    wire();
    document.title = ORG + ' · exportd admin';
    try {
      const me = await loadMe();
      await showApp(me);
    } catch (e) {
      showLogin(e.status === 401 || e.status === 403 ? '' : faultText(e.fault) || e.message);
    }
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
