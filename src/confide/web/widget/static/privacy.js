// Confide widget: the "Privacy" view (ADR 0018). Imported by app.js once a chat exists (the visitor
// token is what names the visitor; nothing is sent before that). Lists the purposes with their current
// state and the exact notice text; one click grants or withdraws, through the widget API
// (POST …/privacy, POST …/privacy/choices, token in the body). Everything is put in the DOM as text.
// "Make a request" (ADR 0029): a data-subject request (type, e-mail, details) to POST …/privacy-requests,
// then the 6-digit code the visitor receives by e-mail (POST …/privacy-requests/<id>/verify).

const STATE = { on: 'On', off: 'Off', ask: 'Please choose again: the text below changed' };
const TYPES = [
  ['access', 'See the data you hold about me'],
  ['portability', 'Get a copy of my data to take elsewhere'],
  ['rectification', 'Correct my data'],
  ['erasure', 'Erase my data'],
  ['restriction', 'Restrict the use of my data'],
  ['objection', 'Object to the use of my data'],
];

// The request part keeps its own node, so a re-render of the purposes never loses what was typed.
function requestPart({ h, api, token }) {
  const part = h('div', { class: 'f', 'data-confide': 'privacy-request' });
  let id = null;
  let busy = false;
  const call = async (path, body) => {
    const r = await fetch(api + '/privacy-requests' + path, {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      const d = j.detail;
      const m = typeof d === 'string' ? d : Array.isArray(d) && d[0]?.msg ? String(d[0].msg) : '';
      throw new Error(m ? m[0].toUpperCase() + m.slice(1) : 'Your request could not be sent. Please try again.');
    }
    return j;
  };
  const err = () => h('div', { class: 'er', role: 'alert', 'data-confide': 'request-error' });
  function closed() {
    part.replaceChildren(
      h('h3', null, 'Your rights'),
      h('p', { class: 'mu' }, 'Ask for your data, its correction or erasure, or object to its use. We answer within one month.'),
      h('button', { type: 'button', class: 'ln', 'data-confide': 'request-open', onclick: form }, 'Make a request'));
  }
  function form() {
    const e = err();
    const type = h('select', { id: 'cf-rq-t', name: 'type', 'data-confide': 'request-type' }, TYPES.map(([v, l]) => h('option', { value: v }, l)));
    const email = h('input', { id: 'cf-rq-e', type: 'email', name: 'email', required: true, maxlength: 320, autocomplete: 'email', 'data-confide': 'request-email' });
    const details = h('textarea', { id: 'cf-rq-d', name: 'details', rows: 3, maxlength: 4000, 'data-confide': 'request-details' });
    const send = async (ev) => {
      ev.preventDefault();
      if (busy) return;
      if (!email.value.trim() || !email.checkValidity()) {
        e.textContent = 'Please enter a valid e-mail address.';
        return email.focus();
      }
      busy = true;
      try {
        const r = await call('', { type: type.value, email: email.value.trim(), details: details.value.trim(), ...(token ? { token } : {}) });
        id = r.id;
        code();
      } catch (x) {
        e.textContent = x.message;
      } finally {
        busy = false;
      }
    };
    part.replaceChildren(
      h('form', { novalidate: true, onsubmit: send, 'data-confide': 'request-form' },
        h('h3', null, 'Make a request'),
        h('div', { class: 'f' }, h('label', { for: 'cf-rq-t' }, 'What do you ask for?'), type),
        h('div', { class: 'f' }, h('label', { for: 'cf-rq-e' }, 'Your e-mail address'), email),
        h('div', { class: 'f' }, h('label', { for: 'cf-rq-d' }, 'Details (optional)'), details),
        e,
        h('div', { class: 'row' },
          h('button', { type: 'submit', class: 'bt', 'data-confide': 'request-send' }, 'Send request'),
          h('button', { type: 'button', class: 'ln', onclick: closed }, 'Cancel'))));
    type.focus();
  }
  function code() {
    const e = err();
    const input = h('input', { id: 'cf-rq-c', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 20, 'data-confide': 'request-code' });
    const check = async (ev) => {
      ev.preventDefault();
      if (busy) return;
      busy = true;
      try {
        await call('/' + encodeURIComponent(id) + '/verify', { code: input.value.trim() });
        part.replaceChildren(h('p', { class: 'nt', role: 'status', 'data-confide': 'request-done' }, 'Thank you: your request is confirmed. We will answer by e-mail within one month.'));
      } catch (x) {
        e.textContent = x.message;
        input.focus();
      } finally {
        busy = false;
      }
    };
    part.replaceChildren(
      h('form', { novalidate: true, onsubmit: check, 'data-confide': 'request-code-form' },
        h('p', { role: 'status', 'data-confide': 'request-sent' }, 'We sent a 6-digit code to your e-mail address. Enter it to confirm your request.'),
        h('div', { class: 'f' }, h('label', { for: 'cf-rq-c' }, 'Code'), input),
        e,
        h('button', { type: 'submit', class: 'bt', 'data-confide': 'request-verify' }, 'Confirm')));
    input.focus();
  }
  closed();
  return part;
}

export function mountPrivacy({ h, api, token, box, onClose, lang }) {
  let view = null;
  let busy = false;
  const request = requestPart({ h, api, token });
  const post = async (path, body) => {
    const r = await fetch(api + '/privacy' + path, {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, ...(lang ? { language: lang } : {}), ...body }),
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof j.detail === 'string' ? j.detail : 'Your choice could not be saved. Please try again.');
    return j;
  };

  function render(message, reask) {
    const err = h('div', { class: 'er', role: 'alert', 'data-confide': 'privacy-error' }, message || '');
    const items = (view?.purposes || []).map((p) => {
      const id = 'cf-pv-' + p.key;
      const state = p.needs_answer ? 'ask' : p.granted ? 'on' : 'off';
      const choose = (granted) => async () => {
        if (busy) return;
        busy = true;
        try {
          view = await post('/choices', { purpose: p.key, granted, notice_id: p.notice?.id });
          render();
          box.querySelector(`[data-purpose="${p.key}"] button`)?.focus();
        } catch (e) {
          render(e.message);
        } finally {
          busy = false;
        }
      };
      let actions;
      if (p.required) actions = h('p', { class: 'mu' }, 'Always on: we need this to answer you.');
      else if (p.needs_answer)
        actions = h('div', { class: 'row' },
          h('button', { type: 'button', class: 'bt', 'data-confide': 'privacy-grant', onclick: choose(true) }, 'Allow'),
          h('button', { type: 'button', class: 'ln', 'data-confide': 'privacy-withdraw', onclick: choose(false) }, 'No, thanks'));
      else
        actions = h('div', { class: 'row' },
          p.granted
            ? h('button', { type: 'button', class: 'ln', 'data-confide': 'privacy-withdraw', onclick: choose(false), 'aria-describedby': id }, p.basis === 'consent' ? 'Withdraw' : 'Object')
            : h('button', { type: 'button', class: 'bt', 'data-confide': 'privacy-grant', onclick: choose(true), 'aria-describedby': id }, 'Allow'));
      return h('div', { class: 'f', 'data-confide': 'privacy-purpose', 'data-purpose': p.key, 'data-state': state },
        h('h3', { id }, p.name, ' — ', h('span', { 'data-confide': 'privacy-state' }, STATE[state])),
        p.notice && h('p', { 'data-confide': 'privacy-notice', 'data-version': p.notice.version }, p.notice.text),
        actions);
    });
    box.replaceChildren(
      h('div', { class: 'fm', 'data-confide': 'privacy', role: 'region', 'aria-label': 'Privacy choices' },
        h('h2', null, 'Your privacy choices'),
        reask && h('p', { class: 'nt', role: 'status', 'data-confide': 'privacy-reask' }, 'We changed how we describe some uses of your data. Please look at them again.'),
        h('p', { class: 'mu' }, 'You can change these at any time. Withdrawing takes effect at once.'),
        items,
        err,
        request,
        h('button', { type: 'button', class: 'ln', 'data-confide': 'privacy-close', onclick: onClose }, 'Back to the chat')));
    box.hidden = false;
  }

  return {
    // Load and show the view; `onlyIfAsked`: show it only when a notice changed (the re-ask on open).
    async open(onlyIfAsked) {
      try {
        view = await post('', {});
      } catch (e) {
        if (onlyIfAsked) return false;
        view = null;
        render(e.message);
        return true;
      }
      if (onlyIfAsked && !view.needs_answer) return false;
      render('', view.needs_answer);
      box.querySelector('button')?.focus();
      return true;
    },
  };
}
