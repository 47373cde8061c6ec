// Confide widget: the "Privacy" view (ADR 0018). Imported by app.js once a chat exists (the visitor
// token is what names the visitor; nothing is sent before that). Lists the purposes with their current
// state and the exact notice text; one click grants or withdraws, through the widget API
// (POST …/privacy, POST …/privacy/choices, token in the body). Everything is put in the DOM as text.

const STATE = { on: 'On', off: 'Off', ask: 'Please choose again: the text below changed' };

export function mountPrivacy({ h, api, token, box, onClose, lang }) {
  let view = null;
  let busy = false;
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
