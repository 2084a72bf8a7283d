"""auth0-python (pinned in sdk/requirements.txt) against customdb serve, as a developer would
use it against an Auth0 tenant: only the domain changes. Driven by tests/it/sdk.rs, which
gives DOMAIN (the TLS proxy in front of the server), APP_CLIENT_ID (the demo's public
application), MGMT_CLIENT_ID and MGMT_CLIENT_SECRET (the demo's management client).
Prints one line per check; exits non-zero at the first that fails."""

import os
import sys
import uuid

from auth0.authentication import Database, GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier, TokenVerifier
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.types import SuspiciousIpThrottlingPreLoginStage, SuspiciousIpThrottlingStage

DOMAIN = os.environ["DOMAIN"]
APP = os.environ["APP_CLIENT_ID"]
DEMO = "Username-Password-Authentication"


def check(what, ok, detail=""):
    if not ok:
        print(f"FAILED {what}: {detail}")
        sys.exit(1)
    print(f"ok {what}")


def refused(what, call, status):
    try:
        call()
    except (ApiError, Auth0Error) as e:
        got = getattr(e, "status_code", None)
        check(what, got == status, f"status {got}: {e}")
        return e
    check(what, False, "no error was raised")


def verified(id_token):
    verifier = TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(f"https://{DOMAIN}/.well-known/jwks.json"),
        issuer=f"https://{DOMAIN}/",
        audience=APP,
    )
    return verifier.verify(id_token)


# The management client fetches its own token with client_credentials.
mgmt = ManagementClient(
    domain=DOMAIN,
    client_id=os.environ["MGMT_CLIENT_ID"],
    client_secret=os.environ["MGMT_CLIENT_SECRET"],
)
auth = GetToken(DOMAIN, APP)

# Logins: password-realm and password, the ID token verified against the JWKS by the library.
tokens = auth.login("alice@example.com", "correct horse battery staple", realm=DEMO)
claims = verified(tokens["id_token"])
check("password-realm login, ID token verified", claims["email"] == "alice@example.com", claims)
tokens = auth.login("bob@example.com", "hunter22", realm=None, grant_type="password")
check("password login", verified(tokens["id_token"])["email"] == "bob@example.com")
refused("a wrong password is 403", lambda: auth.login("alice@example.com", "nope", realm=DEMO), 403)
refused(
    "a user's token is not a management token",
    lambda: ManagementClient(domain=DOMAIN, token=tokens["access_token"]).users.list(),
    401,
)

# Connections: create, paging both ways, filters, PATCH without options, delete.
suffix = uuid.uuid4().hex[:8]
script = "function login(email, password, callback) { callback(null, { user_id: 'x1', email: email }); }"
made = []
for i in range(3):
    c = mgmt.connections.create(
        name=f"sdk-{suffix}-{i}",
        strategy="auth0",
        display_name=f"SDK {i}",
        metadata={"index": str(i)},
        options={"customScripts": {"login": script}, "configuration": {"API_KEY": "s3cret"}},
    )
    made.append(c)
check("connections.create", made[0].name == f"sdk-{suffix}-0" and made[0].display_name == "SDK 0")
names = [c.name for c in mgmt.connections.list(take=2)]
check(
    "connections.list pages by checkpoint (take=2) through every connection",
    all(c.name in names for c in made) and DEMO in names and len(names) == len(set(names)),
    names,
)
one = list(mgmt.connections.list(name=made[1].name))
check("connections.list filters by name", [c.name for c in one] == [made[1].name], one)
strategies = list(mgmt.connections.list(strategy=["auth0"]))
check("connections.list filters by strategy", len(strategies) == len(names))
got = mgmt.connections.get(made[0].id)
check("connections.get", got.options["customScripts"]["login"] == script, got.options)
check("configuration never leaves in clear", got.options["configuration"]["API_KEY"] == "[encrypted]")
mgmt.connections.update(made[0].id, display_name="Renamed")
got = mgmt.connections.get(made[0].id)
check(
    "connections.update without options keeps scripts and configuration",
    got.display_name == "Renamed" and got.options["customScripts"]["login"] == script
    and got.metadata == {"index": "0"},
    got,
)
for c in made:
    mgmt.connections.delete(c.id)
check("connections.delete", all(c.name not in [x.name for x in mgmt.connections.list()] for c in made))

# Users: list, search, get, by email, PATCH rules, block, delete.
users = list(mgmt.users.list(per_page=1))
check("users.list pages by offset", any(u.email == "alice@example.com" for u in users), users)
found = list(mgmt.users.list(q='email:"alice@example.com"', search_engine="v3"))
check("users.list searches with q", [u.email for u in found] == ["alice@example.com"], found)
alice = mgmt.users.list_users_by_email(email="alice@example.com")
check("users.list_users_by_email", len(alice) == 1 and alice[0].user_id.startswith("auth0|"), alice)
alice_id = alice[0].user_id
check("users.get", mgmt.users.get(alice_id).email == "alice@example.com")
updated = mgmt.users.update(alice_id, user_metadata={"theme": "dark"}, app_metadata={"plan": "pro"})
check("users.update merges metadata", updated.user_metadata == {"theme": "dark"} and updated.app_metadata == {"plan": "pro"}, updated)
refused(
    "users.update of a field the script owns is 400 without import mode",
    lambda: mgmt.users.update(alice_id, name="Someone Else"),
    400,
)
mgmt.users.update(alice_id, blocked=True)
refused("a blocked user cannot log in", lambda: auth.login("alice@example.com", "correct horse battery staple", realm=DEMO), 401)
mgmt.users.update(alice_id, blocked=False)
auth.login("alice@example.com", "correct horse battery staple", realm=DEMO)
check("an unblocked user logs in again", True)

