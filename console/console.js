// console/console.js — the console's pages in plain JavaScript (no framework, no
// build step).  Every change is a JSON POST carrying the session's CSRF token
// (X-CSRF-Token); the session cookie itself is HttpOnly, so no script reads it.
// The API is described in docs/console.md.
//
// Every value shown comes from somewhere an attacker may write (a message's
// Subject, a server's reply, a log line, a setting): it reaches the page only as
// text (textContent, an input's value), never as markup, and never as a URL.
// The page's Content-Security-Policy enforces it: no inline script, and Trusted
// Types refuse any string given to innerHTML and the other HTML sinks.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  csrf: null,
  settings: null,        // the last settings report (GET /api/settings)
  password: 'keep',      // keep | replace | remove
  queue: { folder: 'pickup', after: null, before: null, last: false, page: null },
  events: null,          // the EventSource of the status page
  logSeen: new Set(),    // log lines shown (by seq)
};

// ---------------------------------------------------------------- helpers

// shown(s): the display rule of the CLI (runtime/text.h, lua/mailhook/display.lua)
// for every value the page shows.  Text is no markup here, but what an admin reads
// can still be disguised: a direction override or isolate (a Subject
// "\u202Etxt.exe" read "exe.txt"), a line separator, a control character; each
// is shown as a visible escape: \u202e, \xNN (a C1 control as the two bytes of
// its UTF-8 form, \xc2\x9b, as `mailhook queue` shows it).  Lines and tabs stay.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const hex2 = (n) => '\\x' + n.toString(16).padStart(2, '0');
function shown(s) {
  return String(s).replace(UNSAFE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x80 ? hex2(n) : n < 0xa0 ? hex2(0xc2) + hex2(n) : '\\u' + n.toString(16).padStart(4, '0');
  });
}

function text(el, s) { el.textContent = s == null ? '' : shown(s); }

function el(tag, cls, content) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (content != null) e.textContent = shown(content);
  return e;
}

function ago(secs) {
  if (secs == null) return '?';
  secs = Math.max(0, Math.round(secs));
  if (secs < 120) return secs + 's';
  if (secs < 7200) return Math.floor(secs / 60) + 'm';
  if (secs < 172800) return Math.floor(secs / 3600) + 'h ' + Math.floor(secs % 3600 / 60) + 'm';
  return Math.floor(secs / 86400) + 'd ' + Math.floor(secs % 86400 / 3600) + 'h';
}

function clock(t) {
  if (!t) return '?';
  return new Date(t * 1000).toLocaleString();
}

// The server outage (the API's `outage`: SPOOL/outage) as `mailhook queue`
// words it; '' when there is none.  Text only: the reason quotes the server.
function outageLine(o, now) {
  if (!o || typeof o.error !== 'string') return '';
  return 'delivery suspended since ' + clock(o.since) + ' (' + ago(o.age != null ? o.age : now - o.since) +
    ' ago): ' + o.error;
}

function replyText(r) {
  if (!r) return '';
  return [r.smtp, r.text].filter((x) => x != null && x !== '').join(' ');
}

// poll: a request the page makes by itself (a timer, not a click): it does not
// count as a use of the session, so a tab left open still logs out when unused.
async function api(method, path, body, poll) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (poll) opts.headers['X-Mailhook-Poll'] = '1';
  if (method !== 'GET') {
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['X-CSRF-Token'] = state.csrf || '';
    opts.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, opts);
  if (res.status === 401) {
    loggedOut();
    throw new Error('logged out');
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = { ok: false, error: 'bad answer (' + res.status + ')' }; }
  data.httpStatus = res.status;
  return data;
}

// The session ended (the service restarted, logout elsewhere, expiry, a
// password change): to the login page, which says why.  The values typed and
// not saved are kept in this tab's sessionStorage (never a password: it is
// typed again) and put back in the form after the login, marked unsaved.
const DRAFT = 'mailhook-draft', ENDED = 'mailhook-session-ended';

function loggedOut() {
  try {
    const c = state.settings ? changes() : {};
    const typedPw = 'password' in c;
    delete c.password;
    if (Object.keys(c).length || typedPw) {
      sessionStorage.setItem(DRAFT, JSON.stringify({ changes: c, password: typedPw }));
    }
    sessionStorage.setItem(ENDED, '1');
  } catch (e) { /* storage refused: the login page still says the session ended */ }
  state.leaving = true;
  window.location.assign('/login');
}

