// mysqljs's API (createConnection, createPool, query with `?`, `??` and `SET ?`) over native
// connect, query and release. Formatting and escaping follow mysqljs's sqlstring; results get
// mysqljs's type casts (numbers, DATETIME as Date, binary columns as Buffer, JSON as text).
(function (native, host) {
  'use strict';
  const NUMBERS = [0, 1, 2, 3, 4, 5, 8, 9, 13, 246];
  const DATETIMES = [7, 12];
  const DATES = [10, 14];
  const noop = () => {};

  const ESCAPES = { '\0': '\\0', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\x1a': '\\Z', '"': '\\"', "'": "\\'", '\\': '\\\\' };
  const quote = (s) => "'" + s.replace(/[\0\b\t\n\r\x1a"'\\]/g, (c) => ESCAPES[c]) + "'";
  const escapeId = (v) => {
    if (Array.isArray(v)) return v.map(escapeId).join(', ');
    return '`' + String(v).replace(/`/g, '``').replace(/\./g, '`.`') + '`';
  };
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  const dateString = (d) => isNaN(d.getTime()) ? 'NULL' :
    "'" + d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
    pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + '.' +
    pad(d.getUTCMilliseconds(), 3) + "'";
  const escape = (v, stringifyObjects) => {
    if (v === undefined || v === null) return 'NULL';
    switch (typeof v) {
      case 'boolean': return v ? 'true' : 'false';
      case 'number': case 'bigint': return String(v);
      case 'object':
        if (v instanceof Date) return dateString(v);
        if (v instanceof Uint8Array) return "X'" + Buffer.from(v).toString('hex') + "'";
        if (Array.isArray(v)) return v.map((x) => Array.isArray(x) ? '(' + escape(x) + ')' : escape(x, true)).join(', ');
        if (typeof v.toSqlString === 'function') return String(v.toSqlString());
        if (stringifyObjects) return quote(String(v));
        // `SET ?` and `WHERE ?`: key = value pairs.
        return Object.keys(v).filter((k) => typeof v[k] !== 'function')
          .map((k) => escapeId(k) + ' = ' + escape(v[k], true)).join(', ');
      default: return quote(String(v));
    }
  };
  const format = (sql, values) => {
    if (values === undefined || values === null) return sql;
    if (!Array.isArray(values)) values = [values];
    let i = 0;
    return sql.replace(/\?+/g, (m) => {
      if (m.length > 2 || i >= values.length) return m;
      const v = values[i++];
      return m === '??' ? escapeId(v) : escape(v);
    });
  };

  const cast = (v, f, binary) => {
    if (v === null) return null;
    if (binary) return Buffer.from(v, 'hex');
    if (NUMBERS.includes(f.type)) return Number(v);
    if (DATETIMES.includes(f.type)) return new Date(v.replace(' ', 'T') + 'Z');
    if (DATES.includes(f.type)) return new Date(v + 'T00:00:00Z');
    return v;
  };
  const shapeSet = (set, nestTables) => {
    if (set.ok) return { value: set.ok, fields: undefined };
    const rows = set.rows.map((cells) => {
      const row = {};
      cells.forEach((v, i) => {
        const f = set.fields[i];
        const value = cast(v, f, set.binary[i]);
        if (nestTables === true) (row[f.table] = row[f.table] || {})[f.name] = value;
        else row[f.name] = value;
      });
      return row;
    });
    return { value: rows, fields: set.fields };
  };
  // query(sql, values?, cb?) or query({ sql, values, nestTables }, values?, cb?)
  const queryArgs = (sql, values, cb) => {
    if (typeof values === 'function') { cb = values; values = undefined; }
    let options = {};
    if (sql !== null && typeof sql === 'object') {
      options = sql;
      if (values === undefined) values = sql.values;
      sql = sql.sql;
    }
    return { sql: format(String(sql), values), nestTables: options.nestTables, cb };
  };

  class Connection {
    constructor(config) {
      this.config = config === undefined ? {} : config;
      this.state = 'disconnected';
      this._ready = null;
      this._tail = Promise.resolve();
      this._closed = false;
      this._listeners = {};
    }
    _connect() {
      if (!this._ready) {
        this._ready = native.connect(this.config).then((h) => { this._handle = h; this.state = 'authenticated'; return h; });
        this._ready.catch(noop);
      }
      return this._ready;
    }
    // Operations of one connection run one after another, as on mysqljs's socket.
    _queue(work) {
      const p = this._tail.then(() => this._connect()).then((h) => work(h));
      this._tail = p.then(noop, noop);
      return p;
    }
    connect(options, cb) {
      if (typeof options === 'function') cb = options;
      const p = this._connect();
      if (typeof cb === 'function') p.then(() => host.callback(cb, null), (e) => host.callback(cb, e));
    }
    query(sql, values, cb) {
      const q = queryArgs(sql, values, cb);
      const query = { sql: q.sql, on() { return query; } };
      if (this._closed) {
        const e = new Error('Cannot enqueue Query after invoking quit.');
        e.code = 'PROTOCOL_ENQUEUE_AFTER_QUIT';
        if (q.cb) Promise.resolve().then(() => host.callback(q.cb, e));
        return query;
      }
      this._queue((h) => native.query(h, q.sql)).then((sets) => {
        const shaped = sets.map((s) => shapeSet(s, q.nestTables));
        if (!q.cb) return;
        if (shaped.length === 1) host.callback(q.cb, null, shaped[0].value, shaped[0].fields);
        else host.callback(q.cb, null, shaped.map((s) => s.value), shaped.map((s) => s.fields));
      }, (e) => {
        e.sql = q.sql;
        if (q.cb) host.callback(q.cb, e);
        else if (!this._emit('error', e)) host.callback(() => { throw e; });
      });
      return query;
    }
    end(options, cb) {
      if (typeof options === 'function') cb = options;
      if (this._closed) return;
      this._closed = true;
      const done = this._ready
        ? this._tail.then(() => this._ready).then((h) => native.release(h, false)).then(noop, noop)
        : Promise.resolve();
      if (typeof cb === 'function') done.then(() => host.callback(cb, null));
    }
    destroy() {
      if (this._closed && !this._ready) return;
      this._closed = true;
      if (this._ready) this._ready.then((h) => native.release(h, true)).then(noop, noop);
    }
    release() { this.end(); }
    escape(v) { return escape(v); }
    escapeId(v) { return escapeId(v); }
    format(sql, values) { return format(sql, values); }
    on(event, fn) { (this._listeners[event] = this._listeners[event] || []).push(fn); return this; }
    _emit(event, ...args) {
      const fns = this._listeners[event] || [];
      for (const fn of fns) host.callback(fn, ...args);
      return fns.length > 0;
    }
  }

  class Pool {
    constructor(config) { this.config = config === undefined ? {} : config; }
    getConnection(cb) {
      const c = new Connection(this.config.connectionConfig || this.config);
      c._connect().then(() => host.callback(cb, null, c), (e) => host.callback(cb, e));
    }
    query(sql, values, cb) {
      if (typeof values === 'function') { cb = values; values = undefined; }
      const c = new Connection(this.config.connectionConfig || this.config);
      return c.query(sql, values, (err, results, fields) => {
        c.end();
        if (cb) host.callback(cb, err, results, fields);
      });
    }
    end(cb) { if (typeof cb === 'function') Promise.resolve().then(() => host.callback(cb, null)); }
    on() { return this; }
    escape(v) { return escape(v); }
    escapeId(v) { return escapeId(v); }
  }

  return {
    createConnection: (config) => new Connection(config),
    createPool: (config) => new Pool(config),
    escape: (v) => escape(v),
    escapeId: (v) => escapeId(v),
    format: (sql, values) => format(sql, values),
    raw: (sql) => ({ toSqlString: () => sql }),
  };
});
