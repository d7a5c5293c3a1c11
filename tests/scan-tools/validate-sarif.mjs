// Validates a SARIF log (stdin) against the SARIF 2.1.0 schema that
// @microsoft/jest-sarif ships, with its ajv. Prints the errors and exits 1
// when it doesn't validate.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Ajv = require("ajv");
const schema = JSON.parse(
  readFileSync(require.resolve("@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json"), "utf8"),
);
// The SARIF schema is draft-04, which ajv 6 knows but does not load by default.
const ajv = new Ajv({ allErrors: true, schemaId: "auto", logger: false });
ajv.addMetaSchema(require("ajv/lib/refs/json-schema-draft-04.json"));
const validate = ajv.compile(schema);
const log = JSON.parse(readFileSync(0, "utf8"));
if (!validate(log)) {
  process.stdout.write(JSON.stringify(validate.errors, null, 2) + "\n");
  process.exit(1);
}
process.stdout.write("valid\n");
