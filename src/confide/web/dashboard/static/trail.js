// Visitor Activity in the console's visitor panel (ADR 0019): the pages the chat's visitor saw,
// fetched from /api/v1/conversations/{id}/activity (chats.participate, the chat in reach; each
// read is audited). Visitor-supplied text is set with textContent only.

import { formatTime, h, safeHttpUrl } from './dom.js';

export function trailSection(conversationId) {
  const list = h('ol', { class: 'trail', 'data-testid': 'visitor-trail' });
  const status = h('p', { class: 'muted small', role: 'status', text: 'Loading pages…' });
  const load = async () => {
    status.textContent = 'Loading pages…';
    let data = null;
    try {
      const r = await fetch(`/api/v1/conversations/${encodeURIComponent(conversationId)}/activity`, {
        credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store',
      });
      if (r.ok) data = await r.json();
    } catch {}
    if (!data) {
      status.textContent = 'The pages could not be loaded.';
      return;
    }
    const pages = data.pages || [];
    status.textContent = pages.length ? '' : 'No pages kept (the visitor did not allow activity tracking).';
    list.replaceChildren(...pages.map((p) => {
      const href = safeHttpUrl(p.url);
      const label = p.title || p.url;
      return h('li', {},
        href ? h('a', { href, text: label, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'url' }) : h('span', { class: 'url', text: label }),
        h('span', { class: 'muted small', text: ` ${formatTime(p.viewed_at)}${p.seconds_on_page != null ? ` · ${p.seconds_on_page} s` : ''}` }));
    }));
  };
  load();
  return h('section', { class: 'trail-section', 'aria-label': 'Pages seen' },
    h('h3', { class: 'subhead', text: 'Pages seen' }),
    status,
    list,
    h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'data-testid': 'trail-refresh', on: { click: load }, text: 'Refresh pages' }));
}
