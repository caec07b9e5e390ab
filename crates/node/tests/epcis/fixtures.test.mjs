// Self-check of the fixtures and of validate.mjs:  npm test  (node --test fixtures.test.mjs)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import sdk from 'epcis2.js';
import { validate } from './validate.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = join(here, 'fixtures');
const invalidDir = join(fixtures, 'invalid');
const load = (...p) => JSON.parse(readFileSync(join(...p), 'utf8'));
const jsonFiles = (dir) => readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const events = (f) => load(fixtures, f).epcisBody.eventList;

const validFiles = jsonFiles(fixtures);
const expected = load(invalidDir, 'EXPECTED.json');
const invalidFiles = jsonFiles(invalidDir).filter((f) => f !== 'EXPECTED.json');

test('there are valid fixtures', () => {
  assert.ok(validFiles.includes('whole-chain.json'));
  assert.ok(validFiles.includes('query-result.json'));
});

for (const f of validFiles) {
  test(`valid: ${f}`, () => {
    const doc = load(fixtures, f);
    assert.deepEqual(validate(doc), { valid: true, errors: [] });
    // Second opinion: the package's own validator (also checks unknown fields).
    assert.deepEqual(sdk.validateEpcisDocument(doc, false), { success: true, errors: [] });
  });
}

test('EXPECTED.json covers exactly the invalid fixtures', () => {
  const listed = Object.keys(expected).filter((k) => !k.startsWith('$')).sort();
  assert.deepEqual(listed, invalidFiles);
});

for (const f of invalidFiles) {
  test(`invalid: ${f} is reported at ${expected[f]?.path}`, () => {
    const r = validate(load(invalidDir, f));
    assert.equal(r.valid, false);
    assert.equal(r.errors[0].path, expected[f].path, JSON.stringify(r.errors));
    assert.ok(r.errors[0].message.includes(expected[f].message), r.errors[0].message);
    assert.equal(sdk.validateEpcisDocument(load(invalidDir, f), false).success, false);
  });
}

test('whole-chain.json = commission, pack, ship, receive, unpack, dispense', () => {
  const parts = ['commission', 'pack', 'ship', 'receive', 'unpack', 'dispense'];
  assert.deepEqual(events('whole-chain.json'), parts.flatMap((p) => events(`${p}.json`)));
});

test('event IDs are unique across the single-step fixtures', () => {
  const singles = validFiles.filter((f) => !['whole-chain.json', 'query-result.json', 'error-declaration.json'].includes(f));
  const ids = singles.flatMap((f) => events(f).map((e) => e.eventID));
  assert.equal(new Set(ids).size, ids.length);
});

test('error-declaration.json re-states the commissioning event plus errorDeclaration', () => {
  const [decl] = events('error-declaration.json');
  const [orig] = events('commission.json');
  const { errorDeclaration, ...rest } = decl;
  assert.deepEqual(rest, orig);
  assert.equal(errorDeclaration.reason, 'incorrect_data');
  assert.ok(errorDeclaration.declarationTime);
});

test('query-result.json returns ship and receive (plus recordTime)', () => {
  const doc = load(fixtures, 'query-result.json');
  assert.equal(doc.type, 'EPCISQueryDocument');
  const got = doc.epcisBody.queryResults.resultsBody.eventList.map(({ recordTime, ...e }) => {
    assert.ok(recordTime);
    return e;
  });
  assert.deepEqual(got, [...events('ship.json'), ...events('receive.json')]);
});

test('CLI: one JSON line per file, exit 1 when any is invalid, stdin via -', () => {
  const cli = (args, input) => spawnSync(process.execPath, [join(here, 'validate.mjs'), ...args], { input, encoding: 'utf8' });

  const ok = cli([join(fixtures, 'ship.json'), join(fixtures, 'pack.json')]);
  assert.equal(ok.status, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.valid), [true, true]);

  const mixed = cli([join(fixtures, 'ship.json'), join(invalidDir, 'unknown-action.json')]);
  assert.equal(mixed.status, 1);
  const [a, b] = mixed.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(a.valid, true);
  assert.equal(b.valid, false);
  assert.equal(b.errors[0].path, '/epcisBody/eventList/0/action');

  const stdin = cli(['-'], readFileSync(join(fixtures, 'whole-chain.json')));
  assert.equal(stdin.status, 0);
  assert.deepEqual(JSON.parse(stdin.stdout), { file: '-', valid: true, errors: [] });

  const garbage = cli(['-'], '{not json');
  assert.equal(garbage.status, 1);
  assert.equal(JSON.parse(garbage.stdout).errors[0].path, '');

  assert.equal(cli([]).status, 2);
});
