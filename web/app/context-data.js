// Checking a Context's `data` as typed in the Context panel, before it is saved.

/** Editor text as a Context's `data`: `{value}` (a JSON object) or `{error}` (why not). */
export function parseContextData(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `Not valid JSON: ${error.message}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'The data must be a JSON object, like {"topic": "…"}.' };
  }
  return { value };
}
