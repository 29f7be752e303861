// Validates an AsyncAPI 3.0 document (JSON file given as argument) against the official JSON Schema
// shipped by @asyncapi/specs; prints the errors and exits 1 when it is invalid.
"use strict";
const fs = require("fs");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");
const schema = require("@asyncapi/specs/schemas/3.0.0-without-$id.json");

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(schema);
const doc = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
if (validate(doc)) {
  console.log("valid");
} else {
  console.log(JSON.stringify(validate.errors.slice(0, 20), null, 2));
  process.exit(1);
}
