// Local OpenID Provider for tests and the demo (panva/oidc-provider 8.x).
//
// Configured from the JSON file named by $IDP_CONFIG:
//   {
//     "issuer": "http://127.0.0.1:PORT", "port": PORT,
//     "jwks": {"keys": [<private RSA JWK with kid, alg RS256, use sig>]},
//     "clients": [{"client_id", "client_secret", "token_endpoint_auth_method", "scope", "access_token_ttl",
//                  "jwks" (public keys, for private_key_jwt)}],
//     "audiences": ["https://api.example.test/orders", ...],
//     "default_audience": "https://api.example.test/orders"
//   }
//
// Client authentication: client_secret_basic, client_secret_post, client_secret_jwt (HS256/384/512 with the
// client secret) and private_key_jwt (RS*/PS*/ES* with a key of the client's registered `jwks`).
//
// Only the client_credentials grant is enabled. Access tokens are RS256 JWTs for one audience (the RFC 8707
// `resource` parameter, or the non-standard `audience` form field that Auth0/Okta/Keycloak clients send, or
// `default_audience` when neither is given).
//
// Test-only endpoints (loopback only, never expose this server):
//   GET  /_test/stats    -> {"token_requests": N, "token_requests_by_client": {client_id: n}}
//   POST /_test/reset    -> zero the counters
//   POST /_test/clients  -> add or replace a client at runtime (JSON body, same fields as in the config)
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';
// oidc-provider has no public export of its built-in grant handlers; the package has no "exports" map, so
// this deep import is allowed. Used to re-register client_credentials with the extra `audience` parameter.
import {
  handler as clientCredentialsHandler,
  parameters as clientCredentialsParameters,
} from 'oidc-provider/lib/actions/grants/client_credentials.js';

const AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt']);
const TOKEN_PATH = '/token';

function fail(message) {
  throw new Error(`IdP config: ${message}`);
}

function normaliseClient(raw) {
  if (typeof raw !== 'object' || raw === null) fail('client must be an object');
  const { client_id: clientId, client_secret: clientSecret } = raw;
  if (typeof clientId !== 'string' || !clientId) fail('client_id must be a non-empty string');

  let methods = raw.token_endpoint_auth_methods ?? raw.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!Array.isArray(methods)) methods = [methods];
  if (!methods.length || !methods.every((m) => AUTH_METHODS.has(m))) {
    fail(`client ${clientId}: token_endpoint_auth_method must be one of (or a list of) ${[...AUTH_METHODS].join(', ')}`);
  }
  const jwtMethod = methods.find((m) => m.endsWith('_jwt'));
  if (jwtMethod && methods.length !== 1) fail(`client ${clientId}: ${jwtMethod} cannot be combined with other methods`);
  if (jwtMethod === 'private_key_jwt') {
    if (!Array.isArray(raw.jwks?.keys) || !raw.jwks.keys.length) fail(`client ${clientId}: private_key_jwt needs jwks.keys`);
  } else if (typeof clientSecret !== 'string' || !clientSecret) {
    fail(`client ${clientId}: client_secret must be a non-empty string`);
  }

  const scope = raw.scope ?? '';
  if (typeof scope !== 'string') fail(`client ${clientId}: scope must be a space separated string`);

  const ttl = raw.access_token_ttl ?? 300;
  if (!Number.isInteger(ttl) || ttl <= 0) fail(`client ${clientId}: access_token_ttl must be a positive integer`);

  return {
    clientId,
    clientSecret,
    authMethods: new Set(methods),
    scopes: new Set(scope.split(' ').filter(Boolean)),
    accessTokenTTL: ttl,
    // What oidc-provider sees (via the adapter below). `scope` is deliberately not registered with
    // oidc-provider: it would have to be a subset of the provider-wide `scopes` list, which is fixed at
    // start-up, and it only rejects scopes from that list anyway. Scope policy is enforced in
    // enforceClientPolicy() instead.
    metadata: {
      client_id: clientId,
      ...(clientSecret ? { client_secret: clientSecret } : {}),
      ...(jwtMethod === 'private_key_jwt' ? { jwks: raw.jwks } : {}),
      token_endpoint_auth_method: methods[0],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  };
}

const configPath = process.env.IDP_CONFIG;
if (!configPath) fail('set IDP_CONFIG to the path of the JSON config file');
const config = JSON.parse(readFileSync(configPath, 'utf8'));

const { issuer, port, jwks } = config;
if (typeof issuer !== 'string') fail('issuer is required');
if (!Number.isInteger(port)) fail('port is required');
if (!Array.isArray(jwks?.keys) || !jwks.keys.length) fail('jwks.keys is required');
const audiences = new Set(config.audiences ?? []);
if (!audiences.size) fail('audiences must list at least one audience');
const defaultAudience = config.default_audience ?? [...audiences][0];
if (!audiences.has(defaultAudience)) fail('default_audience must be one of audiences');

// client_id -> normalised client; read by the adapter on every lookup, so runtime changes apply at once.
const clients = new Map();
for (const raw of config.clients ?? []) {
  const client = normaliseClient(raw);
  clients.set(client.clientId, client);
}

