// Verified visitor identity (ADR 0022, docs/privacy/verified-identity.md), imported by app.js.
// The site gives {id, email, name, hash} (window.ConfideSettings.identity or Confide.identify());
// it is read only once the visitor opened the chat, and sent only to this chat's server. The
// server ignores a claim it cannot verify; then the visitor simply chats anonymously.

const LIMITS = { id: 256, email: 320, name: 200, hash: 128 };

// A clean claim (strings, within the server's limits) or null: a malformed one is dropped here
// rather than making the chat fail.
export function claim(raw) {
  if (!raw || typeof raw !== 'object' || raw.id == null || raw.id === '') return null;
  const c = { id: typeof raw.id === 'number' ? String(raw.id) : raw.id };
  for (const k of ['email', 'name', 'hash']) if (typeof raw[k] === 'string' && raw[k]) c[k] = raw[k];
  for (const [k, max] of Object.entries(LIMITS)) {
    if (c[k] != null && (typeof c[k] !== 'string' || c[k].length > max)) {
      console.warn('Confide: the identity given to the chat is not valid (' + k + '); chatting anonymously.');
      return null;
    }
  }
  return c;
}

// The person's earlier conversations and a token for them, when the claim verified: {verified,
// token?, conversations?}, or null when the server could not be asked.
export async function lookup(api, c) {
  try {
    const r = await fetch(api + '/identity', {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identity: c }),
    });
    if (!r.ok) return null;
    const j = await r.json();
    if (!j.verified) console.warn('Confide: the identity given to the chat did not verify; chatting anonymously.');
    return j;
  } catch {
    return null;
  }
}

const when = (iso) => {
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
};

// "Your conversations": each one a disclosure with its messages (as text); an open one can be
// continued (onContinue(conversation)).
export function historyView(h, conversations, onContinue) {
  const items = conversations.map((c) =>
    h(
      'li',
      null,
      h(
        'details',
        { 'data-confide': 'past', 'data-id': c.id },
        h('summary', null, when(c.created_at) + (c.status === 'closed' ? '' : ' (open)')),
        h(
          'div',
          { class: 'ms hs' },
          (c.messages || []).map((m) =>
            h('div', { class: 'm ' + m.sender, 'data-sender': m.sender }, m.sender === 'operator' && m.sender_name && h('div', { class: 'w' }, m.sender_name), h('div', { class: 'b' }, m.text)),
          ),
        ),
        c.status !== 'closed' && h('button', { type: 'button', class: 'bt', 'data-confide': 'continue', onclick: () => onContinue(c) }, 'Continue this chat'),
      ),
    ),
  );
  return h('section', { class: 'fm hi', 'data-confide': 'history', 'aria-label': 'Your conversations' }, h('h3', null, 'Your conversations'), h('ul', null, items));
}

export const CSS = `.hi{gap:8px;padding-bottom:0}.hi h3{margin:0;font-size:16px}.hi ul{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:6px}
.hi summary{cursor:pointer;font-size:14px;padding:4px 0}.hs{max-height:240px;border:1px solid #e5e7eb;border-radius:8px;margin:4px 0}`;
