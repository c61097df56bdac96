// Validates a MapLibre style (JSON on stdin) with the vendored @maplibre/maplibre-gl-style-spec; prints the errors as JSON.
const spec = require(__dirname + "/maplibre-gl-style-spec/index.cjs");
const style = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(spec.validateStyleMin(style).map((e) => e.message)));
