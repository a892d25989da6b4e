// Sandbox OpenID Connect provider standing in for Okta's login (tests and `make demo`).
// Okta-style URLs under http://127.0.0.1:$IDP_PORT/oauth2/default, users from sandbox/org.json,
// live status/groups from the sandbox Okta Management API when OKTA_API_URL/OKTA_API_TOKEN are set.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Provider, { interactionPolicy } from 'oidc-provider';

const env = process.env;
const HOST = '127.0.0.1';
const PORT = Number(env.IDP_PORT || 9400);
const PREFIX = '/oauth2/default';
const ISSUER = `http://${HOST}:${PORT}${PREFIX}`;
const CLIENT_ID = env.IDP_CLIENT_ID || 'okta-mcp-sandbox';
const CLIENT_SECRET = env.IDP_CLIENT_SECRET || 'sandbox-secret-change-me';
const REDIRECT_URIS = (env.IDP_REDIRECT_URIS || 'http://127.0.0.1:8000/oidc/callback/')
  .split(',').map((s) => s.trim()).filter(Boolean);
const ORG_FILE = env.IDP_ORG_FILE || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'org.json');
const OKTA_API_URL = (env.OKTA_API_URL || '').replace(/\/+$/, '');
const OKTA_API_TOKEN = env.OKTA_API_TOKEN || '';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;

const org = JSON.parse(readFileSync(ORG_FILE, 'utf8'));
const byId = (id) => org.users.find((u) => u.id === id);
const byLogin = (login) => org.users.find((u) => [u.login, u.email].some((v) => v?.toLowerCase() === login.toLowerCase()));

