// Confide live console: the entry module. It wires the page to the modules, each with one concern:
//   state.js     what the console knows (the `welcome` frame, kept current by later frames)
//   frames.js    the operator socket (connection.js): frames out, and what each frame in does
//   actions.js   what the operator does to chats: accept, open, read, dismiss
//   composer.js  the message box: sending, typing frames, canned replies, keys typed early
//   render.js    the lists, the open chat and the visitor panel, drawn from the state
//   dialogs.js   the transfer and close dialogs
//   alerts.js    tone, desktop notification and tab title for offers, queued chats, messages
//   ui.js        the page's elements and notices; dom.js: small DOM helpers
// Protocol: docs/protocol.md. No build step: native ES modules.

import { dismiss, markFocusedRead } from './actions.js';
import { wireAlerts } from './alerts.js';
import { renderCanned, stopTyping, wireComposer } from './composer.js';
import { wireDialogs } from './dialogs.js';
import { action, conn, setStatus } from './frames.js';
import { render, updateOfferTimer, updateWait } from './render.js';
import { S } from './state.js';
import { ui } from './ui.js';

ui.status.addEventListener('change', () => {
  const value = ui.status.value;
  ui.statusWrap.dataset.status = value;
  if (!action('status', null, { type: 'status', status: value }) && S.me) setStatus(S.me.status);
});
ui.dismissBtn.addEventListener('click', () => S.focused && dismiss(S.focused));
wireComposer();
wireDialogs();
wireAlerts();

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
