// validate.mjs checks an OpenAPI document with @apidevtools/swagger-parser,
// a validator independent of the kin-openapi one the Go tests use: it reads
// YAML as YAML 1.2 (js-yaml), checks the document against the OpenAPI 3.0
// schema and resolves every $ref. Usage: node validate.mjs FILE
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs api/openapi.yaml");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`${file}: valid OpenAPI ${api.openapi} (${Object.keys(api.paths).length} paths), per @apidevtools/swagger-parser`);
} catch (err) {
  console.error(`${file}: not valid per @apidevtools/swagger-parser:\n${err.message}`);
  process.exit(1);
}
