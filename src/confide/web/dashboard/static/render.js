// Rendering: the offers, the queue, my chats, the open chat and the visitor panel, from the state.
// Everything a visitor typed is set with textContent or attributes, never as HTML.

import { accept, focusChat } from './actions.js';
import { updateTitle } from './alerts.js';
import { discard, retry } from './composer.js';
import { statementForm } from './consent_statement.js'; // ---- consent
import {
  formatFull, formatTime, formatWait, h, humanize, initial, linkify, parseTime, reconcile, safeHttpUrl,
} from './dom.js';
import { prospectAction } from './prospect.js';
import { S, deptOf, focusedChat, siteOf, visitorName } from './state.js';
import { trailSection } from './trail.js'; // Visitor Activity (ADR 0019)
import { ui } from './ui.js';

let scheduled = false;
let forceScroll = false;

/** The next render scrolls the open chat to its last message. */
export function scrollToEnd() {
  forceScroll = true;
}

export function render() {
  // Coalesced with a microtask rather than requestAnimationFrame, which stops in background tabs
  // (where the title badge matters most).
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    renderOffers();
    renderQueue();
    renderChatList();
    renderFocused();
    updateTitle();
  });
}

function renderOffers() {
  const offers = [...S.offers.values()];
  reconcile(ui.offers, offers, (o) => o.conv.id, (o) => {
    const id = o.conv.id;
    return h('div', { class: 'offer', 'data-testid': 'offer', 'data-conversation-id': id, role: 'group', 'aria-label': 'Chat offered to you' },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }),
      h('div', { class: 'offer-main' }, h('div', { class: 'offer-title' }), h('div', { class: 'offer-sub' })),
      h('div', { class: 'offer-timer' }, h('span', { class: 'offer-left' }), h('span', { class: 'offer-bar' }, h('span'))),
      h('button', { type: 'button', class: 'btn btn-sm', 'data-testid': 'offer-accept', text: 'Accept', on: { click: () => accept(id) } }));
  }, (el, o) => {
    el.querySelector('.avatar').textContent = initial(visitorName(o.conv));
    el.querySelector('.offer-title').textContent = `New chat: ${visitorName(o.conv)}`;
    const page = o.conv.visitor && o.conv.visitor.page_url;
    el.querySelector('.offer-sub').textContent = [deptOf(o.conv), siteOf(o.conv), page].filter(Boolean).join(' · ');
    const button = el.querySelector('button');
    button.disabled = S.accepting.has(o.conv.id);
    button.textContent = S.accepting.has(o.conv.id) ? 'Accepting…' : 'Accept';
    updateOfferTimer(el, o);
  });
}

export function updateOfferTimer(el, offer) {
  const left = offer.deadline - Date.now();
  el.querySelector('.offer-left').textContent = left > 0 ? `${Math.ceil(left / 1000)} s left` : 'expiring…';
  el.querySelector('.offer-bar span').style.width = `${Math.max(0, Math.min(100, (left / offer.total) * 100))}%`;
}

