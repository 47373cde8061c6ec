// Confide live console. One socket (/ws/operator, see docs/protocol.md); the `welcome` frame is
// the whole state, later frames keep it current. Everything a visitor typed is rendered with
// textContent or attributes, never as HTML.

import { Connection } from './connection.js';
import {
  formatFull, formatTime, formatWait, h, humanize, initial, parseTime, randomId, reconcile, safeHttpUrl,
} from './dom.js';

const TYPING_EVERY = 2000; // at most one `typing on` per 2 s
const TYPING_IDLE = 3000; // `typing off` after 3 s without a key
const VISITOR_TYPING_TTL = 8000; // forget a visitor `typing on` that was never switched off
const HISTORY_PAGE = 1000;
const MAX_TEXT = 4000;

const $ = (id) => document.getElementById(id);
const ui = {
  console: $('console'),
  connection: $('connection'),
  status: $('status'),
  statusWrap: $('status-wrap'),
  queue: $('queue'),
  queueCount: $('queue-count'),
  queueEmpty: $('queue-empty'),
  chatList: $('chat-list'),
  chatsCount: $('chats-count'),
  chatsEmpty: $('chats-empty'),
  offers: $('offers'),
  noChat: $('no-chat'),
  chatView: $('chat-view'),
  chatTitle: $('chat-title'),
  chatSub: $('chat-sub'),
  transferBtn: $('transfer-btn'),
  closeBtn: $('close-btn'),
  ended: $('ended'),
  endedText: $('ended-text'),
  dismissBtn: $('dismiss-btn'),
  transcript: $('transcript'),
  typing: $('visitor-typing'),
  typingText: $('typing-text'),
  composerForm: $('composer-form'),
  composer: $('composer'),
  sendBtn: $('send-btn'),
  canned: $('canned'),
  hint: $('composer-hint'),
  suggestions: $('suggestions'),
  visitorBody: $('visitor-body'),
  notices: $('notices'),
  transferDialog: $('transfer-dialog'),
  transferForm: $('transfer-form'),
  transferTarget: $('transfer-target'),
  transferCancel: $('transfer-cancel'),
  closeDialog: $('close-dialog'),
  closeForm: $('close-form'),
  closeCancel: $('close-cancel'),
};

// ------------------------------------------------------------------ state
const S = {
  me: null, // {id, name, role, status, max_chats}
  departments: [],
  transferDepartments: [], // every department of the workspace (a chat may go to any of its site's)
  canned: [],
  queue: [],
  offers: new Map(), // conversation id -> {conv, deadline, total, since}
  chats: new Map(), // conversation id -> Chat (insertion order is the list order)
  focused: null,
  welcomed: false,
  accepting: new Set(), // conversation ids I asked to accept (focus them when they arrive)
  actions: new Map(), // client_id of accept/transfer/close/status frames -> {kind, id}
  pendingIndex: new Map(), // client_id of my unacknowledged messages -> conversation id
};

class Chat {
  constructor(conv) {
    this.id = conv.id;
    this.conv = conv;
    this.messages = new Map(); // id -> message
    this.pending = new Map(); // client_id -> {client_id, text, created_at, state, error}
    this.readSeq = conv.operator_read_seq || 0;
    this.historyLoaded = false;
    this.visitorTyping = false;
    this.typingTimer = null;
    this.ended = null; // {reason, text}
    this.draft = '';
    this.transferLabel = '';
  }

  get lastSeq() {
    let max = 0;
    for (const m of this.messages.values()) if (m.seq > max) max = m.seq;
    return max;
  }

  get currentSeq() {
    return Math.max(this.conv.seq || 0, this.lastSeq);
  }

  get unread() {
    if (!this.historyLoaded) return this.readSeq >= (this.conv.seq || 0) ? 0 : (this.conv.unread || 0);
    let n = 0;
    for (const m of this.messages.values()) if (m.sender === 'visitor' && m.seq > this.readSeq) n += 1;
    return n;
  }

