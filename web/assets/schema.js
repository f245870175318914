// A method's params schema (JSON Schema) in the form: a skeleton to start from, and the checks
// the host will make, run as the params are typed (the host checks again; this only saves a
// round trip). The common keywords only: type, properties, required, enum, const, minimum,
// maximum, minLength, maxLength, items, additionalProperties.

/** A value shaped like the schema: defaults and examples where given, else empty ones. */
export function skeleton(schema) {
  if (!schema || typeof schema !== "object") return {};
  if ("default" in schema) return schema.default;
  // A method that takes no params: the host reads `{}` as none.
  if (schema.type === "null") return {};
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const out = {};
      const props = schema.properties || {};
      const required = new Set(schema.required || []);
      // Required fields first, then the others.
      const names = [...Object.keys(props).filter((k) => required.has(k)),
        ...Object.keys(props).filter((k) => !required.has(k))];
      for (const k of names) out[k] = skeleton(props[k]);
      return out;
    }
    case "array": return [];
    case "string": return "";
    case "integer": return schema.minimum ?? 0;
    case "number": return schema.minimum ?? 0;
    case "boolean": return false;
    case "null": return null;
    default: return schema.properties ? skeleton({ ...schema, type: "object" }) : {};
  }
}

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function fits(type, v) {
  const t = typeOf(v);
  return t === type || (type === "number" && t === "integer");
}

/** What in `value` the schema refuses, each as `at /path: why`; empty when it fits. */
export function problems(schema, value, path = "") {
  if (!schema || typeof schema !== "object") return [];
  // `{}` says "no params", as the host reads it, to a method whose schema is that of null.
  if (!path && typeOf(value) === "object" && !Object.keys(value).length && !problems(schema, null, "/").length) {
    return [];
  }
  const at = path || "/";
  const out = [];
  const types = schema.type === undefined ? null : [].concat(schema.type);
  if (types && !types.some((t) => fits(t, value))) {
    return [`at ${at}: ${JSON.stringify(value)} is not of type ${types.join(" or ")}`];
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    out.push(`at ${at}: ${JSON.stringify(value)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) {
    out.push(`at ${at}: must be ${JSON.stringify(schema.const)}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`at ${at}: ${value} is less than ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`at ${at}: ${value} is more than ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) out.push(`at ${at}: shorter than ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) out.push(`at ${at}: longer than ${schema.maxLength} characters`);
  }
  if (Array.isArray(value) && schema.items && typeof schema.items === "object") {
    value.forEach((v, i) => out.push(...problems(schema.items, v, `${path}/${i}`)));
  }
  if (typeOf(value) === "object") {
    const props = schema.properties || {};
    for (const k of schema.required || []) {
      if (!(k in value)) out.push(`at ${at}: "${k}" is a required property`);
    }
    for (const [k, v] of Object.entries(value)) {
      if (props[k]) out.push(...problems(props[k], v, `${path}/${k}`));
      else if (schema.additionalProperties === false) out.push(`at ${at}: "${k}" is not an allowed property`);
    }
  }
  return out;
}
