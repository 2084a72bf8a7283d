// The `auth0` npm package (its ManagementClient and its bundled legacy AuthenticationClient)
// and openid-client, pinned in sdk/package.json, against customdb serve as a developer uses them
// against an Auth0 tenant: only the domain changes. Driven by tests/it/sdk.rs, which gives
// DOMAIN (the TLS proxy in front of the server), APP_CLIENT_ID (a public application),
// WEB_CLIENT_ID and WEB_CLIENT_SECRET (a confidential one with the password grants),
// MGMT_CLIENT_ID and MGMT_CLIENT_SECRET. Prints one line per check; exits non-zero at the first that fails.
import { ManagementClient } from "auth0";
import { AuthenticationClient } from "auth0/legacy";
import * as oidc from "openid-client";

const { DOMAIN, APP_CLIENT_ID: APP, WEB_CLIENT_ID, WEB_CLIENT_SECRET, MGMT_CLIENT_ID, MGMT_CLIENT_SECRET } = process.env;
const DEMO = "Username-Password-Authentication";

function check(what, ok, detail = "") {
  if (!ok) {
    console.log(`FAILED ${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

async function refused(what, call, status) {
  try {
    await call();
  } catch (e) {
    const got = e.statusCode ?? e.status ?? e.response?.status;
    check(what, got === status, `status ${got}: ${e.message}`);
    return e;
  }
  check(what, false, "no error was thrown");
}

async function all(pagePromise) {
  const items = [];
  for await (const item of await pagePromise) items.push(item);
  return items;
}

const mgmt = new ManagementClient({ domain: DOMAIN, clientId: MGMT_CLIENT_ID, clientSecret: MGMT_CLIENT_SECRET });
// The legacy client validates every ID token it receives (signature against the JWKS, iss, aud).
const auth = new AuthenticationClient({ domain: DOMAIN, clientId: WEB_CLIENT_ID, clientSecret: WEB_CLIENT_SECRET });

// Authentication API through the legacy AuthenticationClient.
const { data: tokens } = await auth.oauth.passwordGrant({
  username: "alice@example.com",
  password: "correct horse battery staple",
  realm: DEMO,
  scope: "openid profile email",
});
check("legacy passwordGrant with a realm, ID token validated", typeof tokens.id_token === "string");
const { data: bobTokens } = await auth.oauth.passwordGrant({ username: "bob@example.com", password: "hunter22" });
check("legacy passwordGrant without a realm", typeof bobTokens.access_token === "string");
await refused("a wrong password is 403", () => auth.oauth.passwordGrant({ username: "alice@example.com", password: "nope", realm: DEMO }), 403);
const suffix = Math.random().toString(16).slice(2, 10);
const email = `node-${suffix}@example.com`;
const { data: signed } = await auth.database.signUp({ email, password: "a long node passphrase", connection: DEMO });
check("legacy database.signUp", signed.email === email, signed);
const { data: changed } = await auth.database.changePassword({ email, connection: DEMO });
check("legacy database.changePassword", /email/i.test(changed), changed);

// OpenID Connect through openid-client: discovery (the issuer must equal the URL discovered),
// a password-realm grant with signatures checked against the JWKS, userinfo.
const config = await oidc.discovery(new URL(`https://${DOMAIN}/`), APP, undefined, oidc.None());
check("openid-client discovery accepts the issuer", config.serverMetadata().issuer === `https://${DOMAIN}/`, config.serverMetadata());
oidc.enableNonRepudiationChecks(config);
const granted = await oidc.genericGrantRequest(config, "http://auth0.com/oauth/grant-type/password-realm", {
  username: email,
  password: "a long node passphrase",
  realm: DEMO,
  scope: "openid profile email",
});
const claims = granted.claims();
check("openid-client password-realm grant, ID token verified", claims.email === email && claims.iss === `https://${DOMAIN}/`, claims);
const info = await oidc.fetchUserInfo(config, granted.access_token, claims.sub);
check("openid-client userinfo", info.email === email, info);

// Management API through ManagementClient (it fetches its own token).
const names = (await all(mgmt.connections.list({ take: 1 }))).map((c) => c.name);
check("connections.list pages by checkpoint (take=1)", names.includes(DEMO) && names.length === new Set(names).size, names);
const made = await mgmt.connections.create({
  name: `node-${suffix}`,
  strategy: "auth0",
  display_name: "Node",
  enabled_clients: [APP],
  options: {
    customScripts: { login: "function login(email, password, callback) { callback(null, { user_id: 'n1', email: email }); }" },
    configuration: { TOKEN: "s3cret" },
  },
});
check("connections.create", made.name === `node-${suffix}` && made.options.configuration.TOKEN === "[encrypted]", made);
await mgmt.connections.update(made.id, { show_as_button: true });
const got = await mgmt.connections.get(made.id);
check(
  "connections.update without options keeps the scripts",
  got.show_as_button === true && got.display_name === "Node" && got.options.customScripts.login.includes("n1"),
  got,
);
const filtered = await all(mgmt.connections.list({ name: made.name }));
check("connections.list filters by name", filtered.length === 1 && filtered[0].id === made.id, filtered);
await mgmt.connections.delete(made.id);
await refused("connections.get after delete is 404", () => mgmt.connections.get(made.id), 404);

const users = await all(mgmt.users.list({ per_page: 2 }));
check("users.list pages by offset", users.some((u) => u.email === "alice@example.com") && users.some((u) => u.email === email), users.map((u) => u.email));
const found = await all(mgmt.users.list({ q: `email:"${email}"`, search_engine: "v3" }));
check("users.list searches with q", found.length === 1 && found[0].email === email, found);
const [byEmail] = await mgmt.users.listUsersByEmail({ email });
check("users.listUsersByEmail", byEmail?.email === email, byEmail);
const patched = await mgmt.users.update(byEmail.user_id, { app_metadata: { roles: ["admin"] } });
check("users.update app_metadata", JSON.stringify(patched.app_metadata) === '{"roles":["admin"]}', patched);
await refused("users.update of email_verified alone is 400 without import mode", () => mgmt.users.update(byEmail.user_id, { email_verified: true }), 400);
await mgmt.users.update(byEmail.user_id, { blocked: true });
await refused("a blocked user cannot log in", () => auth.oauth.passwordGrant({ username: email, password: "a long node passphrase", realm: DEMO }), 401);
await mgmt.users.delete(byEmail.user_id);
await refused("users.get after delete is 404", () => mgmt.users.get(byEmail.user_id), 404);

const logs = await all(mgmt.logs.list({ per_page: 3 }));
check("logs.list pages through the tenant's log", logs.length > 3 && logs.every((l) => typeof l.log_id === "string"), logs.length);
const signup = logs.find((l) => l.type === "ss");
const one = await mgmt.logs.get(signup.log_id);
check("logs.get", one.log_id === signup.log_id && one.type === "ss", one);

console.log("all checks passed");
