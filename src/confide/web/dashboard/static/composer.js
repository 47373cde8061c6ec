// The message box: sending (kept as pending until acknowledged), typing frames, canned replies
// (the picker and `/shortcut` suggestions), and keys typed before a chat being accepted is open.

import { h, randomId } from './dom.js';
import { send } from './frames.js';
import { render, scrollToEnd } from './render.js';
import { MAX_TEXT, S, TYPING_EVERY, TYPING_IDLE, focusedChat } from './state.js';
import { notify, ui } from './ui.js';

export function sendMessage() {
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
  send({ type: 'message', conversation_id: chat.id, client_id: clientId, text }); // offline: sent again on welcome
  ui.composer.value = '';
  chat.draft = '';
  stopTyping();
  hideSuggestions();
  autoGrow();
  scrollToEnd();
  render();
}

export function retry(chat, clientId) {
  const p = chat.pending.get(clientId);
  if (!p || chat.ended) return;
  Object.assign(p, { state: 'pending', error: null });
  S.pendingIndex.set(clientId, chat.id);
  send({ type: 'message', conversation_id: chat.id, client_id: clientId, text: p.text });
  render();
}

export function discard(chat, clientId) {
  chat.pending.delete(clientId);
  S.pendingIndex.delete(clientId);
  render();
}

export function failPending(chat, reason) {
  for (const p of chat.pending.values()) {
    if (p.state === 'pending') Object.assign(p, { state: 'failed', error: reason });
  }
}

export function autoGrow() {
  const el = ui.composer;
  el.style.height = 'auto';
  el.style.height = `${Math.min(220, Math.max(64, el.scrollHeight + 2))}px`;
}

// ------------------------------------------------------------------ my typing frames
// `on` at most every 2 s while typing, `off` after 3 s idle, on send, on switch.
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

export function stopTyping() {
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
export function renderCanned() {
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

export function hideSuggestions() {
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

// ------------------------------------------------------------------ events
const isField = (el) => el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));

export function wireComposer() {
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

  // Accepted, not open yet (the `chat` frame is on its way): what the operator types outside any
  // field is kept and lands in the chat's message box when it opens.
  document.addEventListener('keydown', (event) => {
    if (!S.accepting.size || isField(event.target) || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (event.key.length === 1 || event.key === 'Enter' && S.typeahead) {
      event.preventDefault();
      S.typeahead += event.key === 'Enter' ? '\n' : event.key;
    } else if (event.key === 'Backspace' && S.typeahead) {
      event.preventDefault();
      S.typeahead = S.typeahead.slice(0, -1);
    }
  });
}