# Signup and change_password through the Authentication API.
db = Database(DOMAIN, APP)
email = f"sdk-{suffix}@example.com"
signed = db.signup(email=email, password="a long new passphrase", connection=DEMO, user_metadata={"from": "sdk"})
check("database.signup", signed["email"] == email, signed)
check("the new user logs in", verified(auth.login(email, "a long new passphrase", realm=DEMO)["id_token"])["email"] == email)
answer = db.change_password(email=email, connection=DEMO)
check("database.change_password", "email" in str(answer).lower(), answer)
new_id = mgmt.users.list_users_by_email(email=email)[0].user_id
mgmt.users.update(new_id, password="another long passphrase")
check("users.update password", verified(auth.login(email, "another long passphrase", realm=DEMO)["id_token"])["email"] == email)
mgmt.users.delete(new_id)
refused("users.get after users.delete is 404", lambda: mgmt.users.get(new_id), 404)

# Import mode: the first login migrates the user; then the profile is customdb's to change.
legacy = mgmt.connections.create(
    name=f"sdk-import-{suffix}",
    strategy="auth0",
    options={
        "import_mode": True,
        "customScripts": {
            "login": "function login(email, password, callback) { if (password !== 'legacy pass') return callback(new WrongUsernameOrPasswordError(email)); callback(null, { user_id: 'L1', email: email, name: 'Legacy' }); }",
            "get_user": "function getByEmail(email, callback) { callback(null); }",
        },
    },
)
check("the migrated user logs in", verified(auth.login("lee@example.com", "legacy pass", realm=legacy.name)["id_token"])["name"] == "Legacy")
lee = [u for u in mgmt.users.list_users_by_email(email="lee@example.com") if u.identities[0].connection == legacy.name][0]
check("users.update name in import mode", mgmt.users.update(lee.user_id, name="Lee").name == "Lee")
mgmt.users.update(lee.user_id, password="a password set here")
check(
    "a migrated user logs in with the password set here, without the script",
    verified(auth.login("lee@example.com", "a password set here", realm=legacy.name)["id_token"])["email"] == "lee@example.com",
)
mgmt.connections.delete(legacy.id)

# Logs: offset pages with totals, one event by id.
logs = list(mgmt.logs.list(per_page=5))
check("logs.list pages through the tenant's log", len(logs) > 5 and all(l.log_id for l in logs), len(logs))
types = {l.type for l in logs}
check("logs carry Auth0's types", {"s", "f", "ss"} <= types, types)
success = next(l for l in logs if l.type == "s")
one = mgmt.logs.get(success.log_id)
check("logs.get", one.log_id == success.log_id and one.connection, one)
check(
    "a login's event names the application, the address and the identifier typed",
    one.client_id == APP and one.ip and one.user_agent and one.user_name and one.connection_id,
    one,
)
found = list(mgmt.logs.list(search=f'type:s AND client_id:"{APP}"', sort="date:1", per_page=2))
check("logs.list with search and sort", found and all(l.type == "s" and l.client_id == APP for l in found), found)

# Attack protection: the settings round-trip through the SDK's models; a block by identifier
# is listed and lifted; suspicious IP throttling reads, merges and answers 404 for a free address.
bf = mgmt.attack_protection.brute_force_protection.get()
check("brute_force_protection.get", bf.enabled and bf.max_attempts == 10 and bf.mode == "count_per_identifier_and_ip", bf)
check("brute_force_protection.update", mgmt.attack_protection.brute_force_protection.update(max_attempts=1).max_attempts == 1)
mallory = f"mallory-{suffix}@example.com"
refused("a wrong password", lambda: auth.login(mallory, "wrong", realm=DEMO), 403)
blocks = mgmt.user_blocks.list_by_identifier(identifier=mallory)
check("user_blocks.list_by_identifier", [b.identifier for b in blocks.blocked_for] == [mallory], blocks)
mgmt.user_blocks.delete_by_identifier(identifier=mallory)
check("user_blocks.delete_by_identifier", mgmt.user_blocks.list_by_identifier(identifier=mallory).blocked_for == [])
mgmt.attack_protection.brute_force_protection.update(max_attempts=10)
sit = mgmt.attack_protection.suspicious_ip_throttling
got = sit.get()
check("suspicious_ip_throttling.get", got.enabled and got.stage.pre_login.max_attempts == 100 and got.stage.pre_user_registration.rate == 1728000, got)
updated = sit.update(stage=SuspiciousIpThrottlingStage(pre_login=SuspiciousIpThrottlingPreLoginStage(max_attempts=500)))
check(
    "suspicious_ip_throttling.update merges one stage's field",
    updated.stage.pre_login.max_attempts == 500 and updated.stage.pre_login.rate == 864000 and updated.stage.pre_user_registration.max_attempts == 50,
    updated,
)
refused("anomaly.blocks.check_ip of a free address is 404", lambda: mgmt.anomaly.blocks.check_ip("192.0.2.200"), 404)
mgmt.anomaly.blocks.unblock_ip("192.0.2.200")
check("anomaly.blocks.unblock_ip", True)

print("all checks passed")