// After a login: the values typed before the session ended, back in the form.
function restoreDraft() {
  let d = null;
  try { d = JSON.parse(sessionStorage.getItem(DRAFT) || 'null'); sessionStorage.removeItem(DRAFT); } catch (e) { d = null; }
  if (!d || typeof d.changes !== 'object' || d.changes === null) return;
  const keys = [];
  for (const input of fields()) {
    const k = input.dataset.key;
    if (!Object.prototype.hasOwnProperty.call(d.changes, k)) continue;
    const v = d.changes[k];
    if (input.type === 'checkbox') input.checked = v === true;
    else input.value = String(v);
    keys.push(k);
  }
  markChanges();
  const msg = (keys.length ? 'Your session ended before these changes were saved: ' + keys.join(', ') +
    ' (back in the form, not saved yet: check them and press Update).' : 'Your session ended before your changes were saved.') +
    (d.password ? ' The password you typed was not kept: type it again.' : '');
  showWarnings($('update-warnings'), [msg]);
}

// ---------------------------------------------------------------- pages

const pages = ['settings', 'queue', 'status'];

function show(name) {
  if (!pages.includes(name)) name = 'settings';
  for (const p of pages) {
    $('page-' + p).hidden = p !== name;
    $('nav-' + p).classList.toggle('active', p === name);
  }
  if (name === 'queue') loadQueue().finally(watchOutage);
  if (name === 'status') startEvents(); else stopEvents();
}

window.addEventListener('hashchange', () => show(location.hash.slice(1)));

$('logout').addEventListener('click', async () => {
  await api('POST', '/api/logout', {}).catch(() => {});
  stopEvents();
  window.location.assign('/login');
});

// ---------------------------------------------------------------- settings

const fields = () => Array.from(document.querySelectorAll('#settings-form [data-key]'));

function fieldValue(input) {
  return input.type === 'checkbox' ? input.checked : input.value.trim();
}

function shownValue(key, v) {
  if (v == null) return '';
  if (Array.isArray(v)) return v.join(', ');
  return String(v);
}

function fillSettings(report) {
  state.settings = report;
  for (const input of fields()) {
    const v = report.settings[input.dataset.key];
    if (input.type === 'checkbox') input.checked = v === true;
    else input.value = shownValue(input.dataset.key, v);
    input.dataset.saved = input.type === 'checkbox' ? String(v === true) : shownValue(input.dataset.key, v);
  }
  setPassword('keep');
  markChanges();
}

function setPassword(mode) {
  state.password = mode;
  const set = state.settings && state.settings.password_set;
  text($('password-state'), mode === 'remove' ? 'will be removed on Update'
    : mode === 'replace' ? 'type the new password:' : set ? 'a password is set (never shown)' : 'no password is set');
  $('f-password').hidden = mode !== 'replace';
  $('password-keep').hidden = mode === 'keep';
  $('password-replace').hidden = mode === 'replace';
  $('password-remove').hidden = mode === 'remove' || !set;
  if (mode !== 'replace') $('f-password').value = '';
  if (mode === 'replace') $('f-password').focus();
  markChanges();
}

$('password-replace').addEventListener('click', () => setPassword('replace'));
$('password-remove').addEventListener('click', () => setPassword('remove'));
$('password-keep').addEventListener('click', () => setPassword('keep'));

// The fields changed since the last load or save: {key: value}.
function changes() {
  const out = {};
  for (const input of fields()) {
    const v = fieldValue(input);
    if (String(v) !== input.dataset.saved) out[input.dataset.key] = v;
  }
  if (state.password === 'replace' && $('f-password').value !== '') out.password = $('f-password').value;
  if (state.password === 'remove') out.password = '';
  return out;
}

function markChanges() {
  let any = false;
  for (const input of fields()) {
    const changed = String(fieldValue(input)) !== input.dataset.saved;
    input.closest('.row').classList.toggle('changed', changed);
    any = any || changed;
  }
  const pw = state.password !== 'keep' && !(state.password === 'replace' && $('f-password').value === '');
  $('f-password').closest('.row').classList.toggle('changed', pw);
  $('unsaved').hidden = !(any || pw);
  // the stored password is only sent to the server it was saved for: moving
  // it needs it typed again (or removed), with authentication on or off
  const dest = state.settings && (state.settings.destination || []).some((k) => {
    const input = document.querySelector('#settings-form [data-key="' + k + '"]');
    return input && String(fieldValue(input)) !== input.dataset.saved;
  });
  const needPw = dest && state.password === 'keep' && state.settings && state.settings.password_set;
  text($('password-hint'), needPw ? 'the server or its security changed: type the password again, or ' +
    'remove it (the stored one is only sent to the server it was saved for)' : '');
}

document.getElementById('settings-form').addEventListener('input', markChanges);
document.getElementById('settings-form').addEventListener('change', markChanges);
window.addEventListener('beforeunload', (ev) => {
  if (!$('unsaved').hidden && !state.leaving) { ev.preventDefault(); ev.returnValue = ''; }
});

