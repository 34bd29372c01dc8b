// One LiveQuery WebSocket for the whole app (Parse's LiveQuery protocol on the server's
// URL): queries subscribe with the user's session token and receive `create`, `update`,
// `enter`, `leave` and `delete` events. When the connection drops (a server restart, a
// network change) it reconnects with backoff, subscribes again, and tells every
// subscription `onReconnect` so its view can catch up on what it missed with one query.

export class Live {
  constructor(api) {
    this.api = api;
    this.socket = null;
    this.subscriptions = new Map();
    this.nextRequestId = 1;
    this.connected = false;
    this.attempt = 0;
    this.timer = null;
    this.closed = true;
    this.statusListeners = new Set();
    this.wasConnected = false;
  }

  /** `listener(state)` with state 'connecting', 'open' or 'offline'; returns an unsubscribe. */
  onStatus(listener) {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  setStatus(state) {
    for (const listener of this.statusListeners) listener(state);
  }

  start() {
    this.closed = false;
    if (!this.socket) this.open();
  }

  /** Closes the connection for good (log-out): subscriptions are dropped. */
  stop() {
    this.suspend();
    this.subscriptions.clear();
    this.wasConnected = false;
  }

  /**
   * Closes the connection but keeps the subscriptions: `start()` opens it again, subscribes
   * them again and lets them catch up. Used while the session token changes (a password
   * change ends the old token, which the server would report as an error on this socket).
   */
  suspend() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
    this.connected = false;
  }

  open() {
    clearTimeout(this.timer);
    this.setStatus('connecting');
    let socket;
    try {
      socket = new WebSocket(this.api.liveUrl);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      const connect = { op: 'connect', applicationId: this.api.appId };
      if (this.api.javascriptKey) connect.javascriptKey = this.api.javascriptKey;
      if (this.api.token) connect.sessionToken = this.api.token;
      socket.send(JSON.stringify(connect));
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = () => {
      this.socket = null;
      if (this.connected) {
        for (const subscription of this.subscriptions.values()) subscription.onDisconnect?.();
      }
      this.connected = false;
      if (!this.closed) this.retry();
    };
    socket.onerror = () => {};
  }

  retry() {
    this.setStatus('offline');
    // 0.5 s, 1 s, 2 s … 8 s, with jitter so a restarted server is not hit all at once.
    const delay = Math.min(8000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.open(), delay);
  }

  receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    switch (message.op) {
      case 'connected': {
        this.connected = true;
        this.attempt = 0;
        this.setStatus('open');
        const reconnected = this.wasConnected;
        this.wasConnected = true;
        for (const subscription of this.subscriptions.values()) {
          // Caught up once the server has the subscription again: what changes after that
          // comes as events, what changed before is in the catch-up query.
          subscription.catchUp = reconnected;
          this.sendSubscribe(subscription);
        }
        break;
      }
      case 'subscribed': {
        const subscription = this.subscriptions.get(message.requestId);
        if (subscription?.catchUp) {
          subscription.catchUp = false;
          subscription.onReconnect?.();
        }
        break;
      }
      case 'create':
      case 'update':
      case 'enter':
      case 'leave':
      case 'delete': {
        const subscription = this.subscriptions.get(message.requestId);
        subscription?.onEvent?.(message.op, message.object, message.original);
        break;
      }
      case 'error':
        if (message.code === 209) this.api.onSessionEnded();
        if (message.requestId) this.subscriptions.get(message.requestId)?.onError?.(message);
        break;
      default:
        break;
    }
  }

  sendSubscribe(subscription) {
    if (!this.connected || !this.socket) return;
    const query = { className: subscription.className, where: subscription.where };
    const frame = { op: 'subscribe', requestId: subscription.requestId, query };
    if (this.api.token) frame.sessionToken = this.api.token;
    this.socket.send(JSON.stringify(frame));
  }

  /**
   * Subscribes to `className` objects matching `where`. `handlers`: `onEvent(op, object)`,
   * `onDisconnect()` (the connection dropped), `onReconnect()` (subscribed again: time to
   * catch up), `onError(frame)`. Returns a function that unsubscribes.
   */
  subscribe(className, where, handlers) {
    const requestId = this.nextRequestId++;
    const subscription = { requestId, className, where, ...handlers };
    this.subscriptions.set(requestId, subscription);
    this.sendSubscribe(subscription);
    return () => {
      this.subscriptions.delete(requestId);
      if (this.connected && this.socket) {
        this.socket.send(JSON.stringify({ op: 'unsubscribe', requestId }));
      }
    };
  }
}
