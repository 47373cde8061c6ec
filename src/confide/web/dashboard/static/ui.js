// The console page's elements (console.html) and its notices.

import { h } from './dom.js';

const $ = (id) => document.getElementById(id);
export const ui = {
  console: $('console'),
  connection: $('connection'),
  status: $('status'),
  statusWrap: $('status-wrap'),
  alertSound: $('alert-sound'),
  alertDesktop: $('alert-desktop'),
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

export function notify(text, kind = 'info', timeout = 6000) {
  const note = h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { text }),
    h('button', { type: 'button', 'aria-label': 'Dismiss', text: '×', on: { click: () => note.remove() } }));
  ui.notices.append(note);
  while (ui.notices.children.length > 4) ui.notices.firstElementChild.remove();
  if (timeout) setTimeout(() => note.remove(), timeout);
}

export function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.connection.textContent = text;
  ui.console.dataset.state = state;
}