function clearErrors() {
  for (const e of document.querySelectorAll('.field-error')) text(e, '');
  for (const e of document.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  text($('update-result'), '');
  text($('update-saved'), '');
  showWarnings($('update-warnings'), []);
}

// A setting's name as its form shows it (the label of its field), else its key.
function labelOf(key) {
  const input = document.querySelector('[data-key="' + key + '"]');
  const label = input && input.id && document.querySelector('label[for="' + input.id + '"]');
  return label ? label.textContent.trim() : key;
}

// Warnings the service gives with a saved or tested value (mail stopped,
// certificate not checked, a file's group not kept, ...): one list item each,
// as text, never markup.
function showWarnings(list, warnings) {
  list.replaceChildren();
  for (const w of Array.isArray(warnings) ? warnings : []) list.append(el('li', null, 'Warning: ' + w));
  list.hidden = list.children.length === 0;
}

// "key: reason" -> "reason" (the field says which key)
function withoutKey(key, message) {
  message = String(message || '');
  return key && message.startsWith(key + ': ') ? message.slice(key.length + 2) : message;
}

// The error beside its field (the field marked invalid and focused); a key the
// form has no field for: in the result line.
function showFieldError(key, message) {
  const target = $('err-' + key);
  if (!target) { text($('update-result'), message); return; }
  text(target, withoutKey(key, message));
  let input = document.querySelector('#settings-form [data-key="' + key + '"]') || $('f-' + key);
  if (key === 'password') {
    if (state.password !== 'replace') setPassword('replace');
    input = $('f-password');
  }
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
}

async function loadSettings() {
  const r = await api('GET', '/api/settings');
  if (r.ok) fillSettings(r);
  else text($('update-result'), r.error);
}

// Update: the button, or Enter in a field (the form's submit)
$('settings-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  update();
});
// Enter in "Send a test message to" runs the Test instead
$('f-test_to').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') { ev.preventDefault(); $('test-button').click(); }
});

async function update() {
  if ($('update-button').disabled) return;
  clearErrors();
  const c = changes();
  if (Object.keys(c).length === 0) { text($('update-result'), 'nothing changed'); return; }
  $('update-button').disabled = true;
  try {
    const r = await api('POST', '/api/settings', { changes: c, version: state.settings && state.settings.version });
    if (r.ok) {
      fillSettings(r);
      text($('update-result'), 'saved');
      $('update-result').className = 'ok';
      // what was saved, by name, as the service says it wrote them (its `saved`):
      // the admin sees the Update took what was meant
      const saved = Array.isArray(r.saved) ? r.saved : Object.keys(c);
      text($('update-saved'), saved.length ? '(' + saved.map(labelOf).join(', ') + ')' : '');
      showWarnings($('update-warnings'), r.warnings);
    } else if (r.conflict && r.current) {
      conflict(r);
    } else {
      $('update-result').className = 'error';
      const msg = withoutKey(r.key, r.error || 'not saved');
      if (r.key) showFieldError(r.key, r.error);
      text($('update-result'), 'not saved: ' + (r.key && $('err-' + r.key) ? 'see ' + r.key : msg));
    }
  } catch (e) {
    if (state.leaving) return;
    $('update-result').className = 'error';
    text($('update-result'), 'not saved: the service does not answer (' + e.message + '); your changes are still in the form');
  } finally {
    $('update-button').disabled = false;
  }
}

// A Save refused because the settings changed elsewhere since this page loaded
// them (409): the saved values are taken as the new base; a field this page
// had not changed shows the new value, a field typed in keeps what was typed
// (still marked unsaved); the keys changed elsewhere are named.
function conflict(r) {
  const cur = r.current, elsewhere = [];
  const pwMode = state.password, pwTyped = $('f-password').value;
  for (const input of fields()) {
    const k = input.dataset.key, v = cur.settings[k];
    const now = input.type === 'checkbox' ? String(v === true) : shownValue(k, v);
    if (now === input.dataset.saved) continue;
    elsewhere.push(k);
    const typed = String(fieldValue(input)) !== input.dataset.saved;
    if (!typed) {
      if (input.type === 'checkbox') input.checked = v === true; else input.value = now;
    }
    input.dataset.saved = now;
  }
  state.settings = cur;
  setPassword(pwMode);
  if (pwMode === 'replace') $('f-password').value = pwTyped;
  markChanges();
  $('update-result').className = 'error';
  text($('update-result'), r.error);
  showWarnings($('update-warnings'), [elsewhere.length ? 'Changed elsewhere meanwhile: ' + elsewhere.join(', ') +
    ' (the form now shows the saved values, except where you typed)' : 'Changed elsewhere meanwhile: a setting this page does not show']);
}

