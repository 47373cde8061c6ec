// Small DOM helpers shared by the console modules. Data is only ever set with textContent or
// attributes: nothing here parses HTML.

/**
 * Create an element. attrs: `class`, `text` (textContent), `hidden`, `on` ({event: handler}),
 * `dataset` ({key: value}); anything else becomes an attribute (null/false leave it out).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'hidden') el.hidden = Boolean(value);
    else if (key === 'on') for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (key === 'dataset') for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * Keep `container`'s children in the order of `items`, reusing elements by key.
 * create(item) -> Element; update(el, item) refreshes it (called for new and kept elements).
 */
export function reconcile(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of container.children) if (child.dataset.key) existing.set(child.dataset.key, child);
  let index = 0;
  for (const item of items) {
    const key = String(keyOf(item));
    let el = existing.get(key);
    if (el) existing.delete(key);
    else {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    const at = container.children[index];
    if (at !== el) container.insertBefore(el, at || null);
    index += 1;
  }
  for (const el of existing.values()) el.remove();
}

/** 128 random bits, URL-safe base64 (works without a secure context, unlike randomUUID). */
export function randomId(prefix = '') {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return prefix + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function parseTime(iso) {
  const t = Date.parse(iso || '');
  return Number.isNaN(t) ? null : t;
}

/** "14:05" today, "29 Nov 2026, 14:05" otherwise. */
export function formatTime(iso) {
  const t = parseTime(iso);
  if (t === null) return '';
  const d = new Date(t);
  return dayFmt.format(d) === dayFmt.format(new Date()) ? clockFmt.format(d) : fullFmt.format(d);
}

export function formatFull(iso) {
  const t = parseTime(iso);
  return t === null ? '' : fullFmt.format(new Date(t));
}

/** A waiting time: "12 s", "4 min", "1 h 05 min". */
export function formatWait(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${String(m % 60).padStart(2, '0')} min`;
}

/** A visitor-supplied URL we may link to (http/https only), else null. */
export function safeHttpUrl(value) {
  if (typeof value !== 'string' || !value) return null;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

export function humanize(key) {
  const text = String(key).replace(/_/g, ' ').trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function initial(name) {
  const ch = (name || '?').trim().charAt(0);
  return ch ? ch.toUpperCase() : '?';
}

const URLS = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Text with its http(s) links as <a> elements (DOM calls only; nothing else becomes a link). */
export function linkify(text) {
  const out = [];
  let at = 0;
  for (const match of String(text).matchAll(URLS)) {
    const raw = match[0].replace(/[.,;:!?)\]}]+$/, '');
    const href = safeHttpUrl(raw);
    if (!href) continue;
    out.push(text.slice(at, match.index), h('a', { href, text: raw, target: '_blank', rel: 'noopener noreferrer' }));
    at = match.index + raw.length;
  }
  out.push(String(text).slice(at));
  return out.filter((part) => part !== '');
}
