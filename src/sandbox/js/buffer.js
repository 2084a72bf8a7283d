// Loaded the first time a script touches one of the globals it defines (see
// bindings::LAZY_GLOBALS), so contexts that never use them do not pay for parsing it.
(function (native, exports) {
  'use strict';
  // The globals stay accessors (bindings::LAZY_GLOBALS): replacing a global accessor by a
  // data property while functions that read it are compiled broke those functions in boa.
  // A value the script assigned before this part ran stays the script's.
  const define = (name, value) => {
    if (!Object.prototype.hasOwnProperty.call(exports, name)) exports[name] = value;
  };

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

});