// The user's current status and groups: live from the sandbox Okta API when configured, else org.json.
// Returns undefined when the API says the user no longer exists (404).
async function liveUser(user) {
  if (!OKTA_API_URL || !OKTA_API_TOKEN) return user;
  const get = async (p) => {
    const r = await fetch(`${OKTA_API_URL}${p}`, {
      headers: { Authorization: `SSWS ${OKTA_API_TOKEN}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`GET ${p} -> HTTP ${r.status}`);
    return r.json();
  };
  try {
    const id = encodeURIComponent(user.id);
    const [u, groups] = await Promise.all([get(`/api/v1/users/${id}`), get(`/api/v1/users/${id}/groups`)]);
    if (u === null) return undefined;
    return { ...user, status: u.status, groups: (groups || []).map((g) => g.profile?.name).filter(Boolean) };
  } catch (err) {
    console.warn(`idp: warning: Okta API lookup for ${user.id} failed (${err.message}); using org.json`);
    return user;
  }
}

async function findAccount(ctx, sub) {
  const base = byId(sub);
  const user = base && await liveUser(base);
  if (!user || user.status !== 'ACTIVE') return undefined; // suspended/deleted users lose their session
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: user.email,
        email_verified: true,
        name: `${user.firstName} ${user.lastName}`.trim(),
        preferred_username: user.login,
        given_name: user.firstName,
        family_name: user.lastName,
        groups: user.groups || [],
      };
    },
  };
}

// First-party client: grant every requested scope/claim so the user never sees a consent screen.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId && await oidc.provider.Grant.find(grantId);
  if (!grant || grant.accountId !== oidc.session.accountId) {
    grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
  }
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  if (oidc.requestParamClaims.size) grant.addOIDCClaims([...oidc.requestParamClaims]);
  await grant.save();
  return grant;
}

// A session whose user is no longer ACTIVE (findAccount returned nothing) must log in again.
const { Check } = interactionPolicy;
const policy = interactionPolicy.base();
policy.get('login').checks.add(new Check('account_inactive', 'End-User account is no longer active', 'login_required',
  (ctx) => Boolean(ctx.oidc.session.accountId && !ctx.oidc.account)));

const jwk = { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: REDIRECT_URIS,
    post_logout_redirect_uris: [...new Set(REDIRECT_URIS.map((u) => `${new URL(u).origin}/`))],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
  }],
  jwks: { keys: [jwk] },
  findAccount,
  loadExistingGrant,
  conformIdTokenClaims: false, // put groups/email/preferred_username into the ID token itself
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    rpInitiatedLogout: { // Okta signs out at once: the confirmation form submits itself (or click the button without JS)
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"></form>')}
<button type="submit" form="op.logoutForm">Sign out</button><script>document.forms[0].submit()</script>`);
      },
      postLogoutSuccessSource: async (ctx) => { ctx.body = page('Signed out', '<h1>You have been signed out.</h1>'); },
    },
  },
  routes: {
    authorization: '/v1/authorize',
    token: '/v1/token',
    jwks: '/v1/keys',
    userinfo: '/v1/userinfo',
    end_session: '/v1/logout',
    revocation: '/v1/revoke',
    introspection: '/v1/introspect',
    pushed_authorization_request: '/v1/par',
  },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<h1>Sign-in error</h1><p>${esc(out.error)}: ${esc(out.error_description || '')}</p>`);
  },
  cookies: { keys: ['okta-mcp-sandbox-cookie-key-1'] },
  ttl: {
    AccessToken: 3600, IdToken: 3600, Interaction: 600, Session: 7200, Grant: 7200,
    AuthorizationCode: 60, RefreshToken: 86400,
  },
});
provider.on('server_error', (ctx, err) => console.error('idp: server error:', err));

// ---- login pages (plain HTML, no JavaScript) ----
const send = (res, status, body, type = 'text/html; charset=utf-8') => {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
};
const loginPage = (uid, { error = '', login = '' } = {}) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - ${esc(org.org_name || 'Okta sandbox')}</title>
<style>body{font-family:sans-serif;max-width:22rem;margin:4rem auto}label,input,button{display:block;width:100%;margin:.3rem 0}
.error{color:#b00020;border:1px solid #b00020;padding:.5rem}</style></head>
<body><h1>Sign in</h1><p>${esc(org.org_name || 'Okta sandbox')}</p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label for="login">Username</label><input id="login" name="login" autocomplete="username" value="${esc(login)}" autofocus>
<label for="password">Password</label><input id="password" type="password" name="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form></body></html>`;

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('request body too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res, uid, isLogin) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    return send(res, 400, 'Login session expired or not found. Start again from the application.', 'text/plain; charset=utf-8');
  }
  if (details.uid !== uid) return send(res, 400, 'Interaction mismatch.', 'text/plain; charset=utf-8');
  const { prompt, params, session } = details;

  if (prompt.name === 'consent') { // only reached with prompt=consent: grant everything, no screen
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  }
  if (prompt.name !== 'login') return send(res, 400, `Unsupported prompt ${esc(prompt.name)}.`, 'text/plain; charset=utf-8');
  if (!isLogin || req.method !== 'POST') return send(res, 200, loginPage(uid));

  const form = await readForm(req);
  const login = (form.get('login') || '').trim();
  const base = login && byLogin(login);
  const user = base && base.password === form.get('password') ? await liveUser(base) : undefined;
  let error = '';
  if (!user) error = 'Unable to sign in: wrong username or password.';
  else if (user.status !== 'ACTIVE') error = `Unable to sign in: this account is ${user.status.toLowerCase().replace(/_/g, ' ')}.`;
  if (error) {
    console.log(`idp: login failed for ${JSON.stringify(login)}${user ? ` (status ${user.status})` : ''}`);
    return send(res, 200, loginPage(uid, { error, login }));
  }
  console.log(`idp: login ok for ${user.login} (${user.id})`);
  return provider.interactionFinished(req, res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
}

// ---- HTTP server: provider mounted under /oauth2/default, login pages and health check at the root ----
const oidc = provider.callback();
http.createServer(async (req, res) => {
  try {
    const { pathname } = new URL(req.url, 'http://x');
    if (pathname === '/__health') return send(res, 200, 'ok', 'text/plain; charset=utf-8');
    const m = pathname.match(/^\/interaction\/([\w-]+)(\/login)?$/);
    if (m) return await interaction(req, res, m[1], Boolean(m[2]));
    if (pathname === PREFIX || pathname.startsWith(`${PREFIX}/`)) {
      req.originalUrl = req.url; // lets oidc-provider compute the mount path for the URLs it emits
      req.url = req.url.slice(PREFIX.length) || '/';
      return oidc(req, res);
    }
    return send(res, 404, 'Not found', 'text/plain; charset=utf-8');
  } catch (err) {
    console.error('idp: error:', err);
    if (!res.headersSent) send(res, 500, 'Internal error', 'text/plain; charset=utf-8');
  }
}).listen(PORT, HOST, () => console.log(`idp listening on ${ISSUER}`));
