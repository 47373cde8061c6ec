// Confide widget: the line that tells the visitor what the site masks in what they write
// (redaction at ingest, docs/privacy/redaction.md). Imported by app.js; builds text nodes only.

// Style for the shadow root (app.js appends it to its own CSS).
export const REDACTION_CSS = '.rn{margin:0 12px 6px;font-size:12.5px;color:#374151}';

// cfg.redaction: {cards, ibans, custom} from the widget config; h: app.js's element helper.
export function redactionNotice(cfg, h) {
  const r = cfg && cfg.redaction;
  if (!r || !(r.cards || r.ibans)) return ''; // an empty text node: nothing shown
  const what = r.cards && r.ibans ? 'Card numbers and IBANs' : r.cards ? 'Card numbers' : 'IBANs';
  return h('p', { class: 'rn', 'data-confide': 'redaction-notice' }, what + ' you type are masked before anyone sees them: only the last four characters are kept.');
}
