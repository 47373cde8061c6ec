// The operator socket (/ws/operator, docs/protocol.md): what goes out, and what each frame coming
// in does to the state. The `welcome` frame is the whole state; later frames keep it current.

import { alertMessage, alertOffer, alertQueued, resetAlerts } from './alerts.js';
import { Connection } from './connection.js';
import { focusChat, markFocusedRead } from './actions.js';
import { failPending, renderCanned, stopTyping } from './composer.js';
import { parseTime, randomId } from './dom.js';
import { render } from './render.js';
import { Chat, HISTORY_PAGE, S, VISITOR_TYPING_TTL, focusedChat } from './state.js';
import { notify, setConnection, ui } from './ui.js';

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
export const conn = new Connection(`${scheme}//${location.host}/ws/operator`, {
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

export function send(frame) {
  return conn.send(frame);
}

/** A frame whose `error` answer (by client_id) belongs to an action of mine. */
export function action(kind, id, frame) {
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

function handleFrame(f) {
  switch (f.type) {
    case 'welcome': onWelcome(f); break;
    case 'queue': onQueue(f.queue || [], true); break;
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
  // The status the server remembers for me: shown as it is, never reset by connecting.
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
  resetAlerts(f.queue || []);
  onQueue(f.queue || [], false);

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
    if (first) focusChat(first.id, focusIsFree());
  }
  markFocusedRead();
}

/** Nothing has the focus (the page just loaded): opening a chat may put it in the message box. */
const focusIsFree = () => !document.activeElement || document.activeElement === document.body;

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

function onQueue(queue, live) {
  S.queue = queue;
  const now = Date.now();
  const waiting = new Set(queue.map((c) => c.id));
  for (const conv of queue) {
    if (S.me && conv.offered_to === S.me.id && !S.offers.has(conv.id) && conv.offer_expires_at) {
      addOffer(conv, conv.offer_expires_at);
      if (live) alertOffer(conv);
    }
  }
  for (const [id, offer] of S.offers) {
    if (!waiting.has(id) && now - offer.since > 2000) S.offers.delete(id);
  }
  if (live) alertQueued(queue.filter((c) => !S.offers.has(c.id)));
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
  alertOffer(conv);
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
      focusChat(conv.id, focusIsFree());
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

function onMessage(id, message) {
  const chat = S.chats.get(id);
  if (!chat || !message) return;
  if (chat.add(message) && message.sender === 'visitor') {
    chat.visitorTyping = false;
    markFocusedRead();
    if (S.focused !== chat.id || document.visibilityState === 'hidden') alertMessage(chat, message);
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
      if (!S.accepting.size) S.typeahead = '';
      if (f.code === 'conflict' || f.code === 'not_found') S.offers.delete(act.id);
    }
    if (act.kind === 'status' && S.me) setStatus(S.me.status);
  }
  notify(message, 'error');
}

export function setStatus(status) {
  if (!['online', 'away', 'offline'].includes(status)) return;
  if (S.me) S.me.status = status;
  ui.status.value = status;
  ui.statusWrap.dataset.status = status;
}
