// Alerts for offers, newly queued chats and new visitor messages (in a chat not open, or while the
// tab is hidden): a short tone (WebAudio, no asset), a desktop notification (off by default; the
// browser's permission is asked once, when the operator turns it on) and the tab title.
// Preferences are kept per operator in this browser's localStorage; nothing else is stored.

import { focusChat } from './actions.js';
import { S, totalUnread, visitorName } from './state.js';
import { notify, ui } from './ui.js';

const DEFAULTS = { sound: true, desktop: false };
const TONE_GAP = 1500; // at most one tone per 1.5 s
let prefs = { ...DEFAULTS };
let audio = null;
let lastTone = 0;
const seenQueue = new Set(); // conversation ids already alerted as queued (or there at welcome)

const key = () => (S.me ? `confide:alerts:${S.me.id}` : null);

function loadPrefs() {
  prefs = { ...DEFAULTS };
  try {
    const stored = JSON.parse(localStorage.getItem(key()) || 'null');
    if (stored && typeof stored === 'object') {
      prefs.sound = stored.sound !== false;
      prefs.desktop = stored.desktop === true;
    }
  } catch { /* storage unavailable: defaults */ }
  if (prefs.desktop && !('Notification' in window && Notification.permission === 'granted')) prefs.desktop = false;
  ui.alertSound.checked = prefs.sound;
  ui.alertDesktop.checked = prefs.desktop;
  ui.alertSound.disabled = false;
  ui.alertDesktop.disabled = false;
}

function savePrefs() {
  try {
    if (key()) localStorage.setItem(key(), JSON.stringify(prefs));
  } catch { /* storage unavailable: kept for this page only */ }
}

/** On `welcome`: this operator's preferences; what already waits is not news. */
export function resetAlerts(queue) {
  loadPrefs();
  seenQueue.clear();
  for (const conv of queue) seenQueue.add(conv.id);
}

// Browsers start audio only after a gesture on the page: the context is made on the first one.
function unlockAudio() {
  if (audio || !window.AudioContext) return;
  try {
    audio = new AudioContext();
  } catch {
    audio = null;
  }
}

function tone() {
  if (!prefs.sound || !audio) return;
  const now = Date.now();
  if (now - lastTone < TONE_GAP) return;
  lastTone = now;
  if (audio.state === 'suspended') audio.resume();
  const t = audio.currentTime;
  const gain = audio.createGain();
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.12, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.32);
  gain.connect(audio.destination);
  const osc = audio.createOscillator();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(880, t);
  osc.frequency.setValueAtTime(660, t + 0.14);
  osc.connect(gain);
  osc.start(t);
  osc.stop(t + 0.34);
}

function desktop(title, body, conversationId) {
  if (!prefs.desktop || !('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    // Names only: a notification can show on a locked screen, so no message text.
    const n = new Notification(title, { body, tag: conversationId, icon: '/static/favicon.svg' });
    n.addEventListener('click', () => {
      window.focus();
      if (S.chats.has(conversationId)) focusChat(conversationId, true);
      n.close();
    });
  } catch { /* some browsers allow notifications from a service worker only */ }
}

export function alertOffer(conv) {
  seenQueue.add(conv.id);
  tone();
  desktop('New chat offered to you', `${visitorName(conv)} is waiting. Accept it in the console.`, conv.id);
}

export function alertQueued(queue) {
  const fresh = queue.filter((conv) => !seenQueue.has(conv.id));
  for (const conv of queue) seenQueue.add(conv.id);
  if (!fresh.length || !S.me || S.me.status === 'offline') return;
  tone();
  desktop(fresh.length > 1 ? `${fresh.length} new chats waiting` : 'A new chat is waiting', fresh.map((c) => visitorName(c)).join(', '), fresh[0].id);
}

export function alertMessage(chat, message) {
  if (message.sender !== 'visitor') return;
  tone();
  desktop(`New message from ${visitorName(chat.conv)}`, 'Open the console to read it.', chat.id);
}

/** "(3) Confide": unread visitor messages in my chats plus chats waiting in the queue. */
export function updateTitle() {
  const n = totalUnread() + S.queue.length;
  const title = n > 0 ? `(${n}) Confide` : 'Confide';
  if (document.title !== title) document.title = title;
}

export function wireAlerts() {
  for (const event of ['pointerdown', 'keydown']) document.addEventListener(event, unlockAudio, { capture: true });
  ui.alertSound.addEventListener('change', () => {
    prefs.sound = ui.alertSound.checked;
    savePrefs();
    if (prefs.sound) {
      unlockAudio();
      lastTone = 0;
      tone(); // what it sounds like
    }
  });
  ui.alertDesktop.addEventListener('change', async () => {
    if (!ui.alertDesktop.checked) {
      prefs.desktop = false;
      savePrefs();
      return;
    }
    if (!('Notification' in window)) {
      ui.alertDesktop.checked = false;
      notify('This browser does not show desktop notifications.', 'error');
      return;
    }
    let permission = Notification.permission;
    if (permission === 'default') {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = 'denied';
      }
    }
    prefs.desktop = permission === 'granted';
    ui.alertDesktop.checked = prefs.desktop;
    savePrefs();
    if (!prefs.desktop) notify('Desktop notifications are blocked for this site: allow them in the browser’s site settings.', 'error');
  });
}
