// Unit tests of settings.js under Node: `npm test` in plugins/js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SETTINGS, loadSettings } from '../settings.js';

const from = (values) => (name) => values[name];

test('defaults fill everything but the slug', () => {
  const s = loadSettings(from({ 'project-slug': 'gh/octo/app' }));
  assert.deepEqual(s, {
    kind: 'project',
    slug: 'gh/octo/app',
    slugPath: 'gh/octo/app',
    apiUrl: 'https://circleci.com',
    keyIdVariable: 'AWS_ACCESS_KEY_ID',
    secretKeyVariable: 'AWS_SECRET_ACCESS_KEY',
    token: undefined,
  });
});

test('every setting read is declared, none required on its own', () => {
  assert.deepEqual(
    SETTINGS.map((s) => [s.name, s.required, s.secret]),
    [
      ['project-slug', false, false],
      ['context', false, false],
      ['org', false, false],
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
    [{ 'project-slug': undefined }, /set 'project-slug'/],
    [{ 'project-slug': '  ' }, /set 'project-slug'/],
    [{ context: 'aws' }, /both set/],
    [{ org: 'gh/octo' }, /'org' applies to a context only/],
    [{ 'project-slug': undefined, context: 'aws' }, /also set 'org'/],
    [{ 'project-slug': undefined, context: 'aws', org: 'octo' }, /not VCS\/ORG or an organization id/],
    [{ 'project-slug': undefined, context: '6b7c3c2e-1f0a-4a55-9c2e-0d2f3e4a5b6c', org: 'gh/o' }, /not needed/],
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

test('a context by id, or by name within an organization', () => {
  const byId = loadSettings(from({ context: '6B7C3C2E-1F0A-4A55-9C2E-0D2F3E4A5B6C' }));
  assert.equal(byId.kind, 'context');
  assert.equal(byId.contextId, '6b7c3c2e-1f0a-4a55-9c2e-0d2f3e4a5b6c');
  const byName = loadSettings(from({ context: 'aws prod', org: 'gh/octo' }));
  assert.deepEqual([byName.contextName, byName.owner, byName.where],
    ['aws prod', { param: 'owner-slug', value: 'gh/octo' }, "context 'aws prod' of gh/octo"]);
  const byOrgId = loadSettings(from({ context: 'aws', org: '6b7c3c2e-1f0a-4a55-9c2e-0d2f3e4a5b6c' }));
  assert.deepEqual(byOrgId.owner, { param: 'owner-id', value: '6b7c3c2e-1f0a-4a55-9c2e-0d2f3e4a5b6c' });
});
