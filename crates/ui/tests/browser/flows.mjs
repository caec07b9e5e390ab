// The web UI's flows, driven through the UI only, in headless Chromium, against a real devnet
// (four validator processes, the UI server holding the demo keys). Run by scripts/ui-flows.sh:
//
//   node flows.mjs <devnet ready.json> <devnet dir> <screenshot dir>
//
// Every page visited is checked with axe-core (no serious or critical violation) at 1280x800
// and 390x844, and screenshotted. No URL the browser requests may carry a patient pseudonym,
// and the UI server's log may not either.
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [readyPath, devnetDir, shots] = process.argv.slice(2);
const ready = JSON.parse(readFileSync(readyPath, 'utf8'));
const UI = ready.ui;
const ids = ready.demo.identities;
const recs = ready.demo.records;
const p1 = ids['patient-1'].pseudonym;
const p2 = ids['patient-2'].pseudonym;
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.setDefaultTimeout(60_000);
const urls = [];
page.on('request', (r) => urls.push(r.url()));
page.on('dialog', (d) => d.accept());
const results = [];
let checked = 0;

async function axe(name) {
  await page.addScriptTag({ content: axeSource });
  const r = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`),
    [],
    `axe found serious or critical violations on ${name}`,
  );
  checked++;
}

/** Visits `path`, checks accessibility and takes screenshots at both sizes. */
async function view(path, name) {
  await page.goto(UI + path);
  await page.waitForLoadState('networkidle').catch(() => {});
  await axe(name);
  await page.screenshot({ path: `${shots}/${name}-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await axe(`${name} at 390x844`);
  await page.screenshot({ path: `${shots}/${name}-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function actAs(who) {
  await page.goto(UI + '/');
  await page.selectOption('#who', who);
  await page.waitForFunction((w) => document.title.startsWith(`Welcome, ${w} `), who);
}

/** Waits for the job in `scope` to end; returns its text; fails on a refusal. */
async function jobDone(scope, { expectError = false } = {}) {
  const job = page.locator(`${scope} .job`);
  await job.waitFor();
  await page.waitForFunction((sel) => {
    const j = document.querySelector(`${sel} .job`);
    return j && j.getAttribute('aria-busy') === 'false';
  }, scope, { timeout: 90_000 });
  const text = await job.innerText();
  if (!expectError) {
    assert.ok(!(await job.locator('.error').count()), `job failed: ${text}`);
    assert.match(text, /committed at height \d+/, `the job shows its transaction committed: ${text}`);
  }
  return text;
}

/** Reloads `path` until `locator` appears (events reach the chain in the holder's next batch). */
async function eventually(path, selector, what) {
  for (let i = 0; i < 60; i++) {
    await page.goto(UI + path);
    if (await page.locator(selector).count()) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`${what}: ${selector} never appeared on ${path}`);
}

async function flow(name, f) {
  const t = Date.now();
  try {
    await f();
    results.push(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push(`FAIL ${name}: ${e.message}`);
    await page.screenshot({ path: `${shots}/FAILED-${name.replace(/\W+/g, '-')}.png`, fullPage: true }).catch(() => {});
    console.log(results.join('\n'));
    await browser.close();
    process.exit(1);
  }
}

const condition = recs.hospital_b_condition; // patient-2's, held by hospital B

await flow('1. a patient grants a consent', async () => {
  await actAs('patient-2');
  await view('/consents', 'patient-consents');
  await page.selectOption('#grantee', ids['dr-alice'].key);
  await page.check('input[name=write]');
  await page.click('form[hx-post="/consents"] button[type=submit]');
  const text = await jobDone('#grant-result');
  assert.match(text, /granted/);
  // The grant's transaction: its inclusion proof is verified in the page.
  await page.click('#grant-result a.tx');
  await page.locator('.inclusion').waitFor();
  assert.match(await page.locator('.inclusion').innerText(), /verified here: transaction \w+ is included at height \d+/);
  await axe('transaction');
  await page.goto(UI + '/consents');
  assert.ok(await page.locator('#consents tr', { hasText: 'dr-alice' }).locator('.tag.ok').count(), 'the new consent is listed as active');
  await view('/records', 'patient-records');
  // The patient's accessible history as one FHIR Bundle, decrypted on the UI server's side.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('text=Download FHIR Bundle')]);
  const bundle = JSON.parse(readFileSync(await dl.path(), 'utf8'));
  assert.equal(bundle.resourceType, 'Bundle');
  assert.ok(bundle.entry.some((e) => e.resource.resourceType === 'Condition'), 'the Bundle holds the Condition');
});

await flow('a doctor writes an Observation from the form and from an uploaded FHIR file', async () => {
  await actAs('dr-bob'); // write consent for patient-2 from the demo data
  await page.goto(UI + '/write');
  await page.fill('#patient', p2);
  await page.selectOption('#code', '8867-4');
  await page.fill('#value', '72');
  await page.click('form[hx-post="/write"] button[type=submit]');
  const text = await jobDone('#write-result');
  assert.match(text, /Observation\) held by hospital-b/);
  await page.click('#write-result .result a');
  await page.click('#read-form button[type=submit]');
  await page.locator('#read-result .value').waitFor();
  assert.match(await page.locator('#read-result .value').innerText(), /72 \/min/);
  await page.goto(UI + '/write');
  await page.fill('#patient', p2);
  const obs = { resourceType: 'Observation', status: 'final', code: { text: 'Body temperature' },
    subject: { reference: `Patient/${p2}` }, valueQuantity: { value: 37.9, unit: 'Cel' } };
  await page.setInputFiles('#fhir-file', { name: 'temp.json', mimeType: 'application/fhir+json', buffer: Buffer.from(JSON.stringify(obs)) });
  await page.waitForFunction(() => document.getElementById('fhir').value.includes('Body temperature'));
  await page.click('form[hx-post="/write"] button[type=submit]');
  assert.match(await jobDone('#write-result'), /Observation/);
});

await flow('2. a doctor at another hospital reads the record', async () => {
  await actAs('dr-alice'); // hospital A; the record is held by hospital B
  await view('/patients', 'doctor-patients');
  assert.ok(await page.locator(`a[href="/records/${condition}"]`).count(), 'patient-2 is among the patients dr-alice may access');
  await page.click(`a[href="/records/${condition}"]`);
  await axe('doctor-record');
  await page.click('#read-form button[type=submit]');
  await page.locator('#read-result .verified').waitFor();
  assert.match(await page.locator('#read-result .outcome').innerText(), /served/);
  assert.match(await page.locator('#read-result .fhir').innerText(), /Condition/);
  await page.screenshot({ path: `${shots}/doctor-read-1280.png`, fullPage: true });
});

await flow('3. the patient sees that read in the access log', async () => {
  await actAs('patient-2');
  await eventually('/access-log', `tr.flag-served:has(code[title="${condition}"])`, 'the read in the access log');
  await view('/access-log', 'patient-access-log');
});

await flow('4. a regulator finds it in the audit', async () => {
  await actAs('regulator-rita');
  await view('/audit', 'regulator-audit');
  await page.fill('#patient', p2);
  await page.selectOption('#outcome', 'served');
  await page.click('#audit-search button[type=submit]:not(.plain)');
  await page.locator(`#audit-result tr.flag-served:has(code[title="${condition}"])`).first().waitFor();
  await page.screenshot({ path: `${shots}/regulator-audit-result-1280.png`, fullPage: true });
  // The same search as FHIR AuditEvents, downloaded.
  await page.fill('#patient', p2);
  await page.selectOption('#outcome', 'served');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#audit-export')]);
  const bundle = JSON.parse(readFileSync(await dl.path(), 'utf8'));
  assert.equal(bundle.resourceType, 'Bundle');
  assert.ok(bundle.entry.length >= 1 && bundle.entry.every((e) => e.resource.resourceType === 'AuditEvent'), 'AuditEvents');
});

await flow('5. break-glass is flagged for the patient and the regulator', async () => {
  // The patient first revokes dr-alice's consent, so that only break-glass opens the record.
  await actAs('patient-2');
  await page.goto(UI + '/consents');
  await page.locator('#consents tr', { hasText: 'dr-alice' }).locator('.tag.ok').first().waitFor();
  await page.locator('#consents tr', { hasText: 'dr-alice' }).locator('button.danger').first().click();
  await jobDone('#revoke-result');
  await actAs('dr-alice');
  await page.goto(`${UI}/records/${condition}`);
  await page.click('#read-form button[type=submit]');
  assert.match(await page.locator('#read-result .error').innerText(), /not_permitted/, 'without consent the read is denied');
  await page.click('details.breakglass summary');
  await page.fill('#break_glass', 'Unconscious in A&E, suspected arrhythmia');
  await page.check('input[name=emergency]');
  await page.click('#read-form button[type=submit]');
  await page.locator('#read-result .verified').waitFor();
  assert.match(await page.locator('#read-result .outcome').innerText(), /break_glass/);
  await actAs('patient-2');
  await eventually('/access-log', `tr.flag-break_glass:has(code[title="${condition}"])`, 'break-glass in the patient\'s log');
  assert.match(await page.locator('tr.flag-break_glass').first().innerText(), /suspected arrhythmia/, 'the patient reads the reason');
  assert.ok(await page.locator(`tr.flag-denied:has(code[title="${condition}"])`).count(), 'the denied read is highlighted too');
  await actAs('regulator-rita');
  await eventually('/audit/break-glass', `tr.flag-break_glass:has(code[title="${condition}"])`, 'break-glass in the review queue');
  assert.match(await page.locator('tr.flag-break_glass').first().innerText(), /suspected arrhythmia/, 'the regulator reads the reason');
  await view('/audit/break-glass', 'regulator-break-glass');
});

await flow('6. a pending amendment is reviewed and accepted', async () => {
  await actAs('dr-bob'); // the treating doctor at the holding hospital, with write consent
  await view(`/write?amend=${condition}`, 'doctor-amend');
  await page.fill('#patient', p2);
  const amended = {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
    code: { text: 'Chronic cough' },
    subject: { reference: `Patient/${p2}` },
    note: [{ text: 'resolved after treatment' }],
  };
  await page.fill('#fhir', JSON.stringify(amended));
  await page.click('form[hx-post="/write"] button[type=submit]');
  const text = await jobDone('#write-result');
  assert.match(text, /v2/);
  await actAs('patient-2');
  await page.goto(`${UI}/records/${condition}`);
  assert.ok(await page.locator('.diff .add', { hasText: 'resolved after treatment' }).count(), 'the diff shows the added note');
  await axe('patient-review');
  await page.screenshot({ path: `${shots}/patient-review-1280.png`, fullPage: true });
  await page.click('button:has-text("Accept v2")');
  await jobDone('#review-result');
  await page.goto(`${UI}/records/${condition}`);
  assert.match(await page.locator('h2', { hasText: 'Current version' }).innerText(), /v2/);
});

await flow('7. an erasure answers "erased" afterwards', async () => {
  await actAs('patient-2');
  await page.goto(`${UI}/records/${condition}`);
  await page.check('input[name=confirm]');
  await page.click('form[hx-post$="/erase"] button.danger');
  const text = await jobDone('#erase-result');
  assert.match(text, /erased/);
  await page.goto(`${UI}/records/${condition}`);
  assert.match(await page.locator('p.erased').innerText(), /erased/);
  await actAs('dr-bob');
  await page.goto(`${UI}/records/${condition}`);
  assert.match(await page.locator('p.erased').innerText(), /erased/, 'every reader sees the record erased');
});

await flow('8. a denied read shows a clear reason', async () => {
  await actAs('researcher-rui');
  await page.goto(`${UI}/records/${recs.hospital_a_observation}`);
  await page.click('#read-form button[type=submit]');
  const err = page.locator('#read-result .error');
  await err.waitFor();
  const text = await err.innerText();
  assert.match(text, /not_permitted/, 'the API code is shown');
  assert.match(text, /no active consent/, 'the API message is shown');
  await page.screenshot({ path: `${shots}/denied-read-1280.png`, fullPage: true });
});

await flow('a researcher asks, the patient approves, the researcher reads what is granted', async () => {
  await actAs('researcher-rui');
  await page.goto(UI + '/requests');
  await page.fill('#patient', p1);
  await page.fill('#reason', 'cohort study of blood pressure');
  await page.click('form[hx-post="/requests"] button[type=submit]');
  await jobDone('#request-result');
  await page.goto(UI + '/requests');
  assert.match(await page.locator('#my-requests td.status').first().innerText(), /pending/);
  await actAs('patient-1');
  await view('/requests', 'patient-requests');
  assert.match(await page.locator('#requests').innerText(), /cohort study of blood pressure/, 'the patient reads the sealed reason');
  await page.click('#requests button:has-text("Approve")');
  const text = await jobDone('#answer-result');
  assert.match(text, /re-wrapped on [1-9]/);
  await actAs('researcher-rui');
  await view('/requests', 'researcher-requests');
  assert.match(await page.locator('#my-requests td.status').first().innerText(), /approved: consent active/);
  await page.goto(`${UI}/records/${recs.hospital_a_observation}`);
  await page.click('#read-form button[type=submit]');
  await page.locator('#read-result .verified').waitFor();
  assert.match(await page.locator('#read-result .outcome').innerText(), /served/);
});

await flow('every other view is accessible at both sizes', async () => {
  for (const [who, paths] of [
    ['patient-1', ['/', '/records', `/records/${recs.hospital_a_observation}`]],
    ['dr-bob', ['/', '/write', '/requests']],
    ['regulator-rita', ['/', '/explorer', '/explorer/blocks/1', '/explorer/proofs']],
    ['researcher-rui', ['/requests', '/patients']],
    ['admin-hospital-a', ['/staff', '/health']],
  ]) {
    await actAs(who);
    for (const p of paths) await view(p, `${who}${p.replace(/\//g, '_').replace(/_$/, '') || '_home'}`);
  }
});

await flow('the explorer shows live blocks and verifies a state proof in the page', async () => {
  await actAs('regulator-rita');
  await page.goto(UI + '/explorer');
  await page.locator('#feed li.block').first().waitFor({ timeout: 30_000 });
  await page.goto(UI + '/explorer/blocks/1');
  assert.match(await page.locator('.finality').innerText(), /verified here/);
  await page.goto(UI + '/explorer/proofs');
  await page.selectOption('#kind', 'record');
  await page.fill('#key', recs.hospital_a_observation);
  await page.click('form[hx-post="/explorer/proofs"] button');
  await page.locator('#proof-result .verified').waitFor();
  assert.match(await page.locator('#proof-result .answer').innerText(), /Observation/);
});

const drugs = ready.demo.drugs;

await flow('a pharmacist scans, verifies and dispenses a pack; the public page then shows it dispensed', async () => {
  await actAs('pharmacist-pat');
  await view('/drugs', 'pharmacy-medicines');
  await page.fill('#scan-id', drugs.sellable);
  await page.click('form.scan[action="/drugs"] button[type=submit]');
  await page.locator('.verification').waitFor();
  assert.match(await page.locator('.verification h2').innerText(), /sellable/);
  await axe('pharmacy-verify');
  await page.click('form[hx-post="/drugs/dispense"] button[type=submit]');
  assert.match(await jobDone('#dispense-result'), /Dispensed/);
  // The Digital Link on the box resolves on this server to the public verification page.
  const link = new URL(drugs.sellable);
  await view(link.pathname + link.search, 'public-verify-digital-link');
  assert.match(await page.locator('.verification h2').innerText(), /dispensed/);
  assert.match(await page.locator('.verification .hint').innerText(), /Status and custody trail proven against finalized block \d+/);
  assert.match(await page.locator('table.trail').innerText(), /dispensing/);
  await page.goto(UI + '/verify?id=' + encodeURIComponent(drugs.counterfeit));
  assert.match(await page.locator('.verification h2').innerText(), /unknown serial/);
  await page.goto(UI + '/verify?id=' + encodeURIComponent(drugs.recalled));
  assert.match(await page.locator('.verification h2').innerText(), /recalled/);
  // A malformed code gets the GS1 rule, not a blank page.
  await page.goto(UI + '/verify?id=' + encodeURIComponent('(01)10614141073465(21)1'));
  assert.match(await page.locator('.error').innerText(), /check digit/);
});

await flow('the manufacturer, distributor and regulator views show lots, inventory, alerts and recalls', async () => {
  await actAs('maker-mia');
  await view('/drugs', 'manufacturer-medicines');
  assert.match(await page.locator('table.lots').first().innerText(), /LOTA1[\s\S]*LOTB1/);
  await actAs('distributor-dan');
  await view('/drugs', 'distributor-medicines');
  assert.match(await page.locator('table.inventory').innerText(), /A0004[\s\S]*A0006/, 'three packs of lot A stay with the distributor');
  await actAs('regulator-rita');
  await view('/drugs', 'regulator-medicines');
  assert.match(await page.locator('table.alerts').innerText(), /unknown serial/);
  assert.match(await page.locator('table.recalls').innerText(), /LOTB1/);
});

await flow('the manufacturer registers a product only under a prefix the regulator bound to it; a prefix is unbound only while it has no product', async () => {
  const gtin = '10614144000078'; // company prefix 0614144, bound to nobody yet
  const register = async () => {
    await page.goto(UI + '/drugs');
    await page.fill('#g-gtin', gtin);
    await page.fill('#g-name', 'Paracetamol 500 mg');
    await page.fill('#g-form', 'tablet');
    await page.fill('#g-strength', '500 mg');
    await page.fill('#g-size', '16');
    await page.click('form[hx-post="/drugs/products"] button[type=submit]');
  };
  await actAs('maker-mia');
  await register();
  assert.match(await jobDone('#product-result', { expectError: true }), /no company prefix of GTIN 10614144000078 is bound/);
  await actAs('regulator-rita');
  await page.goto(UI + '/drugs');
  await page.fill('#bp-prefix', '0614144');
  await page.fill('#bp-inst', drugs.manufacturer);
  await page.click('form[hx-post="/drugs/prefixes"] button[type=submit]');
  assert.match(await jobDone('#prefix-result'), /Prefix bound/);
  // A prefix bound in error is unbound while no product is registered under it.
  await page.goto(UI + '/drugs');
  await page.fill('#bp-prefix', '0614145');
  await page.fill('#bp-inst', drugs.manufacturer);
  await page.click('form[hx-post="/drugs/prefixes"] button[type=submit]');
  assert.match(await jobDone('#prefix-result'), /Prefix bound/);
  await page.fill('#ub-prefix', '0614145');
  await page.click('form[hx-post="/drugs/prefixes/unbind"] button[type=submit]');
  assert.match(await jobDone('#unbind-result'), /Prefix unbound/);
  await actAs('maker-mia');
  await register();
  assert.match(await jobDone('#product-result'), /Product registered/);
  await page.goto(UI + '/drugs');
  assert.match(await page.locator('main').innerText(), /Paracetamol 500 mg · GTIN 10614144000078/);
  // Once a product is registered under it, it stays bound.
  await actAs('regulator-rita');
  await page.goto(UI + '/drugs');
  await page.fill('#ub-prefix', '0614144');
  await page.click('form[hx-post="/drugs/prefixes/unbind"] button[type=submit]');
  assert.match(await jobDone('#unbind-result', { expectError: true }), /registered under company prefix 0614144/);
});

await flow('a distributor packs and unpacks a case and reports a pack stolen; the manufacturer captures an EPCIS document; the public page shows both', async () => {
  const pack = (serial) => `(01)${drugs.gtin}(21)${serial}`;
  const inventory = async () => { await page.goto(UI + '/drugs'); return page.locator('table.inventory').innerText(); };
  await actAs('distributor-dan');
  await page.goto(UI + '/drugs');
  await page.fill('#p-sscc', drugs.case);
  await page.fill('#p-items', `${pack('A0004')}\n${pack('A0005')}`);
  await page.click('form[hx-post="/drugs/pack"] button[type=submit]');
  assert.match(await jobDone('#pack-result'), /Packed/);
  const packed = await inventory();
  for (const s of ['A0004', 'A0005']) assert.match(packed, new RegExp(`${s}[^\\n]*${drugs.case}`), `${s} is in the case`);
  assert.doesNotMatch(packed, new RegExp(`A0006[^\\n]*${drugs.case}`), 'A0006 was not packed');
  // Unpacking with no identifiers named takes everything out.
  await page.fill('#u-sscc', drugs.case);
  await page.click('form[hx-post="/drugs/unpack"] button[type=submit]');
  assert.match(await jobDone('#unpack-result'), /Unpacked/);
  const unpacked = await inventory();
  assert.doesNotMatch(unpacked, new RegExp(`A000[45][^\\n]*${drugs.case}`), 'the case is empty');
  for (const s of ['A0004', 'A0005']) {
    const cells = page.locator('table.inventory tbody tr', { hasText: s }).locator('td');
    assert.equal(await cells.count(), 5, `${s} is still held`);
    assert.equal((await cells.nth(3).innerText()).trim(), '', `${s} is in no case`);
  }
  await page.fill('#rp-items', pack('A0006'));
  await page.selectOption('#rp-status', 'stolen');
  await page.fill('#rp-reason', 'missing from the warehouse shelf at stock-take');
  await page.click('form[hx-post="/drugs/report"] button[type=submit]');
  assert.match(await jobDone('#report-result'), /Reported stolen/);
  assert.doesNotMatch(await inventory(), /A0006/, 'a stolen pack leaves the inventory');
  await page.goto(UI + '/verify?id=' + encodeURIComponent(pack('A0006')));
  assert.match(await page.locator('.verification h2').innerText(), /stolen/);
  assert.doesNotMatch(await page.locator('main').innerText(), /stock-take/, 'the public page does not say why');
  // The regulator traces the pack: the trail with its events, and why its status changed.
  await actAs('regulator-rita');
  await page.goto(UI + '/drugs');
  await page.fill('#t-id', pack('A0006'));
  await page.click('form[hx-get="/drugs/trace"] button[type=submit]');
  const change = page.locator('#trace-result dl.last-change');
  await change.waitFor();
  const traced = await change.innerText();
  assert.match(traced, /stolen/);
  assert.match(traced, /missing from the warehouse shelf at stock-take/, 'the reason is shown to the regulator');
  const rows = page.locator('#trace-result table.trace tbody tr');
  assert.match(await rows.first().innerText(), /commissioning\s+\S+\s+\d+\s+urn:uuid:/, 'the first step with its institution, height and event');
  assert.match(await rows.last().innerText(), /decommissioning \(reported stolen\)/, 'the last step is the report');
  await axe('regulator-trace');
  // A malformed document is refused with the JSON Pointer of what is wrong, before a job.
  await actAs('maker-mia');
  await page.goto(UI + '/drugs');
  const event = {
    type: 'ObjectEvent', eventID: `urn:uuid:${crypto.randomUUID()}`, eventTime: new Date(Date.now() - 60_000).toISOString(),
    eventTimeZoneOffset: '+00:00', epcList: ['urn:epc:id:sgtin:0614141.107346.U0001'], action: 'ADD',
    bizStep: 'commissioning', disposition: 'active', readPoint: { id: 'urn:epc:id:sgln:0614141.00001.0' },
    // A year from now, so that the pack verifies as sellable whenever the flow runs.
    ilmd: { 'cbvmda:lotNumber': 'LOTU1', 'cbvmda:itemExpirationDate': new Date(Date.now() + 365 * 86_400_000).toISOString().slice(0, 10) },
  };
  const doc = (events) => JSON.stringify({
    '@context': 'https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld', type: 'EPCISDocument',
    schemaVersion: '2.0', creationDate: new Date().toISOString(), epcisBody: { eventList: events },
  });
  await page.fill('#cp-doc', doc([{ ...event, action: 'SPLIT' }]));
  await page.click('form[hx-post="/drugs/capture"] button[type=submit]');
  const refused = page.locator('#capture-result .error');
  await refused.waitFor();
  assert.match(await refused.innerText(), /\/epcisBody\/eventList\/0\/action: `SPLIT` is not ADD/);
  assert.equal(await page.locator('#capture-result .job').count(), 0, 'refused before any job is started');
  await page.fill('#cp-doc', doc([event]));
  await page.click('form[hx-post="/drugs/capture"] button[type=submit]');
  assert.match(await jobDone('#capture-result'), /Captured/);
  await page.goto(UI + '/verify?id=' + encodeURIComponent(pack('U0001')));
  assert.match(await page.locator('.verification h2').innerText(), /sellable/);
  assert.match(await page.locator('table.trail').innerText(), /commissioning/);
});

await flow('a clinic doctor refers a patient, the patient approves, the receiving doctor accepts; the regulator sees the statistics', async () => {
  await actAs('dr-dara');
  await view('/referrals', 'doctor-referrals');
  await page.selectOption('#patient', { label: 'patient-1' });
  await page.selectOption('#to', 'hospital-a');
  await page.fill('#specialty', 'nephrology');
  await page.fill('#records', recs.hospital_b_encounter);
  await page.click('form[hx-post="/referrals"] button[type=submit]');
  assert.match(await jobDone('#propose-result'), /waits for the patient's approval/);
  await page.goto(UI + '/referrals');
  const rid = await page.locator('#outbox tr', { hasText: 'nephrology' }).getAttribute('data-referral');
  assert.match(await page.locator(`#outbox tr[data-referral="${rid}"] td.status`).innerText(), /awaits the patient's approval/);

  await actAs('patient-1');
  await view('/referrals', 'patient-referrals');
  await page.click(`tr[data-referral="${rid}"] button:has-text("Approve")`);
  await jobDone(`#r-${rid}-result`);

  await actAs('dr-alice');
  await view('/referrals', 'doctor-referral-inbox');
  const row = page.locator(`#inbox tr[data-referral="${rid}"]`);
  await row.locator('select[name=mode]').selectOption('remote');
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 16);
  await row.locator('input[name=appointment]').fill(tomorrow);
  await row.locator('button:has-text("Accept")').click();
  await jobDone(`#r-${rid}-result`);
  await page.goto(UI + '/referrals');
  const status = await page.locator(`#inbox tr[data-referral="${rid}"] td.status`).innerText();
  assert.match(status, /accepted/);
  await actAs('regulator-rita');
  await view('/referrals', 'regulator-referral-stats');
  const stats = await page.locator('#referral-stats tr', { hasText: 'clinic-c' }).innerText();
  assert.match(stats, /hospital-a/);
  const byRegion = await page.locator('#referral-region-stats tr', { hasText: 'rural-east' }).innerText();
  assert.match(byRegion, /metro-north/, 'the rural clinic refers up to the city');
  for (const p of [p1, p2]) assert.ok(!(await page.content()).includes(p), 'the statistics name no patient');
  await actAs('admin-hospital-a');
  await view('/referrals', 'admin-referral-board');
  assert.ok(await page.locator(`#inbox tr[data-referral="${rid}"]`).count(), 'the board lists the referral');
});

await flow('a doctor follows live readings, an alarm reaches the dashboard over SSE and is acknowledged; the patient sees devices, readings and alarms', async () => {
  // patient-2's wearable streams from the devnet; Dr. Bob is responsible.
  await actAs('dr-bob');
  await view('/monitoring', 'doctor-monitoring');
  const patient = page.locator(`section.patient[data-patient="${p2}"]`);
  await patient.locator('table.readings td.value', { hasText: '/min' }).first().waitFor({ timeout: 60_000 });
  // The deterioration crosses into medium risk once a minute: pushed to the open page.
  const pushed = page.locator('#alarm-feed li.alarm').first();
  await pushed.waitFor({ timeout: 120_000 });
  assert.match(await pushed.innerText(), /news2 (medium|high)/);
  const aid = await pushed.getAttribute('data-alarm');
  const row = `#alarms tr[data-alarm="${aid}"]`;
  await page.locator(`${row} button:has-text("Acknowledge")`).waitFor({ timeout: 30_000 });
  await axe('doctor-monitoring with an alarm');
  await page.locator(`${row} button:has-text("Acknowledge")`).click();
  await jobDone('#ack-result');
  await page.waitForFunction((sel) => document.querySelector(`${sel} td.state`)?.innerText.includes('acknowledged'), row, { timeout: 30_000 });
  const text = await page.locator('#live').innerText();
  assert.ok(!/\b\d{2,3}\.\d+ \/min/.test(await pushed.innerText()), 'the pushed alarm carries no value');
  assert.match(text, /NEWS2 risk/);

  await actAs('patient-2');
  await view('/monitoring', 'patient-monitoring');
  assert.match(await page.locator('#devices td.status').first().innerText(), /active/);
  await page.locator('#live table.readings td.value').first().waitFor({ timeout: 30_000 });
  assert.ok(await page.locator(`#alarms tr[data-alarm="${aid}"]`).count(), 'the patient sees the alarm');
  assert.match(await page.locator(`#alarms tr[data-alarm="${aid}"] td.state`).innerText(), /acknowledged by dr-bob/);
});

await flow('an institution admin lists the staff and revokes a credential', async () => {
  await actAs('admin-clinic-c');
  await view('/staff', 'admin-staff');
  const row = page.locator('#staff tr', { hasText: 'Clinic C dispensary' });
  await row.locator('input[name=reason]').fill('left the clinic');
  await row.locator('button.danger').click();
  await jobDone('#revoke-result');
  await page.goto(UI + '/staff');
  assert.ok(await page.locator('#staff tr', { hasText: 'Clinic C dispensary' }).locator('.tag.bad').count(), 'shown as revoked');
  await page.goto(UI + '/health');
  assert.match(await page.locator('#vault-health').innerText(), /Vault: up/);
  assert.equal(await page.locator('#validators .tag.ok').count(), 4, 'all four validators up');
});

await flow('each node serves a read-only explorer of headers', async () => {
  // The node's own page, over the consortium's TLS (its CA is not the browser's).
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 } });
  const node = await ctx.newPage();
  const api = ready.validators[1].api;
  await node.goto(`${api}/explorer`);
  await node.locator('#feed li').first().waitFor({ timeout: 30_000 });
  assert.ok(await node.locator('#blocks .ok', { hasText: 'finalized' }).count(), 'finalized blocks are listed');
  assert.equal(await node.locator('#blocks .bad').count(), 0, 'no listed block is unfinalized');
  await node.addScriptTag({ content: axeSource });
  const r = await node.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  assert.deepEqual(r.violations.filter((v) => ['serious', 'critical'].includes(v.impact)).map((v) => v.id), []);
  checked++;
  await node.screenshot({ path: `${shots}/node-explorer-390.png`, fullPage: true });
  await node.goto(`${api}/explorer/blocks/2`);
  assert.match(await node.locator('main').innerText(), /certificate checked/);
  const html = await node.content();
  for (const p of [p1, p2]) assert.ok(!html.includes(p), 'no pseudonym on the public explorer');
  await ctx.close();
});

await flow('no patient pseudonym in any URL or in the UI server log', async () => {
  for (const u of urls) {
    for (const p of [p1, p2]) assert.ok(!u.includes(p), `a URL carries a pseudonym: ${u}`);
  }
  const log = readFileSync(`${devnetDir}/ui.log`, 'utf8');
  for (const p of [p1, p2]) assert.ok(!log.includes(p), 'the UI log carries a pseudonym');
});

await browser.close();
console.log(results.join('\n'));
console.log(`${results.length} flows passed; ${checked} axe checks; ${urls.length} requests; screenshots in ${shots}`);
