// The `request` package's callback API (request(options, cb), get/post/put/patch/del/head,
// defaults) over the native HTTP request: `json`, `form`, `qs`, `auth`, `timeout`, and
// cb(err, response, body) with `response.statusCode`.
(function (native, host) {
  'use strict';
  const headersObject = (pairs) => {
    const out = {};
    for (const [k, v] of pairs) {
      const key = k.toLowerCase();
      out[key] = out[key] === undefined ? v : out[key] + ', ' + v;
    }
    return out;
  };
  const normalize = (uri, options, callback) => {
    if (typeof options === 'function') { callback = options; options = undefined; }
    const o = typeof uri === 'object' && uri !== null ? Object.assign({}, uri) : Object.assign({}, options, { uri });
    return { o, callback };
  };

  function send(o, callback) {
    let url = String(o.url || o.uri || '');
    if (o.baseUrl) url = o.baseUrl.replace(/\/+$/, '') + '/' + url.replace(/^\/+/, '');
    if (o.qs) {
      const qs = new URLSearchParams();
      for (const k of Object.keys(o.qs)) if (o.qs[k] !== undefined) qs.append(k, String(o.qs[k]));
      const s = qs.toString();
      if (s) url += (url.includes('?') ? '&' : '?') + s;
    }
    const headers = Object.assign({}, o.headers);
    const has = (name) => Object.keys(headers).some((k) => k.toLowerCase() === name);
    let body = o.body;
    if (o.form !== undefined) {
      body = typeof o.form === 'string' ? o.form : new URLSearchParams(o.form).toString();
      if (!has('content-type')) headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (o.json !== undefined && o.json !== false) {
      if (!has('accept')) headers.accept = 'application/json';
      if (o.json !== true && body === undefined) body = o.json;
      if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        body = JSON.stringify(body);
        if (!has('content-type')) headers['content-type'] = 'application/json';
      }
    }
    const auth = o.auth;
    if (auth) {
      if (auth.bearer) headers.authorization = 'Bearer ' + auth.bearer;
      else headers.authorization = 'Basic ' + Buffer.from((auth.user || auth.username || '') + ':' + (auth.pass || auth.password || '')).toString('base64');
    }
    const request = {
      method: String(o.method || 'GET').toUpperCase(),
      url,
      headers: Object.keys(headers).map((k) => [k, String(headers[k])]),
      body: body === undefined || body === null ? undefined : Buffer.from(body).toString('base64'),
      timeout_ms: o.timeout || undefined,
      follow: o.followRedirect !== false,
    };
    native.request(request).then((r) => {
      let out = r.encoding === 'base64' || o.encoding === null ? Buffer.from(r.body, r.encoding) : r.body;
      if (o.json && typeof out === 'string' && out.length > 0) {
        try { out = JSON.parse(out); } catch (e) { /* request keeps text that is not JSON */ }
      }
      const response = { statusCode: r.status, statusMessage: r.statusText, headers: headersObject(r.headers), body: out, request: { uri: { href: r.url } } };
      if (callback) host.callback(callback, null, response, out);
    }, (e) => { if (callback) host.callback(callback, e); });
  }

  const make = (defaults) => {
    const request = (uri, options, callback) => {
      const { o, callback: cb } = normalize(uri, options, callback);
      send(Object.assign({}, defaults, o, { headers: Object.assign({}, defaults.headers, o.headers) }), cb);
    };
    const verb = (method) => (uri, options, callback) => {
      const { o, callback: cb } = normalize(uri, options, callback);
      o.method = method;
      request(o, cb);
    };
    request.get = verb('GET');
    request.post = verb('POST');
    request.put = verb('PUT');
    request.patch = verb('PATCH');
    request.del = verb('DELETE');
    request.delete = verb('DELETE');
    request.head = verb('HEAD');
    request.defaults = (d) => make(Object.assign({}, defaults, d));
    return request;
  };
  return make({});
});
