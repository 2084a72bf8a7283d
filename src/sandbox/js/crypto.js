// Node's crypto API shapes over native digests: streaming Hash/Hmac objects, callback forms.
(function (native, host) {
  'use strict';
  const Buffer = host.Buffer;
  const toBytes = (data, encoding) => (typeof data === 'string' ? Buffer.from(data, encoding) : data);
  const output = (ab, encoding) => {
    const b = Buffer.from(ab);
    return encoding === undefined || encoding === 'buffer' ? b : b.toString(encoding);
  };
  class Digester {
    constructor(compute) { this._chunks = []; this._compute = compute; this._done = false; }
    update(data, encoding) {
      if (this._done) throw new Error('Digest already called');
      this._chunks.push(toBytes(data, encoding));
      return this;
    }
    digest(encoding) {
      if (this._done) throw new Error('Digest already called');
      this._done = true;
      return output(this._compute(Buffer.concat(this._chunks.map((c) => Buffer.from(c)))), encoding);
    }
  }
  return {
    createHash: (alg) => { native.hash(alg, ''); return new Digester((d) => native.hash(alg, d)); },
    createHmac: (alg, key) => {
      native.hmac(alg, '', '');
      const k = toBytes(key);
      return new Digester((d) => native.hmac(alg, k, d));
    },
    randomBytes(size, cb) {
      const b = Buffer.from(native.randomBytes(size));
      if (typeof cb === 'function') { Promise.resolve().then(() => host.callback(cb, null, b)); return undefined; }
      return b;
    },
    randomUUID: () => native.randomUUID(),
    pbkdf2Sync: (password, salt, iterations, keylen, digest) => Buffer.from(native.pbkdf2Sync(password, salt, iterations, keylen, digest)),
    pbkdf2(password, salt, iterations, keylen, digest, cb) {
      if (typeof cb !== 'function') throw new TypeError('The "callback" argument must be of type function');
      native.pbkdf2Async(password, salt, iterations, keylen, digest)
        .then((ab) => host.callback(cb, null, Buffer.from(ab)), (e) => host.callback(cb, e));
    },
    timingSafeEqual: (a, b) => native.timingSafeEqual(a, b),
    getHashes: () => native.getHashes(),
  };
});
