// CircleCI's API v2 as pure data: paths, request bodies, and an unsuccessful
// answer or a transport failure turned into a message that says what failed
// and what to do. No I/O, so it is unit-tested under Node (test/api.test.js).

/** Longest excerpt of CircleCI's `message` quoted in an error. */
const MAX_MESSAGE_CHARS = 200;

/** `GET` this to check the token and the project. */
export function projectPath(settings) {
  return `/api/v2/project/${settings.slugPath}`;
}

/** `POST {name, value}` here to create or replace a variable. */
export function envvarsPath(settings) {
  return `${projectPath(settings)}/envvar`;
}

/** `GET` this for a variable's masked value (`xxxx` + its last 4 characters); `DELETE` it. */
export function envvarPath(settings, name) {
  return `${envvarsPath(settings)}/${encodeURIComponent(name)}`;
}

/** `GET` this for a context (id, name). */
export function contextPath(contextId) {
  return `/api/v2/context/${encodeURIComponent(contextId)}`;
}

/** `GET` this for one page of an organization's contexts. */
export function contextsPath(settings, pageToken) {
  const { param, value } = settings.owner;
  const page = pageToken ? `&page-token=${encodeURIComponent(pageToken)}` : '';
  return `/api/v2/context?${param}=${encodeURIComponent(value)}${page}`;
}

/** `GET` this for one page of a context's variables (names only, never values). */
export function contextVariablesPath(contextId, pageToken) {
  const page = pageToken ? `?page-token=${encodeURIComponent(pageToken)}` : '';
  return `${contextPath(contextId)}/environment-variable${page}`;
}

/** `PUT {value}` here to add or update a context variable. */
export function contextVariablePath(contextId, name) {
  return `${contextPath(contextId)}/environment-variable/${encodeURIComponent(name)}`;
}

/** The project or context, for messages. */
export function where(settings) {
  return settings.kind === 'context' ? settings.where : `project ${settings.slug}`;
}

/** What a call was doing, for error messages. */
export const Call = {
  readProject: (settings) => `reading project ${settings.slug}`,
  readContext: (settings) => `reading ${settings.where}`,
  findContext: (settings) => `looking for ${settings.where}`,
  readVariable: (settings, name) => `reading variable ${name} of ${where(settings)}`,
  setVariable: (settings, name) => `setting variable ${name} of ${where(settings)}`,
  deleteVariable: (settings, name) => `deleting variable ${name} of ${where(settings)}`,
};

/** The last four characters CircleCI shows of a masked value (`xxxx1234`). */
export function maskedTail(masked) {
  if (typeof masked !== 'string') {
    return undefined;
  }
  const tail = masked.replace(/^x+/, '');
  return tail.length >= 4 ? tail.slice(-4) : undefined;
}

/**
 * Whether a `POST .../envvar` visibly replaced a variable's value with
 * `value`: the masked value after ends in its last four characters, and
 * the one before (if any) did not (else the two cannot be told apart).
 */
export function confirmedReplaced(before, after, value) {
  const tail = value.slice(-4);
  return maskedTail(after) === tail && (before === undefined || maskedTail(before) !== tail);
}

/** Seconds from a `Retry-After` header (a number of seconds), if any. */
export function retryAfterSeconds(header) {
  return typeof header === 'string' && /^\s*\d+\s*$/.test(header) ? Number(header) : undefined;
}

/** The error for a rate limit CircleCI would not lift in time. */
export function rateLimitError(action, seconds) {
  const when = seconds === undefined ? 'CircleCI did not say when to retry' : `CircleCI asks to retry in ${seconds} s`;
  return `CircleCI is rate-limiting requests (429 Too Many Requests) while ${action}: ${when}; run keyrot again then`;
}

/**
 * Explains a non-2xx answer: the status, CircleCI's own `message` when the
 * body has one, which call on which project, and what to check next.
 */
