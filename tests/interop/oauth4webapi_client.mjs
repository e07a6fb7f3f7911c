// A relying party built on oauth4webapi (panva), driven by tests/interop/test_oauth4webapi.py.
//
// The library does the protocol: discovery, the pushed authorization request with client
// authentication and a DPoP proof, the authorization response's checks (state, RFC 9207 iss),
// the token request with PKCE and DPoP, the ID token's claims, userinfo with DPoP, refresh, and
// the DPoP nonce dance (RFC 9449 §8). This script only wires the calls together and reports.
//
// Conversation with pytest, one JSON document per line:
//   stdin  <- the scenario: {scenario, issuer, client_id, redirect_uri, scope, client_secret | client_jwk}
//   stdout -> {step: "authorize", url}     stdin <- {callback}: where the provider sent the browser back
//   stdout -> {step: "done", ...}           or {step: "error", name, message, error, status}, exit code 1
// The library's path comes in OAUTH4WEBAPI (the installed build/index.js).

import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const oauth = await import(pathToFileURL(process.env.OAUTH4WEBAPI).href);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function say(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

async function hear() {
  const { value, done } = await lines.next();
  if (done) throw new Error('pytest closed the conversation');
  return JSON.parse(value);
}

// RFC 9449 §8: a request refused with use_dpop_nonce is sent once more; the handler has kept the nonce.
async function withNonce(send) {
  try {
    return await send();
  } catch (error) {
    if (oauth.isDPoPNonceError(error)) return send();
    throw error;
  }
}

async function publicJwk(keyPair) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', keyPair.publicKey);
  return { kty, crv, x, y };
}

// The authorization code flow up to the code, the request pushed with a DPoP proof (RFC 9449 §10.1).
async function pushAndAuthorize(as, client, clientAuth, DPoP, config, options) {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const parameters = new URLSearchParams({
    response_type: 'code', redirect_uri: config.redirect_uri, scope: config.scope, state, nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const pushed = await withNonce(async () => oauth.processPushedAuthorizationResponse(
    as, client, await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, { ...options, DPoP })));
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', client.client_id);
  authorize.searchParams.set('request_uri', pushed.request_uri);
  say({ step: 'authorize', url: authorize.href, expires_in: pushed.expires_in });
  const { callback } = await hear();
  const response = oauth.validateAuthResponse(as, client, new URL(callback), state);  // state and iss (RFC 9207)
  return { response, codeVerifier, nonce };
}

async function redeem(as, client, clientAuth, DPoP, config, flow, options) {
  return withNonce(async () => oauth.processAuthorizationCodeResponse(as, client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, flow.response, config.redirect_uri, flow.codeVerifier,
                                              { ...options, DPoP }),
    { expectedNonce: flow.nonce, requireIdToken: true }));
}

async function userinfo(as, client, DPoP, accessToken, subject, options) {
  return withNonce(async () => oauth.processUserInfoResponse(as, client, subject,
    await oauth.userInfoRequest(as, client, accessToken, { ...options, DPoP })));
}

async function refresh(as, client, clientAuth, DPoP, refreshToken, options) {
  return withNonce(async () => oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, { ...options, DPoP })));
}

// A code bound at the PAR endpoint to the key of its proof: another key is refused, that key gets DPoP tokens.
async function parDpopBinding(as, config, options) {
  const client = { client_id: config.client_id };
  const clientAuth = oauth.ClientSecretBasic(config.client_secret);
  const keys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keys);
  const flow = await pushAndAuthorize(as, client, clientAuth, DPoP, config, options);
  let otherKey = null;
  try {
    await redeem(as, client, clientAuth, oauth.DPoP(client, await oauth.generateKeyPair('ES256')), config, flow, options);
  } catch (error) {
    otherKey = { error: error.error ?? null, status: error.status ?? null };
  }
  const tokens = await redeem(as, client, clientAuth, DPoP, config, flow, options);
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  const profile = await userinfo(as, client, DPoP, tokens.access_token, claims.sub, options);
  return { other_key: otherKey, token_type: tokens.token_type, access_token: tokens.access_token,
           dpop_jwk: await publicJwk(keys), sub: claims.sub, userinfo: profile };
}

// The FAPI 2.0 Security Profile end to end: PAR, PKCE, private_key_jwt (aud = issuer), DPoP, no rotation.
async function fapi2(as, config, options) {
  const client = { client_id: config.client_id, id_token_signed_response_alg: 'ES256' };
  const privateKey = await crypto.subtle.importKey('jwk', config.client_jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const clientAuth = oauth.PrivateKeyJwt({ key: privateKey, kid: config.client_jwk.kid });
  const keys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keys);
  const flow = await pushAndAuthorize(as, client, clientAuth, DPoP, config, options);
  const tokens = await redeem(as, client, clientAuth, DPoP, config, flow, options);
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  const first = await userinfo(as, client, DPoP, tokens.access_token, claims.sub, options);
  const refreshed = await refresh(as, client, clientAuth, DPoP, tokens.refresh_token, options);
  const again = await refresh(as, client, clientAuth, DPoP, tokens.refresh_token, options);  // kept, not rotated
  const second = await userinfo(as, client, DPoP, again.access_token, claims.sub, options);
  return {
    token_type: tokens.token_type, access_token: tokens.access_token, id_token: tokens.id_token, dpop_jwk: await publicJwk(keys),
    sub: claims.sub, acr: claims.acr ?? null, userinfo: first,
    refreshed: { token_type: refreshed.token_type, has_refresh_token: 'refresh_token' in refreshed, access_token: refreshed.access_token },
    again: { token_type: again.token_type, has_refresh_token: 'refresh_token' in again, access_token: again.access_token },
    userinfo_after_refresh: second,
  };
}

const SCENARIOS = { par_dpop_binding: parDpopBinding, fapi2 };

try {
  const config = await hear();
  // The provider runs on a loopback http address in the tests; every other check stays on.
  const options = { [oauth.allowInsecureRequests]: true };
  const issuer = new URL(config.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oidc' }));
  say({ step: 'done', ...(await SCENARIOS[config.scenario](as, config, options)) });
  process.exit(0);
} catch (error) {
  say({ step: 'error', name: error.name, message: error.message, error: error.error ?? null, status: error.status ?? null,
        cause: error.cause ? JSON.stringify(error.cause) : null });
  process.exit(1);
}
