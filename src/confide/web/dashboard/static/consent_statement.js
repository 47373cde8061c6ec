// ---- consent (ADR 0018): the visitor panel's "Record a consent statement": what the visitor said
// in the chat about a purpose, referring to one of their messages, into the consent ledger
// (POST /api/v1/conversations/{id}/consent-statements; the server checks the chat is in reach).

import { h } from './dom.js';

const MAX_MESSAGES = 10;
const clip = (text) => (text.length > 60 ? text.slice(0, 59) + '…' : text);

export function statementForm(chat) {
  const conv = chat.conv;
  const purposes = (conv.visitor && conv.visitor.consent_purposes) || [];
  if (!purposes.length) return '';
  const ids = `cs-${conv.id}`;
  const purpose = h('select', { id: `${ids}-p`, name: 'purpose', 'data-testid': 'statement-purpose' },
    purposes.map((p) => h('option', { value: p.key, text: p.name })));
  const message = h('select', { id: `${ids}-m`, name: 'message_id', 'data-testid': 'statement-message', required: true });
  const status = h('p', { class: 'small', role: 'status', 'data-testid': 'statement-status' });
  const fillMessages = () => {
    const mine = chat.sorted().filter((m) => m.sender === 'visitor').slice(-MAX_MESSAGES).reverse();
    message.replaceChildren(...mine.map((m) => h('option', { value: m.id, text: clip(m.text || '') })));
  };
  const choice = (value, label) => h('label', { class: 'inline' },
    h('input', { type: 'radio', name: 'granted', value, required: true, checked: value === 'true' }), ` ${label}`);
  const form = h('form', {
    class: 'stack', 'data-testid': 'statement-form',
    on: {
      submit: async (event) => {
        event.preventDefault();
        if (!message.value) {
          status.textContent = 'The visitor has not written anything to refer to yet.';
          return;
        }
        const granted = form.querySelector('input[name=granted]:checked')?.value === 'true';
        status.textContent = 'Recording…';
        try {
          const res = await fetch(`/api/v1/conversations/${encodeURIComponent(conv.id)}/consent-statements`, {
            method: 'POST',
            credentials: 'same-origin',
            headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
            body: JSON.stringify({ message_id: message.value, purpose: purpose.value, granted }),
          });
          const data = await res.json().catch(() => ({}));
          if (!res.ok) throw new Error(typeof data.detail === 'string' ? data.detail : 'It could not be recorded.');
          status.textContent = `Recorded: ${granted ? 'agreed' : 'refused or withdrew'} (notice version ${data.notice_version ?? '—'}).`;
        } catch (error) {
          status.textContent = error.message;
        }
      },
    },
  },
  h('div', { class: 'field' }, h('label', { for: `${ids}-p`, text: 'Purpose' }), purpose),
  h('div', { class: 'field' }, h('label', { for: `${ids}-m`, text: 'The visitor\'s message' }), message),
  h('fieldset', { class: 'field' }, h('legend', { text: 'The visitor' }), choice('true', 'agreed'), ' ', choice('false', 'refused or withdrew')),
  h('button', { type: 'submit', class: 'btn btn-secondary btn-sm', 'data-testid': 'statement-submit', text: 'Record statement' }),
  status);
  return h('details', { class: 'statement', 'data-testid': 'consent-statement', on: { toggle: fillMessages } },
    h('summary', { text: 'Record a consent statement' }), form);
}
