/* Confide launcher. Embed with:
 *   <script src="https://HOST/widget.js" data-site="SITE_KEY" data-color="#2563eb" data-position="right" async></script>
 * It only draws a button, in the site's colour and corner (data-color, data-position: from the first
 * paint, nothing fetched or stored). No storage writes and no requests until the visitor opens the chat;
 * the chat UI (/widget/app.js) is imported on demand and renders into the same shadow root.
 * Interface: (await import(app.js)).mount(shadowRoot, {base, siteKey, launcher, identity}) -> {open, close, toggle}
 * A logged-in visitor's identity, signed by the site: docs/privacy/verified-identity.md.
 */
(() => {
  const me = document.currentScript || document.querySelector('script[data-site]');
  const siteKey = me && me.dataset.site;
  if (!siteKey) return;
  const base = new URL(me.src, location.href).origin;
  const NS = 'http://www.w3.org/2000/svg';

  // A custom element name keeps page rules for div/span etc. off the host.
  const host = document.createElement('confide-widget');
  const root = host.attachShadow({ mode: 'open' });
  const accent = me.dataset.color;
  if (/^#[0-9a-f]{6}$/i.test(accent || '')) {
    // Black or white text on the accent, whichever contrasts more (WCAG relative luminance).
    const l = [1, 3, 5].map((i) => parseInt(accent.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    host.style.setProperty('--cf-a', accent);
    host.style.setProperty('--cf-f', 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2] > 0.18 ? '#111827' : '#fff');
  }
  if (me.dataset.position === 'left') host.setAttribute('data-pos', 'left');

  const css = `:host{all:initial}
.l{all:initial;box-sizing:border-box;position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;background:var(--cf-a,#1d4ed8);color:var(--cf-f,#fff);box-shadow:0 4px 14px rgba(0,0,0,.3);cursor:pointer;display:grid;place-items:center;transition:transform .15s}
:host([data-pos=left]) .l{right:auto;left:20px}
.l:hover{transform:scale(1.06)}
.l:focus-visible{outline:3px solid #111;outline-offset:3px;box-shadow:0 0 0 3px #fff}
.l svg{width:28px;height:28px;fill:currentColor}
.l[aria-expanded=true] .o,.l:not([aria-expanded=true]) .c{display:none}
.l[data-unread]::after{content:attr(data-unread);position:absolute;top:-3px;right:-3px;min-width:22px;height:22px;padding:0 4px;box-sizing:border-box;border-radius:11px;background:#b91c1c;color:#fff;font:700 14px/22px system-ui,sans-serif;text-align:center}
@media (prefers-reduced-motion:reduce){.l{transition:none}}`;
  // Constructable sheets are not blocked by a page's style-src CSP; <style> is the fallback.
  try {
    const s = new CSSStyleSheet();
    s.replaceSync(css);
    root.adoptedStyleSheets = [s];
  } catch {
    const s = document.createElement('style');
    s.textContent = css;
    root.append(s);
  }

  const icon = (cls, d) => {
    const svg = document.createElementNS(NS, 'svg');
    const p = document.createElementNS(NS, 'path');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', cls);
    p.setAttribute('d', d);
    svg.append(p);
    return svg;
  };
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'l';
  btn.dataset.confide = 'launcher';
  btn.setAttribute('aria-label', 'Chat with us');
  btn.setAttribute('aria-haspopup', 'dialog');
  btn.setAttribute('aria-expanded', 'false');
  btn.append(
    icon('o', 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-4h10v2H7zm0 8h7v2H7z'),
    icon('c', 'M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z'),
  );
  root.append(btn);

  // Verified identity (ADR 0022): Confide.identify({id, email, name, hash}) or
  // window.ConfideSettings.identity, kept in memory and read by the chat only once it is opened.
  let who = null;
  const identity = () => who || (window.ConfideSettings && window.ConfideSettings.identity) || null;
  window.Confide = Object.assign(window.Confide || {}, { identify: (i) => void (who = i || null) });

  let app, loading;
  const load = () =>
    (loading ||= import(base + '/widget/app.js')
      .then((m) => (app = m.mount(root, { base, siteKey, launcher: btn, identity })).open())
      .catch((e) => {
        loading = null; // let the next click retry
        btn.title = 'Chat could not be loaded';
        console.error('confide:', e);
      }));
  btn.addEventListener('click', () => (app ? app.toggle() : load()));

  const add = () => {
    document.body.append(host);
    // A chat started earlier in this tab: resume it (reading storage is allowed, writing is not).
    try {
      if (sessionStorage.getItem('confide:' + siteKey)) load();
    } catch {}
  };
  document.body ? add() : addEventListener('DOMContentLoaded', add);
})();
