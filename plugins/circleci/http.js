// The plugin's requests: fetch() (StarlingMonkey implements it over
// wasi:http), and, when fetch fails, one direct wasi:http request to learn
// why. StarlingMonkey rejects every failure with the same
// `TypeError: NetworkError when attempting to fetch resource`, while the
// wasi:http error code says whether keyrot denied the host, the connection
// was refused, the name did not resolve, and so on.

import { handle } from 'wasi:http/outgoing-handler@0.2.10';
import { Fields, OutgoingRequest } from 'wasi:http/types@0.2.10';

/**
 * Sends one request and reads the whole answer. Resolves to `{status,
 * body}`; rejects with `{code, message}` on a transport failure, `code` the
 * wasi:http error code in keyrot's spelling (e.g. `HttpRequestDenied`) when
 * it could be learned.
 */
export async function send(url, { method, headers, body }) {
  let response;
  try {
    // No redirects: CircleCI's API does not redirect, and a redirect
    // elsewhere is reported rather than followed. fetch() sends a string
    // body with its Content-Length.
    response = await fetch(url, { method, headers, body, redirect: 'manual' });
  } catch (error) {
    throw { code: errorCode(url), message: String(error?.message ?? error) };
  }
  try {
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after') ?? undefined,
      body: await response.text(),
    };
  } catch (error) {
    throw { code: undefined, message: `reading the response failed: ${error?.message ?? error}` };
  }
}

/**
 * Why a request to `url` cannot be made, asked of wasi:http directly with a
 * body-less GET. `undefined` if it succeeds now or the answer has no code.
 */
function errorCode(url) {
  try {
    const target = new URL(url);
    const request = new OutgoingRequest(new Fields());
    request.setMethod({ tag: 'get' });
    request.setScheme({ tag: target.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
    request.setAuthority(target.host);
    request.setPathWithQuery(target.pathname);
    let future;
    try {
      future = handle(request, undefined);
    } catch (error) {
      return codeName(error?.payload);
    }
    future.subscribe().block();
    // option<result<result<incoming-response, error-code>>>
    const outer = future.get();
    const inner = outer?.tag === 'ok' ? outer.val : undefined;
    return inner?.tag === 'err' ? codeName(inner.val) : undefined;
  } catch {
    return undefined;
  }
}

/** `{tag: 'HTTP-request-denied'}` -> `HttpRequestDenied`, as keyrot's logs spell it. */
function codeName(code) {
  if (typeof code?.tag !== 'string') {
    return undefined;
  }
  return code.tag
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase())
    .join('');
}
