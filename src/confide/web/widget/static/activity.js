// Confide Visitor Activity: the page trail (address, title, referrer, time on page) while a chat is
// possible. Imported by app.js only, so never before the visitor opened the chat; it reports only
// while this tab holds a visitor token (a chat was started), which goes in the body, never in the
// URL. The server stores a report only if the visitor consented to activity tracking or the site
// documented a legitimate interest; otherwise it answers {stored: false} and keeps nothing.
// SPA navigation (history.pushState, popstate) is a page view; the time on a page is sent with the
// next view, or by a beacon on pagehide. Nothing is written to browser storage. Once the server
// says it keeps nothing ({stored: false}), this page load reports no more.

let cur = null;
let done = null; // the token this page load stopped reporting for (no basis, or expired)

export function track({ api, token }) {
  if (!token || cur?.token === token || done === token) return;
  stop();
  const endpoint = api + '/activity';
  let viewId = null, since = Date.now(), lastUrl = null, seq = 0, dead = false;
  const secs = () => Math.max(0, Math.min(86400, Math.round((Date.now() - since) / 1000)));
  const cut = (s, n) => (typeof s === 'string' && s.length <= n ? s : '');
  // text/plain: a simple cross-origin request (no preflight), and what a beacon sends.
  const post = (body, beacon) => {
    const text = JSON.stringify({ token, ...body });
    if (beacon && navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(endpoint, text)) return Promise.resolve(null);
      } catch {}
    }
    return fetch(endpoint, { method: 'POST', credentials: 'omit', keepalive: !!beacon, headers: { 'content-type': 'text/plain' }, body: text })
      .then((r) => {
        if (r.status === 401) end(); // the token expired: the chat is over for this tab
        return r.ok ? r.json() : null;
      })
      .catch(() => null);
  };
  const view = () => {
    if (dead) return;
    const url = location.href;
    if (url === lastUrl || url.length > 2048) return;
    const body = { type: 'view', url, title: String(document.title || '').trim().slice(0, 300), referrer: cut(lastUrl ?? document.referrer, 2048) };
    if (viewId) body.previous = { view_id: viewId, seconds: secs() };
    lastUrl = url;
    viewId = null;
    since = Date.now();
    const mine = ++seq;
    post(body).then((j) => {
      if (j && j.stored === false) return end(); // no basis to keep pages: stop asking on this page
      if (mine === seq && j && j.view_id) viewId = j.view_id;
    });
  };
  const hide = () => {
    if (viewId) post({ type: 'left', previous: { view_id: viewId, seconds: secs() } }, true);
    viewId = null;
  };
  const show = (e) => {
    if (e.persisted) {
      lastUrl = null; // back from the back-forward cache: the page is seen again
      view();
    }
  };
  const soon = () => setTimeout(view, 0); // after the page changed its title
  const push = history.pushState;
  const patched = function (...args) {
    const r = push.apply(this, args);
    soon();
    return r;
  };
  history.pushState = patched;
  addEventListener('popstate', soon);
  addEventListener('pagehide', hide);
  addEventListener('pageshow', show);
  const self = {
    token,
    stop() {
      dead = true;
      if (history.pushState === patched) history.pushState = push;
      removeEventListener('popstate', soon);
      removeEventListener('pagehide', hide);
      removeEventListener('pageshow', show);
    },
  };
  // This tracker only (a late answer to an older one must not stop a newer one).
  function end() {
    done = token;
    self.stop();
    if (cur === self) cur = null;
  }
  cur = self;
  view(); // the page the chat starts on (or is resumed on)
}

export function stop() {
  cur?.stop();
  cur = null;
}
