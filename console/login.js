// console/login.js — posts the admin password as JSON; the session cookie it gets
// back is HttpOnly and SameSite=Strict (docs/console.md).
'use strict';
document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const out = document.getElementById('login-error');
  const button = document.getElementById('login-button');
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
