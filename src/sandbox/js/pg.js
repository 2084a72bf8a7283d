// node-postgres's API (legacy `pg.connect`, `Client`, `Pool`) over native connect, query and
// release. Values are prepared as node-postgres prepares them; results get its JavaScript
// types (dates as Date, bytea as Buffer, int8 and numeric as strings).
(function (native, host) {
  'use strict';
  const DATES = [1082, 1114, 1184];
  const BYTEA = 17;
  const parsers = {};

  const prepare = (v) => {
    if (v === undefined || v === null) return null;
    if (v instanceof Date) return v.toISOString();
    if (v instanceof Uint8Array) return '\\x' + Buffer.from(v).toString('hex');
    if (Array.isArray(v)) return arrayLiteral(v);
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  };
  const arrayLiteral = (a) => '{' + a.map((x) => {
    if (x === null || x === undefined) return 'NULL';
    if (Array.isArray(x)) return arrayLiteral(x);
    return '"' + String(prepare(x)).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }).join(',') + '}';
  const revive = (v, type) => {
    if (v === null) return null;
    if (parsers[type]) return parsers[type](typeof v === 'string' ? v : String(v));
    if (DATES.includes(type)) return new Date(v);
    if (type === BYTEA) return Buffer.from(v, 'hex');
    return v;
  };
  const shape = (r, rowMode) => {
    const rows = r.rows.map((cells) => {
      const values = cells.map((v, i) => revive(v, r.fields[i].dataTypeID));
      if (rowMode === 'array') return values;
      const row = {};
      r.fields.forEach((f, i) => { row[f.name] = values[i]; });
      return row;
    });
    return { command: r.command, rowCount: r.rowCount, oid: null, rows, fields: r.fields, rowAsArray: rowMode === 'array' };
  };
  // query(text, values?, cb?) or query({ text, values, rowMode }, cb?)
  const queryArgs = (text, values, cb) => {
    if (typeof values === 'function') { cb = values; values = undefined; }
    let rowMode;
    if (text !== null && typeof text === 'object') {
      values = values || text.values;
      rowMode = text.rowMode;
      text = text.text;
    }
    return { text: String(text), values: (values || []).map(prepare), rowMode, cb };
  };
  const settle = (promise, cb) => {
    if (typeof cb !== 'function') return promise;
    promise.then((v) => host.callback(cb, null, v), (e) => host.callback(cb, e));
    return undefined;
  };
  const releaser = (handle) => {
    let released = false;
    return (err) => {
      if (released) throw new Error('Release called on client which has already been released to the pool.');
      released = true;
      native.release(handle, !!err);
    };
  };

  class Client {
    constructor(config) {
      this.connectionParameters = config === undefined ? {} : config;
      this._ready = null;
      this._handle = null;
    }
    connect(cb) {
      if (!this._ready) {
        this._ready = native.connect(this.connectionParameters, false).then((h) => { this._handle = h; });
      }
      return settle(this._ready, cb);
    }
    query(text, values, cb) {
      const q = queryArgs(text, values, cb);
      const ready = this._ready || Promise.reject(new Error('Client was not connected; call client.connect() first'));
      const result = ready.then(() => native.query(this._handle, q.text, q.values)).then((r) => shape(r, q.rowMode));
      return settle(result, q.cb);
    }
    end(cb) {
      const ended = (this._ready || Promise.resolve()).then(() => {
        if (this._handle && !this._ended) { this._ended = true; native.release(this._handle, true); }
      }, () => {});
      return settle(ended, cb);
    }
    on() { return this; }
  }

  class Pool {
    constructor(options) { this.options = options === undefined ? {} : options; }
    connect(cb) {
      const client = native.connect(this.options, true).then((h) => {
        const c = new Client(this.options);
        c._handle = h;
        c._ready = Promise.resolve();
        c.release = releaser(h);
        return c;
      });
      if (typeof cb !== 'function') return client;
      client.then((c) => host.callback(cb, null, c, c.release), (e) => host.callback(cb, e, undefined, () => {}));
      return undefined;
    }
    query(text, values, cb) {
      const q = queryArgs(text, values, cb);
      const result = native.connect(this.options, true).then((h) => {
        const release = releaser(h);
        return native.query(h, q.text, q.values).then(
          (r) => { release(); return shape(r, q.rowMode); },
          (e) => { release(); throw e; });
      });
      return settle(result, q.cb);
    }
    end(cb) { return settle(Promise.resolve(), cb); }
    on() { return this; }
  }

  return {
    Client,
    Pool,
    // The legacy API Auth0's templates use: a pooled client and its `done`.
    connect(config, cb) { return new Pool(config).connect(cb); },
    end() {},
    defaults: {},
    types: {
      setTypeParser(oid, format, fn) { parsers[oid] = typeof format === 'function' ? format : fn; },
      getTypeParser(oid) { return parsers[oid] || ((v) => v); },
    },
  };
});
