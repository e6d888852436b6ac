// Unit tests of api.js under Node: `npm test` in plugins/js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Call, allowHostFlag, circleMessage, compareMasked, confirmedReplaced, contextVariablePath, contextsPath, envvarPath, envvarsPath, maskedTail, projectPath, rateLimitError, retryAfterSeconds, statusError, transportError } from '../api.js';
import { loadSettings } from '../settings.js';

const settings = (extra = {}) => loadSettings((n) => ({ 'project-slug': 'gh/octo/app', ...extra })[n]);

test('paths follow API v2', () => {
  const s = settings();
  assert.equal(projectPath(s), '/api/v2/project/gh/octo/app');
  assert.equal(envvarsPath(s), '/api/v2/project/gh/octo/app/envvar');
  assert.equal(envvarPath(s, 'AWS_ACCESS_KEY_ID'), '/api/v2/project/gh/octo/app/envvar/AWS_ACCESS_KEY_ID');
});

test('a rejected token is named, with the injection hint only without a token', () => {
  const e = statusError(Call.readProject(settings({ token: 't' })), settings({ token: 't' }), 401, '{"message":"Invalid token provided."}');
  assert.match(e, /^CircleCI rejected the token \(401: Invalid token provided\.\) while reading project gh\/octo\/app: check/);
  assert.doesNotMatch(e, /inject-header/);
  const e2 = statusError(Call.setVariable(settings(), 'X'), settings(), 403, '');
  assert.match(e2, /\(403\) while setting variable X of project gh\/octo\/app/);
  assert.match(e2, /--inject-header/);
});

test('not found, server errors and the rest', () => {
  const s = settings();
  assert.match(statusError(Call.readProject(s), s, 404, '{"message":"Project not found"}'),
    /^project gh\/octo\/app not found, or the token cannot see it \(404: Project not found\) while reading project/);
  assert.match(statusError(Call.readProject(s), s, 503, '<html>'), /^CircleCI error 503 while reading project gh\/octo\/app: try again later$/);
  assert.match(statusError(Call.readProject(s), s, 502, '{"message":"Bad gateway"}'), /^CircleCI error 502 \(Bad gateway\) while/);
  assert.match(statusError(Call.readProject(s), s, 301, ''), /^unexpected CircleCI response 301 while reading project/);
});

test('transport errors say why, with the code and the --allow-host value', () => {
  const s = settings();
  const read = Call.readProject(s);
  assert.equal(
    transportError(read, s, { code: 'HttpRequestDenied', message: 'NetworkError' }),
    'cannot reach CircleCI at https://circleci.com while reading project gh/octo/app: keyrot denied the ' +
      'request (HttpRequestDenied): grant the host with --allow-host circleci.com',
  );
  assert.match(transportError(read, s, { code: 'ConnectionRefused' }), /: connection refused \(ConnectionRefused\)$/);
  assert.match(transportError(read, s, { code: 'DnsError' }), /: cannot resolve the host name \(DnsError\)$/);
  assert.match(transportError(read, s, { code: 'HttpProtocolError' }), /gh\/octo\/app: HttpProtocolError$/);
  assert.match(
    transportError(read, s, { code: undefined, message: 'NetworkError when attempting to fetch resource' }),
    /: NetworkError when attempting to fetch resource \(is the host allowed with --allow-host circleci\.com, and reachable\?\)$/,
  );
  assert.equal(allowHostFlag('http://127.0.0.1:8080'), 'http://127.0.0.1:8080');
  assert.equal(allowHostFlag('http://example.com/x'), 'http://example.com:80');
  assert.equal(allowHostFlag('https://example.com:8443'), 'https://example.com:8443');
  assert.equal(allowHostFlag('https://circleci.example.com/base'), 'circleci.example.com');
});

test('messages are sanitized and cut short', () => {
  assert.equal(circleMessage('{"message":"a\\nb"}'), 'a b');
  assert.equal(circleMessage('{"message":"  "}'), undefined);
  assert.equal(circleMessage('{"message":1}'), undefined);
  assert.equal(circleMessage('not json'), undefined);
  assert.equal(circleMessage('null'), undefined);
  const long = circleMessage(JSON.stringify({ message: 'x'.repeat(500) }));
  assert.equal([...long].length, 201);
});

test('masked values tell the key only by its last four characters', () => {
  assert.equal(compareMasked('xxxxWXYZ', 'AKIAEXAMPLEWXYZ'), 'same');
  assert.equal(compareMasked('xxxxABCD', 'AKIAEXAMPLEWXYZ'), 'different');
  assert.equal(compareMasked('xxxx', 'AKIAEXAMPLEWXYZ'), 'unknown');
  assert.equal(compareMasked(undefined, 'AKIAEXAMPLEWXYZ'), 'unknown');
  assert.equal(compareMasked('xxxxWXYZ', undefined), 'unknown');
});

test('context paths follow API v2', () => {
  const s = loadSettings((n) => ({ context: 'aws', org: 'gh/octo' })[n]);
  assert.equal(contextsPath(s), '/api/v2/context?owner-slug=gh%2Focto');
  assert.equal(contextsPath(s, 'next+1'), '/api/v2/context?owner-slug=gh%2Focto&page-token=next%2B1');
  assert.equal(contextVariablePath('c-1', 'AWS_ACCESS_KEY_ID'), '/api/v2/context/c-1/environment-variable/AWS_ACCESS_KEY_ID');
  assert.equal(Call.setVariable(s, 'X'), "setting variable X of context 'aws' of gh/octo");
});

test('a POST counts as a replacement only when the masked value shows it', () => {
  assert.equal(maskedTail('xxxxAB12'), 'AB12');
  assert.equal(maskedTail('xxxx'), undefined);
  assert.equal(confirmedReplaced(undefined, 'xxxx5678', 'AKIA12345678'), true);
  assert.equal(confirmedReplaced('xxxx0000', 'xxxx5678', 'AKIA12345678'), true);
  // Still the old value.
  assert.equal(confirmedReplaced('xxxx0000', 'xxxx0000', 'AKIA12345678'), false);
  // The old value ended alike: cannot tell.
  assert.equal(confirmedReplaced('xxxx5678', 'xxxx5678', 'AKIA12345678'), false);
  assert.equal(confirmedReplaced(undefined, undefined, 'AKIA12345678'), false);
});

test('rate limits have their own message', () => {
  assert.equal(retryAfterSeconds('3'), 3);
  assert.equal(retryAfterSeconds('Wed, 21 Oct 2015 07:28:00 GMT'), undefined);
  assert.equal(retryAfterSeconds(undefined), undefined);
  assert.equal(rateLimitError('reading project gh/o/r', 120),
    'CircleCI is rate-limiting requests (429 Too Many Requests) while reading project gh/o/r: CircleCI asks to retry in 120 s; run keyrot again then');
  assert.match(rateLimitError('x', undefined), /did not say when/);
});