// ---------------------------------------------------------------- test

const STAGE_NAMES = ['dns', 'connect', 'tls', 'auth', 'sender', 'recipient'];

function stage(name, st, detail) {
  const li = $('stage-' + name);
  if (!li) return;
  li.dataset.state = st;
  text(li.querySelector('.detail'), detail || '');
}

function resetStages() {
  for (const n of STAGE_NAMES) stage(n, 'pending', '');
  text($('test-result'), 'testing…');
  text($('test-error'), '');
  text($('test-hint'), '');
  $('test-info').replaceChildren();
  showWarnings($('test-warnings'), []);
}

function fact(dl, k, v) {
  if (v == null || v === '') return;
  dl.append(el('dt', null, k), el('dd', null, v));
}

function showResult(r) {
  for (const s of r.stages || []) {
    let detail = s.state === 'ok' && s.at_ms != null ? s.at_ms + ' ms' : s.state === 'ok' ? '' : s.state;
    const c = r.connection || {};
    if (s.name === 'connect' && c.address && s.state === 'ok') detail = c.address + ' port ' + c.port + ', ' + detail;
    if (s.name === 'tls' && s.state === 'ok') detail = (c.tls_version || '') + ' ' + (c.cipher || '') + ', ' + detail;
    if (s.name === 'auth' && s.state === 'ok' && c.auth_mechanism) detail = c.auth_mechanism.toUpperCase() + ', ' + detail;
    if (s.state === 'failed') detail = 'failed';
    stage(s.name, s.state === 'ok' ? 'ok' : s.state === 'failed' ? 'failed' : s.state === 'skipped' ? 'skipped' : 'unreached', detail);
  }
  text($('test-result'), r.ok ? 'OK: everything passed' : 'FAILED at stage ' + (r.failed_stage || '?'));
  $('test-result').className = r.ok ? 'ok' : 'error';
  showWarnings($('test-warnings'), r.warnings);
  if (!r.ok) {
    text($('test-error'), r.error + (r.reply ? ' (server reply: ' + replyText(r.reply) + ')' : ''));
    text($('test-hint'), r.hint ? 'Hint: ' + r.hint : '');
    if (r.failed_stage === 'settings' && r.key) showFieldError(r.key, r.error);
  }
  const dl = $('test-info');
  dl.replaceChildren();
  const c = r.connection;
  if (c) {
    fact(dl, 'server', (c.server || '') + (c.address ? ' (' + c.address + ')' : '') + ' port ' + (c.port || ''));
    fact(dl, 'security', c.security + (c.tls_version ? ' (' + c.tls_version + ', ' + (c.cipher || '') + ')' : ''));
    if (c.certificate) {
      fact(dl, 'certificate', c.certificate.subject);
      fact(dl, 'names', c.certificate.names);
      fact(dl, 'issuer', c.certificate.issuer);
      fact(dl, 'expires', c.certificate.not_after);
      fact(dl, 'verified', (c.certificate.verified ? 'yes' : 'NO') + ' (' + (c.certificate.result || '') + ')');
    }
    // a list the server never sent (refused before EHLO) comes as {} (an empty
    // Lua table), not []: the result must still show, not stop the page
    const list = (v) => (Array.isArray(v) ? v : []);
    if (list(c.capabilities).length) fact(dl, 'capabilities', list(c.capabilities).join(', '));
    fact(dl, 'auth', c.auth_mechanism ? c.auth_mechanism.toUpperCase() : list(c.auth_offered).length ? 'offered: ' + list(c.auth_offered).join(', ') : '');
  }
  if (r.sent) fact(dl, 'test message', 'sent to ' + r.to + ': ' + (r.test_reply || ''));
}

$('test-button').addEventListener('click', async () => {
  clearErrors();
  $('test-panel').hidden = false;
  resetStages();
  $('test-button').disabled = true;
  try {
    const to = $('f-test_to').value.trim();
    const res = await fetch('/api/test', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': state.csrf || '' },
      body: JSON.stringify({ changes: changes(), to: to || null }),
    });
    if (res.status === 401) { loggedOut(); return; }
    if (!res.ok) {
      const b = await res.json().catch(() => ({}));
      text($('test-result'), b.error || ('test refused (' + res.status + ')'));
      $('test-result').className = 'error';
      if (b.key) showFieldError(b.key, b.error);
      return;
    }
    // one JSON object a line, as each stage passes; the last is the result
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        if (ev.event === 'stage') {
          if (ev.name === 'connect') stage('dns', 'ok', '');
          stage(ev.name, 'ok', (ev.name === 'tls' && ev.tls_version ? ev.tls_version + ', ' : '') +
            (ev.name === 'auth' && ev.auth_mechanism ? ev.auth_mechanism.toUpperCase() + ', ' : '') + ev.at_ms + ' ms');
          if (ev.name === 'connect' && ev.security === 'none') stage('tls', 'skipped', 'plain text');
        } else if (ev.event === 'result') {
          showResult(ev.result);
        }
      }
      if (done) break;
    }
  } catch (e) {
    text($('test-result'), 'the test was interrupted: ' + e.message);
  } finally {
    $('test-button').disabled = false;
  }
});

