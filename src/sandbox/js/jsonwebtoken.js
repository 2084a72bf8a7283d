// The npm jsonwebtoken API (sign/verify/decode, their options and error classes) over native
// signatures. Times are seconds since the epoch, as the package uses.
(function (native, host) {
  'use strict';
  const Buffer = host.Buffer;
  class JsonWebTokenError extends Error {
    constructor(message, inner) { super(message); this.name = 'JsonWebTokenError'; if (inner) this.inner = inner; }
  }
  class TokenExpiredError extends JsonWebTokenError {
    constructor(message, expiredAt) { super(message); this.name = 'TokenExpiredError'; this.expiredAt = expiredAt; }
  }
  class NotBeforeError extends JsonWebTokenError {
    constructor(message, date) { super(message); this.name = 'NotBeforeError'; this.date = date; }
  }
  const b64url = (s) => Buffer.from(s).toString('base64url');
  const UNITS = { ms: 0.001, s: 1, sec: 1, secs: 1, second: 1, seconds: 1, m: 60, min: 60, mins: 60, minute: 60, minutes: 60, h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600, d: 86400, day: 86400, days: 86400, w: 604800, week: 604800, weeks: 604800, y: 31557600, year: 31557600, years: 31557600 };
  const seconds = (v, name) => {
    if (typeof v === 'number') return v;
    const m = /^\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(v));
    if (!m || (m[2] && !UNITS[m[2].toLowerCase()])) throw new Error('"' + name + '" should be a number of seconds or string representing a timespan');
    return Math.floor(Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 0.001));
  };
  const now = () => Math.floor(Date.now() / 1000);
  const deliver = (fn, cb) => {
    if (typeof cb !== 'function') return fn();
    let result, error = null;
    try { result = fn(); } catch (e) { error = e; }
    Promise.resolve().then(() => (error ? host.callback(cb, error) : host.callback(cb, null, result)));
    return undefined;
  };
  function sign(payload, key, options, cb) {
    if (typeof options === 'function') { cb = options; options = {}; }
    options = options || {};
    return deliver(() => {
      if (key === undefined || key === null || key === '') throw new Error('secretOrPrivateKey must have a value');
      const alg = options.algorithm || 'HS256';
      const header = Object.assign({ alg, typ: 'JWT' }, options.header || {});
      if (options.keyid) header.kid = options.keyid;
      let claims;
      if (typeof payload === 'string') claims = payload;
      else {
        if (payload === null || typeof payload !== 'object') throw new Error('Expected "payload" to be a plain object.');
        claims = Object.assign({}, payload);
        const ts = claims.iat === undefined ? now() : claims.iat;
        if (!options.noTimestamp) claims.iat = ts;
        if (options.expiresIn !== undefined) {
          if (claims.exp !== undefined) throw new Error('Bad "options.expiresIn" option the payload already has an "exp" property.');
          claims.exp = ts + seconds(options.expiresIn, 'expiresIn');
        }
        if (options.notBefore !== undefined) claims.nbf = ts + seconds(options.notBefore, 'notBefore');
        if (options.audience !== undefined) claims.aud = options.audience;
        if (options.issuer !== undefined) claims.iss = options.issuer;
        if (options.subject !== undefined) claims.sub = options.subject;
        if (options.jwtid !== undefined) claims.jti = options.jwtid;
      }
      const body = typeof claims === 'string' ? claims : JSON.stringify(claims);
      const input = b64url(JSON.stringify(header)) + '.' + b64url(body);
      return input + '.' + native.sign(input, key, alg);
    }, cb);
  }
  function decode(token, options) {
    options = options || {};
    if (typeof token !== 'string') return null;
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    let header, payload;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
      const text = Buffer.from(parts[1], 'base64url').toString();
      try { payload = JSON.parse(text); } catch (e) { payload = text; }
    } catch (e) { return null; }
    return options.complete ? { header, payload, signature: parts[2] } : payload;
  }
  const matches = (expected, actual) => {
    const list = Array.isArray(actual) ? actual : [actual];
    return (Array.isArray(expected) ? expected : [expected]).some((e) => list.some((a) => (e instanceof RegExp ? e.test(a) : e === a)));
  };
  function verify(token, key, options, cb) {
    if (typeof options === 'function') { cb = options; options = {}; }
    options = options || {};
    return deliver(() => {
      if (!token) throw new JsonWebTokenError('jwt must be provided');
      if (typeof token !== 'string') throw new JsonWebTokenError('jwt must be a string');
      const parts = token.split('.');
      if (parts.length !== 3) throw new JsonWebTokenError('jwt malformed');
      const decoded = decode(token, { complete: true });
      if (!decoded) throw new JsonWebTokenError('invalid token');
      if (!parts[2]) throw new JsonWebTokenError('jwt signature is required');
      if (!key) throw new JsonWebTokenError('secret or public key must be provided');
      const alg = decoded.header.alg;
      const keyText = typeof key === 'string' ? key : Buffer.from(key).toString();
      const allowed = options.algorithms || (keyText.includes('BEGIN') ? ['RS256', 'RS384', 'RS512'] : ['HS256', 'HS384', 'HS512']);
      if (allowed.indexOf(alg) === -1) throw new JsonWebTokenError('invalid algorithm');
      if (!native.verify(parts[0] + '.' + parts[1], parts[2], key, alg)) throw new JsonWebTokenError('invalid signature');
      const p = decoded.payload;
      const t = (options.clockTimestamp || now());
      const tol = options.clockTolerance || 0;
      if (typeof p === 'object' && p !== null) {
        if (p.nbf !== undefined && !options.ignoreNotBefore && p.nbf > t + tol) throw new NotBeforeError('jwt not active', new Date(p.nbf * 1000));
        if (p.exp !== undefined && !options.ignoreExpiration && t >= p.exp + tol) throw new TokenExpiredError('jwt expired', new Date(p.exp * 1000));
        if (options.audience !== undefined && !matches(options.audience, p.aud)) throw new JsonWebTokenError('jwt audience invalid. expected: ' + [].concat(options.audience).join(' or '));
        if (options.issuer !== undefined && !matches(options.issuer, p.iss)) throw new JsonWebTokenError('jwt issuer invalid. expected: ' + [].concat(options.issuer).join(' or '));
        if (options.subject !== undefined && p.sub !== options.subject) throw new JsonWebTokenError('jwt subject invalid. expected: ' + options.subject);
        if (options.maxAge !== undefined && p.iat !== undefined && t - p.iat > seconds(options.maxAge, 'maxAge') + tol) throw new TokenExpiredError('maxAge exceeded', new Date((p.iat + seconds(options.maxAge, 'maxAge')) * 1000));
      }
      return options.complete ? decoded : p;
    }, cb);
  }
  return { sign, verify, decode, JsonWebTokenError, TokenExpiredError, NotBeforeError };
});
