// Unit tests of settings.js under Node: `npm test` in plugins/js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SETTINGS, loadSettings } from '../settings.js';

const from = (values) => (name) => values[name];

test('defaults fill everything but the slug', () => {
  const s = loadSettings(from({ 'project-slug': 'gh/octo/app' }));
  assert.deepEqual(s, {
    slug: 'gh/octo/app',
    slugPath: 'gh/octo/app',
    apiUrl: 'https://circleci.com',
    keyIdVariable: 'AWS_ACCESS_KEY_ID',
    secretKeyVariable: 'AWS_SECRET_ACCESS_KEY',
    token: undefined,
  });
});

test('every setting read is declared, and only the slug is required', () => {
  assert.deepEqual(
    SETTINGS.map((s) => [s.name, s.required, s.secret]),
    [
      ['project-slug', true, false],
      ['token', false, true],
      ['api-url', false, false],
      ['key-id-variable', false, false],
      ['secret-key-variable', false, false],
    ],
  );
});

test('explicit values are checked and normalized', () => {
  const s = loadSettings(
    from({
      'project-slug': ' circleci/0f1e-2d/9a8b ',
      'api-url': 'http://127.0.0.1:8080/',
      'key-id-variable': 'DEPLOY_KEY_ID',
      'secret-key-variable': 'DEPLOY_SECRET',
      token: 'tok',
    }),
  );
  assert.equal(s.slug, 'circleci/0f1e-2d/9a8b');
  assert.equal(s.apiUrl, 'http://127.0.0.1:8080');
  assert.equal(s.keyIdVariable, 'DEPLOY_KEY_ID');
  assert.equal(s.secretKeyVariable, 'DEPLOY_SECRET');
  assert.equal(s.token, 'tok');
  assert.equal(loadSettings(from({ 'project-slug': 'gh/o/r', 'api-url': 'https://c.example.com/base/' })).apiUrl,
    'https://c.example.com/base');
});

test('slug segments are encoded one by one', () => {
  assert.equal(loadSettings(from({ 'project-slug': 'gh/octo/app+ü' })).slugPath, 'gh/octo/app%2B%C3%BC');
});

test('bad values say which setting and what fits', () => {
  const bad = [
    [{ 'project-slug': undefined }, /'project-slug' is missing/],
    [{ 'project-slug': '  ' }, /'project-slug' is missing/],
    [{ 'project-slug': 'octo/app' }, /not VCS\/ORG\/REPO/],
    [{ 'project-slug': 'gh/octo/app/x' }, /not VCS\/ORG\/REPO/],
    [{ 'project-slug': 'gh//app' }, /not VCS\/ORG\/REPO/],
    [{ 'project-slug': 'gh/octo/app?x=1' }, /not VCS\/ORG\/REPO/],
    [{ 'api-url': 'circleci.com' }, /'api-url' is 'circleci.com', not a URL/],
    [{ 'api-url': 'ftp://circleci.com' }, /http or https/],
    [{ 'api-url': 'https://u:p@circleci.com' }, /credentials/],
    [{ 'api-url': 'https://circleci.com/?x' }, /query/],
    [{ 'key-id-variable': '1KEY' }, /'key-id-variable' is '1KEY'/],
    [{ 'secret-key-variable': 'A-B' }, /'secret-key-variable' is 'A-B'/],
    [{ 'key-id-variable': 'SAME', 'secret-key-variable': 'SAME' }, /must differ/],
    [{ token: 'a\nb' }, /'token' contains a line break/],
  ];
  for (const [values, expected] of bad) {
    const all = { 'project-slug': 'gh/octo/app', ...values };
    assert.throws(() => loadSettings(from(all)), (e) => typeof e === 'string' && expected.test(e), JSON.stringify(values));
  }
});