// ---------------------------------------------------------------- queue

function queueQuery() {
  const q = state.queue;
  const p = new URLSearchParams({ folder: q.folder, limit: '50' });
  if (q.after) p.set('after', q.after);
  if (q.before) p.set('before', q.before);
  if (q.last) p.set('last', '1');
  return '/api/queue?' + p.toString();
}

function actionButton(label, cls, fn) {
  const b = el('button', 'small ' + cls, label);
  b.type = 'button';
  b.addEventListener('click', fn);
  return b;
}

async function queueAction(what, id) {
  if (what === 'remove' && !window.confirm('Remove message ' + id + ' for good?')) return;
  const r = await api('POST', '/api/queue/' + what, { id });
  text($('queue-message'), !r.ok ? r.error : what === 'remove' ? id + ' removed'
    : r.queued === false ? r.note : id + ' queued for delivery');
  await loadQueue();
}

// A file of maildrop/ (the API's `maildrop`), by its name: Remove deletes it
// (as `mailhook queue rm NAME`: it was never queued, never sent); Retry says
// it waits for the service to adopt it (the API's note), nothing else.
async function maildropAction(what, name) {
  if (what === 'remove' && !window.confirm('Remove maildrop/' + name + ' for good? It was never adopted: ' +
      'never queued, never sent.')) return;
  const r = await api('POST', '/api/queue/' + what, { id: name });
  text($('queue-message'), !r.ok ? r.error : what === 'remove'
    ? 'maildrop/' + name + ' removed (it was never adopted: never queued, never sent)'
    : r.note || 'maildrop/' + name + ' waits for the service to adopt it');
  await loadQueue();
}

// Who dropped a maildrop/ file: its login and uid, as `mailhook queue` says.
function dropper(e) {
  if (e.uid == null) return '';
  return e.login ? e.login + ' (uid ' + e.uid + ')' : 'uid ' + e.uid;
}

// The files local users handed over and the service has not adopted yet (the
// API's `maildrop`, with the pickup/ page only), as `mailhook queue` and
// mailq list them: text only, as every value of the page.
function showMaildrop(r) {
  const list = r.maildrop || [];
  $('maildrop-box').hidden = list.length === 0;
  text($('maildrop-count'), '(' + (r.maildrop_total > list.length ? list.length + ' of ' + r.maildrop_total
    + ' listed' : list.length) + ')');
  const body = document.querySelector('#maildrop-table tbody');
  body.replaceChildren();
  for (const e of list) {
    const tr = el('tr');
    tr.dataset.name = e.name;
    const refused = e.refused || [];
    // the items sendmail left out (kept escaped: \xNN, \x5C), each with why on hover;
    // a file that is no drop: why (the service moves it to corrupt/)
    const left = el('td', 'reply', e.stuck ? null : e.reason || refused.map(x => x.rcpt).join(', '));
    if (!e.reason && refused.length) left.title = refused.map(x => shown(x.rcpt + ': ' + x.reply)).join('\n');
    // one the service tried and had to leave there (`stuck`: its owner unseen from
    // its user namespace, a mode): said so, with its reason, as `mailhook queue`
    // says it; it looked like any file waiting for the service
    if (e.stuck) {
      tr.dataset.stuck = '';
      left.append(el('span', 'error', 'the service cannot adopt it: ' + e.stuck));
      if (!e.reason && refused.length) left.append(el('br'), shown(refused.map(x => x.rcpt).join(', ')));
    }
    tr.append(el('td', 'mono', e.name), el('td', null, e.age == null ? '' : ago(e.age)), el('td', null, dropper(e)),
      el('td', null, e.from == null ? '' : e.from === '' ? '<> (null sender)' : e.from), el('td', null, e.subject || ''),
      el('td', null, (e.to || []).join(', ')), left);
    const actions = el('td', 'actions');
    actions.append(actionButton('Retry', 'retry', () => maildropAction('retry', e.name)),
      actionButton('Remove', 'remove danger', () => maildropAction('remove', e.name)));
    tr.append(actions);
    body.append(tr);
  }
}

