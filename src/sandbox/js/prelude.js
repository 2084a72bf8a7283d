// The JavaScript half of the sandbox's globals. It is evaluated once per engine context as a
// function expression that receives the native helpers, so no helper is ever reachable from
// the global object. Everything here is plain JavaScript over those natives.
(function (native) {
  'use strict';
  const G = globalThis;
  const define = (name, value) =>
    Object.defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });

  // --- The three error constructors Auth0 injects (notes/auth0-custom-db.md §1.9). ---
  class WrongUsernameOrPasswordError extends Error {
    constructor(user_id, message) {
      super(message);
      this.name = 'WrongUsernameOrPasswordError';
      this.code = 'wrongusernameorpassword';
      this.user_id = user_id;
      this.statusCode = 400;
    }
  }
  class ValidationError extends Error {
    constructor(code, message) {
      super(message);
      this.name = 'ValidationError';
      this.code = code;
      this.description = message;
      this.statusCode = 400;
    }
  }
  class UnauthorizedError extends Error {
    constructor(message) {
      super(message);
      this.name = 'UnauthorizedError';
      this.code = 'unauthorized';
      this.description = message;
      this.statusCode = 401;
    }
  }
  define('WrongUsernameOrPasswordError', WrongUsernameOrPasswordError);
  define('ValidationError', ValidationError);
  define('UnauthorizedError', UnauthorizedError);

  // --- Buffer: a Uint8Array subclass, as Node's is. Encoding work is native. ---
  const ENCODINGS = {
    utf8: 'utf8', 'utf-8': 'utf8', hex: 'hex', base64: 'base64', base64url: 'base64url',
    latin1: 'latin1', binary: 'latin1', ascii: 'latin1',
    ucs2: 'utf16le', 'ucs-2': 'utf16le', utf16le: 'utf16le', 'utf-16le': 'utf16le',
  };
  const encodingOf = (e) => {
    if (e === undefined || e === null) return 'utf8';
    const k = ENCODINGS[String(e).toLowerCase()];
    if (!k) throw new TypeError('Unknown encoding: ' + e);
    return k;
  };
  const sizeOf = (n) => {
    if (typeof n !== 'number' || !(n >= 0) || n !== Math.floor(n)) {
      throw new RangeError('The argument "size" must be a non-negative integer. Received ' + n);
    }
    return n;
  };
  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === 'string') return new Buffer(native.encode(value, encodingOf(encodingOrOffset)));
      if (value instanceof ArrayBuffer) {
        const offset = encodingOrOffset === undefined ? 0 : encodingOrOffset;
        return new Buffer(value, offset, length === undefined ? value.byteLength - offset : length);
      }
      if (ArrayBuffer.isView(value) || Array.isArray(value)) {
        const out = new Buffer(value.length);
        for (let i = 0; i < value.length; i++) out[i] = value[i] & 255;
        return out;
      }
      if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
      throw new TypeError('The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.');
    }
    static alloc(size, fill, encoding) {
      const out = new Buffer(sizeOf(size));
      if (fill !== undefined && fill !== 0) out.fill(fill, 0, out.length, encoding);
      return out;
    }
    static allocUnsafe(size) { return new Buffer(sizeOf(size)); }
    static isBuffer(value) { return value instanceof Buffer; }
    static isEncoding(e) { return typeof e === 'string' && ENCODINGS[e.toLowerCase()] !== undefined; }
    static byteLength(value, encoding) {
      if (typeof value === 'string') return native.encode(value, encodingOf(encoding)).byteLength;
      return value.byteLength;
    }
    static concat(list, totalLength) {
      if (!Array.isArray(list)) throw new TypeError('The "list" argument must be an instance of Array.');
      const total = totalLength === undefined ? list.reduce((n, b) => n + b.length, 0) : sizeOf(totalLength);
      const out = Buffer.alloc(total);
      let at = 0;
      for (const b of list) {
        if (at >= total) break;
        const part = b.length > total - at ? b.subarray(0, total - at) : b;
        out.set(part, at);
        at += part.length;
      }
      return out;
    }
    static compare(a, b) { return a.compare(b); }
    toString(encoding, start, end) {
      const s = start === undefined ? 0 : Math.max(0, start | 0);
      const e = end === undefined ? this.length : Math.min(this.length, end | 0);
      if (e <= s) return '';
      return native.decode(this.subarray(s, e), encodingOf(encoding));
    }
    toJSON() { return { type: 'Buffer', data: Array.from(this) }; }
    equals(other) {
      if (!(other instanceof Uint8Array)) throw new TypeError('The "otherBuffer" argument must be an instance of Buffer or Uint8Array.');
      return this.compare(other) === 0;
    }
    compare(other) {
      const n = Math.min(this.length, other.length);
      for (let i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1;
      return this.length === other.length ? 0 : this.length < other.length ? -1 : 1;
    }
    slice(start, end) { return this.subarray(start, end); }
    fill(value, offset, end, encoding) {
      if (typeof offset === 'string') { encoding = offset; offset = 0; end = this.length; }
      if (typeof value === 'string') {
        const bytes = Buffer.from(value, encoding);
        const from = offset === undefined ? 0 : offset;
        const to = end === undefined ? this.length : end;
        if (bytes.length === 0) return Uint8Array.prototype.fill.call(this, 0, from, to);
        for (let i = from, j = 0; i < to; i++, j = (j + 1) % bytes.length) this[i] = bytes[j];
        return this;
      }
      return Uint8Array.prototype.fill.call(this, value, offset, end);
    }
    write(string, offset, length, encoding) {
      if (typeof offset === 'string') { encoding = offset; offset = 0; length = undefined; }
      if (typeof length === 'string') { encoding = length; length = undefined; }
      const at = offset === undefined ? 0 : offset;
      const bytes = Buffer.from(string, encoding);
      const n = Math.min(bytes.length, this.length - at, length === undefined ? Infinity : length);
      this.set(bytes.subarray(0, n), at);
      return n;
    }
    copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
      const part = this.subarray(sourceStart, Math.min(sourceEnd, sourceStart + target.length - targetStart));
      target.set(part, targetStart);
      return part.length;
    }
    indexOf(value, from) {
      if (typeof value === 'number') return Uint8Array.prototype.indexOf.call(this, value, from);
      const needle = typeof value === 'string' ? Buffer.from(value) : value;
      outer: for (let i = from === undefined ? 0 : from; i <= this.length - needle.length; i++) {
        for (let j = 0; j < needle.length; j++) if (this[i + j] !== needle[j]) continue outer;
        return i;
      }
      return -1;
    }
    includes(value, from) { return this.indexOf(value, from) !== -1; }
    readUInt8(o = 0) { return this[o]; }
    readUInt16BE(o = 0) { return (this[o] << 8) | this[o + 1]; }
    readUInt32BE(o = 0) { return ((this[o] << 24) >>> 0) + ((this[o + 1] << 16) | (this[o + 2] << 8) | this[o + 3]); }
    writeUInt8(v, o = 0) { this[o] = v; return o + 1; }
    writeUInt32BE(v, o = 0) { this[o] = v >>> 24; this[o + 1] = v >>> 16; this[o + 2] = v >>> 8; this[o + 3] = v; return o + 4; }
  }
  define('Buffer', Buffer);

  // --- WHATWG encoding and base64 helpers. ---
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input = '') { return new Uint8Array(native.encode(String(input), 'utf8')); }
  }
  class TextDecoder {
    constructor(label = 'utf-8', options = {}) {
      const l = String(label).toLowerCase();
      if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') throw new RangeError('The "' + label + '" encoding is not supported');
      this.fatal = !!options.fatal;
    }
    get encoding() { return 'utf-8'; }
    decode(input) {
      if (input === undefined) return '';
      const view = input instanceof ArrayBuffer ? new Uint8Array(input)
        : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
      return native.decodeUtf8(view, this.fatal);
    }
  }
  define('TextEncoder', TextEncoder);
  define('TextDecoder', TextDecoder);
  define('btoa', function btoa(data) {
    const s = String(data);
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 255) throw new Error('InvalidCharacterError: Invalid character');
    }
    return native.decode(new Uint8Array(native.encode(s, 'latin1')), 'base64');
  });
  define('atob', function atob(data) {
    const s = String(data).replace(/[\t\n\f\r ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) throw new Error('InvalidCharacterError: The string to be decoded is not correctly encoded.');
    return native.decode(new Uint8Array(native.encode(s, 'base64')), 'latin1');
  });

  // --- URLSearchParams and URL (parsing is native, WHATWG rules via the url crate). ---
  const formEncode = (s) => encodeURIComponent(s).replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()).replace(/%20/g, '+');
  const formDecode = (s) => {
    const t = s.replace(/\+/g, ' ');
    try { return decodeURIComponent(t); } catch (e) { return t; }
  };
  const OWNER = Symbol('url');
  class URLSearchParams {
    constructor(init) {
      this._list = [];
      if (init === undefined || init === null) return;
      if (typeof init === 'object' && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) this._list.push([String(pair[0]), String(pair[1])]);
      } else if (typeof init === 'object') {
        for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
      } else {
        this._parse(String(init));
      }
    }
    _parse(s) {
      this._list = [];
      for (const part of (s[0] === '?' ? s.slice(1) : s).split('&')) {
        if (part === '') continue;
        const eq = part.indexOf('=');
        this._list.push(eq === -1 ? [formDecode(part), ''] : [formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1))]);
      }
    }
    _update() { if (this[OWNER]) this[OWNER]._setSearch(this.toString()); }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k) { this._list = this._list.filter((p) => p[0] !== String(k)); this._update(); }
    get(k) { const p = this._list.find((q) => q[0] === String(k)); return p ? p[1] : null; }
    getAll(k) { return this._list.filter((p) => p[0] === String(k)).map((p) => p[1]); }
    has(k) { return this._list.some((p) => p[0] === String(k)); }
    set(k, v) {
      const key = String(k);
      const i = this._list.findIndex((p) => p[0] === key);
      if (i === -1) this._list.push([key, String(v)]);
      else { this._list[i][1] = String(v); this._list = this._list.filter((p, j) => j <= i || p[0] !== key); }
      this._update();
    }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._update(); }
    forEach(fn, thisArg) { for (const [k, v] of this._list) fn.call(thisArg, v, k, this); }
    keys() { return this._list.map((p) => p[0])[Symbol.iterator](); }
    values() { return this._list.map((p) => p[1])[Symbol.iterator](); }
    entries() { return this._list.map((p) => [p[0], p[1]])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map((p) => formEncode(p[0]) + '=' + formEncode(p[1])).join('&'); }
  }
  const URL_FIELDS = ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'];
  class URL {
    constructor(input, base) {
      this._parts = native.parseUrl(String(input), base === undefined ? undefined : String(base));
      this._params = new URLSearchParams(this._parts.search);
      this._params[OWNER] = this;
    }
    static canParse(input, base) { try { new URL(input, base); return true; } catch (e) { return false; } }
    _set(field, value) {
      this._parts = native.setUrl(this._parts.href, field, String(value));
      if (field !== 'search') { this._params._parse(this._parts.search); }
    }
    _setSearch(s) { this._parts = native.setUrl(this._parts.href, 'search', s); }
    get searchParams() { return this._params; }
    toString() { return this._parts.href; }
    toJSON() { return this._parts.href; }
  }
  for (const f of URL_FIELDS) {
    Object.defineProperty(URL.prototype, f, {
      get() { return this._parts[f]; },
      set(v) { if (f === 'origin') return; if (f === 'search') { this._set('search', v); this._params._parse(this._parts.search); } else this._set(f, v); },
      configurable: true,
    });
  }
  define('URLSearchParams', URLSearchParams);
  define('URL', URL);

  // --- Timers: ids are native; Node's Timeout object is mirrored for ref/unref chains. ---
  class Timeout {
    constructor(id) { this._id = id; }
    ref() { return this; }
    unref() { return this; }
    hasRef() { return true; }
    [Symbol.toPrimitive]() { return this._id; }
  }
  const idOf = (t) => (t instanceof Timeout ? t._id : Number(t));
  define('setTimeout', function setTimeout(fn, ms, ...args) { return new Timeout(native.setTimeout(fn, ms, args)); });
  define('clearTimeout', function clearTimeout(t) { if (t !== undefined && t !== null) native.clearTimeout(idOf(t)); });
  define('setImmediate', function setImmediate(fn, ...args) { return new Timeout(native.setTimeout(fn, 0, args)); });
  define('clearImmediate', function clearImmediate(t) { if (t !== undefined && t !== null) native.clearTimeout(idOf(t)); });
});
