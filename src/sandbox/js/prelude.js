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
