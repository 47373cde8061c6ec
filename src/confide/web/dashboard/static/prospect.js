// "Add as prospect" in the visitor panel: one JSON call (POST /api/v1/prospects) for the open chat.
// Shown only to operators who may manage prospects (the panel's data-prospects attribute, set by the page).
import { h } from './dom.js';

const added = new Map(); // conversation id -> prospect id, for this page's life

export function prospectAction(conv) {
  const panel = document.getElementById('visitor-panel');
  if (!panel || panel.dataset.prospects !== '1' || !conv || !conv.id) return '';
  const status = h('p', { class: 'muted', role: 'status', 'data-testid': 'prospect-status' });
  const done = added.get(conv.id);
  if (done) {
    return h('p', { class: 'muted', 'data-testid': 'prospect-added' }, 'Added as a ',
      h('a', { href: `/app/prospects/${encodeURIComponent(done)}`, text: 'prospect' }), '.');
  }
  const button = h('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'add-prospect', text: 'Add as prospect' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.textContent = 'Adding…';
    try {
      const res = await fetch('/api/v1/prospects', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ conversation_id: conv.id }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(typeof data.detail === 'string' ? data.detail : 'The prospect could not be added.');
      added.set(conv.id, data.id);
      button.replaceWith(h('span', {}, 'Added as a ', h('a', { href: `/app/prospects/${encodeURIComponent(data.id)}`, text: 'prospect' }), '.'));
      status.textContent = '';
    } catch (err) {
      button.disabled = false;
      status.textContent = err.message;
    }
  });
  return h('div', { class: 'vp-actions' }, button, status);
}
