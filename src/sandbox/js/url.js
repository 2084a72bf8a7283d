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

});
