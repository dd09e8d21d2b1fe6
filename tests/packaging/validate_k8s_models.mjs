// Validates Kubernetes manifests against the JSON schemas compiled into the kubernetes-models
// packages (generated from the Kubernetes OpenAPI spec and, for ServiceMonitor/PrometheusRule, from
// the Prometheus Operator CRDs): types, enums, formats and required fields of every object.
// Every document must be of a kind the schemas know.
// Usage: NODE_PATH=<tools>/node_modules node validate_k8s_models.mjs MANIFESTS.yaml
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const toolsDir = process.env.NETLATD_TEST_TOOLS;
if (!toolsDir) throw new Error("NETLATD_TEST_TOOLS (the tools.sh cache dir) is not set");
const require = createRequire(path.join(toolsDir, "package.json"));
const { parseAllDocuments } = require("yaml");

const CRD_PACKAGES = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (!group) return `kubernetes-models/${version}/${kind}`;
  if (CRD_PACKAGES[group]) return `${CRD_PACKAGES[group]}/${group}/${version}/${kind}`;
  return `kubernetes-models/${group}/${version}/${kind}`;
}

const file = process.argv[2];
const docs = parseAllDocuments(readFileSync(file, "utf8"))
  .map((d) => {
    if (d.errors.length) throw new Error(`${file}: YAML error: ${d.errors[0].message}`);
    return d.toJS();
  })
  .filter((d) => d);

let errors = 0;
const checked = [];
for (const doc of docs) {
  const where = `${doc.apiVersion} ${doc.kind}/${doc.metadata?.name}`;
  let mod;
  try {
    // The packages export ESM subpaths only; load the model file by its path in node_modules.
    const file = path.join(toolsDir, "node_modules", `${modulePath(doc.apiVersion, doc.kind)}.js`);
    if (!existsSync(file)) throw new Error(`${file} does not exist`);
    mod = await import(pathToFileURL(file).href);
  } catch (e) {
    console.log(`ERROR ${where}: no schema for this apiVersion/kind (${e.message})`);
    errors++;
    continue;
  }
  const Model = mod[doc.kind];
  try {
    new Model(doc).validate();
    checked.push(where);
  } catch (e) {
    console.log(`ERROR ${where}: ${e.message}`);
    errors++;
  }
}
console.log(`schema-validated ${checked.length}: ${checked.join(", ")}`);
process.exit(errors || checked.length === 0 ? 1 : 0);
