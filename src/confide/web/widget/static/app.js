// Confide chat UI, imported by widget.js on the visitor's first click (or to resume a chat in
// this tab). Everything that comes from the server is put in the DOM as text, never as HTML.
// Protocol: docs/protocol.md.
import * as activity from './activity.js'; // Visitor Activity: reports pages only while a chat token is held
import * as verified from './identity.js'; // verified visitor identity (ADR 0022)
import { REDACTION_CSS, redactionNotice } from './redaction.js'; // redaction at ingest: the notice line

const CSS = `*{box-sizing:border-box}[hidden]{display:none!important}
.p{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:360px;height:560px;max-height:calc(100vh - 108px);display:flex;flex-direction:column;background:#fff;color:#111827;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;text-align:left;border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.28);overflow:hidden}
:host([data-pos=left]) .p{right:auto;left:20px}
@media (max-width:479.98px){.p{inset:0;width:auto;height:auto;max-height:none;border-radius:0}}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.hd{display:flex;align-items:center;gap:8px;padding:10px 8px 10px 16px;background:var(--cf-a,#1d4ed8);color:var(--cf-f,#fff)}
.hd h2{flex:1;margin:0;font-size:17px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.x{background:none;border:0;color:inherit;font-size:26px;line-height:1;width:40px;height:40px;border-radius:8px}
.x:hover{background:rgba(127,127,127,.25)}
.bd{flex:1;display:flex;flex-direction:column;min-height:0;overflow:auto}
form{margin:0}
.fm{padding:16px;display:flex;flex-direction:column;gap:12px}
.fm p{margin:0}
.f{display:flex;flex-direction:column;gap:4px}
.ck{flex-direction:row;flex-wrap:wrap;align-items:flex-start;gap:8px}
.ck label{flex:1;font-weight:400}
.ck .fe{flex-basis:100%}
label{font-size:14px;font-weight:600}
input,select,textarea{font:inherit;font-size:16px;color:inherit;width:100%;margin:0;padding:8px 10px;border:1px solid #6b7280;border-radius:8px;background:#fff}
textarea{resize:vertical}
input[type=checkbox]{width:20px;height:20px;flex:none;margin:1px 0 0;accent-color:var(--cf-a,#1d4ed8)}
[aria-invalid=true]{border-color:#b91c1c}
.rq,.fe,.er{color:#b91c1c}
.fe,.er{font-size:14px}.fe:empty,.er:empty{display:none}
.mu{color:#4b5563;font-size:14px}
a{color:inherit}
button{font:inherit;cursor:pointer}
.bt{background:var(--cf-a,#1d4ed8);color:var(--cf-f,#fff);border:0;border-radius:8px;padding:10px 16px;font-weight:600}
.bt:disabled{opacity:.6;cursor:default}
.ln{background:none;border:0;color:inherit;text-decoration:underline;padding:4px;font-size:14px}
:focus-visible{outline:3px solid #111827;outline-offset:2px}
.hd :focus-visible{outline-color:currentColor}
.nt{margin:8px 12px 0;padding:8px 12px;border-radius:8px;background:#fef3c7;color:#713f12;font-size:14px}
.st{display:flex;align-items:center;gap:8px;min-height:44px;padding:6px 12px;border-bottom:1px solid #e5e7eb;font-size:14px;color:#374151}
.st>span{flex:1}
.ms{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}
.ms:empty::before{content:attr(data-empty);margin:auto;padding:0 16px;color:#4b5563;text-align:center}
.m{max-width:85%;align-self:flex-start;display:flex;flex-direction:column;align-items:flex-start}
.m.visitor{align-self:flex-end;align-items:flex-end}
.m.system{align-self:center;align-items:center;max-width:100%}
.b{padding:8px 12px;border-radius:16px;background:#eef0f3;white-space:pre-wrap;overflow-wrap:anywhere}
.visitor .b{background:var(--cf-a,#1d4ed8);color:var(--cf-f,#fff)}
.system .b{background:none;color:#4b5563;font-size:14px;text-align:center;padding:2px}
.sending .b{outline:2px dashed #9ca3af;outline-offset:1px}
.failed .b{box-shadow:0 0 0 2px #b91c1c}
.w,.mt,.sn{font-size:14px;color:#4b5563}
.mt time{font-size:12px}
.b a{color:inherit;text-decoration:underline}
.ty{padding:0 14px 6px;font-size:14px;color:#4b5563;font-style:italic}
.cp{display:flex;gap:8px;align-items:flex-end;padding:10px;border-top:1px solid #e5e7eb}
.cp textarea{resize:none;max-height:128px}
.rt{padding:12px 16px;border-top:1px solid #e5e7eb;display:flex;flex-direction:column;gap:10px}
.rt h3{margin:0;font-size:16px}
.sr{display:flex;gap:2px}
.sr button{background:none;border:0;border-radius:6px;font-size:30px;line-height:1;padding:2px 4px;color:#b45309}
.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.ua{margin:0 12px 8px;padding:10px 12px;border-radius:8px;background:#eff6ff;color:#1e3a8a;font-size:14px;display:flex;flex-direction:column;gap:8px}
.ua p{margin:0}` + REDACTION_CSS;

