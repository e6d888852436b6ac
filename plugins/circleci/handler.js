// keyrot handler that stores the new access key as two environment variables
// of a CircleCI project or context (the key id and the secret access key),
// through the CircleCI API v2.
//
// `preflight` checks the settings, reads the project or context (which proves
// the API is reachable and the token sees it) and, for a project whose key id
// variable exists, compares its masked value with the current key. `handle`
// writes the key id variable, then the secret one; if the second write fails,
// it puts the key id variable back to the current key's id.
//
// A context variable is written with `PUT`, which adds or updates it. A
// project variable is written with `POST .../envvar`, whose effect on an
// existing variable CircleCI does not document: the plugin reads the masked
// value back, and only when it does not end in the new value's last four
// characters deletes the variable and creates it again.
//
// Modules: settings.js (parse and check) and api.js (CircleCI's shapes and
// error wording) are pure and unit-tested under Node; this file does the I/O.

import { get } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';

import {
  Call,
  compareMasked,
  confirmedReplaced,
  contextPath,
  contextVariablePath,
  contextVariablesPath,
  contextsPath,
  envvarPath,
  envvarsPath,
  projectPath,
  rateLimitError,
  retryAfterSeconds,
  statusError,
  transportError,
  where,
} from './api.js';
import * as http from './http.js';
import { SETTINGS, loadSettings } from './settings.js';

const NAME = 'circleci';
const VERSION = '0.2.0';
/** Seconds one request waits in total for CircleCI's rate limit to lift. */
const MAX_RATE_LIMIT_WAIT = 30;
/** Retries after a 429, per request. */
const MAX_RATE_LIMIT_RETRIES = 3;
/** Pages of contexts or context variables read at most. */
const MAX_PAGES = 50;

export const handler = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: 'Stores the new key as environment variables of a CircleCI project or context.',
      settings: SETTINGS,
    };
  },

  async preflight(rotation) {
    return outcome(async () => {
      const settings = readSettings();
      const names = `${settings.keyIdVariable} and ${settings.secretKeyVariable}`;
      if (settings.kind === 'context') {
        const context = await resolveContext(settings);
        log('info', 'preflight', `can read ${settings.where} (id ${context.id}); will set ${names} for user ${rotation.userName}`);
        await logContextVariables(settings, context.id);
        return;
      }
      const project = await call(settings, Call.readProject(settings), 'GET', projectPath(settings));
      const name = safeJson(project.body)?.name;
      log(
        'info',
        'preflight',
        `can read project ${settings.slug}${typeof name === 'string' ? ` (${name.slice(0, 100)})` : ''}; ` +
          `will set ${names} for user ${rotation.userName}`,
      );
      await checkCurrentKey(settings, rotation.currentKeyId);
    });
  },

  async handle(rotation, key) {
    return outcome(async () => {
      const settings = readSettings();
      if (settings.kind === 'context') {
        settings.contextId = (await resolveContext(settings)).id;
      }
      // The key id goes first: if the secret then fails, the key id variable
      // can be put back to the current key's id (known from `rotation`),
      // whereas a previous secret could never be restored.
      await setVariable(settings, settings.keyIdVariable, key.accessKeyId);
      log('info', 'handle', `set ${settings.keyIdVariable} of ${where(settings)} to ${key.accessKeyId}`);
      try {
        await setVariable(settings, settings.secretKeyVariable, key.secretAccessKey);
      } catch (error) {
        throw `${error}; ${await restoreKeyId(settings, rotation.currentKeyId)}`;
      }
      log('info', 'handle', `set ${settings.secretKeyVariable} of ${where(settings)} to the new secret access key`);
    });
  },
};

/**
 * Runs a call's body and turns whatever it throws into the string keyrot
 * shows the operator: an error message thrown on purpose stays as it is, a
 * bug (a JS exception) is named as one instead of trapping.
 */
async function outcome(body) {
  try {
    await body();
  } catch (error) {
    if (typeof error === 'string') {
      throw error;
    }
    throw `internal error in the ${NAME} plugin: ${error?.stack ?? error}`;
  }
}

function readSettings() {
  return loadSettings((name) => {
    try {
      return get(name);
    } catch (error) {
      throw `cannot read setting '${name}': ${JSON.stringify(error?.payload ?? String(error))}`;
    }
  });
}

/** The context `{id, name}`: read by id, or found by name among the organization's. */
async function resolveContext(settings) {
  if (settings.contextId !== undefined) {
    const response = await call(settings, Call.readContext(settings), 'GET', contextPath(settings.contextId));
    const context = safeJson(response.body);
    if (typeof context?.id !== 'string') {
      throw `CircleCI's answer for ${settings.where} is not a context: is the api-url CircleCI's?`;
    }
    return context;
  }
  let pageToken;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await call(settings, Call.findContext(settings), 'GET', contextsPath(settings, pageToken));
    const body = safeJson(response.body);
    const found = (body?.items ?? []).find((c) => c?.name === settings.contextName);
    if (found && typeof found.id === 'string') {
      return found;
    }
    pageToken = body?.next_page_token;
    if (!pageToken) {
      break;
    }
  }
  throw `no ${settings.where}: check the context's name and the 'org' setting (the token's user must see the organization's contexts)`;
}

