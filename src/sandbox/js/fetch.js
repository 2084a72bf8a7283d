// The global fetch, Headers and Response (WHATWG shapes) over the native HTTP request, which
// applies the connection's egress allow-list. Loaded on first use (bindings::LAZY_GLOBALS).
(function (native, exports) {
  'use strict';
  // The globals stay accessors (bindings::LAZY_GLOBALS): replacing a global accessor by a
  // data property while functions that read it are compiled broke those functions in boa.
  // A value the script assigned before this part ran stays the script's.
  const define = (name, value) => {
    if (!Object.prototype.hasOwnProperty.call(exports, name)) exports[name] = value;
  };

  class Headers {
    constructor(init) {
      this._map = new Map();
      if (init === undefined || init === null) return;
      if (init instanceof Headers) init.forEach((v, k) => this.append(k, v));
      else if (Array.isArray(init)) init.forEach(([k, v]) => this.append(k, v));
      else Object.keys(init).forEach((k) => this.append(k, init[k]));
    }
    append(k, v) {
      k = String(k).toLowerCase();
      const old = this._map.get(k);
      this._map.set(k, old === undefined ? String(v) : old + ', ' + v);
    }
    set(k, v) { this._map.set(String(k).toLowerCase(), String(v)); }
    get(k) { const v = this._map.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    has(k) { return this._map.has(String(k).toLowerCase()); }
    delete(k) { this._map.delete(String(k).toLowerCase()); }
    forEach(fn, self) { for (const [k, v] of this._map) fn.call(self, v, k, this); }
    entries() { return this._map.entries(); }
    keys() { return this._map.keys(); }
    values() { return this._map.values(); }
    [Symbol.iterator]() { return this._map.entries(); }
  }

  const bodyOf = (body) => {
    if (body === undefined || body === null) return {};
    if (typeof body === 'string') return { bytes: Buffer.from(body), type: 'text/plain;charset=UTF-8' };
    if (body instanceof URLSearchParams) return { bytes: Buffer.from(body.toString()), type: 'application/x-www-form-urlencoded;charset=UTF-8' };
    if (body instanceof ArrayBuffer) return { bytes: Buffer.from(new Uint8Array(body)) };
    if (ArrayBuffer.isView(body)) return { bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
    return { bytes: Buffer.from(String(body)), type: 'text/plain;charset=UTF-8' };
  };

  class Response {
    constructor(r) {
      this.status = r.status;
      this.statusText = r.statusText;
      this.ok = r.status >= 200 && r.status < 300;
      this.url = r.url;
      this.redirected = r.redirected;
      this.type = 'basic';
      this.headers = new Headers(r.headers);
      this.bodyUsed = false;
      this._raw = r;
    }
    _bytes() {
      if (this.bodyUsed) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
      this.bodyUsed = true;
      const r = this._raw;
      return Promise.resolve(r.encoding === 'base64' ? Buffer.from(r.body, 'base64') : Buffer.from(r.body));
    }
    text() { return this._bytes().then((b) => b.toString('utf8')); }
    json() { return this.text().then((t) => JSON.parse(t)); }
    arrayBuffer() { return this._bytes().then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); }
    clone() { return new Response(this._raw); }
  }

  function fetch(input, init) {
    init = init || {};
    try {
      const url = input instanceof URL ? input.href : (input && typeof input === 'object' && input.url) ? input.url : String(input);
      const headers = new Headers(init.headers);
      const body = bodyOf(init.body);
      if (body.type && !headers.has('content-type')) headers.set('content-type', body.type);
      const request = {
        method: String(init.method || 'GET').toUpperCase(),
        url,
        headers: Array.from(headers),
        body: body.bytes ? body.bytes.toString('base64') : undefined,
        follow: init.redirect !== 'manual' && init.redirect !== 'error',
      };
      return native.request(request).then((r) => new Response(r), (e) => {
        const err = new TypeError('fetch failed');
        err.cause = e;
        throw err;
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  define('fetch', fetch);
  define('Headers', Headers);
  define('Response', Response);
});