export function statusError(action, settings, status, body) {
  const message = circleMessage(body);
  const afterStatus = message ? `: ${message}` : '';
  const afterWords = message ? ` (${message})` : '';
  switch (true) {
    case status === 401 || status === 403: {
      const source = settings.token
        ? ''
        : " (no 'token' setting: is the Circle-Token header injected with --inject-header?)";
      return (
        `CircleCI rejected the token (${status}${afterStatus}) while ${action}: check that it is ` +
        `a valid personal API token of a user with write access to the project${source}`
      );
    }
    case status === 404 && settings.kind === 'context':
      return (
        `${settings.where} not found, or the token cannot see it (404${afterStatus}) while ` +
        `${action}: check the '${'context'}' and '${'org'}' settings and the token's organization access`
      );
    case status === 404:
      return (
        `project ${settings.slug} not found, or the token cannot see it (404${afterStatus}) while ` +
        `${action}: check the slug (VCS/ORG/REPO) and that the token's user follows the project`
      );
    case status === 429:
      return `CircleCI is rate-limiting requests (429${afterStatus}) while ${action}: try again later`;
    case status >= 500 && status <= 599:
      return `CircleCI error ${status}${afterWords} while ${action}: try again later`;
    default:
      return `unexpected CircleCI response ${status}${afterWords} while ${action}`;
  }
}

/**
 * Explains a request that got no answer. `failure` is what http.js throws:
 * `code`, the wasi:http error code in keyrot's spelling (e.g.
 * `HttpRequestDenied`) when known, and fetch's own `message`.
 */
export function transportError(action, settings, failure) {
  const code = failure?.code;
  const grant = `--allow-host ${allowHostFlag(settings.apiUrl)}`;
  let cause;
  switch (code) {
    case 'HttpRequestDenied':
      cause = `keyrot denied the request (${code}): grant the host with ${grant}`;
      break;
    case 'DnsError':
    case 'DnsTimeout':
    case 'DestinationNotFound':
      cause = `cannot resolve the host name (${code})`;
      break;
    case 'ConnectionRefused':
      cause = `connection refused (${code})`;
      break;
    case 'ConnectionTimeout':
      cause = `connection timed out (${code})`;
      break;
    case 'ConnectionReadTimeout':
    case 'HttpResponseTimeout':
      cause = `CircleCI did not answer in time (${code})`;
      break;
    case 'TlsCertificateError':
      cause = `the server's TLS certificate is not valid (${code})`;
      break;
    case undefined:
      cause = `${failure?.message ?? failure} (is the host allowed with ${grant}, and reachable?)`;
      break;
    default:
      cause = code;
  }
  return `cannot reach CircleCI at ${settings.apiUrl} while ${action}: ${cause}`;
}

/**
 * The `--allow-host` value that admits `apiUrl`: the bare host for HTTPS on
 * 443, otherwise scheme, host and port spelled out.
 */
export function allowHostFlag(apiUrl) {
  const url = new URL(apiUrl);
  if (url.protocol === 'https:' && url.port === '') {
    return url.hostname;
  }
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol}//${url.hostname}:${port}`;
}

/**
 * CircleCI's error bodies are `{"message": "..."}`; quote the message, cut
 * short and with control characters removed so a hostile or broken server
 * cannot forge log lines.
 */
export function circleMessage(body) {
  let message;
  try {
    message = JSON.parse(body)?.message;
  } catch {
    return undefined;
  }
  if (typeof message !== 'string') {
    return undefined;
  }
  const chars = [...message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')];
  let clean = chars.slice(0, MAX_MESSAGE_CHARS).join('');
  if (chars.length > MAX_MESSAGE_CHARS) {
    clean += '…';
  }
  clean = clean.trim();
  return clean === '' ? undefined : clean;
}

/**
 * What a masked value (`xxxx` + the last 4 characters) says about a key id:
 * `'same'` if it ends like `keyId`, `'different'` if not, `'unknown'` when
 * the mask hides too much to tell.
 */
export function compareMasked(masked, keyId) {
  if (typeof masked !== 'string' || !keyId) {
    return 'unknown';
  }
  const tail = masked.replace(/^x+/, '');
  if (tail.length < 4 || keyId.length < 4) {
    return 'unknown';
  }
  return keyId.endsWith(tail.slice(-4)) ? 'same' : 'different';
}
