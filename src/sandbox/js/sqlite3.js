// node-sqlite3's API over native open/exec/run/all/close. Every operation of one database runs
// in the order it was issued (as `db.serialize()` promises), each on the blocking pool.
(function (native, host) {
  'use strict';
  const BLOB = '__customdb_blob';
  const noop = () => {};

  const encode = (v) => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (v instanceof Date) return v.getTime();
    if (v instanceof Uint8Array) return { [BLOB]: Buffer.from(v).toString('hex') };
    if (typeof v === 'number' || typeof v === 'string') return v;
    if (typeof v === 'bigint') return Number(v);
    return String(v);
  };
  const decode = (row) => {
    if (!row) return row;
    for (const k of Object.keys(row)) {
      const v = row[k];
      if (v !== null && typeof v === 'object' && BLOB in v) row[k] = Buffer.from(v[BLOB], 'hex');
    }
    return row;
  };
  // (sql, [params...], [callback]) as node-sqlite3 accepts them: an array, an object of named
  // parameters, or the values themselves.
  const split = (args) => {
    args = Array.prototype.slice.call(args);
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    return { cb, params: params(args) };
  };
  const params = (args) => {
    if (args.length === 0) return undefined;
    const first = args[0];
    if (args.length === 1 && Array.isArray(first)) return first.map(encode);
    if (args.length === 1 && first !== null && typeof first === 'object' &&
        !(first instanceof Date) && !(first instanceof Uint8Array)) {
      const named = {};
      for (const k of Object.keys(first)) named[/^[$:@?]/.test(k) ? k : '$' + k] = encode(first[k]);
      return named;
    }
    return args.map(encode);
  };

  class Database {
    constructor(filename, mode, callback) {
      if (typeof mode === 'function') { callback = mode; mode = undefined; }
      this.filename = String(filename);
      this.open = false;
      this._listeners = {};
      this._ready = native.open(this.filename, mode === undefined ? 6 : mode);
      this._tail = this._ready.then(noop, noop);
      this._ready.then(() => {
        this.open = true;
        if (callback) host.callWith(callback, this, null);
        this._emit('open');
      }, (err) => {
        if (callback) host.callWith(callback, this, err);
        else this._fail(err);
      });
      this._ready.catch(noop);
    }
    on(event, fn) { (this._listeners[event] = this._listeners[event] || []).push(fn); return this; }
    once(event, fn) { return this.on(event, fn); }
    _emit(event, ...args) {
      const fns = this._listeners[event] || [];
      for (const fn of fns) host.callWith(fn, this, ...args);
      return fns.length > 0;
    }
    // An error nobody asked to hear about is an uncaught exception, as Node's 'error' event.
    _fail(err) { if (!this._emit('error', err)) host.callback(() => { throw err; }); }
    // Queues `work(handle)`; `done(err, value)` runs when it settles.
    _queue(work, done) {
      const step = () => this._ready.then((h) => work(h));
      const p = this._tail.then(step);
      this._tail = p.then(noop, noop);
      p.then((v) => done(null, v), (e) => done(e));
      return this;
    }
    run(sql, ...rest) {
      const { cb, params } = split(rest);
      return this._queue((h) => native.run(h, String(sql), params), (err, info) => {
        const stmt = new Statement(this, sql);
        if (info) { stmt.lastID = info.lastID; stmt.changes = info.changes; }
        if (cb) host.callWith(cb, stmt, err); else if (err) this._fail(err);
      });
    }
    all(sql, ...rest) {
      const { cb, params } = split(rest);
      return this._queue((h) => native.all(h, String(sql), params), (err, rows) => {
        if (cb) host.callWith(cb, this, err, err ? undefined : rows.map(decode));
        else if (err) this._fail(err);
      });
    }
    get(sql, ...rest) {
      const { cb, params } = split(rest);
      return this._queue((h) => native.all(h, String(sql), params), (err, rows) => {
        if (cb) host.callWith(cb, this, err, err ? undefined : decode(rows[0]));
        else if (err) this._fail(err);
      });
    }
    each(sql, ...rest) {
      rest = rest.slice();
      let complete;
      if (typeof rest[rest.length - 1] === 'function' && typeof rest[rest.length - 2] === 'function') {
        complete = rest.pop();
      }
      const { cb, params } = split(rest);
      return this._queue((h) => native.all(h, String(sql), params), (err, rows) => {
        if (err) {
          if (cb) host.callWith(cb, this, err); else this._fail(err);
          if (complete) host.callWith(complete, this, err);
          return;
        }
        for (const row of rows) if (cb) host.callWith(cb, this, null, decode(row));
        if (complete) host.callWith(complete, this, null, rows.length);
      });
    }
    exec(sql, cb) {
      return this._queue((h) => native.exec(h, String(sql)), (err) => {
        if (cb) host.callWith(cb, this, err); else if (err) this._fail(err);
      });
    }
    prepare(sql, ...rest) {
      const stmt = new Statement(this, sql);
      const { cb, params } = split(rest);
      stmt._params = params;
      if (cb) this._queue(() => null, (err) => host.callWith(cb, stmt, err));
      return stmt;
    }
    close(cb) {
      return this._queue((h) => native.close(h), (err) => {
        if (!err) { this.open = false; this._emit('close'); }
        if (cb) host.callWith(cb, this, err); else if (err) this._fail(err);
      });
    }
    serialize(fn) { if (typeof fn === 'function') fn(); return this; }
    parallelize(fn) { if (typeof fn === 'function') fn(); return this; }
    configure() { return this; }
  }

  class Statement {
    constructor(db, sql) { this._db = db; this.sql = String(sql); this._params = undefined; }
    bind(...rest) {
      const { cb, params } = split(rest);
      this._params = params;
      if (cb) this._db._queue(() => null, (err) => host.callWith(cb, this, err));
      return this;
    }
    _with(rest) {
      const { cb, params } = split(rest);
      return { cb, params: params === undefined ? this._params : params };
    }
    run(...rest) {
      const { cb, params } = this._with(rest);
      this._db._queue((h) => native.run(h, this.sql, params), (err, info) => {
        if (info) { this.lastID = info.lastID; this.changes = info.changes; }
        if (cb) host.callWith(cb, this, err); else if (err) this._db._fail(err);
      });
      return this;
    }
    all(...rest) {
      const { cb, params } = this._with(rest);
      this._db.all(this.sql, params === undefined ? [] : params, cb);
      return this;
    }
    get(...rest) {
      const { cb, params } = this._with(rest);
      this._db.get(this.sql, params === undefined ? [] : params, cb);
      return this;
    }
    each(...rest) {
      const { cb, params } = this._with(rest);
      this._db.each(this.sql, params === undefined ? [] : params, cb);
      return this;
    }
    reset(cb) { if (cb) this._db._queue(() => null, (err) => host.callWith(cb, this, err)); return this; }
    finalize(cb) { return this.reset(cb); }
  }

  const sqlite3 = {
    Database,
    Statement,
    OPEN_READONLY: 1,
    OPEN_READWRITE: 2,
    OPEN_CREATE: 4,
    OPEN_FULLMUTEX: 0x10000,
    OPEN_SHAREDCACHE: 0x20000,
    OPEN_PRIVATECACHE: 0x40000,
    OPEN_URI: 0x40,
    cached: { Database },
  };
  sqlite3.verbose = () => sqlite3;
  return sqlite3;
});