const stats = { token_requests: 0, token_requests_by_client: {} };

// Minimal in-memory adapter. "Client" is served from `clients`; oidc-provider caches adapter-backed
// clients by a fingerprint of their metadata, so a changed secret yields a fresh Client on the next request
// (unlike static `clients` configuration, which is cached for the life of the process).
const storage = new Map();
class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    storage.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    if (this.model === 'Client') {
      const client = clients.get(id);
      return client ? { ...client.metadata } : undefined;
    }
    const entry = storage.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt <= Date.now()) {
      storage.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUserCode() {
    return undefined;
  }

  async findByUid() {
    return undefined;
  }

  async consume(id) {
    const entry = storage.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of storage) {
      if (entry.payload?.grantId === grantId) storage.delete(key);
    }
  }
}

function requestedScopes(ctx) {
  const { scope } = ctx.oidc.params;
  return scope ? [...new Set(scope.split(' ').filter(Boolean))] : [];
}

// Called (via getResourceServerInfo) exactly once per client_credentials token request, after the client
// authenticated and before the token is minted. oidc-provider itself accepts client_secret_basic and
// client_secret_post interchangeably for any client_secret_* client and silently drops scopes the resource
// server does not know, so the stricter, IdP-like checks live here.
function enforceClientPolicy(ctx, client) {
  const own = clients.get(client.clientId);
  if (!own) throw new errors.InvalidClientAuth('client not found');

  let used;
  if (ctx.oidc.params.client_assertion !== undefined) used = client.clientAuthMethod; // checked by oidc-provider
  else used = ctx.headers.authorization !== undefined ? 'client_secret_basic' : 'client_secret_post';
  if (!own.authMethods.has(used)) {
    throw new errors.InvalidClientAuth(`client is not registered for ${used}`);
  }

  const scopes = requestedScopes(ctx);
  const denied = scopes.filter((s) => !own.scopes.has(s));
  if (denied.length) {
    throw new errors.InvalidScope('requested scope is not allowed', denied.join(' '));
  }
  if (!scopes.length && own.scopes.size) {
    // Like Auth0: no scope requested -> all scopes the client is allowed.
    ctx.oidc.params.scope = [...own.scopes].join(' ');
  }
  return own;
}

const provider = new Provider(issuer, {
  adapter: Adapter,
  jwks,
  clients: [],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount: async () => undefined,
  clientAuthMethods: [...AUTH_METHODS],
  enabledJWA: {
    clientAuthSigningAlgValues: [
      'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512',
    ],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter: use the `audience` form field when present, else the configured default.
      defaultResource: async (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        return ctx.oidc.params.audience || defaultAudience;
      },
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => {
        const { audience } = ctx.oidc.params;
        if (audience && audience !== resourceIndicator) {
          throw new errors.InvalidTarget('audience and resource must not differ');
        }
        if (!audiences.has(resourceIndicator)) {
          throw new errors.InvalidTarget(`unknown audience ${resourceIndicator}`);
        }
        const own = enforceClientPolicy(ctx, client);
        return {
          scope: [...own.scopes].join(' '),
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: own.accessTokenTTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    ClientCredentials: (ctx, token, client) => token.resourceServer?.accessTokenTTL
      ?? clients.get(client.clientId)?.accessTokenTTL ?? 300,
  },
});

// `extraParams` only reach the authorization endpoint; the token endpoint strips every parameter its grant
// type did not register. So register client_credentials again with `audience` next to `resource`.
provider.registerGrantType(
  'client_credentials',
  clientCredentialsHandler,
  [...clientCredentialsParameters, 'resource', 'audience'],
  ['resource'],
);

provider.on('server_error', (ctx, err) => {
  console.error('server_error', err);
});

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    return undefined;
  }
}

function basicClientId(header) {
  const [scheme, value] = (header ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i === -1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

async function testRoutes(ctx) {
  if (ctx.method === 'GET' && ctx.path === '/_test/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/_test/reset') {
    stats.token_requests = 0;
    stats.token_requests_by_client = {};
    ctx.body = stats;
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/_test/clients') {
    const body = await readJson(ctx);
    let client;
    try {
      client = normaliseClient(body);
      await provider.Client.validate(client.metadata);
    } catch (err) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_client_metadata', error_description: err.error_description || err.message };
      return;
    }
    clients.set(client.clientId, client);
    ctx.body = { client_id: client.clientId };
    return;
  }
  ctx.status = 404;
  ctx.body = { error: 'not_found' };
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/_test/')) {
    await testRoutes(ctx);
    return;
  }
  if (ctx.method !== 'POST' || ctx.path !== TOKEN_PATH) {
    await next();
    return;
  }
  try {
    await next();
  } finally {
    // Count every token request, successful or not; runs before Koa writes the response.
    const clientId = ctx.oidc?.authorization?.clientId ?? ctx.oidc?.params?.client_id
      ?? basicClientId(ctx.headers.authorization) ?? '';
    stats.token_requests += 1;
    stats.token_requests_by_client[clientId] = (stats.token_requests_by_client[clientId] ?? 0) + 1;
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`IDP READY ${issuer}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