function renderQueue() {
  const items = S.queue;
  ui.queueCount.textContent = String(items.length);
  ui.queueEmpty.hidden = items.length > 0;
  reconcile(ui.queue, items, (c) => c.id, (c) => h('li', { class: 'queue-item', 'data-testid': 'queue-item', 'data-conversation-id': c.id },
    h('div', { class: 'qi-main' }, h('span', { class: 'qi-name' }), h('span', { class: 'qi-sub' },
      h('span', { class: 'qi-dept' }), ' · ', h('span', { class: 'qi-wait' }))),
    h('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'accept', text: 'Accept', on: { click: () => accept(c.id) } })),
  (el, c) => {
    const name = visitorName(c);
    el.querySelector('.qi-name').textContent = name;
    el.querySelector('.qi-dept').textContent = deptOf(c) || siteOf(c);
    const wait = el.querySelector('.qi-wait');
    wait.dataset.since = String(parseTime(c.waiting_since || c.created_at) ?? Date.now());
    updateWait(wait);
    const offeredToMe = S.me && c.offered_to === S.me.id;
    el.classList.toggle('is-offered', Boolean(offeredToMe));
    el.title = offeredToMe ? 'Offered to you' : (c.offered_to ? 'Offered to another operator' : 'Waiting in the queue');
    const button = el.querySelector('button');
    button.disabled = S.accepting.has(c.id);
    button.setAttribute('aria-label', `Accept the chat with ${name}`);
  });
}

export function updateWait(el) {
  const ms = Date.now() - Number(el.dataset.since);
  el.textContent = `waiting ${formatWait(ms)}`;
  el.classList.toggle('is-long', ms > 120_000);
}

function renderChatList() {
  const chats = [...S.chats.values()];
  const active = chats.filter((c) => !c.ended).length;
  ui.chatsCount.textContent = S.me ? `${active} / ${S.me.max_chats}` : String(active);
  ui.chatsEmpty.hidden = chats.length > 0;
  reconcile(ui.chatList, chats, (c) => c.id, (c) => {
    const button = h('button', { type: 'button', class: 'chat-item', 'data-testid': 'chat-item', 'data-conversation-id': c.id,
      on: { click: () => focusChat(c.id, true) } },
    h('span', { class: 'avatar', 'aria-hidden': 'true' }),
    h('span', { class: 'ci-main' }, h('span', { class: 'ci-name' }), h('span', { class: 'ci-sub' })),
    h('span', { class: 'unread', 'data-testid': 'unread', hidden: true }));
    return h('li', {}, button);
  }, (li, c) => {
    const button = li.firstElementChild;
    const name = visitorName(c.conv);
    button.querySelector('.avatar').textContent = initial(name);
    button.querySelector('.ci-name').textContent = name;
    const sub = button.querySelector('.ci-sub');
    const last = c.sorted().filter((m) => m.sender !== 'system').pop();
    let subText = deptOf(c.conv);
    if (c.ended) subText = c.ended.reason === 'transferred' ? 'Transferred' : 'Closed';
    else if (c.visitorTyping) subText = 'typing…';
    else if (last) subText = (last.sender === 'operator' ? 'You: ' : '') + last.text.replace(/\s+/g, ' ').slice(0, 80);
    sub.textContent = subText;
    sub.classList.toggle('is-typing', c.visitorTyping && !c.ended);
    const unread = c.ended ? 0 : c.unread;
    const badge = button.querySelector('.unread');
    badge.textContent = String(unread);
    badge.hidden = unread === 0;
    badge.setAttribute('aria-label', `${unread} unread`);
    button.classList.toggle('is-ended', Boolean(c.ended));
    if (S.focused === c.id) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  });
}

function renderFocused() {
  const chat = focusedChat();
  ui.noChat.hidden = Boolean(chat);
  ui.chatView.hidden = !chat;
  ui.console.classList.toggle('has-chat', Boolean(chat));
  if (!chat) {
    ui.visitorBody.replaceChildren(h('p', { class: 'muted', text: 'Select a chat to see who you are talking to.' }));
    ui.visitorBody.dataset.sig = '';
    return;
  }
  const conv = chat.conv;
  ui.chatTitle.textContent = visitorName(conv);
  ui.chatSub.textContent = [siteOf(conv), deptOf(conv), conv.accepted_at ? `accepted ${formatTime(conv.accepted_at)}` : '']
    .filter(Boolean).join(' · ');
  const ended = Boolean(chat.ended);
  // The focus was in this chat when it ended (its controls are now disabled): it goes to the notice.
  const a = document.activeElement;
  const lost = ended && ui.ended.hidden && (!a || a === document.body || ui.chatView.contains(a));
  ui.ended.hidden = !ended;
  ui.endedText.textContent = ended ? chat.ended.text : '';
  if (lost) ui.ended.focus();
  ui.transferBtn.disabled = ended || !S.welcomed;
  ui.closeBtn.disabled = ended || !S.welcomed;
  ui.composer.disabled = ended;
  ui.sendBtn.disabled = ended;
  ui.canned.disabled = ended || S.canned.length === 0;
  ui.composer.placeholder = ended ? 'This chat has ended.' : 'Write a reply…  Enter sends · Shift+Enter new line · / for canned replies';
  const typingOn = chat.visitorTyping && !ended;
  ui.typing.hidden = !typingOn;
  ui.typingText.textContent = `${visitorName(conv)} is typing…`;
  renderTranscript(chat);
  renderVisitor(chat);
}

function renderTranscript(chat) {
  const box = ui.transcript;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const confirmed = chat.sorted();
  const items = [
    ...confirmed.map((m) => ({ key: `${m.sender}:${m.client_id}`, sender: m.sender, text: m.text, at: m.created_at, seq: m.seq, name: m.sender_name, state: 'sent' })),
    ...[...chat.pending.values()].map((p) => ({ key: `operator:${p.client_id}`, sender: 'operator', text: p.text, at: p.created_at, seq: null, name: S.me && S.me.name, state: p.state, error: p.error, clientId: p.client_id })),
  ];
  const readSeq = chat.conv.visitor_read_seq || 0;
  let lastMine = -1;
  items.forEach((item, i) => { if (item.sender === 'operator' && item.state === 'sent') lastMine = i; });
  let previous = null;
  for (const [i, item] of items.entries()) {
    item.showAuthor = item.sender !== 'system' && (!previous || previous.sender !== item.sender || previous.name !== item.name);
    item.seen = i === lastMine && item.seq !== null && item.seq <= readSeq;
    previous = item;
  }
  reconcile(box, items, (item) => item.key, () => h('div'), (el, item) => {
    const sig = JSON.stringify([item.sender, item.text, item.at, item.state, item.error, item.showAuthor, item.seen, item.name]);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    el.className = `msg msg-${item.sender}${item.state === 'pending' ? ' msg-pending' : ''}${item.state === 'failed' ? ' msg-failed' : ''}`;
    el.setAttribute('data-testid', 'msg');
    el.dataset.sender = item.sender;
    if (item.seq !== null) el.dataset.seq = String(item.seq);
    else delete el.dataset.seq;
    if (item.state !== 'sent') el.dataset.pending = item.state;
    else delete el.dataset.pending;
    if (item.sender === 'system') {
      el.replaceChildren(h('div', { class: 'msg-system-text' }, item.text, h('span', { class: 'msg-time', text: formatTime(item.at) })));
      return;
    }
    const author = item.sender === 'visitor' ? visitorName(chat.conv) : (S.me && item.name === S.me.name ? 'You' : item.name || 'Operator');
    const meta = h('div', { class: 'msg-meta' });
    if (item.state === 'pending') meta.append(h('span', { text: 'Sending…' }));
    else if (item.state === 'failed') {
      meta.append(h('span', { text: `Not sent: ${item.error || 'error'}` }));
      if (!chat.ended) meta.append(h('button', { type: 'button', class: 'link-btn', text: 'Retry', on: { click: () => retry(chat, item.clientId) } }));
      meta.append(h('button', { type: 'button', class: 'link-btn', text: 'Discard', on: { click: () => discard(chat, item.clientId) } }));
    } else {
      meta.append(h('time', { datetime: item.at, title: formatFull(item.at), text: formatTime(item.at) }));
      if (item.seen) meta.append(h('span', { class: 'seen', text: 'Seen' }));
    }
    el.replaceChildren(
      item.showAuthor ? h('div', { class: 'msg-author', text: author }) : '',
      h('div', { class: 'bubble' }, linkify(item.text)),
      meta,
    );
  });
  if (forceScroll || nearBottom) box.scrollTop = box.scrollHeight;
  forceScroll = false;
}

function renderVisitor(chat) {
  const conv = chat.conv;
  const v = conv.visitor || {};
  const sig = JSON.stringify([conv.id, v, conv.site, conv.department, conv.created_at, conv.accepted_at, conv.rating, conv.rating_comment, conv.status]);
  if (ui.visitorBody.dataset.sig === sig) return;
  ui.visitorBody.dataset.sig = sig;
  const row = (label, value) => h('div', {}, h('dt', { text: label }), h('dd', {}, value === null || value === undefined || value === '' ? '—' : value));
  const name = v.name || 'Anonymous visitor';
  const contact = h('dl', { class: 'details' },
    row('E-mail', v.email ? h('a', { href: `mailto:${v.email}`, text: v.email }) : null),
    row('Phone', v.phone ? h('a', { href: `tel:${String(v.phone).replace(/[^0-9+]/g, '')}`, text: v.phone }) : null),
    Object.entries(v.fields || {}).map(([key, value]) => row((v.field_labels || {})[key] || humanize(key), typeof value === 'boolean' ? (value ? 'Yes' : 'No') : String(value))));
  const consents = Object.entries(v.consents || {});
  const href = safeHttpUrl(v.page_url);
  const page = v.page_url
    ? (href ? h('a', { href, text: v.page_url, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'url' }) : h('span', { class: 'url', text: v.page_url }))
    : null;
  ui.visitorBody.replaceChildren(
    h('div', { class: 'vp-head' }, h('span', { class: 'avatar', 'aria-hidden': 'true', text: initial(name) }),
      h('div', {}, h('p', { class: 'vp-name', text: name }), v.email ? h('p', { class: 'vp-email', text: v.email }) : '',
        v.verified ? h('p', { class: 'muted', 'data-testid': 'visitor-verified', text: '✓ Verified by the site' }) : '')),
    contact,
    // Verified identity (ADR 0022): the same person's earlier conversations (each opens through its own access check).
    (v.earlier || []).length ? h('h3', { class: 'subhead', text: 'Earlier conversations' }) : '',
    (v.earlier || []).length ? h('ul', { class: 'consents', 'data-testid': 'visitor-earlier' }, v.earlier.map((e) => h('li', {},
      h('a', { href: `/app/chats/${encodeURIComponent(e.id)}`, target: '_blank', rel: 'noopener', text: formatFull(e.created_at) }),
      h('span', { class: 'muted', text: ` — ${e.status}` })))) : '',
    prospectAction(conv),
    consents.length ? h('h3', { class: 'subhead', text: 'Consents' }) : '',
    consents.length ? h('ul', { class: 'consents' }, consents.map(([key, granted]) => h('li', { class: granted ? 'granted' : 'declined' },
      h('span', { class: 'consent-mark', 'aria-hidden': 'true', text: granted ? '✓' : '✕' }), ` ${humanize(key)} `,
      h('span', { class: 'muted', text: granted ? '— granted' : '— declined' })))) : '',
    statementForm(chat), // ---- consent: an operator's record of what the visitor said
    h('h3', { class: 'subhead', text: 'Conversation' }),
    h('dl', { class: 'details' },
      row('Site', siteOf(conv)),
      row('Department', deptOf(conv)),
      row('Started on', page),
      row('Waiting since', conv.waiting_since || conv.created_at ? formatFull(conv.waiting_since || conv.created_at) : null),
      row('Accepted', conv.accepted_at ? formatFull(conv.accepted_at) : null),
      conv.rating ? row('Rating', `${'★'.repeat(conv.rating)}${'☆'.repeat(5 - conv.rating)}`) : '',
      conv.rating_comment ? row('Comment', conv.rating_comment) : ''),
    trailSection(conv.id),
  );
}

