// keyrot handler that stores the new access key as two environment variables
// of a CircleCI project (the key id and the secret access key), through the
// CircleCI API v2.
//
// `preflight` checks the settings, reads the project (which proves the API
// is reachable and the token sees it) and, when the key id variable exists,
// compares its masked value with the current key. `handle` writes the key id
// variable, then the secret one; if the second write fails, it puts the key
// id variable back to the current key's id.
//
// Modules: settings.js (parse and check) and api.js (CircleCI's shapes and
// error wording) are pure and unit-tested under Node; this file does the I/O.

import { get } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';

import { Call, compareMasked, envvarPath, envvarsPath, projectPath, statusError, transportError } from './api.js';
import * as http from './http.js';
import { SETTINGS, loadSettings } from './settings.js';

const NAME = 'circleci';
const VERSION = '0.1.0';

export const handler = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: 'Stores the new key as environment variables of a CircleCI project.',
      settings: SETTINGS,
    };
  },

  async preflight(rotation) {
    return outcome(async () => {
      const settings = readSettings();
      const project = await call(settings, Call.readProject(settings), 'GET', projectPath(settings));
      const name = safeJson(project.body)?.name;
      log(
        'info',
        'preflight',
        `can read project ${settings.slug}${typeof name === 'string' ? ` (${name.slice(0, 100)})` : ''}; ` +
          `will set ${settings.keyIdVariable} and ${settings.secretKeyVariable} for user ${rotation.userName}`,
      );
      await checkCurrentKey(settings, rotation.currentKeyId);
    });
  },

  async handle(rotation, key) {
    return outcome(async () => {
      const settings = readSettings();
      // The key id goes first: if the secret then fails, the key id variable
      // can be put back to the current key's id (known from `rotation`),
      // whereas a previous secret could never be restored.
      await setVariable(settings, settings.keyIdVariable, key.accessKeyId);
      log('info', 'handle', `set ${settings.keyIdVariable} to ${key.accessKeyId}`);
      try {
        await setVariable(settings, settings.secretKeyVariable, key.secretAccessKey);
      } catch (error) {
        throw `${error}; ${await restoreKeyId(settings, rotation.currentKeyId)}`;
      }
      log('info', 'handle', `set ${settings.secretKeyVariable} to the new secret access key`);
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

/**
 * Logs what the key id variable holds now: CircleCI shows only its last four
 * characters, enough to tell whether it is the current key.
 */
async function checkCurrentKey(settings, currentKeyId) {
  const name = settings.keyIdVariable;
  const response = await send(settings, Call.readVariable(settings, name), 'GET', envvarPath(settings, name));
  if (response.status === 404) {
    log('info', 'preflight', `${name} is not set yet: it will be created`);
    return;
  }
  if (!ok(response.status)) {
    throw statusError(Call.readVariable(settings, name), settings, response.status, response.body);
  }
  const masked = safeJson(response.body)?.value;
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

/** `POST .../envvar` creates the variable or replaces its value. */
async function setVariable(settings, name, value) {
  const body = JSON.stringify({ name, value });
  await call(settings, Call.setVariable(settings, name), 'POST', envvarsPath(settings), body);
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

/** One request to `settings.apiUrl + path`; a transport failure is thrown as words. */
async function send(settings, action, method, path, body) {
  const headers = { accept: 'application/json', 'user-agent': `keyrot-${NAME}/${VERSION}` };
  if (settings.token !== undefined) {
    headers['circle-token'] = settings.token;
  }
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
  }
  try {
    return await http.send(`${settings.apiUrl}${path}`, { method, headers, body });
  } catch (failure) {
    throw transportError(action, settings, failure);
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
