// The operator socket with reconnection: exponential backoff from 0.5 s to 10 s with jitter, a
// keep-alive ping, and a check of the session when the server refuses the upgrade.

const MIN_DELAY = 500;
const MAX_DELAY = 10_000;
const PING_EVERY = 25_000;
const SILENCE_LIMIT = 40_000;
const REVOKED = 4403;

export class Connection {
  /**
   * handlers: onFrame(frame), onOpen(), onDown(willRetry), onSessionEnded()
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.lastHeard = 0;
    this.stopped = false;
    window.addEventListener('online', () => this.retryNow());
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
  }

  /** Send a frame now; false when the socket is not open (the caller keeps it for later). */
  send(frame) {
    if (!this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  retryNow() {
    if (this.stopped || this.isOpen || (this.ws && this.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.timer);
    this.#connect();
  }

  #connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      this.attempt = 0;
      this.lastHeard = Date.now();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.#keepAlive(), PING_EVERY);
      this.handlers.onOpen();
    });
    ws.addEventListener('message', (event) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === 'string') this.handlers.onFrame(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      clearInterval(this.pinger);
      this.ws = null;
      if (this.stopped) return;
      if (event.code === REVOKED) {
        this.handlers.onSessionEnded();
        return;
      }
      this.handlers.onDown(true);
      if (!opened) {
        // A refused upgrade looks like a network error: ask whether the session still holds.
        this.#checkSession().then((ok) => {
          if (ok) this.#schedule();
          else this.handlers.onSessionEnded();
        });
      } else {
        this.#schedule();
      }
    });
  }

  #keepAlive() {
    if (!this.isOpen) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT) {
      this.ws.close(4000); // half-open: start over
      return;
    }
    this.send({ type: 'ping' });
  }

  #schedule() {
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.#connect(), delay);
  }

  async #checkSession() {
    try {
      const response = await fetch('/api/v1/auth/me', { credentials: 'same-origin', cache: 'no-store' });
      return response.status !== 401;
    } catch {
      return true; // the network is down: keep trying
    }
  }
}
