// The plugin's settings, parsed and checked without any I/O: which project,
// how to reach the API, and what the two variables are called. Pure, so it
// is unit-tested under Node (test/settings.test.js); handler.js feeds it
// wasi:config.

export const PROJECT_SLUG = 'project-slug';
export const TOKEN = 'token';
export const API_URL = 'api-url';
export const KEY_ID_VARIABLE = 'key-id-variable';
export const SECRET_KEY_VARIABLE = 'secret-key-variable';

export const DEFAULT_API_URL = 'https://circleci.com';
export const DEFAULT_KEY_ID_VARIABLE = 'AWS_ACCESS_KEY_ID';
export const DEFAULT_SECRET_KEY_VARIABLE = 'AWS_SECRET_ACCESS_KEY';

/** Every setting, as `describe()` lists it. */
export const SETTINGS = [
  {
    name: PROJECT_SLUG,
    description:
      'CircleCI project slug VCS/ORG/REPO whose environment variables to set, e.g. gh/octo/app ' +
      '(circleci/ORG_ID/PROJECT_ID for GitLab and GitHub App projects)',
    required: true,
    secret: false,
  },
  {
    name: TOKEN,
    description:
      'CircleCI personal API token with write access to the project; omit when the host ' +
      'injects the Circle-Token header (--inject-header)',
    required: false,
    secret: true,
  },
  {
    name: API_URL,
    description: `CircleCI base URL (default ${DEFAULT_API_URL}), e.g. https://circleci.example.com for CircleCI server`,
    required: false,
    secret: false,
  },
  {
    name: KEY_ID_VARIABLE,
    description: `Environment variable that receives the access key id (default ${DEFAULT_KEY_ID_VARIABLE})`,
    required: false,
    secret: false,
  },
  {
    name: SECRET_KEY_VARIABLE,
    description: `Environment variable that receives the secret access key (default ${DEFAULT_SECRET_KEY_VARIABLE})`,
    required: false,
    secret: false,
  },
];

/**
 * Reads every setting through `get(name)` (a string, or undefined when
 * unset) and checks them together. Throws a string that says which setting
 * is wrong and what a good value looks like.
 */
export function loadSettings(get) {
  const value = (name) => {
    const v = get(name);
    return v === undefined || v === null || v.trim() === '' ? undefined : v.trim();
  };

  const slug = value(PROJECT_SLUG);
  if (slug === undefined) {
    throw `setting '${PROJECT_SLUG}' is missing: pass e.g. --config ${PROJECT_SLUG}=gh/octo/app`;
  }
  const segments = slug.split('/');
  if (segments.length !== 3 || segments.some((s) => s === '' || /[\s?#%]/.test(s))) {
    throw (
      `setting '${PROJECT_SLUG}' is '${slug}', not VCS/ORG/REPO: e.g. gh/octo/app, ` +
      'bb/team/repo, or circleci/ORG_ID/PROJECT_ID'
    );
  }

  const apiUrl = parseApiUrl(value(API_URL) ?? DEFAULT_API_URL);
  const keyIdVariable = variableName(KEY_ID_VARIABLE, value(KEY_ID_VARIABLE) ?? DEFAULT_KEY_ID_VARIABLE);
  const secretKeyVariable = variableName(
    SECRET_KEY_VARIABLE,
    value(SECRET_KEY_VARIABLE) ?? DEFAULT_SECRET_KEY_VARIABLE,
  );
  if (keyIdVariable === secretKeyVariable) {
    throw `settings '${KEY_ID_VARIABLE}' and '${SECRET_KEY_VARIABLE}' are both '${keyIdVariable}': they must differ`;
  }

  // The token is used as is: a token may legitimately hold any printable
  // character, but never a line break (it would forge a header).
  const token = get(TOKEN) || undefined;
  if (token !== undefined && /[\r\n\0]/.test(token)) {
    throw `setting '${TOKEN}' contains a line break: check how it was stored`;
  }

  return {
    slug,
    // Each segment encoded on its own: the slashes stay path separators.
    slugPath: segments.map(encodeURIComponent).join('/'),
    apiUrl,
    keyIdVariable,
    secretKeyVariable,
    token,
  };
}

/** An http(s) base URL without a trailing slash, query or fragment. */
function parseApiUrl(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw `setting '${API_URL}' is '${raw}', not a URL: e.g. ${DEFAULT_API_URL}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw `setting '${API_URL}' must be an http or https URL, not '${raw}'`;
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw `setting '${API_URL}' must not carry credentials, a query or a fragment: e.g. ${DEFAULT_API_URL}`;
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** CircleCI variable names: letters, digits and underscores, not starting with a digit. */
function variableName(setting, name) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw `setting '${setting}' is '${name}': an environment variable name is letters, digits and _, not starting with a digit`;
  }
  return name;
}