const h = (tag, attrs, ...kids) => {
  const el = document.createElement(tag);
  const late = {};
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') late[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...kids.flat(9).filter((k) => k != null && k !== false)); // strings become text nodes
  return Object.assign(el, late); // value after <option>s exist
};

const rid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

// Text with its http(s) links as <a> elements (built with DOM calls; nothing else becomes a link).
const URLS = /\bhttps?:\/\/[^\s<>"']+/gi;
const linkify = (text) => {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(URLS)) {
    const raw = m[0].replace(/[.,;:!?)\]}]+$/, '');
    let href = null;
    try {
      const u = new URL(raw);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch {}
    if (!href) continue;
    out.push(text.slice(at, m.index), h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, raw));
    at = m.index + raw.length;
  }
  out.push(text.slice(at));
  return out.filter((x) => x !== '');
};
const hhmm = (iso) => {
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
};
const warnOrigin = (base, refused) =>
  console.warn(
    refused
      ? `Confide: this page's origin ${location.origin} is not allowed to use this chat. An administrator can add it under Settings → Sites → Allowed origins (${base}/app/settings).`
      : `Confide: could not reach ${base}. If the server is up, this page's origin ${location.origin} may not be allowed: see Settings → Sites → Allowed origins (${base}/app/settings).`,
  );

const ERR = {
  rate_limited: 'You are sending messages too fast. Please wait a moment.',
  conflict: 'This chat has ended.',
  too_large: 'That message is too long.',
  invalid: 'That message could not be sent.',
};

