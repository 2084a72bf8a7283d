// axios's API (axios(config), get/post/put/patch/delete/head/request, create, defaults) over
// the native HTTP request: JSON bodies and responses, params, auth, timeout, validateStatus,
// and AxiosError with `response` for non-2xx answers.
(function (native) {
  'use strict';
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i;

  const headersObject = (pairs) => {
    const out = {};
    for (const [k, v] of pairs) {
      const key = k.toLowerCase();
      out[key] = out[key] === undefined ? v : out[key] + ', ' + v;
    }
    return out;
  };
  const buildURL = (config) => {
    let url = config.url || '';
    if (config.baseURL && !absolute.test(url)) url = config.baseURL.replace(/\/+$/, '') + '/' + url.replace(/^\/+/, '');
    if (config.params) {
      const sp = new URLSearchParams();
      for (const k of Object.keys(config.params)) {
        const v = config.params[k];
        if (v === undefined || v === null) continue;
        const add = (key, x) => sp.append(key, x instanceof Date ? x.toISOString() : typeof x === 'object' ? JSON.stringify(x) : String(x));
        if (Array.isArray(v)) v.forEach((x) => add(k + '[]', x));
        else add(k, v);
      }
      const qs = sp.toString();
      if (qs) url += (url.includes('?') ? '&' : '?') + qs;
    }
    return url;
  };
  const axiosError = (message, code, config, response) => {
    const e = new Error(message);
    e.name = 'AxiosError';
    e.code = code;
    e.config = config;
    e.response = response;
    e.isAxiosError = true;
    if (response) e.status = response.status;
    return e;
  };
  const merge = (a, b) => Object.assign({}, a, b, { headers: Object.assign({}, a.headers, b.headers) });

  function dispatch(config) {
    const headers = Object.assign({ Accept: 'application/json, text/plain, */*' }, config.headers);
    const has = (name) => Object.keys(headers).some((k) => k.toLowerCase() === name);
    let body;
    const data = config.data;
    if (data !== undefined && data !== null) {
      if (typeof data === 'string') body = Buffer.from(data);
      else if (data instanceof URLSearchParams) {
        body = Buffer.from(data.toString());
        if (!has('content-type')) headers['Content-Type'] = 'application/x-www-form-urlencoded';
      } else if (data instanceof Uint8Array) body = Buffer.from(data);
      else {
        body = Buffer.from(JSON.stringify(data));
        if (!has('content-type')) headers['Content-Type'] = 'application/json';
      }
    }
    if (config.auth) {
      headers.Authorization = 'Basic ' + Buffer.from((config.auth.username || '') + ':' + (config.auth.password || '')).toString('base64');
    }
    const pairs = Object.keys(headers)
      .filter((k) => headers[k] !== undefined && headers[k] !== null && headers[k] !== false)
      .map((k) => [k, String(headers[k])]);
    const request = {
      method: String(config.method || 'get').toUpperCase(),
      url: buildURL(config),
      headers: pairs,
      body: body === undefined ? undefined : body.toString('base64'),
      timeout_ms: config.timeout || undefined,
      follow: config.maxRedirects !== 0,
    };
    return native.request(request).then((r) => {
      const bytes = r.encoding === 'base64' ? Buffer.from(r.body, 'base64') : null;
      const type = config.responseType || 'json';
      let out = bytes || r.body;
      if (type === 'arraybuffer') out = bytes || Buffer.from(r.body);
      else if (type === 'json' && typeof out === 'string' && out.length > 0) {
        try { out = JSON.parse(out); } catch (e) { /* axios keeps text that is not JSON */ }
      }
      const response = { data: out, status: r.status, statusText: r.statusText, headers: headersObject(r.headers), config, request: { responseURL: r.url } };
      const validate = config.validateStatus === undefined ? (s) => s >= 200 && s < 300 : config.validateStatus;
      if (!validate || validate(r.status)) return response;
      throw axiosError('Request failed with status code ' + r.status,
        r.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST', config, response);
    }, (e) => {
      if (e.code === 'ETIMEDOUT') throw axiosError('timeout of ' + (config.timeout || 0) + 'ms exceeded', 'ECONNABORTED', config);
      throw axiosError(e.message, e.code, config);
    });
  }

  function create(defaults) {
    const instance = (configOrUrl, config) => typeof configOrUrl === 'string'
      ? instance.request(Object.assign({}, config, { url: configOrUrl }))
      : instance.request(configOrUrl);
    instance.defaults = Object.assign({ headers: {} }, defaults);
    instance.request = (config) => {
      try { return dispatch(merge(instance.defaults, config || {})); } catch (e) { return Promise.reject(e); }
    };
    for (const m of ['get', 'delete', 'head', 'options']) {
      instance[m] = (url, config) => instance.request(Object.assign({}, config, { method: m, url }));
    }
    for (const m of ['post', 'put', 'patch']) {
      instance[m] = (url, data, config) => instance.request(Object.assign({}, config, { method: m, url, data }));
    }
    instance.create = (d) => create(merge(instance.defaults, d || {}));
    instance.isAxiosError = (e) => !!(e && e.isAxiosError);
    return instance;
  }

  const axios = create({});
  axios.default = axios;
  return axios;
});
