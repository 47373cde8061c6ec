// What the operator does to chats: accept, open (focus), read, dismiss.

import { autoGrow, hideSuggestions, stopTyping } from './composer.js';
import { action, send } from './frames.js';
import { render, scrollToEnd } from './render.js';
import { S, focusedChat } from './state.js';
import { ui } from './ui.js';

export function accept(id) {
  S.accepting.add(id);
  if (!action('accept', id, { type: 'accept', conversation_id: id })) S.accepting.delete(id);
  render();
}

/** Open a chat; with moveFocus, its message box gets the focus (and any keys typed meanwhile). */
export function focusChat(id, moveFocus) {
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
    scrollToEnd();
  }
  markFocusedRead();
  render();
  if (moveFocus && !chat.ended) {
    // The chat view is shown by the render: focus once it is.
    queueMicrotask(() => {
      if (S.focused !== id) return;
      if (S.typeahead) {
        ui.composer.value += S.typeahead;
        S.typeahead = '';
        autoGrow();
      }
      ui.composer.disabled = false;
      ui.composer.focus();
      ui.composer.setSelectionRange(ui.composer.value.length, ui.composer.value.length);
    });
  }
}

export function markFocusedRead() {
  const chat = focusedChat();
  if (!chat || document.visibilityState === 'hidden') return;
  const seq = chat.currentSeq;
  if (seq > chat.readSeq) {
    chat.readSeq = seq;
    if (!chat.ended) send({ type: 'read', conversation_id: chat.id, seq });
  }
}

export function dismiss(id) {
  const chat = S.chats.get(id);
  if (!chat) return;
  for (const clientId of chat.pending.keys()) S.pendingIndex.delete(clientId);
  S.chats.delete(id);
  if (S.focused === id) {
    S.focused = null;
    ui.composer.value = '';
    ui.transcript.replaceChildren();
    const next = [...S.chats.values()].find((c) => !c.ended) || [...S.chats.values()][0];
    if (next) focusChat(next.id, true);
    else queueMicrotask(() => ui.noChat.querySelector('h2').focus());
  }
  render();
}
