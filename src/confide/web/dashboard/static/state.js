// The console's state: what the last `welcome` said and what later frames changed. No DOM here.

export const TYPING_EVERY = 2000; // at most one `typing on` per 2 s
export const TYPING_IDLE = 3000; // `typing off` after 3 s without a key
export const VISITOR_TYPING_TTL = 8000; // forget a visitor `typing on` that was never switched off
export const HISTORY_PAGE = 1000;
export const MAX_TEXT = 4000;

export const S = {
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
  typeahead: '', // keys typed while a chat I accepted was not open yet: they go to its message box
};

export class Chat {
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

export const visitorName = (conv) => {
  const v = (conv && conv.visitor) || {};
  return v.name || v.email || v.phone || 'Visitor';
};
export const deptOf = (conv) => (conv && conv.department && conv.department.name) || '';
export const siteOf = (conv) => (conv && conv.site && conv.site.name) || '';
export const focusedChat = () => (S.focused ? S.chats.get(S.focused) || null : null);

/** Unread visitor messages in open chats. */
export function totalUnread() {
  let unread = 0;
  for (const chat of S.chats.values()) if (!chat.ended) unread += chat.unread;
  return unread;
}
