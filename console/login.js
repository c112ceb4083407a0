// console/login.js — posts the admin password as JSON; the session cookie it gets
// back is HttpOnly and SameSite=Strict (docs/console.md).  Before anyone types, it
// asks whether a password is set at all, and if not says how to set one.
'use strict';
const out = document.getElementById('login-error');
const button = document.getElementById('login-button');

// sent here because the session ended (console.js): say so, and that what was
// typed and not saved comes back after the login
try {
  if (sessionStorage.getItem('mailhook-session-ended')) {
    out.textContent = 'Your session ended (the service restarted, or it expired, or you were logged out): ' +
      'log in again.' + (sessionStorage.getItem('mailhook-draft') ? ' Your unsaved changes are kept and ' +
      'shown again after you log in.' : '');
  }
} catch (e) { /* no storage: nothing to say */ }

fetch('/api/login', { credentials: 'same-origin' }).then((r) => r.json()).then((s) => {
  if (s && s.password_set === false) {
    out.textContent = s.message || 'no admin password is set';
    document.getElementById('password').disabled = true;
    button.disabled = true;
  }
}, () => {});

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  out.textContent = '';
  button.disabled = true;
  try {
    const res = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: document.getElementById('password').value }),
      credentials: 'same-origin',
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok && body.ok) {
      window.location.assign('/');
      return;
    }
    out.textContent = body.error || ('login failed (' + res.status + ')');
  } catch (e) {
    out.textContent = 'the service does not answer: ' + e.message;
  } finally {
    button.disabled = false;
  }
});
