// A TLS-terminating reverse proxy for the official-client suite, as an operator puts one in
// front of `customdb serve --public-url https://...`: it accepts HTTPS on PORT with CERT/KEY
// and forwards each request to UPSTREAM (http://127.0.0.1:N) with X-Forwarded-Proto: https.
// Prints "listening <port>" once it accepts connections.
import http from "node:http";
import https from "node:https";
import fs from "node:fs";

const [cert, key, upstream] = [process.env.CERT, process.env.KEY, new URL(process.env.UPSTREAM)];
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  const forward = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, "x-forwarded-proto": "https" },
    },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  forward.on("error", (e) => {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(`proxy: ${e.message}`);
  });
  req.pipe(forward);
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