  add(message) {
    if (!message || typeof message.id !== 'string') return false;
    if (message.sender === 'operator' && this.pending.has(message.client_id)) {
      this.pending.delete(message.client_id);
      S.pendingIndex.delete(message.client_id);
    }
    if (this.messages.has(message.id)) return false;
    this.messages.set(message.id, message);
    if (message.seq > (this.conv.seq || 0)) this.conv.seq = message.seq;
    return true;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

const visitorName = (conv) => {
  const v = (conv && conv.visitor) || {};
  return v.name || v.email || v.phone || 'Visitor';
};
const deptOf = (conv) => (conv && conv.department && conv.department.name) || '';
const siteOf = (conv) => (conv && conv.site && conv.site.name) || '';
const focusedChat = () => (S.focused ? S.chats.get(S.focused) || null : null);

// ------------------------------------------------------------------ connection
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const conn = new Connection(`${scheme}//${location.host}/ws/operator`, {
  onOpen() {
    setConnection('connecting', 'connecting…');
  },
  onFrame: handleFrame,
  onDown() {
    S.welcomed = false;
    setConnection('reconnecting', 'reconnecting…');
    stopTyping();
    ui.status.disabled = true;
    render();
  },
  onSessionEnded() {
    setConnection('reconnecting', 'signed out');
    notify('Your session has ended. Please log in again.', 'error', 0);
    setTimeout(() => location.assign('/login?next=%2Fapp'), 1500);
  },
});

function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.connection.textContent = text;
  ui.console.dataset.state = state;
}

function send(frame) {
  return conn.send(frame);
}

function action(kind, id, frame) {
  const clientId = randomId(`${kind}-`);
  S.actions.set(clientId, { kind, id });
  setTimeout(() => S.actions.delete(clientId), 60_000);
  if (!send({ ...frame, client_id: clientId })) {
    S.actions.delete(clientId);
    notify('Not connected; try again in a moment.', 'error');
    return false;
  }
  return true;
}

// ------------------------------------------------------------------ frames
function handleFrame(f) {
  switch (f.type) {
    case 'welcome': onWelcome(f); break;
    case 'queue': onQueue(f.queue || []); break;
    case 'offer': onOffer(f.conversation, f.expires_at); break;
    case 'offer_withdrawn': onOfferWithdrawn(f.conversation_id); break;
    case 'chat': onChat(f.conversation); break;
    case 'chat_removed': onChatRemoved(f.conversation_id, f.reason); break;
    case 'message': onMessage(f.conversation_id, f.message); break;
    case 'ack': onAck(f.client_id, f.message); break;
    case 'history': onHistory(f.conversation_id, f.messages || []); break;
    case 'typing': onTyping(f); break;
    case 'read': onRead(f); break;
    case 'status': setStatus(f.status); break;
    case 'departments': S.departments = f.departments || []; break;
    case 'error': onError(f); break;
    default: break; // pong and future frames
  }
  render();
}

function onWelcome(f) {
  S.me = f.operator;
  S.departments = f.departments || [];
  S.transferDepartments = f.transfer_departments || [];
  S.canned = f.canned_replies || [];
  S.welcomed = true;
  setConnection('connected', 'connected');
  setStatus(f.operator.status);
  ui.status.disabled = false;
  renderCanned();

  // The new welcome replaces the state; chats I no longer hold are marked, not silently dropped.
  const incoming = new Set((f.chats || []).map((c) => c.id));
  for (const chat of S.chats.values()) {
    if (!incoming.has(chat.id) && !chat.ended) {
      chat.ended = { reason: 'gone', text: 'This chat was closed or transferred while you were disconnected.' };
      failPending(chat, 'The chat is no longer yours.');
    }
  }
  for (const conv of f.chats || []) upsertChat(conv, false);
  S.offers.clear();
  onQueue(f.queue || []);

  for (const chat of S.chats.values()) {
    if (chat.ended) continue;
    send({ type: 'history', conversation_id: chat.id, after_seq: chat.lastSeq });
    // Unacknowledged messages go again with the same client_id: the server stores each once.
    for (const p of chat.pending.values()) {
      if (p.state === 'pending') send({ type: 'message', conversation_id: chat.id, client_id: p.client_id, text: p.text });
    }
  }
  if (!focusedChat()) {
    const first = [...S.chats.values()].find((c) => !c.ended);
    if (first) focusChat(first.id, false);
  }
  markFocusedRead();
}

function upsertChat(conv, fetchHistory = true) {
  let chat = S.chats.get(conv.id);
  if (!chat) {
    chat = new Chat(conv);
    S.chats.set(conv.id, chat);
    if (fetchHistory) send({ type: 'history', conversation_id: conv.id, after_seq: 0 });
  } else {
    chat.conv = { ...chat.conv, ...conv, seq: Math.max(conv.seq || 0, chat.lastSeq) };
    chat.readSeq = Math.max(chat.readSeq, conv.operator_read_seq || 0);
    if (chat.ended && conv.status === 'active' && S.me && conv.operator_id === S.me.id) {
      chat.ended = null; // it came back to me (transferred back, or re-assigned after a reconnect)
      chat.transferLabel = '';
      if (fetchHistory) send({ type: 'history', conversation_id: conv.id, after_seq: chat.lastSeq });
    }
  }
  return chat;
}

function onQueue(queue) {
  S.queue = queue;
  const now = Date.now();
  const waiting = new Set(queue.map((c) => c.id));
  for (const conv of queue) {
    if (S.me && conv.offered_to === S.me.id && !S.offers.has(conv.id) && conv.offer_expires_at) {
      addOffer(conv, conv.offer_expires_at);
    }
  }
  for (const [id, offer] of S.offers) {
    if (!waiting.has(id) && now - offer.since > 2000) S.offers.delete(id);
  }
}

function timeoutOf(conv) {
  const dept = S.departments.find((d) => conv.department && d.id === conv.department.id);
  return ((dept && dept.offer_timeout_s) || 30) * 1000;
}

function addOffer(conv, expiresAt) {
  const total = timeoutOf(conv);
  let left = (parseTime(expiresAt) ?? Date.now() + total) - Date.now();
  if (left <= 0 || left > total) left = Math.min(Math.max(left, 0), total) || total; // clock skew
  S.offers.set(conv.id, { conv, deadline: Date.now() + left, total, since: Date.now() });
}

function onOffer(conv, expiresAt) {
  if (!conv) return;
  addOffer(conv, expiresAt); // the offer banner itself is an assertive live region
}

function onOfferWithdrawn(id) {
  if (S.offers.delete(id) && !S.accepting.has(id)) notify('An offer was withdrawn.', 'info');
}

function onChat(conv) {
  if (!conv || !S.me) return;
  const mine = conv.operator_id === S.me.id && conv.status !== 'queued';
  const existing = S.chats.get(conv.id);
  if (mine) {
    const chat = upsertChat(conv);
    S.offers.delete(conv.id);
    S.queue = S.queue.filter((c) => c.id !== conv.id);
    if (conv.status === 'closed' && !chat.ended) {
      chat.ended = { reason: 'closed', text: 'This chat is closed.' };
      chat.visitorTyping = false;
      failPending(chat, 'The chat is closed.');
      if (S.focused === chat.id) stopTyping();
    }
    if (S.accepting.has(conv.id)) {
      S.accepting.delete(conv.id);
      focusChat(conv.id, true);
    } else if (!focusedChat()) {
      focusChat(conv.id, false);
    }
  } else if (existing && !existing.ended) {
    existing.conv = { ...existing.conv, ...conv };
    markEnded(existing, conv.status === 'closed' ? 'closed' : 'transferred');
  }
}

function onChatRemoved(id, reason) {
  const chat = S.chats.get(id);
  if (chat && !chat.ended) markEnded(chat, reason === 'closed' ? 'closed' : 'transferred');
}

function markEnded(chat, reason) {
  let text = 'This chat is closed.';
  if (reason === 'transferred') {
    text = chat.transferLabel ? `You transferred this chat to ${chat.transferLabel}.` : 'This chat was transferred to someone else.';
  }
  chat.ended = { reason, text };
  chat.visitorTyping = false;
  failPending(chat, reason === 'closed' ? 'The chat is closed.' : 'The chat is no longer yours.');
  if (S.focused === chat.id) stopTyping();
}

function failPending(chat, reason) {
  for (const p of chat.pending.values()) {
    if (p.state === 'pending') Object.assign(p, { state: 'failed', error: reason });
  }
}

function onMessage(id, message) {
  const chat = S.chats.get(id);
  if (!chat || !message) return;
  if (chat.add(message) && message.sender === 'visitor') {
    chat.visitorTyping = false;
    markFocusedRead();
  }
}

function onAck(clientId, message) {
  const id = S.pendingIndex.get(clientId);
  const chat = id && S.chats.get(id);
  if (chat && message) chat.add(message);
  S.pendingIndex.delete(clientId);
}

function onHistory(id, messages) {
  const chat = S.chats.get(id);
  if (!chat) return;
  for (const m of messages) chat.add(m);
  chat.historyLoaded = true;
  if (messages.length >= HISTORY_PAGE) send({ type: 'history', conversation_id: id, after_seq: chat.lastSeq });
  markFocusedRead();
}

function onTyping(f) {
  const chat = S.chats.get(f.conversation_id);
  if (!chat || f.from !== 'visitor') return;
  chat.visitorTyping = Boolean(f.on) && !chat.ended;
  clearTimeout(chat.typingTimer);
  if (chat.visitorTyping) {
    chat.typingTimer = setTimeout(() => {
      chat.visitorTyping = false;
      render();
    }, VISITOR_TYPING_TTL);
  }
}

function onRead(f) {
  const chat = S.chats.get(f.conversation_id);
  if (chat && f.from === 'visitor' && typeof f.seq === 'number') {
    chat.conv.visitor_read_seq = Math.max(chat.conv.visitor_read_seq || 0, f.seq);
  }
}

function onError(f) {
  const ref = typeof f.ref === 'string' ? f.ref : null;
  const message = f.message || 'Something went wrong.';
  if (ref && S.pendingIndex.has(ref)) {
    const chat = S.chats.get(S.pendingIndex.get(ref));
    const p = chat && chat.pending.get(ref);
    if (p) Object.assign(p, { state: 'failed', error: message });
    S.pendingIndex.delete(ref);
    return;
  }
  const act = ref ? S.actions.get(ref) : null;
  if (act) {
    S.actions.delete(ref);
    if (act.kind === 'accept') {
      S.accepting.delete(act.id);
      if (f.code === 'conflict' || f.code === 'not_found') S.offers.delete(act.id);
    }
    if (act.kind === 'status' && S.me) setStatus(S.me.status);
  }
  notify(message, 'error');
}

function setStatus(status) {
  if (!['online', 'away', 'offline'].includes(status)) return;
  if (S.me) S.me.status = status;
  ui.status.value = status;
  ui.statusWrap.dataset.status = status;
}

// ------------------------------------------------------------------ actions
function accept(id) {
  S.accepting.add(id);
  if (!action('accept', id, { type: 'accept', conversation_id: id })) S.accepting.delete(id);
  render();
}

function focusChat(id, moveFocus) {
  const previous = focusedChat();
  if (previous && previous.id !== id) {
    previous.draft = ui.composer.value;
    stopTyping();
  }
  const chat = S.chats.get(id);
  if (!chat) return;
  const changed = S.focused !== id;
  S.focused = id;
  if (changed) {
    ui.composer.value = chat.draft || '';
    ui.transcript.replaceChildren();
    hideSuggestions();
    forceScroll = true;
  }
  markFocusedRead();
  render();
  if (moveFocus && !chat.ended) ui.composer.focus();
}

function markFocusedRead() {
  const chat = focusedChat();
  if (!chat || document.visibilityState === 'hidden') return;
  const seq = chat.currentSeq;
  if (seq > chat.readSeq) {
    chat.readSeq = seq;
    if (!chat.ended) send({ type: 'read', conversation_id: chat.id, seq });
  }
}

function dismiss(id) {
  const chat = S.chats.get(id);
  if (!chat) return;
  for (const clientId of chat.pending.keys()) S.pendingIndex.delete(clientId);
  S.chats.delete(id);
  if (S.focused === id) {
    S.focused = null;
    ui.composer.value = '';
    ui.transcript.replaceChildren();
    const next = [...S.chats.values()].find((c) => !c.ended) || [...S.chats.values()][0];
    if (next) focusChat(next.id, false);
  }
  render();
}

function sendMessage() {
  const chat = focusedChat();
  const text = ui.composer.value;
  if (!chat || chat.ended || !text.trim()) return;
  if (text.length > MAX_TEXT) {
    notify(`A message holds at most ${MAX_TEXT} characters.`, 'error');
    return;
  }
  const clientId = randomId('m-');
  chat.pending.set(clientId, { client_id: clientId, text, created_at: new Date().toISOString(), state: 'pending' });
  S.pendingIndex.set(clientId, chat.id);
  send({ type: 'message', conversation_id: chat.id, client_id: clientId, text });
  ui.composer.value = '';
  chat.draft = '';
  stopTyping();
  hideSuggestions();
  autoGrow();
  forceScroll = true;
  render();
}

function retry(chat, clientId) {
  const p = chat.pending.get(clientId);
  if (!p || chat.ended) return;
  Object.assign(p, { state: 'pending', error: null });
  S.pendingIndex.set(clientId, chat.id);
  send({ type: 'message', conversation_id: chat.id, client_id: clientId, text: p.text });
  render();
}

function discard(chat, clientId) {
  chat.pending.delete(clientId);
  S.pendingIndex.delete(clientId);
  render();
}

// My typing frames: `on` at most every 2 s while typing, `off` after 3 s idle, on send, on switch.
const typing = { chatId: null, on: false, lastOn: 0, idle: null };

function noteTyping() {
  const chat = focusedChat();
  if (!chat || chat.ended) return;
  if (!ui.composer.value) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (typing.chatId !== chat.id) stopTyping();
  if (now - typing.lastOn >= TYPING_EVERY) {
    if (send({ type: 'typing', conversation_id: chat.id, on: true })) {
      typing.on = true;
      typing.lastOn = now;
      typing.chatId = chat.id;
    }
  }
  clearTimeout(typing.idle);
  typing.idle = setTimeout(stopTyping, TYPING_IDLE);
}

function stopTyping() {
  clearTimeout(typing.idle);
  if (typing.on && typing.chatId) {
    const chat = S.chats.get(typing.chatId);
    if (chat && !chat.ended) send({ type: 'typing', conversation_id: typing.chatId, on: false });
  }
  typing.on = false;
  typing.lastOn = 0;
  typing.chatId = null;
}

// ------------------------------------------------------------------ canned replies
function renderCanned() {
  const options = [h('option', { value: '', text: 'Canned replies…' })];
  for (const r of S.canned) options.push(h('option', { value: r.id, text: `/${r.shortcut} — ${r.title}` }));
  ui.canned.replaceChildren(...options);
  ui.canned.disabled = S.canned.length === 0;
}

function insertText(text, from = null, to = null) {
  const el = ui.composer;
  const start = from ?? el.selectionStart;
  const end = to ?? el.selectionEnd;
  el.setRangeText(text, start, end, 'end');
  el.focus();
  autoGrow();
  noteTyping();
}

/** The `/word` right before the caret, if any: {start, end, query}. */
function slashToken() {
  const el = ui.composer;
  if (el.selectionStart !== el.selectionEnd) return null;
  const before = el.value.slice(0, el.selectionStart);
  const match = /(^|\s)\/([a-z0-9_-]*)$/i.exec(before);
  if (!match) return null;
  const start = before.length - match[2].length - 1;
  return { start, end: el.selectionStart, query: match[2].toLowerCase() };
}

let suggestionIndex = 0;
let suggestionItems = [];

function updateSuggestions() {
  const token = slashToken();
  const matches = token ? S.canned.filter((r) => r.shortcut.startsWith(token.query)) : [];
  if (!token || matches.length === 0) {
    hideSuggestions();
    return;
  }
  suggestionItems = matches.slice(0, 8);
  suggestionIndex = Math.min(suggestionIndex, suggestionItems.length - 1);
  ui.suggestions.replaceChildren(...suggestionItems.map((r, i) => h('div', {
    class: 'suggestion', role: 'option', id: `sugg-${i}`, 'aria-selected': i === suggestionIndex ? 'true' : 'false',
    on: { mousedown: (e) => { e.preventDefault(); expandWith(r); } },
  }, h('code', { text: `/${r.shortcut}` }), h('span', { class: 's-title', text: r.title }), h('span', { class: 's-text', text: r.text }))));
  ui.suggestions.hidden = false;
  ui.composer.setAttribute('aria-activedescendant', `sugg-${suggestionIndex}`);
  ui.hint.textContent = 'Tab or Enter inserts · Esc closes';
}

function hideSuggestions() {
  ui.suggestions.hidden = true;
  ui.suggestions.replaceChildren();
  suggestionItems = [];
  suggestionIndex = 0;
  ui.composer.removeAttribute('aria-activedescendant');
  ui.hint.textContent = '';
}

function expandWith(reply) {
  const token = slashToken();
  if (!token) return false;
  insertText(reply.text, token.start, token.end);
  hideSuggestions();
  return true;
}

/** Tab/Enter after `/shortcut`: insert the exact match, else the highlighted suggestion. */
function trySlashExpand() {
  const token = slashToken();
  if (!token || !token.query && ui.suggestions.hidden) return false;
  const exact = S.canned.find((r) => r.shortcut === token.query);
  if (exact) return expandWith(exact);
  if (!ui.suggestions.hidden && suggestionItems[suggestionIndex]) return expandWith(suggestionItems[suggestionIndex]);
  return false;
}

// ------------------------------------------------------------------ transfer and close
async function openTransfer() {
  const chat = focusedChat();
  if (!chat || chat.ended) return;
  ui.transferTarget.replaceChildren(h('option', { value: '', text: 'Loading…' }));
  ui.transferTarget.disabled = true;
  ui.transferDialog.showModal();
  let operators = [];
  try {
    const response = await fetch('/api/v1/operators', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (response.ok) operators = await response.json();
  } catch {
    notify('Could not load the operators.', 'error');
  }
  const deptId = chat.conv.department && chat.conv.department.id;
  const ops = operators.filter((o) => S.me && o.id !== S.me.id && !o.disabled
    && (o.role === 'admin' || (o.department_ids || []).includes(deptId)));
  const statusLabel = { online: 'online', away: 'away', offline: 'offline' };
  const opGroup = h('optgroup', { label: 'Operators' },
    ops.length ? ops.map((o) => h('option', { value: `operator:${o.id}`, text: `${o.name} (${statusLabel[o.status] || o.status})` }))
      : h('option', { value: '', disabled: true, text: 'No other operator in this department' }));
  const siteId = chat.conv.site && chat.conv.site.id;
  const depts = (S.transferDepartments.length ? S.transferDepartments : S.departments).filter((d) => !siteId || d.site_id === siteId);
  const deptGroup = h('optgroup', { label: 'Departments (back to the queue)' },
    depts.map((d) => h('option', { value: `department:${d.id}`, text: d.id === deptId ? `${d.name} (current)` : d.name })));
  ui.transferTarget.replaceChildren(h('option', { value: '', text: 'Choose an operator or a department…' }), opGroup, deptGroup);
  ui.transferTarget.disabled = false;
  ui.transferTarget.focus();
}

function submitTransfer(event) {
  event.preventDefault();
  const chat = focusedChat();
  const value = ui.transferTarget.value;
  if (!chat || !value) {
    ui.transferTarget.focus();
    return;
  }
  const [kind, id] = value.split(':');
  const label = ui.transferTarget.selectedOptions[0] ? ui.transferTarget.selectedOptions[0].textContent.replace(/ \((current|online|away|offline)\)$/, '') : '';
  chat.transferLabel = label;
  const frame = { type: 'transfer', conversation_id: chat.id };
  frame[kind === 'operator' ? 'operator_id' : 'department_id'] = id;
  if (action('transfer', chat.id, frame)) ui.transferDialog.close();
}

function submitClose(event) {
  event.preventDefault();
  const chat = focusedChat();
  if (chat && !chat.ended) action('close', chat.id, { type: 'close', conversation_id: chat.id });
  ui.closeDialog.close();
}

// ------------------------------------------------------------------ notices
function notify(text, kind = 'info', timeout = 6000) {
  const note = h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { text }),
    h('button', { type: 'button', 'aria-label': 'Dismiss', text: '×', on: { click: () => note.remove() } }));
  ui.notices.append(note);
  while (ui.notices.children.length > 4) ui.notices.firstElementChild.remove();
  if (timeout) setTimeout(() => note.remove(), timeout);
}

