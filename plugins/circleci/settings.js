// The plugin's settings, parsed and checked without any I/O: which project
// or context, how to reach the API, and what the two variables are called. Pure, so it
// is unit-tested under Node (test/settings.test.js); handler.js feeds it
// wasi:config.

export const PROJECT_SLUG = 'project-slug';
export const CONTEXT = 'context';
export const ORG = 'org';
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
    required: false,
    secret: false,
  },
  {
    name: CONTEXT,
    description:
      'CircleCI context whose environment variables to set instead of a project\'s: its id ' +
      '(a UUID), or its name together with org',
    required: false,
    secret: false,
  },
  {
    name: ORG,
    description:
      'With a context name: the organization that owns it, as VCS/ORG (e.g. gh/octo) or its ' +
      'organization id (a UUID)',
    required: false,
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
  const context = value(CONTEXT);
  const org = value(ORG);
  if (slug !== undefined && context !== undefined) {
    throw `settings '${PROJECT_SLUG}' and '${CONTEXT}' are both set: set exactly one`;
  }
  if (slug === undefined && context === undefined) {
    throw (
      `set '${PROJECT_SLUG}' (e.g. --config ${PROJECT_SLUG}=gh/octo/app) or '${CONTEXT}' ` +
      `(e.g. --config ${CONTEXT}=aws-prod --config ${ORG}=gh/octo)`
    );
  }
  if (org !== undefined && context === undefined) {
    throw `setting '${ORG}' applies to a context only: remove it or set '${CONTEXT}'`;
  }
  let target;
  if (slug !== undefined) {
    const segments = slug.split('/');
    if (segments.length !== 3 || segments.some((s) => s === '' || /[\s?#%]/.test(s))) {
      throw (
        `setting '${PROJECT_SLUG}' is '${slug}', not VCS/ORG/REPO: e.g. gh/octo/app, ` +
        'bb/team/repo, or circleci/ORG_ID/PROJECT_ID'
      );
    }
    // Each segment encoded on its own: the slashes stay path separators.
    target = { kind: 'project', slug, slugPath: segments.map(encodeURIComponent).join('/') };
  } else {
    target = contextTarget(context, org);
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
    ...target,
    apiUrl,
    keyIdVariable,
    secretKeyVariable,
    token,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A context by id, or by name within an organization (VCS/ORG or an
 * organization id). `where` names it in messages.
 */
function contextTarget(context, org) {
  if (UUID.test(context)) {
    if (org !== undefined) {
      throw `setting '${ORG}' is not needed with a context id: remove it`;
    }
    return { kind: 'context', contextId: context.toLowerCase(), where: `context ${context}` };
  }
  if (context.length > 512 || /[\u0000-\u001f]/.test(context)) {
    throw `setting '${CONTEXT}' must be a context id or name`;
  }
  if (org === undefined) {
    throw (
      `setting '${CONTEXT}' is a name ('${context}'): also set '${ORG}' to the organization ` +
      `that owns it (e.g. --config ${ORG}=gh/octo), or give the context's id`
    );
  }
  let owner;
  if (UUID.test(org)) {
    owner = { param: 'owner-id', value: org.toLowerCase() };
  } else {
    const parts = org.split('/');
    if (parts.length !== 2 || parts.some((s) => s === '' || /[\s?#%&]/.test(s))) {
      throw `setting '${ORG}' is '${org}', not VCS/ORG or an organization id: e.g. gh/octo`;
    }
    owner = { param: 'owner-slug', value: org };
  }
  return { kind: 'context', contextName: context, owner, where: `context '${context}' of ${org}` };
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
