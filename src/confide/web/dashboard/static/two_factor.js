// Passkeys and security keys (WebAuthn) for the two-factor pages: the server's JSON options go to
// navigator.credentials.create / .get, the answer goes back as JSON. Every other part of these
// pages (TOTP, recovery codes) works without this module.

const b64urlToBuffer = (text) => {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return bytes.buffer;
};

const bufferToB64url = (buffer) => {
  let binary = '';
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

const creationOptions = (json) => ({
  ...json,
  challenge: b64urlToBuffer(json.challenge),
  user: { ...json.user, id: b64urlToBuffer(json.user.id) },
  excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) })),
});

const requestOptions = (json) => ({
  ...json,
  challenge: b64urlToBuffer(json.challenge),
  allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) })),
});

const credentialJSON = (cred) => {
  const r = cred.response;
  const response = { clientDataJSON: bufferToB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = bufferToB64url(r.attestationObject);
    if (typeof r.getTransports === 'function') response.transports = r.getTransports();
  }
  if (r.authenticatorData) {
    response.authenticatorData = bufferToB64url(r.authenticatorData);
    response.signature = bufferToB64url(r.signature);
    if (r.userHandle) response.userHandle = bufferToB64url(r.userHandle);
  }
  return {
    id: cred.id,
    rawId: bufferToB64url(cred.rawId),
    type: cred.type,
    response,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
  };
};

const post = async (url, body) => {
  const res = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await res.json();
  } catch {
    data = {};
  }
  if (!res.ok) throw new Error(data.detail || 'Something went wrong. Please try again.');
  return data;
};

const say = (status, text, isError) => {
  if (!status) return;
  status.textContent = text;
  status.setAttribute('role', isError ? 'alert' : 'status');
  status.classList.toggle('flash-error-text', Boolean(isError));
};

const cancelled = (error) => error && (error.name === 'NotAllowedError' || error.name === 'AbortError');

// New recovery codes (a first factor just enrolled): shown once, in the page's panel.
const showCodes = (root, codes, redirect) => {
  const panel = root.querySelector('[data-codes-panel]');
  const list = panel && panel.querySelector('[data-codes-list]');
  if (!panel || !list || !codes || !codes.length) {
    location.assign(redirect);
    return;
  }
  list.replaceChildren(...codes.map((code) => {
    const li = document.createElement('li');
    li.textContent = code;
    li.dataset.testid = 'recovery-code';
    return li;
  }));
  const next = panel.querySelector('[data-codes-continue]');
  if (next && redirect) next.setAttribute('href', redirect);
  panel.hidden = false;
  for (const form of root.querySelectorAll('[data-passkey-register], [data-testid="totp-setup"]')) form.hidden = true;
  if (next) next.focus();
};

for (const form of document.querySelectorAll('form[data-passkey-register]')) {
  const status = form.querySelector('[data-passkey-status]');
  const button = form.querySelector('button[type="submit"]');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const label = form.elements.label.value.trim();
    if (!label) {
      say(status, 'Give the passkey a name first.', true);
      form.elements.label.focus();
      return;
    }
    if (!window.PublicKeyCredential) {
      say(status, 'This browser does not support passkeys.', true);
      return;
    }
    button.disabled = true;
    say(status, 'Follow the instructions of your browser or security key…', false);
    try {
      const options = await post(form.dataset.options, {});
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      const done = await post(form.dataset.submit, { credential: credentialJSON(credential), label, next: form.dataset.next || '' });
      say(status, 'Passkey added.', false);
      showCodes(form.closest('section') || document, done.recovery_codes, done.redirect);
    } catch (error) {
      say(status, cancelled(error) ? 'The passkey was not added (cancelled or timed out).' : error.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

for (const button of document.querySelectorAll('button[data-passkey-login]')) {
  const status = button.parentElement.querySelector('[data-passkey-status]');
  button.addEventListener('click', async () => {
    if (!window.PublicKeyCredential) {
      say(status, 'This browser does not support passkeys; use a code instead.', true);
      return;
    }
    button.disabled = true;
    say(status, 'Follow the instructions of your browser or security key…', false);
    try {
      const options = await post(button.dataset.options, {});
      const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
      const done = await post(button.dataset.submit, { credential: credentialJSON(credential), next: button.dataset.next || '' });
      location.assign(done.redirect || '/app');
    } catch (error) {
      say(status, cancelled(error) ? 'No passkey was used (cancelled or timed out).' : error.message, true);
      button.disabled = false;
    }
  });
}