function showQueueOutage(o) {
  const line = outageLine(o, Date.now() / 1000);
  text($('queue-outage'), line);
  $('queue-outage').hidden = !line;
}

// The outage banner follows delivery while the Queue page is open (it was set
// only on load or a tab click, so it said "suspended" long after the server
// came back, and nothing when it went down): GET /api/status (its outage is the
// same SPOOL/outage) every OUTAGE_POLL_MS while the page is shown and the tab
// visible; a hidden tab asks nothing, and asks at once when shown again.  The
// table itself is left alone (a poll must not move the rows under a click).
const OUTAGE_POLL_MS = 3000;
let outageTimer = null;

function outageWatched() {
  return !$('page-queue').hidden && document.visibilityState === 'visible';
}

function watchOutage() {
  if (outageTimer || !outageWatched()) return;
  outageTimer = setTimeout(async () => {
    try {
      const r = await api('GET', '/api/status', null, true);
      if (r.httpStatus === 200 && outageWatched()) showQueueOutage(r.outage);
    } catch (e) { /* logged out (handled), or the service gone: asked again next time */ }
    outageTimer = null;
    watchOutage();
  }, OUTAGE_POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || $('page-queue').hidden) return;
  loadQueue().finally(watchOutage);
});

async function loadQueue() {
  const q = state.queue;
  $('queue-pickup-tab').classList.toggle('active', q.folder === 'pickup');
  $('queue-failed-tab').classList.toggle('active', q.folder === 'failed');
  const r = await api('GET', queueQuery());
  if (!r.ok) { text($('queue-message'), r.error); return; }
  q.page = r;
  text($('count-pickup'), '(' + r.counts.pickup + ')');
  text($('count-failed'), '(' + r.counts.failed + ')');
  const now = Date.now() / 1000;
  showQueueOutage(r.outage);
  const body = document.querySelector('#queue-table tbody');
  body.replaceChildren();
  for (const e of r.entries) {
    const tr = el('tr');
    tr.dataset.id = e.id;
    tr.append(el('td', 'mono', e.id), el('td', null, ago(e.age)), el('td', null, e.subject || ''),
      el('td', null, (e.to || []).join(', ')), el('td', 'num', e.attempts),
      el('td', null, e.state === 'failed' ? 'failed ' + (e.failed_at ? clock(e.failed_at) : '')
        : e.next_attempt && e.next_attempt > now ? 'in ' + ago(e.next_attempt - now)
        // due, but waiting on the outage's retry (not being sent now), as `mailhook queue` says
        : e.outage ? 'outage' : 'now'),
      // a waiting message with no reply of its own waits on the outage (only the one tried got its reply)
      el('td', 'reply', e.reason || e.last_reply || (e.state !== 'failed' && e.outage ? 'outage: ' + e.outage : '')));
    const actions = el('td', 'actions');
    actions.append(actionButton('Retry', 'retry', () => queueAction('retry', e.id)),
      actionButton('Remove', 'remove danger', () => queueAction('remove', e.id)));
    tr.append(actions);
    body.append(tr);
  }
  if (r.entries.length === 0) {
    const tr = el('tr');
    const td = el('td', 'muted', q.folder === 'pickup' ? 'nothing waiting' : 'no failed message');
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
  }
  showMaildrop(r);
  text($('queue-range'), (r.total === 0 ? '0 messages' : 'messages ' + r.first.toLocaleString() + '–' +
    r.last.toLocaleString() + ' of ' + r.total.toLocaleString() + (r.drop_ins ? ' (+' + r.drop_ins + ' dropped in)' : '')) +
    (r.maildrop_total ? ' (+' + r.maildrop_total + ' in maildrop/)' : ''));
  $('queue-first').disabled = $('queue-prev').disabled = r.first <= 1;
  $('queue-next').disabled = $('queue-last').disabled = r.last >= r.total;
}

function queuePage(after, before, last) {
  Object.assign(state.queue, { after, before, last });
  loadQueue();
}

$('queue-pickup-tab').addEventListener('click', () => { state.queue.folder = 'pickup'; queuePage(null, null, false); });
$('queue-failed-tab').addEventListener('click', () => { state.queue.folder = 'failed'; queuePage(null, null, false); });
$('queue-first').addEventListener('click', () => queuePage(null, null, false));
$('queue-last').addEventListener('click', () => queuePage(null, null, true));
$('queue-next').addEventListener('click', () => {
  const e = state.queue.page.entries;
  if (e.length) queuePage(e[e.length - 1].id, null, false);
});
$('queue-prev').addEventListener('click', () => {
  const e = state.queue.page.entries;
  if (e.length) queuePage(null, e[0].id, true);
});
$('flush-button').addEventListener('click', async () => {
  const r = await api('POST', '/api/queue/flush', {});
  text($('queue-message'), r.ok ? 'flush requested: every message is tried now' : r.error);
  setTimeout(loadQueue, 1000);
});