// ------------------------------------------------------------------ rendering
let scheduled = false;
let forceScroll = false;

function render() {
  // Coalesced with a microtask rather than requestAnimationFrame, which stops in background tabs
  // (where the title badge matters most).
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    renderNow();
  });
}

function renderNow() {
  renderOffers();
  renderQueue();
  renderChatList();
  renderFocused();
  renderTitle();
}

function renderTitle() {
  let unread = 0;
  for (const chat of S.chats.values()) if (!chat.ended) unread += chat.unread;
  document.title = unread > 0 ? `(${unread}) Confide` : 'Confide';
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

function updateOfferTimer(el, offer) {
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

function updateWait(el) {
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
  ui.ended.hidden = !ended;
  ui.endedText.textContent = ended ? chat.ended.text : '';
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
  reconcile(box, items, (item) => item.key, () => h('li'), (el, item) => {
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
      h('div', { class: 'bubble', text: item.text }),
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
      h('div', {}, h('p', { class: 'vp-name', text: name }), v.email ? h('p', { class: 'vp-email', text: v.email }) : '')),
    contact,
    consents.length ? h('h3', { class: 'subhead', text: 'Consents' }) : '',
    consents.length ? h('ul', { class: 'consents' }, consents.map(([key, granted]) => h('li', { class: granted ? 'granted' : 'declined' },
      h('span', { class: 'consent-mark', 'aria-hidden': 'true', text: granted ? '✓' : '✕' }), ` ${humanize(key)} `,
      h('span', { class: 'muted', text: granted ? '— granted' : '— declined' })))) : '',
    h('h3', { class: 'subhead', text: 'Conversation' }),
    h('dl', { class: 'details' },
      row('Site', siteOf(conv)),
      row('Department', deptOf(conv)),
      row('Started on', page),
      row('Waiting since', conv.waiting_since || conv.created_at ? formatFull(conv.waiting_since || conv.created_at) : null),
      row('Accepted', conv.accepted_at ? formatFull(conv.accepted_at) : null),
      conv.rating ? row('Rating', `${'★'.repeat(conv.rating)}${'☆'.repeat(5 - conv.rating)}`) : '',
      conv.rating_comment ? row('Comment', conv.rating_comment) : ''),
  );
}

// ------------------------------------------------------------------ events
function autoGrow() {
  const el = ui.composer;
  el.style.height = 'auto';
  el.style.height = `${Math.min(220, Math.max(64, el.scrollHeight + 2))}px`;
}

ui.status.addEventListener('change', () => {
  const value = ui.status.value;
  ui.statusWrap.dataset.status = value;
  if (!action('status', null, { type: 'status', status: value }) && S.me) setStatus(S.me.status);
});

ui.composerForm.addEventListener('submit', (event) => {
  event.preventDefault();
  sendMessage();
});

ui.composer.addEventListener('keydown', (event) => {
  if (event.isComposing) return;
  if (!ui.suggestions.hidden && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
    event.preventDefault();
    const n = suggestionItems.length;
    suggestionIndex = (suggestionIndex + (event.key === 'ArrowDown' ? 1 : n - 1)) % n;
    updateSuggestions();
    return;
  }
  if (event.key === 'Escape' && !ui.suggestions.hidden) {
    event.preventDefault();
    hideSuggestions();
    return;
  }
  if (event.key === 'Tab' && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
    if (trySlashExpand()) event.preventDefault();
    return;
  }
  if (event.key === 'Enter' && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    if (!trySlashExpand()) sendMessage();
  }
});

ui.composer.addEventListener('input', () => {
  autoGrow();
  noteTyping();
  updateSuggestions();
});
ui.composer.addEventListener('click', updateSuggestions);
// Hide on a real blur only: focus that comes straight back (a re-render, a click on a suggestion) keeps them.
ui.composer.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== ui.composer) hideSuggestions(); }, 150));

