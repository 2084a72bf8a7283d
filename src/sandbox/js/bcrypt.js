// The npm bcrypt/bcryptjs API over native hashing: every asynchronous function takes a
// callback or returns a promise, as the packages do.
(function (native, host) {
  'use strict';
  const settle = (promise, cb) => {
    if (typeof cb !== 'function') return promise;
    promise.then((v) => host.callback(cb, null, v), (e) => host.callback(cb, e));
    return undefined;
  };
  const attempt = (fn) => { try { return Promise.resolve(fn()); } catch (e) { return Promise.reject(e); } };
  return {
    hashSync: (data, salt) => native.hashSync(data, salt === undefined ? 10 : salt),
    compareSync: (data, hash) => native.compareSync(data, hash),
    genSaltSync: (rounds, minor) => native.genSaltSync(rounds, minor),
    getRounds: (hash) => native.getRounds(hash),
    hash(data, salt, cb) { return settle(attempt(() => native.hashAsync(data, salt)), cb); },
    compare(data, hash, cb) { return settle(attempt(() => native.compareAsync(data, hash)), cb); },
    genSalt(rounds, minor, cb) {
      if (typeof rounds === 'function') { cb = rounds; rounds = undefined; minor = undefined; }
      if (typeof minor === 'function') { cb = minor; minor = undefined; }
      return settle(attempt(() => native.genSaltSync(rounds, minor)), cb);
    },
  };
});