// ---------------------------------------------------------------- status

// The pill and the summary: one of four states, as `mailhook status` says its
// first line.  "flowing, but" (r.old_settings, r.maildrop_stuck): the exit
// status is 1 and flowing is false, yet the mail that can go goes (the service
// delivers with the settings it loaded before; a file of maildrop/ it cannot
// adopt waits on a human): amber, with the reason.  Before, both read as a red
// "NOT flowing", which sent the administrator after an outage there was not.
function flowState(r) {
  if (r.untried) return 'untried';
  if (r.flowing) return 'flowing';
  if (r.old_settings || r.maildrop_stuck) return 'but';
  return 'not';
}

function showStatus(r) {
  const flow = $('flow');
  const fs = flowState(r);
  // flowing only because nothing was tried since the service started: said so
  text(flow, { untried: 'idle, not tried', flowing: 'mail is flowing', but: 'flowing, but', not: 'NOT flowing' }[fs]);
  flow.className = 'pill ' + { untried: '', flowing: 'ok', but: 'warn', not: 'bad' }[fs];
  flow.title = fs === 'but' ? 'mail is flowing, but something needs you: the Status page says what' : '';
  // The outage is said once, in its own line (delivery suspended since ...: why):
  // the summary, the connection and the last error named the same reason again.
  const outage = outageLine(r.outage, r.checked_at);
  const why = outage ? r.outage.error : null;
  const said = (t) => why != null && t != null && String(t).includes(why);
  // (the CLI's reason quotes commands in backquotes; the page's rows do not)
  const but = () => (r.old_settings ? 'Mail is flowing with the settings the service loaded before, but ' :
    'Mail is flowing, but ') + String(r.reason).replace(/`/g, '');
  text($('status-summary'), fs === 'untried' ? 'Nothing to send: the server has not been tried since the service ' +
    'started (Test, on the Settings page, tries it now).' : fs === 'flowing' ? 'Mail is flowing.' : fs === 'but' ? but() :
    'Mail is NOT flowing: ' +
    (said(r.reason) ? String(r.reason).replace(why, '').replace(/[:\s]+$/, '') + ' (delivery suspended: below)' : r.reason));
  $('status-summary').className = 'summary ' + { untried: '', flowing: 'ok', but: 'hint', not: 'error' }[fs];
  const dl = $('status-rows');
  dl.replaceChildren();
  const now = r.checked_at;
  const s = r.service;
  fact(dl, 'service', s.running ? 'running, pid ' + s.pid + ', since ' + clock(s.since) + ' (' + ago(now - s.since) + ')' : 'not running');
  fact(dl, 'settings', r.settings.ready ? 'ready' : 'NOT ready: ' + r.settings.error);
  const c = r.connection;
  if (c) {
    let line = c.state + ' since ' + clock(c.since);
    if (c.state === 'connected') line = 'connected to ' + (c.server || '?') + (c.security && c.security !== 'none' ? ' (' + c.security + ')' : '') + ' since ' + clock(c.since);
    if (c.state === 'waiting-retry' && c.outage) {
      const reason = (c.outage.stage ? c.outage.stage + ': ' : '') + c.outage.error;
      line = 'waiting to retry since ' + clock(c.outage.since) + (said(reason) ? ' (the outage below)' : ': ' + reason);
    }
    fact(dl, 'connection', line);
    if (c.next_attempt) fact(dl, 'next attempt', clock(c.next_attempt) + ' (in ' + ago(c.next_attempt - now) + ')');
    if (c.last_error) {
      const e = c.last_error;
      if (said((e.stage ? e.stage + ': ' : '') + e.error)) {
        fact(dl, 'last error', clock(e.at) + ' ' + (e.id ? e.id + ' ' : '') + '(the outage below)');
      } else {
        fact(dl, 'last error', clock(e.at) + ' ' + (e.stage ? 'at ' + e.stage + ': ' : '') + (e.id ? e.id + ' ' : '') + e.error +
          (e.reply && replyText(e.reply) && !String(e.error).includes(replyText(e.reply)) ? ' (' + replyText(e.reply) + ')' : ''));
      }
    }
    fact(dl, 'last success', c.last_success ? clock(c.last_success) + ' (' + ago(now - c.last_success) + ' ago)' : 'none since start');
  }
  fact(dl, 'delivery', outage);
  const q = r.queue;
  if (q) fact(dl, 'queue', q.pickup + ' in pickup/' + (q.oldest_age != null ? ', oldest ' + ago(q.oldest_age) : '') + '; ' + q.failed + ' in failed/' +
    (q.maildrop ? '; ' + q.maildrop + ' in maildrop/ (from local users: wait for the service)' : ''));
  // the files of maildrop/ the service cannot adopt, as `mailhook status` names them
  // (service.maildrop_stuck: at most 10 here, the rest counted)
  const stuck = s.maildrop_stuck || [], nstuck = s.maildrop_stuck_total || 0;
  if (nstuck > 0) {
    const dd = el('dd', 'error', nstuck + (nstuck === 1 ? ' file' : ' files') + ' of maildrop/ the service cannot ' +
      'adopt (tried again at each scan, logged once each; fix the file, or mailhook queue rm NAME):');
    for (const w of stuck.slice(0, 10)) {
      dd.append(el('br'), shown(w.name + ' since ' + clock(w.since) + ': ' + String(w.reason).replace(/^maildrop: /, '')));
    }
    if (nstuck > Math.min(stuck.length, 10)) dd.append(el('br'), 'and ' + (nstuck - Math.min(stuck.length, 10)) +
      ' more (the Queue page lists them)');
    dl.append(el('dt', null, 'maildrop/'), dd);
  }
  const k = r.counters;
  if (k) fact(dl, 'since start', 'delivered ' + k.delivered + ', deferred ' + k.deferred + ', failed ' + k.failed);
}

function addLog(l) {
  if (state.logSeen.has(l.seq)) return;     // the SSE stream and /api/log may overlap
  state.logSeen.add(l.seq);
  const li = el('li', 'log-' + l.level);
  li.append(el('time', null, new Date(l.at * 1000).toLocaleTimeString()), el('span', 'level', l.level), el('span', 'text', l.text));
  const list = $('log-lines');
  list.append(li);
  while (list.children.length > 500) list.firstChild.remove();
  li.scrollIntoView({ block: 'nearest' });
}

function startEvents() {
  if (state.events) return;
  $('log-lines').replaceChildren();
  state.logSeen.clear();
  const es = new EventSource('/api/events');
  state.events = es;
  es.addEventListener('open', () => text($('log-live'), '(live)'));
  es.addEventListener('error', () => {
    text($('log-live'), '(reconnecting…)');
    // a stream refused for want of a session (401) would be retried for ever
    fetch('/api/session', { credentials: 'same-origin' }).then((r) => { if (r.status === 401) loggedOut(); },
      () => {});
  });
  es.addEventListener('logout', () => { stopEvents(); loggedOut(); });
  es.addEventListener('status', (ev) => showStatus(JSON.parse(ev.data)));
  es.addEventListener('log', (ev) => addLog(JSON.parse(ev.data)));
  api('GET', '/api/log').then((r) => { if (r.ok) r.lines.forEach(addLog); });
}

function stopEvents() {
  if (state.events) { state.events.close(); state.events = null; }
}

// ---------------------------------------------------------------- console password

$('admin-password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  for (const id of ['err-admin-current', 'err-admin-new', 'admin-password-result']) text($(id), '');
  const cur = $('admin-current').value, nw = $('admin-new').value, again = $('admin-new2').value;
  if (nw !== again) { text($('err-admin-new'), 'the two new passwords differ'); $('admin-new2').focus(); return; }
  $('admin-password-button').disabled = true;
  try {
    const r = await api('POST', '/api/password', { current: cur, new: nw });
    if (r.ok) {
      state.csrf = r.csrf;
      for (const id of ['admin-current', 'admin-new', 'admin-new2']) $(id).value = '';
      $('admin-password-result').className = 'ok';
      text($('admin-password-result'), 'changed: every other session was logged out');
    } else {
      $('admin-password-result').className = 'error';
      if (r.key === 'current') { text($('err-admin-current'), r.error); $('admin-current').focus(); }
      else if (r.key === 'new') { text($('err-admin-new'), r.error); $('admin-new').focus(); }
      else text($('admin-password-result'), r.error);
    }
  } finally {
    $('admin-password-button').disabled = false;
  }
});

// ---------------------------------------------------------------- start

(async () => {
  const s = await api('GET', '/api/session');
  state.csrf = s.csrf;
  try { sessionStorage.removeItem(ENDED); } catch (e) { /* nothing to forget */ }
  await loadSettings();
  restoreDraft();
  // the page is shown as soon as its settings are there: the status (the sidebar's
  // figures) follows, and a service busy delivering must not keep the form hidden
  show(location.hash.slice(1) || 'settings');
  const st = await api('GET', '/api/status');
  if (st.service) showStatus(st);
})();