ui.canned.addEventListener('change', () => {
  const reply = S.canned.find((r) => r.id === ui.canned.value);
  ui.canned.value = '';
  if (reply && focusedChat() && !focusedChat().ended) insertText(reply.text);
});

ui.transferBtn.addEventListener('click', openTransfer);
ui.transferForm.addEventListener('submit', submitTransfer);
ui.transferCancel.addEventListener('click', () => ui.transferDialog.close());
ui.closeBtn.addEventListener('click', () => {
  const chat = focusedChat();
  if (chat && !chat.ended) ui.closeDialog.showModal();
});
ui.closeForm.addEventListener('submit', submitClose);
ui.closeCancel.addEventListener('click', () => ui.closeDialog.close());
ui.dismissBtn.addEventListener('click', () => S.focused && dismiss(S.focused));

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    markFocusedRead();
    render();
  }
});
window.addEventListener('pagehide', stopTyping);

// One clock for waiting times and offer countdowns.
setInterval(() => {
  for (const el of ui.queue.querySelectorAll('.qi-wait[data-since]')) updateWait(el);
  const now = Date.now();
  let changed = false;
  for (const [id, offer] of S.offers) {
    if (now - offer.deadline > 5000) {
      S.offers.delete(id);
      changed = true;
    }
  }
  for (const el of ui.offers.querySelectorAll('.offer')) {
    const offer = S.offers.get(el.dataset.conversationId);
    if (offer) updateOfferTimer(el, offer);
  }
  if (changed) render();
}, 1000);

renderCanned();
render();
conn.start();