// Pick black or white text for the accent colour (WCAG relative luminance).
const fg = (hex) => {
  let c = hex.slice(1);
  if (c.length < 6) c = [...c.slice(0, 3)].map((x) => x + x).join('');
  const l = [0, 2, 4].map((i) => parseInt(c.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2] > 0.18 ? '#111827' : '#fff';
};

export function mount(root, { base, siteKey, launcher, identity }) {
  const KEY = 'confide:' + siteKey;
  const api = base + '/api/v1/widget/' + encodeURIComponent(siteKey);
  const store = (v) => {
    v === undefined ? activity.stop() : activity.track({ api, token: v.token });
    try {
      v === undefined ? sessionStorage.removeItem(KEY) : sessionStorage.setItem(KEY, JSON.stringify(v));
    } catch {}
  };
  let sess = null;
  try {
    sess = JSON.parse(sessionStorage.getItem(KEY));
  } catch {}
  let cfg, chat, isOpen = false, noteT, unread = 0, gaveEmail = false;
  let who, known; // verified identity (ADR 0022): the site's claim, and what the server said of it

  try {
    const s = new CSSStyleSheet();
    s.replaceSync(CSS + verified.CSS);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, s];
  } catch {
    root.append(h('style', null, CSS + verified.CSS));
  }

  const title = h('h2', null, 'Chat');
  const notice = h('div', { class: 'nt', 'data-confide': 'notice', role: 'status', hidden: true });
  const body = h('div', { class: 'bd' });
  const panel = h(
    'div',
    { class: 'p', id: 'cf-p', 'data-confide': 'panel', role: 'dialog', 'aria-label': 'Chat', tabindex: '-1', hidden: true },
    h('div', { class: 'hd' }, title, h('button', { type: 'button', class: 'x', 'aria-label': 'Minimise chat', title: 'Minimise', onclick: () => close() }, '×')),
    notice,
    body,
  );
  // Announces what arrives while the panel is closed (the message log inside it is hidden then).
  const live = h('div', { class: 'vh', 'data-confide': 'announce', role: 'status' });
  root.append(panel, live);
  launcher.setAttribute('aria-controls', 'cf-p');
  // Full screen on a phone: the panel is modal, and Tab stays inside it.
  const phone = matchMedia('(max-width: 479.98px)');
  const modal = () => (phone.matches ? panel.setAttribute('aria-modal', 'true') : panel.removeAttribute('aria-modal'));
  modal();
  phone.addEventListener?.('change', modal);
  panel.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab' || !phone.matches) return;
    const all = [...panel.querySelectorAll('button,input,select,textarea,a[href],[tabindex="0"]')].filter((el) => !el.disabled && el.getClientRects().length);
    const first = all[0], last = all.at(-1), a = root.activeElement;
    if (!first) return;
    if (e.shiftKey && (a === first || a === panel)) (e.preventDefault(), last.focus());
    else if (!e.shiftKey && a === last) (e.preventDefault(), first.focus());
  });
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && isOpen) {
      e.stopPropagation();
      close();
    }
  });

  const show = (...nodes) => {
    body.replaceChildren(...nodes);
    const a = root.activeElement; // null once the focused control was replaced
    if (isOpen && (!a || a === panel)) focusIn();
  };
  const focusIn = () => (body.querySelector('[data-confide=input]') || body.querySelector('input,select,textarea,button') || panel).focus();
  const note = (text) => {
    notice.textContent = text;
    notice.hidden = false;
    clearTimeout(noteT);
    noteT = setTimeout(() => (notice.hidden = true), 6000);
  };
  const name = () => (isOpen ? 'Minimise chat' : 'Chat with us' + (unread ? `, ${unread} unread message${unread > 1 ? 's' : ''}` : ''));
  const setUnread = (n) => {
    unread = n;
    n ? launcher.setAttribute('data-unread', n > 9 ? '9+' : n) : launcher.removeAttribute('data-unread');
    launcher.setAttribute('aria-label', name());
    if (!n) live.textContent = '';
  };

  function open() {
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    setUnread(0);
    focusIn();
    chat?.read();
    chat?.privacy?.(true); // ---- consent: a material notice change asks again
  }
  function close() {
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    setUnread(unread);
    launcher.focus();
  }

  const loadConfig = async () => {
    try {
      const r = await fetch(api + '/config', { credentials: 'omit' });
      if (r.status === 403) warnOrigin(base, true);
      if (!r.ok) throw r.status;
      cfg = await r.json();
    } catch (e) {
      if (e instanceof TypeError) warnOrigin(base, false);
      return false;
    }
    const s = cfg.site || {};
    title.textContent = s.name || 'Chat';
    panel.setAttribute('aria-label', s.name ? 'Chat with ' + s.name : 'Chat');
    if (/^#[0-9a-f]{3}([0-9a-f]{3})?$/i.test(s.color || '')) {
      root.host.style.setProperty('--cf-a', s.color);
      root.host.style.setProperty('--cf-f', fg(s.color));
    }
    return true;
  };

  // Pre-chat form (offline=false) or leave-a-message form (offline=true).
  // `vals` (by control name) keeps what the visitor typed when switching to offline.
  async function showForm(offline, vals = {}, msg) {
    if (!cfg) {
      show(h('p', { class: 'fm mu' }, 'Loading…'));
      if (!(await loadConfig())) {
        return show(h('div', { class: 'fm' }, h('p', null, 'The chat is not available right now.'), h('button', { type: 'button', class: 'bt', onclick: () => showForm(offline, vals, msg) }, 'Try again')));
      }
    }
    offline ||= !cfg.available;
    // Verified identity (ADR 0022): read now that the visitor opened the chat, asked about once.
    if (who === undefined) {
      who = verified.claim(identity?.());
      known = who && (await verified.lookup(api, who));
    }
    const past =
      known?.token && known.conversations?.length &&
      verified.historyView(h, known.conversations, (c) => {
        sess = { token: known.token, conversation_id: c.id, last_seq: 0 };
        store(sess);
        chat = Chat();
      });
    const site = cfg.site || {};
    const depts = cfg.departments || [];
    let n = 0;
    const fe = (id) => h('div', { class: 'fe', id: id + 'e' });
    const star = (req) => req && h('span', { class: 'rq', 'aria-hidden': 'true' }, ' *');
    const field = (d) => {
      const id = 'cf-f' + n++;
      const mine = known?.verified && (d.key === 'name' || d.key === 'email') ? who[d.key] : null; // the site's verified values
      const a = { id, name: d.key, required: !!d.required, 'aria-describedby': id + 'e', value: vals[d.key] ?? mine ?? '' };
      if (d.type === 'checkbox') {
        return h('div', { class: 'f ck' }, h('input', { ...a, type: 'checkbox', value: null, checked: !!vals[d.key] }), h('label', { for: id }, d.label, star(d.required)), fe(id));
      }
      const input =
        d.type === 'select'
          ? h('select', a, h('option', { value: '' }, d.required ? 'Choose…' : '—'), (d.options || []).map((o) => h('option', { value: o }, o)))
          : d.type === 'textarea'
            ? h('textarea', { ...a, rows: 3, maxlength: 4000 })
            : h('input', { ...a, type: { email: 'email', tel: 'tel' }[d.type] || 'text', maxlength: 500, autocomplete: { email: 'email', tel: 'tel' }[d.type] || (d.key === 'name' ? 'name' : null) });
      return h('div', { class: 'f' }, h('label', { for: id }, d.label, star(d.required)), input, fe(id));
    };
    const fields = cfg.prechat_form?.fields || [];
    const err = h('div', { class: 'er', role: 'alert' });
    const btn = h('button', { type: 'submit', class: 'bt', 'data-confide': offline ? 'send-offline' : 'start' }, offline ? 'Send message' : 'Start chat');
    const privacy = /^https?:/i.test(site.privacy_policy_url || '') && h('a', { href: site.privacy_policy_url, target: '_blank', rel: 'noopener' }, 'privacy policy');
    const form = h(
      'form',
      { class: 'fm', novalidate: true, 'data-confide': offline ? 'offline' : 'prechat', onsubmit: (e) => (e.preventDefault(), submit()) },
      msg && h('p', { class: 'nt', role: 'status' }, msg),
      offline
        ? !msg && h('p', null, 'We are not online right now. Leave a message and we will get back to you by e-mail.')
        : site.greeting && h('p', null, site.greeting),
      fields.map(field),
      depts.length > 1 &&
        h('div', { class: 'f' }, h('label', { for: 'cf-d' }, 'Department'), h('select', { id: 'cf-d', name: 'department', value: vals.department ?? '' }, h('option', { value: '' }, 'Any'), depts.map((d) => h('option', { value: d.id }, d.name)))),
      offline && h('div', { class: 'f' }, h('label', { for: 'cf-m' }, 'Your message', star(true)), h('textarea', { id: 'cf-m', name: 'message', required: true, rows: 4, maxlength: 4000, 'aria-describedby': 'cf-me', value: vals.message ?? '' }), fe('cf-m')),
      (cfg.purposes || []).map((p) => {
        const id = 'cf-c' + n++;
        return h('div', { class: 'f ck' }, h('input', { type: 'checkbox', id, name: 'consent:' + p.key, checked: !!vals['consent:' + p.key] }), h('label', { for: id }, p.label));
      }),
      h('p', { class: 'mu' }, 'We use these details to answer your request.', privacy && [' Read our ', privacy, '.']),
      err,
      btn,
    );
    past ? show(past, form) : show(form);

    const controls = () => [...form.querySelectorAll('[name]')];
    const setErr = (el, m) => {
      el.setAttribute('aria-invalid', m ? 'true' : 'false');
      const e = form.querySelector('#' + el.id + 'e');
      if (e) e.textContent = m;
    };
    const collect = () => Object.fromEntries(controls().map((el) => [el.name, el.type === 'checkbox' ? el.checked : el.value.trim()]));

    async function submit() {
      err.textContent = '';
      let bad;
      for (const el of controls()) {
        const empty = el.required && (el.type === 'checkbox' ? !el.checked : !el.value.trim());
        const m = empty ? 'Please fill in this field.' : el.checkValidity() ? '' : el.validationMessage;
        setErr(el, m);
        bad ||= m && el;
      }
      if (bad) return bad.focus();
      const v = collect();
      const fv = {};
      for (const d of fields) if (v[d.key] !== '' && v[d.key] !== false) fv[d.key] = v[d.key];
      // The server needs a way to answer an offline message.
      const contact = fields.filter((d) => d.type === 'email' || d.type === 'tel');
      if (offline && contact.length && !contact.some((d) => fv[d.key])) return (err.textContent = 'Please give an e-mail address or phone number so we can reply.');
      const req = {
        fields: fv,
        // ---- consent: each choice names the notice the checkbox showed (the proof of the words)
        consents: Object.fromEntries((cfg.purposes || []).map((p) => [p.key, p.notice_id ? { granted: !!v['consent:' + p.key], notice_id: p.notice_id } : !!v['consent:' + p.key]])),
        department_id: v.department || (depts.length === 1 ? depts[0].id : null),
        page_url: location.href,
      };
      if (offline) req.message = v.message;
      else if (who) req.identity = who;
      btn.disabled = true;
      let r, j = {};
      try {
        r = await fetch(api + (offline ? '/offline-requests' : '/conversations'), {
          method: 'POST',
          credentials: 'omit',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(req),
        });
        j = await r.json().catch(() => ({}));
        if (r.status === 403) warnOrigin(base, true);
      } catch {}
      btn.disabled = false;
      if (!r) return (err.textContent = 'Network error. Please check your connection and try again.');
      if (r.ok) {
        if (offline) return show(h('div', { class: 'fm', 'data-confide': 'offline-done', role: 'status' }, h('p', null, 'Thank you! We received your message and will get back to you soon.')));
        gaveEmail = fields.some((d) => d.type === 'email' && fv[d.key]);
        sess = { token: j.token, conversation_id: j.conversation_id, last_seq: 0 };
        store(sess); // first write to browser storage, after the visitor asked for a chat
        return (chat = Chat());
      }
      const d = j.detail;
      if (r.status === 409 && (j.code || d?.code) === 'offline') return showForm(true, v, 'No one is available right now. Leave us a message instead.');
      if (r.status === 422 && Array.isArray(d)) {
        const rest = [];
        for (const x of d) {
          const k = String((x.loc || []).at(-1));
          const el = controls().find((c) => c.name === (k === 'department_id' ? 'department' : k));
          el ? setErr(el, String(x.msg)) : rest.push(String(x.msg ?? x));
        }
        err.textContent = rest.join(' ');
        return form.querySelector('[aria-invalid=true]')?.focus();
      }
      err.textContent = typeof d === 'string' && r.status < 500 ? d : r.status === 429 ? 'Too many attempts. Please wait a moment.' : 'Something went wrong. Please try again.';
    }
  }

  // One live conversation: its view, socket and state. Returns {read, stop}.
  function Chat() {
    const pending = new Map(); // client_id -> {el, text}
    const byId = new Set();
    let ws, ready, tries = 0, retryT, pingT, conv, lastSeq = null, opRead = 0, readSent = 0, lastOther = 0;
    let tOn = 0, tIdle, tIn, closedShown, stopped, finished, endedHere, leaveCid, leftId, uaSince;
    const later = []; // end/rate frames that must survive a reconnect

    const status = h('span', { 'data-confide': 'status', role: 'status' }, 'Connecting…');
    const endBtn = h('button', { type: 'button', class: 'ln', 'data-confide': 'end', onclick: () => bar(true) }, 'End chat');
    // ---- consent: the Privacy view (privacy.js, loaded on first use)
    const pvBox = h('div', { class: 'ms', 'data-confide': 'privacy-box', hidden: true });
    const privBtn = h('button', { type: 'button', class: 'ln', 'data-confide': 'privacy-open', onclick: () => privacy(false) }, 'Privacy');
    const stLine = h('div', { class: 'st' }, status, privBtn, endBtn);
    const confirmBar = h(
      'div',
      { class: 'st', hidden: true },
      h('span', null, 'End this chat?'),
      h('button', { type: 'button', class: 'bt', 'data-confide': 'end-confirm', onclick: () => ((endedHere = true), bar(false), send({ type: 'end' }, true)) }, 'End chat'),
      h('button', { type: 'button', class: 'ln', onclick: () => bar(false) }, 'Cancel'),
    );
    const bar = (ask) => {
      confirmBar.hidden = !ask;
      endBtn.hidden = ask;
      (ask ? confirmBar.querySelector('.bt') : endBtn).focus();
    };
    const list = h('div', { class: 'ms', 'data-confide': 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0', 'data-empty': cfg?.site?.greeting || 'Send us a message. We will answer as soon as we can.' });
    const typing = h('div', { class: 'ty', 'data-confide': 'typing', hidden: true });
    const typingLive = h('div', { role: 'status' }, typing); // a live region that stays, so "is typing" is announced
    const ua = h('div', { class: 'ua', 'data-confide': 'unanswered', hidden: true });
    const seenEl = h('div', { class: 'sn', 'data-confide': 'seen' }, 'Seen');
    const input = h('textarea', {
      'data-confide': 'input',
      rows: 1,
      maxlength: 4000,
      'aria-label': 'Message',
      placeholder: 'Write a message…',
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          post();
        }
      },
      oninput: () => {
        grow();
        if (!input.value.trim()) return typingOff();
        // "on" at most every 2 s while typing; "off" after 3 s idle.
        if (Date.now() - tOn >= 2000) {
          tOn = Date.now();
          send({ type: 'typing', on: true });
        }
        clearTimeout(tIdle);
        tIdle = setTimeout(typingOff, 3000);
      },
    });
    const grow = () => {
      input.style.height = 'auto';
      input.style.height = Math.min(input.scrollHeight + 2, 128) + 'px';
    };
    const composer = h('form', { class: 'cp', onsubmit: (e) => (e.preventDefault(), post()) }, input, h('button', { type: 'submit', class: 'bt', 'data-confide': 'send' }, 'Send'));
    const foot = h('div', null, composer);
    show(stLine, confirmBar, list, pvBox, typingLive, ua, redactionNotice(cfg, h), foot);
    let pvMod;
    async function privacy(onlyIfAsked) {
      if (!sess?.token) return;
      try {
        pvMod ||= (await import(new URL('privacy.js', import.meta.url))).mountPrivacy({ h, api, token: sess.token, box: pvBox, onClose: closePrivacy, lang: (navigator.language || '').slice(0, 2).toLowerCase() });
      } catch {
        return;
      }
      if (await pvMod.open(onlyIfAsked)) list.hidden = true;
    }
    function closePrivacy() {
      pvBox.hidden = true;
      list.hidden = false;
      input.focus();
    }

    function typingOff() {
      clearTimeout(tIdle);
      if (tOn) send({ type: 'typing', on: false });
      tOn = 0;
    }
    function send(f, keep) {
      if (ready && ws?.readyState === 1) ws.send(JSON.stringify(f));
      else if (keep) later.push(f);
    }
    const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    const toBottom = () => (list.scrollTop = list.scrollHeight);

    const bubble = (sender, text, name) =>
      h('div', { class: 'm ' + sender, 'data-confide': 'msg', 'data-sender': sender }, sender === 'operator' && name && h('div', { class: 'w' }, name), h('div', { class: 'b' }, linkify(text)), h('div', { class: 'mt' }));
    const stamp = (el, at) => {
      const t = hhmm(at);
      meta(el).replaceChildren(t ? h('time', { datetime: at, 'data-confide': 'time' }, t) : '');
      if (t) el.title = new Date(at).toLocaleString();
    };

    const meta = (el) => el.querySelector('.mt'); // not lastChild: "Seen" may be appended after it
    function post() {
      const text = input.value.trim();
      if (!text) return;
      if (conv?.status === 'closed') return note(ERR.conflict);
      const cid = rid();
      const el = bubble('visitor', text);
      el.classList.add('sending');
      meta(el).textContent = 'Sending…';
      pending.set(cid, { el, text });
      list.append(el);
      toBottom();
      input.value = '';
      grow();
      typingOff();
      send({ type: 'message', client_id: cid, text });
      seen();
    }
    function failed(cid) {
      const p = pending.get(cid);
      if (!p) return;
      p.el.classList.replace('sending', 'failed');
      meta(p.el).replaceChildren('Not sent. ', h('button', { type: 'button', class: 'ln', onclick: () => retry(cid) }, 'Retry'));
    }
    function retry(cid) {
      const p = pending.get(cid);
      p.el.classList.replace('failed', 'sending');
      meta(p.el).textContent = 'Sending…';
      send({ type: 'message', client_id: cid, text: p.text });
    }

    // A committed message (from history, `message` or `ack`); de-duplicated by id.
    function add(m, cid = m.client_id) {
      if (!m || byId.has(m.id)) return;
      byId.add(m.id);
      const stick = atBottom();
      const p = m.sender === 'visitor' && cid && pending.get(cid);
      let el;
      if (p) {
        pending.delete(cid);
        el = p.el;
        el.classList.remove('sending', 'failed');
        const b = el.querySelector('.b'); // the stored text (masked by the site's redaction, if any)
        if (b && b.textContent !== m.text) b.replaceChildren(...linkify(m.text));
      } else el = bubble(m.sender, m.text, m.sender_name);
      el.dataset.seq = m.seq;
      stamp(el, m.created_at);
      // Keep committed messages in seq order, pending ones after them.
      let ref = null;
      for (const c of list.children) if (c !== el && (!c.dataset.seq || +c.dataset.seq > m.seq)) { ref = c; break; }
      list.insertBefore(el, ref);
      if (stick || p) toBottom();
      setSeq(m.seq);
      if (m.sender !== 'visitor') {
        lastOther = Math.max(lastOther, m.seq);
        if (m.sender === 'operator') typingIn(false);
        if (!isOpen && m.seq > readSent) {
          setUnread(unread + 1);
          live.textContent = `New message from ${m.sender_name || 'the operator'}: ${m.text}`;
        }
      }
    }
    function setSeq(s) {
      if (stopped || !(lastSeq == null || s > lastSeq)) return;
      lastSeq = s;
      sess.last_seq = s;
      store(sess);
    }
    function seen() {
      const mine = [...list.querySelectorAll('[data-sender=visitor]')].at(-1);
      mine?.dataset.seq && opRead >= +mine.dataset.seq ? mine.append(seenEl) : seenEl.remove();
    }
    function read() {
      if (isOpen && !document.hidden && ready && lastOther > readSent) {
        readSent = lastSeq;
        send({ type: 'read', seq: lastSeq });
      }
    }
    function typingIn(on) {
      clearTimeout(tIn);
      typing.textContent = (conv?.operator?.name || 'The operator') + ' is typing…';
      typing.hidden = !on;
      if (on) tIn = setTimeout(() => (typing.hidden = true), 6000);
    }
    function setStatus() {
      const c = conv || {};
      status.textContent = !ready
        ? tries ? 'Reconnecting…' : 'Connecting…'
        : c.status === 'queued'
          ? 'Waiting for an operator' + (c.queue_position ? ` — you are number ${c.queue_position} in the queue` : '…')
          : c.status === 'active'
            ? 'You are chatting with ' + (c.operator?.name || 'an operator')
            : c.status === 'closed' ? 'This chat has ended.' : '';
      endBtn.hidden = c.status === 'closed' || !confirmBar.hidden;
    }
    // Nobody can answer (no operator online, no answer in time, closed hours): offer to leave a message.
    function unanswered(c) {
      const u = c.status === 'queued' && !leftId ? c.unanswered : null;
      if (!u) return ((ua.hidden = true), ua.replaceChildren(), (uaSince = null));
      if (uaSince === u.since + u.reason) return;
      uaSince = u.since + u.reason;
      const why = { no_operator: 'No one is online to answer right now.', closed_hours: 'We are closed right now.' }[u.reason] || 'We could not answer you in time.';
      const had = ua.contains(root.activeElement);
      ua.replaceChildren(
        h('p', null, why + ' You can leave us a message and we will get back to you by e-mail.'),
        h('button', { type: 'button', class: 'bt', 'data-confide': 'leave-message', onclick: leaveForm }, 'Leave a message'),
      );
      ua.hidden = false;
      if (had) ua.querySelector('button').focus();
    }
    function leaveForm() {
      const needEmail = !gaveEmail && !(cfg?.prechat_form?.fields || []).some((d) => d.type === 'email' && d.required);
      const err = h('div', { class: 'er', role: 'alert', 'data-confide': 'leave-error' });
      const email = needEmail && h('input', { id: 'cf-le', name: 'email', type: 'email', required: true, maxlength: 500, autocomplete: 'email', 'aria-describedby': 'cf-lee' });
      const text = h('textarea', { id: 'cf-lm', name: 'message', rows: 3, maxlength: 4000 });
      const form = h(
        'form',
        {
          'data-confide': 'leave-form',
          novalidate: true,
          class: 'fm',
          onsubmit: (e) => {
            e.preventDefault();
            err.textContent = '';
            if (email && (!email.value.trim() || !email.checkValidity())) {
              email.setAttribute('aria-invalid', 'true');
              err.textContent = 'Please give an e-mail address so we can reply.';
              return email.focus();
            }
            leaveCid = rid();
            const f = { type: 'leave_message', client_id: leaveCid };
            if (email) f.email = email.value.trim();
            if (text.value.trim()) f.message = text.value.trim();
            form.querySelector('[type=submit]').disabled = true;
            send(f, true);
          },
        },
        h('p', null, 'We will reply by e-mail. What you already wrote in the chat is included.'),
        email && h('div', { class: 'f' }, h('label', { for: 'cf-le' }, 'E-mail', h('span', { class: 'rq', 'aria-hidden': 'true' }, ' *')), email),
        h('div', { class: 'f' }, h('label', { for: 'cf-lm' }, 'Anything to add? (optional)'), text),
        h('div', { class: 'er', id: 'cf-lee' }),
        err,
        h('div', { class: 'row' }, h('button', { type: 'submit', class: 'bt', 'data-confide': 'leave-send' }, 'Send message'), h('button', { type: 'button', class: 'ln', onclick: () => ((uaSince = null), unanswered(conv || {})) }, 'Keep waiting')),
      );
      ua.replaceChildren(form);
      (email || text).focus();
    }
    function messageLeft() {
      ua.hidden = true;
      ua.replaceChildren();
      confirmBar.hidden = endBtn.hidden = true;
      typingOff();
      foot.replaceChildren(h('div', { class: 'rt', 'data-confide': 'message-left', role: 'status' }, h('p', null, 'Thank you! We received your message and will get back to you by e-mail.'), h('button', { type: 'button', class: 'bt', 'data-confide': 'new-chat', onclick: restart }, 'Start a new chat')));
      foot.querySelector('button').focus();
      finish();
    }
    function setConv(c) {
      const had = panel.contains(root.activeElement) || endedHere;
      conv = c;
      unanswered(c);
      // Not in protocol.md, but the server sends it: lets "Seen" survive a reload.
      if (c.operator_read_seq > opRead) opRead = c.operator_read_seq;
      seen();
      setStatus();
      if (c.status === 'closed' && !closedShown) {
        closedShown = true;
        if (leftId) return messageLeft();
        confirmBar.hidden = endBtn.hidden = true;
        typingOff();
        typingIn(false);
        foot.replaceChildren(c.rating != null ? thanks() : rating());
        toBottom();
        if (had) foot.querySelector('button').focus();
      }
    }
    function rating() {
      let score = 0;
      const err = h('div', { class: 'er', role: 'alert' });
      const stars = [1, 2, 3, 4, 5].map((i) => h('button', { type: 'button', 'data-score': i, 'aria-pressed': 'false', 'aria-label': i + (i > 1 ? ' stars' : ' star'), onclick: () => pick(i) }, '☆'));
      const pick = (i) => {
        score = i;
        stars.forEach((b, j) => {
          b.textContent = j < i ? '★' : '☆';
          b.setAttribute('aria-pressed', j + 1 === i);
        });
      };
      const comment = h('textarea', { id: 'cf-rc', name: 'comment', rows: 2, maxlength: 1000 });
      return h(
        'form',
        {
          class: 'rt',
          'data-confide': 'rating',
          onsubmit: (e) => {
            e.preventDefault();
            if (!score) return (err.textContent = 'Please choose from 1 to 5 stars.');
            const f = { type: 'rate', score };
            if (comment.value.trim()) f.comment = comment.value.trim();
            send(f, true);
            foot.replaceChildren(thanks(true));
            foot.querySelector('button').focus();
          },
        },
        h('h3', null, 'How was your chat?'),
        h('div', { class: 'sr', role: 'group', 'aria-label': 'Rating from 1 to 5 stars' }, stars),
        h('label', { for: 'cf-rc' }, 'Comment (optional)'),
        comment,
        err,
        h('div', { class: 'row' }, h('button', { type: 'submit', class: 'bt', 'data-confide': 'rate' }, 'Send rating'), h('button', { type: 'button', class: 'ln', onclick: () => (foot.replaceChildren(thanks()), foot.querySelector('button').focus()) }, 'Skip')),
      );
    }
    // Rated or skipped: the chat is over for this tab, so drop the socket and the stored token.
    function finish() {
      finished = true;
      if (!later.length) {
        stop();
        store();
      }
    }
    function thanks(rated) {
      finish();
      return h('div', { class: 'rt', role: 'status' }, h('p', null, rated ? 'Thank you for your feedback!' : 'Thank you for chatting with us.'), h('button', { type: 'button', class: 'bt', 'data-confide': 'new-chat', onclick: restart }, 'Start a new chat'));
    }
    function restart() {
      stop();
      store();
      sess = null;
      chat = null;
      cfg = null; // availability may have changed
      who = known = undefined; // and who is logged in (verified identity, ADR 0022)
      showForm(false);
    }

    function onFrame(f) {
      switch (f.type) {
        case 'resync':
          // The server lost messages we had: start the list again from its history.
          list.replaceChildren(...[...pending.values()].map((p) => p.el));
          byId.clear();
          lastSeq = null;
          opRead = readSent = lastOther = 0;
        // fall through
        case 'welcome':
          ready = true;
          tries = 0;
          (f.messages || []).forEach((m) => add(m));
          setSeq(f.seq ?? lastSeq ?? 0);
          setConv(f.conversation);
          for (const [client_id, p] of pending) send({ type: 'message', client_id, text: p.text });
          later.splice(0).forEach((x) => send(x));
          if (finished) finish();
          seen();
          read();
          break;
        case 'ack':
          add(f.message, f.client_id);
          seen();
          break;
        case 'message':
          add(f.message);
          seen();
          read();
          break;
        case 'status':
          setConv(f.conversation);
          break;
        case 'message_left':
          leftId = f.offline_request_id || true;
          if (conv?.status === 'closed') messageLeft();
          break;
        case 'typing':
          if (f.from === 'operator') typingIn(f.on);
          break;
        case 'read':
          if (f.from === 'operator') {
            opRead = Math.max(opRead, f.seq);
            seen();
          }
          break;
        case 'error':
          if (ready) note(ERR[f.code] || f.message || 'Something went wrong.'); // before welcome the close code explains
          if (f.ref && f.ref === leaveCid) {
            const e = ua.querySelector('[data-confide=leave-error]');
            if (e) e.textContent = f.message || 'Your message could not be sent.';
            ua.querySelector('[type=submit]')?.removeAttribute('disabled');
          } else if (f.ref) failed(f.ref);
      }
    }

    function connect() {
      if (stopped) return;
      const s = (ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws/visitor?site=' + encodeURIComponent(siteKey)));
      // On a fresh page we have no messages on screen, so ask for the whole history (last_seq 0).
      s.onopen = () => s.send(JSON.stringify({ type: 'hello', token: sess.token, conversation_id: sess.conversation_id, last_seq: lastSeq ?? 0 }));
      s.onmessage = (e) => {
        let f;
        try {
          f = JSON.parse(e.data);
        } catch {
          return;
        }
        if (ws === s && f) onFrame(f);
      };
      s.onclose = (e) => {
        if (ws !== s || stopped) return;
        ws = null;
        ready = false;
        setStatus();
        if (e.code === 4401 || e.code === 4403) {
          stop();
          store();
          sess = chat = null;
          return showForm(false, {}, e.code === 4401 ? 'Your chat session has expired. Please start a new chat.' : 'This chat is no longer available. You can start a new one.');
        }
        const d = Math.min(10000, 500 * 2 ** tries++);
        retryT = setTimeout(connect, d / 2 + (Math.random() * d) / 2);
        setStatus();
      };
    }
    const online = () => {
      if (!ws && !stopped) {
        clearTimeout(retryT);
        connect();
      }
    };
    const vis = () => read();
    addEventListener('online', online);
    document.addEventListener('visibilitychange', vis);
    pingT = setInterval(() => send({ type: 'ping' }), 25000); // keeps proxies from dropping an idle socket

    function stop() {
      stopped = true;
      clearTimeout(retryT);
      clearTimeout(tIdle);
      clearTimeout(tIn);
      clearInterval(pingT);
      removeEventListener('online', online);
      document.removeEventListener('visibilitychange', vis);
      ws?.close(1000);
      ws = null;
    }

    connect();
    return { read, stop, privacy };
  }

  if (sess?.token) {
    activity.track({ api, token: sess.token });
    chat = Chat();
    loadConfig(); // title and colour only
  } else showForm(false);
  return { open, close, toggle: () => (isOpen ? close() : open()) };
}