/** Says whether the context already has the two variables (CircleCI never shows their values). */
async function logContextVariables(settings, contextId) {
  const names = new Set();
  let pageToken;
  for (let page = 0; page < MAX_PAGES; page++) {
    const action = Call.readVariable(settings, settings.keyIdVariable);
    const response = await call(settings, action, 'GET', contextVariablesPath(contextId, pageToken));
    const body = safeJson(response.body);
    for (const item of body?.items ?? []) {
      names.add(item?.variable);
    }
    pageToken = body?.next_page_token;
    if (!pageToken) {
      break;
    }
  }
  for (const name of [settings.keyIdVariable, settings.secretKeyVariable]) {
    const state = names.has(name) ? 'exists: its value will be replaced' : 'is not set yet: it will be added';
    log('info', 'preflight', `${name} of ${settings.where} ${state}`);
  }
}

/**
 * Logs what the key id variable holds now: CircleCI shows only its last four
 * characters, enough to tell whether it is the current key.
 */
async function checkCurrentKey(settings, currentKeyId) {
  const name = settings.keyIdVariable;
  const masked = await readMasked(settings, name);
  if (masked === undefined) {
    log('info', 'preflight', `${name} is not set yet: it will be created`);
    return;
  }
  switch (currentKeyId === undefined ? 'unknown' : compareMasked(masked, currentKeyId)) {
    case 'same':
      log('info', 'preflight', `${name} holds the current key ${currentKeyId}`);
      break;
    case 'different':
      log(
        'warn',
        'preflight',
        `${name} does not hold the current key ${currentKeyId} (it ends in ${String(masked).slice(-4)}): ` +
          'the project used another key, which this rotation replaces',
      );
      break;
    default:
      log('debug', 'preflight', `${name} is set; cannot tell which key it holds`);
  }
}

/** A project variable's masked value, or undefined if it is not set. */
async function readMasked(settings, name) {
  const action = Call.readVariable(settings, name);
  const response = await send(settings, action, 'GET', envvarPath(settings, name));
  if (response.status === 404) {
    return undefined;
  }
  if (!ok(response.status)) {
    throw statusError(action, settings, response.status, response.body);
  }
  const masked = safeJson(response.body)?.value;
  return typeof masked === 'string' ? masked : '';
}

/** Sets a variable of the context or project to `value`, and makes sure it took. */
async function setVariable(settings, name, value) {
  const action = Call.setVariable(settings, name);
  if (settings.kind === 'context') {
    // Documented as "add or update": it replaces the value.
    const body = JSON.stringify({ value });
    await call(settings, action, 'PUT', contextVariablePath(settings.contextId, name), body);
    return;
  }
  const before = await readMasked(settings, name);
  const body = JSON.stringify({ name, value });
  await call(settings, action, 'POST', envvarsPath(settings), body);
  if (confirmedReplaced(before, await readMasked(settings, name), value)) {
    return;
  }
  // POST left the old value (or the old and new values end alike, so it
  // cannot be told): delete the variable and create it again.
  log('warn', 'handle', `CircleCI does not show ${name} of project ${settings.slug} as replaced: deleting and creating it again`);
  await call(settings, Call.deleteVariable(settings, name), 'DELETE', envvarPath(settings, name));
  await call(settings, action, 'POST', envvarsPath(settings), body);
  const after = await readMasked(settings, name);
  if (!confirmedReplaced(undefined, after, value)) {
    throw `${name} of project ${settings.slug} does not hold the new value after deleting and creating it (CircleCI shows ${after === undefined ? 'no variable' : 'another value'})`;
  }
}

/** After a failed secret write: put the key id variable back, and say how that went. */
async function restoreKeyId(settings, currentKeyId) {
  const name = settings.keyIdVariable;
  if (currentKeyId === undefined) {
    return `${name} now holds the new key id, which keyrot deletes; there was no previous key to restore`;
  }
  try {
    await setVariable(settings, name, currentKeyId);
    log('info', 'handle', `restored ${name} to ${currentKeyId}`);
    return `restored ${name} to the current key ${currentKeyId}`;
  } catch (error) {
    return `restoring ${name} to the current key ${currentKeyId} failed too (${error}): set it back by hand`;
  }
}

/** A request whose answer must be 2xx. */
async function call(settings, action, method, path, body) {
  const response = await send(settings, action, method, path, body);
  if (!ok(response.status)) {
    throw statusError(action, settings, response.status, response.body);
  }
  return response;
}

/**
 * One request to `settings.apiUrl + path`; a transport failure is thrown as
 * words. A 429 is retried when `Retry-After` says how long and the waits fit
 * in MAX_RATE_LIMIT_WAIT; otherwise it is an error that says so.
 */
async function send(settings, action, method, path, body) {
  const headers = { accept: 'application/json', 'user-agent': `keyrot-${NAME}/${VERSION}` };
  if (settings.token !== undefined) {
    headers['circle-token'] = settings.token;
  }
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
  }
  let waited = 0;
  for (let retries = 0; ; retries++) {
    let response;
    try {
      response = await http.send(`${settings.apiUrl}${path}`, { method, headers, body });
    } catch (failure) {
      throw transportError(action, settings, failure);
    }
    if (response.status !== 429) {
      return response;
    }
    const seconds = retryAfterSeconds(response.retryAfter);
    if (seconds === undefined || retries >= MAX_RATE_LIMIT_RETRIES || waited + seconds > MAX_RATE_LIMIT_WAIT) {
      throw rateLimitError(action, seconds);
    }
    log('warn', 'http', `CircleCI is rate-limiting requests (429) while ${action}: waiting ${seconds} s as it asks, then retrying`);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    waited += seconds;
  }
}

function ok(status) {
  return status >= 200 && status <= 299;
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
